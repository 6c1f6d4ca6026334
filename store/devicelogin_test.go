package store_test

import (
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

func deviceLogin(code, user string, created time.Time) access.DeviceLogin {
	return access.DeviceLogin{Code: code, User: user, KeyHash: "SHA256:abc", CSR: []byte("csr"), Address: "192.0.2.7",
		Created: created, Expires: created.Add(access.DeviceLoginTTL)}
}

// TestDeviceLogins: a code is created once, confirmed and redeemed only
// at the revision it was read at, and its audit events land with it.
func TestDeviceLogins(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	now := time.Now().UTC().Truncate(time.Second)
	d := deviceLogin("ABCD-EFGH", "alice", now)

	noErr(t, s.CreateDeviceLogin(ctx, d, ev("login.device.start", "alice")))
	wantErr(t, s.CreateDeviceLogin(ctx, deviceLogin("ABCD-EFGH", "mallory", now)), access.ErrAlreadyExists, "")
	wantErr(t, s.CreateDeviceLogin(ctx, deviceLogin("AB/CD", "alice", now)), access.ErrInvalid, "")
	noErr(t, s.CreateDeviceLogin(ctx, deviceLogin("WXYZ-2345", "bob", now)))

	got := must[access.DeviceLogin](t)(s.GetDeviceLogin(ctx, "ABCD-EFGH"))
	if got.User != "alice" || got.Revision == 0 || !got.Expires.Equal(d.Expires) {
		t.Fatalf("get = %+v, want alice's login with its revision", got)
	}
	if list := must[[]access.DeviceLogin](t)(s.ListDeviceLogins(ctx)); len(list) != 2 || list[0].Revision == 0 {
		t.Fatalf("list = %+v, want both logins with revisions", list)
	}
	_, err := s.GetDeviceLogin(ctx, "NONE-NONE")
	wantErr(t, err, access.ErrNotFound, "")

	confirmed := got
	at := now.Add(time.Minute)
	confirmed.Confirmed, confirmed.ConfirmedBy = &at, "slack:U1"
	confirmed = must[access.DeviceLogin](t)(s.UpdateDeviceLogin(ctx, confirmed, ev("login.device.confirm", "alice")))
	if confirmed.Revision <= got.Revision {
		t.Fatalf("revision after update = %d, want above %d", confirmed.Revision, got.Revision)
	}
	// A writer holding the old revision loses.
	stale := got
	stale.ConfirmedBy = "discord:666"
	_, err = s.UpdateDeviceLogin(ctx, stale)
	wantErr(t, err, access.ErrConflict, "")
	wantErr(t, s.DeleteDeviceLogin(ctx, got), access.ErrConflict, "")
	if now := must[access.DeviceLogin](t)(s.GetDeviceLogin(ctx, "ABCD-EFGH")); now.ConfirmedBy != "slack:U1" || now.Revision != confirmed.Revision {
		t.Fatalf("after the stale writes: %+v", now)
	}

	noErr(t, s.DeleteDeviceLogin(ctx, confirmed, ev("login.device.redeem", "alice")))
	wantErr(t, s.DeleteDeviceLogin(ctx, confirmed), access.ErrConflict, "") // single use
	_, err = s.GetDeviceLogin(ctx, "ABCD-EFGH")
	wantErr(t, err, access.ErrNotFound, "")

	evs := must[[]access.AuditEvent](t)(s.ListAudit(ctx, access.AuditFilter{Type: "login.device.*"}))
	if len(evs) != 3 {
		t.Fatalf("audit = %+v, want start, confirm and redeem", evs)
	}
}

// TestDeviceLoginLease: the clean-up lease lasts the login's own lifetime
// plus a grace minute, whatever the host clock says about its times (the
// service's clock decides them), and survives updates.
func TestDeviceLoginLease(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	// Times from a service clock two days behind this host's.
	d := deviceLogin("ABCD-EFGH", "alice", time.Now().Add(-48*time.Hour))
	noErr(t, s.CreateDeviceLogin(ctx, d))

	leaseTTL := func() (clientv3.LeaseID, int64) {
		t.Helper()
		resp := must[*clientv3.GetResponse](t)(s.Client().Get(ctx, s.Prefix()+"devicelogins/ABCD-EFGH"))
		if len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
			t.Fatalf("device login key %v has no lease", resp.Kvs)
		}
		id := clientv3.LeaseID(resp.Kvs[0].Lease)
		ttl := must[*clientv3.LeaseTimeToLiveResponse](t)(s.Client().TimeToLive(ctx, id))
		return id, ttl.TTL
	}
	lease, ttl := leaseTTL()
	if min := int64((access.DeviceLoginTTL + time.Minute).Seconds()) - 5; ttl < min {
		t.Fatalf("lease TTL %ds, want about %ds", ttl, min+5)
	}

	got := must[access.DeviceLogin](t)(s.GetDeviceLogin(ctx, "ABCD-EFGH"))
	got.ConfirmedBy = "slack:U1"
	must[access.DeviceLogin](t)(s.UpdateDeviceLogin(ctx, got))
	if after, _ := leaseTTL(); after != lease {
		t.Fatalf("update moved the key from lease %x to %x", lease, after)
	}
}

var _ access.DeviceLoginStore = (*store.Store)(nil)
