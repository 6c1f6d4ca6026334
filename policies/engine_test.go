package policies

import (
	"bytes"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/open-policy-agent/opa/v1/ast"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
)

func bundleOf(rev int64, src string) Bundle {
	return Bundle{Files: map[string][]byte{"gatehouse.rego": []byte("package gatehouse\n\n" + src)}, Revision: rev}
}

func newEngine(t testing.TB, b Bundle, opts ...Option) *Engine {
	t.Helper()
	e, err := New(b, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func input() access.PolicyInput {
	return access.PolicyInput{
		Request: access.PolicyRequest{
			ID:    "00000000-0000-0000-0000-000000000001",
			User:  "alice",
			Roles: []string{"dba"},
			Resources: []access.PolicyResource{
				{ID: "/main/db/orders", Kind: "db", Name: "orders", Labels: map[string]string{"env": "prod"}},
			},
			Reason:      "ticket #123",
			Duration:    "1h",
			Annotations: map[string][]string{"pagerduty_services": {"checkout"}},
		},
		User: access.PolicyUser{
			Name: "alice", Roles: []string{"contractor"},
			Traits: map[string][]string{"team": {"contractor"}, "email": {"alice@example.com"}},
		},
		Now:    time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC),
		Source: "slack",
	}
}

func TestDecideShapes(t *testing.T) {
	security := access.Threshold{Name: "security", Approve: 2, Deny: 1, Reviewers: access.ReviewerSelector{Roles: []string{"security"}}}
	tests := []struct {
		name   string
		policy string
		want   access.PolicyDecision
	}{
		{"empty package", ``, access.PolicyDecision{}},
		{"rules with no elements", `deny contains "x" if false
auto_approve contains "y" if false`, access.PolicyDecision{}},
		{"deny from DESIGN.md", "deny contains \"contractors must cite a ticket\" if {\n\t\"contractor\" in input.user.traits.team\n\tnot regex.match(`#[0-9]+`, input.request.reason)\n}\ndeny contains \"no\" if input.request.reason == \"\"", access.PolicyDecision{}},
		{"deny reasons sorted", `deny contains "b"
deny contains "a"`, access.PolicyDecision{Deny: []string{"a", "b"}}},
		{"auto approve", `auto_approve contains sprintf("source %s", [input.source])`, access.PolicyDecision{AutoApprove: []string{"source slack"}}},
		{"threshold from resources", `thresholds contains {"name": "security", "approve": 2, "deny": 1, "reviewers": {"roles": ["security"]}} if {
	some r in input.request.resources
	r.kind == "db"
	r.labels.env == "prod"
}`, access.PolicyDecision{Thresholds: []access.Threshold{security}}},
		{"threshold reviewers as sets, users only", `thresholds contains {"name": "leads", "approve": 1, "deny": 0, "reviewers": {"users": {"bob", "carol"}}}
thresholds contains {"name": "anyone", "approve": 0, "deny": 1, "reviewers": {}}`, access.PolicyDecision{Thresholds: []access.Threshold{
			{Name: "anyone", Deny: 1},
			{Name: "leads", Approve: 1, Reviewers: access.ReviewerSelector{Users: []string{"bob", "carol"}}},
		}}},
		{"smallest max_ttl", `max_ttl contains "12h"
max_ttl contains "90m"
max_ttl contains "2h"`, access.PolicyDecision{MaxTTL: 90 * time.Minute}},
		{"notify", `notify contains {"platform": "slack", "channel": "#db-access"}
notify contains {"platform": "pagerduty", "channel": "Databases"}`, access.PolicyDecision{Notify: []access.NotifyTarget{
			{Platform: "slack", Channel: "#db-access"}, {Platform: "pagerduty", Channel: "Databases"},
		}}},
		{"input.now is RFC3339", `deny contains "weekend" if time.weekday(time.parse_rfc3339_ns(input.now)) == "Saturday"`, access.PolicyDecision{Deny: []string{"weekend"}}},
		{"time.now_ns is input.now", `deny contains "now" if time.now_ns() == time.parse_rfc3339_ns(input.now)`, access.PolicyDecision{Deny: []string{"now"}}},
		{"helpers and other rules are not read", `helper := 1
other := {"a": true}
test_x if false`, access.PolicyDecision{}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, bundleOf(int64(i+1), tt.policy))
			got, err := e.Decide(context.Background(), input())
			if err != nil {
				t.Fatal(err)
			}
			tt.want.BundleRevision = int64(i + 1)
			got.NDCache = nil // time.now_ns() is recorded; TestPagerDutyBuiltins checks the cache
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// Every result of the wrong shape fails closed with an error that names the
// rule and the problem.
func TestInvalidResultsFailClosed(t *testing.T) {
	tests := []struct {
		name, policy string
		want         []string // substrings of the error
	}{
		{"deny is a boolean", `deny := true`, []string{"data.gatehouse.deny", "must be a set", "boolean"}},
		{"deny is a string", `deny := "no"`, []string{"data.gatehouse.deny", "must be a set", "string"}},
		{"deny is an object", `deny[x] := 1 if x := "a"`, []string{"data.gatehouse.deny", "must be a set", "object"}},
		{"deny element is a number", `deny contains 1`, []string{"data.gatehouse.deny", "strings"}},
		{"auto_approve element is an object", `auto_approve contains {"a": 1}`, []string{"data.gatehouse.auto_approve", "strings"}},
		{"thresholds is an array", `thresholds := [{"name": "a", "approve": 1, "deny": 1, "reviewers": {}}]`, []string{"data.gatehouse.thresholds", "must be a set"}},
		{"threshold is a string", `thresholds contains "security"`, []string{"data.gatehouse.thresholds", "must be an object"}},
		{"threshold unknown key", `thresholds contains {"name": "a", "approve": 1, "deny": 1, "reviewers": {}, "approvals": 3}`, []string{"data.gatehouse.thresholds", `unknown key "approvals"`}},
		{"threshold missing reviewers", `thresholds contains {"name": "a", "approve": 1, "deny": 1}`, []string{"data.gatehouse.thresholds", `missing key "reviewers"`}},
		{"threshold empty name", `thresholds contains {"name": "", "approve": 1, "deny": 1, "reviewers": {}}`, []string{"data.gatehouse.thresholds", "name must be a non-empty string"}},
		{"threshold name is a number", `thresholds contains {"name": 7, "approve": 1, "deny": 1, "reviewers": {}}`, []string{"data.gatehouse.thresholds", "name must be a non-empty string"}},
		{"threshold duplicate name", `thresholds contains {"name": "a", "approve": 1, "deny": 1, "reviewers": {}}
thresholds contains {"name": "a", "approve": 2, "deny": 1, "reviewers": {}}`, []string{"data.gatehouse.thresholds", `"a" is defined more than once`}},
		{"threshold negative approve", `thresholds contains {"name": "a", "approve": -1, "deny": 1, "reviewers": {}}`, []string{"data.gatehouse.thresholds", "approve must not be negative"}},
		{"threshold negative deny", `thresholds contains {"name": "a", "approve": 1, "deny": -2, "reviewers": {}}`, []string{"data.gatehouse.thresholds", "deny must not be negative"}},
		{"threshold fractional approve", `thresholds contains {"name": "a", "approve": 1.5, "deny": 1, "reviewers": {}}`, []string{"data.gatehouse.thresholds", "approve must be an integer"}},
		{"threshold approve as string", `thresholds contains {"name": "a", "approve": "2", "deny": 1, "reviewers": {}}`, []string{"data.gatehouse.thresholds", "approve must be a number"}},
		{"threshold huge approve", `thresholds contains {"name": "a", "approve": 1000000, "deny": 1, "reviewers": {}}`, []string{"data.gatehouse.thresholds", "at most"}},
		{"threshold can never decide", `thresholds contains {"name": "a", "approve": 0, "deny": 0, "reviewers": {}}`, []string{"data.gatehouse.thresholds", "can never decide"}},
		{"threshold reviewers unknown key", `thresholds contains {"name": "a", "approve": 1, "deny": 1, "reviewers": {"groups": ["x"]}}`, []string{"data.gatehouse.thresholds", `unknown key "groups"`}},
		{"threshold reviewers roles a string", `thresholds contains {"name": "a", "approve": 1, "deny": 1, "reviewers": {"roles": "security"}}`, []string{"data.gatehouse.thresholds", "reviewers.roles must be an array of strings"}},
		{"threshold reviewers users numbers", `thresholds contains {"name": "a", "approve": 1, "deny": 1, "reviewers": {"users": [1]}}`, []string{"data.gatehouse.thresholds", "reviewers.users must hold non-empty strings"}},
		{"threshold reviewers not an object", `thresholds contains {"name": "a", "approve": 1, "deny": 1, "reviewers": ["security"]}`, []string{"data.gatehouse.thresholds", "reviewers must be an object"}},
		{"max_ttl not a duration", `max_ttl contains "a day"`, []string{"data.gatehouse.max_ttl", "not a duration"}},
		{"max_ttl days", `max_ttl contains "1d"`, []string{"data.gatehouse.max_ttl", "not a duration"}},
		{"max_ttl zero", `max_ttl contains "0s"`, []string{"data.gatehouse.max_ttl", "greater than zero"}},
		{"max_ttl negative", `max_ttl contains "-1h"`, []string{"data.gatehouse.max_ttl", "greater than zero"}},
		{"max_ttl number", `max_ttl contains 3600`, []string{"data.gatehouse.max_ttl", "strings"}},
		{"max_ttl single value", `max_ttl := "8h"`, []string{"data.gatehouse.max_ttl", "must be a set"}},
		{"notify unknown platform", `notify contains {"platform": "email", "channel": "x"}`, []string{"data.gatehouse.notify", "platform must be one of"}},
		{"notify unknown key", `notify contains {"platform": "slack", "channel": "x", "text": "hi"}`, []string{"data.gatehouse.notify", `unknown key "text"`}},
		{"notify empty channel", `notify contains {"platform": "slack", "channel": ""}`, []string{"data.gatehouse.notify", "channel must be a non-empty string"}},
		{"notify a string", `notify contains "slack"`, []string{"data.gatehouse.notify", "must be an object"}},
		{"rule conflict", `max_ttl := "1h" if true
max_ttl := "2h" if true`, []string{"evaluating data.gatehouse", "conflict"}},
		{"built-in error", `deny contains "x" if to_number("not a number") > 1`, []string{"evaluating data.gatehouse", "to_number"}},
		{"unmocked http.send to nowhere", `deny contains "x" if http.send({"method": "GET", "url": "http://127.0.0.1:1/", "timeout": "100ms"}).status_code == 200`, []string{"evaluating data.gatehouse", "http.send"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, bundleOf(int64(i+1), tt.policy))
			d, err := e.Decide(context.Background(), input())
			if err == nil {
				t.Fatalf("no error; decision %+v", d)
			}
			if !errors.Is(err, access.ErrPolicy) {
				t.Errorf("error does not wrap access.ErrPolicy: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if d.BundleRevision != int64(i+1) {
				t.Errorf("revision %d, want %d", d.BundleRevision, i+1)
			}
		})
	}
}

func TestDenyReview(t *testing.T) {
	e := newEngine(t, bundleOf(1, `deny_review contains "security reviews production databases" if {
	some r in input.request.resources
	r.labels.env == "prod"
	not "security" in input.reviewer.roles
}
deny_review contains "no approving on weekends" if {
	input.review.verdict == "APPROVE"
	time.weekday(time.parse_rfc3339_ns(input.now)) in {"Saturday", "Sunday"}
}
# Decision rules are not evaluated for reviews.
deny contains x if x := to_number("boom")`))
	in := input()
	in.Review = &access.PolicyReview{Verdict: "APPROVE", Reason: "ok"}
	in.Reviewer = &access.PolicyUser{Name: "bob", Roles: []string{"dba"}}
	got, err := e.DenyReview(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"no approving on weekends", "security reviews production databases"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	in.Reviewer.Roles = []string{"security"}
	in.Review.Verdict = "DENY"
	if got, err := e.DenyReview(context.Background(), in); err != nil || len(got) != 0 {
		t.Errorf("got %q, %v; want nothing", got, err)
	}

	bad := newEngine(t, bundleOf(2, `deny_review := "no"`))
	if _, err := bad.DenyReview(context.Background(), in); !errors.Is(err, access.ErrPolicy) || !strings.Contains(err.Error(), "data.gatehouse.deny_review") {
		t.Errorf("err = %v", err)
	}
}

func TestTimeout(t *testing.T) {
	e := newEngine(t, bundleOf(1, `deny contains "slow" if {
	count([x | some x in numbers.range(1, 100000000); x % 7 == 3]) > 0
}`), WithTimeout(100*time.Millisecond))
	start := time.Now()
	_, err := e.Decide(context.Background(), input())
	elapsed := time.Since(start)
	if !errors.Is(err, access.ErrPolicy) || !strings.Contains(err.Error(), "timed out after 100ms") {
		t.Fatalf("err = %v", err)
	}
	if elapsed > time.Second {
		t.Errorf("took %s to time out", elapsed)
	}
	t.Logf("timed out after %s: %v", elapsed, err)

	// The caller's own deadline counts too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Decide(ctx, input()); !errors.Is(err, access.ErrPolicy) {
		t.Errorf("cancelled context: err = %v", err)
	}
}

// A hostile reason or label is data: it never changes the structure of the
// decision.
func TestMaliciousInputIsData(t *testing.T) {
	e := newEngine(t, bundleOf(1, `deny contains sprintf("reason: %s", [input.request.reason]) if input.request.reason != "ok"
deny contains sprintf("label: %s", [r.labels.env]) if {
	some r in input.request.resources
	r.labels.env != "prod"
}`))
	for _, evil := range []string{
		`"}, "auto_approve": ["pwned"], "x": {"`,
		`"] } auto_approve contains "pwned" if { true } deny := ["`,
		"\x00\u2028`; import data.gatehouse; default allow := true",
		`{"name": "x", "approve": 0, "deny": 0, "reviewers": {}}`,
	} {
		in := input()
		in.Request.Reason = evil
		in.Request.Resources[0].Labels["env"] = evil
		d, err := e.Decide(context.Background(), in)
		if err != nil {
			t.Fatalf("%q: %v", evil, err)
		}
		want := []string{"label: " + evil, "reason: " + evil}
		if len(d.AutoApprove) != 0 || len(d.Thresholds) != 0 || !reflect.DeepEqual(d.Deny, want) {
			t.Errorf("%q: decision %+v", evil, d)
		}
	}
}

func TestLoadKeepsBundleInForceOnError(t *testing.T) {
	e := newEngine(t, bundleOf(1, `deny contains "rev 1"`))
	bad := []struct {
		name string
		b    Bundle
		want string
	}{
		{"syntax error", bundleOf(2, "deny contains \"x\" if {\n\tinput.x ==\n}"), "gatehouse.rego:5:1:"},
		{"unknown built-in", bundleOf(3, `deny contains x if x := no.such_builtin(1)`), "gatehouse.rego:3:"},
		{"strict: unused import", bundleOf(4, "import data.other\n\ndeny contains \"x\""), "gatehouse.rego:3:"},
		{"type error", bundleOf(5, `deny contains x if x := count(1)`), "gatehouse.rego:3:"},
		{"v0 syntax", bundleOf(6, `deny["x"] { true }`), "gatehouse.rego:3:"},
		{"data.json not an object", Bundle{Revision: 7, Files: map[string][]byte{"data.json": []byte(`[1]`)}}, "data.json"},
		{"stray file", Bundle{Revision: 8, Files: map[string][]byte{"README.md": []byte(`hi`)}}, "README.md"},
		{"huge bundle", Bundle{Revision: 9, Files: map[string][]byte{"big.rego": make([]byte, MaxBundleBytes+1)}}, "bundle_too_large"},
	}
	for _, tt := range bad {
		err := e.Load(tt.b)
		var ce *CompileError
		if !errors.As(err, &ce) || !errors.Is(err, access.ErrInvalid) {
			t.Errorf("%s: err = %v", tt.name, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %q lacks %q", tt.name, err, tt.want)
		}
		if e.Revision() != 1 {
			t.Fatalf("%s: revision %d in force", tt.name, e.Revision())
		}
		d, err := e.Decide(context.Background(), input())
		if err != nil || d.BundleRevision != 1 || d.Deny[0] != "rev 1" {
			t.Fatalf("%s: old bundle not in force: %+v %v", tt.name, d, err)
		}
	}
	if err := e.Load(bundleOf(10, `deny contains "rev 10"`)); err != nil {
		t.Fatal(err)
	}
	if d, _ := e.Decide(context.Background(), input()); d.BundleRevision != 10 || d.Deny[0] != "rev 10" {
		t.Errorf("new bundle not in force: %+v", d)
	}
	if _, err := New(bundleOf(1, `deny contains`)); err == nil {
		t.Error("New accepted a bundle that does not compile")
	}
}

// Decisions during hot swaps come from exactly one bundle: the rule and the
// revision always agree.
func TestHotSwapUnderLoad(t *testing.T) {
	b := func(rev int64) Bundle { return bundleOf(rev, fmt.Sprintf(`deny contains "rev %d"`, rev)) }
	e := newEngine(t, b(1))
	var stop atomic.Bool
	var wg sync.WaitGroup
	var decisions atomic.Int64
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				d, err := e.Decide(context.Background(), input())
				if err == nil && (len(d.Deny) != 1 || d.Deny[0] != fmt.Sprintf("rev %d", d.BundleRevision)) {
					err = fmt.Errorf("torn decision %+v", d)
				}
				if err != nil {
					errs <- err
					return
				}
				decisions.Add(1)
			}
		})
	}
	for rev := int64(2); rev <= 30; rev++ {
		if err := e.Load(b(rev)); err != nil {
			t.Fatal(err)
		}
		if rev%5 == 0 {
			if err := e.Load(bundleOf(rev+1000, "deny contains")); err == nil {
				t.Fatal("bad bundle loaded")
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if e.Revision() != 30 {
		t.Errorf("revision %d", e.Revision())
	}
	t.Logf("%d decisions during 29 reloads", decisions.Load())
}

type fakeDirectory struct {
	calls   atomic.Int64
	oncalls map[string][]access.OnCall
	err     error
}

func (f *fakeDirectory) OnCalls(_ context.Context, email string) ([]access.OnCall, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	return f.oncalls[email], nil
}

func shift(service string, level int) access.OnCall {
	return access.OnCall{
		Service: service, EscalationPolicy: "EP", EscalationLevel: level, Schedule: "Primary rotation",
		Start: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 21, 16, 0, 0, 0, time.UTC),
	}
}

func TestPagerDutyBuiltins(t *testing.T) {
	ctx := context.Background()
	dir := &fakeDirectory{oncalls: map[string][]access.OnCall{
		"alice@example.com": {shift("checkout", 1), shift("billing", 2)},
		"bob@example.com":   {shift("checkout", 2)},
	}}
	e := newEngine(t, Default(), WithOnCall(dir))

	d, err := e.Decide(ctx, input())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{`alice is on call for PagerDuty service "checkout"`}; !reflect.DeepEqual(d.AutoApprove, want) {
		t.Errorf("auto_approve %q, want %q", d.AutoApprove, want)
	}
	var nd map[string]map[string]any
	if err := json.Unmarshal(d.NDCache, &nd); err != nil || nd["pagerduty.on_call"][`["alice@example.com","checkout"]`] != true {
		t.Errorf("ND cache %s (%v)", d.NDCache, err)
	}

	// Level 2 only, or another service: not approved by the default bundle.
	for _, who := range []string{"bob@example.com", "nobody@example.com"} {
		in := input()
		in.User.Traits["email"] = []string{who}
		if d, err := e.Decide(ctx, in); err != nil || len(d.AutoApprove) != 0 {
			t.Errorf("%s: %+v %v", who, d, err)
		}
	}

	// A replay answers from the recorded results and never asks PagerDuty.
	before := dir.calls.Load()
	outage := &fakeDirectory{err: errors.New("PagerDuty is down")}
	replayer := newEngine(t, Default(), WithOnCall(outage))
	r, err := replayer.DecideReplay(ctx, input(), d.NDCache)
	if err != nil || !reflect.DeepEqual(r.AutoApprove, d.AutoApprove) {
		t.Errorf("replay: %+v %v", r, err)
	}
	if outage.calls.Load() != 0 || dir.calls.Load() != before {
		t.Error("replay called PagerDuty")
	}
	if _, err := replayer.DecideReplay(ctx, input(), nil); !errors.Is(err, access.ErrPolicy) || !strings.Contains(err.Error(), "replay") {
		t.Errorf("replay without a recording: err = %v", err)
	}

	// An outage, or no directory at all, fails closed: an error, never "not on call".
	for name, eng := range map[string]*Engine{
		"outage":       replayer,
		"no directory": newEngine(t, Default()),
	} {
		d, err := eng.Decide(ctx, input())
		if !errors.Is(err, access.ErrPolicy) || !strings.Contains(err.Error(), "pagerduty.on_call") {
			t.Errorf("%s: %+v, err = %v", name, d, err)
		}
	}
	// Nobody asks PagerDuty when the roles name no service.
	in := input()
	in.Request.Annotations = nil
	if d, err := newEngine(t, Default()).Decide(ctx, in); err != nil || len(d.AutoApprove) != 0 {
		t.Errorf("no services: %+v %v", d, err)
	}
}

func TestOnCallsBuiltinShape(t *testing.T) {
	dir := &fakeDirectory{oncalls: map[string][]access.OnCall{"alice@example.com": {shift("checkout", 1)}}}
	e := newEngine(t, bundleOf(1, `deny contains json.marshal(pagerduty.oncalls(input.user.traits.email[0]))`), WithOnCall(dir))
	d, err := e.Decide(context.Background(), input())
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"end":"2026-11-21T16:00:00Z","escalation_level":1,"escalation_policy":"EP","schedule":"Primary rotation","service":"checkout","start":"2026-11-21T08:00:00Z"}]`
	if len(d.Deny) != 1 || d.Deny[0] != want {
		t.Errorf("got %q\nwant %q", d.Deny, want)
	}
}

// The examples are each a loadable bundle, and so is their union (every
// rule is a set, so files add up).
func TestExamplesLoad(t *testing.T) {
	dirs, err := filepath.Glob("examples/*")
	if err != nil || len(dirs) < 5 {
		t.Fatalf("examples: %v %v", dirs, err)
	}
	all := Bundle{Files: map[string][]byte{}}
	for _, dir := range append(dirs, "bundle") {
		b, err := LoadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if p := Check(b); len(p) > 0 {
			t.Errorf("%s: %v", dir, p)
		}
		for name, src := range b.Files {
			all.Files[filepath.Base(dir)+"/"+name] = src
		}
	}
	// Data files of a union sit under their directory; the examples read
	// data at the root, so only the rules are combined here.
	for name := range all.Files {
		if filepath.Base(name) == "data.json" {
			delete(all.Files, name)
		}
	}
	if p := Check(all); len(p) > 0 {
		t.Errorf("union of the examples: %v", p)
	}
}

func TestCheckAndFormat(t *testing.T) {
	p := Check(Bundle{Files: map[string][]byte{
		"a.rego": []byte("package gatehouse\n\ndeny contains x if {\n\tx := \"a\"\n\ty := 1\n}\n"),
	}})
	if len(p) != 1 || p[0].File != "a.rego" || p[0].Line != 5 || p[0].Col == 0 || !strings.HasPrefix(p[0].String(), "a.rego:5:") {
		t.Errorf("problems %v", p)
	}
	if p := Check(Default()); len(p) != 0 {
		t.Errorf("default bundle: %v", p)
	}
	out, err := Format([]byte("package gatehouse\ndeny contains   \"x\" if {input.a==1}"))
	if err != nil {
		t.Fatal(err)
	}
	want := "package gatehouse\n\ndeny contains \"x\" if input.a == 1\n"
	if string(out) != want {
		t.Errorf("Format: %q, want %q", out, want)
	}
	if _, err := Format([]byte("package gatehouse\ndeny contains")); err == nil {
		t.Error("Format accepted a syntax error")
	}
}

// The shipped Rego files are formatted as `opa fmt` would.
func TestShippedRegoIsFormatted(t *testing.T) {
	files, _ := filepath.Glob("bundle/*.rego")
	more, _ := filepath.Glob("examples/*/*.rego")
	for _, f := range append(files, more...) {
		b, err := LoadDir(filepath.Dir(f))
		if err != nil {
			t.Fatal(err)
		}
		src := b.Files[filepath.Base(f)]
		out, err := Format(src)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if string(out) != string(src) {
			t.Errorf("%s is not formatted (accessctl policy fmt)", f)
		}
	}
}

// The input built as AST values is exactly the JSON encoding of
// access.PolicyInput (DESIGN.md's input), nil collections read as empty.
func TestInputValueIsJSON(t *testing.T) {
	full := input()
	full.Request.SuggestedReviewers = []string{"bob"}
	full.Review = &access.PolicyReview{Verdict: access.VerdictApprove, Reason: "ok", Roles: []string{"dba"}}
	full.Reviewer = &access.PolicyUser{Name: "bob", Roles: []string{"security"}, Traits: map[string][]string{"email": {"bob@example.com"}}}
	full.Now = time.Date(2026, 11, 21, 10, 0, 0, 5, time.FixedZone("X", 3600))
	empty := access.PolicyInput{
		Request: access.PolicyRequest{Resources: []access.PolicyResource{{ID: "/a/node/b"}}},
		Review:  &access.PolicyReview{}, Reviewer: &access.PolicyUser{},
	}
	emptyJSON := access.PolicyInput{
		Request: access.PolicyRequest{
			Roles: []string{}, SuggestedReviewers: []string{}, Annotations: map[string][]string{},
			Resources: []access.PolicyResource{{ID: "/a/node/b", Labels: map[string]string{}}},
		},
		User:     access.PolicyUser{Roles: []string{}, Traits: map[string][]string{}},
		Review:   &access.PolicyReview{Roles: []string{}},
		Reviewer: &access.PolicyUser{Roles: []string{}, Traits: map[string][]string{}},
	}
	for _, tc := range []struct{ in, asJSON access.PolicyInput }{{full, full}, {empty, emptyJSON}} {
		got, err := inputValue(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(tc.asJSON)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ast.ValueFromReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if got.Compare(want) != 0 {
			t.Errorf("got  %v\nwant %v", got, want)
		}
	}
}
