// Package metrics holds Gatehouse's Prometheus collectors, all in one
// place so that their names and labels stay consistent and documented. The
// service, the API server and the outbox workers record into a *Metrics;
// a nil *Metrics records nothing, so components and tests without one need
// no checks.
//
// Label values always come from small fixed sets (request states, API
// error codes, credential kinds, platform names), never from user input.
package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/access"
)

// Metrics records what accessd does. The zero value is not usable: call
// New.
type Metrics struct {
	gatherer prometheus.Gatherer

	requests         *prometheus.CounterVec
	policyDecisions  *prometheus.CounterVec
	policyDuration   prometheus.Histogram
	credentials      *prometheus.CounterVec
	logins           *prometheus.CounterVec
	outboxDeliveries *prometheus.CounterVec
	outboxPending    *prometheus.GaugeVec
	outboxOldest     *prometheus.GaugeVec
	httpRequests     *prometheus.CounterVec
	httpDuration     *prometheus.HistogramVec
}

// Outcomes of an outbox delivery attempt.
const (
	OutboxDelivered = "delivered" // posted, removed from the outbox
	OutboxSkipped   = "skipped"   // nothing to deliver (no account on the platform)
	OutboxDropped   = "dropped"   // failed for good (unknown channel, no access)
	OutboxRetried   = "retried"   // failed, will be retried after a backoff
)

// OutcomeSuccess is the outcome label of a call that succeeded; a failed
// one is labelled with its API error code (access.CodeOf).
const OutcomeSuccess = "success"

// New creates the collectors and registers them with reg, which /metrics
// then serves (Gatherer).
func New(reg *prometheus.Registry) *Metrics {
	m := &Metrics{
		gatherer: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_requests_total",
			Help: "Access requests entering each state (pending counts creations), whatever made the change: the API, chat, a policy or expiry.",
		}, []string{"state"}),
		policyDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_policy_decisions_total",
			Help: "Policy decisions on new requests by outcome: review, approve, deny or policy_error (failed closed).",
		}, []string{"outcome"}),
		policyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gatehouse_policy_decision_duration_seconds",
			Help:    "Time to evaluate the policy for a new request, PagerDuty lookups included.",
			Buckets: prometheus.ExponentialBuckets(0.00002, 2, 16),
		}),
		credentials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_credentials_total",
			Help: "Credential requests by kind (ssh, db, kube, app, desktop) and outcome (success or the API error code).",
		}, []string{"kind", "outcome"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_logins_total",
			Help: "Logins by method (password, invite, device) and outcome (success or the API error code, e.g. unauthorized, rate_limited).",
		}, []string{"method", "outcome"}),
		outboxDeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_outbox_deliveries_total",
			Help: "Outbox delivery attempts by platform and outcome: delivered, skipped, dropped (failed for good) or retried.",
		}, []string{"platform", "outcome"}),
		outboxPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatehouse_outbox_pending_messages",
			Help: "Messages waiting in the outbox, as the platform's delivery worker last saw them (reported by the replica that leads it).",
		}, []string{"platform"}),
		outboxOldest: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatehouse_outbox_oldest_pending_seconds",
			Help: "Age of the oldest message waiting in the outbox: grows while a platform is down (reported by the replica that leads it).",
		}, []string{"platform"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_http_requests_total",
			Help: "HTTP API calls by route and status code.",
		}, []string{"route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_http_request_duration_seconds",
			Help:    "HTTP API call latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.policyDecisions, m.policyDuration, m.credentials, m.logins,
		m.outboxDeliveries, m.outboxPending, m.outboxOldest, m.httpRequests, m.httpDuration)
	return m
}

// Gatherer is what /metrics serves.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.gatherer }

// outcome is the outcome label of err.
func outcome(err error) string {
	if err == nil {
		return OutcomeSuccess
	}
	return string(access.CodeOf(err))
}

// RequestEntered counts a request entering state.
func (m *Metrics) RequestEntered(state access.State) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(string(state)).Inc()
}

// PolicyDecided counts a policy decision and its evaluation time.
func (m *Metrics) PolicyDecided(outcome string, took time.Duration) {
	if m == nil {
		return
	}
	m.policyDecisions.WithLabelValues(outcome).Inc()
	m.policyDuration.Observe(took.Seconds())
}

// credentialKinds bounds the kind label: a kind nobody issues is "other".
var credentialKinds = map[string]bool{
	access.CredentialSSH: true, access.CredentialDB: true, access.CredentialKube: true,
	access.CredentialDesktop: true, access.CredentialApp: true,
}

// CredentialRequested counts a credential request of kind and its result.
func (m *Metrics) CredentialRequested(kind string, err error) {
	if m == nil {
		return
	}
	if !credentialKinds[kind] {
		kind = "other"
	}
	m.credentials.WithLabelValues(kind, outcome(err)).Inc()
}

// LoggedIn counts a login by method and its result.
func (m *Metrics) LoggedIn(method string, err error) {
	if m == nil {
		return
	}
	m.logins.WithLabelValues(method, outcome(err)).Inc()
}

// OutboxDelivery counts one delivery attempt on platform.
func (m *Metrics) OutboxDelivery(platform, outcome string) {
	if m == nil {
		return
	}
	m.outboxDeliveries.WithLabelValues(platform, outcome).Inc()
}

// OutboxBacklog records what a delivery pass found waiting: n messages,
// the oldest created at oldest (zero when n is 0).
func (m *Metrics) OutboxBacklog(platform string, n int, oldest time.Duration) {
	if m == nil {
		return
	}
	m.outboxPending.WithLabelValues(platform).Set(float64(n))
	m.outboxOldest.WithLabelValues(platform).Set(oldest.Seconds())
}

// OutboxStopped forgets platform's backlog when this replica stops
// delivering for it (it lost the election or is shutting down), so that
// only the leader reports one.
func (m *Metrics) OutboxStopped(platform string) {
	if m == nil {
		return
	}
	m.outboxPending.DeleteLabelValues(platform)
	m.outboxOldest.DeleteLabelValues(platform)
}

// HTTPRequest counts an API call on route with its status and latency.
func (m *Metrics) HTTPRequest(route string, code int, took time.Duration) {
	if m == nil {
		return
	}
	m.httpRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.httpDuration.WithLabelValues(route).Observe(took.Seconds())
}
