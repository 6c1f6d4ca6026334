package store_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

// fail counts one failure, kept for keep, with the events.
func fail(keep time.Duration, events ...access.AuditEvent) func(*access.LoginAttempts) (time.Duration, []access.AuditEvent, error) {
	return func(a *access.LoginAttempts) (time.Duration, []access.AuditEvent, error) {
		a.Failures++
		return keep, events, nil
	}
}

// TestLoginAttempts: a record is created on the first update, counted on
// at the revision it was read, kept by a cleanup lease at least as long
// as asked, written with its audit events, and deleted once.
func TestLoginAttempts(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)

	_, err := s.GetLoginAttempts(ctx, "alice")
	wantErr(t, err, access.ErrNotFound, "")

	first := must[access.LoginAttempts](t)(s.UpdateLoginAttempts(ctx, "alice", fail(15*time.Minute, ev("user.login", "alice"))))
	if first.User != "alice" || first.Failures != 1 || first.Revision == 0 {
		t.Fatalf("first update = %+v, want alice with 1 failure and a revision", first)
	}
	second := must[access.LoginAttempts](t)(s.UpdateLoginAttempts(ctx, "alice", fail(15*time.Minute, ev("login.lockout", "alice"))))
	if second.Failures != 2 || second.Revision <= first.Revision {
		t.Fatalf("second update = %+v, want 2 failures at a later revision than %d", second, first.Revision)
	}
	if got := must[access.LoginAttempts](t)(s.GetLoginAttempts(ctx, "alice")); got.Failures != 2 || got.Revision != second.Revision {
		t.Fatalf("get = %+v, want the second update", got)
	}
	if evs := must[[]access.AuditEvent](t)(s.ListAudit(ctx, access.AuditFilter{})); len(evs) != 2 {
		t.Fatalf("audit = %+v, want the two events written with the updates", evs)
	}

	// The lease keeps the record at least as long as asked, plus a minute.
	resp := must[*clientv3.GetResponse](t)(s.Client().Get(ctx, s.Prefix()+"loginattempts/alice"))
	if len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
		t.Fatalf("login attempts key %v has no lease", resp.Kvs)
	}
	ttl := must[*clientv3.LeaseTimeToLiveResponse](t)(s.Client().TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)))
	if want := int64((16 * time.Minute).Seconds()); ttl.TTL < want-5 || ttl.TTL > want+3*60 {
		t.Fatalf("lease TTL %ds, want about %ds", ttl.TTL, want)
	}

	// fn's error aborts without writing; fn may not move the record.
	boom := errors.New("boom")
	_, err = s.UpdateLoginAttempts(ctx, "alice", func(*access.LoginAttempts) (time.Duration, []access.AuditEvent, error) { return 0, nil, boom })
	wantErr(t, err, boom, "")
	_, err = s.UpdateLoginAttempts(ctx, "alice", func(a *access.LoginAttempts) (time.Duration, []access.AuditEvent, error) {
		a.User = "bob"
		return time.Minute, nil, nil
	})
	wantErr(t, err, access.ErrInvalid, "")
	_, err = s.UpdateLoginAttempts(ctx, "../alice", fail(time.Minute))
	wantErr(t, err, access.ErrInvalid, "")
	if got := must[access.LoginAttempts](t)(s.GetLoginAttempts(ctx, "alice")); got.Revision != second.Revision {
		t.Fatalf("refused updates wrote: %+v", got)
	}

	noErr(t, s.DeleteLoginAttempts(ctx, "alice", ev("login.unlock", "admin")))
	wantErr(t, s.DeleteLoginAttempts(ctx, "alice"), access.ErrNotFound, "")
	_, err = s.GetLoginAttempts(ctx, "alice")
	wantErr(t, err, access.ErrNotFound, "")
}

// TestConcurrentLoginFailuresAllCounted: twenty writers at once on one
// name, the first of them creating the record; none is lost.
func TestConcurrentLoginFailuresAllCounted(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	const writers = 20
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range writers {
		wg.Go(func() {
			<-start
			if _, err := s.UpdateLoginAttempts(ctx, "mallory", fail(time.Minute)); err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	if got := must[access.LoginAttempts](t)(s.GetLoginAttempts(ctx, "mallory")); got.Failures != writers {
		t.Fatalf("failures = %d, want %d", got.Failures, writers)
	}
}

var _ access.LoginAttemptStore = (*store.Store)(nil)
