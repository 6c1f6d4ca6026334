package access_test

import (
	"reflect"
	"testing"

	"github.com/gatehouse-dev/gatehouse/access"
)

func TestExpandTraits(t *testing.T) {
	traits := map[string][]string{
		"logins":         {"alice", "root"},
		"team":           {"edge"},
		"envs":           {"dev", "stage"},
		"windows_logins": {"Administrator"},
		"manager":        {"bob"},
		"empty":          {},
	}
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"plain values pass through", []string{"ubuntu"}, []string{"ubuntu"}},
		{"an internal trait expands to each value", []string{"{{internal.logins}}"}, []string{"alice", "root"}},
		{"spaces inside the braces", []string{"{{ internal.logins }}"}, []string{"alice", "root"}},
		{"an external trait", []string{"{{external.team}}"}, []string{"edge"}},
		{"a template inside a string", []string{"team-{{internal.team}}-ro"}, []string{"team-edge-ro"}},
		{"two templates multiply", []string{"{{internal.team}}-{{internal.envs}}"}, []string{"edge-dev", "edge-stage"}},
		{"duplicates after expansion are dropped", []string{"alice", "{{internal.logins}}"}, []string{"alice", "root"}},
		{"a missing trait drops the value", []string{"ubuntu", "{{internal.nope}}"}, []string{"ubuntu"}},
		{"an empty trait drops the value", []string{"{{internal.empty}}"}, []string{}},
		{"unknown template syntax is dropped, never literal", []string{"{{foo}}", "{{internal.logins"}, []string{}},
		{"a stray closing brace is dropped", []string{"root}}"}, []string{}},
		{"a good template beside a bad one is dropped", []string{"{{internal.team}}{{bad}}"}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			role := access.Role{Spec: access.RoleSpec{
				Allow: access.RoleConditions{Logins: tt.in},
				Deny:  access.RoleConditions{DBUsers: tt.in},
			}}
			got := role.ExpandTraits(traits)
			if !reflect.DeepEqual(got.Spec.Allow.Logins, tt.want) {
				t.Errorf("allow.logins = %q, want %q", got.Spec.Allow.Logins, tt.want)
			}
			if !reflect.DeepEqual(got.Spec.Deny.DBUsers, tt.want) {
				t.Errorf("deny.db_users = %q, want %q", got.Spec.Deny.DBUsers, tt.want)
			}
		})
	}
}

func TestExpandTraitsEveryField(t *testing.T) {
	traits := map[string][]string{"v": {"x", "y"}}
	tpl := []string{"{{internal.v}}"}
	want := []string{"x", "y"}
	role := access.Role{
		Metadata: access.Metadata{Name: "r", Labels: map[string]string{"a": "b"}},
		Spec: access.RoleSpec{Allow: access.RoleConditions{
			Logins:               tpl,
			DBUsers:              tpl,
			DBNames:              tpl,
			KubernetesGroups:     tpl,
			WindowsDesktopLogins: tpl,
			NodeLabels:           access.Labels{"env": tpl, "gone": {"{{internal.nope}}"}},
			DBLabels:             access.Labels{"env": tpl},
			AppLabels:            access.Labels{"env": tpl},
			KubernetesLabels:     access.Labels{"env": tpl},
			WindowsDesktopLabels: access.Labels{"env": tpl},
			Request: &access.RequestConditions{
				Roles:              []string{"{{internal.v}}"}, // not a templated field
				SuggestedReviewers: tpl,
			},
		}},
	}
	got := role.ExpandTraits(traits)
	a := got.Spec.Allow
	for name, vals := range map[string][]string{
		"logins": a.Logins, "db_users": a.DBUsers, "db_names": a.DBNames,
		"kubernetes_groups": a.KubernetesGroups, "windows_desktop_logins": a.WindowsDesktopLogins,
		"node_labels": a.NodeLabels["env"], "db_labels": a.DBLabels["env"], "app_labels": a.AppLabels["env"],
		"kubernetes_labels": a.KubernetesLabels["env"], "windows_desktop_labels": a.WindowsDesktopLabels["env"],
		"request.suggested_reviewers": a.Request.SuggestedReviewers,
	} {
		if !reflect.DeepEqual(vals, want) {
			t.Errorf("%s = %q, want %q", name, vals, want)
		}
	}
	if vals, ok := a.NodeLabels["gone"]; !ok || len(vals) != 0 {
		t.Errorf("a label whose trait is missing = %q (present %v), want the key with no values, matching nothing", vals, ok)
	}
	if !reflect.DeepEqual(a.Request.Roles, []string{"{{internal.v}}"}) {
		t.Errorf("request.roles changed to %q; only the documented fields expand", a.Request.Roles)
	}

	// The copy is deep: editing it leaves the original alone.
	a.Logins[0] = "changed"
	a.Request.SuggestedReviewers[0] = "changed"
	got.Metadata.Labels["a"] = "changed"
	if role.Spec.Allow.Logins[0] != tpl[0] || role.Spec.Allow.Request.SuggestedReviewers[0] != tpl[0] || role.Metadata.Labels["a"] != "b" {
		t.Error("ExpandTraits shares memory with the original role")
	}
}
