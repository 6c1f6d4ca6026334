package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/internal/testcluster"
	"github.com/gatehouse-dev/gatehouse/pki"
)

const credRoles = `
kind: role
version: v1
metadata: {name: ops}
spec:
  allow:
    logins: [deploy]
    node_labels: {env: prod}
    db_labels: {env: prod}
    db_users: [alice]
  options: {max_session_ttl: 1h}
---
kind: role
version: v1
metadata: {name: ops-requester}
spec: {allow: {request: {roles: [ops]}}}
---
kind: role
version: v1
metadata: {name: ops-reviewer}
spec: {allow: {review_requests: {roles: [ops]}}}
---
kind: node
version: v1
metadata: {name: web-1, labels: {env: prod}}
spec: {hostname: web-1.internal}
---
kind: db
version: v1
metadata: {name: orders, labels: {env: prod}}
spec: {protocol: postgres, uri: "orders:5432"}
`

// approvedGrant returns alice's client and an approved grant of ops.
func approvedGrant(b *testing.B) (*api.Client, string) {
	c := testcluster.StartDurable(b)
	c.Apply(credRoles)
	alice, bob := c.Login("alice", "ops-requester"), c.Login("bob", "ops-reviewer")
	ctx := context.Background()
	r, err := alice.CreateRequest(ctx, api.CreateRequest{Roles: []string{"ops"}, Reason: "bench", Duration: "2h"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := bob.Review(ctx, r.ID, api.ReviewRequest{Verdict: access.VerdictApprove}); err != nil {
		b.Fatal(err)
	}
	return alice, r.ID
}

// benchCreds measures issue, one `access creds` end to end under alice's
// approved grant of ops that writes its files into dir, and reports the
// latencies.
func benchCreds(b *testing.B, issue func(alice *api.Client, id, dir string) error) {
	alice, id := approvedGrant(b)
	dir := b.TempDir()
	var lat latencies
	for b.Loop() {
		start := time.Now()
		if err := issue(alice, id, dir); err != nil {
			b.Fatal(err)
		}
		lat.add(time.Since(start))
	}
	lat.report(b)
}

// BenchmarkCredsSSH is `access creds ID` for SSH, end to end: a key pair
// made on the client, the public key sent over mTLS, the grant checked,
// the certificate signed and both files written.
func BenchmarkCredsSSH(b *testing.B) {
	benchCreds(b, func(alice *api.Client, id, dir string) error {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		sp, _ := ssh.NewPublicKey(pub)
		cred, err := alice.IssueCredential(context.Background(), id, api.CredentialRequest{Kind: "ssh", PublicKey: string(ssh.MarshalAuthorizedKey(sp))})
		if err != nil {
			return err
		}
		block, _ := ssh.MarshalPrivateKey(priv, "")
		return writeFiles(dir, map[string][]byte{"id_ed25519": pem.EncodeToMemory(block), "id_ed25519-cert.pub": []byte(cred.Certificate)})
	})
}

// BenchmarkCredsDB is `access creds ID --db orders --db-user alice`, end
// to end: P-256 key and CSR on the client, certificate from the
// database's own CA, three files written.
func BenchmarkCredsDB(b *testing.B) {
	benchCreds(b, func(alice *api.Client, id, dir string) error {
		keyPEM, csrPEM, err := pki.NewKeyAndCSR("alice")
		if err != nil {
			return err
		}
		cred, err := alice.IssueCredential(context.Background(), id, api.CredentialRequest{Kind: "db", Resource: "orders", DBUser: "alice", CSR: string(csrPEM)})
		if err != nil {
			return err
		}
		return writeFiles(dir, map[string][]byte{"db.key": keyPEM, "db.crt": []byte(cred.Certificate), "db-ca.pem": []byte(cred.CAPEM)})
	})
}

func writeFiles(dir string, files map[string][]byte) error {
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}
