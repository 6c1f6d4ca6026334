package access

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// PolicyAuthor is the author of reviews recorded for policy decisions.
const PolicyAuthor = "policy"

// IsFinal reports whether the request can never change again. APPROVED is
// not final: the grant can still be dropped, revoked or expire.
func (r *Request) IsFinal() bool {
	switch r.State {
	case StateDenied, StateExpired, StateCancelled, StateDropped, StateRevoked:
		return true
	}
	return false
}

// DefaultThresholds is what a request needs when the policy names no
// thresholds: one approval or one denial from anyone allowed to review.
func DefaultThresholds() []Threshold {
	return []Threshold{{Name: "default", Approve: 1, Deny: 1}}
}

// PolicyErrorThreshold is the single threshold of a request whose policy
// evaluation failed: only the fallback reviewers can decide it.
func PolicyErrorThreshold(fallback ReviewerSelector) Threshold {
	return Threshold{Name: "policy_error", Approve: 1, Deny: 1, Reviewers: fallback}
}

// Matches reports whether a review by author, who holds authorRoles, counts
// for the threshold. An empty selector counts everyone allowed to review.
func (t Threshold) Matches(author string, authorRoles []string) bool {
	if len(t.Reviewers.Users) == 0 && len(t.Reviewers.Roles) == 0 {
		return true
	}
	if slices.Contains(t.Reviewers.Users, author) {
		return true
	}
	for _, r := range t.Reviewers.Roles {
		if slices.Contains(authorRoles, r) {
			return true
		}
	}
	return false
}

func (t Threshold) approved() bool { return t.Approvals >= t.Approve }
func (t Threshold) denied() bool   { return t.Deny > 0 && t.Denials >= t.Deny }

func checkVerdict(v Verdict) error {
	switch v {
	case VerdictApprove, VerdictDeny:
		return nil
	case "":
		return fmt.Errorf("%w: review verdict is empty: want APPROVE or DENY", ErrInvalid)
	}
	return fmt.Errorf("%w: review verdict %q: want APPROVE or DENY", ErrInvalid, v)
}

// checkNarrowing checks that a review's roles narrow the request: only on
// approval, and only to roles the request asked for.
func (r *Request) checkNarrowing(rv Review) error {
	if len(rv.Roles) == 0 {
		return nil
	}
	if rv.Verdict != VerdictApprove {
		return fmt.Errorf("%w: only an approving review may narrow the roles of request %s", ErrInvalid, r.ID)
	}
	for _, role := range rv.Roles {
		if !slices.Contains(r.Roles, role) {
			return fmt.Errorf("%w: role %q is not requested by request %s (requested: %s)", ErrInvalid, role, r.ID, strings.Join(r.Roles, ", "))
		}
	}
	return nil
}

// checkOpen refuses decisions on a request that is no longer pending or
// whose pending time ran out (the reaper may not have marked it yet).
func (r *Request) checkOpen(now time.Time) error {
	if r.State != StatePending {
		return fmt.Errorf("%w: request %s is %s: reviews are closed", ErrConflict, r.ID, r.State)
	}
	if !now.Before(r.PendingExpires) {
		return fmt.Errorf("%w: request %s expired at %s: nobody reviewed it in time", ErrExpired, r.ID, r.PendingExpires.UTC().Format(time.RFC3339))
	}
	return nil
}

// AddReview records a reviewer's verdict and moves the request on when a
// threshold is met. reviewerRoles are the author's standing roles, used to
// match threshold selectors. The service has already checked that the
// author may review the request at all. On error nothing changes.
func (r *Request) AddReview(rv Review, reviewerRoles []string, now time.Time) error {
	if err := r.checkOpen(now); err != nil {
		return err
	}
	if rv.Author == "" {
		return fmt.Errorf("%w: review author is empty", ErrInvalid)
	}
	if rv.Author == r.User {
		return fmt.Errorf("%w: you cannot review your own request", ErrForbidden)
	}
	for _, prev := range r.Reviews {
		if prev.Author == rv.Author {
			return fmt.Errorf("%w: %s has already reviewed request %s", ErrConflict, rv.Author, r.ID)
		}
	}
	if err := checkVerdict(rv.Verdict); err != nil {
		return err
	}
	switch rv.Kind {
	case "":
		rv.Kind = ReviewKindReview
	case ReviewKindReview, ReviewKindBreakGlass:
	default:
		return fmt.Errorf("%w: review kind %q cannot be added as a review", ErrInvalid, rv.Kind)
	}
	if err := r.checkNarrowing(rv); err != nil {
		return err
	}
	rv.Time = now
	rv.Roles = slices.Clone(rv.Roles)

	// Work on copies so the caller's slices are never shared with ours.
	thresholds := slices.Clone(r.Thresholds)
	if len(thresholds) == 0 {
		thresholds = DefaultThresholds()
	}
	counts := false
	for i := range thresholds {
		if !thresholds[i].Matches(rv.Author, reviewerRoles) {
			continue
		}
		counts = true
		if rv.Verdict == VerdictApprove {
			thresholds[i].Approvals++
		} else {
			thresholds[i].Denials++
		}
	}
	// A review that counts for no threshold is recorded but must not shape
	// the grant either: narrowing from it could otherwise deny the request
	// by leaving the approvers' choices nothing in common.
	if !counts && len(rv.Roles) > 0 {
		return fmt.Errorf("%w: %s counts for no threshold of request %s (%s), so the review cannot narrow its roles", ErrInvalid, rv.Author, r.ID, thresholdNames(thresholds))
	}
	r.Thresholds = thresholds
	r.Reviews = append(slices.Clone(r.Reviews), rv)

	for _, t := range thresholds {
		if t.denied() {
			r.State = StateDenied
			r.StateReason = rv.Reason
			if r.StateReason == "" {
				r.StateReason = "denied by " + rv.Author
			}
			return nil
		}
	}
	// A denial never approves, even against thresholds that need no
	// approvals.
	if rv.Verdict != VerdictApprove {
		return nil
	}
	for _, t := range thresholds {
		if !t.approved() {
			return nil
		}
	}
	granted := r.Roles
	var approvers []string
	for _, prev := range r.Reviews {
		if prev.Verdict != VerdictApprove {
			continue
		}
		approvers = append(approvers, prev.Author)
		if len(prev.Roles) > 0 {
			granted = intersect(granted, prev.Roles)
		}
	}
	if len(r.Roles) > 0 && len(granted) == 0 {
		r.State = StateDenied
		r.StateReason = "the approving reviews narrowed the roles to nothing in common: " + describeNarrowing(r.Reviews)
		return nil
	}
	r.GrantedRoles = slices.Clone(granted)
	r.StateReason = "approved by " + strings.Join(approvers, ", ")
	r.grant(now)
	return nil
}

func thresholdNames(ts []Threshold) string {
	names := make([]string, 0, len(ts))
	for _, t := range ts {
		names = append(names, t.Name)
	}
	return strings.Join(names, ", ")
}

// intersect keeps the elements of base that are in keep, in base's order.
func intersect(base, keep []string) []string {
	out := make([]string, 0, len(base))
	for _, b := range base {
		if slices.Contains(keep, b) {
			out = append(out, b)
		}
	}
	return out
}

func describeNarrowing(reviews []Review) string {
	var parts []string
	for _, rv := range reviews {
		if rv.Verdict == VerdictApprove && len(rv.Roles) > 0 {
			parts = append(parts, fmt.Sprintf("%s approved [%s]", rv.Author, strings.Join(rv.Roles, ", ")))
		}
	}
	return strings.Join(parts, "; ")
}

// grant approves the request: access starts now, or at the scheduled start
// if that is later, and lasts r.Duration (already capped by the service).
func (r *Request) grant(now time.Time) {
	r.State = StateApproved
	start := now
	if r.Start != nil && r.Start.After(now) {
		start = *r.Start
	}
	end := start.Add(r.Duration.Std())
	r.AccessExpires = &end
	if len(r.GrantedRoles) == 0 && len(r.Roles) > 0 {
		r.GrantedRoles = slices.Clone(r.Roles)
	}
}

// AdminDecide sets the final decision directly (accessctl requests
// approve|deny), recorded as a review of kind admin. The reason is
// mandatory, and nobody, admins included, decides their own request.
func (r *Request) AdminDecide(rv Review, now time.Time) error {
	rv.Kind = ReviewKindAdmin
	rv.Reason = strings.TrimSpace(rv.Reason)
	if rv.Author == "" {
		return fmt.Errorf("%w: decision author is empty", ErrInvalid)
	}
	if rv.Author == r.User {
		return fmt.Errorf("%w: you cannot decide your own request, admins included", ErrForbidden)
	}
	if err := r.checkOpen(now); err != nil {
		return err
	}
	if err := checkVerdict(rv.Verdict); err != nil {
		return err
	}
	if rv.Reason == "" {
		return fmt.Errorf("%w: an admin decision needs a reason", ErrInvalid)
	}
	if err := r.checkNarrowing(rv); err != nil {
		return err
	}
	rv.Time = now
	rv.Roles = slices.Clone(rv.Roles)
	r.Reviews = append(slices.Clone(r.Reviews), rv)
	r.StateReason = rv.Reason
	if rv.Verdict == VerdictDeny {
		r.State = StateDenied
		return nil
	}
	r.GrantedRoles = slices.Clone(r.Roles)
	if len(rv.Roles) > 0 {
		r.GrantedRoles = intersect(r.Roles, rv.Roles)
	}
	r.grant(now)
	return nil
}

// AutoDecide records the policy's decision at creation as a review of kind
// policy by "policy". The reasons become the state reason. It runs before
// the request is stored, so the pending time is not checked.
func (r *Request) AutoDecide(verdict Verdict, reasons []string, now time.Time) error {
	if r.State != StatePending {
		return fmt.Errorf("%w: request %s is %s: only a pending request can be decided", ErrConflict, r.ID, r.State)
	}
	if err := checkVerdict(verdict); err != nil {
		return err
	}
	reason := strings.Join(reasons, "; ")
	r.Reviews = append(slices.Clone(r.Reviews), Review{
		Author: PolicyAuthor, Verdict: verdict, Reason: reason, Time: now, Kind: ReviewKindPolicy,
	})
	if reason == "" {
		reason = "approved by policy"
		if verdict == VerdictDeny {
			reason = "denied by policy"
		}
	}
	r.StateReason = reason
	if verdict == VerdictDeny {
		r.State = StateDenied
		return nil
	}
	r.GrantedRoles = slices.Clone(r.Roles)
	r.grant(now)
	return nil
}

// Cancel withdraws a pending request; only its requester may.
func (r *Request) Cancel(by string, now time.Time) error {
	if by != r.User {
		return fmt.Errorf("%w: only the requester %s can cancel request %s", ErrForbidden, r.User, r.ID)
	}
	if r.State != StatePending {
		return fmt.Errorf("%w: request %s is %s: only a pending request can be cancelled", ErrConflict, r.ID, r.State)
	}
	// now is unused: a cancelled request has no times to record, and a
	// request past its pending time may still be withdrawn.
	_ = now
	r.State = StateCancelled
	r.StateReason = "cancelled by " + by
	return nil
}

// Drop gives an approved grant back; only its requester may.
func (r *Request) Drop(by string, now time.Time) error {
	if by != r.User {
		return fmt.Errorf("%w: only the requester %s can drop request %s", ErrForbidden, r.User, r.ID)
	}
	if r.State != StateApproved {
		return fmt.Errorf("%w: request %s is %s: only an approved request can be dropped", ErrConflict, r.ID, r.State)
	}
	r.State = StateDropped
	r.StateReason = "dropped by " + by
	r.endAccess(now)
	return nil
}

// Revoke ends an approved grant (an admin action; the service checks the
// right). The reason is mandatory and becomes the state reason.
func (r *Request) Revoke(by, reason string, now time.Time) error {
	reason = strings.TrimSpace(reason)
	if by == "" {
		return fmt.Errorf("%w: revoking needs the name of who revokes", ErrInvalid)
	}
	if reason == "" {
		return fmt.Errorf("%w: revoking request %s needs a reason", ErrInvalid, r.ID)
	}
	if r.State != StateApproved {
		return fmt.Errorf("%w: request %s is %s: only an approved request can be revoked", ErrConflict, r.ID, r.State)
	}
	r.State = StateRevoked
	r.StateReason = reason
	r.endAccess(now)
	return nil
}

// endAccess pulls access_expires in to now, so that anything reading only
// the expiry (credential lifetimes, reconciliation) also sees the end.
func (r *Request) endAccess(now time.Time) {
	if r.AccessExpires == nil || now.Before(*r.AccessExpires) {
		end := now
		r.AccessExpires = &end
	}
}

// Expire moves a pending request past its pending time, or an approved one
// past its access window, to EXPIRED. It reports whether it changed r.
func (r *Request) Expire(now time.Time) bool {
	switch {
	case r.State == StatePending && !now.Before(r.PendingExpires):
		r.State = StateExpired
		r.StateReason = "nobody reviewed it in time"
	case r.State == StateApproved && r.AccessExpires != nil && !now.Before(*r.AccessExpires):
		r.State = StateExpired
		r.StateReason = "access window ended"
	default:
		return false
	}
	return true
}

// Active reports whether the grant is usable at now: approved, started and
// not yet over.
func (r *Request) Active(now time.Time) bool {
	if r.State != StateApproved || r.AccessExpires == nil || !now.Before(*r.AccessExpires) {
		return false
	}
	return r.Start == nil || !now.Before(*r.Start)
}

// ProgressSummary shows approvals against the needed count per threshold,
// e.g. "security 1/2, dba 0/1".
func (r *Request) ProgressSummary() string {
	parts := make([]string, 0, len(r.Thresholds))
	for _, t := range r.Thresholds {
		parts = append(parts, fmt.Sprintf("%s %d/%d", t.Name, t.Approvals, t.Approve))
	}
	return strings.Join(parts, ", ")
}
