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
	}
	for _, tt := range tests {
		ok, allowed := DBUserAllowed(grantOf(RoleConditions{DBUsers: tt.allow}, RoleConditions{DBUsers: tt.deny}), tt.user)
		if ok != tt.ok || !slices.Equal(allowed, tt.allowed) {
			t.Errorf("%s: %v %v, want %v %v", tt.name, ok, allowed, tt.ok, tt.allowed)
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
	}
	for _, tt := range tests {
		got := KubeGroups(grantOf(RoleConditions{KubernetesGroups: tt.allow}, RoleConditions{KubernetesGroups: tt.deny}))
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
