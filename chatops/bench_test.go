package chatops_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/bot"
	"github.com/gatehouse-dev/gatehouse/service"
)

// BenchmarkOutboxDelivery measures delivery throughput: b.N requests are
// waiting in the outbox (their cards for Slack, Discord and Mattermost)
// when the workers start; the time is until every card is posted and
// recorded. Real etcd, real adapters, the platforms' test servers.
func BenchmarkOutboxDelivery(b *testing.B) {
	w, run := newChatWorld(b, false)
	ids := make([]string, 0, b.N)
	for range b.N {
		ids = append(ids, w.aliceRequests(b))
	}
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	b.Cleanup(run())
	for _, platform := range []string{bot.Slack, bot.Discord, bot.Mattermost} {
		for {
			left, err := w.c.Store.ListOutbox(ctx, platform)
			if err != nil {
				b.Fatal(err)
			}
			if len(left) == 0 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	for _, id := range []string{ids[0], ids[len(ids)-1]} {
		if _, ok := w.slackCard(id); !ok {
			b.Fatalf("card of %s not in Slack", id)
		}
	}
	b.ReportMetric(float64(3*b.N)/elapsed.Seconds(), "cards/s")
}

// BenchmarkClickToDM measures, end to end, the time from the last
// approving click in Slack (signed, through accessd's webhook) to the
// requester's Slack DM, the card edits going out first on the same worker.
func BenchmarkClickToDM(b *testing.B) {
	w, _ := newChatWorld(b, true)
	ctx := context.Background()
	carol, err := w.c.Svc.Caller(ctx, "carol", bot.Mattermost)
	if err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		id := w.aliceRequests(b)
		if _, err := w.c.Svc.Review(ctx, carol, id, service.ReviewInput{Verdict: access.VerdictApprove}); err != nil {
			b.Fatal(err)
		}
		eventually(b, "the card at 1/2", func() bool {
			m, ok := w.slackCard(id)
			return ok && len(m.Buttons) == 2 && m.Edits >= 1
		})
		card, _ := w.slackCard(id)
		b.StartTimer()
		start := time.Now()
		if status, _, err := w.slack.ClickButton(w.hooks+"/v1/hooks/slack/interactions", w.dave, card, bot.ActionApprove); err != nil || status != 200 {
			b.Fatalf("click: %d %v", status, err)
		}
		for len(w.slack.DMs(w.alice.ID)) < i+1 {
			time.Sleep(200 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[(len(lat)-1)*99/100].Microseconds())/1000, "p99-ms")
}
