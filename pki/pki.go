// Package pki holds Gatehouse's own TLS authority: the server CA created on
// first start, the server certificate, and the short-lived client ("session")
// certificates the CLIs authenticate with. Credentials for targets (SSH,
// databases, ...) come from ca/, with keys per target; this CA only guards
// the API.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

// Backdate is how far not-before is set in the past, for clock skew.
const Backdate = time.Minute

// caValidity is the server CA's lifetime; rotation of this CA is an
// operator task far in the future.
const caValidity = 10 * 365 * 24 * time.Hour

// CA signs the server and session certificates.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     crypto.Signer
}

// NewCA creates a self-signed ECDSA P-256 CA for the cluster.
func NewCA(clusterName string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "Gatehouse CA " + clusterName, Organization: []string{"Gatehouse"}},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("self-sign CA: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal CA key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// LoadCA parses a CA certificate and key.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	// A key that is not the certificate's would sign certificates nobody
	// can verify; say so here instead of at the first TLS handshake.
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, errors.New("CA key does not belong to the CA certificate")
	}
	return &CA{Cert: cert, CertPEM: certPEM, key: key}, nil
}

// Pool returns a cert pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Pin is the CA pin ("sha256:HEX" of the CA's SubjectPublicKeyInfo), as
// kubeadm and Teleport print it.
func (ca *CA) Pin() string { return PinOf(ca.Cert) }

// PinOf computes the pin of a certificate.
func PinOf(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ServerCertificate issues a TLS server certificate for the given host names
// and IP addresses.
func (ca *CA) ServerCertificate(hosts []string, now time.Time, ttl time.Duration) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "accessd"},
		NotBefore:    now.Add(-Backdate),
		NotAfter:     now.Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("sign server certificate: %w", err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// ClientCertificate signs a session certificate for user over pub.
func (ca *CA) ClientCertificate(pub crypto.PublicKey, user string, now time.Time, ttl time.Duration) ([]byte, time.Time, error) {
	notAfter := now.Add(ttl)
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: user, Organization: []string{"Gatehouse"}},
		NotBefore:    now.Add(-Backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("sign session certificate for %q: %w", user, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), notAfter, nil
}

// ParseCSR parses and checks the signature of a PEM certificate request.
func ParseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("csr: want a PEM \"CERTIFICATE REQUEST\" block")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr: bad signature: %w", err)
	}
	return csr, nil
}

// NewKeyAndCSR generates an ECDSA P-256 key and a CSR for user; the private
// key never leaves the client.
func NewKeyAndCSR(user string) (keyPEM, csrPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	return CSRFor(key, user)
}

// CSRFor makes a CSR with subject CN=cn for key, and returns the key as
// PKCS#8 PEM beside it.
func CSRFor(key crypto.Signer, cn string) (keyPEM, csrPEM []byte, err error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create csr: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// ParseCertificate parses the first PEM certificate.
func ParseCertificate(certPEM []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("want a PEM \"CERTIFICATE\" block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// ParsePrivateKey parses a PKCS#8 or SEC1 PEM private key.
func ParsePrivateKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("want a PEM private key")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, errors.New("private key cannot sign")
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	return nil, errors.New("unsupported private key format")
}

// VerifyPin checks a pin against a chain presented by a server: one of the
// certificates (normally the CA at the end) must carry the pinned key. It
// is how a CLI trusts a server it has never seen without trust on first
// use.
func VerifyPin(pin string, rawCerts [][]byte) error {
	if !strings.HasPrefix(pin, "sha256:") {
		return fmt.Errorf("ca pin %q: want sha256:HEX", pin)
	}
	certs := make([]*x509.Certificate, 0, len(rawCerts))
	for _, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return fmt.Errorf("server certificate: %w", err)
		}
		certs = append(certs, c)
	}
	for _, c := range certs {
		if PinOf(c) != pin || !c.IsCA {
			continue
		}
		// The pinned CA must also have signed the leaf.
		roots := x509.NewCertPool()
		roots.AddCert(c)
		if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return fmt.Errorf("server certificate not signed by the pinned CA: %w", err)
		}
		return nil
	}
	return fmt.Errorf("server CA does not match pin %s", pin)
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return n
}

// ServerPEM issues a server certificate like ServerCertificate and returns
// it and its key as PEM, for servers configured with files (the test
// databases).
func (ca *CA) ServerPEM(hosts []string, now time.Time, ttl time.Duration) (certPEM, keyPEM []byte, err error) {
	c, err := ca.ServerCertificate(hosts, now, ttl)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal server key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// ThrowawayServerTLS makes a new CA and a server certificate for 127.0.0.1
// and localhost, valid for a day: what a test server needs. PEMs: CA,
// certificate, key.
func ThrowawayServerTLS(name string) (caPEM, certPEM, keyPEM []byte, err error) {
	now := time.Now()
	caPEM, caKeyPEM, err := NewCA(name, now)
	if err != nil {
		return nil, nil, nil, err
	}
	ca, err := LoadCA(caPEM, caKeyPEM)
	if err != nil {
		return nil, nil, nil, err
	}
	certPEM, keyPEM, err = ca.ServerPEM([]string{"127.0.0.1", "localhost"}, now, 24*time.Hour)
	return caPEM, certPEM, keyPEM, err
}
