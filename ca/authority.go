package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/access"
)

// Authority issues credentials with the keys the Manager keeps: the
// adapter behind access.CredentialIssuer.
type Authority struct {
	keys          *Manager
	forbiddenKube []string
	crls          crlCache // see CRL
}

var _ access.CredentialIssuer = (*Authority)(nil)

// AuthorityOption configures an Authority.
type AuthorityOption func(*Authority)

// WithForbiddenKubeGroups refuses Kubernetes certificates carrying any of
// groups, besides system:masters, which is always refused.
func WithForbiddenKubeGroups(groups ...string) AuthorityOption {
	return func(a *Authority) { a.forbiddenKube = append(a.forbiddenKube, groups...) }
}

// NewAuthority returns the issuer over m.
func NewAuthority(m *Manager, opts ...AuthorityOption) *Authority {
	a := &Authority{keys: m}
	for _, o := range opts {
		o(a)
	}
	return a
}

// IssueSSH signs an OpenSSH user certificate with the active ssh CA key,
// recording its end on the key first so a rotation never retires a key
// whose certificates are still valid.
func (a *Authority) IssueSSH(ctx context.Context, spec access.SSHCertSpec) (access.IssuedCredential, error) {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(spec.PublicKey)))
	if err != nil {
		return access.IssuedCredential{}, fmt.Errorf("%w: public_key: want an OpenSSH public key line: %v", access.ErrInvalid, err)
	}
	if err := CheckSSHPublicKey(pub); err != nil {
		return access.IssuedCredential{}, err
	}
	if _, err := a.keys.Ensure(ctx, access.CATypeSSH, ""); err != nil {
		return access.IssuedCredential{}, fmt.Errorf("ssh CA: %w", err)
	}
	signer, _, err := a.keys.SignerUntil(ctx, access.CATypeSSH, "", spec.NotAfter)
	if err != nil {
		return access.IssuedCredential{}, fmt.Errorf("ssh CA: %w", err)
	}
	cert, err := IssueSSH(signer, SSHCertRequest{
		PublicKey: pub, KeyID: spec.KeyID, Principals: spec.Principals,
		Validity:  Validity{NotBefore: spec.NotBefore, NotAfter: spec.NotAfter},
		PermitPTY: spec.PermitPTY, PermitPortForwarding: spec.PortForwarding, PermitAgentForwarding: spec.AgentForwarding,
	})
	if err != nil {
		return access.IssuedCredential{}, err
	}
	return access.IssuedCredential{
		Kind:        access.CredentialSSH,
		Certificate: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert))),
		Serial:      strconv.FormatUint(cert.Serial, 10),
		KeyID:       cert.KeyId,
		Principals:  cert.ValidPrincipals,
		NotBefore:   unixTime(cert.ValidAfter),
		NotAfter:    unixTime(cert.ValidBefore),
	}, nil
}

// ExportSSH returns the TrustedUserCAKeys lines: every key targets must
// trust now (published, active, and retiring ones still in use).
func (a *Authority) ExportSSH(ctx context.Context) (string, error) {
	return a.ExportCA(ctx, access.CATypeSSH, "")
}

// ExportCA returns what targets of a CA must trust, creating the CA when
// absent (callers check that the resource exists first): TrustedUserCAKeys
// lines for ssh, the PEM bundle of the CA certificates for db, kube and
// desktop, the JWKS for app.
func (a *Authority) ExportCA(ctx context.Context, typ, resource string) (string, error) {
	if err := CheckCA(typ, resource); err != nil {
		return "", err
	}
	if _, err := a.keys.Ensure(ctx, typ, resource); err != nil {
		return "", err
	}
	keys, err := a.keys.Trusted(ctx, typ, resource)
	if err != nil {
		return "", err
	}
	switch typ {
	case access.CATypeSSH:
		return ExportSSH(keys), nil
	case access.CATypeApp:
		b, err := jwksOf(keys)
		return string(b), err
	}
	return ExportPEM(keys), nil
}

// AppKeyID is the JWT kid of an app CA key version.
func AppKeyID(version int) string { return "gatehouse-app-v" + strconv.Itoa(version) }

// jwksOf renders app CA keys as a JWKS, kid = AppKeyID(version).
func jwksOf(keys []access.CAKey) ([]byte, error) {
	m := make(map[string]*ecdsa.PublicKey, len(keys))
	for _, k := range keys {
		b, _ := pem.Decode([]byte(k.Public))
		if b == nil {
			return nil, fmt.Errorf("app CA key v%d: public key is not PEM", k.Version)
		}
		pub, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("app CA key v%d: %w", k.Version, err)
		}
		ec, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("app CA key v%d: %T is not an ECDSA key", k.Version, pub)
		}
		m[AppKeyID(k.Version)] = ec
	}
	return JWKS(m)
}

// x509Signer ensures a per-resource X.509 CA and returns its active key,
// noted as signing until notAfter, with the key's CA certificate and
// version and the bundle targets trust.
func (a *Authority) x509Signer(ctx context.Context, typ, resource string, notAfter time.Time) (signer crypto.Signer, cert *x509.Certificate, version int, bundle string, err error) {
	if _, err := a.keys.Ensure(ctx, typ, resource); err != nil {
		return nil, nil, 0, "", fmt.Errorf("%s: %w", caName(typ, resource), err)
	}
	signer, key, err := a.keys.SignerUntil(ctx, typ, resource, notAfter)
	if err != nil {
		return nil, nil, 0, "", fmt.Errorf("%s: %w", caName(typ, resource), err)
	}
	cert, err = KeyCertificate(key)
	if err != nil {
		return nil, nil, 0, "", fmt.Errorf("%s: %w", caName(typ, resource), err)
	}
	trusted, err := a.keys.Trusted(ctx, typ, resource)
	if err != nil {
		return nil, nil, 0, "", fmt.Errorf("%s: %w", caName(typ, resource), err)
	}
	return signer, cert, key.Version, ExportPEM(trusted), nil
}

// x509Issued describes a signed leaf certificate.
func x509Issued(kind, resource string, certPEM []byte, caPEM string) (access.IssuedCredential, error) {
	b, _ := pem.Decode(certPEM)
	if b == nil {
		return access.IssuedCredential{}, fmt.Errorf("%s certificate: not PEM", kind)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return access.IssuedCredential{}, fmt.Errorf("%s certificate: %w", kind, err)
	}
	return access.IssuedCredential{
		Kind:        kind,
		Certificate: string(certPEM),
		CAPEM:       caPEM,
		Serial:      c.SerialNumber.Text(16),
		NotBefore:   c.NotBefore.UTC(),
		NotAfter:    c.NotAfter.UTC(),
		Resource:    resource,
		Subject:     c.Subject.CommonName,
	}, nil
}

// IssueDB signs a database client certificate (subject exactly
// CN=dbUser) for the CSR's key with the database's own CA.
func (a *Authority) IssueDB(ctx context.Context, database string, csrPEM []byte, dbUser string, notBefore, notAfter time.Time) (access.IssuedCredential, error) {
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		return access.IssuedCredential{}, err
	}
	if err := CheckCA(access.CATypeDB, database); err != nil {
		return access.IssuedCredential{}, err
	}
	signer, caCert, _, bundle, err := a.x509Signer(ctx, access.CATypeDB, database, notAfter)
	if err != nil {
		return access.IssuedCredential{}, err
	}
	certPEM, err := IssueDBCert(signer, caCert, csr.PublicKey, dbUser, Validity{NotBefore: notBefore, NotAfter: notAfter})
	if err != nil {
		return access.IssuedCredential{}, err
	}
	return x509Issued(access.CredentialDB, database, certPEM, bundle)
}

// IssueKube signs a Kubernetes client certificate (CN = user, O = groups)
// for the CSR's key with the cluster's own CA. system:masters and the
// configured forbidden groups are refused (ErrForbidden).
func (a *Authority) IssueKube(ctx context.Context, cluster string, csrPEM []byte, user string, groups []string, notBefore, notAfter time.Time) (access.IssuedCredential, error) {
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		return access.IssuedCredential{}, err
	}
	if err := CheckCA(access.CATypeKube, cluster); err != nil {
		return access.IssuedCredential{}, err
	}
	// Refuse before touching the CA, so a refused group never marks the
	// key as having signed.
	for _, g := range groups {
		if g == KubeSystemMasters || slices.Contains(a.forbiddenKube, g) {
			return access.IssuedCredential{}, fmt.Errorf("%w: Kubernetes group %q bypasses RBAC and is never issued", access.ErrForbidden, g)
		}
	}
	signer, caCert, _, bundle, err := a.x509Signer(ctx, access.CATypeKube, cluster, notAfter)
	if err != nil {
		return access.IssuedCredential{}, err
	}
	certPEM, err := IssueKubeCert(signer, caCert, csr.PublicKey, user, groups, a.forbiddenKube, Validity{NotBefore: notBefore, NotAfter: notAfter})
	if err != nil {
		return access.IssuedCredential{}, err
	}
	cred, err := x509Issued(access.CredentialKube, cluster, certPEM, bundle)
	if err != nil {
		return access.IssuedCredential{}, err
	}
	cred.Groups = slices.Compact(slices.Sorted(slices.Values(groups)))
	return cred, nil
}

// IssueDesktop signs a Windows smartcard-logon certificate for the CSR's
// key with the Windows domain's own CA: CN = login, UPN login@domain,
// smartcard-logon and clientAuth EKUs, the SID extension when sid is set
// and the CRL distribution point crlURL(v), v being the version of the key
// that signs it, so the certificate names the CRL that key signs (see CRL;
// IssueDesktopCert).
func (a *Authority) IssueDesktop(ctx context.Context, domain string, csrPEM []byte, login, sid string, crlURL func(version int) string, notBefore, notAfter time.Time) (access.IssuedCredential, error) {
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		return access.IssuedCredential{}, err
	}
	if err := CheckCA(access.CATypeDesktop, domain); err != nil {
		return access.IssuedCredential{}, err
	}
	if crlURL == nil {
		return access.IssuedCredential{}, fmt.Errorf("%w: no CRL distribution point for the desktop certificate", access.ErrInvalid)
	}
	signer, caCert, version, bundle, err := a.x509Signer(ctx, access.CATypeDesktop, domain, notAfter)
	if err != nil {
		return access.IssuedCredential{}, err
	}
	certPEM, err := IssueDesktopCert(signer, caCert, csr.PublicKey, login, domain, sid, crlURL(version), Validity{NotBefore: notBefore, NotAfter: notAfter})
	if err != nil {
		return access.IssuedCredential{}, err
	}
	cred, err := x509Issued(access.CredentialDesktop, domain, certPEM, bundle)
	if err != nil {
		return access.IssuedCredential{}, err
	}
	cred.Principals = []string{login + "@" + domain}
	return cred, nil
}

// IssueApp signs an ES256 JWT for app with the active app key; KeyID is
// its kid (gatehouse-app-v<version>), Serial the jti.
func (a *Authority) IssueApp(ctx context.Context, app, issuer, subject string, roles []string, traits map[string][]string, notBefore, notAfter time.Time) (access.IssuedCredential, error) {
	if _, err := a.keys.Ensure(ctx, access.CATypeApp, ""); err != nil {
		return access.IssuedCredential{}, fmt.Errorf("app CA: %w", err)
	}
	signer, key, err := a.keys.SignerUntil(ctx, access.CATypeApp, "", notAfter)
	if err != nil {
		return access.IssuedCredential{}, fmt.Errorf("app CA: %w", err)
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return access.IssuedCredential{}, err
	}
	id := hex.EncodeToString(jti[:])
	kid := AppKeyID(key.Version)
	tok, err := IssueAppJWT(signer, kid, JWTClaims{Issuer: issuer, Subject: subject, Audience: app, Roles: roles, Traits: traits, ID: id},
		Validity{NotBefore: notBefore, NotAfter: notAfter})
	if err != nil {
		return access.IssuedCredential{}, err
	}
	return access.IssuedCredential{
		Kind: access.CredentialApp, Certificate: tok, Serial: id, KeyID: kid,
		NotBefore: notBefore.UTC().Truncate(time.Second), NotAfter: notAfter.UTC().Truncate(time.Second),
		Resource: app, Subject: subject,
	}, nil
}

func unixTime(s uint64) time.Time { return time.Unix(int64(s), 0).UTC() }
