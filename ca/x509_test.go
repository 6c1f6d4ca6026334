package ca_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/ca"
)

// Helpers shared by the X.509 tests (x509_test.go, dbservers_test.go); prefixed x5 to
// stay out of the way of the other ca tests.

func x5Key(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch kind {
	case "p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "p521":
		k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	case "rsa1024":
		k, err = rsa.GenerateKey(rand.Reader, 1024)
	case "rsa2048":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type x5Authority struct {
	signer crypto.Signer
	cert   *x509.Certificate
	pem    []byte
}

func x5NewCA(t testing.TB, cn string) x5Authority {
	t.Helper()
	s := x5Key(t, "p256")
	cert, p, err := ca.NewCACertificate(s, cn, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return x5Authority{s, cert, p}
}

// x5Window is a credential window as the service computes it: backdated a
// minute, ending d from now.
func x5Window(d time.Duration) ca.Validity {
	now := time.Now()
	return ca.Validity{NotBefore: now.Add(-time.Minute), NotAfter: now.Add(d)}
}

func x5Parse(t testing.TB, certPEM []byte) *x509.Certificate {
	t.Helper()
	b, rest := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("not one PEM certificate: %q", certPEM)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func x5KeyPEM(t testing.TB, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func x5Write(t testing.TB, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func x5WantErr(t testing.TB, err, want error, contains ...string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
	for _, c := range contains {
		if !strings.Contains(err.Error(), c) {
			t.Fatalf("error %q does not mention %q", err, c)
		}
	}
}

func x5Verify(t testing.TB, cert *x509.Certificate, auth x5Authority, eku x509.ExtKeyUsage) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(auth.cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{eku}}); err != nil {
		t.Fatalf("certificate does not verify against its CA: %v", err)
	}
}

func TestX509CheckPublicKey(t *testing.T) {
	for _, kind := range []string{"p256", "p384", "ed25519", "rsa2048"} {
		if err := ca.CheckPublicKey(x5Key(t, kind).Public()); err != nil {
			t.Errorf("%s: %v", kind, err)
		}
	}
	for _, tt := range []struct {
		pub  crypto.PublicKey
		want string
	}{
		{x5Key(t, "rsa1024").Public(), "RSA key of 1024 bits"},
		{x5Key(t, "p521").Public(), "P-521"},
		{ed25519.PublicKey(make([]byte, 5)), "Ed25519 public key of 5 bytes"},
		{nil, "no public key"},
		{"a string", "public key type string"},
		{&ecdsa.PublicKey{}, "empty ECDSA"},
	} {
		x5WantErr(t, ca.CheckPublicKey(tt.pub), access.ErrInvalid, tt.want)
	}
}

func TestX509ParseCSR(t *testing.T) {
	mk := func(k crypto.Signer) []byte {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}}, k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}
	k := x5Key(t, "p256")
	csr, err := ca.ParseCSR(mk(k))
	if err != nil {
		t.Fatal(err)
	}
	if !k.Public().(*ecdsa.PublicKey).Equal(csr.PublicKey) {
		t.Fatal("CSR public key differs")
	}

	_, err = ca.ParseCSR(mk(x5Key(t, "rsa1024")))
	x5WantErr(t, err, access.ErrInvalid, "1024 bits")
	_, err = ca.ParseCSR([]byte("hello"))
	x5WantErr(t, err, access.ErrInvalid, "not PEM")
	_, err = ca.ParseCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}))
	x5WantErr(t, err, access.ErrInvalid, "not a CERTIFICATE REQUEST")

	// A CSR whose signature does not match (last signature byte flipped).
	good := mk(x5Key(t, "ed25519"))
	b, _ := pem.Decode(good)
	b.Bytes[len(b.Bytes)-1] ^= 0xff
	_, err = ca.ParseCSR(pem.EncodeToMemory(b))
	x5WantErr(t, err, access.ErrInvalid, "signature")
}

func TestX509NewCACertificate(t *testing.T) {
	s := x5Key(t, "p256")
	now := time.Now()
	cert, p, err := ca.NewCACertificate(s, "gatehouse db prod", now)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x5Parse(t, p).Raw, cert.Raw) {
		t.Fatal("PEM and certificate differ")
	}
	if !cert.IsCA || !cert.BasicConstraintsValid || cert.MaxPathLen != 0 || !cert.MaxPathLenZero {
		t.Errorf("basic constraints: IsCA=%v MaxPathLen=%d", cert.IsCA, cert.MaxPathLen)
	}
	if cert.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("key usage %b", cert.KeyUsage)
	}
	if cert.Subject.String() != "CN=gatehouse db prod" || cert.Issuer.String() != cert.Subject.String() {
		t.Errorf("subject %s issuer %s", cert.Subject, cert.Issuer)
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if life := cert.NotAfter.Sub(cert.NotBefore); life < 10*365*24*time.Hour || life > 10*366*24*time.Hour {
		t.Errorf("lifetime %v", life)
	}
	if cert.NotBefore.After(now) {
		t.Errorf("NotBefore %v after now", cert.NotBefore)
	}
	if cert.SerialNumber.BitLen() < 100 || cert.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %v is not a random 128-bit number", cert.SerialNumber)
	}
	if len(cert.SubjectKeyId) == 0 {
		t.Error("no subject key id")
	}
	_, _, err = ca.NewCACertificate(x5Key(t, "rsa1024"), "x", now)
	x5WantErr(t, err, access.ErrInvalid, "1024")
	_, _, err = ca.NewCACertificate(s, "", now)
	x5WantErr(t, err, access.ErrInvalid, "empty")
}

func TestX509IssueDBCert(t *testing.T) {
	auth := x5NewCA(t, "gatehouse db orders")
	for _, kind := range []string{"p256", "p384", "ed25519", "rsa2048"} {
		t.Run(kind, func(t *testing.T) {
			k := x5Key(t, kind)
			v := x5Window(time.Hour)
			p, err := ca.IssueDBCert(auth.signer, auth.cert, k.Public(), "alice", v)
			if err != nil {
				t.Fatal(err)
			}
			c := x5Parse(t, p)
			x5Verify(t, c, auth, x509.ExtKeyUsageClientAuth)
			// The subject is exactly one RDN, CN=alice: MySQL compares
			// X509_NAME_oneline() ("/CN=alice") with REQUIRE SUBJECT.
			want, _ := asn1.Marshal(pkix.RDNSequence{{{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "alice"}}})
			if !bytes.Equal(c.RawSubject, want) {
				t.Errorf("subject %s is not exactly CN=alice", c.Subject)
			}
			if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || len(c.UnknownExtKeyUsage) != 0 {
				t.Errorf("EKU %v %v", c.ExtKeyUsage, c.UnknownExtKeyUsage)
			}
			wantKU := x509.KeyUsageDigitalSignature
			if kind == "rsa2048" {
				wantKU |= x509.KeyUsageKeyEncipherment
			}
			if c.KeyUsage != wantKU {
				t.Errorf("key usage %b, want %b", c.KeyUsage, wantKU)
			}
			if c.IsCA || !c.BasicConstraintsValid {
				t.Error("leaf is a CA")
			}
			if !c.NotBefore.Equal(v.NotBefore.Truncate(time.Second)) || !c.NotAfter.Equal(v.NotAfter.Truncate(time.Second)) {
				t.Errorf("validity %v..%v, want %v..%v", c.NotBefore, c.NotAfter, v.NotBefore, v.NotAfter)
			}
			if c.SerialNumber.BitLen() < 100 || c.SerialNumber.BitLen() > 128 {
				t.Errorf("serial %v", c.SerialNumber)
			}
			if len(c.DNSNames)+len(c.EmailAddresses)+len(c.IPAddresses)+len(c.URIs) != 0 {
				t.Error("unexpected SANs")
			}
		})
	}
}

func TestX509IssueDBCertRefuses(t *testing.T) {
	auth := x5NewCA(t, "gatehouse db orders")
	other := x5NewCA(t, "gatehouse db billing")
	pub := x5Key(t, "p256").Public()
	v := x5Window(time.Hour)
	for _, tt := range []struct {
		name   string
		signer crypto.Signer
		cert   *x509.Certificate
		pub    crypto.PublicKey
		user   string
		v      ca.Validity
		want   string
	}{
		{"empty user", auth.signer, auth.cert, pub, "", v, "empty database user"},
		{"control char", auth.signer, auth.cert, pub, "al\nice", v, "control character"},
		{"long user", auth.signer, auth.cert, pub, strings.Repeat("a", 65), v, "longer than 64"},
		{"weak key", auth.signer, auth.cert, x5Key(t, "rsa1024").Public(), "alice", v, "1024 bits"},
		{"key of another CA", other.signer, auth.cert, pub, "alice", v, "does not match"},
		{"empty validity", auth.signer, auth.cert, pub, "alice", ca.Validity{NotBefore: v.NotAfter, NotAfter: v.NotBefore}, "is empty"},
		{"beyond the CA", auth.signer, auth.cert, pub, "alice", ca.Validity{NotBefore: v.NotBefore, NotAfter: auth.cert.NotAfter.Add(time.Hour)}, "after the CA certificate"},
		{"leaf as CA", auth.signer, x5Parse(t, x5Must(ca.IssueDBCert(auth.signer, auth.cert, auth.signer.Public(), "x", v))), pub, "alice", v, "not a CA"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ca.IssueDBCert(tt.signer, tt.cert, tt.pub, tt.user, tt.v)
			x5WantErr(t, err, access.ErrInvalid, tt.want)
			if p != nil {
				t.Error("a certificate was returned")
			}
		})
	}
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func x5Must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestX509SerialsAreRandom(t *testing.T) {
	auth := x5NewCA(t, "gatehouse db orders")
	pub := x5Key(t, "p256").Public()
	seen := map[string]bool{}
	for range 200 {
		c := x5Parse(t, x5Must(ca.IssueDBCert(auth.signer, auth.cert, pub, "alice", x5Window(time.Hour))))
		s := c.SerialNumber.String()
		if seen[s] {
			t.Fatalf("serial %s repeated", s)
		}
		seen[s] = true
	}
}

func TestKubeCert(t *testing.T) {
	auth := x5NewCA(t, "gatehouse kube prod")
	k := x5Key(t, "p256")
	p, err := ca.IssueKubeCert(auth.signer, auth.cert, k.Public(), "alice@example.com", []string{"viewers", "developers", "viewers"}, []string{"cluster-admins"}, x5Window(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c := x5Parse(t, p)
	x5Verify(t, c, auth, x509.ExtKeyUsageClientAuth)
	// What the kube-apiserver x509 authenticator reads: CN = user name,
	// each O = a group.
	if c.Subject.CommonName != "alice@example.com" {
		t.Errorf("CN %q", c.Subject.CommonName)
	}
	if !slices.Equal(c.Subject.Organization, []string{"developers", "viewers"}) {
		t.Errorf("O %q, want sorted and unique", c.Subject.Organization)
	}
	// One RDN per attribute: O=developers, O=viewers, CN=user.
	var rdns pkix.RDNSequence
	if _, err := asn1.Unmarshal(c.RawSubject, &rdns); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rdn := range rdns {
		for _, atv := range rdn {
			got = append(got, atv.Type.String()+"="+atv.Value.(string))
		}
		if len(rdn) != 1 {
			t.Errorf("multi-valued RDN %v", rdn)
		}
	}
	if want := []string{"2.5.4.10=developers", "2.5.4.10=viewers", "2.5.4.3=alice@example.com"}; !slices.Equal(got, want) {
		t.Errorf("subject RDNs %q, want %q", got, want)
	}
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("EKU %v", c.ExtKeyUsage)
	}
	// No groups: a plain user, RBAC decides.
	c = x5Parse(t, x5Must(ca.IssueKubeCert(auth.signer, auth.cert, k.Public(), "bob", nil, nil, x5Window(time.Hour))))
	if len(c.Subject.Organization) != 0 || c.Subject.String() != "CN=bob" {
		t.Errorf("subject %s", c.Subject)
	}

	for _, tt := range []struct {
		user   string
		groups []string
		want   string
	}{
		{"alice", []string{"developers", "system:masters"}, `"system:masters" bypasses RBAC`},
		{"alice", []string{"cluster-admins"}, `"cluster-admins" is configured as forbidden`},
		{"system:kube-controller-manager", nil, "reserved system: namespace"},
	} {
		p, err := ca.IssueKubeCert(auth.signer, auth.cert, k.Public(), tt.user, tt.groups, []string{"cluster-admins"}, x5Window(time.Hour))
		x5WantErr(t, err, access.ErrForbidden, tt.want)
		if p != nil {
			t.Error("a certificate was returned")
		}
	}
	_, err = ca.IssueKubeCert(auth.signer, auth.cert, k.Public(), "alice", []string{""}, nil, x5Window(time.Hour))
	x5WantErr(t, err, access.ErrInvalid, "empty Kubernetes group")
}

func TestKubeconfig(t *testing.T) {
	auth := x5NewCA(t, "gatehouse kube prod")
	k := x5Key(t, "p256")
	certPEM := x5Must(ca.IssueKubeCert(auth.signer, auth.cert, k.Public(), "alice", []string{"developers"}, nil, x5Window(time.Hour)))
	keyPEM := x5KeyPEM(t, k)
	out, err := ca.KubeconfigYAML("prod", "https://127.0.0.1:6443", string(auth.pem), "alice", certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Clusters   []struct {
			Name    string `json:"name"`
			Cluster struct {
				Server string `json:"server"`
				CA     []byte `json:"certificate-authority-data"`
			} `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			Name string `json:"name"`
			User struct {
				Cert []byte `json:"client-certificate-data"`
				Key  []byte `json:"client-key-data"`
			} `json:"user"`
		} `json:"users"`
		Contexts []struct {
			Name    string `json:"name"`
			Context struct {
				Cluster string `json:"cluster"`
				User    string `json:"user"`
			} `json:"context"`
		} `json:"contexts"`
		CurrentContext string         `json:"current-context"`
		Preferences    map[string]any `json:"preferences"`
	}
	if err := yaml.UnmarshalStrict(out, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.APIVersion != "v1" || cfg.Kind != "Config" {
		t.Errorf("apiVersion %q kind %q", cfg.APIVersion, cfg.Kind)
	}
	if len(cfg.Clusters) != 1 || cfg.Clusters[0].Name != "prod" || cfg.Clusters[0].Cluster.Server != "https://127.0.0.1:6443" || !bytes.Equal(cfg.Clusters[0].Cluster.CA, auth.pem) {
		t.Errorf("clusters %+v", cfg.Clusters)
	}
	if len(cfg.Users) != 1 || cfg.Users[0].Name != "alice@prod" || !bytes.Equal(cfg.Users[0].User.Cert, certPEM) || !bytes.Equal(cfg.Users[0].User.Key, keyPEM) {
		t.Errorf("users %+v", cfg.Users)
	}
	if len(cfg.Contexts) != 1 || cfg.Contexts[0].Name != cfg.CurrentContext || cfg.Contexts[0].Context.Cluster != "prod" || cfg.Contexts[0].Context.User != "alice@prod" {
		t.Errorf("contexts %+v current %q", cfg.Contexts, cfg.CurrentContext)
	}

	_, err = ca.KubeconfigYAML("prod", "http://127.0.0.1:6443", string(auth.pem), "alice", certPEM, keyPEM)
	x5WantErr(t, err, access.ErrInvalid, "https://")
	_, err = ca.KubeconfigYAML("prod", "https://127.0.0.1:6443", string(auth.pem), "alice", certPEM, certPEM)
	x5WantErr(t, err, access.ErrInvalid, "client key")

	// The stock client loads it, when kubectl is installed.
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Log("kubectl not on PATH: the kubeconfig was checked as YAML only")
		return
	}
	f := x5Write(t, filepath.Join(t.TempDir(), "kubeconfig"), out)
	for jp, want := range map[string]string{
		"{.current-context}":                                "alice@prod",
		"{.clusters[0].cluster.server}":                     "https://127.0.0.1:6443",
		"{.users[0].user.client-certificate-data}":          base64Std(certPEM),
		"{.users[0].user.client-key-data}":                  base64Std(keyPEM),
		"{.clusters[0].cluster.certificate-authority-data}": base64Std(auth.pem),
	} {
		got, err := exec.Command(kubectl, "--kubeconfig", f, "config", "view", "--raw", "-o", "jsonpath="+jp).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl config view: %v: %s", err, got)
		}
		if string(got) != want {
			t.Errorf("kubectl %s = %q, want %q", jp, got, want)
		}
	}
}

func TestDesktopCert(t *testing.T) {
	auth := x5NewCA(t, "gatehouse desktop example.com")
	k := x5Key(t, "rsa2048")
	const sid = "S-1-5-21-1004336348-1177238915-682003330-1104"
	v := x5Window(time.Hour)
	p, err := ca.IssueDesktopCert(auth.signer, auth.cert, k.Public(), "alice", "corp.example.com", sid, "http://gatehouse.example.com:3080/crl/desktop/corp.crl", v)
	if err != nil {
		t.Fatal(err)
	}
	c := x5Parse(t, p)
	x5Verify(t, c, auth, x509.ExtKeyUsageAny)

	if c.Subject.String() != "CN=alice" {
		t.Errorf("subject %s", c.Subject)
	}
	// EKUs: clientAuth and smartcard logon.
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) ||
		len(c.UnknownExtKeyUsage) != 1 || !c.UnknownExtKeyUsage[0].Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 2}) {
		t.Errorf("EKU %v %v", c.ExtKeyUsage, c.UnknownExtKeyUsage)
	}
	// digitalSignature (what Windows requires) and keyEncipherment (RSA).
	if c.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
		t.Errorf("key usage %b", c.KeyUsage)
	}
	if !slices.Equal(c.CRLDistributionPoints, []string{"http://gatehouse.example.com:3080/crl/desktop/corp.crl"}) {
		t.Errorf("CRL DP %v", c.CRLDistributionPoints)
	}

	ext := func(oid asn1.ObjectIdentifier) pkix.Extension {
		t.Helper()
		var found []pkix.Extension
		for _, e := range c.Extensions {
			if e.Id.Equal(oid) {
				found = append(found, e)
			}
		}
		if len(found) != 1 {
			t.Fatalf("%d extensions %v", len(found), oid)
		}
		return found[0]
	}

	// SAN: one otherName, UPN, UTF8String alice@corp.example.com;
	// non-critical since the subject is not empty (RFC 5280 4.2.1.6).
	san := ext(asn1.ObjectIdentifier{2, 5, 29, 17})
	if san.Critical {
		t.Error("SAN is critical with a non-empty subject")
	}
	var names []asn1.RawValue
	if rest, err := asn1.Unmarshal(san.Value, &names); err != nil || len(rest) != 0 || len(names) != 1 {
		t.Fatalf("SAN: %v, %d names", err, len(names))
	}
	if names[0].Class != asn1.ClassContextSpecific || names[0].Tag != 0 || !names[0].IsCompound {
		t.Fatalf("SAN entry is not otherName [0]: %+v", names[0])
	}
	var upn struct {
		TypeID asn1.ObjectIdentifier
		Value  string `asn1:"explicit,tag:0,utf8"`
	}
	if rest, err := asn1.UnmarshalWithParams(names[0].FullBytes, &upn, "tag:0"); err != nil || len(rest) != 0 {
		t.Fatalf("otherName: %v", err)
	}
	if !upn.TypeID.Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}) || upn.Value != "alice@corp.example.com" {
		t.Errorf("UPN %v %q", upn.TypeID, upn.Value)
	}
	// The value is a UTF8String (tag 12), as Windows expects.
	if i := bytes.Index(names[0].Bytes, []byte("alice@corp.example.com")); i < 2 || names[0].Bytes[i-2] != 0x0c {
		t.Errorf("UPN is not a UTF8String: % x", names[0].Bytes)
	}

	// SID: exactly the bytes AD CS writes (hand-built TLVs here, so the
	// encoder is checked against an independent construction).
	sidExt := ext(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 25, 2})
	if sidExt.Critical {
		t.Error("SID extension is critical")
	}
	tlv := func(tag byte, content ...[]byte) []byte {
		b := bytes.Join(content, nil)
		if len(b) >= 128 {
			t.Fatal("test TLV helper handles short lengths only")
		}
		return append([]byte{tag, byte(len(b))}, b...)
	}
	oid := []byte{0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x19, 0x02, 0x01} // 1.3.6.1.4.1.311.25.2.1
	want := tlv(0x30, tlv(0xa0, oid, tlv(0xa0, tlv(0x04, []byte(sid)))))
	if !bytes.Equal(sidExt.Value, want) {
		t.Errorf("SID extension\n got % x\nwant % x", sidExt.Value, want)
	}

	// Without a SID there is no SID extension.
	c = x5Parse(t, x5Must(ca.IssueDesktopCert(auth.signer, auth.cert, x5Key(t, "p256").Public(), "bob", "corp.example.com", "", "http://h/crl", v)))
	for _, e := range c.Extensions {
		if e.Id.Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 25, 2}) {
			t.Error("SID extension without a SID")
		}
	}
	if c.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("ECDSA key usage %b", c.KeyUsage)
	}

	// openssl, when installed, reads the same fields.
	if openssl, err := exec.LookPath("openssl"); err == nil {
		f := x5Write(t, filepath.Join(t.TempDir(), "desktop.crt"), p)
		out, err := exec.Command(openssl, "x509", "-in", f, "-noout", "-text").CombinedOutput()
		if err != nil {
			t.Fatalf("openssl: %v: %s", err, out)
		}
		for _, w := range []string{"Microsoft Smartcard Login", "TLS Web Client Authentication", "othername: UPN:", "alice@corp.example.com", "Digital Signature, Key Encipherment", "URI:http://gatehouse.example.com:3080/crl/desktop/corp.crl", "1.3.6.1.4.1.311.25.2:"} {
			if !strings.Contains(string(out), w) {
				t.Errorf("openssl -text lacks %q:\n%s", w, out)
			}
		}
	}

	for _, tt := range []struct{ login, domain, sid, crl, want string }{
		{"al@ice", "corp.example.com", "", "http://h/crl", "not allowed"},
		{"alice", "corp example", "", "http://h/crl", "not a DNS domain"},
		{"alice", "corp.example.com", "S-1-5-21-x", "http://h/crl", "not of the form"},
		{"alice", "corp.example.com", "", "https://h/crl", "http://"},
		{"alice", "corp.example.com", "", "", "http://"},
	} {
		_, err := ca.IssueDesktopCert(auth.signer, auth.cert, k.Public(), tt.login, tt.domain, tt.sid, tt.crl, v)
		x5WantErr(t, err, access.ErrInvalid, tt.want)
	}
}

// BenchmarkIssueDBCert: one PostgreSQL/MySQL client certificate, P-256 CA
// signing a P-256 client key.
func BenchmarkIssueDBCert(b *testing.B) {
	auth := x5NewCA(b, "bench db")
	pub := x5Key(b, "p256").Public()
	v := x5Window(time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ca.IssueDBCert(auth.signer, auth.cert, pub, "alice", v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkECDSASign: the bare P-256 signature every X.509 and JWT
// issuance makes, the floor under the numbers above.
func BenchmarkECDSASign(b *testing.B) {
	k := x5Key(b, "p256")
	digest := sha256.Sum256([]byte("gatehouse"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
			b.Fatal(err)
		}
	}
}
