package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse-dev/gatehouse/access"
)

func requestWhat(id string) string { return fmt.Sprintf("request %q", id) }

// CreateRequest implements access.RequestStore.
func (s *Store) CreateRequest(ctx context.Context, r access.Request, events ...access.AuditEvent) (access.Request, error) {
	return s.CreateRequestFx(ctx, r, access.Effects{Audit: events})
}

// CreateRequestFx implements access.RequestStore.
func (s *Store) CreateRequestFx(ctx context.Context, r access.Request, fx access.Effects) (access.Request, error) {
	if err := checkName("request", r.ID); err != nil {
		return r, err
	}
	r.Revision = 0
	rev, err := s.createObjFx(ctx, requestWhat(r.ID), s.key(keyRequests, r.ID), r, nil, fx)
	r.Revision = rev
	return r, err
}

// GetRequest implements access.RequestStore.
func (s *Store) GetRequest(ctx context.Context, id string) (access.Request, error) {
	var r access.Request
	if err := checkName("request", id); err != nil {
		return r, err
	}
	rev, err := s.getObj(ctx, requestWhat(id), s.key(keyRequests, id), &r)
	r.Revision = rev
	return r, err
}

// ListRequests implements access.RequestStore; sorted by id.
func (s *Store) ListRequests(ctx context.Context) ([]access.Request, error) {
	var out []access.Request
	_, err := s.listObjs(ctx, "requests", s.key(keyRequests), func(rev int64, dec func(any) error) error {
		var r access.Request
		if err := dec(&r); err != nil {
			return err
		}
		r.Revision = rev
		out = append(out, r)
		return nil
	})
	return out, err
}

// UpdateRequest implements access.RequestStore: read, fn on a freshly
// decoded copy, then one transaction comparing the mod revision that was
// read. A lost race re-runs fn on the value the winner wrote, which the
// failed transaction returns, so a retry costs one round trip.
func (s *Store) UpdateRequest(ctx context.Context, id string, fn func(*access.Request) ([]access.AuditEvent, error)) (access.Request, error) {
	return s.UpdateRequestFx(ctx, id, func(r *access.Request) (access.Effects, error) {
		events, err := fn(r)
		return access.Effects{Audit: events}, err
	})
}

// UpdateRequestFx implements access.RequestStore: UpdateRequest whose fn
// also returns outbox messages, written in the same transaction.
func (s *Store) UpdateRequestFx(ctx context.Context, id string, fn func(*access.Request) (access.Effects, error)) (access.Request, error) {
	what := requestWhat(id)
	if err := checkName("request", id); err != nil {
		return access.Request{}, err
	}
	key := s.key(keyRequests, id)
	resp, err := s.get(ctx, "update "+what, key)
	if err != nil {
		return access.Request{}, err
	}
	kvs := resp.Kvs
	for attempt := range maxAttempts {
		if attempt > 0 {
			// A short random pause spreads out a crowd of writers on one
			// request, so fewer of them lose each round.
			t := time.NewTimer(rand.N(time.Duration(min(attempt, 20)) * time.Millisecond))
			select {
			case <-ctx.Done():
				t.Stop()
				return access.Request{}, fmt.Errorf("update %s: %w", what, ctx.Err())
			case <-t.C:
			}
		}
		if len(kvs) == 0 {
			return access.Request{}, fmt.Errorf("%s: %w", what, access.ErrNotFound)
		}
		kv := kvs[0]
		r, before, err := decodeForUpdate(kv)
		if err != nil {
			return access.Request{}, fmt.Errorf("update %s: %w", what, err)
		}
		fx, err := fn(&r)
		if err != nil {
			return access.Request{}, err
		}
		if r.ID != id {
			return access.Request{}, fmt.Errorf("update %s: fn changed the id to %q: %w", what, r.ID, access.ErrInvalid)
		}
		r.Revision = 0
		val, err := encode(r)
		if err != nil {
			return access.Request{}, fmt.Errorf("update %s: %w", what, err)
		}
		if val == before && len(fx.Audit) == 0 && len(fx.Outbox) == 0 {
			// Nothing changed: no write, no watch event.
			r.Revision = kv.ModRevision
			return r, nil
		}
		ops, err := s.effectOps(fx)
		if err != nil {
			return access.Request{}, fmt.Errorf("update %s: %w", what, err)
		}
		tresp, err := s.txn(ctx, "update "+what, []clientv3.Cmp{unchanged(key, kv.ModRevision)},
			append([]clientv3.Op{clientv3.OpPut(key, val)}, ops...), clientv3.OpGet(key))
		if err != nil {
			return access.Request{}, err
		}
		if tresp.Succeeded {
			r.Revision = tresp.Header.Revision
			return r, nil
		}
		kvs = tresp.Responses[0].GetResponseRange().GetKvs()
	}
	return access.Request{}, fmt.Errorf("update %s: changed by others %d times in a row, gave up: %w", what, maxAttempts, access.ErrConflict)
}

// decodeRequest decodes a stored request and sets its Revision.
func decodeRequest(kv *mvccpb.KeyValue) (access.Request, error) {
	var r access.Request
	err := decode(kv, &r)
	r.Revision = kv.ModRevision
	return r, err
}

// decodeForUpdate also returns the request's canonical encoding, against
// which UpdateRequest detects a no-op.
func decodeForUpdate(kv *mvccpb.KeyValue) (access.Request, string, error) {
	r, err := decodeRequest(kv)
	if err != nil {
		return r, "", err
	}
	r.Revision = 0
	canon, err := encode(r)
	r.Revision = kv.ModRevision
	return r, canon, err
}
