package access_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/access"
)

// wantErr checks that err wraps sentinel and mentions every fragment.
func wantErr(t *testing.T, err, sentinel error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v mentioning %q", sentinel, fragments)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("error %q does not wrap %v", err, sentinel)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not mention %q", err, f)
		}
	}
}

func TestParseResourceID(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want access.ResourceID
	}{
		{"a node", "/prod/node/db-1", access.ResourceID{Cluster: "prod", Kind: "node", Name: "db-1"}},
		{"a database", "/prod/db/orders", access.ResourceID{Cluster: "prod", Kind: "db", Name: "orders"}},
		{"an app", "/gatehouse.example.com/app/grafana", access.ResourceID{Cluster: "gatehouse.example.com", Kind: "app", Name: "grafana"}},
		{"a Kubernetes cluster", "/prod/kube_cluster/main", access.ResourceID{Cluster: "prod", Kind: "kube_cluster", Name: "main"}},
		{"a Windows desktop", "/prod/windows_desktop/ws-7", access.ResourceID{Cluster: "prod", Kind: "windows_desktop", Name: "ws-7"}},
		{"nodes by glob", "/prod/node/web-*", access.ResourceID{Cluster: "prod", Kind: "node", Name: "web-*"}},
		{"pods of a deployment by glob", "/prod/pod/main/default/nginx-*",
			access.ResourceID{Cluster: "prod", Kind: "pod", KubeCluster: "main", Namespace: "default", Name: "nginx-*"}},
		{"secrets in every namespace", "/prod/secret/main/*/*",
			access.ResourceID{Cluster: "prod", Kind: "secret", KubeCluster: "main", Namespace: "*", Name: "*"}},
		{"a kube role by regex", "/prod/kube_role/main/^team-[a-z]+$/^reader|writer$",
			access.ResourceID{Cluster: "prod", Kind: "kube_role", KubeCluster: "main", Namespace: "^team-[a-z]+$", Name: "^reader|writer$"}},
		{"a namespace", "/prod/namespace/main/payments",
			access.ResourceID{Cluster: "prod", Kind: "namespace", KubeCluster: "main", Name: "payments"}},
		{"a cluster role", "/prod/clusterrole/main/view",
			access.ResourceID{Cluster: "prod", Kind: "clusterrole", KubeCluster: "main", Name: "view"}},
		{"a kube node by regex", "/prod/kube_node/main/^ip-10-.*$",
			access.ResourceID{Cluster: "prod", Kind: "kube_node", KubeCluster: "main", Name: "^ip-10-.*$"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := access.ParseResourceID(tt.in)
			if err != nil {
				t.Fatalf("ParseResourceID(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseResourceID(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func TestParseResourceIDRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", []string{"empty"}},
		{"no leading slash", "prod/node/x", []string{`must start with "/"`}},
		{"too few segments", "/x", []string{`resource ID "/x": want /CLUSTER/KIND/NAME`}},
		{"unknown kind", "/prod/nodes/x", []string{`unknown kind "nodes"`}},
		{"empty kind", "/prod//x", []string{"empty KIND"}},
		{"empty cluster", "//node/x", []string{"empty CLUSTER"}},
		{"empty name", "/prod/node/", []string{"empty NAME"}},
		{"trailing slash", "/prod/node/x/", []string{"want /CLUSTER/node/NAME"}},
		{"node with a namespace", "/prod/node/a/b", []string{"want /CLUSTER/node/NAME"}},
		{"pod without a namespace", "/prod/pod/main/nginx", []string{"want /CLUSTER/pod/KUBE_CLUSTER/NAMESPACE/NAME"}},
		{"pod with too many parts", "/prod/pod/main/ns/a/b", []string{"want /CLUSTER/pod/KUBE_CLUSTER/NAMESPACE/NAME"}},
		{"namespace with a namespace", "/prod/namespace/main/ns/x", []string{"want /CLUSTER/namespace/KUBE_CLUSTER/NAME"}},
		{"empty namespace", "/prod/pod/main//x", []string{"empty NAMESPACE"}},
		{"empty kube cluster", "/prod/pod//ns/x", []string{"empty KUBE_CLUSTER"}},
		{"wildcard cluster", "/*/node/x", []string{"CLUSTER", "only allowed in NAME and NAMESPACE"}},
		{"wildcard kube cluster", "/prod/pod/*/ns/x", []string{"KUBE_CLUSTER", "only allowed in NAME and NAMESPACE"}},
		{"regex that does not compile", "/prod/node/^web-($", []string{"NAME", "invalid regular expression"}},
		{"namespace regex that does not compile", "/prod/pod/main/^[a-$/x", []string{"NAMESPACE", "invalid regular expression"}},
		{"half a regex", "/prod/node/^web", []string{"must start with ^ and end with $"}},
		{"a space", "/prod/node/web 1", []string{"whitespace or control character"}},
		{"a tab", "/prod/node/web\t1", []string{"whitespace or control character"}},
		{"a newline", "/prod/node/web\n", []string{"whitespace or control character"}},
		{"a NUL", "/prod/node/web\x00", []string{"whitespace or control character"}},
		{"invalid UTF-8", "/prod/node/\xff", []string{"UTF-8"}},
		{"too long", "/prod/node/" + strings.Repeat("a", 600), []string{"at most 512"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := access.ParseResourceID(tt.in)
			wantErr(t, err, access.ErrInvalid, tt.want...)
			if id != (access.ResourceID{}) {
				t.Errorf("got %+v with the error, want the zero ID", id)
			}
		})
	}
}

func TestKubernetesKinds(t *testing.T) {
	tests := []struct {
		kind                    string
		namespaced, clusterWide bool
	}{
		{"pod", true, false},
		{"kube_role", true, false},
		{"ingress", true, false},
		{"namespace", false, true},
		{"certificatesigningrequest", false, true},
		{"node", false, false},
		{"kube_cluster", false, false},
		{"Pod", false, false},
	}
	for _, tt := range tests {
		if got := access.IsKubernetesNamespacedKind(tt.kind); got != tt.namespaced {
			t.Errorf("IsKubernetesNamespacedKind(%q) = %v", tt.kind, got)
		}
		if got := access.IsKubernetesClusterWideKind(tt.kind); got != tt.clusterWide {
			t.Errorf("IsKubernetesClusterWideKind(%q) = %v", tt.kind, got)
		}
		id := access.ResourceID{Kind: tt.kind}
		if got := id.IsKubernetesSubresource(); got != (tt.namespaced || tt.clusterWide) {
			t.Errorf("IsKubernetesSubresource(%q) = %v", tt.kind, got)
		}
	}
}

func FuzzParseResourceID(f *testing.F) {
	for _, s := range []string{
		"/prod/node/db-1",
		"/prod/db/orders",
		"/prod/app/grafana",
		"/prod/kube_cluster/main",
		"/prod/windows_desktop/ws-7",
		"/prod/pod/main/default/nginx-*",
		"/prod/secret/main/*/*",
		"/prod/kube_role/main/^team-[a-z]+$/^reader$",
		"/prod/namespace/main/payments",
		"/prod/clusterrole/main/view",
		"",
		"/",
		"/x",
		"prod/node/x",
		"/prod/nodes/x",
		"//node/x",
		"/prod/node/",
		"/prod/node/^web-($",
		"/prod/pod/main/nginx",
		"/prod/node/web 1",
		"/*/node/x",
		"/prod/node/\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := access.ParseResourceID(s)
		if err != nil {
			if !errors.Is(err, access.ErrInvalid) {
				t.Fatalf("ParseResourceID(%q): error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		again, err := access.ParseResourceID(id.String())
		if err != nil {
			t.Fatalf("ParseResourceID(%q) = %+v, whose String() %q does not parse: %v", s, id, id.String(), err)
		}
		if again != id {
			t.Fatalf("round trip of %q: got %+v, want %+v", s, again, id)
		}
	})
}

func BenchmarkParseResourceID(b *testing.B) {
	for _, in := range []string{
		"/prod/node/db-1",
		"/prod/pod/main/default/nginx-*",
		"/prod/kube_role/main/^team-[a-z]+$/^reader$",
	} {
		b.Run(in, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := access.ParseResourceID(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
