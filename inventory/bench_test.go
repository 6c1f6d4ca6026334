package inventory

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
)

var (
	genRoles   = []string{"web", "api", "db", "cache", "worker", "batch", "edge", "bastion"}
	genRegions = []string{"us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-south-1", "ap-northeast-1"}
	genOS      = []string{"ubuntu", "debian", "rhel"}
)

// genResources makes n realistic resources of kind (shaped like nodes: a
// hostname, an addr, a description and six labels), deterministic for a
// seed, in random name order.
func genResources(n int, kind string, seed uint64) []access.Resource {
	rng := rand.New(rand.NewPCG(seed, 0x9a7e))
	out := make([]access.Resource, n)
	for i := range out {
		role := genRoles[rng.IntN(len(genRoles))]
		region := genRegions[rng.IntN(len(genRegions))]
		env := "prod"
		switch p := rng.IntN(10); {
		case p >= 8:
			env = "dev"
		case p >= 5:
			env = "staging"
		}
		a, b, c := rng.IntN(256), rng.IntN(256), rng.IntN(256)
		out[i] = access.Resource{
			Kind:    kind,
			Version: "v1",
			Metadata: access.Metadata{
				// The index i keeps names unique whatever the random parts.
				Name:        fmt.Sprintf("%s-%s-%06d", role, region, i),
				Description: fmt.Sprintf("%s server in %s", role, region),
				Labels: map[string]string{
					"env":           env,
					"team":          fmt.Sprintf("team-%02d", rng.IntN(20)),
					"region":        region,
					"role":          role,
					"os":            genOS[rng.IntN(len(genOS))],
					"instance-type": fmt.Sprintf("m%d.%dxlarge", 5+rng.IntN(3), 1<<rng.IntN(4)),
				},
			},
			Spec: access.ResourceSpec{
				Hostname: fmt.Sprintf("ip-10-%d-%d-%d.%s.compute.internal", a, b, c, region),
				Addr:     fmt.Sprintf("10.%d.%d.%d:22", a, b, c),
			},
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// benchQueries are the searches measured: a words query, a labels query, a
// words query with a permission filter, and the worst case for Allow: no
// other filter, so Allow (a map lookup) runs for every resource and a
// quarter of the kind is returned.
func benchQueries() []struct {
	name string
	q    Query
} {
	allowed := map[string]bool{"team-01": true, "team-05": true, "team-07": true, "team-11": true, "team-13": true}
	allow := func(r access.Resource) bool { return allowed[r.Metadata.Labels["team"]] }
	return []struct {
		name string
		q    Query
	}{
		{"words", Query{Kind: access.KindNode, Words: []string{"web", "east"}}},
		{"labels", Query{Kind: access.KindNode, Labels: map[string]string{"env": "prod", "team": "team-07"}}},
		{"words+allow", Query{Kind: access.KindNode, Words: []string{"web"}, Allow: allow}},
		{"allow_only", Query{Kind: access.KindNode, Allow: allow}},
	}
}

// BenchmarkSearch measures searches over an index loaded by a reset (as
// after a start: entries laid out in name order in one slab) and, at
// 100,000, over the same resources put one by one (as after long churn:
// every entry its own allocation, spread over the heap).
func BenchmarkSearch(b *testing.B) {
	for _, load := range []struct {
		name  string
		n     int
		byPut bool
	}{{"10k", 10_000, false}, {"100k", 100_000, false}, {"100k-puts", 100_000, true}} {
		ix := New()
		list := genResources(load.n, access.KindNode, 42)
		if load.byPut {
			ix.Apply(reset(1))
			for i, r := range list {
				ix.Apply(put(r, int64(i+2)))
			}
		} else {
			ix.Apply(reset(1, list...))
		}
		for _, bq := range benchQueries() {
			b.Run(load.name+"/"+bq.name, func(b *testing.B) {
				b.ReportAllocs()
				results := 0
				for b.Loop() {
					results = len(ix.Search(bq.q))
				}
				b.ReportMetric(float64(results), "results")
			})
		}
	}
}

// BenchmarkApplyPut measures one watch event against a large index: the
// copy-on-write cost a writer pays per change.
func BenchmarkApplyPut(b *testing.B) {
	ix := New()
	ix.Apply(reset(1, genResources(100_000, access.KindNode, 42)...))
	extra := genResources(10_000, access.KindNode, 7)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ix.Apply(put(extra[i%len(extra)], int64(i)))
		i++
	}
}

func TestSearchLatency100k(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 100,000-resource index")
	}
	list := genResources(100_000, access.KindNode, 42)
	ix := New()
	start := time.Now()
	ix.Apply(reset(1, list...))
	t.Logf("reset with 100k resources: %v", time.Since(start).Round(time.Millisecond))
	list = nil
	runtime.GC()

	queries := benchQueries()
	pct := func(ds []time.Duration, p float64) time.Duration {
		ds = slices.Clone(ds)
		slices.Sort(ds)
		return ds[min(len(ds)-1, int(float64(len(ds))*p))]
	}
	// A round is 200 searches cycling through the benchmark queries. A
	// machine shared with other builds can stall one round; only a p99 over
	// the limit in every round means the index itself is badly wrong (an
	// accidental quadratic, a lock held across searches), so that alone
	// fails. The target is 20 ms; the limit is 10 times that.
	const searches, rounds, limit = 200, 3, 200 * time.Millisecond
	for round := 1; round <= rounds; round++ {
		all := make([]time.Duration, 0, searches)
		per := map[string][]time.Duration{}
		for i := range searches {
			bq := queries[i%len(queries)]
			t0 := time.Now()
			ix.Search(bq.q)
			d := time.Since(t0)
			all = append(all, d)
			per[bq.name] = append(per[bq.name], d)
		}
		for _, bq := range queries {
			t.Logf("%-12s p50 %8v  p99 %8v", bq.name, pct(per[bq.name], 0.50), pct(per[bq.name], 0.99))
		}
		p50, p99 := pct(all, 0.50), pct(all, 0.99)
		t.Logf("round %d, all %d searches: p50 %v  p99 %v (GOMAXPROCS %d, race %v)", round, searches, p50, p99, runtime.GOMAXPROCS(0), raceEnabled)
		if p99 <= limit || raceEnabled {
			return
		}
	}
	t.Errorf("p99 over %v in all %d rounds", limit, rounds)
}
