package store

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse-dev/gatehouse/access"
)

const keyOutbox = "outbox/"

func (s *Store) outboxKey(m access.OutboxMessage) string {
	return s.key(keyOutbox, m.Platform, "/", m.ID)
}

// effectOps are the puts of the audit events and outbox messages of a
// state change.
func (s *Store) effectOps(fx access.Effects) ([]clientv3.Op, error) {
	ops, err := s.auditOps(fx.Audit)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	for i, m := range fx.Outbox {
		m.Seq = i
		if m.ID == "" {
			m.ID = uuid.NewString()
		}
		if m.Created.IsZero() {
			m.Created = now
		}
		if m.Platform == "" || strings.ContainsAny(m.Platform+m.ID, "/\x00") {
			return nil, fmt.Errorf("outbox message %q on %q: %w", m.ID, m.Platform, access.ErrInvalid)
		}
		m.Revision = 0
		val, err := encode(m)
		if err != nil {
			return nil, fmt.Errorf("outbox message %s: %w", m.ID, err)
		}
		ops = append(ops, clientv3.OpPut(s.outboxKey(m), val))
	}
	return ops, nil
}

// ListOutbox implements access.OutboxStore.
func (s *Store) ListOutbox(ctx context.Context, platform string) ([]access.OutboxMessage, error) {
	var out []access.OutboxMessage
	_, err := s.listObjs(ctx, "outbox "+platform, s.key(keyOutbox, platform, "/"), func(rev int64, dec func(any) error) error {
		var m access.OutboxMessage
		if err := dec(&m); err != nil {
			return err
		}
		m.Revision = rev
		out = append(out, m)
		return nil
	})
	// Oldest first; a transaction's messages in the order it wrote them
	// (etcd lists them by id, which is random).
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].Seq < out[j].Seq
	})
	return out, err
}

// UpdateOutbox implements access.OutboxStore.
func (s *Store) UpdateOutbox(ctx context.Context, m access.OutboxMessage) (access.OutboxMessage, error) {
	key, rev := s.outboxKey(m), m.Revision
	m.Revision = 0
	val, err := encode(m)
	if err != nil {
		return m, err
	}
	resp, err := s.txn(ctx, "update outbox "+m.ID, []clientv3.Cmp{unchanged(key, rev)}, []clientv3.Op{clientv3.OpPut(key, val)})
	if err != nil {
		return m, err
	}
	if !resp.Succeeded {
		return m, fmt.Errorf("outbox message %s changed: %w", m.ID, access.ErrConflict)
	}
	m.Revision = resp.Header.Revision
	return m, nil
}

// DeleteOutbox implements access.OutboxStore.
func (s *Store) DeleteOutbox(ctx context.Context, m access.OutboxMessage, events ...access.AuditEvent) error {
	return s.deleteObj(ctx, "outbox message "+m.ID, s.outboxKey(m), events)
}

// WatchOutbox signals (coalesced) whenever a message of platform is
// written, so the delivery worker starts at once instead of at its next
// poll. The channel closes when ctx ends.
func (s *Store) WatchOutbox(ctx context.Context, platform string) <-chan struct{} {
	out := make(chan struct{}, 1)
	signal := func() bool {
		select {
		case out <- struct{}{}:
		default: // a wake-up is already pending
		}
		return ctx.Err() == nil
	}
	go func() {
		defer close(out)
		s.watchPrefix(ctx, "outbox "+platform, s.key(keyOutbox, platform, "/"), 0,
			func(ev *clientv3.Event) bool {
				if ev.Type != clientv3.EventTypePut || ev.IsModify() {
					return ctx.Err() == nil // deletes and retry bookkeeping
				}
				return signal()
			},
			func([]*mvccpb.KeyValue, int64) bool { return signal() })
	}()
	return out
}
