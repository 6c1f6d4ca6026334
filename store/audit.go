package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse-dev/gatehouse/access"
)

// auditKeyTime is the fixed-width key part that makes key order time order.
func auditKeyTime(t time.Time) string {
	n := t.UnixNano()
	if t.Before(time.Unix(0, 0)) {
		n = 0
	}
	return fmt.Sprintf("%020d", n)
}

// auditOps returns the puts of events, filling ID and Time when empty. The
// caller's slice is not modified.
func (s *Store) auditOps(events []access.AuditEvent) ([]clientv3.Op, error) {
	ops := make([]clientv3.Op, 0, len(events))
	now := time.Now().UTC()
	for _, ev := range events {
		if ev.ID == "" {
			ev.ID = uuid.NewString()
		}
		if ev.Time.IsZero() {
			ev.Time = now
		}
		if strings.ContainsAny(ev.ID, "/\x00") {
			return nil, fmt.Errorf("audit event id %q: must not contain \"/\": %w", ev.ID, access.ErrInvalid)
		}
		val, err := encode(ev)
		if err != nil {
			return nil, fmt.Errorf("audit event %s: %w", ev.Type, err)
		}
		ops = append(ops, clientv3.OpPut(s.key(keyAudit, auditKeyTime(ev.Time), "-", ev.ID), val))
	}
	return ops, nil
}

// AppendAudit implements access.AuditLog: all events in one transaction.
func (s *Store) AppendAudit(ctx context.Context, events ...access.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	ops, err := s.auditOps(events)
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	resp, err := s.txn(ctx, "append audit", nil, ops)
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return fmt.Errorf("append audit: %w", access.ErrConflict)
	}
	return nil
}

// auditPage is how many events ListAudit reads per round trip.
const auditPage = 500

// ListAudit implements access.AuditLog. Since (inclusive) and Until
// (exclusive) bound the key range read, so a narrow window does not scan
// the whole log; the other filters apply while paging through it, all
// pages at the revision of the first. With Limit, it returns the oldest
// Limit matches, so callers page forward with Since.
func (s *Store) ListAudit(ctx context.Context, f access.AuditFilter) ([]access.AuditEvent, error) {
	base := s.key(keyAudit)
	start, end := base, clientv3.GetPrefixRangeEnd(base)
	if !f.Since.IsZero() {
		start = base + auditKeyTime(f.Since)
	}
	if !f.Until.IsZero() {
		end = base + auditKeyTime(f.Until)
	}
	typePrefix, typeIsPrefix := strings.CutSuffix(f.Type, "*")

	var out []access.AuditEvent
	var rev int64
	for start < end {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(auditPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.get(ctx, "list audit", start, opts...)
		if err != nil {
			return nil, err
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			var ev access.AuditEvent
			if err := decode(kv, &ev); err != nil {
				// One damaged entry must not hide the rest of the log.
				s.log.Warn("skipping undecodable audit event", "key", string(kv.Key), "err", err)
				continue
			}
			switch {
			case f.Type != "" && typeIsPrefix && !strings.HasPrefix(ev.Type, typePrefix),
				f.Type != "" && !typeIsPrefix && ev.Type != f.Type,
				f.RequestID != "" && ev.RequestID != f.RequestID,
				f.Actor != "" && ev.Actor != f.Actor:
				continue
			}
			out = append(out, ev)
			if f.Limit > 0 && len(out) >= f.Limit {
				return out, nil
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	return out, nil
}
