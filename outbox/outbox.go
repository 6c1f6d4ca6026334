// Package outbox delivers the side effects that state changes write into
// the etcd outbox in their own transaction: PagerDuty incidents now, chat
// cards and DMs later. One worker per platform runs on the replica that
// holds that platform's etcd election, so replicas do not deliver twice;
// delivery is at least once, and each message's ID is the idempotency key
// the platform sees, so a redelivery finds the first one.
package outbox

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/metrics"
)

// Backoff bounds. A platform outage delays delivery; it never drops a
// message.
const (
	minBackoff   = time.Second
	maxBackoff   = 5 * time.Minute
	pollInterval = 500 * time.Millisecond
)

// ErrPermanent marks a delivery error no retry can fix (an unknown channel,
// a revoked token scope): the message is dropped and the failure audited,
// instead of being retried forever.
var ErrPermanent = errors.New("permanent delivery failure")

// ErrSkip says a message had nothing to deliver (a DM to a user with no
// account on the platform): it is removed and audited as skipped, not as
// delivered.
var ErrSkip = errors.New("nothing to deliver")

// RetryAfter is implemented by delivery errors that carry the platform's
// own wait (HTTP 429 Retry-After).
type RetryAfter interface {
	RetryAfter() time.Duration
}

// Worker delivers one platform's messages.
type Worker struct {
	Store    access.OutboxStore
	Platform string
	// Deliver sends one message; an error means try again later.
	Deliver func(ctx context.Context, m access.OutboxMessage) error
	Log     *slog.Logger
	Now     func() time.Time
	// Wake, when set, signals new messages (store.WatchOutbox), so delivery
	// starts at once; the poll remains for retries that come due.
	Wake <-chan struct{}
	// WriteAhead says which messages must have their attempt recorded
	// before Deliver is called: those whose delivery creates something
	// (a post) that a redelivery must look for instead of creating again.
	// A worker that dies mid-delivery then leaves Attempts > 0 behind, and
	// the next delivery knows to look. Messages whose delivery is
	// idempotent (an edit) skip the extra write.
	WriteAhead func(access.OutboxMessage) bool
	// Metrics counts deliveries and reports the backlog; nil: none.
	Metrics *metrics.Metrics
}

// RunOnce delivers every due message once, oldest first, and reports how
// many were delivered. Messages that fail get their next attempt pushed
// back.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	now := w.now()
	msgs, err := w.Store.ListOutbox(ctx, w.Platform)
	if err != nil {
		return 0, err
	}
	w.reportBacklog(msgs, now)
	delivered := 0
	for _, m := range msgs {
		if ctx.Err() != nil {
			return delivered, ctx.Err()
		}
		if m.NextAttempt.After(now) {
			continue
		}
		// Deliver sees the attempts made before this one; the store
		// already counts this one when WriteAhead asks for it.
		stored := m
		if w.WriteAhead != nil && w.WriteAhead(m) {
			started := m
			started.Attempts++
			var err error
			if stored, err = w.Store.UpdateOutbox(ctx, started); err != nil {
				if errors.Is(err, access.ErrConflict) {
					continue // delivered or updated meanwhile
				}
				return delivered, err
			}
		}
		err := w.Deliver(ctx, m)
		if errors.Is(err, ErrSkip) {
			ev := access.AuditEvent{Time: now, Type: "notify." + w.Platform, Actor: "system", RequestID: m.RequestID, Outcome: "skipped",
				Source: "outbox", Message: err.Error(), Fields: map[string]any{"kind": m.Kind, "target": m.Target, "outbox_id": m.ID}}
			if err := w.Store.DeleteOutbox(ctx, stored, ev); err != nil && !errors.Is(err, access.ErrNotFound) {
				return delivered, err
			}
			w.Metrics.OutboxDelivery(w.Platform, metrics.OutboxSkipped)
			continue
		}
		if errors.Is(err, ErrPermanent) {
			w.log().Error("outbox delivery failed for good; dropping the message", "platform", w.Platform, "id", m.ID, "kind", m.Kind, "request", m.RequestID, "err", err)
			ev := access.AuditEvent{Time: now, Type: "notify." + w.Platform, Actor: "system", RequestID: m.RequestID, Outcome: "failure",
				Source: "outbox", Message: err.Error(), Fields: map[string]any{"kind": m.Kind, "target": m.Target, "outbox_id": m.ID, "attempts": m.Attempts + 1}}
			if err := w.Store.DeleteOutbox(ctx, stored, ev); err != nil && !errors.Is(err, access.ErrNotFound) {
				return delivered, err
			}
			w.Metrics.OutboxDelivery(w.Platform, metrics.OutboxDropped)
			continue
		}
		if err != nil {
			failed := stored
			failed.Attempts = m.Attempts + 1
			failed.LastError = err.Error()
			failed.NextAttempt = now.Add(backoff(failed.Attempts, err))
			w.log().Warn("outbox delivery failed; will retry", "platform", w.Platform, "id", m.ID, "attempts", failed.Attempts, "next", failed.NextAttempt, "err", err)
			if _, uerr := w.Store.UpdateOutbox(ctx, failed); uerr != nil && !errors.Is(uerr, access.ErrConflict) {
				return delivered, uerr
			}
			w.Metrics.OutboxDelivery(w.Platform, metrics.OutboxRetried)
			continue
		}
		ev := access.AuditEvent{Time: now, Type: "notify." + w.Platform, Actor: "system", RequestID: m.RequestID, Outcome: "success",
			Source: "outbox", Fields: map[string]any{"kind": m.Kind, "target": m.Target, "outbox_id": m.ID, "attempts": m.Attempts + 1}}
		if err := w.Store.DeleteOutbox(ctx, stored, ev); err != nil && !errors.Is(err, access.ErrNotFound) {
			return delivered, err
		}
		w.Metrics.OutboxDelivery(w.Platform, metrics.OutboxDelivered)
		delivered++
	}
	return delivered, nil
}

// reportBacklog records how many messages wait and since when.
func (w *Worker) reportBacklog(msgs []access.OutboxMessage, now time.Time) {
	if w.Metrics == nil {
		return
	}
	var oldest time.Duration
	for _, m := range msgs {
		oldest = max(oldest, now.Sub(m.Created))
	}
	w.Metrics.OutboxBacklog(w.Platform, len(msgs), oldest)
}

// Run delivers until ctx ends (call it under the platform's election).
func (w *Worker) Run(ctx context.Context) {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	// Another replica reports the backlog once it leads.
	defer w.Metrics.OutboxStopped(w.Platform)
	for {
		if _, err := w.RunOnce(ctx); err != nil && ctx.Err() == nil {
			w.log().Warn("outbox pass failed", "platform", w.Platform, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case _, ok := <-w.Wake:
			if !ok {
				w.Wake = nil // watch ended with ctx; keep polling until then
			}
		}
	}
}

func backoff(attempts int, err error) time.Duration {
	var ra RetryAfter
	if errors.As(err, &ra) && ra.RetryAfter() > 0 {
		return min(ra.RetryAfter(), maxBackoff)
	}
	d := minBackoff << min(attempts-1, 20)
	return min(d, maxBackoff)
}

func (w *Worker) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

func (w *Worker) log() *slog.Logger {
	if w.Log != nil {
		return w.Log
	}
	return slog.Default()
}
