package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/gatehouse-dev/gatehouse/access"
)

// maxStartAhead bounds how far in the future a scheduled start may be.
const maxStartAhead = 7 * 24 * time.Hour

// CreateRequestInput is what a requester asks for.
type CreateRequestInput struct {
	Roles     []string      `json:"roles,omitempty"`
	Resources []string      `json:"resources,omitempty"`
	Reason    string        `json:"reason"`
	Reviewers []string      `json:"reviewers,omitempty"`
	Duration  time.Duration `json:"-"`
	Start     *time.Time    `json:"start,omitempty"`
}

// CreateRequest validates and stores a new access request for the caller.
// Bad input is refused with an error naming the problem and nothing is
// written.
func (s *Service) CreateRequest(ctx context.Context, c Caller, in CreateRequestInput) (access.Request, error) {
	now := s.now().UTC()
	if len(in.Roles) == 0 && len(in.Resources) == 0 {
		return access.Request{}, fmt.Errorf("%w: a request needs --roles or --resource", access.ErrInvalid)
	}
	reason := strings.TrimSpace(in.Reason)
	if reason == "" {
		return access.Request{}, fmt.Errorf("%w: a request needs a reason", access.ErrInvalid)
	}
	if len(reason) > maxReasonLen {
		return access.Request{}, fmt.Errorf("%w: reason is %d bytes, at most %d", access.ErrInvalid, len(reason), maxReasonLen)
	}
	for _, r := range in.Reviewers {
		if err := access.ValidName(r); err != nil {
			return access.Request{}, fmt.Errorf("reviewer: %w", err)
		}
	}
	if in.Start != nil {
		st := in.Start.UTC()
		if st.Before(now.Add(-time.Minute)) {
			return access.Request{}, fmt.Errorf("%w: start %s is in the past", access.ErrInvalid, st.Format(time.RFC3339))
		}
		if st.After(now.Add(maxStartAhead)) {
			return access.Request{}, fmt.Errorf("%w: start %s is more than %s ahead", access.ErrInvalid, st.Format(time.RFC3339), maxStartAhead)
		}
		in.Start = &st
	}

	roles, err := s.requestableRoles(ctx, c, in.Roles)
	if err != nil {
		return access.Request{}, err
	}
	resources, found, resolved, err := s.resolveResources(ctx, c, in.Resources)
	if err != nil {
		return access.Request{}, err
	}
	all := sortedUnion(roles, resolved)

	caps := []access.DurationCap{{Name: "requests.max_duration", Max: s.cfg.MaxDuration}}
	if d := c.Roles.MaxDuration(all); d > 0 {
		caps = append(caps, access.DurationCap{Name: "max_duration of your roles", Max: d})
	}
	window, err := access.AccessWindow(in.Duration, s.cfg.DefaultDuration, caps...)
	if err != nil {
		return access.Request{}, err
	}

	req := access.Request{
		ID:                 uuid.NewString(),
		User:               c.Name(),
		Roles:              all,
		Resources:          resources,
		Reason:             reason,
		SuggestedReviewers: sortedUnion(in.Reviewers, c.Roles.SuggestedReviewers()),
		Duration:           access.Duration(window),
		Start:              in.Start,
		State:              access.StatePending,
		Created:            now,
		PendingExpires:     now.Add(s.cfg.PendingTTL),
		Thresholds:         access.DefaultThresholds(),
		Decision:           &access.Decision{Outcome: OutcomeReview},
		Annotations:        c.Roles.Annotations(),
		Source:             sourceOr(c.Source),
	}
	fields := map[string]any{
		"roles": req.Roles, "resources": req.Resources, "reason": req.Reason, "duration": req.Duration.String(),
	}
	notify := s.decide(ctx, c, &req, found, now, fields)
	notify = append(notify, s.chatCreated(&req, now)...)
	events := []access.AuditEvent{s.audit(c, "request.create", req.ID, OutcomeSuccess, "", fields)}
	if req.State != access.StatePending {
		policy := Caller{User: access.User{Metadata: access.Metadata{Name: access.PolicyAuthor}}, Source: c.Source}
		events = append(events, s.stateEvents(policy, access.StatePending, &req)...)
	}
	created, err := s.store.CreateRequestFx(ctx, req, access.Effects{Audit: events, Outbox: notify})
	if err != nil {
		return access.Request{}, fmt.Errorf("store request: %w", err)
	}
	s.log.Info("request created", "id", created.ID, "user", created.User, "roles", created.Roles, "resources", created.Resources)
	s.metrics.RequestEntered(access.StatePending)
	if created.State != access.StatePending {
		s.metrics.RequestEntered(created.State)
	}
	return created, nil
}

func sourceOr(src string) string {
	if src == "" {
		return access.SourceAPI
	}
	return src
}

// requestableRoles checks that every asked role exists and that a standing
// role of the caller allows requesting it.
func (s *Service) requestableRoles(ctx context.Context, c Caller, names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for _, n := range names {
		n = strings.TrimSpace(n)
		if err := access.ValidName(n); err != nil {
			return nil, fmt.Errorf("role: %w", err)
		}
		if _, ok := c.all[n]; !ok {
			return nil, fmt.Errorf("%w: unknown role %q", access.ErrInvalid, n)
		}
		if !c.Roles.CanRequestRole(n) {
			return nil, fmt.Errorf("%w: %s may not request role %q", access.ErrForbidden, c.Name(), n)
		}
		out = append(out, n)
	}
	return out, nil
}

// resolveResources parses resource IDs and finds, for each, the caller's
// search_as_roles that grant it. A resource none of them grants is refused.
func (s *Service) resolveResources(ctx context.Context, c Caller, ids []string) (canonical []string, found []access.PolicyResource, roles []string, err error) {
	if len(ids) == 0 {
		return nil, nil, nil, nil
	}
	searchAs := s.searchAsRoleSets(c)
	seen := map[string]bool{}
	for _, raw := range ids {
		id, err := access.ParseResourceID(strings.TrimSpace(raw))
		if err != nil {
			return nil, nil, nil, err
		}
		if id.Cluster != s.cfg.ClusterName {
			return nil, nil, nil, fmt.Errorf("%w: resource %s is in cluster %q; this cluster is %q", access.ErrInvalid, id, id.Cluster, s.cfg.ClusterName)
		}
		// Kubernetes objects inside a cluster are granted through the
		// cluster they live in.
		kind, name := id.Kind, id.Name
		if id.IsKubernetesSubresource() {
			kind, name = access.KindKubeCluster, id.KubeCluster
		}
		res, err := s.store.GetResource(ctx, kind, name)
		if errors.Is(err, access.ErrNotFound) {
			return nil, nil, nil, fmt.Errorf("%w: resource %s does not exist", access.ErrInvalid, id)
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("load resource %s: %w", id, err)
		}
		granted := false
		for _, rs := range searchAs {
			if rs.set.CanAccess(res) {
				granted = true
				if !seen[rs.name] {
					seen[rs.name] = true
					roles = append(roles, rs.name)
				}
			}
		}
		if !granted {
			return nil, nil, nil, fmt.Errorf("%w: none of your search_as_roles grants %s", access.ErrForbidden, id)
		}
		canonical = append(canonical, id.String())
		found = append(found, access.PolicyResource{ID: id.String(), Kind: id.Kind, Name: id.Name, Labels: res.Metadata.Labels})
	}
	sort.Strings(roles)
	return canonical, found, roles, nil
}

type namedRoleSet struct {
	name string
	set  access.RoleSet
}

// searchAsRoleSets returns each of the caller's search_as_roles as its own
// role set, trait-expanded for the caller.
func (s *Service) searchAsRoleSets(c Caller) []namedRoleSet {
	roles := s.pick(c.all, c.Roles.SearchAsRoles())
	out := make([]namedRoleSet, 0, len(roles))
	for _, r := range roles {
		out = append(out, namedRoleSet{name: r.Metadata.Name, set: access.NewRoleSet(c.User, []access.Role{r})})
	}
	return out
}

// RequestFilter selects requests in List.
type RequestFilter struct {
	State access.State
	User  string
}

// ListRequests returns the requests the caller may see, oldest first.
func (s *Service) ListRequests(ctx context.Context, c Caller, f RequestFilter) ([]access.Request, error) {
	all, err := s.store.ListRequests(ctx)
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	out := make([]access.Request, 0, len(all))
	for _, r := range all {
		if f.State != "" && r.State != f.State {
			continue
		}
		if f.User != "" && r.User != f.User {
			continue
		}
		if !c.Roles.CanSeeRequest(r) {
			continue
		}
		out = append(out, r)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// GetRequest returns one request the caller may see. A request the caller
// may not see is reported as not found, so ids do not leak.
func (s *Service) GetRequest(ctx context.Context, c Caller, id string) (access.Request, error) {
	r, err := s.store.GetRequest(ctx, id)
	if err != nil {
		return access.Request{}, err
	}
	if !c.Roles.CanSeeRequest(r) {
		return access.Request{}, fmt.Errorf("request %q: %w", id, access.ErrNotFound)
	}
	return r, nil
}

// ReviewInput is a reviewer's verdict.
type ReviewInput struct {
	Verdict access.Verdict `json:"verdict"`
	Reason  string         `json:"reason,omitempty"`
	Roles   []string       `json:"roles,omitempty"`
}

// Review records the caller's review in one transaction on the request's mod
// revision; concurrent reviews are retried on fresh state, so none is lost
// or counted twice.
func (s *Service) Review(ctx context.Context, c Caller, id string, in ReviewInput) (access.Request, error) {
	if len(in.Reason) > maxReasonLen {
		return access.Request{}, fmt.Errorf("%w: reason is %d bytes, at most %d", access.ErrInvalid, len(in.Reason), maxReasonLen)
	}
	if in.Verdict != access.VerdictApprove && in.Verdict != access.VerdictDeny {
		return access.Request{}, fmt.Errorf("%w: verdict %q: want APPROVE or DENY", access.ErrInvalid, in.Verdict)
	}
	if err := s.checkReview(ctx, c, id, in); err != nil {
		return access.Request{}, err
	}
	return s.update(ctx, id, func(r *access.Request) ([]access.AuditEvent, error) {
		if !c.Roles.CanSeeRequest(*r) {
			return nil, fmt.Errorf("request %q: %w", id, access.ErrNotFound)
		}
		if r.User == c.Name() {
			return nil, fmt.Errorf("%w: you cannot review your own request", access.ErrForbidden)
		}
		if !c.Roles.CanReviewRoles(r.Roles) {
			return nil, fmt.Errorf("%w: %s may not review requests for %s", access.ErrForbidden, c.Name(), strings.Join(r.Roles, ", "))
		}
		before := r.State
		rv := access.Review{Author: c.Name(), Verdict: in.Verdict, Reason: strings.TrimSpace(in.Reason), Roles: in.Roles, Kind: access.ReviewKindReview}
		if err := r.AddReview(rv, c.User.Spec.Roles, s.now().UTC()); err != nil {
			return nil, err
		}
		evs := []access.AuditEvent{s.audit(c, "request.review", r.ID, OutcomeSuccess, rv.Reason, map[string]any{
			"verdict": string(in.Verdict), "roles": in.Roles, "progress": r.ProgressSummary(),
		})}
		return append(evs, s.stateEvents(c, before, r)...), nil
	})
}

// AdminDecide approves or denies a pending request directly (rule
// request:approve), recorded as a review of kind admin.
func (s *Service) AdminDecide(ctx context.Context, c Caller, id string, in ReviewInput) (access.Request, error) {
	if err := require(c, access.RuleRequest, access.VerbApprove); err != nil {
		return access.Request{}, err
	}
	if strings.TrimSpace(in.Reason) == "" {
		return access.Request{}, fmt.Errorf("%w: an admin decision needs --reason", access.ErrInvalid)
	}
	return s.update(ctx, id, func(r *access.Request) ([]access.AuditEvent, error) {
		before := r.State
		rv := access.Review{Author: c.Name(), Verdict: in.Verdict, Reason: strings.TrimSpace(in.Reason), Roles: in.Roles, Kind: access.ReviewKindAdmin}
		if err := r.AdminDecide(rv, s.now().UTC()); err != nil {
			return nil, err
		}
		evs := []access.AuditEvent{s.audit(c, "request.admin_review", r.ID, OutcomeSuccess, rv.Reason, map[string]any{"verdict": string(in.Verdict)})}
		return append(evs, s.stateEvents(c, before, r)...), nil
	})
}

// Cancel withdraws the caller's own pending request.
func (s *Service) Cancel(ctx context.Context, c Caller, id string) (access.Request, error) {
	return s.update(ctx, id, func(r *access.Request) ([]access.AuditEvent, error) {
		if !c.Roles.CanSeeRequest(*r) {
			return nil, fmt.Errorf("request %q: %w", id, access.ErrNotFound)
		}
		before := r.State
		if err := r.Cancel(c.Name(), s.now().UTC()); err != nil {
			return nil, err
		}
		return s.stateEvents(c, before, r), nil
	})
}

// Drop gives the caller's approved grant back.
func (s *Service) Drop(ctx context.Context, c Caller, id string) (access.Request, error) {
	return s.update(ctx, id, func(r *access.Request) ([]access.AuditEvent, error) {
		if !c.Roles.CanSeeRequest(*r) {
			return nil, fmt.Errorf("request %q: %w", id, access.ErrNotFound)
		}
		before := r.State
		if err := r.Drop(c.Name(), s.now().UTC()); err != nil {
			return nil, err
		}
		return s.stateEvents(c, before, r), nil
	})
}

// DropAll drops every approved grant of the caller; it returns those it
// dropped.
func (s *Service) DropAll(ctx context.Context, c Caller) ([]access.Request, error) {
	mine, err := s.ListRequests(ctx, c, RequestFilter{State: access.StateApproved, User: c.Name()})
	if err != nil {
		return nil, err
	}
	var out []access.Request
	for _, r := range mine {
		d, err := s.Drop(ctx, c, r.ID)
		if errors.Is(err, access.ErrConflict) {
			continue // ended meanwhile
		}
		if err != nil {
			return out, err
		}
		out = append(out, d)
	}
	return out, nil
}

// Revoke ends an approved grant (rule request:approve).
func (s *Service) Revoke(ctx context.Context, c Caller, id, reason string) (access.Request, error) {
	if err := require(c, access.RuleRequest, access.VerbApprove); err != nil {
		return access.Request{}, err
	}
	return s.update(ctx, id, func(r *access.Request) ([]access.AuditEvent, error) {
		before := r.State
		if err := r.Revoke(c.Name(), strings.TrimSpace(reason), s.now().UTC()); err != nil {
			return nil, err
		}
		return s.stateEvents(c, before, r), nil
	})
}

// ExpireDue moves every request past its pending or access expiry to
// EXPIRED, reading all of them: a one-off sweep (tests, tools). The
// running sweeper is ExpirySweeper, which reads only changes. It is safe
// to call from several places since each move is a transaction on the
// mod revision.
func (s *Service) ExpireDue(ctx context.Context) (int, error) {
	all, err := s.store.ListRequests(ctx)
	if err != nil {
		return 0, fmt.Errorf("list requests: %w", err)
	}
	now := s.now().UTC()
	n := 0
	for _, r := range all {
		probe := r
		if !probe.Expire(now) {
			continue
		}
		expired, err := s.expireRequest(ctx, r.ID)
		if err != nil {
			return n, fmt.Errorf("expire request %s: %w", r.ID, err)
		}
		if expired {
			n++
		}
	}
	return n, nil
}

var errNothingToDo = errors.New("nothing to do")

// update wraps store.UpdateRequestFx: the chat notifications of the change
// go into the same transaction, and the state change is logged.
func (s *Service) update(ctx context.Context, id string, fn func(*access.Request) ([]access.AuditEvent, error)) (access.Request, error) {
	if _, err := uuid.Parse(id); err != nil {
		return access.Request{}, fmt.Errorf("%w: request id %q is not a UUID", access.ErrInvalid, id)
	}
	var before access.Request
	r, err := s.store.UpdateRequestFx(ctx, id, func(r *access.Request) (access.Effects, error) {
		before = *r
		before.Reviews = slices.Clone(r.Reviews)
		events, err := fn(r)
		if err != nil {
			return access.Effects{}, err
		}
		return access.Effects{Audit: events, Outbox: s.chatChanged(before, r, s.now().UTC())}, nil
	})
	if err != nil {
		return access.Request{}, err
	}
	if r.State != before.State {
		s.log.Info("request state changed", "id", r.ID, "from", before.State, "to", r.State)
		s.metrics.RequestEntered(r.State)
	}
	return r, nil
}

// stateEvents returns the audit event of a state change, if there was one.
func (s *Service) stateEvents(c Caller, before access.State, r *access.Request) []access.AuditEvent {
	if r.State == before {
		return nil
	}
	fields := map[string]any{"from": string(before), "to": string(r.State)}
	if len(r.GrantedRoles) > 0 {
		fields["granted_roles"] = r.GrantedRoles
	}
	if r.AccessExpires != nil {
		fields["access_expires"] = r.AccessExpires.Format(time.RFC3339)
	}
	return []access.AuditEvent{s.audit(c, "request."+strings.ToLower(string(r.State)), r.ID, OutcomeSuccess, r.StateReason, fields)}
}

// WatchRequests streams changes of the requests the caller may see, from
// etcd revision fromRev on (0: from now). A reset event carries only the
// visible requests.
func (s *Service) WatchRequests(ctx context.Context, c Caller, fromRev int64) <-chan access.RequestEvent {
	in := s.store.WatchRequests(ctx, fromRev)
	out := make(chan access.RequestEvent, 16)
	go func() {
		defer close(out)
		for ev := range in {
			switch ev.Type {
			case access.EventReset:
				visible := ev.Snapshot[:0:0]
				for _, r := range ev.Snapshot {
					if c.Roles.CanSeeRequest(r) {
						visible = append(visible, r)
					}
				}
				ev.Snapshot = visible
			case access.EventDelete:
				continue
			default:
				if !c.Roles.CanSeeRequest(ev.Request) {
					continue
				}
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func sortedUnion(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		for _, v := range l {
			if v != "" && !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
	}
	sort.Strings(out)
	return out
}
