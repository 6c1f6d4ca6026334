package ca

import (
	"bytes"
	"crypto"
	//lint:ignore SA1019 only to build a DSA public key that must be refused
	"crypto/dsa"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/internal/sshdtest"
)

// ---- unit tests -----------------------------------------------------------

func sshTestEd25519(t testing.TB) (ed25519.PrivateKey, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return priv, sp
}

func sshTestValidity(d time.Duration) Validity {
	now := time.Now()
	return Validity{NotBefore: now.Add(-time.Minute), NotAfter: now.Add(d)}
}

func TestIssueSSHCertificateFields(t *testing.T) {
	caKey, caPub := sshTestEd25519(t)
	_, userPub := sshTestEd25519(t)
	nb := time.Date(2030, 1, 2, 3, 4, 5, 500_000_000, time.UTC)
	na := nb.Add(time.Hour)
	req := SSHCertRequest{
		PublicKey:             userPub,
		KeyID:                 "alice req-123",
		Principals:            []string{"root", "root@hosta"},
		Validity:              Validity{NotBefore: nb, NotAfter: na},
		PermitPTY:             true,
		PermitAgentForwarding: true,
	}
	cert, err := IssueSSH(caKey, req)
	if err != nil {
		t.Fatal(err)
	}
	if cert.CertType != ssh.UserCert {
		t.Errorf("cert type = %d, want user", cert.CertType)
	}
	if cert.KeyId != "alice req-123" {
		t.Errorf("key id = %q", cert.KeyId)
	}
	if !bytes.Equal(cert.Key.Marshal(), userPub.Marshal()) {
		t.Error("certified key is not the requested key")
	}
	if !bytes.Equal(cert.SignatureKey.Marshal(), caPub.Marshal()) {
		t.Error("signature key is not the CA key")
	}
	if got := strings.Join(cert.ValidPrincipals, ","); got != "root,root@hosta" {
		t.Errorf("principals = %q", got)
	}
	// Start rounded up, end rounded down: never wider than the grant.
	if cert.ValidAfter != uint64(nb.Unix()+1) || cert.ValidBefore != uint64(na.Unix()) {
		t.Errorf("window = %d..%d, want %d..%d", cert.ValidAfter, cert.ValidBefore, nb.Unix()+1, na.Unix())
	}
	if len(cert.CriticalOptions) != 0 {
		t.Errorf("critical options = %v, want none", cert.CriticalOptions)
	}
	wantExt := map[string]string{"permit-pty": "", "permit-agent-forwarding": ""}
	if fmt.Sprint(cert.Extensions) != fmt.Sprint(wantExt) {
		t.Errorf("extensions = %v, want %v", cert.Extensions, wantExt)
	}
	if cert.Serial == 0 {
		t.Error("serial is zero")
	}
	if cert.Signature.Format != ssh.KeyAlgoED25519 {
		t.Errorf("signature format = %q", cert.Signature.Format)
	}
	// The signature verifies the way sshd checks it.
	checker := ssh.CertChecker{
		IsUserAuthority: func(k ssh.PublicKey) bool { return bytes.Equal(k.Marshal(), caPub.Marshal()) },
		Clock:           func() time.Time { return nb.Add(time.Minute) },
	}
	if err := checker.CheckCert("root@hosta", cert); err != nil {
		t.Fatalf("CheckCert: %v", err)
	}
	if err := checker.CheckCert("admin", cert); err == nil {
		t.Fatal("CheckCert accepted a principal not in the certificate")
	}
	// Round-trips through the authorized_keys format clients write.
	parsed, _, _, _, err := ssh.ParseAuthorizedKey(ssh.MarshalAuthorizedKey(cert))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := parsed.(*ssh.Certificate); !ok {
		t.Fatalf("parsed %T, want *ssh.Certificate", parsed)
	}

	all, err := IssueSSH(caKey, SSHCertRequest{PublicKey: userPub, KeyID: "k", Principals: []string{"root"}, Validity: sshTestValidity(time.Hour),
		PermitPTY: true, PermitPortForwarding: true, PermitAgentForwarding: true, PermitX11Forwarding: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []string{"permit-pty", "permit-port-forwarding", "permit-agent-forwarding", "permit-X11-forwarding"} {
		if _, ok := all.Extensions[e]; !ok {
			t.Errorf("extension %s missing", e)
		}
	}
	none, err := IssueSSH(caKey, SSHCertRequest{PublicKey: userPub, KeyID: "k", Principals: []string{"root"}, Validity: sshTestValidity(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(none.Extensions) != 0 {
		t.Errorf("extensions without flags = %v", none.Extensions)
	}
}

func TestIssueSSHSerialsDiffer(t *testing.T) {
	caKey, _ := sshTestEd25519(t)
	_, userPub := sshTestEd25519(t)
	seen := map[uint64]bool{}
	for range 100 {
		c, err := IssueSSH(caKey, SSHCertRequest{PublicKey: userPub, KeyID: "k", Principals: []string{"root"}, Validity: sshTestValidity(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if seen[c.Serial] {
			t.Fatalf("serial %d repeated", c.Serial)
		}
		seen[c.Serial] = true
	}
}

func TestIssueSSHRSACASignsSHA512(t *testing.T) {
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, userPub := sshTestEd25519(t)
	cert, err := IssueSSH(caKey, SSHCertRequest{PublicKey: userPub, KeyID: "k", Principals: []string{"root"}, Validity: sshTestValidity(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if cert.Signature.Format != ssh.KeyAlgoRSASHA512 {
		t.Fatalf("signature format = %q, want %q", cert.Signature.Format, ssh.KeyAlgoRSASHA512)
	}
}

// sshSKEd25519Key builds a FIDO ed25519 public key from its wire format.
func sshSKEd25519Key(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	var b []byte
	for _, s := range [][]byte{[]byte(ssh.KeyAlgoSKED25519), pub, []byte("ssh:")} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	k, err := ssh.ParsePublicKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestCheckSSHPublicKey(t *testing.T) {
	newPub := func(k crypto.PublicKey) ssh.PublicKey {
		t.Helper()
		p, err := ssh.NewPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	ecKey := func(c elliptic.Curve) ssh.PublicKey {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return newPub(&k.PublicKey)
	}
	rsaKey := func(bits int) ssh.PublicKey {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		return newPub(&k.PublicKey)
	}
	_, ed := sshTestEd25519(t)
	caKey, _ := sshTestEd25519(t)
	certAsKey, err := IssueSSH(caKey, SSHCertRequest{PublicKey: ed, KeyID: "k", Principals: []string{"root"}, Validity: sshTestValidity(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	dsaKey := newPub(&dsa.PublicKey{Parameters: dsa.Parameters{P: big.NewInt(23), Q: big.NewInt(11), G: big.NewInt(4)}, Y: big.NewInt(8)})

	for _, tt := range []struct {
		name    string
		key     ssh.PublicKey
		ok      bool
		mention string
	}{
		{"ed25519", ed, true, ""},
		{"ecdsa p256", ecKey(elliptic.P256()), true, ""},
		{"ecdsa p384", ecKey(elliptic.P384()), true, ""},
		{"ecdsa p521", ecKey(elliptic.P521()), true, ""},
		{"rsa 2048", rsaKey(2048), true, ""},
		{"sk ed25519", sshSKEd25519Key(t), true, ""},
		{"rsa 1024", rsaKey(1024), false, "1024 bits"},
		{"dsa", dsaKey, false, "ssh-dss"},
		{"certificate", certAsKey, false, "certificate"},
		{"nil", nil, false, "missing"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckSSHPublicKey(tt.key)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, access.ErrInvalid) || !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("err = %v, want ErrInvalid mentioning %q", err, tt.mention)
			}
			// IssueSSH signs nothing for it.
			if c, err := IssueSSH(caKey, SSHCertRequest{PublicKey: tt.key, KeyID: "k", Principals: []string{"root"}, Validity: sshTestValidity(time.Hour)}); err == nil || c != nil {
				t.Fatalf("IssueSSH signed a refused key: %v", err)
			}
		})
	}
}

func TestIssueSSHRefusesBadRequests(t *testing.T) {
	caKey, _ := sshTestEd25519(t)
	_, userPub := sshTestEd25519(t)
	now := time.Now()
	good := func() SSHCertRequest {
		return SSHCertRequest{PublicKey: userPub, KeyID: "alice r1", Principals: []string{"root"}, Validity: Validity{now, now.Add(time.Hour)}}
	}
	tooMany := make([]string, access.MaxSSHPrincipals+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("root@h%d", i)
	}
	for _, tt := range []struct {
		name string
		mod  func(*SSHCertRequest)
	}{
		{"no principals", func(r *SSHCertRequest) { r.Principals = nil }},
		{"empty principal", func(r *SSHCertRequest) { r.Principals = []string{""} }},
		{"principal with comma", func(r *SSHCertRequest) { r.Principals = []string{"root,admin"} }},
		{"too many principals", func(r *SSHCertRequest) { r.Principals = tooMany }},
		{"no key id", func(r *SSHCertRequest) { r.KeyID = "" }},
		{"zero validity", func(r *SSHCertRequest) { r.Validity = Validity{} }},
		{"no end", func(r *SSHCertRequest) { r.Validity.NotAfter = time.Time{} }},
		{"inverted", func(r *SSHCertRequest) { r.Validity = Validity{now.Add(time.Hour), now} }},
		{"empty", func(r *SSHCertRequest) { r.Validity = Validity{now, now} }},
		{"under a second", func(r *SSHCertRequest) {
			s := now.Truncate(time.Second)
			r.Validity = Validity{s.Add(100 * time.Millisecond), s.Add(900 * time.Millisecond)}
		}},
		{"before 1970", func(r *SSHCertRequest) { r.Validity = Validity{time.Unix(-100, 0), now} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := good()
			tt.mod(&r)
			c, err := IssueSSH(caKey, r)
			if !errors.Is(err, access.ErrInvalid) || c != nil {
				t.Fatalf("IssueSSH = %v, %v; want nil, ErrInvalid", c, err)
			}
		})
	}
	if _, err := IssueSSH(caKey, good()); err != nil {
		t.Fatalf("good request: %v", err)
	}
	if _, err := IssueSSH(nil, good()); err == nil {
		t.Fatal("nil CA signer accepted")
	}
}

// ---- real OpenSSH sshd ----------------------------------------------------

// ---- real OpenSSH sshd (internal/sshdtest) ------------------------------

// sshStolenCertSigner presents a certificate it holds no private key for.
type sshStolenCertSigner struct {
	ssh.Signer
	cert *ssh.Certificate
}

func (s sshStolenCertSigner) PublicKey() ssh.PublicKey { return s.cert }

// sshRun logs in as login with the certificate and runs `echo ok`.
func sshRun(s *sshdtest.Server, login string, cert *ssh.Certificate, userKey crypto.Signer) (string, error) {
	us, err := ssh.NewSignerFromSigner(userKey)
	if err != nil {
		return "", err
	}
	cs, err := ssh.NewCertSigner(cert, us)
	if err != nil {
		return "", err
	}
	return sshRunWith(s, login, cs)
}

func sshRunWith(s *sshdtest.Server, login string, cs ssh.Signer) (string, error) {
	client, err := ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{
		User:            login,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(cs)},
		HostKeyCallback: ssh.FixedHostKey(s.HostKey),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		return "", err
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return "", err
	}
	defer sess.Close()
	out, err := sess.CombinedOutput("echo ok")
	return string(out), err
}

func sshMustLogIn(t *testing.T, s *sshdtest.Server, login string, cert *ssh.Certificate, userKey crypto.Signer) {
	t.Helper()
	out, err := sshRun(s, login, cert, userKey)
	if err != nil {
		t.Fatalf("login as %s with principals %q: %v", login, cert.ValidPrincipals, err)
	}
	if out != "ok\n" {
		t.Fatalf("login as %s: output %q, want %q", login, out, "ok\n")
	}
}

func sshMustBeRefused(t *testing.T, s *sshdtest.Server, login string, cert *ssh.Certificate, userKey crypto.Signer) {
	t.Helper()
	out, err := sshRun(s, login, cert, userKey)
	if err == nil {
		t.Fatalf("login as %s with principals %q was admitted (output %q)", login, cert.ValidPrincipals, out)
	}
	// Refused at authentication, not later (a nologin shell, a failed
	// command): the certificate itself was not accepted.
	if !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("login as %s: err = %v, want an authentication refusal", login, err)
	}
}

type sshTestUser struct {
	key ed25519.PrivateKey
	pub ssh.PublicKey
}

func newSSHTestUser(t *testing.T) sshTestUser {
	priv, pub := sshTestEd25519(t)
	return sshTestUser{priv, pub}
}

func sshIssue(t *testing.T, caKey crypto.Signer, u sshTestUser, principals []string, v Validity) *ssh.Certificate {
	t.Helper()
	cert, err := IssueSSH(caKey, SSHCertRequest{
		PublicKey: u.pub, KeyID: "alice req-1", Principals: principals, Validity: v, PermitPTY: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestSSHCertificateAgainstSSHD(t *testing.T) {
	granted, other := sshdtest.Logins(t)
	caKey, caPub := sshTestEd25519(t)
	srv := sshdtest.Start(t, []ssh.PublicKey{caPub}, nil)
	u := newSSHTestUser(t)

	// A wildcard role: bare login plus the host-scoped ones.
	principals, err := access.SSHPrincipals([]string{granted}, []string{"hosta"}, true)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("granted bare login runs a command", func(t *testing.T) {
		t.Parallel()
		sshMustLogIn(t, srv, granted, sshIssue(t, caKey, u, principals, sshTestValidity(time.Hour)), u.key)
	})
	t.Run("login not in principals is refused", func(t *testing.T) {
		t.Parallel()
		sshMustBeRefused(t, srv, other, sshIssue(t, caKey, u, principals, sshTestValidity(time.Hour)), u.key)
	})
	t.Run("host-scoped principal alone does not open a host without a principals file", func(t *testing.T) {
		t.Parallel()
		ps, err := access.SSHPrincipals([]string{granted}, []string{"hosta"}, false)
		if err != nil {
			t.Fatal(err)
		}
		sshMustBeRefused(t, srv, granted, sshIssue(t, caKey, u, ps, sshTestValidity(time.Hour)), u.key)
	})
	t.Run("certificate from another CA is refused", func(t *testing.T) {
		t.Parallel()
		otherCA, _ := sshTestEd25519(t)
		sshMustBeRefused(t, srv, granted, sshIssue(t, otherCA, u, principals, sshTestValidity(time.Hour)), u.key)
	})
	t.Run("stolen certificate without its private key is refused", func(t *testing.T) {
		t.Parallel()
		thief := newSSHTestUser(t)
		ts, err := ssh.NewSignerFromSigner(thief.key)
		if err != nil {
			t.Fatal(err)
		}
		// The thief presents a copy of u's certificate and signs with its
		// own key (ssh.NewCertSigner would refuse to pair them).
		stolen := sshStolenCertSigner{cert: sshIssue(t, caKey, u, principals, sshTestValidity(time.Hour)), Signer: ts}
		out, err := sshRunWith(srv, granted, stolen)
		if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
			t.Fatalf("stolen certificate: output %q, err = %v; want an authentication refusal", out, err)
		}
	})
	t.Run("expired certificate is refused", func(t *testing.T) {
		t.Parallel()
		v := sshTestValidity(3 * time.Second)
		cert := sshIssue(t, caKey, u, principals, v)
		sshMustLogIn(t, srv, granted, cert, u.key) // works while valid
		time.Sleep(time.Until(time.Unix(int64(cert.ValidBefore), 0)) + 1100*time.Millisecond)
		sshMustBeRefused(t, srv, granted, cert, u.key)
	})
	t.Run("not yet valid certificate is refused", func(t *testing.T) {
		t.Parallel()
		now := time.Now()
		cert := sshIssue(t, caKey, u, principals, Validity{now.Add(time.Hour), now.Add(2 * time.Hour)})
		sshMustBeRefused(t, srv, granted, cert, u.key)
	})
}

func TestSSHAuthorizedPrincipalsFileAgainstSSHD(t *testing.T) {
	granted, _ := sshdtest.Logins(t)
	caKey, caPub := sshTestEd25519(t)
	// hostb takes host-scoped principals only.
	hostb := sshdtest.Start(t, []ssh.PublicKey{caPub}, map[string]string{
		granted: access.AuthorizedPrincipals("hostb", granted),
	})
	u := newSSHTestUser(t)

	t.Run("grant for hostb is admitted", func(t *testing.T) {
		t.Parallel()
		ps, err := access.SSHPrincipals([]string{granted}, []string{"hostb"}, false)
		if err != nil {
			t.Fatal(err)
		}
		sshMustLogIn(t, hostb, granted, sshIssue(t, caKey, u, ps, sshTestValidity(time.Hour)), u.key)
	})
	t.Run("grant for hosta is refused", func(t *testing.T) {
		t.Parallel()
		ps, err := access.SSHPrincipals([]string{granted}, []string{"hosta"}, false)
		if err != nil {
			t.Fatal(err)
		}
		sshMustBeRefused(t, hostb, granted, sshIssue(t, caKey, u, ps, sshTestValidity(time.Hour)), u.key)
	})
	t.Run("bare login alone is refused", func(t *testing.T) {
		t.Parallel()
		sshMustBeRefused(t, hostb, granted, sshIssue(t, caKey, u, []string{granted}, sshTestValidity(time.Hour)), u.key)
	})
	t.Run("wildcard grant listing hostb is admitted", func(t *testing.T) {
		t.Parallel()
		ps, err := access.SSHPrincipals([]string{granted}, []string{"hosta", "hostb"}, true)
		if err != nil {
			t.Fatal(err)
		}
		sshMustLogIn(t, hostb, granted, sshIssue(t, caKey, u, ps, sshTestValidity(time.Hour)), u.key)
	})
}

func TestSSHOtherCAKeyTypesAgainstSSHD(t *testing.T) {
	granted, other := sshdtest.Logins(t)
	rsaCA, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		t.Fatal(err)
	}
	ecCA, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		ca      crypto.Signer
		sigAlgo string
	}{
		{"rsa-3072", rsaCA, ssh.KeyAlgoRSASHA512},
		{"ecdsa-p256", ecCA, ssh.KeyAlgoECDSA256},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			caSSH, err := ssh.NewSignerFromSigner(tt.ca)
			if err != nil {
				t.Fatal(err)
			}
			srv := sshdtest.Start(t, []ssh.PublicKey{caSSH.PublicKey()}, nil)
			// An ECDSA user key this time.
			uk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			up, err := ssh.NewPublicKey(&uk.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := IssueSSH(tt.ca, SSHCertRequest{PublicKey: up, KeyID: "alice req-2", Principals: []string{granted}, Validity: sshTestValidity(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			if cert.Signature.Format != tt.sigAlgo {
				t.Fatalf("signature format = %q, want %q", cert.Signature.Format, tt.sigAlgo)
			}
			sshMustLogIn(t, srv, granted, cert, uk)
			sshMustBeRefused(t, srv, other, cert, uk)
		})
	}
}

// ---- benchmarks -----------------------------------------------------------

func sshBenchRequest(b *testing.B) (ed25519.PrivateKey, SSHCertRequest) {
	caKey, _ := sshTestEd25519(b)
	_, userPub := sshTestEd25519(b)
	return caKey, SSHCertRequest{
		PublicKey: userPub, KeyID: "alice req-1", Principals: []string{"root", "root@hosta"},
		Validity: sshTestValidity(time.Hour), PermitPTY: true, PermitPortForwarding: true,
	}
}

func BenchmarkIssueSSH(b *testing.B) {
	caKey, req := sshBenchRequest(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := IssueSSH(caKey, req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIssueSSHECDSAP256(b *testing.B) {
	_, req := sshBenchRequest(b)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := IssueSSH(caKey, req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIssueSSHRSA3072(b *testing.B) {
	_, req := sshBenchRequest(b)
	caKey, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := IssueSSH(caKey, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEd25519Sign is the floor: one bare signature over a message the
// size of a certificate's signed part.
func BenchmarkEd25519Sign(b *testing.B) {
	caKey, req := sshBenchRequest(b)
	cert, err := IssueSSH(caKey, req)
	if err != nil {
		b.Fatal(err)
	}
	msg := cert.Marshal()
	b.ReportAllocs()
	for b.Loop() {
		_ = ed25519.Sign(caKey, msg)
	}
}

// BenchmarkSSHKeygenSign is what a shell-script CA does: one ssh-keygen -s
// per certificate, same CA type and public key as BenchmarkIssueSSH.
func BenchmarkSSHKeygenSign(b *testing.B) {
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		b.Fatalf("ssh-keygen not found: %s", sshdtest.InstallHint)
	}
	caKey, req := sshBenchRequest(b)
	dir := b.TempDir()
	block, err := ssh.MarshalPrivateKey(caKey, "")
	if err != nil {
		b.Fatal(err)
	}
	caPath := filepath.Join(dir, "ca")
	if err := os.WriteFile(caPath, pem.EncodeToMemory(block), 0o600); err != nil {
		b.Fatal(err)
	}
	userPath := filepath.Join(dir, "user.pub")
	if err := os.WriteFile(userPath, ssh.MarshalAuthorizedKey(req.PublicKey), 0o644); err != nil {
		b.Fatal(err)
	}
	sign := func() {
		cmd := exec.Command(keygen, "-q", "-s", caPath, "-I", "id", "-n", "root", "-V", "+1h", userPath)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("ssh-keygen -s: %v\n%s", err, out)
		}
	}
	sign()
	data, err := os.ReadFile(filepath.Join(dir, "user-cert.pub"))
	if err != nil {
		b.Fatal(err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		b.Fatal(err)
	}
	if c, ok := k.(*ssh.Certificate); !ok || c.ValidPrincipals[0] != "root" {
		b.Fatalf("ssh-keygen wrote %T", k)
	}
	for b.Loop() {
		sign()
	}
}
