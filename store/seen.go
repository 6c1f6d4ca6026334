package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// keySeen holds inbound request ids (chat interactions) until their
// signatures expire, so that every replica refuses a replay, not only the
// one that saw the original.
const keySeen = "seen/"

// seenBucket is the granularity of the cleanup leases: one lease per
// bucket of expiries, not one per request.
const seenBucket = time.Minute

// seenLeases hands out the lease of an expiry bucket, granted once.
type seenLeases struct {
	mu     sync.Mutex
	leases map[int64]clientv3.LeaseID // bucket end (unix seconds) → lease
}

// RememberRequest records key until until and reports whether it is new.
// A key already recorded (by any replica) and not yet expired is not new.
// The record is kept by a lease that outlives until by at most a bucket
// and a minute; whether the key is still held is decided by its presence,
// which the lease only ever extends, never shortens.
func (s *Store) RememberRequest(ctx context.Context, key string, until time.Time) (bool, error) {
	sum := sha256.Sum256([]byte(key))
	k := s.key(keySeen, hex.EncodeToString(sum[:]))
	for attempt := 0; ; attempt++ {
		lease, err := s.seenLease(ctx, until)
		if err != nil {
			return false, err
		}
		resp, err := s.txn(ctx, "remember request", []clientv3.Cmp{absent(k)}, []clientv3.Op{clientv3.OpPut(k, "", clientv3.WithLease(lease))})
		if errors.Is(err, rpctypes.ErrLeaseNotFound) && attempt == 0 {
			s.forgetSeenLease(lease) // expired or revoked under us: grant anew
			continue
		}
		if err != nil {
			return false, err
		}
		return resp.Succeeded, nil
	}
}

func (s *Store) forgetSeenLease(id clientv3.LeaseID) {
	s.seen.mu.Lock()
	defer s.seen.mu.Unlock()
	for b, l := range s.seen.leases {
		if l == id {
			delete(s.seen.leases, b)
		}
	}
}

// seenLease returns the lease of until's bucket, granting it the first
// time: it lives until the bucket's end plus a minute.
func (s *Store) seenLease(ctx context.Context, until time.Time) (clientv3.LeaseID, error) {
	end := until.Truncate(seenBucket).Add(seenBucket).Unix()
	s.seen.mu.Lock()
	defer s.seen.mu.Unlock()
	now := time.Now()
	if s.seen.leases == nil {
		s.seen.leases = map[int64]clientv3.LeaseID{}
	}
	for b := range s.seen.leases {
		if b+int64(seenBucket.Seconds()) < now.Unix() {
			delete(s.seen.leases, b) // expired with its lease
		}
	}
	if id, ok := s.seen.leases[end]; ok {
		return id, nil
	}
	ttl := end - now.Unix() + int64(seenBucket.Seconds())
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	g, err := s.client.Grant(octx, max(ttl, 1))
	if err != nil {
		return 0, s.wrap(ctx, "grant replay lease", err)
	}
	s.seen.leases[end] = g.ID
	return g.ID, nil
}
