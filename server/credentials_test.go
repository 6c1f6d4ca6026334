package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/internal/testcluster"
)

const sshRoles = `
kind: role
version: v1
metadata: {name: ops}
spec:
  allow:
    logins: ["{{internal.logins}}", deploy]
    node_labels: {env: prod}
  options: {max_session_ttl: 30m}
---
kind: role
version: v1
metadata: {name: ops-requester}
spec:
  allow:
    request: {roles: [ops], search_as_roles: [ops]}
---
kind: role
version: v1
metadata: {name: ops-reviewer}
spec:
  allow:
    review_requests: {roles: [ops]}
---
kind: node
version: v1
metadata: {name: web-1, labels: {env: prod}}
spec: {hostname: web-1.internal}
---
kind: node
version: v1
metadata: {name: db-1, labels: {env: prod}}
spec: {hostname: db-1.internal}
---
kind: node
version: v1
metadata: {name: dev-1, labels: {env: dev}}
spec: {hostname: dev-1.internal}
`

func newSSHKey(t *testing.T) (ssh.PublicKey, string) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sp, string(ssh.MarshalAuthorizedKey(sp))
}

// checkCert checks a certificate the way sshd does with TrustedUserCAKeys
// = the exported lines (the real sshd proof is in ca/ssh_test.go).
func checkCert(t *testing.T, trusted string, certLine string, principal string) error {
	t.Helper()
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(certLine))
	if err != nil {
		t.Fatal(err)
	}
	cert := pk.(*ssh.Certificate)
	var cas []ssh.PublicKey
	for _, line := range strings.Split(strings.TrimSpace(trusted), "\n") {
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		cas = append(cas, k)
	}
	checker := &ssh.CertChecker{IsUserAuthority: func(auth ssh.PublicKey) bool {
		for _, ca := range cas {
			if string(ca.Marshal()) == string(auth.Marshal()) {
				return true
			}
		}
		return false
	}}
	return checker.CheckCert(principal, cert)
}

func TestSSHCredentialsForAGrant(t *testing.T) {
	c := testcluster.Start(t)
	c.Apply(sshRoles)
	alice := c.Login("alice", "ops-requester")
	bob := c.Login("bob", "ops-reviewer")
	mallory := c.Login("mallory", "ops-requester")
	ctx := context.Background()
	_, pubLine := newSSHKey(t)

	r, err := alice.CreateRequest(ctx, api.CreateRequest{Resources: []string{"/" + testcluster.Name + "/node/web-1"}, Reason: "deploy fix", Duration: "2h"})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing is signed for a pending request.
	if _, err := alice.IssueCredential(ctx, r.ID, api.CredentialRequest{Kind: "ssh", PublicKey: pubLine}); api.ErrorCode(err) != "conflict" {
		t.Fatalf("credentials of a pending request: %v", err)
	}
	if _, err := bob.Review(ctx, r.ID, api.ReviewRequest{Verdict: access.VerdictApprove}); err != nil {
		t.Fatal(err)
	}
	cred, err := alice.IssueCredential(ctx, r.ID, api.CredentialRequest{Kind: "ssh", PublicKey: pubLine})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cred.Principals, ","); got != "alice@web-1.internal,deploy@web-1.internal" {
		t.Fatalf("principals = %s (host-scoped, only the granted node)", got)
	}
	if life := cred.NotAfter.Sub(cred.NotBefore); life > 31*time.Minute+time.Second {
		t.Fatalf("certificate lives %s; the role's max_session_ttl is 30m (+1m backdating)", life)
	}
	if !strings.HasPrefix(cred.KeyID, "alice/"+r.ID) {
		t.Fatalf("key id %q lacks the request id", cred.KeyID)
	}
	trusted, err := c.Anonymous().ExportCA(ctx, "ssh", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkCert(t, trusted, cred.Certificate, "alice@web-1.internal"); err != nil {
		t.Fatalf("the exported CA does not accept the certificate: %v", err)
	}
	if err := checkCert(t, trusted, cred.Certificate, "alice@db-1.internal"); err == nil {
		t.Fatal("the certificate opens a node that was not granted")
	}

	// Someone else's grant, a weak key, and a dropped grant are refused.
	if _, err := mallory.IssueCredential(ctx, r.ID, api.CredentialRequest{Kind: "ssh", PublicKey: pubLine}); err == nil {
		t.Fatal("mallory got credentials for alice's grant")
	}
	if _, err := alice.IssueCredential(ctx, r.ID, api.CredentialRequest{Kind: "ssh", PublicKey: "ssh-dss AAAAB3NzaC1kc3MAAACBAP== x"}); api.ErrorCode(err) != "invalid" {
		t.Fatalf("a DSA key: %v", err)
	}
	if _, err := alice.Drop(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.IssueCredential(ctx, r.ID, api.CredentialRequest{Kind: "ssh", PublicKey: pubLine}); api.ErrorCode(err) != "conflict" {
		t.Fatalf("credentials of a dropped grant: %v", err)
	}
	if evs := issueEvents(t, c, r.ID); len(evs) < 4 {
		t.Fatalf("audited attempts = %d", len(evs))
	}
}
