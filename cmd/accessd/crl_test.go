package main_test

import (
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
// desktop CRLs over plain HTTP, signed by the domain's CA.
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

	url := "http://" + crlAddr + "/crl/desktop/corp.example.com.crl"
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
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(caCert); err != nil {
		t.Fatalf("the CRL does not verify against the domain CA: %v", err)
	}
	if crl.NextUpdate.Sub(crl.ThisUpdate) != 24*time.Hour || len(crl.RevokedCertificateEntries) != 0 {
		t.Fatalf("CRL %s..%s, %d revoked", crl.ThisUpdate, crl.NextUpdate, len(crl.RevokedCertificateEntries))
	}
	// Only CRLs of known domains, and nothing of the API, over plain HTTP.
	for _, path := range []string{"/crl/desktop/ghost.example.com.crl", "/healthz", "/v1/status"} {
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
