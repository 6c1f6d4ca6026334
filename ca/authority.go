package ca

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/access"
)

// Authority issues credentials with the keys the Manager keeps: the
// adapter behind access.CredentialIssuer.
type Authority struct {
	keys *Manager
}

var _ access.CredentialIssuer = (*Authority)(nil)

// NewAuthority returns the issuer over m.
func NewAuthority(m *Manager) *Authority { return &Authority{keys: m} }

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
	if _, err := a.keys.Ensure(ctx, access.CATypeSSH, ""); err != nil {
		return "", err
	}
	keys, err := a.keys.Trusted(ctx, access.CATypeSSH, "")
	if err != nil {
		return "", err
	}
	return ExportSSH(keys), nil
}

func unixTime(s uint64) time.Time { return time.Unix(int64(s), 0).UTC() }
