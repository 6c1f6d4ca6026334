package access

import (
	"context"
	"encoding/json"
	"time"
)

// PolicyEngine decides requests with the policy bundle in force. It is
// implemented by policies/ (Rego). Every error means the decision failed:
// callers fail closed (the request stays PENDING under the policy_error
// threshold; a review is refused).
type PolicyEngine interface {
	// Decide evaluates a new request: the package's deny, auto_approve,
	// thresholds, max_ttl and notify rules.
	Decide(ctx context.Context, in PolicyInput) (PolicyDecision, error)
	// DenyReview evaluates deny_review for one review (in.Review and
	// in.Reviewer set); a non-empty result refuses the review with these
	// reasons.
	DenyReview(ctx context.Context, in PolicyInput) ([]string, error)
}

// PolicyInput is `input` of the Rego policies, as DESIGN.md defines it.
type PolicyInput struct {
	Request  PolicyRequest `json:"request"`
	User     PolicyUser    `json:"user"`
	Now      time.Time     `json:"now"`
	Source   string        `json:"source"`
	Review   *PolicyReview `json:"review,omitempty"`
	Reviewer *PolicyUser   `json:"reviewer,omitempty"`
}

// PolicyRequest is input.request.
type PolicyRequest struct {
	ID                 string              `json:"id"`
	User               string              `json:"user"`
	Roles              []string            `json:"roles"`
	Resources          []PolicyResource    `json:"resources"`
	Reason             string              `json:"reason"`
	Duration           string              `json:"duration"`
	SuggestedReviewers []string            `json:"suggested_reviewers"`
	Annotations        map[string][]string `json:"annotations"`
}

// PolicyResource is one requested resource in input.request.resources.
type PolicyResource struct {
	ID     string            `json:"id"`
	Kind   string            `json:"kind"`
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
}

// PolicyUser is input.user (and input.reviewer).
type PolicyUser struct {
	Name   string              `json:"name"`
	Roles  []string            `json:"roles"`
	Traits map[string][]string `json:"traits"`
}

// PolicyReview is input.review for deny_review.
type PolicyReview struct {
	Verdict Verdict  `json:"verdict"`
	Reason  string   `json:"reason"`
	Roles   []string `json:"roles"`
}

// NotifyTarget is one element of the notify rule.
type NotifyTarget struct {
	Platform string `json:"platform"`
	Channel  string `json:"channel"`
}

// PolicyDecision is the validated result of Decide.
type PolicyDecision struct {
	Deny        []string       `json:"deny,omitempty"`
	AutoApprove []string       `json:"auto_approve,omitempty"`
	Thresholds  []Threshold    `json:"thresholds,omitempty"`
	MaxTTL      time.Duration  `json:"max_ttl,omitempty"`
	Notify      []NotifyTarget `json:"notify,omitempty"`
	// BundleRevision identifies the bundle that decided.
	BundleRevision int64 `json:"bundle_revision"`
	// NDCache holds the results of non-deterministic built-ins (http.send,
	// pagerduty.*) so a replay can feed them back instead of calling out.
	NDCache json.RawMessage `json:"nd_cache,omitempty"`
}

// OnCall is one current on-call entry of a user.
type OnCall struct {
	Service          string    `json:"service"`
	EscalationPolicy string    `json:"escalation_policy"`
	EscalationLevel  int       `json:"escalation_level"`
	Schedule         string    `json:"schedule"`
	Start            time.Time `json:"start"`
	End              time.Time `json:"end"`
}

// OnCallDirectory answers who is on call (PagerDuty). An error means the
// directory could not be asked: policies then fail closed, never read it
// as "not on call".
type OnCallDirectory interface {
	OnCalls(ctx context.Context, email string) ([]OnCall, error)
}
