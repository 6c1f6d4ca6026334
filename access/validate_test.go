package access_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
)

func TestValidName(t *testing.T) {
	for _, ok := range []string{"a", "alice", "alice@example.com", "db-1", "web_2.prod", "0", strings.Repeat("a", 128)} {
		if err := access.ValidName(ok); err != nil {
			t.Errorf("ValidName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", ".a", "@a", "a b", "a/b", "a*", "ä", strings.Repeat("a", 129), "a\n"} {
		err := access.ValidName(bad)
		if bad == "" {
			wantErr(t, err, access.ErrInvalid, "name is empty")
			continue
		}
		wantErr(t, err, access.ErrInvalid, `name "`)
	}
}

// validRole is the design's contractor role; cases break one field each.
func validRole() access.Role {
	return access.Role{
		Kind: "role", Version: "v1",
		Metadata: access.Metadata{Name: "contractor"},
		Spec: access.RoleSpec{
			Allow: access.RoleConditions{
				Logins:               []string{"alice", "{{internal.logins}}"},
				NodeLabels:           access.Labels{"env": {"staging"}},
				DBLabels:             access.Labels{"env": {"dev", "stage"}},
				DBUsers:              []string{"viewer"},
				DBNames:              []string{"*"},
				AppLabels:            access.Labels{"*": {"*"}},
				KubernetesLabels:     access.Labels{"*": {"*"}},
				KubernetesGroups:     []string{"viewers"},
				KubernetesResources:  []access.KubernetesResource{{Kind: "pod", Namespace: "dev", Name: "*"}},
				WindowsDesktopLabels: access.Labels{"env": {"dev"}},
				WindowsDesktopLogins: []string{"{{internal.windows_logins}}"},
				Request: &access.RequestConditions{
					Roles:              []string{"dba", "^team-.*$"},
					SearchAsRoles:      []string{"access"},
					SuggestedReviewers: []string{"bob"},
					MaxDuration:        access.Duration(8 * time.Hour),
					Annotations:        map[string][]string{"pagerduty_services": {"checkout"}},
				},
				ReviewRequests: &access.ReviewConditions{Roles: []string{"dba"}},
				Rules:          []access.Rule{{Resources: []string{"request"}, Verbs: []string{"list", "read"}}},
			},
			Deny:    access.RoleConditions{NodeLabels: access.Labels{"env": {"prod"}}},
			Options: access.RoleOptions{MaxSessionTTL: access.Duration(time.Hour)},
		},
	}
}

func TestRoleValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(r *access.Role)
		want   []string // empty: valid
	}{
		{"the design's contractor role", func(r *access.Role) {}, nil},
		{"the admin role", func(r *access.Role) {
			*r = access.Role{Kind: "role", Version: "v1", Metadata: access.Metadata{Name: "admin"},
				Spec: access.RoleSpec{Allow: access.RoleConditions{Rules: []access.Rule{{Resources: []string{"*"}, Verbs: []string{"*"}}}}}}
		}, nil},
		{"cluster-wide Kubernetes kinds take no namespace", func(r *access.Role) {
			r.Spec.Allow.KubernetesResources = []access.KubernetesResource{{Kind: "clusterrole", Name: "view"}, {Kind: "*", Namespace: "*", Name: "*"}}
		}, nil},
		{"wrong kind", func(r *access.Role) { r.Kind = "user" }, []string{`kind "user": want "role"`}},
		{"missing version", func(r *access.Role) { r.Version = "" }, []string{`version "": want "v1"`}},
		{"bad name", func(r *access.Role) { r.Metadata.Name = "db admins" }, []string{"metadata.name", `"db admins"`}},
		{"unknown rule verb", func(r *access.Role) {
			r.Spec.Allow.Rules = []access.Rule{{Resources: []string{"request"}, Verbs: []string{"list", "frob"}}}
		}, []string{`spec.allow.rules[0].verbs[1]: unknown verb "frob"`}},
		{"unknown rule resource", func(r *access.Role) {
			r.Spec.Deny.Rules = []access.Rule{{}, {Resources: []string{"requests"}, Verbs: []string{"*"}}}
			r.Spec.Deny.Rules[0] = access.Rule{Resources: []string{"role"}, Verbs: []string{"delete"}}
		}, []string{`spec.deny.rules[1].resources[0]: unknown resource "requests"`}},
		{"a rule without verbs", func(r *access.Role) {
			r.Spec.Allow.Rules = []access.Rule{{Resources: []string{"role"}}}
		}, []string{"spec.allow.rules[0].verbs: empty"}},
		{"a broken label expression", func(r *access.Role) {
			r.Spec.Deny.DBLabels = access.Labels{"env": {"^(prod$"}}
		}, []string{`spec.deny.db_labels["env"]: invalid regular expression`}},
		{"an unknown template in logins", func(r *access.Role) {
			r.Spec.Allow.Logins = []string{"root", "{{logins}}"}
		}, []string{"spec.allow.logins[1]", "unknown template"}},
		{"db users, names and desktop logins match as label values do", func(r *access.Role) {
			r.Spec.Allow.DBUsers = []string{"{{internal.logins}}", "^ro_.*$", "report_*", "*"}
			r.Spec.Allow.DBNames = []string{"^orders_[0-9]+$", "{{internal.logins}}_*"}
			r.Spec.Allow.WindowsDesktopLogins = []string{"^{{internal.logins}}-adm$"}
			r.Spec.Deny.DBUsers = []string{"^(postgres|root)$", "admin_*"}
			r.Spec.Deny.KubernetesGroups = []string{"^system:.*$", "*-admins", "*"}
		}, nil},
		{"a broken db_users expression", func(r *access.Role) {
			r.Spec.Allow.DBUsers = []string{"viewer", "^ro_(.*$"}
		}, []string{`spec.allow.db_users[1]: invalid regular expression "^ro_(.*$"`}},
		{"a broken deny db_users expression", func(r *access.Role) {
			r.Spec.Deny.DBUsers = []string{"^[admin$"}
		}, []string{`spec.deny.db_users[0]: invalid regular expression`}},
		{"a broken db_names expression", func(r *access.Role) {
			r.Spec.Allow.DBNames = []string{"^(orders$"}
		}, []string{"spec.allow.db_names[0]: invalid regular expression"}},
		{"a broken desktop login expression around a template", func(r *access.Role) {
			r.Spec.Allow.WindowsDesktopLogins = []string{"^{{internal.logins}}(-adm$"}
		}, []string{"spec.allow.windows_desktop_logins[0]: invalid regular expression"}},
		{"a broken deny Kubernetes group expression", func(r *access.Role) {
			r.Spec.Deny.KubernetesGroups = []string{"^system:(.*$"}
		}, []string{"spec.deny.kubernetes_groups[0]: invalid regular expression"}},
		{"an unknown template in db_users", func(r *access.Role) {
			r.Spec.Allow.DBUsers = []string{"{{logins}}"}
		}, []string{"spec.allow.db_users[0]", "unknown template"}},
		{"an empty db user", func(r *access.Role) {
			r.Spec.Deny.DBUsers = []string{" "}
		}, []string{"spec.deny.db_users[0]: empty"}},
		{"an allowed Kubernetes group pattern", func(r *access.Role) {
			r.Spec.Allow.KubernetesGroups = []string{"viewers", "^dev-.*$"}
		}, []string{`spec.allow.kubernetes_groups[1]: "^dev-.*$" is a pattern`, "name each group"}},
		{"an allowed Kubernetes group glob", func(r *access.Role) {
			r.Spec.Allow.KubernetesGroups = []string{"{{internal.logins}}-*"}
		}, []string{"spec.allow.kubernetes_groups[0]", "is a pattern"}},
		{"an empty login", func(r *access.Role) {
			r.Spec.Allow.Logins = []string{""}
		}, []string{"spec.allow.logins[0]: empty"}},
		{"an unknown Kubernetes kind", func(r *access.Role) {
			r.Spec.Allow.KubernetesResources = []access.KubernetesResource{{Kind: "pods", Namespace: "dev", Name: "*"}}
		}, []string{`spec.allow.kubernetes_resources[0].kind: unknown Kubernetes kind "pods"`}},
		{"a namespaced kind without a namespace", func(r *access.Role) {
			r.Spec.Allow.KubernetesResources = []access.KubernetesResource{{Kind: "secret", Name: "*"}}
		}, []string{"spec.allow.kubernetes_resources[0].namespace: required"}},
		{"a cluster-wide kind with a namespace", func(r *access.Role) {
			r.Spec.Allow.KubernetesResources = []access.KubernetesResource{{Kind: "namespace", Namespace: "dev", Name: "*"}}
		}, []string{"spec.allow.kubernetes_resources[0].namespace: not allowed"}},
		{"a Kubernetes resource without a name", func(r *access.Role) {
			r.Spec.Allow.KubernetesResources = []access.KubernetesResource{{Kind: "pod", Namespace: "dev"}}
		}, []string{"spec.allow.kubernetes_resources[0].name: empty"}},
		{"a broken Kubernetes name expression", func(r *access.Role) {
			r.Spec.Allow.KubernetesResources = []access.KubernetesResource{{Kind: "pod", Namespace: "dev", Name: "^(x$"}}
		}, []string{"spec.allow.kubernetes_resources[0].name: invalid regular expression"}},
		{"a bad requestable role", func(r *access.Role) {
			r.Spec.Allow.Request.Roles = []string{"dba", "db*"}
		}, []string{"spec.allow.request.roles[1]", `"db*"`}},
		{"a broken requestable role expression", func(r *access.Role) {
			r.Spec.Deny.Request = &access.RequestConditions{Roles: []string{"^(admin$"}}
		}, []string{"spec.deny.request.roles[0]: invalid regular expression"}},
		{"a bad search_as role", func(r *access.Role) {
			r.Spec.Allow.Request.SearchAsRoles = []string{"*"}
		}, []string{"spec.allow.request.search_as_roles[0]"}},
		{"a deny may refuse every search_as role", func(r *access.Role) {
			r.Spec.Deny.Request = &access.RequestConditions{SearchAsRoles: []string{"*", "^prod-.*$"}}
		}, nil},
		{"a negative max_duration", func(r *access.Role) {
			r.Spec.Allow.Request.MaxDuration = -1
		}, []string{"spec.allow.request.max_duration: must not be negative"}},
		{"a bad reviewable role", func(r *access.Role) {
			r.Spec.Allow.ReviewRequests.Roles = []string{"dba", ""}
		}, []string{"spec.allow.review_requests.roles[1]"}},
		{"a negative session TTL", func(r *access.Role) {
			r.Spec.Options.MaxSessionTTL = -1
		}, []string{"spec.options.max_session_ttl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRole()
			tt.change(&r)
			err := r.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			wantErr(t, err, access.ErrInvalid, tt.want...)
		})
	}
}

func TestSetDefaults(t *testing.T) {
	r := access.Role{Metadata: access.Metadata{Name: "dba"}}
	r.SetDefaults()
	if r.Kind != "role" || r.Version != "v1" {
		t.Errorf("role defaults: kind %q version %q", r.Kind, r.Version)
	}
	if err := r.Validate(); err != nil {
		t.Errorf("a defaulted empty role: %v", err)
	}
	u := access.User{Metadata: access.Metadata{Name: "alice"}, Spec: access.UserSpec{Roles: []string{"dev"}}}
	u.SetDefaults()
	if u.Kind != "user" || u.Version != "v1" {
		t.Errorf("user defaults: kind %q version %q", u.Kind, u.Version)
	}
	res := access.Resource{Metadata: access.Metadata{Name: "iot"}}
	res.SetDefaults()
	if res.Kind != "" || res.Version != "v1" {
		t.Errorf("resource defaults: kind %q (a resource's kind is never guessed) version %q", res.Kind, res.Version)
	}
	// Defaults never overwrite what the file says.
	wrong := access.Role{Kind: "user", Version: "v2"}
	wrong.SetDefaults()
	if wrong.Kind != "user" || wrong.Version != "v2" {
		t.Errorf("SetDefaults overwrote kind/version: %q %q", wrong.Kind, wrong.Version)
	}
}

func TestUserValidate(t *testing.T) {
	valid := func() access.User {
		return access.User{Kind: "user", Version: "v1", Metadata: access.Metadata{Name: "alice@example.com"},
			Spec: access.UserSpec{Roles: []string{"dev", "contractor"}, Traits: map[string][]string{"logins": {"alice"}}}}
	}
	tests := []struct {
		name   string
		change func(u *access.User)
		want   []string
	}{
		{"a valid user", func(u *access.User) {}, nil},
		{"wrong kind", func(u *access.User) { u.Kind = "role" }, []string{`kind "role": want "user"`}},
		{"wrong version", func(u *access.User) { u.Version = "v2" }, []string{`version "v2"`}},
		{"bad name", func(u *access.User) { u.Metadata.Name = "-alice" }, []string{"metadata.name", `"-alice"`}},
		{"no roles", func(u *access.User) { u.Spec.Roles = nil }, []string{"spec.roles: a user needs at least one role"}},
		{"a bad role name", func(u *access.User) { u.Spec.Roles = []string{"dev", "a b"} }, []string{"spec.roles[1]", `"a b"`}},
		{"an empty trait name", func(u *access.User) { u.Spec.Traits = map[string][]string{"": {"x"}} }, []string{"spec.traits"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := valid()
			tt.change(&u)
			err := u.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			wantErr(t, err, access.ErrInvalid, tt.want...)
		})
	}
}

const testCAPEM = `-----BEGIN CERTIFICATE-----
MIIBszCCAVmgAwIBAgIUZXhhbXBsZQ==
-----END CERTIFICATE-----
`

func TestResourceValidate(t *testing.T) {
	res := func(kind string, spec access.ResourceSpec) access.Resource {
		return access.Resource{Kind: kind, Version: "v1",
			Metadata: access.Metadata{Name: "iot", Labels: map[string]string{"env": "staging", "team": "edge"}}, Spec: spec}
	}
	tests := []struct {
		name string
		r    access.Resource
		want []string
	}{
		{"a node", res("node", access.ResourceSpec{Hostname: "iot", Addr: "10.0.0.7:22"}), nil},
		{"a node with no spec", res("node", access.ResourceSpec{}), nil},
		{"a postgres database", res("db", access.ResourceSpec{Protocol: "postgres", URI: "db.internal:5432"}), nil},
		{"a mysql database", res("db", access.ResourceSpec{Protocol: "mysql", URI: "db.internal:3306"}), nil},
		{"an app", res("app", access.ResourceSpec{URI: "http://grafana:3000", PublicAddr: "grafana.example.com"}), nil},
		{"a Kubernetes cluster", res("kube_cluster", access.ResourceSpec{Server: "https://k8s:6443", CAPEM: testCAPEM}), nil},
		{"a Windows desktop", res("windows_desktop", access.ResourceSpec{Addr: "10.0.0.9:3389", Domain: "corp.example.com"}), nil},

		{"an unknown kind", res("server", access.ResourceSpec{}), []string{`kind "server"`}},
		{"a missing version", func() access.Resource { r := res("node", access.ResourceSpec{}); r.Version = ""; return r }(), []string{`version ""`}},
		{"a bad name", func() access.Resource { r := res("node", access.ResourceSpec{}); r.Metadata.Name = "db 1"; return r }(), []string{"metadata.name"}},
		{"a label key with a space", func() access.Resource {
			r := res("node", access.ResourceSpec{})
			r.Metadata.Labels["my env"] = "x"
			return r
		}(), []string{`metadata.labels["my env"]`}},
		{"a wildcard label key", func() access.Resource {
			r := res("node", access.ResourceSpec{})
			r.Metadata.Labels["*"] = "x"
			return r
		}(), []string{`metadata.labels["*"]`, "reserved"}},
		{"a label value with a newline", func() access.Resource {
			r := res("node", access.ResourceSpec{})
			r.Metadata.Labels["env"] = "prod\n"
			return r
		}(), []string{`metadata.labels["env"]`, "control"}},

		{"a protocol on a node", res("node", access.ResourceSpec{Hostname: "iot", Protocol: "postgres"}), []string{"spec.protocol: not allowed for kind node"}},
		{"a server on an app", res("app", access.ResourceSpec{URI: "http://x", Server: "https://k8s"}), []string{"spec.server: not allowed for kind app"}},
		{"a hostname on a desktop", res("windows_desktop", access.ResourceSpec{Addr: "x:3389", Hostname: "x"}), []string{"spec.hostname: not allowed for kind windows_desktop"}},
		{"a database without a protocol", res("db", access.ResourceSpec{URI: "db:5432"}), []string{"spec.protocol: required"}},
		{"a database with another protocol", res("db", access.ResourceSpec{Protocol: "mongodb", URI: "db:27017"}), []string{`spec.protocol: "mongodb"`}},
		{"a database without a URI", res("db", access.ResourceSpec{Protocol: "postgres"}), []string{"spec.uri: required"}},
		{"an app without a URI", res("app", access.ResourceSpec{PublicAddr: "x"}), []string{"spec.uri: required"}},
		{"an app with a bare host", res("app", access.ResourceSpec{URI: "grafana:3000"}), []string{"spec.uri", "http"}},
		{"a cluster without a server", res("kube_cluster", access.ResourceSpec{}), []string{"spec.server: required"}},
		{"a cluster over plain HTTP", res("kube_cluster", access.ResourceSpec{Server: "http://k8s:6443"}), []string{"spec.server", "https"}},
		{"a cluster with a bad CA", res("kube_cluster", access.ResourceSpec{Server: "https://k8s:6443", CAPEM: "not a pem"}), []string{"spec.ca_pem"}},
		{"a desktop without an address", res("windows_desktop", access.ResourceSpec{Domain: "corp"}), []string{"spec.addr: required"}},
		{"an address with a space", res("node", access.ResourceSpec{Addr: "10.0.0.7 :22"}), []string{"spec.addr", "whitespace"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.r.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			wantErr(t, err, access.ErrInvalid, tt.want...)
		})
	}
}
