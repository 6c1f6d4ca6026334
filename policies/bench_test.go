package policies

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/gatehouse-dev/gatehouse/access"
)

// Benchmarks (2-core VM, go test -bench . -benchtime 2s ./policies/); the
// numbers of each run go to the README table.

// bundle200 generates a bundle of 200 rules: 100 deny, 50 thresholds, 40
// auto_approve and 10 max_ttl, each testing the input the way real rules do.
func bundle200() Bundle {
	var sb strings.Builder
	sb.WriteString("package gatehouse\n\n")
	for i := range 100 {
		fmt.Fprintf(&sb, "deny contains \"role-%d needs a ticket\" if {\n\t\"role-%d\" in input.request.roles\n\tnot regex.match(`#[0-9]+`, input.request.reason)\n}\n\n", i, i)
	}
	for i := range 50 {
		fmt.Fprintf(&sb, "thresholds contains {\"name\": \"t%d\", \"approve\": 2, \"deny\": 1, \"reviewers\": {\"roles\": [\"team-%d\"]}} if {\n\tsome r in input.request.resources\n\tr.labels.env == \"env-%d\"\n}\n\n", i, i, i)
	}
	for i := range 40 {
		fmt.Fprintf(&sb, "auto_approve contains \"low risk %d\" if {\n\tinput.user.traits.team[_] == \"team-%d\"\n\tinput.source == \"cli\"\n}\n\n", i, i)
	}
	for i := range 10 {
		fmt.Fprintf(&sb, "max_ttl contains \"%dh\" if input.request.roles[_] == \"role-%d\"\n\n", i+1, i)
	}
	return Bundle{Files: map[string][]byte{"gen.rego": []byte(sb.String())}, Revision: 1}
}

func benchInput() access.PolicyInput {
	in := input()
	in.Request.Roles = []string{"role-3", "dba"}
	in.Request.Resources[0].Labels["env"] = "env-7"
	in.User.Traits["team"] = []string{"team-5"}
	return in
}

func benchDirectory() *fakeDirectory {
	return &fakeDirectory{oncalls: map[string][]access.OnCall{"alice@example.com": {shift("checkout", 1)}}}
}

var benchBundles = []struct {
	name   string
	bundle func() Bundle
}{
	{"default", Default},
	{"200rules", bundle200},
}

// report records per-call latencies and reports p50/p99.
func report(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	if len(lat) == 0 {
		return
	}
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkDecide is Engine.Decide: input encoding, evaluation, validation
// and the ND cache.
func BenchmarkDecide(b *testing.B) {
	for _, bb := range benchBundles {
		b.Run(bb.name, func(b *testing.B) {
			e := newEngine(b, bb.bundle(), WithOnCall(benchDirectory()))
			in := benchInput()
			ctx := context.Background()
			lat := make([]time.Duration, 0, 1<<16)
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				if _, err := e.Decide(ctx, in); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			report(b, lat)
		})
	}
}

// BenchmarkBareEval is the same query prepared and evaluated with bare
// rego (input already decoded, default JSON results, no validation): the
// baseline for the engine's overhead.
func BenchmarkBareEval(b *testing.B) {
	for _, bb := range benchBundles {
		b.Run(bb.name, func(b *testing.B) {
			c, store, err := compileBundle(bb.bundle())
			if err != nil {
				b.Fatal(err)
			}
			dir := benchDirectory()
			opts := append([]func(*rego.Rego){rego.Compiler(c), rego.Store(store), rego.Query(DecideQuery), rego.StrictBuiltinErrors(true)},
				builtinOptions(func() access.OnCallDirectory { return dir })...)
			pq, err := rego.New(opts...).PrepareForEval(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			raw, _ := json.Marshal(benchInput())
			var in any
			if err := json.Unmarshal(raw, &in); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			lat := make([]time.Duration, 0, 1<<16)
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				rs, err := pq.Eval(ctx, rego.EvalInput(in))
				if err != nil || len(rs) != 1 {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			report(b, lat)
		})
	}
}

// BenchmarkLoad200 is a hot reload of the 200-rule bundle: compile, prepare
// both queries, swap.
func BenchmarkLoad200(b *testing.B) {
	bundle := bundle200()
	e := newEngine(b, bundle)
	b.ReportAllocs()
	for b.Loop() {
		if err := e.Load(bundle); err != nil {
			b.Fatal(err)
		}
	}
}

// The generated bundle decides what its rules say.
func TestBundle200(t *testing.T) {
	e := newEngine(t, bundle200())
	in := benchInput()
	in.Request.Reason = "no ticket"
	d, err := e.Decide(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Deny, []string{"role-3 needs a ticket"}) || len(d.Thresholds) != 1 || d.Thresholds[0].Name != "t7" || d.MaxTTL != 4*time.Hour || len(d.AutoApprove) != 0 {
		t.Errorf("%+v", d)
	}
}
