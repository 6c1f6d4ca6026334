package discord

import (
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/gatehouse-dev/gatehouse/bot"
	"github.com/gatehouse-dev/gatehouse/integrations/discord/discordfake"
)

// BenchmarkInteractionAck measures how fast 50 concurrent slash commands
// are acknowledged (signature check, replay cache, DEFERRED answer) while
// the handler works and the @original edits go out behind them (waited
// for between rounds, outside the timer). Discord's
// deadline is 3 s; p50 and p99 are the per-interaction ack latencies as
// discordfake measured them over HTTP.
func BenchmarkInteractionAck(b *testing.B) {
	const concurrent = 50
	e := newTestEnv(b)
	card := pendingCard()
	e.handler.SetReply(bot.Reply{Text: "Request created.", Card: &card})
	var (
		mu        sync.Mutex
		latencies []time.Duration
		tokens    []string
	)
	b.ResetTimer()
	for range b.N {
		var wg sync.WaitGroup
		for i := range concurrent {
			wg.Add(1)
			go func() {
				defer wg.Done()
				u := discordfake.User{ID: alice, Name: "alice", GuildID: testGuild}
				in, err := e.fake.SlashCommandInteraction(u, "request", map[string]any{"roles": "dba", "reason": "bench"})
				if err != nil {
					b.Error(err)
					return
				}
				d, err := e.fake.Deliver(e.hook, in)
				if err != nil || d.Status != http.StatusOK || d.Response.Type != discordgo.InteractionResponseDeferredChannelMessageWithSource {
					b.Errorf("interaction %d: %+v %v", i, d, err)
					return
				}
				mu.Lock()
				latencies = append(latencies, d.Elapsed)
				tokens = append(tokens, d.Token)
				mu.Unlock()
			}()
		}
		wg.Wait()
		// Let the edits finish outside the measurement, so every round
		// starts with nothing in flight.
		b.StopTimer()
		for _, tok := range tokens {
			if _, err := e.fake.WaitOriginal(tok, 10*time.Second); err != nil {
				b.Fatal(err)
			}
		}
		tokens = tokens[:0]
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(latencies)
	if len(latencies) > 0 {
		b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds()), "p99-µs")
	}
}
