package server_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/internal/testcluster"
	"github.com/gatehouse-dev/gatehouse/pki"
)

func startCluster(t *testing.T) *testcluster.Cluster {
	c := testcluster.Start(t)
	return c
}

func demo(c *testcluster.Cluster) (alice, bob *api.Client) {
	alice, bob = c.Demo()
	c.Apply(`
kind: node
version: v1
metadata: {name: iot, labels: {env: staging}}
spec: {hostname: iot}
---
kind: node
version: v1
metadata: {name: vault, labels: {env: secret}}
spec: {hostname: vault}
`)
	return alice, bob
}

func TestRoleRequestApprovedByReviewer(t *testing.T) {
	c := startCluster(t)
	alice, bob := demo(c)
	ctx := context.Background()

	req, err := alice.CreateRequest(ctx, api.CreateRequest{Roles: []string{"dba"}, Reason: "ticket #123", Duration: "2h"})
	if err != nil {
		t.Fatal(err)
	}
	if req.State != access.StatePending || req.User != "alice" || req.Source != access.SourceCLI {
		t.Fatalf("created = %+v", req)
	}
	if got := strings.Join(req.SuggestedReviewers, ","); got != "bob" {
		t.Fatalf("suggested reviewers = %q, want bob", got)
	}

	// alice waits on the event stream while bob approves.
	decided := make(chan api.Request, 1)
	go func() {
		r, err := waitDecided(ctx, alice, req)
		if err != nil {
			t.Error(err)
		}
		decided <- r
	}()
	pending, err := bob.ListRequests(ctx, "pending", "")
	if err != nil || len(pending) != 1 || pending[0].ID != req.ID {
		t.Fatalf("bob's pending list = %v, %v", pending, err)
	}
	if _, err := bob.Review(ctx, req.ID, api.ReviewRequest{Verdict: access.VerdictApprove, Reason: "go ahead"}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-decided:
		if r.State != access.StateApproved {
			t.Fatalf("alice saw %s, want APPROVED", r.State)
		}
		if r.AccessExpires == nil || time.Until(*r.AccessExpires) > 2*time.Hour+time.Minute {
			t.Fatalf("access_expires = %v, want about 2h from now", r.AccessExpires)
		}
		if strings.Join(r.GrantedRoles, ",") != "dba" {
			t.Fatalf("granted roles = %v", r.GrantedRoles)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("alice never saw the decision on the event stream")
	}

	evs, err := c.Admin.Audit(ctx, api.AuditQuery{RequestID: req.ID})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type+"/"+e.Actor)
	}
	if got := strings.Join(types, " "); got != "request.create/alice request.review/bob request.approved/bob" {
		t.Fatalf("audit = %s", got)
	}

	dropped, err := alice.Drop(ctx, req.ID)
	if err != nil || dropped.State != access.StateDropped {
		t.Fatalf("drop = %v, %v", dropped.State, err)
	}
}

func waitDecided(ctx context.Context, c *api.Client, req api.Request) (api.Request, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	events, _, err := c.Events(ctx, req.Revision)
	if err != nil {
		return req, err
	}
	for ev := range events {
		if ev.Request != nil && ev.Request.ID == req.ID && ev.Request.State != access.StatePending {
			return *ev.Request, nil
		}
	}
	return req, errors.New("stream ended before a decision")
}

func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	c := startCluster(t)
	alice, bob := demo(c)
	ctx := context.Background()
	req, err := alice.CreateRequest(ctx, api.CreateRequest{Roles: []string{"dba"}, Reason: "migration"})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		call     func() error
		wantCode string
		wantMsg  string
	}{
		{"unknown role", func() error {
			_, err := alice.CreateRequest(ctx, api.CreateRequest{Roles: []string{"nope"}, Reason: "x"})
			return err
		}, "invalid", `unknown role "nope"`},
		{"role not requestable", func() error {
			_, err := alice.CreateRequest(ctx, api.CreateRequest{Roles: []string{"reviewer"}, Reason: "x"})
			return err
		}, "forbidden", `may not request role "reviewer"`},
		{"duration beyond max_duration", func() error {
			_, err := alice.CreateRequest(ctx, api.CreateRequest{Roles: []string{"dba"}, Reason: "x", Duration: "24h"})
			return err
		}, "invalid", "24h"},
		{"no reason", func() error {
			_, err := alice.CreateRequest(ctx, api.CreateRequest{Roles: []string{"dba"}})
			return err
		}, "invalid", "reason"},
		{"malformed resource id", func() error {
			_, err := alice.CreateRequest(ctx, api.CreateRequest{Resources: []string{"/test.local/nodes"}, Reason: "x"})
			return err
		}, "invalid", "resource ID"},
		{"resource of another cluster", func() error {
			_, err := alice.CreateRequest(ctx, api.CreateRequest{Resources: []string{"/other/node/iot"}, Reason: "x"})
			return err
		}, "invalid", `cluster "other"`},
		{"resource the search_as role denies", func() error {
			_, err := alice.CreateRequest(ctx, api.CreateRequest{Resources: []string{"/test.local/node/vault"}, Reason: "x"})
			return err
		}, "forbidden", "/test.local/node/vault"},
		{"self review", func() error {
			_, err := alice.Review(ctx, req.ID, api.ReviewRequest{Verdict: access.VerdictApprove})
			return err
		}, "forbidden", "own request"},
		{"bad verdict", func() error {
			_, err := bob.Review(ctx, req.ID, api.ReviewRequest{Verdict: "MAYBE"})
			return err
		}, "invalid", "MAYBE"},
		{"narrowing to a role not asked", func() error {
			_, err := bob.Review(ctx, req.ID, api.ReviewRequest{Verdict: access.VerdictApprove, Roles: []string{"access"}})
			return err
		}, "invalid", "access"},
		{"unknown YAML field", func() error {
			_, err := c.Admin.PutObject(ctx, "role", json.RawMessage(`{"kind":"role","version":"v1","metadata":{"name":"x"},"spec":{"allow":{"nodelabels":{}}}}`))
			return err
		}, "invalid", `unknown field "nodelabels"`},
		{"request id not a UUID", func() error {
			_, err := bob.Review(ctx, "../../etc", api.ReviewRequest{Verdict: access.VerdictApprove})
			return err
		}, "", ""},
		{"reviewer without rights may not see it", func() error {
			_, err := alice.GetRequest(ctx, "6f1c7e2a-0000-4000-8000-000000000000")
			return err
		}, "not_found", ""},
		{"audit needs the audit rule", func() error {
			_, err := alice.Audit(ctx, api.AuditQuery{})
			return err
		}, "forbidden", "audit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil {
				t.Fatal("call succeeded, want an error")
			}
			if tt.wantCode != "" && api.ErrorCode(err) != tt.wantCode {
				t.Fatalf("code = %q (%v), want %q", api.ErrorCode(err), err, tt.wantCode)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("message %q does not name %q", err, tt.wantMsg)
			}
		})
	}
	// Nothing changed: still one pending request without reviews.
	all, err := c.Admin.ListRequests(ctx, "", "")
	if err != nil || len(all) != 1 || all[0].State != access.StatePending || len(all[0].Reviews) != 0 {
		t.Fatalf("requests after bad input = %+v, %v", all, err)
	}

	// Reviews after the request is final, and a second review, are refused.
	if _, err := bob.Review(ctx, req.ID, api.ReviewRequest{Verdict: access.VerdictDeny, Reason: "not now"}); err != nil {
		t.Fatal(err)
	}
	_, err = bob.Review(ctx, req.ID, api.ReviewRequest{Verdict: access.VerdictApprove})
	if api.ErrorCode(err) != "conflict" {
		t.Fatalf("second review: %v, want conflict", err)
	}
}

func TestAuthentication(t *testing.T) {
	c := startCluster(t)
	alice, _ := demo(c)
	ctx := context.Background()

	if _, err := c.Anonymous().ListRequests(ctx, "", ""); api.ErrorCode(err) != "unauthorized" {
		t.Fatalf("anonymous call: %v, want 401 unauthorized", err)
	}
	var apiErr *api.Error
	if _, err := c.Anonymous().Status(ctx); !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized {
		t.Fatalf("status without identity: %v", err)
	}
	if _, err := alice.ListLocks(ctx); api.ErrorCode(err) != "forbidden" {
		t.Fatalf("alice lists locks: %v, want 403", err)
	}

	// A wrong password and an unknown user look the same.
	keyless := c.Anonymous()
	_, csr, _ := pki.NewKeyAndCSR("alice")
	_, err1 := keyless.Login(ctx, api.LoginRequest{User: "alice", Password: "wrong-password", CSR: string(csr)})
	_, err2 := keyless.Login(ctx, api.LoginRequest{User: "mallory", Password: "wrong-password", CSR: string(csr)})
	if api.ErrorCode(err1) != "unauthorized" || err1.Error() != err2.Error() {
		t.Fatalf("bad logins: %v / %v", err1, err2)
	}
	// The password set through the invite works.
	if _, err := keyless.Login(ctx, api.LoginRequest{User: "alice", Password: "alice-password", CSR: string(csr)}); err != nil {
		t.Fatalf("password login: %v", err)
	}

	// A lock refuses the live session certificate at once.
	if err := c.Admin.Lock(ctx, api.LockRequest{User: "alice", Reason: "laptop stolen"}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.ListRequests(ctx, "", ""); api.ErrorCode(err) != "unauthorized" || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("locked alice: %v", err)
	}
	if err := c.Admin.Unlock(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.ListRequests(ctx, "", ""); err != nil {
		t.Fatalf("unlocked alice: %v", err)
	}

	// Machine tokens.
	tok, err := c.Admin.AddToken(ctx, api.AddTokenRequest{User: "alice", TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	bot, err := api.New(api.Config{Server: c.URL, RootCAs: c.Pool, Token: tok.Token})
	if err != nil {
		t.Fatal(err)
	}
	st, err := bot.Status(ctx)
	if err != nil || st.User != "alice" {
		t.Fatalf("bot status = %+v, %v", st, err)
	}
}

func TestResourceRequestAndSearch(t *testing.T) {
	c := startCluster(t)
	alice, bob := demo(c)
	ctx := context.Background()

	var found []api.SearchResult
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) { // the index is fed by a watch
		var err error
		if found, err = alice.Search(ctx, "node", "", nil); err != nil {
			t.Fatal(err)
		}
		if len(found) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(found) != 1 || found[0].ID != "/test.local/node/iot" {
		t.Fatalf("search = %+v, want only iot (vault is denied)", found)
	}
	req, err := alice.CreateRequest(ctx, api.CreateRequest{Resources: []string{found[0].ID}, Reason: "debug gateway"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(req.Roles, ",") != "access" {
		t.Fatalf("resolved roles = %v, want [access]", req.Roles)
	}
	r, err := bob.Review(ctx, req.ID, api.ReviewRequest{Verdict: access.VerdictApprove})
	if err != nil || r.State != access.StateApproved {
		t.Fatalf("review = %v, %v", r.State, err)
	}
}

func TestHealthAndOpenAPI(t *testing.T) {
	c := startCluster(t)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.Pool}}}
	for _, path := range []string{"/healthz", "/readyz", "/v1/openapi.json", "/metrics"} {
		resp, err := hc.Get(c.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", path, resp.Status)
		}
	}
}

// TestEventStreamResumesAndFilters proves the watch stream: a client that
// reconnects with the last revision it saw gets exactly the events it
// missed, and nobody sees requests they may not see.
func TestEventStreamResumesAndFilters(t *testing.T) {
	c := startCluster(t)
	alice, bob := demo(c)
	carol := c.Login("carol", "requester") // may not see alice's requests
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	first, err := alice.CreateRequest(ctx, api.CreateRequest{Roles: []string{"dba"}, Reason: "one"})
	if err != nil {
		t.Fatal(err)
	}
	// While nobody listens: a review and a second request.
	if _, err := bob.Review(ctx, first.ID, api.ReviewRequest{Verdict: access.VerdictApprove}); err != nil {
		t.Fatal(err)
	}
	second, err := alice.CreateRequest(ctx, api.CreateRequest{Roles: []string{"dba"}, Reason: "two"})
	if err != nil {
		t.Fatal(err)
	}

	// bob resumes from the first request's revision and sees both changes
	// in order.
	events, _, err := bob.Events(ctx, first.Revision)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for ev := range events {
		got = append(got, ev.Request.Reason+"/"+string(ev.Request.State))
		if len(got) == 2 {
			break
		}
	}
	if strings.Join(got, " ") != "one/APPROVED two/PENDING" {
		t.Fatalf("resumed events = %v", got)
	}

	// carol's stream from the same revision carries nothing of alice's;
	// her own request shows up.
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	cevents, _, err := carol.Events(cctx, first.Revision)
	if err != nil {
		t.Fatal(err)
	}
	own, err := carol.CreateRequest(ctx, api.CreateRequest{Roles: []string{"dba"}, Reason: "carol's"})
	if err != nil {
		t.Fatal(err)
	}
	ev := <-cevents
	if ev.Request == nil || ev.Request.ID != own.ID {
		t.Fatalf("carol's first event = %+v, want her own request (not %s or %s)", ev.Request, first.ID, second.ID)
	}
}

// TestScheduledStart: access approved now for a window that starts later
// runs from the start, for the asked duration.
func TestScheduledStart(t *testing.T) {
	c := startCluster(t)
	alice, bob := demo(c)
	ctx := context.Background()
	start := time.Now().Add(3 * time.Hour).Truncate(time.Second).UTC()
	req, err := alice.CreateRequest(ctx, api.CreateRequest{Roles: []string{"dba"}, Reason: "tonight's migration", Duration: "2h", Start: &start})
	if err != nil {
		t.Fatal(err)
	}
	r, err := bob.Review(ctx, req.ID, api.ReviewRequest{Verdict: access.VerdictApprove})
	if err != nil {
		t.Fatal(err)
	}
	if r.AccessExpires == nil || !r.AccessExpires.Equal(start.Add(2*time.Hour)) {
		t.Fatalf("access_expires = %v, want %v", r.AccessExpires, start.Add(2*time.Hour))
	}
	if r.Active(time.Now()) {
		t.Fatal("grant is active before its start")
	}
	past := time.Now().Add(-time.Hour)
	if _, err := alice.CreateRequest(ctx, api.CreateRequest{Roles: []string{"dba"}, Reason: "x", Start: &past}); api.ErrorCode(err) != "invalid" {
		t.Fatalf("start in the past: %v", err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
