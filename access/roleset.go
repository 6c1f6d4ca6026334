package access

import (
	"slices"
	"sort"
	"strings"
	"time"
)

// RoleSet is a user's standing roles, trait-expanded. Every right inside
// Gatehouse (requesting, reviewing, administering) is computed from a RoleSet
// and never from granted roles, so approving a powerful role never hands
// over the power to approve. Deny always wins over allow.
type RoleSet struct {
	User  string
	Roles []Role
}

// NewRoleSet expands the roles' trait templates with the user's traits.
func NewRoleSet(u User, roles []Role) RoleSet {
	s := RoleSet{User: u.Metadata.Name, Roles: make([]Role, 0, len(roles))}
	for _, r := range roles {
		s.Roles = append(s.Roles, r.ExpandTraits(u.Spec.Traits))
	}
	return s
}

// Names returns the role names in order.
func (s RoleSet) Names() []string {
	out := make([]string, 0, len(s.Roles))
	for _, r := range s.Roles {
		out = append(out, r.Metadata.Name)
	}
	return out
}

// HasRole reports whether the set holds the named role.
func (s RoleSet) HasRole(name string) bool {
	for _, r := range s.Roles {
		if r.Metadata.Name == name {
			return true
		}
	}
	return false
}

// Allows reports whether some allow rule grants verb on resource and no
// deny rule refuses it.
func (s RoleSet) Allows(resource, verb string) bool {
	allowed := false
	for _, r := range s.Roles {
		if rulesMatch(r.Spec.Deny.Rules, resource, verb) {
			return false
		}
		allowed = allowed || rulesMatch(r.Spec.Allow.Rules, resource, verb)
	}
	return allowed
}

func rulesMatch(rules []Rule, resource, verb string) bool {
	for _, rule := range rules {
		if containsOrWildcard(rule.Resources, resource) && containsOrWildcard(rule.Verbs, verb) {
			return true
		}
	}
	return false
}

func containsOrWildcard(xs []string, x string) bool {
	for _, v := range xs {
		if v == x || v == Wildcard {
			return true
		}
	}
	return false
}

// matchRoleName matches a role name against request.roles or
// review_requests.roles entries: a literal, "*" or ^regex$. Globs are not
// supported there. A broken expression matches as failIfBroken says, so
// that broken deny entries refuse.
func matchRoleName(patterns []string, name string, failIfBroken bool) bool {
	for _, p := range patterns {
		switch {
		case p == Wildcard || p == name:
			return true
		case isRegexPattern(p):
			re, err := compileCached(p)
			if err != nil {
				if failIfBroken {
					return true
				}
				continue
			}
			if re.MatchString(name) {
				return true
			}
		}
	}
	return false
}

func requestRoles(c RoleConditions) []string {
	if c.Request == nil {
		return nil
	}
	return c.Request.Roles
}

func reviewRoles(c RoleConditions) []string {
	if c.ReviewRequests == nil {
		return nil
	}
	return c.ReviewRequests.Roles
}

// CanRequestRole reports whether some role's allow.request.roles covers role
// and no role's deny.request.roles does.
func (s RoleSet) CanRequestRole(role string) bool {
	allowed := false
	for _, r := range s.Roles {
		if matchRoleName(requestRoles(r.Spec.Deny), role, true) {
			return false
		}
		allowed = allowed || matchRoleName(requestRoles(r.Spec.Allow), role, false)
	}
	return allowed
}

// RequestableRoles returns the names of all that CanRequestRole, sorted.
func (s RoleSet) RequestableRoles(all []string) []string {
	out := make([]string, 0, len(all))
	for _, n := range all {
		if s.CanRequestRole(n) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// SearchAsRoles returns the roles whose resource access the user may search
// and request: the union of allow.request.search_as_roles minus anything a
// deny.request.search_as_roles entry covers, sorted and deduplicated.
func (s RoleSet) SearchAsRoles() []string {
	var deny []string
	for _, r := range s.Roles {
		if r.Spec.Deny.Request != nil {
			deny = append(deny, r.Spec.Deny.Request.SearchAsRoles...)
		}
	}
	var out []string
	for _, r := range s.Roles {
		if r.Spec.Allow.Request == nil {
			continue
		}
		for _, n := range r.Spec.Allow.Request.SearchAsRoles {
			if !matchRoleName(deny, n, true) {
				out = append(out, n)
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// SuggestedReviewers returns the union of allow.request.suggested_reviewers,
// sorted and deduplicated.
func (s RoleSet) SuggestedReviewers() []string {
	var out []string
	for _, r := range s.Roles {
		if r.Spec.Allow.Request != nil {
			out = append(out, r.Spec.Allow.Request.SuggestedReviewers...)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// Annotations merges allow.request.annotations of all roles; each key's
// values are sorted and deduplicated. It returns nil when there are none.
func (s RoleSet) Annotations() map[string][]string {
	var out map[string][]string
	for _, r := range s.Roles {
		if r.Spec.Allow.Request == nil {
			continue
		}
		for k, vals := range r.Spec.Allow.Request.Annotations {
			if out == nil {
				out = make(map[string][]string)
			}
			out[k] = append(out[k], vals...)
		}
	}
	for k, vals := range out {
		sort.Strings(vals)
		out[k] = slices.Compact(vals)
	}
	return out
}

// MaxDuration returns the smallest non-zero allow.request.max_duration among
// the roles that let the user request any of requested (through
// request.roles or request.search_as_roles); 0 means no cap.
func (s RoleSet) MaxDuration(requested []string) time.Duration {
	var best time.Duration
	for _, r := range s.Roles {
		rq := r.Spec.Allow.Request
		if rq == nil || rq.MaxDuration <= 0 {
			continue
		}
		applies := false
		for _, n := range requested {
			if matchRoleName(rq.Roles, n, false) || slices.Contains(rq.SearchAsRoles, n) {
				applies = true
				break
			}
		}
		if applies && (best == 0 || rq.MaxDuration.Std() < best) {
			best = rq.MaxDuration.Std()
		}
	}
	return best
}

// CanReviewRoles reports whether the set may review a request for roles:
// every role is covered by some allow.review_requests.roles and by no
// deny.review_requests.roles. A request without roles is reviewable by
// nobody, so that it can never be approved by accident.
func (s RoleSet) CanReviewRoles(roles []string) bool {
	if len(roles) == 0 {
		return false
	}
	for _, role := range roles {
		allowed := false
		for _, r := range s.Roles {
			if matchRoleName(reviewRoles(r.Spec.Deny), role, true) {
				return false
			}
			allowed = allowed || matchRoleName(reviewRoles(r.Spec.Allow), role, false)
		}
		if !allowed {
			return false
		}
	}
	return true
}

// selector returns the label selector of c that applies to kind.
func (c RoleConditions) selector(kind string) Labels {
	switch kind {
	case KindNode:
		return c.NodeLabels
	case KindDB:
		return c.DBLabels
	case KindApp:
		return c.AppLabels
	case KindKubeCluster:
		return c.KubernetesLabels
	case KindWindowsDesktop:
		return c.WindowsDesktopLabels
	}
	return nil
}

// CanAccess reports whether the set reaches res: some role's allow selector
// for the resource's kind matches all its labels and no role's deny selector
// matches any.
func (s RoleSet) CanAccess(res Resource) bool {
	if !IsResourceKind(res.Kind) {
		return false
	}
	allowed := false
	for _, r := range s.Roles {
		if r.Spec.Deny.selector(res.Kind).MatchesAny(res.Metadata.Labels) {
			return false
		}
		allowed = allowed || r.Spec.Allow.selector(res.Kind).Matches(res.Metadata.Labels)
	}
	return allowed
}

// CanSeeRequest reports whether the set may see r: its requester, those who
// may review it, and holders of the rule request: read.
func (s RoleSet) CanSeeRequest(r Request) bool {
	return (s.User != "" && r.User == s.User) || s.CanReviewRoles(r.Roles) || s.Allows(RuleRequest, VerbRead)
}

// Role value lists: db_users, db_names, windows_desktop_logins and
// kubernetes_groups name accounts and groups of the target system. Their
// entries match a value the way label values do (MatchValue: "*", globs,
// ^regex$, anything else equal), after trait expansion, so
// db_users: ["{{internal.logins}}", "^ro_.*$"] allows the user's own logins
// and every ro_ account. Deny wins: a deny entry that matches refuses, and a
// deny entry that is not a valid expression refuses everything.

func dbUsersOf(c *RoleConditions) []string              { return c.DBUsers }
func windowsDesktopLoginsOf(c *RoleConditions) []string { return c.WindowsDesktopLogins }
func kubernetesGroupsOf(c *RoleConditions) []string     { return c.KubernetesGroups }

// isValuePattern reports whether a role value is a pattern ("*", a glob or
// ^regex$) rather than a name.
func isValuePattern(v string) bool {
	return strings.Contains(v, Wildcard) || isRegexPattern(v)
}

// MatchAnyValue reports whether some pattern matches value as MatchValue
// matches; a pattern that is not a valid expression matches nothing.
func MatchAnyValue(patterns []string, value string) bool {
	return valueMatches(patterns, value, false)
}

// allowsValue reports whether some role's allow entries of field match
// value and no role's deny entries do. An empty value is never allowed.
func (s RoleSet) allowsValue(field func(*RoleConditions) []string, value string) bool {
	if value == "" {
		return false
	}
	allowed := false
	for i := range s.Roles {
		spec := &s.Roles[i].Spec
		if valueMatches(field(&spec.Deny), value, true) {
			return false
		}
		allowed = allowed || valueMatches(field(&spec.Allow), value, false)
	}
	return allowed
}

// checkValue is allowsValue with, on refusal, the allowedValues a message
// lists. The list is built only then: issuing is the common path.
func (s RoleSet) checkValue(field func(*RoleConditions) []string, value string) (ok bool, allowed []string) {
	if s.allowsValue(field, value) {
		return true, nil
	}
	return false, s.allowedValues(field)
}

// allowedValues returns the allow entries of field that no deny entry rules
// out, sorted and deduplicated: the names and patterns a refusal lists, and
// the Kubernetes groups of a grant. A name is ruled out when a deny entry
// matches it; a pattern only when a deny entry is "*" or the same pattern,
// since whether two patterns overlap cannot be told cheaply.
func (s RoleSet) allowedValues(field func(*RoleConditions) []string) []string {
	var out []string
	for i := range s.Roles {
		for _, v := range field(&s.Roles[i].Spec.Allow) {
			if v != "" && !slices.Contains(out, v) && !s.deniesEntry(field, v) {
				out = append(out, v)
			}
		}
	}
	sort.Strings(out)
	return out
}

func (s RoleSet) deniesEntry(field func(*RoleConditions) []string, v string) bool {
	pattern := isValuePattern(v)
	for i := range s.Roles {
		for _, d := range field(&s.Roles[i].Spec.Deny) {
			if d == Wildcard || d == v {
				return true
			}
			if !pattern {
				if ok, err := MatchValue(d, v); ok || err != nil {
					return true
				}
			}
		}
	}
	return false
}
