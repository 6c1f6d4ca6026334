package server_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/internal/testcluster"
	"github.com/gatehouse-dev/gatehouse/pki"
	"github.com/gatehouse-dev/gatehouse/policies"
	"github.com/gatehouse-dev/gatehouse/service"
)

// TestMetricsTellWhatHappened: an operator reads off /metrics what the
// cluster did: logins and their failures, requests entering each state,
// the policy's decisions, credentials issued and refused, API calls.
func TestMetricsTellWhatHappened(t *testing.T) {
	engine, err := policies.New(policies.Default())
	if err != nil {
		t.Fatal(err)
	}
	c := testcluster.StartWithPolicy(t, engine, policies.CheckBundle)
	c.Apply(sshRoles)
	alice := c.Login("alice", "ops-requester") // invite logins
	bob := c.Login("bob", "ops-reviewer")
	ctx := context.Background()
	_, csrPEM, err := pki.NewKeyAndCSR("alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Anonymous().Login(ctx, api.LoginRequest{User: "alice", Password: "not-her-password", CSR: string(csrPEM)}); api.ErrorCode(err) != "unauthorized" {
		t.Fatalf("a wrong password: %v", err)
	}

	_, pubLine := newSSHKey(t)
	r, err := alice.CreateRequest(ctx, api.CreateRequest{Resources: []string{"/" + testcluster.Name + "/node/web-1"}, Reason: "deploy fix", Duration: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.IssueCredential(ctx, r.ID, api.CredentialRequest{Kind: "ssh", PublicKey: pubLine}); api.ErrorCode(err) != "conflict" {
		t.Fatalf("credentials of a pending request: %v", err)
	}
	if _, err := bob.Review(ctx, r.ID, api.ReviewRequest{Verdict: access.VerdictApprove}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.IssueCredential(ctx, r.ID, api.CredentialRequest{Kind: "ssh", PublicKey: pubLine}); err != nil {
		t.Fatal(err)
	}
	// A change made inside the service, not through the API, counts too.
	if _, err := c.Svc.DropAll(ctx, mustCaller(t, c, "alice")); err != nil {
		t.Fatal(err)
	}

	got := scrape(t, c)
	for _, want := range []string{
		`gatehouse_logins_total{method="invite",outcome="success"} 2`,
		`gatehouse_logins_total{method="password",outcome="unauthorized"} 1`,
		`gatehouse_requests_total{state="PENDING"} 1`,
		`gatehouse_requests_total{state="APPROVED"} 1`,
		`gatehouse_requests_total{state="DROPPED"} 1`,
		`gatehouse_policy_decisions_total{outcome="review"} 1`,
		`gatehouse_policy_decision_duration_seconds_count 1`,
		`gatehouse_credentials_total{kind="ssh",outcome="conflict"} 1`,
		`gatehouse_credentials_total{kind="ssh",outcome="success"} 1`,
		`gatehouse_http_requests_total{code="201",route="POST /v1/requests"} 1`,
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", grepLines(got, "gatehouse_"))
	}
}

func mustCaller(t *testing.T, c *testcluster.Cluster, user string) service.Caller {
	t.Helper()
	caller, err := c.Svc.Caller(context.Background(), user, access.SourceCLI)
	if err != nil {
		t.Fatal(err)
	}
	return caller
}

// scrape GETs /metrics as Prometheus does (it needs no certificate).
func scrape(t *testing.T, c *testcluster.Cluster) string {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.Pool}}}
	resp, err := hc.Get(c.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s %v", resp.Status, err)
	}
	return string(b)
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
