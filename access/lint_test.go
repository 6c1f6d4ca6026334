package access

import (
	"strings"
	"testing"
)

func TestLintRequestableRoles(t *testing.T) {
	admin := Role{Metadata: Metadata{Name: "power"}, Spec: RoleSpec{Allow: RoleConditions{Rules: []Rule{{Resources: []string{"user"}, Verbs: []string{"update"}}}}}}
	reader := Role{Metadata: Metadata{Name: "auditor"}, Spec: RoleSpec{Allow: RoleConditions{Rules: []Rule{{Resources: []string{"*"}, Verbs: []string{"list", "read"}}}}}}
	climber := Role{Metadata: Metadata{Name: "climber"}, Spec: RoleSpec{Allow: RoleConditions{Request: &RequestConditions{Roles: []string{"power", "auditor"}}}}}
	denied := Role{Metadata: Metadata{Name: "careful"}, Spec: RoleSpec{
		Allow: RoleConditions{Request: &RequestConditions{Roles: []string{"*"}}},
		Deny:  RoleConditions{Request: &RequestConditions{Roles: []string{"power"}}},
	}}

	got := LintRequestableRoles([]Role{admin, reader, climber, denied})
	if len(got) != 1 || !strings.Contains(got[0], `role "power"`) || !strings.Contains(got[0], "[climber]") {
		t.Fatalf("lint = %v", got)
	}
	if got := LintRequestableRoles([]Role{admin, reader}); len(got) != 0 {
		t.Fatalf("a role nobody may request was flagged: %v", got)
	}
}
