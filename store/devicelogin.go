package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse-dev/gatehouse/access"
)

const keyDeviceLogins = "devicelogins/"

// deviceLoginGrace keeps an expired login readable a little longer, so a
// late redeem is told "expired" rather than "unknown code".
const deviceLoginGrace = time.Minute

func (s *Store) deviceLoginKey(code string) (string, error) {
	if code == "" || strings.ContainsAny(code, "/\x00") {
		return "", fmt.Errorf("device login code %q: %w", code, access.ErrInvalid)
	}
	return s.key(keyDeviceLogins, code), nil
}

// CreateDeviceLogin implements access.DeviceLoginStore. The key is
// attached to a lease only to clean it up: whether a code is still valid
// is decided by its Expires field, never by the lease.
func (s *Store) CreateDeviceLogin(ctx context.Context, d access.DeviceLogin, events ...access.AuditEvent) error {
	key, err := s.deviceLoginKey(d.Code)
	if err != nil {
		return err
	}
	d.Revision = 0
	val, err := encode(d)
	if err != nil {
		return err
	}
	ops, err := s.auditOps(events)
	if err != nil {
		return err
	}
	// The lease runs from now for the login's own lifetime: its times come
	// from the service's clock, which need not be this host's.
	life := d.Expires.Sub(d.Created)
	if d.Created.IsZero() {
		life = time.Until(d.Expires)
	}
	ttl := int64((life + deviceLoginGrace).Seconds()) + 1
	octx, cancel := s.opCtx(ctx)
	lease, err := s.client.Grant(octx, max(ttl, 1))
	cancel()
	if err != nil {
		return s.wrap(ctx, "create device login", err)
	}
	resp, err := s.txn(ctx, "create device login", []clientv3.Cmp{absent(key)},
		append([]clientv3.Op{clientv3.OpPut(key, val, clientv3.WithLease(lease.ID))}, ops...))
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return fmt.Errorf("device login code: %w", access.ErrAlreadyExists)
	}
	return nil
}

// GetDeviceLogin implements access.DeviceLoginStore.
func (s *Store) GetDeviceLogin(ctx context.Context, code string) (access.DeviceLogin, error) {
	var d access.DeviceLogin
	key, err := s.deviceLoginKey(code)
	if err != nil {
		return d, err
	}
	rev, err := s.getObj(ctx, "device login", key, &d)
	d.Revision = rev
	return d, err
}

// ListDeviceLogins implements access.DeviceLoginStore.
func (s *Store) ListDeviceLogins(ctx context.Context) ([]access.DeviceLogin, error) {
	var out []access.DeviceLogin
	_, err := s.listObjs(ctx, "device logins", s.key(keyDeviceLogins), func(rev int64, decode func(any) error) error {
		var d access.DeviceLogin
		if err := decode(&d); err != nil {
			return err
		}
		d.Revision = rev
		out = append(out, d)
		return nil
	})
	return out, err
}

// UpdateDeviceLogin implements access.DeviceLoginStore. The lease is kept.
func (s *Store) UpdateDeviceLogin(ctx context.Context, d access.DeviceLogin, events ...access.AuditEvent) (access.DeviceLogin, error) {
	key, err := s.deviceLoginKey(d.Code)
	if err != nil {
		return d, err
	}
	rev := d.Revision
	d.Revision = 0
	val, err := encode(d)
	if err != nil {
		return d, err
	}
	ops, err := s.auditOps(events)
	if err != nil {
		return d, err
	}
	resp, err := s.txn(ctx, "update device login", []clientv3.Cmp{unchanged(key, rev)},
		append([]clientv3.Op{clientv3.OpPut(key, val, clientv3.WithIgnoreLease())}, ops...))
	if err != nil {
		return d, err
	}
	if !resp.Succeeded {
		return d, fmt.Errorf("device login changed or gone: %w", access.ErrConflict)
	}
	d.Revision = resp.Header.Revision
	return d, nil
}

// DeleteDeviceLogin implements access.DeviceLoginStore.
func (s *Store) DeleteDeviceLogin(ctx context.Context, d access.DeviceLogin, events ...access.AuditEvent) error {
	key, err := s.deviceLoginKey(d.Code)
	if err != nil {
		return err
	}
	ops, err := s.auditOps(events)
	if err != nil {
		return err
	}
	resp, err := s.txn(ctx, "redeem device login", []clientv3.Cmp{unchanged(key, d.Revision)}, append([]clientv3.Op{clientv3.OpDelete(key)}, ops...))
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return fmt.Errorf("device login already used or gone: %w", access.ErrConflict)
	}
	return nil
}
