package mattermost

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkSlashCommand drives /access through the fake Mattermost with 50
// commands in flight, as a busy team would: form POST, token check, team
// check, handler, JSON answer. It reports the latency percentiles a user
// waits for the ephemeral answer (the handler itself answers at once).
func BenchmarkSlashCommand(b *testing.B) {
	const concurrency = 50
	e := newEnv(b)
	hookURL := e.url(CommandsPath)
	var next atomic.Int64
	latencies := make([]time.Duration, b.N)
	var failed atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				start := time.Now()
				status, resp, err := e.mm.SlashCommand(hookURL, e.alice, "ls")
				latencies[i] = time.Since(start)
				if err != nil || status != 200 || resp.Text != "ok" {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d commands failed", n, b.N)
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[min(int(float64(len(latencies))*p), len(latencies)-1)]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
