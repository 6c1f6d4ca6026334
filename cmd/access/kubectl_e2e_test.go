package main_test

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/kubetest"
)

// kubeE2ERoles: k8s puts alice into viewers and ops on the env=test
// cluster; k8s-root would put her into system:masters.
const kubeE2ERoles = `
kind: role
version: v1
metadata: {name: k8s}
spec:
  allow:
    kubernetes_labels: {env: test}
    kubernetes_groups: [viewers, ops]
---
kind: role
version: v1
metadata: {name: k8s-root}
spec:
  allow:
    kubernetes_labels: {"*": "*"}
    kubernetes_groups: [system:masters]
---
kind: role
version: v1
metadata: {name: k8s-requester}
spec: {allow: {request: {roles: [k8s, k8s-root]}}}
---
kind: role
version: v1
metadata: {name: k8s-reviewer}
spec: {allow: {review_requests: {roles: [k8s, k8s-root]}}}
---
kind: kube_cluster
version: v1
metadata: {name: test-k8s, labels: {env: test}}
spec: {server: %s, ca_pem: %s}
`

// TestKubectlWhoamiAgainstX509APIServer is `access creds --kube` used by
// kubectl against an API server that authenticates client certificates
// with k8s.io/apiserver's x509 authenticator, trusting `accessctl ca
// export --type kube --resource test-k8s` as its --client-ca-file: the
// request arrives as alice with the granted groups. A grant of
// system:masters gets no credentials.
func TestKubectlWhoamiAgainstX509APIServer(t *testing.T) {
	kubectl := kubetest.Kubectl(t)
	api := kubetest.Start(t)
	c, admin, identity := setup(t)
	server, _ := json.Marshal(api.URL)
	caPEM, _ := json.Marshal(string(api.CAPEM))
	c.Apply(strings.NewReplacer("%s, ca_pem: %s", string(server)+", ca_pem: "+string(caPEM)).Replace(kubeE2ERoles))
	alice := invite(t, admin, identity, "alice", "k8s-requester")
	bob := invite(t, admin, identity, "bob", "k8s-reviewer")

	id := decodeRequests(t, alice.ok("", accessBin, "request", "create", "--roles", "k8s", "--reason", "incident", "--nowait", "--format", "json"))[0].ID
	bob.ok("", accessBin, "request", "review", "--approve", "--reason", "ok", id)
	dir := t.TempDir()
	alice.ok("", accessBin, "creds", id, "--kube", "test-k8s", "--out", dir)
	whoami := []string{"--kubeconfig", filepath.Join(dir, "kubeconfig"), "--cache-dir", t.TempDir(), "auth", "whoami", "-o", "json"}

	// Before the API server trusts the cluster's kube CA, the certificate
	// authenticates nobody.
	if out, errOut, code := alice.run("", kubectl, whoami...); code == 0 || !strings.Contains(errOut, "Unauthorized") {
		t.Fatalf("kubectl auth whoami with an untrusted certificate: exit %d\n%s%s", code, out, errOut)
	}

	api.TrustClientCA(t, []byte(admin.ok("", accessctlBin, "--identity", identity, "ca", "export", "--type", "kube", "--resource", "test-k8s")))
	out := alice.ok("", kubectl, whoami...)
	var review struct {
		Kind   string `json:"kind"`
		Status struct {
			UserInfo struct {
				Username string   `json:"username"`
				Groups   []string `json:"groups"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &review); err != nil || review.Kind != "SelfSubjectReview" {
		t.Fatalf("kubectl auth whoami -o json: %v\n%s", err, out)
	}
	ui := review.Status.UserInfo
	groups := slices.Sorted(slices.Values(ui.Groups))
	if ui.Username != "alice" || !slices.Equal(groups, []string{"ops", "system:authenticated", "viewers"}) {
		t.Fatalf("the API server saw user %q groups %q; want alice in ops, viewers (and system:authenticated)\n%s", ui.Username, ui.Groups, out)
	}
	if reqs := api.Requests(); !slices.Contains(reqs, "POST /apis/authentication.k8s.io/v1/selfsubjectreviews") {
		t.Fatalf("kubectl asked the API server %q", reqs)
	}

	root := decodeRequests(t, alice.ok("", accessBin, "request", "create", "--roles", "k8s-root", "--reason", "break glass", "--nowait", "--format", "json"))[0].ID
	bob.ok("", accessBin, "request", "review", "--approve", "--reason", "ok", root)
	rootDir := t.TempDir()
	if out, errOut, code := alice.run("", accessBin, "creds", root, "--kube", "test-k8s", "--out", rootDir); code == 0 || !strings.Contains(errOut, "system:masters") {
		t.Fatalf("access creds for a system:masters grant: exit %d\n%s%s", code, out, errOut)
	}
	if _, _, code := alice.run("", "test", "-e", filepath.Join(rootDir, "kubeconfig")); code == 0 {
		t.Fatal("a refused system:masters grant left a kubeconfig behind")
	}
}
