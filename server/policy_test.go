package server_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/integrations/pagerduty"
	"github.com/gatehouse-dev/gatehouse/integrations/pagerduty/pagerdutytest"
	"github.com/gatehouse-dev/gatehouse/internal/testcluster"
	"github.com/gatehouse-dev/gatehouse/outbox"
	"github.com/gatehouse-dev/gatehouse/policies"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

// securityPolicy is added to the default bundle (which auto-approves
// on-call requesters): contractors must cite a ticket, and dba needs two
// approvals from security.
const securityPolicy = `package gatehouse

deny contains "contractors must cite a ticket (#123)" if {
	"contractor" in input.user.traits.team
	not regex.match(` + "`#[0-9]+`" + `, input.request.reason)
}

thresholds contains {"name": "security", "approve": 2, "deny": 1, "reviewers": {"roles": ["security"]}} if {
	"dba" in input.request.roles
}
`

const policyRoles = `
kind: role
version: v1
metadata: {name: dba}
spec: {allow: {db_labels: {env: prod}}}
---
kind: role
version: v1
metadata: {name: responder}
spec: {allow: {node_labels: {env: prod}}}
---
kind: role
version: v1
metadata: {name: contractor}
spec:
  allow:
    request: {roles: [dba]}
---
kind: role
version: v1
metadata: {name: engineer}
spec:
  allow:
    request:
      roles: [responder]
      annotations: {pagerduty_services: [checkout]}
---
kind: role
version: v1
metadata: {name: security}
spec:
  allow:
    review_requests: {roles: [dba, responder]}
---
kind: role
version: v1
metadata: {name: reviewer}
spec:
  allow:
    review_requests: {roles: [dba, responder]}
`

// TestPolicyDecidesRequests is issue 3's "done when", through the API with
// the real engine and the real PagerDuty client against a PagerDuty fake.
func TestPolicyDecidesRequests(t *testing.T) {
	pd := pagerdutytest.New(t)
	pd.AddUser("PALICE", "Alice", "alice@example.com")
	pd.AddEscalationPolicy("PEP1", "Checkout", "checkout")
	pd.AddOnCall("PALICE", "Alice", "PEP1", 1, "PSCHED", "Checkout primary", "2026-01-01T00:00:00Z", "2099-01-01T00:00:00Z")
	dir, err := pagerduty.New(pagerduty.Config{APIKey: pd.Key, APIURL: pd.URL + "/", CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	b := policies.Default()
	b.Files["security.rego"] = []byte(securityPolicy)
	engine, err := policies.New(b, policies.WithOnCall(dir))
	if err != nil {
		t.Fatal(err)
	}
	c := testcluster.StartWithPolicy(t, engine, policies.CheckBundle)
	c.Apply(policyRoles)
	ctx := context.Background()
	login := func(name string, traits map[string][]string, roles ...string) *api.Client {
		cl := c.Login(name, roles...)
		u := access.User{Kind: "user", Version: "v1", Metadata: access.Metadata{Name: name}, Spec: access.UserSpec{Roles: roles, Traits: traits}}
		if _, err := c.Admin.PutObject(ctx, "user", testcluster.JSON(t, mustJSON(t, u))); err != nil {
			t.Fatal(err)
		}
		return cl
	}
	carol := login("carol", map[string][]string{"team": {"contractor"}, "email": {"carol@example.com"}}, "contractor")
	alice := login("alice", map[string][]string{"team": {"platform"}, "email": {"alice@example.com"}}, "engineer")
	sec1 := login("sec1", nil, "security")
	sec2 := login("sec2", nil, "security")
	bob := login("bob", nil, "reviewer")

	t.Run("no ticket is denied at once with the policy's reason", func(t *testing.T) {
		r, err := carol.CreateRequest(ctx, api.CreateRequest{Roles: []string{"dba"}, Reason: "need access"})
		if err != nil {
			t.Fatal(err)
		}
		if r.State != access.StateDenied || !strings.Contains(r.StateReason, "cite a ticket") || r.Decision.Outcome != "deny" {
			t.Fatalf("request = %s %q %+v", r.State, r.StateReason, r.Decision)
		}
	})

	t.Run("with a ticket it needs two security approvals", func(t *testing.T) {
		r, err := carol.CreateRequest(ctx, api.CreateRequest{Roles: []string{"dba"}, Reason: "ticket #123"})
		if err != nil {
			t.Fatal(err)
		}
		if r.State != access.StatePending || r.ProgressSummary() != "security 0/2" {
			t.Fatalf("created: %s %s", r.State, r.ProgressSummary())
		}
		// bob may review dba, but counts for no threshold.
		if r, err = bob.Review(ctx, r.ID, api.ReviewRequest{Verdict: access.VerdictApprove}); err != nil || r.ProgressSummary() != "security 0/2" {
			t.Fatalf("after bob: %s %v", r.ProgressSummary(), err)
		}
		if r, err = sec1.Review(ctx, r.ID, api.ReviewRequest{Verdict: access.VerdictApprove}); err != nil || r.State != access.StatePending || r.ProgressSummary() != "security 1/2" {
			t.Fatalf("after sec1: %s %s %v", r.State, r.ProgressSummary(), err)
		}
		if r, err = sec2.Review(ctx, r.ID, api.ReviewRequest{Verdict: access.VerdictApprove}); err != nil || r.State != access.StateApproved {
			t.Fatalf("after sec2: %s %v", r.State, err)
		}
	})

	t.Run("on call for the role's service is approved without reviewers", func(t *testing.T) {
		r, err := alice.CreateRequest(ctx, api.CreateRequest{Roles: []string{"responder"}, Reason: "incident #7"})
		if err != nil {
			t.Fatal(err)
		}
		if r.State != access.StateApproved || !strings.Contains(r.StateReason, "on call") || len(r.Reviews) != 1 || r.Reviews[0].Kind != access.ReviewKindPolicy {
			t.Fatalf("request = %s %q %+v", r.State, r.StateReason, r.Reviews)
		}
	})

	t.Run("a PagerDuty outage leaves the request for the fallback reviewers", func(t *testing.T) {
		pd.Set("500")
		defer pd.Set("")
		r, err := alice.CreateRequest(ctx, api.CreateRequest{Roles: []string{"responder"}, Reason: "incident #8"})
		if err != nil {
			t.Fatal(err)
		}
		if r.State != access.StatePending || len(r.Thresholds) != 1 || r.Thresholds[0].Name != "policy_error" || r.Decision.Outcome != "policy_error" {
			t.Fatalf("request = %s %+v %+v", r.State, r.Thresholds, r.Decision)
		}
		// A reviewer who is not a fallback reviewer counts for nothing;
		// the admin decides.
		if r, err = sec1.Review(ctx, r.ID, api.ReviewRequest{Verdict: access.VerdictApprove}); err != nil || r.State != access.StatePending {
			t.Fatalf("after sec1: %s %v", r.State, err)
		}
		if r, err = c.Admin.Review(ctx, r.ID, api.ReviewRequest{Verdict: access.VerdictApprove}); err != nil || r.State != access.StateApproved {
			t.Fatalf("after admin: %s %v", r.State, err)
		}
		evs, err := c.Admin.Audit(ctx, api.AuditQuery{RequestID: r.ID, Type: "request.create"})
		if err != nil || len(evs) != 1 || evs[0].Fields["policy_error"] == nil || evs[0].Fields["policy_input"] == nil {
			t.Fatalf("audit of the policy error = %+v, %v", evs, err)
		}
	})

	t.Run("a bundle that does not compile is refused and the one in force stays", func(t *testing.T) {
		_, err := c.Admin.PushPolicy(ctx, map[string]string{"bad.rego": "package gatehouse\n\ndeny contains x if {\n"})
		if api.ErrorCode(err) != "invalid" || !strings.Contains(err.Error(), "bad.rego:") {
			t.Fatalf("push of a broken bundle: %v", err)
		}
		r, err := carol.CreateRequest(ctx, api.CreateRequest{Roles: []string{"dba"}, Reason: "no ticket"})
		if err != nil || r.State != access.StateDenied {
			t.Fatalf("policy changed after a refused push: %s %v", r.State, err)
		}
	})
}

// TestPolicyPushTakesEffect: a pushed bundle is in force for the next
// request, through the same store watch every replica follows.
func TestPolicyPushTakesEffect(t *testing.T) {
	st := storetest.Embedded(t)
	engine, err := policies.New(policies.Default())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	live, err := policies.Follow(ctx, st, engine, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	c := testcluster.StartOnStore(t, st, live, policies.CheckBundle)
	c.Apply(policyRoles)
	carol := c.Login("carol", "contractor")

	pushed, err := c.Admin.PushPolicy(ctx, map[string]string{"deny.rego": "package gatehouse\n\ndeny contains \"frozen: change freeze\" if { true }\n"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for live.Revision() != pushed.Revision && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	r, err := carol.CreateRequest(ctx, api.CreateRequest{Roles: []string{"dba"}, Reason: "ticket #1"})
	if err != nil || r.State != access.StateDenied || r.Decision.BundleRevision != pushed.Revision {
		t.Fatalf("after push: %s %+v %v", r.State, r.Decision, err)
	}
}

// TestPolicyNotifyOpensOneIncident: a policy's notify.pagerduty is written
// to the outbox with the request, and the worker opens exactly one
// incident even when PagerDuty fails first and the delivery is retried.
func TestPolicyNotifyOpensOneIncident(t *testing.T) {
	pd := pagerdutytest.New(t)
	dir, err := pagerduty.New(pagerduty.Config{APIKey: pd.Key, APIURL: pd.URL + "/", FromEmail: "gatehouse@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	b := policies.Default()
	b.Files["notify.rego"] = []byte("package gatehouse\n\nnotify contains {\"platform\": \"pagerduty\", \"channel\": \"PSVC1\"} if { \"dba\" in input.request.roles }\n")
	engine, err := policies.New(b, policies.WithOnCall(dir))
	if err != nil {
		t.Fatal(err)
	}
	c := testcluster.StartWithPolicy(t, engine, policies.CheckBundle)
	c.Apply(policyRoles)
	carol := c.Login("carol", "contractor")
	ctx := context.Background()
	r, err := carol.CreateRequest(ctx, api.CreateRequest{Roles: []string{"dba"}, Reason: "ticket #9"})
	if err != nil {
		t.Fatal(err)
	}
	pending, err := c.Store.ListOutbox(ctx, access.PlatformPagerDuty)
	if err != nil || len(pending) != 1 || pending[0].RequestID != r.ID || pending[0].Target != "PSVC1" {
		t.Fatalf("outbox = %+v, %v", pending, err)
	}

	now := time.Now()
	w := &outbox.Worker{Store: c.Store, Platform: access.PlatformPagerDuty, Now: func() time.Time { return now },
		Deliver: func(ctx context.Context, m access.OutboxMessage) error {
			_, err := dir.CreateIncident(ctx, m.Target, m.Title, m.Body, m.ID)
			return err
		}}
	pd.Set("500")
	if n, err := w.RunOnce(ctx); err != nil || n != 0 {
		t.Fatalf("delivery during an outage: %d, %v", n, err)
	}
	left, _ := c.Store.ListOutbox(ctx, access.PlatformPagerDuty)
	if len(left) != 1 || left[0].Attempts != 1 || !left[0].NextAttempt.After(now) {
		t.Fatalf("after a failed attempt: %+v", left)
	}
	pd.Set("")
	if n, _ := w.RunOnce(ctx); n != 0 {
		t.Fatal("delivered before its backoff ended")
	}
	// A worker that posted and died before recording it: the redelivery
	// carries the same incident_key and finds that incident.
	if _, err := dir.CreateIncident(ctx, left[0].Target, left[0].Title, left[0].Body, left[0].ID); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	if n, err := w.RunOnce(ctx); err != nil || n != 1 {
		t.Fatalf("delivery after the outage: %d, %v", n, err)
	}
	if n, _ := w.RunOnce(ctx); n != 0 {
		t.Fatal("delivered twice")
	}
	incidents := pd.Incidents()
	if len(incidents) != 1 {
		t.Fatalf("incidents = %v", incidents)
	}
	evs, err := c.Admin.Audit(ctx, api.AuditQuery{RequestID: r.ID, Type: "notify.*"})
	if err != nil || len(evs) != 1 {
		t.Fatalf("audit of the notification = %+v, %v", evs, err)
	}
}
