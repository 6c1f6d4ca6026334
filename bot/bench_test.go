package bot_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/bot"
	"github.com/gatehouse-dev/gatehouse/outbox"
)

// notifyingRecorder reports each DM as it is sent.
type notifyingRecorder struct {
	*recorder
	dm chan string
}

func (n *notifyingRecorder) SendDM(ctx context.Context, user, text string, c *bot.Card, p bot.Post) (bot.MessageRef, error) {
	ref, err := n.recorder.SendDM(ctx, user, text, c, p)
	n.dm <- c.RequestID
	return ref, err
}

// BenchmarkApprovalToDM measures, through real etcd and the outbox worker
// woken by its watch, the time from the last approving click (bot.Review
// returns) to the requester's DM, the card having been edited just before.
// The platform is in memory: this is Gatehouse's own share of the latency.
func BenchmarkApprovalToDM(b *testing.B) {
	w := newWorld(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &notifyingRecorder{recorder: newRecorder(bot.Slack), dm: make(chan string, 16)}
	d := &bot.Deliverer{Store: w.c.Store, Platform: rec, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	worker := &outbox.Worker{Store: w.c.Store, Platform: bot.Slack, Deliver: d.Deliver, Wake: w.c.Store.WatchOutbox(ctx, bot.Slack)}
	go worker.Run(ctx)

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		rep := w.bot.Command(ctx, aliceSlack, "request dba for 1h because bench")
		if rep.Error {
			b.Fatal(rep.Text)
		}
		id := rep.Card.RequestID
		waitPosted(b, rec.recorder, id)
		b.StartTimer()
		start := time.Now()
		if rep := w.bot.Review(ctx, bobSlack, id, access.VerdictApprove, ""); rep.Error {
			b.Fatal(rep.Text)
		}
		for got := range rec.dm {
			if got == id {
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

func waitPosted(b *testing.B, r *recorder, id string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range r.channel("access-requests") {
			if m.card.RequestID == id {
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
	b.Fatalf("card of %s never posted", id)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(p(0.5), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
}
