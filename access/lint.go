package access

import (
	"fmt"
	"sort"
)

// LintRequestableRoles flags roles that some role lets users request and
// that carry administrative rules over roles or users. Gatehouse never
// hands rights over through a grant (rights come from standing roles), but
// the credentials such a grant yields may reach systems that honour those
// rules, and the role was plainly written to be powerful: a reviewer should
// not approve it casually.
func LintRequestableRoles(roles []Role) []string {
	var out []string
	for _, target := range roles {
		name := target.Metadata.Name
		if !editsIdentity(target) {
			continue
		}
		var by []string
		for _, r := range roles {
			set := RoleSet{Roles: []Role{r}}
			if set.CanRequestRole(name) {
				by = append(by, r.Metadata.Name)
			}
		}
		if len(by) > 0 {
			sort.Strings(by)
			out = append(out, fmt.Sprintf("role %q can edit roles or users and is requestable through %v: approving it grants administrative power", name, by))
		}
	}
	sort.Strings(out)
	return out
}

func editsIdentity(r Role) bool {
	set := RoleSet{Roles: []Role{r}}
	for _, res := range []string{RuleRole, RuleUser} {
		for _, verb := range []string{VerbCreate, VerbUpdate, VerbDelete} {
			if set.Allows(res, verb) {
				return true
			}
		}
	}
	return false
}
