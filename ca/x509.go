package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/access"
)

// X.509 issuance: one self-signed CA per database, Kubernetes cluster and
// Windows domain, and the leaf certificates those targets accept with their
// stock mechanisms (pg_hba "cert", MySQL REQUIRE SUBJECT/X509, the
// kube-apiserver x509 authenticator, Windows smartcard logon).

// CACertLifetime is how long a CA certificate made by NewCACertificate is
// valid. Rotation (publish/switch/retire) replaces keys long before that.
const CACertLifetime = 10 * 365 * 24 * time.Hour

// KubeSystemMasters is the Kubernetes group that bypasses RBAC entirely;
// IssueKubeCert never puts it into a certificate.
const KubeSystemMasters = "system:masters"

// Object identifiers of the Microsoft smartcard-logon profile
// (learn.microsoft.com, "Smart card certificate requirements and
// enumeration"; KB5014754 for the SID extension; MS-WCCE 2.2.2.7.7.4).
var (
	OIDSmartcardLogon    = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 2} // szOID_KP_SMARTCARD_LOGON
	OIDUPNOtherName      = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3} // szOID_NT_PRINCIPAL_NAME
	OIDNTDSCASecurityExt = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 25, 2}    // szOID_NTDS_CA_SECURITY_EXT
	OIDNTDSObjectSID     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 25, 2, 1} // szOID_NTDS_OBJECTSID
	oidSubjectAltName    = asn1.ObjectIdentifier{2, 5, 29, 17}
	x509MaxNameLen       = 64 // ub-common-name (RFC 5280)
	x509SIDPattern       = regexp.MustCompile(`^S-1-[0-9]+(-[0-9]+){1,15}$`)
	x509DomainPattern    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$`)
	x509SerialLimit      = new(big.Int).Lsh(big.NewInt(1), 128)
	x509MaxRSABits       = 8192
)

// x509Serial returns a random, non-zero 128-bit serial number.
func x509Serial() (*big.Int, error) {
	for {
		n, err := rand.Int(rand.Reader, x509SerialLimit)
		if err != nil {
			return nil, fmt.Errorf("serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// CheckPublicKey accepts the key types Gatehouse signs: ECDSA P-256 and
// P-384, Ed25519, and RSA of 2048 to 8192 bits. Anything else is ErrInvalid
// with the type and size named.
func CheckPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return fmt.Errorf("%w: empty ECDSA public key", access.ErrInvalid)
		}
		switch k.Curve {
		case elliptic.P256(), elliptic.P384():
		default:
			return fmt.Errorf("%w: ECDSA key on curve %s is not supported (use P-256 or P-384)", access.ErrInvalid, k.Curve.Params().Name)
		}
		// Bytes rejects points that are not on the curve.
		if _, err := k.Bytes(); err != nil {
			return fmt.Errorf("%w: ECDSA %s public key: %v", access.ErrInvalid, k.Curve.Params().Name, err)
		}
		return nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: Ed25519 public key of %d bytes (want %d)", access.ErrInvalid, len(k), ed25519.PublicKeySize)
		}
		return nil
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return fmt.Errorf("%w: empty RSA public key", access.ErrInvalid)
		}
		bits := k.N.BitLen()
		if bits < 2048 {
			return fmt.Errorf("%w: RSA key of %d bits is too weak (at least 2048)", access.ErrInvalid, bits)
		}
		if bits > x509MaxRSABits {
			return fmt.Errorf("%w: RSA key of %d bits is too large (at most %d)", access.ErrInvalid, bits, x509MaxRSABits)
		}
		if k.E < 3 || k.E%2 == 0 {
			return fmt.Errorf("%w: RSA public exponent %d is not valid", access.ErrInvalid, k.E)
		}
		return nil
	case nil:
		return fmt.Errorf("%w: no public key", access.ErrInvalid)
	default:
		return fmt.Errorf("%w: public key type %T is not supported (ECDSA P-256/P-384, Ed25519 or RSA >= 2048 bits)", access.ErrInvalid, pub)
	}
}

// ParseCSR decodes a PEM "CERTIFICATE REQUEST", checks its self-signature
// (proof the requester holds the private key) and its key type. Only the
// public key of the CSR is used by the issuers: subject, SANs and
// extensions the client asked for are ignored.
func ParseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
	block, rest := pem.Decode(csrPEM)
	if block == nil {
		return nil, fmt.Errorf("%w: CSR is not PEM", access.ErrInvalid)
	}
	if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("%w: PEM block %q is not a CERTIFICATE REQUEST", access.ErrInvalid, block.Type)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: trailing data after the CSR", access.ErrInvalid)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: CSR: %v", access.ErrInvalid, err)
	}
	if err := CheckPublicKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: CSR signature: %v", access.ErrInvalid, err)
	}
	return csr, nil
}

// NewCACertificate makes the self-signed CA certificate for signer:
// subject CN=commonName, valid from now (backdated a minute) for ten years,
// basic constraints CA with path length 0 (it signs only leaves), key
// usage certSign|cRLSign, random 128-bit serial.
func NewCACertificate(signer crypto.Signer, commonName string, now time.Time) (*x509.Certificate, []byte, error) {
	if signer == nil {
		return nil, nil, fmt.Errorf("%w: no CA signer", access.ErrInvalid)
	}
	if err := CheckPublicKey(signer.Public()); err != nil {
		return nil, nil, fmt.Errorf("CA key: %w", err)
	}
	if err := x509CheckName("CA common name", commonName); err != nil {
		return nil, nil, err
	}
	if now.IsZero() {
		return nil, nil, fmt.Errorf("%w: no issue time for the CA certificate", access.ErrInvalid)
	}
	serial, err := x509Serial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Minute).UTC(),
		NotAfter:              now.Add(CACertLifetime).UTC(),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// IssueDBCert issues a PostgreSQL / MySQL / MariaDB client certificate:
// subject exactly CN=<dbUser> and nothing else (MySQL's REQUIRE SUBJECT is
// a plain compare with "/CN=<dbUser>"; PostgreSQL's "cert" method maps the
// CN to the user), clientAuth EKU, digitalSignature (plus keyEncipherment
// for RSA keys), random 128-bit serial, signed by that database's CA.
func IssueDBCert(caSigner crypto.Signer, caCert *x509.Certificate, pub crypto.PublicKey, dbUser string, v Validity) ([]byte, error) {
	if err := x509CheckName("database user", dbUser); err != nil {
		return nil, err
	}
	return x509IssueLeaf(caSigner, caCert, pub, &x509.Certificate{
		Subject:     pkix.Name{CommonName: dbUser},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, v)
}

// IssueKubeCert issues a Kubernetes client certificate as the
// kube-apiserver x509 authenticator reads it: CN = user, one O per group
// (sorted, duplicates dropped), clientAuth EKU. system:masters and every
// group in forbiddenGroups are refused with ErrForbidden (they bypass
// RBAC), and so is a user name in the reserved "system:" namespace (it
// would impersonate a control-plane component).
func IssueKubeCert(caSigner crypto.Signer, caCert *x509.Certificate, pub crypto.PublicKey, user string, groups []string, forbiddenGroups []string, v Validity) ([]byte, error) {
	if err := x509CheckName("Kubernetes user", user); err != nil {
		return nil, err
	}
	if strings.HasPrefix(user, "system:") {
		return nil, fmt.Errorf("%w: Kubernetes user %q is in the reserved system: namespace", access.ErrForbidden, user)
	}
	gs := make([]string, 0, len(groups))
	for _, g := range groups {
		if err := x509CheckName("Kubernetes group", g); err != nil {
			return nil, err
		}
		if g == KubeSystemMasters {
			return nil, fmt.Errorf("%w: Kubernetes group %q bypasses RBAC and is never issued", access.ErrForbidden, g)
		}
		if slices.Contains(forbiddenGroups, g) {
			return nil, fmt.Errorf("%w: Kubernetes group %q is configured as forbidden", access.ErrForbidden, g)
		}
		gs = append(gs, g)
	}
	slices.Sort(gs)
	gs = slices.Compact(gs)
	// One RDN per group, in sorted order, then the CN (what kubeadm and
	// "openssl req -subj /O=g1/O=g2/CN=user" write). pkix.Name would put
	// all groups in one multi-valued RDN, reordered by DER SET sorting.
	var rdns pkix.RDNSequence
	for _, g := range gs {
		rdns = append(rdns, pkix.RelativeDistinguishedNameSET{{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: g}})
	}
	rdns = append(rdns, pkix.RelativeDistinguishedNameSET{{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: user}})
	rawSubject, err := asn1.Marshal(rdns)
	if err != nil {
		return nil, fmt.Errorf("kubernetes subject: %w", err)
	}
	return x509IssueLeaf(caSigner, caCert, pub, &x509.Certificate{
		RawSubject:  rawSubject,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, v)
}

// IssueDesktopCert issues a Windows smartcard-logon certificate:
//   - subject CN=<login>;
//   - subjectAltName (non-critical, as the subject is not empty: RFC 5280
//     4.2.1.6) with one otherName, the UPN (1.3.6.1.4.1.311.20.2.3) as a
//     UTF8String login@domain;
//   - EKUs smartcard logon (1.3.6.1.4.1.311.20.2.2) and clientAuth;
//   - key usage digitalSignature (required by Windows), plus
//     keyEncipherment for RSA keys;
//   - when sid is set, the szOID_NTDS_CA_SECURITY_EXT extension
//     (1.3.6.1.4.1.311.25.2) that KB5014754 strong mapping requires:
//     SEQUENCE { [0] IMPLICIT otherName { OID 1.3.6.1.4.1.311.25.2.1,
//     [0] EXPLICIT OCTET STRING <the SID as text, "S-1-5-21-...">} },
//     i.e. GeneralNames as AD CS writes it;
//   - a CRL distribution point crlURL, which must be http:// or ldap://
//     (Windows does not fetch CRLs over HTTPS).
//
// RSA keys are the safe choice for desktop clients: Windows PKINIT support
// for ECDSA client keys depends on the domain controllers' version.
func IssueDesktopCert(caSigner crypto.Signer, caCert *x509.Certificate, pub crypto.PublicKey, login, domain, sid, crlURL string, v Validity) ([]byte, error) {
	if err := x509CheckName("Windows login", login); err != nil {
		return nil, err
	}
	if strings.ContainsAny(login, `@\/"[]:;|=+*?<>,`) {
		return nil, fmt.Errorf("%w: Windows login %q contains a character not allowed in a user logon name", access.ErrInvalid, login)
	}
	if len(domain) > 255 || !x509DomainPattern.MatchString(domain) {
		return nil, fmt.Errorf("%w: Windows domain %q is not a DNS domain name", access.ErrInvalid, domain)
	}
	if sid != "" && !x509SIDPattern.MatchString(sid) {
		return nil, fmt.Errorf("%w: Windows SID %q is not of the form S-1-5-21-N", access.ErrInvalid, sid)
	}
	u, err := url.Parse(crlURL)
	if crlURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "ldap") || (u.Scheme == "http" && u.Host == "") {
		return nil, fmt.Errorf("%w: CRL distribution point %q must be an http:// (or ldap://) URL", access.ErrInvalid, crlURL)
	}
	san, err := x509OtherNameSAN(OIDUPNOtherName, x509MustMarshal(asn1.MarshalWithParams(login+"@"+domain, "utf8")))
	if err != nil {
		return nil, err
	}
	exts := []pkix.Extension{{Id: oidSubjectAltName, Critical: false, Value: san}}
	if sid != "" {
		val, err := x509OtherNameSAN(OIDNTDSObjectSID, x509MustMarshal(asn1.Marshal([]byte(sid))))
		if err != nil {
			return nil, err
		}
		exts = append(exts, pkix.Extension{Id: OIDNTDSCASecurityExt, Critical: false, Value: val})
	}
	return x509IssueLeaf(caSigner, caCert, pub, &x509.Certificate{
		Subject:               pkix.Name{CommonName: login},
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		UnknownExtKeyUsage:    []asn1.ObjectIdentifier{OIDSmartcardLogon},
		ExtraExtensions:       exts,
		CRLDistributionPoints: []string{crlURL},
	}, v)
}

func x509MustMarshal(b []byte, err error) []byte {
	if err != nil {
		panic(err) // only fixed-shape values are marshalled here
	}
	return b
}

// x509OtherNameSAN encodes GeneralNames holding one otherName:
// SEQUENCE { [0] IMPLICIT SEQUENCE { type-id OID, [0] EXPLICIT value } }.
func x509OtherNameSAN(typeID asn1.ObjectIdentifier, value []byte) ([]byte, error) {
	oid, err := asn1.Marshal(typeID)
	if err != nil {
		return nil, fmt.Errorf("otherName type: %w", err)
	}
	explicit, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: value})
	if err != nil {
		return nil, fmt.Errorf("otherName value: %w", err)
	}
	otherName := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(oid, explicit...)}
	b, err := asn1.Marshal([]asn1.RawValue{otherName})
	if err != nil {
		return nil, fmt.Errorf("general names: %w", err)
	}
	return b, nil
}

// x509CheckName refuses names that no target can hold in a subject: empty,
// longer than ub-common-name, not UTF-8, or with control characters or
// surrounding spaces.
func x509CheckName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", access.ErrInvalid, what)
	case len(s) > x509MaxNameLen:
		return fmt.Errorf("%w: %s %q is longer than %d bytes", access.ErrInvalid, what, s, x509MaxNameLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s %q is not UTF-8", access.ErrInvalid, what, s)
	case strings.TrimSpace(s) != s:
		return fmt.Errorf("%w: %s %q has leading or trailing spaces", access.ErrInvalid, what, s)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return fmt.Errorf("%w: %s %q contains a control character", access.ErrInvalid, what, s)
	}
	return nil
}

// x509IssueLeaf fills in what every leaf shares (serial, validity, key
// usage, no CA) and signs tmpl with the CA.
func x509IssueLeaf(caSigner crypto.Signer, caCert *x509.Certificate, pub crypto.PublicKey, tmpl *x509.Certificate, v Validity) ([]byte, error) {
	if caSigner == nil || caCert == nil {
		return nil, fmt.Errorf("%w: no CA key or certificate", access.ErrInvalid)
	}
	if !caCert.IsCA || caCert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%w: certificate %q is not a CA certificate", access.ErrInvalid, caCert.Subject.CommonName)
	}
	if pk, ok := caCert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pk.Equal(caSigner.Public()) {
		return nil, fmt.Errorf("%w: CA key does not match CA certificate %q", access.ErrInvalid, caCert.Subject.CommonName)
	}
	if err := CheckPublicKey(pub); err != nil {
		return nil, err
	}
	if v.NotBefore.IsZero() || v.NotAfter.IsZero() || !v.NotAfter.After(v.NotBefore) {
		return nil, fmt.Errorf("%w: validity %s..%s is empty", access.ErrInvalid, v.NotBefore.Format(time.RFC3339), v.NotAfter.Format(time.RFC3339))
	}
	if v.NotAfter.After(caCert.NotAfter) {
		return nil, fmt.Errorf("%w: validity ends %s, after the CA certificate %q (%s)", access.ErrInvalid,
			v.NotAfter.Format(time.RFC3339), caCert.Subject.CommonName, caCert.NotAfter.Format(time.RFC3339))
	}
	serial, err := x509Serial()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = v.NotBefore.UTC()
	tmpl.NotAfter = v.NotAfter.UTC()
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = false
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	if _, ok := pub.(*rsa.PublicKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, pub, caSigner)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// kubeconfig is the subset of the client-go v1 Config that Gatehouse
// writes; sigs.k8s.io/yaml marshals through the JSON tags, and []byte
// fields become the base64 the *-data keys hold.
type kubeconfig struct {
	APIVersion     string              `json:"apiVersion"`
	Kind           string              `json:"kind"`
	Clusters       []kubeconfigCluster `json:"clusters"`
	Users          []kubeconfigUser    `json:"users"`
	Contexts       []kubeconfigContext `json:"contexts"`
	CurrentContext string              `json:"current-context"`
	Preferences    struct{}            `json:"preferences"`
}

type kubeconfigCluster struct {
	Name    string `json:"name"`
	Cluster struct {
		Server                   string `json:"server"`
		CertificateAuthorityData []byte `json:"certificate-authority-data,omitempty"`
	} `json:"cluster"`
}

type kubeconfigUser struct {
	Name string `json:"name"`
	User struct {
		ClientCertificateData []byte `json:"client-certificate-data"`
		ClientKeyData         []byte `json:"client-key-data"`
	} `json:"user"`
}

type kubeconfigContext struct {
	Name    string `json:"name"`
	Context struct {
		Cluster string `json:"cluster"`
		User    string `json:"user"`
	} `json:"context"`
}

// KubeconfigYAML returns a complete kubeconfig (apiVersion v1, kind Config)
// for one cluster: the cluster entry with server and the embedded
// certificate-authority-data, a user entry "<user>@<clusterName>" with the
// embedded client certificate and key, and a context of the same name set
// as current-context. An empty caPEM leaves certificate-authority-data out,
// so kubectl verifies the API server with the system roots (a cluster
// whose serving certificate is publicly trusted).
func KubeconfigYAML(clusterName, server, caPEM string, user string, certPEM, keyPEM []byte) ([]byte, error) {
	if err := x509CheckName("Kubernetes cluster name", clusterName); err != nil {
		return nil, err
	}
	if err := x509CheckName("Kubernetes user", user); err != nil {
		return nil, err
	}
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%w: Kubernetes API server %q must be an https:// URL", access.ErrInvalid, server)
	}
	for _, p := range []struct {
		what, typ string
		data      []byte
	}{{"cluster CA", "CERTIFICATE", []byte(caPEM)}, {"client certificate", "CERTIFICATE", certPEM}, {"client key", "PRIVATE KEY", keyPEM}} {
		if p.what == "cluster CA" && caPEM == "" {
			continue
		}
		b, _ := pem.Decode(p.data)
		if b == nil || !strings.HasSuffix(b.Type, p.typ) {
			return nil, fmt.Errorf("%w: %s is not a PEM %s", access.ErrInvalid, p.what, p.typ)
		}
	}
	name := user + "@" + clusterName
	var cl kubeconfigCluster
	cl.Name = clusterName
	cl.Cluster.Server = server
	cl.Cluster.CertificateAuthorityData = []byte(caPEM)
	var us kubeconfigUser
	us.Name = name
	us.User.ClientCertificateData = certPEM
	us.User.ClientKeyData = keyPEM
	var ctx kubeconfigContext
	ctx.Name = name
	ctx.Context.Cluster = clusterName
	ctx.Context.User = name
	out, err := yaml.Marshal(kubeconfig{
		APIVersion:     "v1",
		Kind:           "Config",
		Clusters:       []kubeconfigCluster{cl},
		Users:          []kubeconfigUser{us},
		Contexts:       []kubeconfigContext{ctx},
		CurrentContext: name,
	})
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return out, nil
}
