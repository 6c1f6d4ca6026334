package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/internal/testcluster"
)

// x509Roles: dba reaches the prod databases as its holder's login or
// reader (postgres is listed but denied), the prod cluster with the
// viewers group, and the prod apps; kube-root would hand out
// system:masters.
const x509Roles = `
kind: role
version: v1
metadata: {name: dba}
spec:
  allow:
    db_labels: {env: prod}
    db_users: ["{{internal.logins}}", reader, postgres]
    kubernetes_labels: {env: prod}
    kubernetes_groups: [viewers, "{{internal.logins}}-team"]
    app_labels: {env: prod}
  deny:
    db_users: [postgres]
  options: {max_session_ttl: 30m}
---
kind: role
version: v1
metadata: {name: kube-root}
spec:
  allow:
    kubernetes_labels: {"*": "*"}
    kubernetes_groups: [system:masters]
---
kind: role
version: v1
metadata: {name: dba-requester}
spec:
  allow:
    request: {roles: [dba, kube-root], search_as_roles: [dba]}
---
kind: role
version: v1
metadata: {name: dba-reviewer}
spec:
  allow:
    review_requests: {roles: [dba, kube-root]}
---
kind: db
version: v1
metadata: {name: orders, labels: {env: prod}}
spec: {protocol: postgres, uri: "orders.internal:5432"}
---
kind: db
version: v1
metadata: {name: billing, labels: {env: prod}}
spec: {protocol: postgres, uri: "billing.internal:5432"}
---
kind: db
version: v1
metadata: {name: scratch, labels: {env: dev}}
spec: {protocol: postgres, uri: "scratch.internal:5432"}
---
kind: kube_cluster
version: v1
metadata: {name: prod-k8s, labels: {env: prod}}
spec: {server: "https://k8s.prod.internal:6443"}
---
kind: app
version: v1
metadata: {name: grafana, labels: {env: prod}}
spec: {uri: "http://grafana:3000", public_addr: "grafana.example.com"}
`

// newCSR makes an ECDSA P-256 key and a CSR for it, as access creds does.
func newCSR(t *testing.T, cn string) (*ecdsa.PrivateKey, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, Organization: []string{"system:masters"}}}, k)
	if err != nil {
		t.Fatal(err)
	}
	return k, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func parseCertPEM(t *testing.T, s string) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		t.Fatalf("not PEM: %q", s)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// verifyClient checks cert the way a TLS server with ssl_ca_file /
// --client-ca-file = bundle does.
func verifyClient(t *testing.T, cert *x509.Certificate, bundle string) error {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(bundle)) {
		t.Fatalf("no certificate in the bundle %q", bundle)
	}
	_, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err
}

// approvedRequest has alice ask for what and bob approve it.
func approvedRequest(t *testing.T, alice, bob *api.Client, in api.CreateRequest) string {
	t.Helper()
	ctx := context.Background()
	in.Reason, in.Duration = "ticket 42", "2h"
	r, err := alice.CreateRequest(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Review(ctx, r.ID, api.ReviewRequest{Verdict: access.VerdictApprove}); err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// dbaGrant runs a cluster with x509Roles in which bob approved alice's
// request for dba; it returns them and the grant's id.
func dbaGrant(t *testing.T) (c *testcluster.Cluster, alice, bob *api.Client, id string) {
	t.Helper()
	c = testcluster.Start(t)
	c.Apply(x509Roles)
	alice = c.Login("alice", "dba-requester")
	bob = c.Login("bob", "dba-reviewer")
	return c, alice, bob, approvedRequest(t, alice, bob, api.CreateRequest{Roles: []string{"dba"}})
}

// refusal is a credential request refused with an error of code whose
// message mentions each of mentioned.
type refusal struct {
	in        api.CredentialRequest
	code      string
	mentioned []string
}

// checkRefusals asks who for each credential under the grant id and
// checks that it is refused as said.
func checkRefusals(t *testing.T, who *api.Client, id string, refusals []refusal) {
	t.Helper()
	for _, tt := range refusals {
		_, err := who.IssueCredential(context.Background(), id, tt.in)
		what := fmt.Sprintf("%s %q as %q with a %d-byte csr", tt.in.Kind, tt.in.Resource, tt.in.DBUser+tt.in.Login, len(tt.in.CSR))
		if api.ErrorCode(err) != tt.code {
			t.Errorf("%s: %v, want %s", what, err, tt.code)
			continue
		}
		for _, m := range tt.mentioned {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("%s: error %q does not mention %s", what, err, m)
			}
		}
	}
}

// issueEvents returns the credential.issue audit events of request id.
func issueEvents(t *testing.T, c *testcluster.Cluster, id string) []api.AuditEvent {
	t.Helper()
	evs, err := c.Admin.Audit(context.Background(), api.AuditQuery{RequestID: id, Type: "credential.issue"})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestDBCredentialsForAGrant(t *testing.T) {
	c, alice, bob, id := dbaGrant(t)
	ctx := context.Background()
	key, csr := newCSR(t, "postgres")

	cred, err := alice.IssueCredential(ctx, id, api.CredentialRequest{Kind: "db", Resource: "orders", DBUser: "alice", CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	cert := parseCertPEM(t, cred.Certificate)
	// Exactly CN=alice: one RDN, nothing from the CSR's subject.
	wantSubject, _ := asn1.Marshal(pkix.RDNSequence{{{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "alice"}}})
	if cert.Subject.String() != "CN=alice" || string(cert.RawSubject) != string(wantSubject) {
		t.Fatalf("subject %q, want exactly CN=alice", cert.Subject)
	}
	if !cert.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		t.Fatal("the certificate is not for the CSR's key")
	}
	if cred.Resource != "orders" || cred.Subject != "alice" || cred.Serial == "" {
		t.Fatalf("credential %+v", cred)
	}
	if life := cred.NotAfter.Sub(cred.NotBefore); life > 31*time.Minute+time.Second {
		t.Fatalf("certificate lives %s; max_session_ttl is 30m", life)
	}
	orders, err := c.Anonymous().ExportCA(ctx, "db", "orders")
	if err != nil {
		t.Fatal(err)
	}
	if orders != cred.CAPEM {
		t.Fatalf("ca_pem of the answer differs from the export:\n%s\n%s", cred.CAPEM, orders)
	}
	if err := verifyClient(t, cert, orders); err != nil {
		t.Fatalf("the orders CA does not accept the certificate: %v", err)
	}
	billing, err := c.Anonymous().ExportCA(ctx, "db", "billing")
	if err != nil {
		t.Fatal(err)
	}
	if billing == orders {
		t.Fatal("billing and orders share a CA")
	}
	if err := verifyClient(t, cert, billing); err == nil {
		t.Fatal("the billing database accepts a certificate issued for orders")
	}

	// Refusals: users not granted (denied wins), databases not granted or
	// absent, no or a bad CSR.
	checkRefusals(t, alice, id, []refusal{
		{api.CredentialRequest{Kind: "db", Resource: "orders", DBUser: "mallory", CSR: csr}, "forbidden", []string{`"mallory"`, "alice, reader"}},
		{api.CredentialRequest{Kind: "db", Resource: "orders", DBUser: "postgres", CSR: csr}, "forbidden", []string{`"postgres"`}},
		{api.CredentialRequest{Kind: "db", Resource: "scratch", DBUser: "alice", CSR: csr}, "forbidden", []string{"scratch"}},
		{api.CredentialRequest{Kind: "db", Resource: "nope", DBUser: "alice", CSR: csr}, "forbidden", []string{"nope"}},
		{api.CredentialRequest{Kind: "db", Resource: "orders", DBUser: "alice"}, "invalid", []string{"csr"}},
		{api.CredentialRequest{Kind: "db", Resource: "orders", DBUser: "alice", CSR: "junk"}, "invalid", []string{"CSR"}},
		{api.CredentialRequest{Kind: "db", Resource: "orders", CSR: csr}, "invalid", []string{"db_user"}},
		// Two prod databases are granted: one must be named.
		{api.CredentialRequest{Kind: "db", DBUser: "alice", CSR: csr}, "invalid", []string{"--db"}},
	})
	// A CA is exported only for an existing resource of the kind.
	if _, err := c.Anonymous().ExportCA(ctx, "db", "ghost"); api.ErrorCode(err) != "not_found" {
		t.Fatalf("export for a database that does not exist: %v", err)
	}
	if _, err := c.Anonymous().ExportCA(ctx, "db", ""); api.ErrorCode(err) != "invalid" {
		t.Fatalf("export without a resource: %v", err)
	}

	// A resource request reaches only the requested database, which need
	// not be named.
	rid := approvedRequest(t, alice, bob, api.CreateRequest{Resources: []string{"/" + testcluster.Name + "/db/billing"}})
	if _, err := alice.IssueCredential(ctx, rid, api.CredentialRequest{Kind: "db", Resource: "orders", DBUser: "alice", CSR: csr}); api.ErrorCode(err) != "forbidden" {
		t.Fatalf("orders through a grant of billing: %v", err)
	}
	bc, err := alice.IssueCredential(ctx, rid, api.CredentialRequest{Kind: "db", DBUser: "reader", CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	if bc.Resource != "billing" || verifyClient(t, parseCertPEM(t, bc.Certificate), billing) != nil || verifyClient(t, parseCertPEM(t, bc.Certificate), orders) == nil {
		t.Fatalf("billing credential %+v: not from billing's CA alone", bc)
	}

	if evs := issueEvents(t, c, id); len(evs) < 9 {
		t.Fatalf("audited attempts = %d", len(evs))
	}
}

func TestKubeCredentialsForAGrant(t *testing.T) {
	c, alice, bob, id := dbaGrant(t)
	ctx := context.Background()
	_, csr := newCSR(t, "admin")

	cred, err := alice.IssueCredential(ctx, id, api.CredentialRequest{Kind: "kube", CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	cert := parseCertPEM(t, cred.Certificate)
	if cert.Subject.CommonName != "alice" || strings.Join(cert.Subject.Organization, ",") != "alice-team,viewers" {
		t.Fatalf("subject %q: want CN=alice, O=alice-team, O=viewers", cert.Subject)
	}
	if cred.Resource != "prod-k8s" || cred.Server != "https://k8s.prod.internal:6443" || !slices.Equal(cred.Groups, []string{"alice-team", "viewers"}) {
		t.Fatalf("credential %+v", cred)
	}
	bundle, err := c.Anonymous().ExportCA(ctx, "kube", "prod-k8s")
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyClient(t, cert, bundle); err != nil {
		t.Fatalf("the cluster's CA does not accept the certificate: %v", err)
	}
	if orders, _ := c.Anonymous().ExportCA(ctx, "db", "orders"); verifyClient(t, cert, orders) == nil {
		t.Fatal("a database CA accepts the kube certificate")
	}

	// A grant that would put system:masters into the certificate.
	root := approvedRequest(t, alice, bob, api.CreateRequest{Roles: []string{"kube-root"}})
	_, err = alice.IssueCredential(ctx, root, api.CredentialRequest{Kind: "kube", Resource: "prod-k8s", CSR: csr})
	if api.ErrorCode(err) != "forbidden" || !strings.Contains(err.Error(), "system:masters") {
		t.Fatalf("system:masters: %v", err)
	}
	if evs := issueEvents(t, c, root); len(evs) != 1 || evs[0].Outcome != "denied" {
		t.Fatalf("refused kube issuance audit: %+v", evs)
	}
}

func TestAppCredentialsForAGrant(t *testing.T) {
	c, alice, _, id := dbaGrant(t)
	ctx := context.Background()

	cred, err := alice.IssueCredential(ctx, id, api.CredentialRequest{Kind: "app", Resource: "grafana"})
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := c.Anonymous().JWKS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if exported, err := c.Anonymous().ExportCA(ctx, "app", ""); err != nil || exported != jwks {
		t.Fatalf("/v1/ca/app differs from the JWKS: %v\n%s\n%s", err, exported, jwks)
	}
	var claims struct {
		jwt.RegisteredClaims
		Roles  []string            `json:"roles"`
		Traits map[string][]string `json:"traits"`
	}
	tok, err := jwt.ParseWithClaims(cred.Certificate, &claims, jwksKeyfunc(t, jwks),
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithAudience("grafana"), jwt.WithIssuer(testcluster.Name),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil || !tok.Valid {
		t.Fatalf("the JWT does not verify with the JWKS: %v", err)
	}
	if tok.Header["kid"] != "gatehouse-app-v1" || cred.KeyID != "gatehouse-app-v1" {
		t.Fatalf("kid %v / %s", tok.Header["kid"], cred.KeyID)
	}
	if claims.Subject != "alice" || !slices.Equal(claims.Roles, []string{"dba"}) || !slices.Equal(claims.Traits["logins"], []string{"alice"}) || claims.ID != cred.Serial {
		t.Fatalf("claims %+v", claims)
	}
	if claims.ExpiresAt.Sub(claims.IssuedAt.Time) > 30*time.Minute+time.Second {
		t.Fatalf("token lives %s; max_session_ttl is 30m", claims.ExpiresAt.Sub(claims.IssuedAt.Time))
	}
	// Another app's audience does not accept it.
	if _, err := jwt.Parse(cred.Certificate, jwksKeyfunc(t, jwks), jwt.WithValidMethods([]string{"ES256"}), jwt.WithAudience("kibana")); err == nil {
		t.Fatal("a token for grafana verifies for kibana")
	}
	if _, err := alice.IssueCredential(ctx, id, api.CredentialRequest{Kind: "app", Resource: "kibana"}); api.ErrorCode(err) != "forbidden" {
		t.Fatalf("an app that does not exist: %v", err)
	}
}

// jwksKeyfunc resolves a token's kid in a JWKS document as an app would.
func jwksKeyfunc(t *testing.T, jwks string) jwt.Keyfunc {
	t.Helper()
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal([]byte(jwks), &set); err != nil {
		t.Fatal(err)
	}
	keys := map[string]*ecdsa.PublicKey{}
	for _, k := range set.Keys {
		x, err1 := base64.RawURLEncoding.DecodeString(k["x"])
		y, err2 := base64.RawURLEncoding.DecodeString(k["y"])
		if k["kty"] != "EC" || k["crv"] != "P-256" || k["alg"] != "ES256" || err1 != nil || err2 != nil {
			t.Fatalf("JWK %v", k)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			t.Fatal(err)
		}
		keys[k["kid"]] = pub
	}
	return func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		if k, ok := keys[kid]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("unknown kid %q", kid)
	}
}
