package access

import (
	"slices"
	"testing"
)

func grantOf(allow, deny RoleConditions) RoleSet {
	return RoleSet{User: "alice", Roles: []Role{
		{Metadata: Metadata{Name: "a"}, Spec: RoleSpec{Allow: allow}},
		{Metadata: Metadata{Name: "b"}, Spec: RoleSpec{Deny: deny}},
	}}
}

func TestDBUserAllowed(t *testing.T) {
	tests := []struct {
		name        string
		allow, deny []string
		user        string
		ok          bool
		allowed     []string
	}{
		{"listed", []string{"reader", "alice"}, nil, "alice", true, []string{"alice", "reader"}},
		{"not listed", []string{"reader"}, nil, "root", false, []string{"reader"}},
		{"deny wins", []string{"reader", "postgres"}, []string{"postgres"}, "postgres", false, []string{"reader"}},
		{"allow wildcard", []string{"*"}, []string{"postgres"}, "anyone", true, []string{"*"}},
		{"wildcard still denied", []string{"*"}, []string{"postgres"}, "postgres", false, []string{"*"}},
		{"deny wildcard", []string{"reader"}, []string{"*"}, "reader", false, nil},
		{"empty user", []string{"*"}, nil, "", false, []string{"*"}},
		{"nothing granted", nil, nil, "alice", false, nil},
		{"glob", []string{"report_*"}, nil, "report_daily", true, []string{"report_*"}},
		{"glob needs its prefix", []string{"report_*"}, nil, "reports", false, []string{"report_*"}},
		{"regex", []string{"reader", "^ro_[a-z]+$"}, nil, "ro_alice", true, []string{"^ro_[a-z]+$", "reader"}},
		{"regex is anchored", []string{"^ro_[a-z]+$"}, nil, "xro_alice", false, []string{"^ro_[a-z]+$"}},
		{"a regex-looking name is no pattern without both anchors", []string{"^ro_.*"}, nil, "ro_alice", false, []string{"^ro_.*"}},
		{"deny regex wins over allow regex", []string{"^ro_.*$"}, []string{"^ro_admin.*$"}, "ro_admin1", false, []string{"^ro_.*$"}},
		{"deny regex leaves the rest", []string{"^ro_.*$"}, []string{"^ro_admin.*$"}, "ro_alice", true, []string{"^ro_.*$"}},
		{"deny glob rules out listed names", []string{"reader", "admin_bob", "admin_eve"}, []string{"admin_*"}, "admin_eve", false, []string{"reader"}},
		{"deny wildcard rules out patterns", []string{"^ro_.*$", "report_*"}, []string{"*"}, "ro_alice", false, nil},
		{"broken allow regex matches nothing", []string{"^ro_(.*$"}, nil, "ro_alice", false, []string{"^ro_(.*$"}},
		{"broken deny regex refuses everything", []string{"reader", "*"}, []string{"^(admin$"}, "reader", false, []string{"*"}},
	}
	for _, tt := range tests {
		s := grantOf(RoleConditions{DBUsers: tt.allow}, RoleConditions{DBUsers: tt.deny})
		ok, allowed := DBUserAllowed(s, tt.user)
		if ok {
			// The list is for refusals only.
			if allowed != nil {
				t.Errorf("%s: allowed with the list %q", tt.name, allowed)
			}
			allowed = s.allowedValues(dbUsersOf)
		}
		if ok != tt.ok || !slices.Equal(allowed, tt.allowed) {
			t.Errorf("%s: %v %v, want %v %v", tt.name, ok, allowed, tt.ok, tt.allowed)
		}
	}
}

// TestRoleValuesMatchLikeLabelValues runs the same scenarios through every
// credential check of a list-valued role field, with the user's traits
// expanded as NewRoleSet does.
func TestRoleValuesMatchLikeLabelValues(t *testing.T) {
	checks := []struct {
		field string
		set   func(c *RoleConditions, vals []string)
		check func(RoleSet, string) (bool, []string)
		of    func(*RoleConditions) []string
	}{
		{"db_users", func(c *RoleConditions, v []string) { c.DBUsers = v }, DBUserAllowed, dbUsersOf},
		{"windows_desktop_logins", func(c *RoleConditions, v []string) { c.WindowsDesktopLogins = v }, DesktopLoginAllowed, windowsDesktopLoginsOf},
	}
	alice := User{Metadata: Metadata{Name: "alice"}, Spec: UserSpec{Traits: map[string][]string{
		"logins": {"alice", "al"},
		"team":   {"payments"},
	}}}
	tests := []struct {
		scenario    string
		allow, deny []string
		value       string
		ok          bool
		allowed     []string
	}{
		{"an exact name", []string{"viewer"}, nil, "viewer", true, []string{"viewer"}},
		{"another name", []string{"viewer"}, nil, "admin", false, []string{"viewer"}},
		{"the wildcard", []string{"*"}, nil, "anyone", true, []string{"*"}},
		{"a glob", []string{"svc-*-ro"}, nil, "svc-orders-ro", true, []string{"svc-*-ro"}},
		{"a regex", []string{"^ro_.*$"}, nil, "ro_alice", true, []string{"^ro_.*$"}},
		{"a trait", []string{"{{internal.logins}}", "^ro_.*$"}, nil, "al", true, []string{"^ro_.*$", "al", "alice"}},
		{"a trait and a regex, the regex matching", []string{"{{internal.logins}}", "^ro_.*$"}, nil, "ro_bob", true, []string{"^ro_.*$", "al", "alice"}},
		{"a trait and a regex, neither matching", []string{"{{internal.logins}}", "^ro_.*$"}, nil, "bob", false, []string{"^ro_.*$", "al", "alice"}},
		{"a trait inside a regex", []string{"^{{external.team}}_(ro|rw)$"}, nil, "payments_rw", true, []string{"^payments_(ro|rw)$"}},
		{"a trait inside a glob", []string{"{{internal.logins}}-*"}, nil, "al-batch", true, []string{"al-*", "alice-*"}},
		{"a missing trait grants nothing", []string{"{{internal.nope}}"}, nil, "", false, nil},
		{"deny by name wins", []string{"^ro_.*$"}, []string{"ro_payroll"}, "ro_payroll", false, []string{"^ro_.*$"}},
		{"deny by regex wins", []string{"*"}, []string{"^(root|admin)$"}, "admin", false, []string{"*"}},
		{"deny by trait wins", []string{"^a.*$"}, []string{"{{internal.logins}}"}, "alice", false, []string{"^a.*$"}},
		{"deny leaves what it does not match", []string{"*"}, []string{"^(root|admin)$"}, "alice", true, []string{"*"}},
	}
	for _, c := range checks {
		for _, tt := range tests {
			var allow, deny RoleConditions
			c.set(&allow, tt.allow)
			c.set(&deny, tt.deny)
			s := NewRoleSet(alice, []Role{
				{Metadata: Metadata{Name: "a"}, Spec: RoleSpec{Allow: allow}},
				{Metadata: Metadata{Name: "b"}, Spec: RoleSpec{Deny: deny}},
			})
			ok, allowed := c.check(s, tt.value)
			if ok {
				if allowed != nil {
					t.Errorf("%s, %s: allowed with the list %q", c.field, tt.scenario, allowed)
				}
				allowed = s.allowedValues(c.of)
			}
			if ok != tt.ok || !slices.Equal(allowed, tt.allowed) {
				t.Errorf("%s, %s: %q gives %v %q, want %v %q", c.field, tt.scenario, tt.value, ok, allowed, tt.ok, tt.allowed)
			}
		}
	}
}

func TestKubeGroups(t *testing.T) {
	tests := []struct {
		name        string
		allow, deny []string
		want        []string
	}{
		{"union sorted", []string{"viewers", "devs", "viewers"}, nil, []string{"devs", "viewers"}},
		{"deny wins", []string{"viewers", "admins"}, []string{"admins"}, []string{"viewers"}},
		{"deny wildcard", []string{"viewers"}, []string{"*"}, nil},
		{"wildcard is no group", []string{"*", "viewers"}, nil, []string{"viewers"}},
		{"a pattern is no group", []string{"^dev-.*$", "dev-*", "viewers"}, nil, []string{"viewers"}},
		{"deny regex", []string{"viewers", "system:nodes", "system:auditors"}, []string{"^system:.*$"}, []string{"viewers"}},
		{"deny glob", []string{"viewers", "prod-admins", "prod-readers"}, []string{"*-admins"}, []string{"prod-readers", "viewers"}},
		{"broken deny regex denies all", []string{"viewers"}, []string{"^(system$"}, nil},
	}
	for _, tt := range tests {
		got := KubeGroups(grantOf(RoleConditions{KubernetesGroups: tt.allow}, RoleConditions{KubernetesGroups: tt.deny}))
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// benchGrant is a grant of three roles as a DBA might hold them: the
// person's login, a read-only pattern and a glob, with a deny on the
// superuser.
func benchGrant() RoleSet {
	return RoleSet{User: "alice", Roles: []Role{
		{Metadata: Metadata{Name: "dba"}, Spec: RoleSpec{
			Allow: RoleConditions{DBUsers: []string{"alice", "reader", "^ro_[a-z]+$"}, KubernetesGroups: []string{"viewers", "alice-team"}},
			Deny:  RoleConditions{DBUsers: []string{"postgres"}, KubernetesGroups: []string{"^system:.*$"}},
		}},
		{Metadata: Metadata{Name: "reports"}, Spec: RoleSpec{Allow: RoleConditions{DBUsers: []string{"report_*"}, KubernetesGroups: []string{"reports"}}}},
		{Metadata: Metadata{Name: "audit"}, Spec: RoleSpec{Deny: RoleConditions{DBUsers: []string{"^admin.*$"}}}},
	}}
}

// BenchmarkDBUserAllowed measures the db_users check of one credential
// request, by how the requested user is matched.
func BenchmarkDBUserAllowed(b *testing.B) {
	s := benchGrant()
	for _, bc := range []struct{ name, user string }{
		{"literal", "reader"},
		{"regex", "ro_alice"},
		{"glob", "report_daily"},
		{"denied", "admin_bob"},
		{"not_granted", "mallory"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				DBUserAllowed(s, bc.user)
			}
		})
	}
}

// BenchmarkKubeGroups measures the groups of one kube credential.
func BenchmarkKubeGroups(b *testing.B) {
	s := benchGrant()
	b.ReportAllocs()
	for b.Loop() {
		KubeGroups(s)
	}
}
