package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse-dev/gatehouse/access"
)

// keyLoginAttempts holds the failed password logins of each user name
// tried, existing or not (access.LoginAttempts).
const keyLoginAttempts = "loginattempts/"

func loginAttemptsWhat(user string) string { return fmt.Sprintf("login attempts of %q", user) }

// GetLoginAttempts implements access.LoginAttemptStore.
func (s *Store) GetLoginAttempts(ctx context.Context, user string) (access.LoginAttempts, error) {
	var a access.LoginAttempts
	if err := checkName("login attempts", user); err != nil {
		return a, err
	}
	rev, err := s.getObj(ctx, loginAttemptsWhat(user), s.key(keyLoginAttempts, user), &a)
	a.Revision = rev
	return a, err
}

// UpdateLoginAttempts implements access.LoginAttemptStore. Each write
// attaches the record to a cleanup lease shared by every record expiring
// in the same minute (the replay records' buckets, seen.go), so a flood
// of names costs one lease per minute, not one per name.
func (s *Store) UpdateLoginAttempts(ctx context.Context, user string, fn func(*access.LoginAttempts) (time.Duration, []access.AuditEvent, error)) (access.LoginAttempts, error) {
	what := loginAttemptsWhat(user)
	if err := checkName("login attempts", user); err != nil {
		return access.LoginAttempts{}, err
	}
	key := s.key(keyLoginAttempts, user)
	resp, err := s.get(ctx, "update "+what, key)
	if err != nil {
		return access.LoginAttempts{}, err
	}
	kvs := resp.Kvs
	leaseRetried := false
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			// As in UpdateRequest: a short random pause spreads out a
			// crowd of writers on one record.
			t := time.NewTimer(rand.N(time.Duration(min(attempt, 20)) * time.Millisecond))
			select {
			case <-ctx.Done():
				t.Stop()
				return access.LoginAttempts{}, fmt.Errorf("update %s: %w", what, ctx.Err())
			case <-t.C:
			}
		}
		a := access.LoginAttempts{User: user}
		var rev int64 // 0: absent, as etcd reports a missing key's mod revision
		if len(kvs) > 0 {
			if err := decode(kvs[0], &a); err != nil {
				return access.LoginAttempts{}, fmt.Errorf("update %s: %w", what, err)
			}
			rev = kvs[0].ModRevision
		}
		a.Revision = rev
		keep, events, err := fn(&a)
		if err != nil {
			return access.LoginAttempts{}, err
		}
		if a.User != user {
			return access.LoginAttempts{}, fmt.Errorf("update %s: fn changed the user to %q: %w", what, a.User, access.ErrInvalid)
		}
		a.Revision = 0
		val, err := encode(a)
		if err != nil {
			return access.LoginAttempts{}, fmt.Errorf("update %s: %w", what, err)
		}
		ops, err := s.auditOps(events)
		if err != nil {
			return access.LoginAttempts{}, fmt.Errorf("update %s: %w", what, err)
		}
		// A minute more than asked, for clock differences between the
		// service's clock and etcd's lease timer.
		lease, err := s.seenLease(ctx, time.Now().Add(keep+time.Minute))
		if err != nil {
			return access.LoginAttempts{}, err
		}
		tresp, err := s.txn(ctx, "update "+what, []clientv3.Cmp{unchanged(key, rev)},
			append([]clientv3.Op{clientv3.OpPut(key, val, clientv3.WithLease(lease))}, ops...), clientv3.OpGet(key))
		if errors.Is(err, rpctypes.ErrLeaseNotFound) && !leaseRetried {
			s.forgetSeenLease(lease) // expired or revoked under us: grant anew
			leaseRetried = true
			attempt--
			continue
		}
		if err != nil {
			return access.LoginAttempts{}, err
		}
		if tresp.Succeeded {
			a.Revision = tresp.Header.Revision
			return a, nil
		}
		kvs = tresp.Responses[0].GetResponseRange().GetKvs()
	}
	return access.LoginAttempts{}, fmt.Errorf("update %s: changed by others %d times in a row, gave up: %w", what, maxAttempts, access.ErrConflict)
}

// DeleteLoginAttempts implements access.LoginAttemptStore.
func (s *Store) DeleteLoginAttempts(ctx context.Context, user string, events ...access.AuditEvent) error {
	if err := checkName("login attempts", user); err != nil {
		return err
	}
	return s.deleteObj(ctx, loginAttemptsWhat(user), s.key(keyLoginAttempts, user), events)
}
