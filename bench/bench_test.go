// Package bench measures Gatehouse end to end on this machine: through the
// HTTPS API with real TLS and mTLS session certificates, on an embedded
// etcd that fsyncs as in production. Every benchmark reports the median
// and p99 of its operation besides ns/op, and the bare etcd write is
// measured on the same member so our latency can be read as a ratio to it.
//
//	go test -run '^$' -bench . -benchtime 2s ./bench/
package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/internal/testcluster"
)

// latencies collects per-operation durations and reports p50 and p99.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B) {
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	q := func(p float64) float64 {
		return float64(l.d[min(len(l.d)-1, int(p*float64(len(l.d))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}

// BenchmarkEtcdTxn is the baseline: one single-key put transaction on the
// same embedded member, straight through the etcd client.
func BenchmarkEtcdTxn(b *testing.B) {
	c := testcluster.StartDurable(b)
	cli := c.Store.Client()
	ctx := context.Background()
	var lat latencies
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		key := fmt.Sprintf("/bench/txn/%d", i)
		start := time.Now()
		_, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(clientv3.OpPut(key, `{"schema":1}`)).Commit()
		if err != nil {
			b.Fatal(err)
		}
		lat.add(time.Since(start))
	}
	lat.report(b)
}

// BenchmarkCreateRequest is one `access request create --nowait` through
// the API: authentication, role checks, one etcd transaction with its
// audit event.
func BenchmarkCreateRequest(b *testing.B) {
	c := testcluster.StartDurable(b)
	alice, _ := c.Demo()
	ctx := context.Background()
	var lat latencies
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if _, err := alice.CreateRequest(ctx, api.CreateRequest{Roles: []string{"dba"}, Reason: "bench"}); err != nil {
			b.Fatal(err)
		}
		lat.add(time.Since(start))
	}
	lat.report(b)
}

// BenchmarkCreateReviewApproved is the whole happy path: alice creates,
// bob approves, the request is APPROVED.
func BenchmarkCreateReviewApproved(b *testing.B) {
	c := testcluster.StartDurable(b)
	alice, bob := c.Demo()
	ctx := context.Background()
	var lat latencies
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		r, err := alice.CreateRequest(ctx, api.CreateRequest{Roles: []string{"dba"}, Reason: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		r, err = bob.Review(ctx, r.ID, api.ReviewRequest{Verdict: access.VerdictApprove})
		if err != nil || r.State != access.StateApproved {
			b.Fatalf("review: %v %v", r.State, err)
		}
		lat.add(time.Since(start))
	}
	lat.report(b)
}

// BenchmarkConcurrent16 runs create→approve cycles from 16 concurrent
// clients (8 requesters, 8 reviewers' worth of goroutines) and reports
// completed cycles per second.
func BenchmarkConcurrent16(b *testing.B) {
	c := testcluster.StartDurable(b)
	c.Apply(testcluster.DemoRoles)
	const clients = 16
	type pair struct{ alice, bob *api.Client }
	pairs := make(chan pair, clients)
	for i := range clients {
		pairs <- pair{c.Login(fmt.Sprintf("req%02d", i), "requester"), c.Login(fmt.Sprintf("rev%02d", i), "reviewer")}
	}
	ctx := context.Background()
	var lat latencies
	b.SetParallelism((clients + 1) / max(1, testingProcs()))
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		p := <-pairs
		for pb.Next() {
			t0 := time.Now()
			r, err := p.alice.CreateRequest(ctx, api.CreateRequest{Roles: []string{"dba"}, Reason: "bench"})
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := p.bob.Review(ctx, r.ID, api.ReviewRequest{Verdict: access.VerdictApprove}); err != nil {
				b.Error(err)
				return
			}
			lat.add(time.Since(t0))
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "cycles/s")
	b.ReportMetric(2*float64(b.N)/time.Since(start).Seconds(), "writes/s")
	lat.report(b)
}

// BenchmarkSearch measures `access request search` through the API over
// 10,000 and 100,000 nodes, with the caller's search_as_roles checked on
// every candidate. The index is loaded directly (the etcd watch that
// feeds it in production is tested in inventory and server), by puts: each
// entry is then its own allocation, as after long churn, the harder case
// for the collector and the scan than a freshly listed index. The labels
// query over 100,000 nodes returns the full 1,000-result cap.
func BenchmarkSearch(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			c := testcluster.StartDurable(b)
			alice, _ := c.Demo()
			envs := []string{"prod", "staging", "dev", "secret"}
			for i := range n {
				c.Index.Apply(access.ResourceEvent{Type: access.EventPut, Resource: access.Resource{
					Kind: access.KindNode, Version: "v1",
					Metadata: access.Metadata{Name: fmt.Sprintf("node-%06d", i), Labels: map[string]string{"env": envs[i%len(envs)], "team": fmt.Sprintf("t%d", i%50)}},
					Spec:     access.ResourceSpec{Hostname: fmt.Sprintf("node-%06d.example.internal", i)},
				}})
			}
			ctx := context.Background()
			queries := []struct {
				name   string
				words  string
				labels map[string]string
			}{
				{"words", "node-0042", nil},
				{"labels", "", map[string]string{"env": "prod", "team": "t8"}},
			}
			for _, q := range queries {
				b.Run(q.name, func(b *testing.B) {
					var lat latencies
					hits := 0
					for b.Loop() {
						start := time.Now()
						found, err := alice.Search(ctx, access.KindNode, q.words, q.labels)
						if err != nil || len(found) == 0 {
							b.Fatalf("search: %d results, %v", len(found), err)
						}
						lat.add(time.Since(start))
						hits = len(found)
					}
					lat.report(b)
					// 1,000 is the result cap: the largest answer there is.
					b.ReportMetric(float64(hits), "hits")
				})
			}
		})
	}
}
