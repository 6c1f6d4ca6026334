package metrics

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatehouse-dev/gatehouse/access"
)

// TestNilRecordsNothing: components without metrics call the same
// methods on a nil *Metrics.
func TestNilRecordsNothing(t *testing.T) {
	var m *Metrics
	m.RequestEntered(access.StatePending)
	m.PolicyDecided("review", time.Millisecond)
	m.CredentialRequested(access.CredentialSSH, nil)
	m.LoggedIn("password", nil)
	m.OutboxDelivery("slack", OutboxDelivered)
	m.OutboxBacklog("slack", 3, time.Second)
	m.OutboxStopped("slack")
	m.HTTPRequest("GET /healthz", 200, time.Millisecond)
}

// TestOutcomesAndLabels: failures are labelled with their API error code,
// and a credential kind nobody issues cannot grow the label set.
func TestOutcomesAndLabels(t *testing.T) {
	m := New(prometheus.NewRegistry())
	m.LoggedIn("password", nil)
	m.LoggedIn("password", fmt.Errorf("wrong password: %w", access.ErrUnauthorized))
	m.LoggedIn("password", fmt.Errorf("locked out: %w", access.ErrRateLimited))
	m.CredentialRequested(access.CredentialDB, fmt.Errorf("database user: %w", access.ErrForbidden))
	m.CredentialRequested("x\"} 1\nevil", fmt.Errorf("kind: %w", access.ErrInvalid))

	want := `
# HELP gatehouse_logins_total Logins by method (password, invite, device) and outcome (success or the API error code, e.g. unauthorized, rate_limited).
# TYPE gatehouse_logins_total counter
gatehouse_logins_total{method="password",outcome="rate_limited"} 1
gatehouse_logins_total{method="password",outcome="success"} 1
gatehouse_logins_total{method="password",outcome="unauthorized"} 1
# HELP gatehouse_credentials_total Credential requests by kind (ssh, db, kube, app, desktop) and outcome (success or the API error code).
# TYPE gatehouse_credentials_total counter
gatehouse_credentials_total{kind="db",outcome="forbidden"} 1
gatehouse_credentials_total{kind="other",outcome="invalid"} 1
`
	if err := testutil.CollectAndCompare(m.logins, strings.NewReader(want), "gatehouse_logins_total"); err != nil {
		t.Error(err)
	}
	if err := testutil.CollectAndCompare(m.credentials, strings.NewReader(want), "gatehouse_credentials_total"); err != nil {
		t.Error(err)
	}
}

// TestOutboxBacklogOnlyFromTheLeader: a replica that stops delivering for
// a platform stops reporting its backlog, so the one that leads next is
// the only one that does.
func TestOutboxBacklogOnlyFromTheLeader(t *testing.T) {
	m := New(prometheus.NewRegistry())
	m.OutboxBacklog("slack", 4, 90*time.Second)
	if got := testutil.ToFloat64(m.outboxOldest.WithLabelValues("slack")); got != 90 {
		t.Fatalf("oldest pending = %v s, want 90", got)
	}
	m.OutboxStopped("slack")
	if n := testutil.CollectAndCount(m.outboxPending); n != 0 {
		t.Fatalf("%d backlog series after stopping, want 0", n)
	}
}
