package store

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse-dev/gatehouse/access"
)

const policyWhat = "policy bundle"

// GetPolicyBundle implements access.PolicyStore.
func (s *Store) GetPolicyBundle(ctx context.Context) (access.PolicyBundle, error) {
	var b access.PolicyBundle
	rev, err := s.getObj(ctx, policyWhat, s.key(keyPolicy), &b)
	b.Revision = rev
	return b, err
}

// PutPolicyBundle implements access.PolicyStore.
func (s *Store) PutPolicyBundle(ctx context.Context, b access.PolicyBundle, events ...access.AuditEvent) (access.PolicyBundle, error) {
	if n := b.Size(); n > access.MaxPolicyBundleBytes {
		return b, fmt.Errorf("%w: policy bundle is %d bytes, at most %d", access.ErrInvalid, n, access.MaxPolicyBundleBytes)
	}
	b.Revision = 0
	rev, err := s.putObj(ctx, policyWhat, s.key(keyPolicy), b, 0, events)
	b.Revision = rev
	return b, err
}

// WatchPolicyBundle implements access.PolicyStore.
func (s *Store) WatchPolicyBundle(ctx context.Context, fromRev int64) <-chan access.PolicyBundle {
	out := make(chan access.PolicyBundle, 1)
	send := func(kv *mvccpb.KeyValue) bool {
		var b access.PolicyBundle
		if err := decode(kv, &b); err != nil {
			s.log.Warn("watch policy bundle: skipping undecodable bundle", "err", err)
			return true
		}
		b.Revision = kv.ModRevision
		select {
		case out <- b:
			return true
		case <-ctx.Done():
			return false
		}
	}
	fromRev = s.fromNow(ctx, s.key(keyPolicy), fromRev)
	go func() {
		defer close(out)
		s.watchPrefix(ctx, "policy bundle", s.key(keyPolicy), fromRev,
			func(ev *clientv3.Event) bool {
				if ev.Type == mvccpb.DELETE {
					return true
				}
				return send(ev.Kv)
			},
			func(kvs []*mvccpb.KeyValue, _ int64) bool {
				for _, kv := range kvs {
					if string(kv.Key) == s.key(keyPolicy) && !send(kv) {
						return false
					}
				}
				return true
			})
	}()
	return out
}
