package chatops_test

import (
	"context"
	"slices"
	"sync"
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

// BenchmarkSlashCommandAck measures what each platform waits for, through
// accessd's own routes with everything real behind them (the replay record
// in etcd, the bot core, the service): each iteration is a burst of 50
// signed `/access request dba for 1h because bench` sent at once, and each
// command's time from sending to the HTTP answer is recorded; between
// bursts the background work (replies, cards) drains, untimed. Slack and
// Discord answer before the work (the reply follows via response_url or
// the deferred message); Mattermost answers with the result itself, so
// its figure includes creating the request.
func BenchmarkSlashCommandAck(b *testing.B) {
	w, _ := newChatWorld(b, true)
	send := map[string]func() (int, error){
		bot.Slack: func() (int, error) {
			status, _, err := w.slack.SlashCommand(w.hooks+"/v1/hooks/slack/commands", w.alice, "request dba for 1h because bench")
			return status, err
		},
		bot.Discord: func() (int, error) {
			status, _, err := w.discord.SlashCommand(w.hooks+"/v1/hooks/discord/interactions", w.aliceDiscord, "request",
				map[string]any{"roles": "dba", "duration": "1h", "reason": "bench"})
			return status, err
		},
		bot.Mattermost: func() (int, error) {
			status, _, err := w.mm.SlashCommand(w.hooks+"/v1/hooks/mattermost/commands", w.aliceMM, "request dba for 1h because bench")
			return status, err
		},
	}
	ctx := context.Background()
	drained := func() {
		for {
			total := 0
			for _, p := range bot.Platforms {
				left, err := w.c.Store.ListOutbox(ctx, p)
				if err != nil {
					b.Fatal(err)
				}
				total += len(left)
			}
			if total == 0 {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for _, platform := range bot.Platforms {
		b.Run(platform, func(b *testing.B) {
			const burst = 50
			lat := make([]time.Duration, 0, b.N*burst)
			var mu sync.Mutex
			b.ResetTimer()
			for range b.N {
				var wg sync.WaitGroup
				for range burst {
					wg.Go(func() {
						start := time.Now()
						status, err := send[platform]()
						d := time.Since(start)
						if err != nil || status != 200 {
							b.Errorf("command: %d %v", status, err)
							return
						}
						mu.Lock()
						lat = append(lat, d)
						mu.Unlock()
					})
				}
				wg.Wait()
				b.StopTimer()
				drained()
				time.Sleep(50 * time.Millisecond) // replies after the ack
				b.StartTimer()
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[(len(lat)-1)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
