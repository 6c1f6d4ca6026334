package pki

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

func newCA(t *testing.T) *CA {
	t.Helper()
	certPEM, keyPEM, err := NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ca, err := LoadCA(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestVerifyPin(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	srv, err := ca.ServerCertificate([]string{"127.0.0.1", "localhost"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := other.ServerCertificate([]string{"127.0.0.1"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// A chain that presents the right CA but a leaf from another CA.
	spliced := [][]byte{forged.Certificate[0], ca.Cert.Raw}

	tests := []struct {
		name    string
		pin     string
		chain   [][]byte
		wantErr string
	}{
		{"right CA", ca.Pin(), srv.Certificate, ""},
		{"another CA", ca.Pin(), forged.Certificate, "does not match pin"},
		{"leaf not signed by the pinned CA", ca.Pin(), spliced, "not signed by the pinned CA"},
		{"malformed pin", "md5:abc", srv.Certificate, "want sha256:HEX"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyPin(tt.pin, tt.chain)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestClientCertificate(t *testing.T) {
	ca := newCA(t)
	keyPEM, csrPEM, err := NewKeyAndCSR("alice")
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	certPEM, notAfter, err := ca.ClientCertificate(csr.PublicKey, "alice", now, 12*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "alice" || !cert.NotAfter.Equal(notAfter.Truncate(time.Second)) || cert.NotBefore.After(now.Add(-Backdate+time.Second)) {
		t.Fatalf("cert = CN %q, %v..%v", cert.Subject.CommonName, cert.NotBefore, cert.NotAfter)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("session certificate does not verify for client auth: %v", err)
	}
	if _, err := ParsePrivateKey(keyPEM); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseCSR([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")); err == nil {
		t.Fatal("garbage CSR accepted")
	}
}

func TestInvite(t *testing.T) {
	ca := newCA(t)
	tok := FormatInvite(strings.Repeat("ab", 16), ca.Pin())
	secret, pin, err := ParseInvite(tok)
	if err != nil || secret != strings.Repeat("ab", 16) || pin != ca.Pin() {
		t.Fatalf("ParseInvite(%q) = %q, %q, %v", tok, secret, pin, err)
	}
	for _, bad := range []string{"", "v1.abc.def", "v2." + strings.Repeat("ab", 16) + "." + strings.Repeat("0", 64), "v1." + strings.Repeat("zz", 16) + "." + strings.Repeat("0", 64)} {
		if _, _, err := ParseInvite(bad); err == nil {
			t.Errorf("ParseInvite(%q) accepted", bad)
		}
	}
}

func TestLoadCARefusesAnotherKey(t *testing.T) {
	certPEM, _, err := NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, err := NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(certPEM, otherKey); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Fatalf("LoadCA with another CA's key: %v", err)
	}
}
