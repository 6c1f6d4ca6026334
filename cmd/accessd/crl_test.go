package main_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCRLListenServesDesktopCRLs: with crl_listen set, accessd serves the
// desktop CRLs over plain HTTP, one per key of the domain's CA, each
// signed by its key, until the key retires.
func TestCRLListenServesDesktopCRLs(t *testing.T) {
	dataDir := tempDataDir(t)
	kek := filepath.Join(t.TempDir(), "crl.kek")
	if out, err := exec.Command(accessdBin, "kek-generate", kek).CombinedOutput(); err != nil {
		t.Fatalf("kek-generate: %v %s", err, out)
	}
	crlAddr := freeAddr(t)
	cfgFile := filepath.Join(t.TempDir(), "accessd.yaml")
	if err := os.WriteFile(cfgFile, []byte("crl_listen: "+crlAddr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, dataDir, freeAddr(t), "--config", cfgFile, "--kek-file", kek)
	p := waitReady(t, dataDir)
	c, err := p.Client("")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	desktop := json.RawMessage(`{"kind": "windows_desktop", "version": "v1", "metadata": {"name": "ws1"}, "spec": {"addr": "10.0.0.9:3389", "domain": "corp.example.com"}}`)
	if _, err := c.PutObject(ctx, "windows_desktop", desktop); err != nil {
		t.Fatal(err)
	}
	bundle, err := c.ExportCA(ctx, "desktop", "corp.example.com")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode([]byte(bundle))
	if b == nil {
		t.Fatalf("desktop CA export is not PEM: %q", bundle)
	}
	caCert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}

	// One CRL per key version, each signed by its own key, and the
	// active key's at the URL of certificates made before that, through
	// a rotation and past the old key's retirement.
	base := "http://" + crlAddr + "/crl/desktop/corp.example.com"
	fetchCRL(t, base+".crl", caCert)
	v1 := fetchCRL(t, base+"/v1.crl", caCert)
	if v1.Number == nil || v1.NextUpdate.Sub(v1.ThisUpdate) != 24*time.Hour || len(v1.RevokedCertificateEntries) != 0 {
		t.Fatalf("CRL number %v, %s..%s, %d revoked", v1.Number, v1.ThisUpdate, v1.NextUpdate, len(v1.RevokedCertificateEntries))
	}
	for _, phase := range []string{"publish", "switch"} {
		if _, err := c.RotateCA(ctx, "desktop", "corp.example.com", phase); err != nil {
			t.Fatalf("rotate %s: %v", phase, err)
		}
	}
	bundle, err = c.ExportCA(ctx, "desktop", "corp.example.com")
	if err != nil {
		t.Fatal(err)
	}
	var newCA *x509.Certificate
	for rest := []byte(bundle); ; {
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if cert, err := x509.ParseCertificate(b.Bytes); err == nil && !cert.Equal(caCert) {
			newCA = cert
		}
	}
	if newCA == nil {
		t.Fatalf("no new CA in the export after the switch: %q", bundle)
	}
	fetchCRL(t, base+"/v1.crl", caCert)
	fetchCRL(t, base+"/v2.crl", newCA)
	fetchCRL(t, base+".crl", newCA)
	if _, err := c.RotateCA(ctx, "desktop", "corp.example.com", "retire"); err != nil {
		t.Fatalf("retire a key that signed nothing: %v", err)
	}
	fetchCRL(t, base+"/v2.crl", newCA)

	// Only CRLs of known domains and key versions, and nothing of the
	// API, over plain HTTP.
	for _, path := range []string{"/crl/desktop/ghost.example.com.crl", "/crl/desktop/corp.example.com/v1.crl", "/healthz", "/v1/status"} {
		resp, err := http.Get("http://" + crlAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s over the CRL listener: %s, want 404", path, resp.Status)
		}
	}
}

// fetchCRL GETs a CRL over plain HTTP, as Windows does, and checks it is
// a DER CRL whose issuer name and key identifier are issuer's, signed by
// issuer's key.
func fetchCRL(t *testing.T, url string, issuer *x509.Certificate) *x509.RevocationList {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/pkix-crl" {
		t.Fatalf("GET %s: %s, %q: %s", url, resp.Status, resp.Header.Get("Content-Type"), der)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		t.Fatalf("GET %s: the CRL does not verify against %q: %v", url, issuer.Subject, err)
	}
	if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) || !bytes.Equal(crl.AuthorityKeyId, issuer.SubjectKeyId) {
		t.Fatalf("GET %s: CRL issuer %q AKI %x, want %q %x", url, crl.Issuer, crl.AuthorityKeyId, issuer.Subject, issuer.SubjectKeyId)
	}
	return crl
}

// TestBadCRLListenIsNamed: a crl_listen that is not HOST:PORT stops
// accessd with an error naming the key.
func TestBadCRLListenIsNamed(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "accessd.yaml")
	if err := os.WriteFile(cfgFile, []byte("crl_listen: nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(accessdBin, "start", "--config", cfgFile, "--data-dir", t.TempDir(), "--listen", freeAddr(t)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "crl_listen") {
		t.Fatalf("start with crl_listen: nope: %v\n%s", err, out)
	}
}
