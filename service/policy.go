package service

import (
	"context"

	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/gatehouse-dev/gatehouse/access"
)

// Outcomes of the policy decision at creation (Decision.Outcome).
const (
	OutcomeReview      = "review"
	OutcomeApprove     = "approve"
	OutcomeDeny        = "deny"
	OutcomePolicyError = "policy_error"
)

// policyInput builds input for the Rego policies.
func (s *Service) policyInput(c Caller, r *access.Request, resources []access.PolicyResource, now time.Time) access.PolicyInput {
	if resources == nil {
		resources = []access.PolicyResource{}
	}
	return access.PolicyInput{
		Request: access.PolicyRequest{
			ID: r.ID, User: r.User, Roles: nonNil(r.Roles), Resources: resources, Reason: r.Reason,
			Duration: r.Duration.String(), SuggestedReviewers: nonNil(r.SuggestedReviewers), Annotations: nonNilMap(r.Annotations),
		},
		User:   policyUser(c),
		Now:    now,
		Source: r.Source,
	}
}

func policyUser(c Caller) access.PolicyUser {
	return access.PolicyUser{Name: c.Name(), Roles: nonNil(c.User.Spec.Roles), Traits: nonNilMap(c.User.Spec.Traits)}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilMap(m map[string][]string) map[string][]string {
	if m == nil {
		return map[string][]string{}
	}
	return m
}

// decide applies the policy to a new request: thresholds, max_ttl, notify,
// and an immediate deny or approval. A policy that fails leaves the request
// PENDING under the policy_error threshold only the fallback reviewers
// satisfy: never approved, never silently on the default threshold. The
// decision, its input and the non-deterministic built-in results go into
// the audit fields.
func (s *Service) decide(ctx context.Context, c Caller, r *access.Request, resources []access.PolicyResource, now time.Time, fields map[string]any) []access.OutboxMessage {
	if s.policy == nil {
		return nil
	}
	in := s.policyInput(c, r, resources, now)
	fields["policy_input"] = in
	start := time.Now()
	d, err := s.policy.Decide(ctx, in)
	defer func() { s.metrics.PolicyDecided(r.Decision.Outcome, time.Since(start)) }()
	if err != nil {
		r.Thresholds = []access.Threshold{access.PolicyErrorThreshold(s.cfg.FallbackReviewers)}
		r.Decision = &access.Decision{Outcome: OutcomePolicyError, Reasons: []string{err.Error()}}
		fields["decision"] = OutcomePolicyError
		fields["policy_error"] = err.Error()
		s.log.Warn("policy failed; the request waits for the fallback reviewers", "id", r.ID, "err", err)
		return nil
	}
	fields["bundle_revision"] = d.BundleRevision
	if len(d.NDCache) > 0 {
		fields["nd_cache"] = d.NDCache
	}
	r.Decision = &access.Decision{Outcome: OutcomeReview, BundleRevision: d.BundleRevision, MaxTTL: access.Duration(d.MaxTTL), Notify: d.Notify}
	if len(d.Thresholds) > 0 {
		r.Thresholds = d.Thresholds
	}
	if d.MaxTTL > 0 && r.Duration.Std() > d.MaxTTL {
		r.Duration = access.Duration(d.MaxTTL)
	}
	switch {
	case len(d.Deny) > 0:
		r.Decision.Outcome, r.Decision.Reasons = OutcomeDeny, d.Deny
		_ = r.AutoDecide(access.VerdictDeny, d.Deny, now) // a new request is PENDING
	case len(d.AutoApprove) > 0:
		r.Decision.Outcome, r.Decision.Reasons = OutcomeApprove, d.AutoApprove
		_ = r.AutoDecide(access.VerdictApprove, d.AutoApprove, now)
	}
	fields["decision"] = r.Decision.Outcome
	if len(r.Decision.Reasons) > 0 {
		fields["policy_reasons"] = r.Decision.Reasons
	}
	return s.notifications(r, d.Notify, now)
}

// notifications turns the policy's notify targets into outbox messages.
// Chat targets are delivered by the bots' workers; PagerDuty targets open
// an incident on the named service.
func (s *Service) notifications(r *access.Request, targets []access.NotifyTarget, now time.Time) []access.OutboxMessage {
	var out []access.OutboxMessage
	for _, t := range targets {
		if t.Platform != access.PlatformPagerDuty {
			continue // chat delivery arrives with the bots
		}
		what := strings.Join(append(append([]string{}, r.Roles...), r.Resources...), ", ")
		out = append(out, access.OutboxMessage{
			ID: uuid.NewString(), Platform: access.PlatformPagerDuty, Kind: access.OutboxIncident, RequestID: r.ID,
			Target: t.Channel, Created: now,
			Title: fmt.Sprintf("Access request by %s for %s (%s)", r.User, what, r.State),
			Body:  fmt.Sprintf("%s asks for %s for %s: %q.\nState: %s %s\nSee: access request show %s", r.User, what, r.Duration, r.Reason, r.State, r.StateReason, r.ID),
		})
	}
	return out
}

// checkReview asks the policy's deny_review about one review. An error
// refuses the review (fail closed); admins can still decide with
// `accessctl requests approve|deny`.
func (s *Service) checkReview(ctx context.Context, c Caller, id string, in ReviewInput) error {
	if s.policy == nil {
		return nil
	}
	r, err := s.GetRequest(ctx, c, id)
	if err != nil {
		return err
	}
	pin := s.policyInput(Caller{User: access.User{Metadata: access.Metadata{Name: r.User}}}, &r, nil, s.now().UTC())
	pin.Review = &access.PolicyReview{Verdict: in.Verdict, Reason: in.Reason, Roles: nonNil(in.Roles)}
	reviewer := policyUser(c)
	pin.Reviewer = &reviewer
	// The requester's own traits are what a policy about the request reads.
	if u, err := s.store.GetUser(ctx, r.User); err == nil {
		pin.User = access.PolicyUser{Name: u.Metadata.Name, Roles: nonNil(u.Spec.Roles), Traits: nonNilMap(u.Spec.Traits)}
	}
	reasons, err := s.policy.DenyReview(ctx, pin)
	if err != nil {
		return fmt.Errorf("%w: the policy could not check this review, so it is refused (an admin can still decide): %v", access.ErrPolicy, err)
	}
	if len(reasons) > 0 {
		return fmt.Errorf("%w: the policy refuses this review: %s", access.ErrForbidden, strings.Join(reasons, "; "))
	}
	return nil
}

// PushPolicy installs a new policy bundle (rule policy:update) after it
// compiles; a bundle that does not compile is refused and the one in force
// stays.
func (s *Service) PushPolicy(ctx context.Context, c Caller, b access.PolicyBundle) (access.PolicyBundle, error) {
	if err := require(c, access.RulePolicy, access.VerbUpdate); err != nil {
		return access.PolicyBundle{}, err
	}
	if len(b.Files) == 0 {
		return access.PolicyBundle{}, fmt.Errorf("%w: the bundle has no files", access.ErrInvalid)
	}
	if n := b.Size(); n > access.MaxPolicyBundleBytes {
		return access.PolicyBundle{}, fmt.Errorf("%w: policy bundle is %d bytes, at most %d", access.ErrInvalid, n, access.MaxPolicyBundleBytes)
	}
	if s.checkBundle == nil {
		return access.PolicyBundle{}, fmt.Errorf("%w: this server has no policy engine", access.ErrInvalid)
	}
	if err := s.checkBundle(b); err != nil {
		return access.PolicyBundle{}, fmt.Errorf("%w: %v", access.ErrInvalid, err)
	}
	b.Author, b.Created = c.Name(), s.now().UTC()
	names := make([]string, 0, len(b.Files))
	for n := range b.Files {
		names = append(names, n)
	}
	return s.store.PutPolicyBundle(ctx, b, s.audit(c, "policy.push", "", OutcomeSuccess, "", map[string]any{"files": names, "bytes": b.Size()}))
}

// InstallPolicy stores a bundle on behalf of the host (the policies.dir
// watcher), after the same check a push passes.
func (s *Service) InstallPolicy(ctx context.Context, b access.PolicyBundle, source string) (access.PolicyBundle, error) {
	system := Caller{User: access.User{Metadata: access.Metadata{Name: "system"}}, Source: source, Roles: access.RoleSet{Roles: []access.Role{BuiltinAdminRole()}}}
	return s.PushPolicy(ctx, system, b)
}

// GetPolicy returns the bundle in force in etcd (rule policy:read);
// ErrNotFound means the built-in default applies.
func (s *Service) GetPolicy(ctx context.Context, c Caller) (access.PolicyBundle, error) {
	if err := require(c, access.RulePolicy, access.VerbRead); err != nil {
		return access.PolicyBundle{}, err
	}
	return s.store.GetPolicyBundle(ctx)
}
