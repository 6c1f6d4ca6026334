// Package service holds the application services every front end calls:
// the HTTP API today, the chat bots later. Each call names its caller; the
// service loads the caller's standing roles, checks the right, does the work
// in one store transaction and writes the audit event in that same
// transaction.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/inventory"
	"github.com/gatehouse-dev/gatehouse/metrics"
)

// Config holds the service-wide settings from accessd.yaml.
type Config struct {
	ClusterName string
	// PendingTTL is how long a request waits for reviews.
	PendingTTL time.Duration
	// MaxDuration caps every access window.
	MaxDuration time.Duration
	// DefaultDuration is the access window when a request asks for none.
	DefaultDuration time.Duration
	// FallbackReviewers decide when the policy fails.
	FallbackReviewers access.ReviewerSelector
	// SessionTTL is the lifetime of session certificates.
	SessionTTL time.Duration
	// InviteTTL is how long an invite token can be used.
	InviteTTL time.Duration
	// CRLBaseURL is the plain-HTTP base URL (http://HOST:PORT) where
	// accessd serves CRLs (crl_listen); desktop certificates point their
	// CRL distribution point under it. Empty: no desktop credentials,
	// since Windows refuses smartcard logon without a reachable CRL.
	CRLBaseURL string
	// Chat routes request cards to the chat platforms.
	Chat ChatConfig
	// LoginLimit locks password logins of a name out after failures
	// (loginlimit.go); zero fields take access's defaults.
	LoginLimit access.LoginLimit
}

// Defaults from DESIGN.md.
const (
	DefaultPendingTTL      = time.Hour
	DefaultMaxDuration     = 12 * time.Hour
	DefaultRequestDuration = time.Hour
	DefaultSessionTTL      = 12 * time.Hour
	DefaultInviteTTL       = 24 * time.Hour
	// maxReasonLen keeps reasons readable on cards and far below etcd's
	// value limit.
	maxReasonLen = 1024
)

func (c *Config) setDefaults() {
	if c.PendingTTL == 0 {
		c.PendingTTL = DefaultPendingTTL
	}
	if c.MaxDuration == 0 {
		c.MaxDuration = DefaultMaxDuration
	}
	if c.DefaultDuration == 0 {
		c.DefaultDuration = DefaultRequestDuration
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = DefaultSessionTTL
	}
	if c.InviteTTL == 0 {
		c.InviteTTL = DefaultInviteTTL
	}
	c.LoginLimit = c.LoginLimit.WithDefaults()
	if len(c.FallbackReviewers.Roles) == 0 && len(c.FallbackReviewers.Users) == 0 {
		c.FallbackReviewers = access.ReviewerSelector{Roles: []string{"admin"}}
	}
}

// Service is the set of application services over one store.
type Service struct {
	cfg   Config
	store access.Store
	index *inventory.Index
	now   func() time.Time
	log   *slog.Logger
	// policy decides requests; nil means the default thresholds.
	policy access.PolicyEngine
	// checkBundle compiles a bundle before it may be pushed.
	checkBundle func(access.PolicyBundle) error
	// issuer signs credentials; nil means none are issued.
	issuer access.CredentialIssuer
	// kek seals the cluster TLS CA key (clusterca.go); zero: kept in the clear.
	kek ca.KEK
	// metrics records state changes, decisions, credentials and logins;
	// nil records nothing.
	metrics *metrics.Metrics
}

// Option configures a Service.
type Option func(*Service)

// WithClock injects the clock (tests).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// WithPolicy sets the policy engine and the check (compile, validate) a
// pushed bundle must pass before it is stored.
func WithPolicy(e access.PolicyEngine, check func(access.PolicyBundle) error) Option {
	return func(s *Service) { s.policy, s.checkBundle = e, check }
}

// WithMetrics records what the service does into m.
func WithMetrics(m *metrics.Metrics) Option { return func(s *Service) { s.metrics = m } }

// New returns the services over st, searching idx.
func New(cfg Config, st access.Store, idx *inventory.Index, opts ...Option) *Service {
	cfg.setDefaults()
	s := &Service{cfg: cfg, store: st, index: idx, now: time.Now, log: slog.Default()}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Config returns the effective configuration.
func (s *Service) Config() Config { return s.cfg }

// Metrics returns what the service records into (for wiring the workers
// that act for it); nil when it records nothing.
func (s *Service) Metrics() *metrics.Metrics { return s.metrics }

// Store returns the underlying store (for wiring only).
func (s *Service) Store() access.Store { return s.store }

// Caller is an authenticated user with the standing roles loaded for this
// call. Rights come from these roles only, never from a granted request.
type Caller struct {
	User   access.User
	Roles  access.RoleSet
	Source string
	// all holds every role as read with the user, to resolve requested and
	// search_as roles without another etcd read.
	all map[string]access.Role
}

// Name is the caller's user name.
func (c Caller) Name() string { return c.User.Metadata.Name }

// Caller loads user name's standing roles and refuses a locked or unknown
// user, in one etcd read. Every authenticated call goes through here, so a
// lock or a role change takes effect at the next call, session
// certificates included.
func (s *Service) Caller(ctx context.Context, name, source string) (Caller, error) {
	p, err := s.store.Principal(ctx, name)
	if p.Lock != nil {
		return Caller{}, fmt.Errorf("%w: user %q is locked", access.ErrUnauthorized, name)
	}
	if errors.Is(err, access.ErrNotFound) {
		return Caller{}, fmt.Errorf("%w: user %q does not exist", access.ErrUnauthorized, name)
	}
	if err != nil {
		return Caller{}, fmt.Errorf("load user %q: %w", name, err)
	}
	return Caller{User: p.User, Roles: access.NewRoleSet(p.User, s.pick(p.Roles, p.User.Spec.Roles)), Source: source, all: p.Roles}, nil
}

// pick returns the named roles; a role deleted since it was assigned is
// skipped (it grants nothing) rather than locking the user out.
func (s *Service) pick(all map[string]access.Role, names []string) []access.Role {
	roles := make([]access.Role, 0, len(names))
	for _, n := range names {
		r, ok := all[n]
		if !ok {
			s.log.Warn("user has a role that does not exist", "role", n)
			continue
		}
		roles = append(roles, r)
	}
	return roles
}

// require refuses the call unless the caller's standing roles allow verb on
// resource.
func require(c Caller, resource, verb string) error {
	if c.Roles.Allows(resource, verb) {
		return nil
	}
	return fmt.Errorf("%w: %s may not %s %s", access.ErrForbidden, c.Name(), verb, resource)
}

// audit builds an audit event. Empty fields are left out, so events read
// the same whatever optional input a call had.
func (s *Service) audit(c Caller, typ, requestID, outcome, msg string, fields map[string]any) access.AuditEvent {
	for k, v := range fields {
		switch v := v.(type) {
		case nil:
			delete(fields, k)
		case []string:
			if len(v) == 0 {
				delete(fields, k)
			}
		case string:
			if v == "" {
				delete(fields, k)
			}
		}
	}
	return access.AuditEvent{
		Time:      s.now().UTC(),
		Type:      typ,
		Actor:     c.Name(),
		RequestID: requestID,
		Outcome:   outcome,
		Source:    c.Source,
		Message:   msg,
		Fields:    fields,
	}
}

// Outcomes of audit events.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
)
