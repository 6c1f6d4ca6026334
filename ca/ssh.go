package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"fmt"
	"unicode"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/access"
)

// RSA modulus bounds for SSH keys: below 2048 bits is breakable, above
// 16384 OpenSSH itself refuses (and verifying costs grow without need).
const (
	sshMinRSABits = 2048
	sshMaxRSABits = 16384
)

// OpenSSH certificate extension names.
const (
	SSHExtPermitPTY             = "permit-pty"
	SSHExtPermitPortForwarding  = "permit-port-forwarding"
	SSHExtPermitAgentForwarding = "permit-agent-forwarding"
	SSHExtPermitX11Forwarding   = "permit-X11-forwarding"
)

// SSHCertRequest is what IssueSSH signs: the client's public key, the
// principals computed from the grant (access.SSHPrincipals) and the window
// computed from it (access.CredentialTTL).
type SSHCertRequest struct {
	PublicKey ssh.PublicKey
	// KeyID names the certificate in sshd's logs and the audit log:
	// user + request id.
	KeyID      string
	Principals []string
	Validity   Validity

	PermitPTY             bool
	PermitPortForwarding  bool
	PermitAgentForwarding bool
	PermitX11Forwarding   bool
}

// CheckSSHPublicKey accepts the key types a user certificate may carry:
// ed25519, ECDSA on P-256/384/521, RSA of 2048 to 16384 bits, and their
// FIDO (sk-) variants. Anything else (DSA, short RSA, a certificate in
// place of a key) is access.ErrInvalid naming the type or size.
func CheckSSHPublicKey(pub ssh.PublicKey) error {
	if pub == nil {
		return fmt.Errorf("%w: SSH public key is missing", access.ErrInvalid)
	}
	switch t := pub.Type(); t {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256:
		return nil
	case ssh.KeyAlgoRSA:
		cpk, ok := pub.(ssh.CryptoPublicKey)
		if !ok {
			return fmt.Errorf("%w: SSH public key of type %s cannot be inspected", access.ErrInvalid, t)
		}
		rk, ok := cpk.CryptoPublicKey().(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%w: SSH public key of type %s is not an RSA key", access.ErrInvalid, t)
		}
		if bits := rk.N.BitLen(); bits < sshMinRSABits || bits > sshMaxRSABits {
			return fmt.Errorf("%w: SSH RSA key of %d bits: want %d to %d bits (or use ed25519)", access.ErrInvalid, bits, sshMinRSABits, sshMaxRSABits)
		}
		return nil
	case ssh.KeyAlgoDSA: //lint:ignore SA1019 named only to refuse it
		return fmt.Errorf("%w: SSH key type %s (DSA) is not accepted: use ed25519, ECDSA or RSA of at least %d bits", access.ErrInvalid, t, sshMinRSABits)
	default:
		if _, isCert := pub.(*ssh.Certificate); isCert {
			return fmt.Errorf("%w: SSH key of type %s is a certificate, not a public key", access.ErrInvalid, t)
		}
		return fmt.Errorf("%w: SSH key type %s is not accepted: use ed25519, ECDSA or RSA of at least %d bits", access.ErrInvalid, t, sshMinRSABits)
	}
}

// IssueSSH signs an OpenSSH user certificate for req with the CA key: a
// random non-zero 64-bit serial, ValidAfter/ValidBefore from req.Validity
// (truncated to whole seconds, never extended), the extensions of the
// Permit flags and no critical options. An RSA CA signs with rsa-sha2-512
// (OpenSSH no longer accepts ssh-rsa SHA-1 CA signatures); ed25519 and
// ECDSA CAs sign as they are.
//
// Nothing is signed when the key is weak (CheckSSHPublicKey), the key id
// or principals are missing, or the window is empty or inverted.
func IssueSSH(caSigner crypto.Signer, req SSHCertRequest) (*ssh.Certificate, error) {
	if caSigner == nil {
		return nil, fmt.Errorf("ssh ca: no signing key")
	}
	if err := CheckSSHPublicKey(req.PublicKey); err != nil {
		return nil, err
	}
	if req.KeyID == "" {
		return nil, fmt.Errorf("%w: SSH certificate key id is empty", access.ErrInvalid)
	}
	if len(req.Principals) == 0 {
		return nil, fmt.Errorf("%w: SSH certificate has no principals: the grant gives no login on any host", access.ErrInvalid)
	}
	if len(req.Principals) > access.MaxSSHPrincipals {
		return nil, fmt.Errorf("%w: %d SSH principals, more than %d: narrow the grant", access.ErrInvalid, len(req.Principals), access.MaxSSHPrincipals)
	}
	for _, p := range req.Principals {
		if err := checkSSHPrincipal(p); err != nil {
			return nil, err
		}
	}
	after, before, err := sshWindow(req.Validity)
	if err != nil {
		return nil, err
	}

	signer, err := sshCASigner(caSigner)
	if err != nil {
		return nil, err
	}
	serial, err := sshRandomSerial()
	if err != nil {
		return nil, err
	}

	ext := make(map[string]string, 4)
	if req.PermitPTY {
		ext[SSHExtPermitPTY] = ""
	}
	if req.PermitPortForwarding {
		ext[SSHExtPermitPortForwarding] = ""
	}
	if req.PermitAgentForwarding {
		ext[SSHExtPermitAgentForwarding] = ""
	}
	if req.PermitX11Forwarding {
		ext[SSHExtPermitX11Forwarding] = ""
	}
	cert := &ssh.Certificate{
		Key:             req.PublicKey,
		Serial:          serial,
		CertType:        ssh.UserCert,
		KeyId:           req.KeyID,
		ValidPrincipals: append([]string(nil), req.Principals...),
		ValidAfter:      after,
		ValidBefore:     before,
		Permissions:     ssh.Permissions{Extensions: ext},
	}
	if err := cert.SignCert(rand.Reader, signer); err != nil {
		return nil, fmt.Errorf("ssh ca: sign certificate: %w", err)
	}
	return cert, nil
}

// sshWindow converts a Validity to OpenSSH's whole-second bounds. The start
// rounds up and the end rounds down, so the certificate never covers more
// than the grant.
func sshWindow(v Validity) (after, before uint64, err error) {
	if v.NotBefore.IsZero() || v.NotAfter.IsZero() {
		return 0, 0, fmt.Errorf("%w: SSH certificate validity is missing a bound", access.ErrInvalid)
	}
	nb, na := v.NotBefore.Unix(), v.NotAfter.Unix()
	if v.NotBefore.Nanosecond() != 0 {
		nb++
	}
	if nb < 0 {
		return 0, 0, fmt.Errorf("%w: SSH certificate validity starts before 1970", access.ErrInvalid)
	}
	if na <= nb {
		return 0, 0, fmt.Errorf("%w: SSH certificate validity %s to %s is empty or inverted", access.ErrInvalid,
			v.NotBefore.UTC().Format("2006-01-02T15:04:05.999Z"), v.NotAfter.UTC().Format("2006-01-02T15:04:05.999Z"))
	}
	return uint64(nb), uint64(na), nil
}

// sshCASigner wraps the CA key as an ssh.Signer, pinning RSA to SHA-512.
func sshCASigner(caSigner crypto.Signer) (ssh.Signer, error) {
	s, err := ssh.NewSignerFromSigner(caSigner)
	if err != nil {
		return nil, fmt.Errorf("ssh ca: unsupported CA key: %w", err)
	}
	switch t := s.PublicKey().Type(); t {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
		return s, nil
	case ssh.KeyAlgoRSA:
		as, ok := s.(ssh.AlgorithmSigner)
		if !ok {
			return nil, fmt.Errorf("ssh ca: RSA CA key cannot choose its signature algorithm")
		}
		return ssh.NewSignerWithAlgorithms(as, []string{ssh.KeyAlgoRSASHA512})
	default:
		return nil, fmt.Errorf("ssh ca: CA key type %s is not supported: use ed25519, ECDSA or RSA", t)
	}
}

// sshRandomSerial returns a random non-zero serial: SSH serials are 64-bit,
// and OpenSSH key revocation lists cannot name serial zero.
func sshRandomSerial() (uint64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("ssh ca: serial: %w", err)
		}
		if s := binary.BigEndian.Uint64(b[:]); s != 0 {
			return s, nil
		}
	}
}

// checkSSHPrincipal refuses principals that cannot round-trip through an
// AuthorizedPrincipalsFile line or ssh-keygen's comma-separated list.
func checkSSHPrincipal(p string) error {
	if p == "" {
		return fmt.Errorf("%w: empty SSH principal", access.ErrInvalid)
	}
	for _, r := range p {
		if r == ',' || unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("%w: SSH principal %q: must not contain ',', white space or control characters", access.ErrInvalid, p)
		}
	}
	return nil
}
