package ca

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
)

// crlTestURL is the distribution point the service writes, by version.
func crlTestURL(version int) string {
	return "http://crl.example.com:3080/crl/desktop/corp.example.com/v" + strconv.Itoa(version) + ".crl"
}

func crlTestCSR(t testing.TB) []byte {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	keysNoErr(t, err)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	keysNoErr(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// crlOf parses the CRL of version and checks it is what Windows takes for
// cert: issuer name and AKI of cert, signed by cert's CA caCert.
func crlOf(t *testing.T, a *Authority, version int, cert, caCert *x509.Certificate) *x509.RevocationList {
	t.Helper()
	der, err := a.CRL(keysCtx(t), access.CATypeDesktop, "corp.example.com", version)
	keysNoErr(t, err)
	crl, err := x509.ParseRevocationList(der)
	keysNoErr(t, err)
	if err := crl.CheckSignatureFrom(caCert); err != nil {
		t.Fatalf("CRL v%d does not verify with %q: %v", version, caCert.Subject, err)
	}
	if !bytes.Equal(crl.RawIssuer, cert.RawIssuer) || !bytes.Equal(crl.AuthorityKeyId, cert.AuthorityKeyId) {
		t.Fatalf("CRL v%d: issuer %q AKI %x; certificate: issuer %q AKI %x", version, crl.Issuer, crl.AuthorityKeyId, cert.Issuer, cert.AuthorityKeyId)
	}
	return crl
}

// TestDesktopCRLPerKeyVersion: each desktop certificate names the CRL of
// its key's version; that CRL is signed by that key from publish until
// retire, and the CRL of version 0 by the active key.
func TestDesktopCRLPerKeyVersion(t *testing.T) {
	_, _, clk, m := keysEnv(t)
	a := NewAuthority(m)
	ctx := keysCtx(t)
	const typ, domain = access.CATypeDesktop, "corp.example.com"
	csr := crlTestCSR(t)
	issue := func(life time.Duration) (*x509.Certificate, *x509.Certificate) {
		t.Helper()
		cred, err := a.IssueDesktop(ctx, domain, csr, "alice", "", crlTestURL, clk.Now().Add(-time.Minute), clk.Now().Add(life))
		keysNoErr(t, err)
		b, _ := pem.Decode([]byte(cred.Certificate))
		cert, err := x509.ParseCertificate(b.Bytes)
		keysNoErr(t, err)
		for _, caCert := range caCertsOf(t, cred.CAPEM) {
			if cert.CheckSignatureFrom(caCert) == nil {
				return cert, caCert
			}
		}
		t.Fatal("no CA of the bundle signed the certificate")
		return nil, nil
	}

	old, oldCA := issue(30 * time.Minute)
	if !slices.Equal(old.CRLDistributionPoints, []string{crlTestURL(1)}) {
		t.Fatalf("v1 certificate: CRL DP %v", old.CRLDistributionPoints)
	}
	crlOf(t, a, 1, old, oldCA)
	crlOf(t, a, 0, old, oldCA)
	if _, err := a.CRL(ctx, typ, domain, 2); !errors.Is(err, access.ErrNotFound) {
		t.Fatalf("CRL of a key not yet made: %v", err)
	}

	_, err := m.Rotate(ctx, typ, domain, PhasePublish)
	keysNoErr(t, err)
	if _, err := a.CRL(ctx, typ, domain, 2); err != nil {
		t.Fatalf("CRL of the published key: %v", err)
	}
	_, err = m.Rotate(ctx, typ, domain, PhaseSwitch)
	keysNoErr(t, err)
	fresh, freshCA := issue(time.Hour)
	if !slices.Equal(fresh.CRLDistributionPoints, []string{crlTestURL(2)}) {
		t.Fatalf("v2 certificate: CRL DP %v", fresh.CRLDistributionPoints)
	}
	crlOf(t, a, 1, old, oldCA)
	crlOf(t, a, 2, fresh, freshCA)
	crlOf(t, a, 0, fresh, freshCA)

	// Retire once v1's certificate has expired: its CRL goes, the active
	// key's stays, and a fresh CRL is signed once the old one is crlReuse
	// old.
	before := crlOf(t, a, 2, fresh, freshCA)
	clk.Add(30*time.Minute + 2*time.Minute)
	_, err = m.Rotate(ctx, typ, domain, PhaseRetire)
	keysNoErr(t, err)
	if _, err := a.CRL(ctx, typ, domain, 1); !errors.Is(err, access.ErrNotFound) {
		t.Fatalf("CRL of the retired key: %v", err)
	}
	after := crlOf(t, a, 2, fresh, freshCA)
	if !after.ThisUpdate.Equal(clk.Now()) || after.Number.Cmp(before.Number) <= 0 {
		t.Fatalf("CRL after %s: this update %s (want %s), number %v after %v", crlReuse, after.ThisUpdate, clk.Now(), after.Number, before.Number)
	}
	if after.NextUpdate.Sub(after.ThisUpdate) != CRLLifetime {
		t.Fatalf("CRL lives %s", after.NextUpdate.Sub(after.ThisUpdate))
	}
}

// TestCRLReuse: within crlReuse a key's CRL is served again, not signed
// again; a clock set back signs again; a retired key's CRL leaves the
// cache.
func TestCRLReuse(t *testing.T) {
	st, _, clk, m := keysEnv(t)
	a := NewAuthority(m)
	ctx := keysCtx(t)
	const typ, domain = access.CATypeDesktop, "corp.example.com"
	get := func(version int) []byte {
		t.Helper()
		der, err := a.CRL(ctx, typ, domain, version)
		keysNoErr(t, err)
		return der
	}
	first := get(0)
	clk.Add(crlReuse - time.Second)
	if !bytes.Equal(get(0), first) || !bytes.Equal(get(1), first) {
		t.Fatal("signed again within crlReuse")
	}
	clk.Add(time.Second)
	second := get(1)
	if bytes.Equal(second, first) {
		t.Fatal("served a CRL crlReuse old")
	}
	clk.Add(-time.Second)
	if bytes.Equal(get(1), second) {
		t.Fatal("served a CRL from the future")
	}

	for _, phase := range []string{PhasePublish, PhaseSwitch} {
		_, err := m.Rotate(ctx, typ, domain, phase)
		keysNoErr(t, err)
	}
	get(2)
	_, err := m.Rotate(ctx, typ, domain, PhaseRetire)
	keysNoErr(t, err)
	// The next signature of the CA drops v1's CRL.
	clk.Add(crlReuse)
	get(2)
	path := st.CAKeyPath(typ, domain)
	a.crls.mu.Lock()
	defer a.crls.mu.Unlock()
	for k := range a.crls.crls {
		if k.path == path && k.version != 2 {
			t.Errorf("cache keeps the CRL of v%d after it retired", k.version)
		}
	}
}

// TestCRLRefusals: bad input is refused by name and creates no CA.
func TestCRLRefusals(t *testing.T) {
	st, _, _, m := keysEnv(t)
	a := NewAuthority(m)
	ctx := keysCtx(t)
	for _, tt := range []struct {
		typ, resource string
		version       int
		want          error
	}{
		{access.CATypeDesktop, "corp.example.com", 1, access.ErrNotFound}, // no CA: a version is never made
		{access.CATypeDesktop, "corp.example.com", -1, access.ErrInvalid},
		{access.CATypeSSH, "", 0, access.ErrInvalid},
		{access.CATypeDesktop, "", 0, access.ErrInvalid},
	} {
		if _, err := a.CRL(ctx, tt.typ, tt.resource, tt.version); !errors.Is(err, tt.want) {
			t.Errorf("CRL(%s, %q, %d): %v, want %v", tt.typ, tt.resource, tt.version, err, tt.want)
		}
	}
	if _, err := st.GetCAKeys(ctx, access.CATypeDesktop, "corp.example.com"); !errors.Is(err, access.ErrNotFound) {
		t.Fatalf("a refused CRL made a CA: %v", err)
	}
	if _, err := a.IssueDesktop(ctx, "corp.example.com", crlTestCSR(t), "alice", "", nil, time.Now(), time.Now().Add(time.Hour)); !errors.Is(err, access.ErrInvalid) {
		t.Fatalf("IssueDesktop without a CRL URL: %v", err)
	}
}

func caCertsOf(t *testing.T, bundle string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for rest := []byte(bundle); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		keysNoErr(t, err)
		out = append(out, c)
	}
}

// BenchmarkDesktopCRL is Authority.CRL of one key version with the key set
// in memory (as accessd reads it): "cached" within crlReuse, "signed" a
// fresh ECDSA P-256 CRL each time.
func BenchmarkDesktopCRL(b *testing.B) {
	st, kek, clk, _ := keysEnv(b)
	ctx := keysCtx(b)
	keys, err := st.CacheCAKeys(ctx)
	keysNoErr(b, err)
	a := NewAuthority(NewManager(keys, kek, WithClock(clk.Now)))
	if _, err := a.CRL(ctx, access.CATypeDesktop, "corp.example.com", 0); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tick time.Duration
	}{{"cached", 0}, {"signed", crlReuse}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				clk.Add(tc.tick)
				if _, err := a.CRL(context.Background(), access.CATypeDesktop, "corp.example.com", 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
