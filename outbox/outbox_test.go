package outbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/metrics"
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

// TestWorkerMetrics: each attempt is counted by outcome, and the backlog
// a pass found is reported, oldest message's age included.
func TestWorkerMetrics(t *testing.T) {
	st := storetest.Embedded(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	req := access.Request{ID: "r1", User: "alice", State: access.StatePending, Created: now, PendingExpires: now.Add(time.Hour)}
	fx := access.Effects{Outbox: []access.OutboxMessage{
		{ID: "ok", Platform: "slack", Kind: "card", Created: now.Add(-2 * time.Minute)},
		{ID: "skip", Platform: "slack", Kind: "dm", Created: now},
		{ID: "gone", Platform: "slack", Kind: "card", Created: now},
		{ID: "later", Platform: "slack", Kind: "card", Created: now},
	}}
	if _, err := st.CreateRequestFx(ctx, req, fx); err != nil {
		t.Fatal(err)
	}
	m := metrics.New(prometheus.NewRegistry())
	results := map[string]error{
		"skip":  fmt.Errorf("alice has no slack_id: %w", ErrSkip),
		"gone":  fmt.Errorf("channel_not_found: %w", ErrPermanent),
		"later": errors.New("500"),
	}
	w := &Worker{Store: st, Platform: "slack", Now: func() time.Time { return now }, Metrics: m,
		Deliver: func(_ context.Context, msg access.OutboxMessage) error { return results[msg.ID] }}
	if _, err := w.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP gatehouse_outbox_deliveries_total Outbox delivery attempts by platform and outcome: delivered, skipped, dropped (failed for good) or retried.
# TYPE gatehouse_outbox_deliveries_total counter
gatehouse_outbox_deliveries_total{outcome="delivered",platform="slack"} 1
gatehouse_outbox_deliveries_total{outcome="dropped",platform="slack"} 1
gatehouse_outbox_deliveries_total{outcome="retried",platform="slack"} 1
gatehouse_outbox_deliveries_total{outcome="skipped",platform="slack"} 1
# HELP gatehouse_outbox_pending_messages Messages waiting in the outbox, as the platform's delivery worker last saw them (reported by the replica that leads it).
# TYPE gatehouse_outbox_pending_messages gauge
gatehouse_outbox_pending_messages{platform="slack"} 4
# HELP gatehouse_outbox_oldest_pending_seconds Age of the oldest message waiting in the outbox: grows while a platform is down (reported by the replica that leads it).
# TYPE gatehouse_outbox_oldest_pending_seconds gauge
gatehouse_outbox_oldest_pending_seconds{platform="slack"} 120
`
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want),
		"gatehouse_outbox_deliveries_total", "gatehouse_outbox_pending_messages", "gatehouse_outbox_oldest_pending_seconds"); err != nil {
		t.Fatal(err)
	}
	// The next pass finds only the message waiting for its retry.
	if _, err := w.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	want = `
# HELP gatehouse_outbox_pending_messages Messages waiting in the outbox, as the platform's delivery worker last saw them (reported by the replica that leads it).
# TYPE gatehouse_outbox_pending_messages gauge
gatehouse_outbox_pending_messages{platform="slack"} 1
`
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want), "gatehouse_outbox_pending_messages"); err != nil {
		t.Fatal(err)
	}
}
