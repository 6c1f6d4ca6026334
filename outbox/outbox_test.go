package outbox

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

type rateLimited struct{ wait time.Duration }

func (e rateLimited) Error() string             { return "429 Too Many Requests" }
func (e rateLimited) RetryAfter() time.Duration { return e.wait }

func TestBackoff(t *testing.T) {
	tests := []struct {
		name     string
		attempts int
		err      error
		want     time.Duration
	}{
		{"first failure", 1, errors.New("500"), time.Second},
		{"doubles", 4, errors.New("500"), 8 * time.Second},
		{"capped", 30, errors.New("500"), maxBackoff},
		{"honours Retry-After", 1, rateLimited{42 * time.Second}, 42 * time.Second},
		{"Retry-After capped too", 1, rateLimited{time.Hour}, maxBackoff},
	}
	for _, tt := range tests {
		if got := backoff(tt.attempts, tt.err); got != tt.want {
			t.Errorf("%s: backoff = %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestWorkerDeliversInOrderAndRetries runs the worker against real etcd:
// messages written with a request are delivered oldest first; a failing
// one waits for its backoff and does not block the others.
func TestWorkerDeliversInOrderAndRetries(t *testing.T) {
	st := storetest.Embedded(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	req := access.Request{ID: "r1", User: "alice", State: access.StatePending, Created: now, PendingExpires: now.Add(time.Hour)}
	fx := access.Effects{Outbox: []access.OutboxMessage{
		{ID: "a", Platform: "pagerduty", Kind: "incident", Target: "S1", Created: now},
		{ID: "b", Platform: "pagerduty", Kind: "incident", Target: "S2", Created: now.Add(time.Second)},
		{ID: "c", Platform: "slack", Kind: "card", Created: now},
	}}
	if _, err := st.CreateRequestFx(ctx, req, fx); err != nil {
		t.Fatal(err)
	}
	var sent []string
	fail := map[string]bool{"a": true}
	w := &Worker{Store: st, Platform: "pagerduty", Now: func() time.Time { return now },
		Deliver: func(_ context.Context, m access.OutboxMessage) error {
			if fail[m.ID] {
				return rateLimited{10 * time.Second}
			}
			sent = append(sent, m.ID)
			return nil
		}}
	if n, err := w.RunOnce(ctx); err != nil || n != 1 || len(sent) != 1 || sent[0] != "b" {
		t.Fatalf("first pass: %d %v %v", n, sent, err)
	}
	fail["a"] = false
	now = now.Add(5 * time.Second)
	if n, _ := w.RunOnce(ctx); n != 0 {
		t.Fatal("retried before Retry-After")
	}
	now = now.Add(6 * time.Second)
	if n, err := w.RunOnce(ctx); err != nil || n != 1 {
		t.Fatalf("retry: %d %v", n, err)
	}
	if left, _ := st.ListOutbox(ctx, "pagerduty"); len(left) != 0 {
		t.Fatalf("left in the pagerduty outbox: %+v", left)
	}
	if left, _ := st.ListOutbox(ctx, "slack"); len(left) != 1 {
		t.Fatalf("another platform's message was touched: %+v", left)
	}
}
