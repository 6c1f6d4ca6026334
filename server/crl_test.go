package server_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/internal/testcluster"
	"github.com/gatehouse-dev/gatehouse/server"
	"github.com/gatehouse-dev/gatehouse/service"
)

// fetchCRL GETs url over plain HTTP, as Windows does, and returns the
// status and the parsed CRL (nil unless 200).
func fetchCRL(t *testing.T, url string) (int, *x509.RevocationList) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/pkix-crl" {
		t.Fatalf("GET %s: Content-Type %q", url, ct)
	}
	crl, err := x509.ParseRevocationList(body)
	if err != nil {
		t.Fatalf("GET %s: the CRL does not parse: %v", url, err)
	}
	return resp.StatusCode, crl
}

// caCerts parses a PEM bundle of CA certificates.
func caCerts(t *testing.T, bundle string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for rest := []byte(bundle); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// checkCRLFor is what Windows checks before it takes crl as the CRL of
// cert: the CRL's issuer name and authority key identifier are the
// certificate's, and its signature verifies with the CA key that signed
// the certificate, found among cas. No other CA of cas verifies it.
func checkCRLFor(t *testing.T, what string, crl *x509.RevocationList, cert *x509.Certificate, cas []*x509.Certificate) {
	t.Helper()
	if !bytes.Equal(crl.RawIssuer, cert.RawIssuer) || !bytes.Equal(crl.AuthorityKeyId, cert.AuthorityKeyId) || len(crl.AuthorityKeyId) == 0 {
		t.Fatalf("%s: CRL issuer %q AKI %x, certificate issuer %q AKI %x", what, crl.Issuer, crl.AuthorityKeyId, cert.Issuer, cert.AuthorityKeyId)
	}
	signed := 0
	for _, c := range cas {
		if cert.CheckSignatureFrom(c) != nil {
			if crl.CheckSignatureFrom(c) == nil {
				t.Fatalf("%s: the CRL verifies with %q too, which did not sign the certificate", what, c.Subject)
			}
			continue
		}
		signed++
		if err := crl.CheckSignatureFrom(c); err != nil {
			t.Fatalf("%s: the CRL does not verify with the certificate's CA %q: %v", what, c.Subject, err)
		}
	}
	if signed != 1 || len(crl.RevokedCertificateEntries) != 0 {
		t.Fatalf("%s: %d of %d exported CAs signed the certificate; %d revoked", what, signed, len(cas), len(crl.RevokedCertificateEntries))
	}
}

// TestDesktopCRLsAcrossRotation: a desktop certificate names the CRL of
// the key that signed it, and that CRL, signed by that key, is served
// until the key retires, so certificates of the old key keep passing
// Windows' revocation check after a CA rotation switches keys.
func TestDesktopCRLsAcrossRotation(t *testing.T) {
	c, base := crlCluster(t)
	c.Apply(desktopRoles)
	alice := c.Login("alice", "rdp-requester")
	bob := c.Login("bob", "rdp-reviewer")
	ctx := context.Background()
	const domain = "corp.example.com"
	id := approvedRequest(t, alice, bob, api.CreateRequest{Roles: []string{"rdp"}})
	_, csr := desktopCSR(t)
	issue := func() *x509.Certificate {
		t.Helper()
		cred, err := alice.IssueCredential(ctx, id, api.CredentialRequest{Kind: "desktop", Resource: "ws1", Login: "alice", CSR: csr})
		if err != nil {
			t.Fatal(err)
		}
		return parseCertPEM(t, cred.Certificate)
	}
	rotate := func(domain, phase string) error {
		t.Helper()
		_, err := c.Admin.RotateCA(ctx, "desktop", domain, phase)
		return err
	}
	exported := func() []*x509.Certificate {
		t.Helper()
		bundle, err := c.Anonymous().ExportCA(ctx, "desktop", domain)
		if err != nil {
			t.Fatal(err)
		}
		return caCerts(t, bundle)
	}
	v1URL, v2URL, activeURL := base+"/crl/desktop/"+domain+"/v1.crl", base+"/crl/desktop/"+domain+"/v2.crl", base+"/crl/desktop/"+domain+".crl"

	old := issue()
	if !slices.Equal(old.CRLDistributionPoints, []string{v1URL}) {
		t.Fatalf("certificate of key v1 names %v, want %s", old.CRLDistributionPoints, v1URL)
	}

	// Published: the new key's CRL is served before anything names it, so
	// a replica that has not yet seen the switch serves what a certificate
	// signed on one that has names.
	if err := rotate(domain, "publish"); err != nil {
		t.Fatal(err)
	}
	if code, _ := fetchCRL(t, v2URL); code != http.StatusOK {
		t.Fatalf("GET %s of the published key: %d", v2URL, code)
	}
	if err := rotate(domain, "switch"); err != nil {
		t.Fatal(err)
	}
	fresh := issue()
	if !slices.Equal(fresh.CRLDistributionPoints, []string{v2URL}) {
		t.Fatalf("certificate of key v2 names %v, want %s", fresh.CRLDistributionPoints, v2URL)
	}
	if bytes.Equal(old.AuthorityKeyId, fresh.AuthorityKeyId) {
		t.Fatal("both keys have the same key identifier: the test proves nothing")
	}

	// Each certificate's CRL is signed by its own key; the old URL serves
	// the active key's.
	cas := exported()
	if len(cas) != 2 {
		t.Fatalf("%d CAs exported during the overlap, want 2", len(cas))
	}
	for _, tt := range []struct {
		what string
		url  string
		cert *x509.Certificate
	}{
		{"v1 certificate after the switch", v1URL, old},
		{"v2 certificate", v2URL, fresh},
		{"the compatibility URL, of the active key", activeURL, fresh},
	} {
		code, crl := fetchCRL(t, tt.url)
		if code != http.StatusOK {
			t.Fatalf("%s: GET %s: %d", tt.what, tt.url, code)
		}
		checkCRLFor(t, tt.what, crl, tt.cert, cas)
	}

	// v1 signed a certificate that is still valid: it cannot retire, and
	// its CRL stays.
	if err := rotate(domain, "retire"); api.ErrorCode(err) != "conflict" {
		t.Fatalf("retire while v1's certificate lives: %v", err)
	}
	if code, _ := fetchCRL(t, v1URL); code != http.StatusOK {
		t.Fatalf("GET %s after a refused retire: %d", v1URL, code)
	}

	// A key that signed nothing retires at once (here: branch's first
	// key, made by the first CRL fetch), and its CRL goes with it.
	const branch = "branch.example.com"
	branchV1, branchV2, branchActive := base+"/crl/desktop/"+branch+"/v1.crl", base+"/crl/desktop/"+branch+"/v2.crl", base+"/crl/desktop/"+branch+".crl"
	if code, _ := fetchCRL(t, branchActive); code != http.StatusOK {
		t.Fatalf("GET %s: %d", branchActive, code)
	}
	for _, phase := range []string{"publish", "switch", "retire"} {
		if err := rotate(branch, phase); err != nil {
			t.Fatalf("rotate %s %s: %v", branch, phase, err)
		}
	}
	bundle, err := c.Anonymous().ExportCA(ctx, "desktop", branch)
	if err != nil {
		t.Fatal(err)
	}
	branchCAs := caCerts(t, bundle)
	if len(branchCAs) != 1 {
		t.Fatalf("%d CAs exported after retire, want 1", len(branchCAs))
	}
	for _, url := range []string{branchV2, branchActive} {
		code, crl := fetchCRL(t, url)
		if code != http.StatusOK {
			t.Fatalf("GET %s after retire: %d", url, code)
		}
		if err := crl.CheckSignatureFrom(branchCAs[0]); err != nil || !bytes.Equal(crl.AuthorityKeyId, branchCAs[0].SubjectKeyId) {
			t.Fatalf("GET %s after retire: not signed by the active key v2: %v", url, err)
		}
	}

	// Only versions in a CA's key set, under one spelling each, and only
	// of existing domains.
	for _, path := range []string{
		branchV1[len(base):],                 // retired
		"/crl/desktop/" + domain + "/v3.crl", // never made
		"/crl/desktop/" + domain + "/v0.crl",
		"/crl/desktop/" + domain + "/v01.crl",
		"/crl/desktop/" + domain + "/v+1.crl",
		"/crl/desktop/" + domain + "/v-1.crl",
		"/crl/desktop/" + domain + "/1.crl",
		"/crl/desktop/" + domain + "/v1",
		"/crl/desktop/" + domain + "/v99999999999999999999.crl",
		"/crl/desktop/ghost.example.com/v1.crl",
		"/crl/desktop/" + domain + "/v1.crl/x",
	} {
		if code, _ := fetchCRL(t, base+path); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, code)
		}
	}
}

// BenchmarkCRLHandler is one Windows CRL fetch on the crl_listen handler:
// the domain check, the key set (from memory, as in accessd) and the
// signed CRL, by the compatibility URL (active key) and by key version.
func BenchmarkCRLHandler(b *testing.B) {
	c := testcluster.StartWithConfig(b, service.Config{CRLBaseURL: "http://crl.example.com:3080"})
	c.Apply(desktopRoles)
	// Other resources beside the desktops, as in a real inventory: a
	// domain missing from the index must not cost reading them all.
	for i := range 5000 {
		r := access.Resource{Kind: access.KindNode, Metadata: access.Metadata{Name: fmt.Sprintf("node-%d", i)},
			Spec: access.ResourceSpec{Hostname: fmt.Sprintf("node-%d.example.com", i)}}
		if _, err := c.Store.PutResource(context.Background(), r); err != nil {
			b.Fatal(err)
		}
	}
	h := server.CRLHandler(c.Svc)
	for _, bc := range []struct {
		path string
		want int
	}{
		{"/crl/desktop/corp.example.com.crl", http.StatusOK},
		{"/crl/desktop/corp.example.com/v1.crl", http.StatusOK},
		// Anyone may ask for any domain: a miss must stay cheap too.
		{"/crl/desktop/ghost.example.com.crl", http.StatusNotFound},
	} {
		b.Run(bc.path, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, bc.path, nil)
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != bc.want {
					b.Fatalf("GET %s: %d %s, want %d", bc.path, w.Code, w.Body, bc.want)
				}
			}
		})
	}
}

// TestCRLOfDesktopCreatedAMomentAgo: the domain check reads the resource
// index, which follows etcd through a watch; a desktop's CRL is served
// right after the desktop is written, before the watch may have delivered
// it, and a domain no desktop has is refused.
func TestCRLOfDesktopCreatedAMomentAgo(t *testing.T) {
	c := testcluster.StartWithConfig(t, service.Config{CRLBaseURL: "http://crl.example.com:3080"})
	ctx := context.Background()
	<-c.Index.Ready()
	for i := range 20 {
		domain := fmt.Sprintf("site%d.example.com", i)
		ws := access.Resource{Kind: access.KindWindowsDesktop, Metadata: access.Metadata{Name: fmt.Sprintf("ws-%d", i)},
			Spec: access.ResourceSpec{Addr: "10.0.0.9:3389", Domain: domain}}
		if _, err := c.Store.PutResource(ctx, ws); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Svc.CRL(ctx, access.CATypeDesktop, domain, 0); err != nil {
			t.Fatalf("CRL of %s right after its desktop was written: %v", domain, err)
		}
	}
	if _, err := c.Svc.CRL(ctx, access.CATypeDesktop, "ghost.example.com", 0); !errors.Is(err, access.ErrNotFound) {
		t.Fatalf("CRL of a domain no desktop has: %v, want not found", err)
	}
}
