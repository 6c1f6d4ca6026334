package access_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
)

// role builds a role from its allow and deny sides.
func role(name string, allow, deny access.RoleConditions) access.Role {
	return access.Role{Kind: "role", Version: "v1", Metadata: access.Metadata{Name: name},
		Spec: access.RoleSpec{Allow: allow, Deny: deny}}
}

func requests(roles ...string) *access.RequestConditions {
	return &access.RequestConditions{Roles: roles}
}

func reviews(roles ...string) *access.ReviewConditions {
	return &access.ReviewConditions{Roles: roles}
}

func set(roles ...access.Role) access.RoleSet {
	return access.NewRoleSet(access.User{Metadata: access.Metadata{Name: "alice"}}, roles)
}

var (
	adminRole = role("admin", access.RoleConditions{
		Rules: []access.Rule{{Resources: []string{"*"}, Verbs: []string{"*"}}},
	}, access.RoleConditions{})
	auditorRole = role("auditor", access.RoleConditions{
		Rules: []access.Rule{{Resources: []string{"audit", "request"}, Verbs: []string{"list", "read"}}},
	}, access.RoleConditions{})
	noDeleteRole = role("no-delete", access.RoleConditions{}, access.RoleConditions{
		Rules: []access.Rule{{Resources: []string{"role", "user"}, Verbs: []string{"delete"}}},
	})
	noRulesDenyRole = role("no-rules", access.RoleConditions{}, access.RoleConditions{
		Rules: []access.Rule{{Resources: []string{"*"}, Verbs: []string{"*"}}},
	})
)

func TestRoleSetAllows(t *testing.T) {
	tests := []struct {
		name           string
		set            access.RoleSet
		resource, verb string
		want           bool
	}{
		{"no roles, no rights", set(), "role", "read", false},
		{"admin may do anything", set(adminRole), "ca", "update", true},
		{"an auditor reads the audit log", set(auditorRole), "audit", "read", true},
		{"an auditor cannot delete it", set(auditorRole), "audit", "delete", false},
		{"an auditor cannot read roles", set(auditorRole), "role", "read", false},
		{"a deny rule beats admin", set(adminRole, noDeleteRole), "user", "delete", false},
		{"a deny rule only covers its verbs", set(adminRole, noDeleteRole), "user", "update", true},
		{"a wildcard deny beats everything, whatever the order", set(noRulesDenyRole, adminRole), "request", "read", false},
	}
	for _, tt := range tests {
		if got := tt.set.Allows(tt.resource, tt.verb); got != tt.want {
			t.Errorf("%s: Allows(%q, %q) = %v, want %v", tt.name, tt.resource, tt.verb, got, tt.want)
		}
	}
}

func TestRoleSetRequesting(t *testing.T) {
	requester := role("requester", access.RoleConditions{Request: requests("dba", "^team-.*$")}, access.RoleConditions{})
	anything := role("anything", access.RoleConditions{Request: requests("*")}, access.RoleConditions{})
	noDBA := role("no-dba", access.RoleConditions{}, access.RoleConditions{Request: requests("dba")})
	noAdminish := role("no-adminish", access.RoleConditions{}, access.RoleConditions{Request: requests("^admin.*$")})
	brokenDeny := role("broken", access.RoleConditions{}, access.RoleConditions{Request: requests("^(oops$")})

	tests := []struct {
		name string
		set  access.RoleSet
		role string
		want bool
	}{
		{"a literal", set(requester), "dba", true},
		{"a regular expression", set(requester), "team-edge", true},
		{"a regular expression is a full match", set(requester), "my-team-edge", false},
		{"not listed", set(requester), "admin", false},
		{"the wildcard", set(anything), "admin", true},
		{"one role allows dba, another denies it: deny wins", set(requester, noDBA), "dba", false},
		{"deny wins whatever the order", set(noDBA, requester), "dba", false},
		{"a deny expression", set(anything, noAdminish), "admin-prod", false},
		{"a deny expression leaves others alone", set(anything, noAdminish), "dba", true},
		{"a broken deny expression refuses everything", set(anything, brokenDeny), "dba", false},
		{"deny alone grants nothing", set(noDBA), "web", false},
	}
	for _, tt := range tests {
		if got := tt.set.CanRequestRole(tt.role); got != tt.want {
			t.Errorf("%s: CanRequestRole(%q) = %v, want %v", tt.name, tt.role, got, tt.want)
		}
	}

	got := set(requester, noDBA).RequestableRoles([]string{"web", "team-b", "dba", "team-a", "admin"})
	if want := []string{"team-a", "team-b"}; !reflect.DeepEqual(got, want) {
		t.Errorf("RequestableRoles = %q, want %q", got, want)
	}
}

func TestRoleSetRequestConditions(t *testing.T) {
	contractor := role("contractor", access.RoleConditions{Request: &access.RequestConditions{
		Roles:              []string{"dba"},
		SearchAsRoles:      []string{"access", "db-reader"},
		SuggestedReviewers: []string{"bob", "{{internal.manager}}"},
		MaxDuration:        access.Duration(8 * time.Hour),
		Annotations:        map[string][]string{"pagerduty_services": {"checkout", "orders"}},
	}}, access.RoleConditions{Request: &access.RequestConditions{SearchAsRoles: []string{"db-reader"}}})
	oncall := role("oncall", access.RoleConditions{Request: &access.RequestConditions{
		Roles:              []string{"dba", "web"},
		SearchAsRoles:      []string{"web-reader", "access"},
		SuggestedReviewers: []string{"bob", "carol"},
		MaxDuration:        access.Duration(2 * time.Hour),
		Annotations:        map[string][]string{"pagerduty_services": {"checkout"}, "tier": {"1"}},
	}}, access.RoleConditions{})
	uncapped := role("uncapped", access.RoleConditions{Request: requests("ops")}, access.RoleConditions{})

	u := access.User{Metadata: access.Metadata{Name: "alice"}, Spec: access.UserSpec{Traits: map[string][]string{"manager": {"dave"}}}}
	s := access.NewRoleSet(u, []access.Role{contractor, oncall, uncapped})

	if got, want := s.Names(), []string{"contractor", "oncall", "uncapped"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Names = %q, want %q", got, want)
	}
	if !s.HasRole("oncall") || s.HasRole("dba") {
		t.Error("HasRole answers for granted rather than standing roles")
	}
	if got, want := s.SearchAsRoles(), []string{"access", "web-reader"}; !reflect.DeepEqual(got, want) {
		t.Errorf("SearchAsRoles = %q, want %q (db-reader is denied)", got, want)
	}
	if got, want := s.SuggestedReviewers(), []string{"bob", "carol", "dave"}; !reflect.DeepEqual(got, want) {
		t.Errorf("SuggestedReviewers = %q, want %q (the trait expands)", got, want)
	}
	wantAnn := map[string][]string{"pagerduty_services": {"checkout", "orders"}, "tier": {"1"}}
	if got := s.Annotations(); !reflect.DeepEqual(got, wantAnn) {
		t.Errorf("Annotations = %v, want %v", got, wantAnn)
	}
	if got := set().Annotations(); got != nil {
		t.Errorf("Annotations without request conditions = %v, want nil", got)
	}

	maxTests := []struct {
		name      string
		requested []string
		want      time.Duration
	}{
		{"both roles allow dba: the smaller cap", []string{"dba"}, 2 * time.Hour},
		{"only contractor allows db-reader through search_as_roles", []string{"db-reader"}, 8 * time.Hour},
		{"only oncall allows web", []string{"web"}, 2 * time.Hour},
		{"a role without max_duration sets no cap", []string{"ops"}, 0},
		{"nothing requestable", []string{"admin"}, 0},
		{"any requested role brings its caps", []string{"ops", "db-reader"}, 8 * time.Hour},
	}
	for _, tt := range maxTests {
		if got := s.MaxDuration(tt.requested); got != tt.want {
			t.Errorf("%s: MaxDuration(%q) = %v, want %v", tt.name, tt.requested, got, tt.want)
		}
	}
}

func TestRoleSetReviewing(t *testing.T) {
	dbaReviewer := role("dba-reviewer", access.RoleConditions{ReviewRequests: reviews("dba", "^db-.*$")}, access.RoleConditions{})
	allReviewer := role("all-reviewer", access.RoleConditions{ReviewRequests: reviews("*")}, access.RoleConditions{})
	noAdmin := role("no-admin", access.RoleConditions{}, access.RoleConditions{ReviewRequests: reviews("admin")})

	tests := []struct {
		name  string
		set   access.RoleSet
		roles []string
		want  bool
	}{
		{"a covered role", set(dbaReviewer), []string{"dba"}, true},
		{"every role must be covered", set(dbaReviewer), []string{"dba", "web"}, false},
		{"a regular expression", set(dbaReviewer), []string{"dba", "db-reader"}, true},
		{"nothing to review", set(allReviewer), nil, false},
		{"the wildcard", set(allReviewer), []string{"web", "admin"}, true},
		{"deny wins for one role of the request", set(allReviewer, noAdmin), []string{"web", "admin"}, false},
		{"no review rights", set(), []string{"dba"}, false},
	}
	for _, tt := range tests {
		if got := tt.set.CanReviewRoles(tt.roles); got != tt.want {
			t.Errorf("%s: CanReviewRoles(%q) = %v, want %v", tt.name, tt.roles, got, tt.want)
		}
	}
}

func TestRoleSetCanAccess(t *testing.T) {
	staging := role("staging", access.RoleConditions{
		NodeLabels:           access.Labels{"env": {"staging"}},
		DBLabels:             access.Labels{"env": {"dev", "stage"}},
		AppLabels:            access.Labels{"*": {"*"}},
		KubernetesLabels:     access.Labels{"team": {"{{internal.team}}"}},
		WindowsDesktopLabels: access.Labels{"env": {"^dev|stage$"}},
	}, access.RoleConditions{})
	everything := role("everything", access.RoleConditions{
		NodeLabels: access.Labels{"*": {"*"}}, DBLabels: access.Labels{"*": {"*"}},
	}, access.RoleConditions{})
	noProd := role("no-prod", access.RoleConditions{}, access.RoleConditions{
		NodeLabels: access.Labels{"env": {"prod"}, "pci": {"true"}},
	})

	u := access.User{Metadata: access.Metadata{Name: "alice"}, Spec: access.UserSpec{Traits: map[string][]string{"team": {"edge"}}}}
	res := func(kind string, labels map[string]string) access.Resource {
		return access.Resource{Kind: kind, Metadata: access.Metadata{Name: "x", Labels: labels}}
	}
	tests := []struct {
		name  string
		roles []access.Role
		res   access.Resource
		want  bool
	}{
		{"a staging node", []access.Role{staging}, res("node", map[string]string{"env": "staging"}), true},
		{"a prod node", []access.Role{staging}, res("node", map[string]string{"env": "prod"}), false},
		{"a node without labels", []access.Role{staging}, res("node", nil), false},
		{"a stage database", []access.Role{staging}, res("db", map[string]string{"env": "stage"}), true},
		{"any app", []access.Role{staging}, res("app", nil), true},
		{"a kube cluster of the user's team (trait)", []access.Role{staging}, res("kube_cluster", map[string]string{"team": "edge"}), true},
		{"another team's kube cluster", []access.Role{staging}, res("kube_cluster", map[string]string{"team": "core"}), false},
		{"a dev desktop", []access.Role{staging}, res("windows_desktop", map[string]string{"env": "dev"}), true},
		{"node labels do not open databases", []access.Role{role("n", access.RoleConditions{NodeLabels: access.Labels{"*": {"*"}}}, access.RoleConditions{})},
			res("db", map[string]string{"env": "dev"}), false},
		{"deny on one label of a prod node wins over wildcard allow", []access.Role{everything, noProd}, res("node", map[string]string{"env": "prod", "pci": "false"}), false},
		{"deny on the other label", []access.Role{noProd, everything}, res("node", map[string]string{"env": "dev", "pci": "true"}), false},
		{"deny does not reach what it does not match", []access.Role{everything, noProd}, res("node", map[string]string{"env": "dev"}), true},
		{"node deny does not reach databases", []access.Role{everything, noProd}, res("db", map[string]string{"env": "prod"}), true},
		{"an unknown kind", []access.Role{everything}, res("server", nil), false},
	}
	for _, tt := range tests {
		s := access.NewRoleSet(u, tt.roles)
		if got := s.CanAccess(tt.res); got != tt.want {
			t.Errorf("%s: CanAccess = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestRoleSetCanSeeRequest(t *testing.T) {
	dbaReviewer := role("dba-reviewer", access.RoleConditions{ReviewRequests: reviews("dba")}, access.RoleConditions{})
	tests := []struct {
		name      string
		set       access.RoleSet
		requester string
		want      bool
	}{
		{"the requester", access.NewRoleSet(access.User{Metadata: access.Metadata{Name: "carol"}}, nil), "carol", true},
		{"a reviewer of its roles", set(dbaReviewer), "carol", true},
		{"an auditor with request: read", set(auditorRole), "carol", true},
		{"anyone else", set(role("dev", access.RoleConditions{Logins: []string{"dev"}}, access.RoleConditions{})), "carol", false},
		{"an admin denied request rules", set(adminRole, noRulesDenyRole), "carol", false},
		{"an empty user name is nobody's", access.RoleSet{}, "", false},
	}
	for _, tt := range tests {
		r := access.Request{ID: "r1", User: tt.requester, Roles: []string{"dba"}}
		if got := tt.set.CanSeeRequest(r); got != tt.want {
			t.Errorf("%s: CanSeeRequest = %v, want %v", tt.name, got, tt.want)
		}
	}
}
