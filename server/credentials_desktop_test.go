package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/internal/testcluster"
	"github.com/gatehouse-dev/gatehouse/server"
	"github.com/gatehouse-dev/gatehouse/service"
)

// desktopRoles: rdp reaches the prod desktops as the holder's login or
// svc-backup (Administrator is listed but denied).
const desktopRoles = `
kind: role
version: v1
metadata: {name: rdp}
spec:
  allow:
    windows_desktop_labels: {env: prod}
    windows_desktop_logins: ["{{internal.logins}}", svc-backup, Administrator]
  deny:
    windows_desktop_logins: [Administrator]
  options: {max_session_ttl: 30m}
---
kind: role
version: v1
metadata: {name: rdp-requester}
spec:
  allow:
    request: {roles: [rdp], search_as_roles: [rdp]}
---
kind: role
version: v1
metadata: {name: rdp-reviewer}
spec:
  allow:
    review_requests: {roles: [rdp]}
---
kind: windows_desktop
version: v1
metadata: {name: ws1, labels: {env: prod}}
spec: {addr: "10.0.0.9:3389", domain: corp.example.com}
---
kind: windows_desktop
version: v1
metadata: {name: ws2, labels: {env: prod}}
spec: {addr: "10.0.1.9:3389", domain: branch.example.com}
---
kind: windows_desktop
version: v1
metadata: {name: nodomain, labels: {env: prod}}
spec: {addr: "10.0.2.9:3389"}
---
kind: windows_desktop
version: v1
metadata: {name: lab, labels: {env: dev}}
spec: {addr: "10.0.3.9:3389", domain: corp.example.com}
`

const aliceSID = "S-1-5-21-3623811015-3361044348-30300820-1013"

// desktopCSR makes an RSA-2048 key and a CSR for it, as access creds
// --desktop does; the CSR's subject asks for more than it will get.
func desktopCSR(t *testing.T) (*rsa.PrivateKey, string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "Administrator"}}, k)
	if err != nil {
		t.Fatal(err)
	}
	return k, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// crlCluster runs a cluster whose CRL base URL is a plain-HTTP server
// serving server.CRLHandler, as accessd does with crl_listen.
func crlCluster(t *testing.T) (*testcluster.Cluster, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	c := testcluster.StartWithConfig(t, service.Config{CRLBaseURL: base})
	srv := httptest.NewUnstartedServer(server.CRLHandler(c.Svc))
	_ = srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return c, base
}

// otherNames decodes GeneralNames holding otherName entries into
// type-id → the raw [0] EXPLICIT value.
func otherNames(t *testing.T, der []byte) map[string][]byte {
	t.Helper()
	var names []asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &names); err != nil || len(rest) > 0 {
		t.Fatalf("GeneralNames: %v (%d trailing bytes)", err, len(rest))
	}
	out := map[string][]byte{}
	for _, n := range names {
		if n.Class != asn1.ClassContextSpecific || n.Tag != 0 {
			continue
		}
		var oid asn1.ObjectIdentifier
		rest, err := asn1.Unmarshal(n.Bytes, &oid)
		if err != nil {
			t.Fatal(err)
		}
		var val asn1.RawValue
		if _, err := asn1.Unmarshal(rest, &val); err != nil || val.Class != asn1.ClassContextSpecific || val.Tag != 0 {
			t.Fatalf("otherName value: %v %+v", err, val)
		}
		out[oid.String()] = val.Bytes
	}
	return out
}

func extension(cert *x509.Certificate, oid asn1.ObjectIdentifier) []byte {
	for _, e := range cert.Extensions {
		if e.Id.Equal(oid) {
			return e.Value
		}
	}
	return nil
}

func TestDesktopCredentialsForAGrant(t *testing.T) {
	c, base := crlCluster(t)
	c.Apply(desktopRoles)
	alice := c.Login("alice", "rdp-requester")
	bob := c.Login("bob", "rdp-reviewer")
	// alice's Windows SID, as an admin records it.
	c.Apply(`
kind: user
version: v1
metadata: {name: alice}
spec: {roles: [rdp-requester], traits: {logins: [alice], windows_sid: ["` + aliceSID + `"]}}
`)
	ctx := context.Background()
	id := approvedRequest(t, alice, bob, api.CreateRequest{Roles: []string{"rdp"}})
	key, csr := desktopCSR(t)

	cred, err := alice.IssueCredential(ctx, id, api.CredentialRequest{Kind: "desktop", Resource: "ws1", Login: "alice", CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	cert := parseCertPEM(t, cred.Certificate)
	if cert.Subject.String() != "CN=alice" {
		t.Fatalf("subject %q, want CN=alice", cert.Subject)
	}
	if !cert.PublicKey.(*rsa.PublicKey).Equal(&key.PublicKey) {
		t.Fatal("the certificate is not for the CSR's key")
	}
	if cred.Kind != "desktop" || cred.Resource != "corp.example.com" || cred.Subject != "alice" || cred.Serial == "" ||
		!slices.Equal(cred.Principals, []string{"alice@corp.example.com"}) {
		t.Fatalf("credential %+v", cred)
	}
	if life := cred.NotAfter.Sub(cred.NotBefore); life > 31*time.Minute+time.Second {
		t.Fatalf("certificate lives %s; max_session_ttl is 30m", life)
	}
	// UPN alice@corp.example.com as a UTF8String otherName in the SAN.
	san := otherNames(t, extension(cert, asn1.ObjectIdentifier{2, 5, 29, 17}))
	var upn string
	if rest, err := asn1.UnmarshalWithParams(san[ca.OIDUPNOtherName.String()], &upn, "utf8"); err != nil || len(rest) > 0 || upn != "alice@corp.example.com" {
		t.Fatalf("UPN otherName = %q, %v (SAN %x)", upn, err, san)
	}
	// EKUs smartcard logon and clientAuth; digitalSignature.
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) ||
		len(cert.UnknownExtKeyUsage) != 1 || !cert.UnknownExtKeyUsage[0].Equal(ca.OIDSmartcardLogon) {
		t.Fatalf("EKUs %v + %v: want clientAuth and smartcard logon", cert.ExtKeyUsage, cert.UnknownExtKeyUsage)
	}
	if cert.KeyUsage&x509.KeyUsageDigitalSignature == 0 || cert.IsCA {
		t.Fatalf("key usage %b, CA %v", cert.KeyUsage, cert.IsCA)
	}
	// The SID from the windows_sid trait, in the strong-mapping extension.
	sidExt := otherNames(t, extension(cert, ca.OIDNTDSCASecurityExt))
	var sid []byte
	if _, err := asn1.Unmarshal(sidExt[ca.OIDNTDSObjectSID.String()], &sid); err != nil || string(sid) != aliceSID {
		t.Fatalf("SID extension = %q, %v", sid, err)
	}
	// The CRL distribution point is this server's plain-HTTP CRL of the
	// key that signed it (v1: the domain's CA was just made).
	wantCRL := base + "/crl/desktop/corp.example.com/v1.crl"
	if !slices.Equal(cert.CRLDistributionPoints, []string{wantCRL}) {
		t.Fatalf("CRL distribution points %v, want %s", cert.CRLDistributionPoints, wantCRL)
	}
	// Signed by the domain's own CA, as exported.
	bundle, err := c.Anonymous().ExportCA(ctx, "desktop", "corp.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if bundle != cred.CAPEM {
		t.Fatalf("ca_pem of the answer differs from the export:\n%s\n%s", cred.CAPEM, bundle)
	}
	if err := verifyClient(t, cert, bundle); err != nil {
		t.Fatalf("the domain's CA does not accept the certificate: %v", err)
	}

	// The CRL URL in the certificate answers with a CRL of that CA.
	resp, err := http.Get(wantCRL)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/pkix-crl" {
		t.Fatalf("GET %s: %s, Content-Type %q: %s", wantCRL, resp.Status, resp.Header.Get("Content-Type"), der)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("the CRL does not parse: %v", err)
	}
	issuer := parseCertPEM(t, bundle)
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		t.Fatalf("the CRL does not verify against the domain CA: %v", err)
	}
	if !bytes.Equal(crl.RawIssuer, cert.RawIssuer) || len(crl.RevokedCertificateEntries) != 0 {
		t.Fatalf("CRL issuer %q (cert issuer %q), %d revoked", crl.Issuer, cert.Issuer, len(crl.RevokedCertificateEntries))
	}
	if now := time.Now(); crl.ThisUpdate.After(now.Add(time.Minute)) || crl.NextUpdate.Sub(crl.ThisUpdate) != 24*time.Hour ||
		crl.Number == nil || crl.Number.Int64() < now.Add(-time.Minute).Unix() {
		t.Fatalf("CRL this %s next %s number %v", crl.ThisUpdate, crl.NextUpdate, crl.Number)
	}

	// Refusals: logins not granted (deny wins), desktops not granted,
	// absent or without a domain, no login, no or a bad CSR, several
	// desktops granted and none named.
	checkRefusals(t, alice, id, []refusal{
		{api.CredentialRequest{Kind: "desktop", Resource: "ws1", Login: "mallory", CSR: csr}, "forbidden", []string{`"mallory"`, "alice, svc-backup"}},
		{api.CredentialRequest{Kind: "desktop", Resource: "ws1", Login: "Administrator", CSR: csr}, "forbidden", []string{`"Administrator"`}},
		{api.CredentialRequest{Kind: "desktop", Resource: "lab", Login: "alice", CSR: csr}, "forbidden", []string{"lab"}},
		{api.CredentialRequest{Kind: "desktop", Resource: "ghost", Login: "alice", CSR: csr}, "forbidden", []string{"ghost"}},
		{api.CredentialRequest{Kind: "desktop", Resource: "nodomain", Login: "alice", CSR: csr}, "invalid", []string{"spec.domain"}},
		{api.CredentialRequest{Kind: "desktop", Resource: "ws1", CSR: csr}, "invalid", []string{"login"}},
		{api.CredentialRequest{Kind: "desktop", Resource: "ws1", Login: "alice"}, "invalid", []string{"csr"}},
		{api.CredentialRequest{Kind: "desktop", Resource: "ws1", Login: "alice", CSR: "junk"}, "invalid", []string{"CSR"}},
		{api.CredentialRequest{Kind: "desktop", Login: "alice", CSR: csr}, "invalid", []string{"--desktop"}},
	})

	// A resource request reaches only the requested desktop, which need
	// not be named; its domain has its own CA.
	rid := approvedRequest(t, alice, bob, api.CreateRequest{Resources: []string{"/" + testcluster.Name + "/windows_desktop/ws2"}})
	if _, err := alice.IssueCredential(ctx, rid, api.CredentialRequest{Kind: "desktop", Resource: "ws1", Login: "alice", CSR: csr}); api.ErrorCode(err) != "forbidden" {
		t.Fatalf("ws1 through a grant of ws2: %v", err)
	}
	bc, err := alice.IssueCredential(ctx, rid, api.CredentialRequest{Kind: "desktop", Login: "svc-backup", CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	branch := parseCertPEM(t, bc.Certificate)
	if bc.Resource != "branch.example.com" || !slices.Equal(branch.CRLDistributionPoints, []string{base + "/crl/desktop/branch.example.com/v1.crl"}) {
		t.Fatalf("branch credential %+v, CRL DP %v", bc, branch.CRLDistributionPoints)
	}
	if verifyClient(t, branch, bundle) == nil {
		t.Fatal("the corp domain's CA accepts a certificate issued for branch")
	}

	// The CRL listener serves only CRLs of existing domains.
	for _, path := range []string{"/crl/desktop/ghost.example.com.crl", "/crl/desktop/corp.example.com", "/crl/db/orders.crl", "/v1/status"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", path, resp.Status)
		}
	}

	if evs := issueEvents(t, c, id); len(evs) < 10 {
		t.Fatalf("audited attempts = %d", len(evs))
	}
}

// TestDesktopCredentialsNeedCRLListen: without crl_listen there is no CRL
// Windows could fetch, so no desktop certificate is signed.
func TestDesktopCredentialsNeedCRLListen(t *testing.T) {
	c := testcluster.Start(t)
	c.Apply(desktopRoles)
	alice := c.Login("alice", "rdp-requester")
	bob := c.Login("bob", "rdp-reviewer")
	ctx := context.Background()
	id := approvedRequest(t, alice, bob, api.CreateRequest{Roles: []string{"rdp"}})
	_, csr := desktopCSR(t)
	_, err := alice.IssueCredential(ctx, id, api.CredentialRequest{Kind: "desktop", Resource: "ws1", Login: "alice", CSR: csr})
	if api.ErrorCode(err) != "invalid" || !strings.Contains(err.Error(), "crl_listen") {
		t.Fatalf("desktop credential without crl_listen: %v", err)
	}
	if evs := issueEvents(t, c, id); len(evs) != 1 || evs[0].Outcome != "denied" {
		t.Fatalf("refused desktop issuance audit: %+v", evs)
	}
}
