package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

func keysCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// keysClock is a settable clock.
type keysClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *keysClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *keysClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func keysEnv(t testing.TB) (*store.Store, KEK, *keysClock, *Manager) {
	t.Helper()
	st := storetest.Embedded(t)
	kek := kekForTest(t)
	clk := &keysClock{t: time.Now().UTC().Truncate(time.Second)}
	return st, kek, clk, NewManager(st, kek, WithClock(clk.Now))
}

func keysNoErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestCAKeysEnsure(t *testing.T) {
	st, kek, clk, m := keysEnv(t)
	ctx := keysCtx(t)

	set, err := m.Ensure(ctx, access.CATypeSSH, "")
	keysNoErr(t, err)
	if len(set.Keys) != 1 || set.Revision == 0 {
		t.Fatalf("Ensure = %+v", set)
	}
	k := set.Keys[0]
	if k.Version != 1 || k.State != access.CAKeyActive || k.Algorithm != AlgEd25519 ||
		!strings.HasPrefix(k.Public, "ssh-ed25519 AAAA") || k.CertPEM != "" || !k.Created.Equal(clk.Now()) {
		t.Fatalf("ssh key = %+v", k)
	}
	again, err := m.Ensure(ctx, access.CATypeSSH, "")
	keysNoErr(t, err)
	if again.Revision != set.Revision || again.Keys[0].Public != k.Public {
		t.Fatal("second Ensure changed the set")
	}

	// Replicas racing to create the same CA agree on one key.
	const n = 8
	pubs := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := NewManager(st, kek) // another replica
			s, err := r.Ensure(ctx, access.CATypeDB, "orders")
			errs[i] = err
			if err == nil && len(s.Keys) == 1 {
				pubs[i] = s.Keys[0].Public
			}
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || pubs[i] == "" || pubs[i] != pubs[0] {
			t.Fatalf("replica %d: %v, public %q vs %q", i, errs[i], pubs[i], pubs[0])
		}
	}

	// X.509 CAs carry a self-signed CA certificate for their key.
	db, err := m.Ensure(ctx, access.CATypeDB, "orders")
	keysNoErr(t, err)
	dk := db.Keys[0]
	if dk.Algorithm != AlgECDSAP256 || !strings.HasPrefix(dk.Public, "-----BEGIN PUBLIC KEY-----") {
		t.Fatalf("db key = %+v", dk)
	}
	cert, err := KeyCertificate(dk)
	keysNoErr(t, err)
	if cert.Subject.CommonName != "Gatehouse db CA orders" || !cert.IsCA || !cert.BasicConstraintsValid ||
		cert.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign || cert.MaxPathLen != 0 || !cert.MaxPathLenZero {
		t.Fatalf("CA cert = %+v", cert)
	}
	if life := cert.NotAfter.Sub(cert.NotBefore); life < 9*365*24*time.Hour {
		t.Fatalf("CA cert lifetime %s", life)
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		t.Fatalf("not self-signed: %v", err)
	}
	if _, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Fatalf("CA cert key %T", cert.PublicKey)
	}
	for _, typ := range []string{access.CATypeKube, access.CATypeDesktop} {
		s, err := m.Ensure(ctx, typ, "prod")
		keysNoErr(t, err)
		c, err := KeyCertificate(s.Keys[0])
		keysNoErr(t, err)
		if c.Subject.CommonName != "Gatehouse "+typ+" CA prod" {
			t.Fatalf("%s CN = %q", typ, c.Subject.CommonName)
		}
	}
	app, err := m.Ensure(ctx, access.CATypeApp, "")
	keysNoErr(t, err)
	if app.Keys[0].Algorithm != AlgECDSAP256 || app.Keys[0].CertPEM != "" {
		t.Fatalf("app key = %+v", app.Keys[0])
	}

	// A CA per resource: each database has its own key.
	other, err := m.Ensure(ctx, access.CATypeDB, "billing")
	keysNoErr(t, err)
	if other.Keys[0].Public == dk.Public {
		t.Fatal("two databases share a CA key")
	}

	for _, c := range [][2]string{{"db", ""}, {"kube", ""}, {"desktop", ""}, {"ssh", "x"}, {"app", "x"}, {"tls", ""}, {"db", "a/b"}, {"", ""}} {
		if _, err := m.Ensure(ctx, c[0], c[1]); !errors.Is(err, access.ErrInvalid) {
			t.Errorf("Ensure(%q, %q): err = %v, want invalid", c[0], c[1], err)
		}
	}
}

func TestCAKeySigner(t *testing.T) {
	_, kek, _, m := keysEnv(t)
	ctx := keysCtx(t)
	msg := []byte("to be signed")

	// SSH: ed25519, and the SSH public key of the record verifies.
	_, err := m.Ensure(ctx, access.CATypeSSH, "")
	keysNoErr(t, err)
	s, k, err := m.Signer(ctx, access.CATypeSSH, "")
	keysNoErr(t, err)
	if k.Sealed != nil {
		t.Fatal("Signer returned the sealed key")
	}
	sshSigner, err := ssh.NewSignerFromSigner(s)
	keysNoErr(t, err)
	sig, err := sshSigner.Sign(rand.Reader, msg)
	keysNoErr(t, err)
	pub, err := KeySSHPublic(k)
	keysNoErr(t, err)
	keysNoErr(t, pub.Verify(msg, sig))

	// The sealed bytes do not contain the private key.
	set, err := m.st.GetCAKeys(ctx, access.CATypeSSH, "")
	keysNoErr(t, err)
	priv := s.(ed25519.PrivateKey)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	keysNoErr(t, err)
	sealed := set.Keys[0].Sealed
	if bytes.Contains(sealed, priv.Seed()) || bytes.Contains(sealed, der) || bytes.Contains(sealed, priv.Seed()[:8]) {
		t.Fatal("sealed record contains the private key")
	}
	plain, err := kek.Open(sealed, keyAAD(m.st.CAKeyPath("ssh", ""), "ssh", 1))
	keysNoErr(t, err)
	if !bytes.Equal(plain, der) {
		t.Fatal("sealed plaintext is not the PKCS#8 key")
	}

	// X.509: ECDSA, verifies with the CA certificate's key.
	_, err = m.Ensure(ctx, access.CATypeKube, "prod")
	keysNoErr(t, err)
	s, k, err = m.Signer(ctx, access.CATypeKube, "prod")
	keysNoErr(t, err)
	h := sha256.Sum256(msg)
	dsig, err := s.Sign(rand.Reader, h[:], crypto.SHA256)
	keysNoErr(t, err)
	cert, err := KeyCertificate(k)
	keysNoErr(t, err)
	if !ecdsa.VerifyASN1(cert.PublicKey.(*ecdsa.PublicKey), h[:], dsig) {
		t.Fatal("ECDSA signature does not verify with the CA certificate")
	}

	// Cached: the same signer comes back without decrypting.
	s2, _, err := m.Signer(ctx, access.CATypeKube, "prod")
	keysNoErr(t, err)
	if s2 != s {
		t.Fatal("signer not cached")
	}

	_, _, err = m.Signer(ctx, access.CATypeDB, "nope")
	if !errors.Is(err, access.ErrNotFound) {
		t.Fatalf("Signer of a missing CA: %v", err)
	}
}

func TestCAKeyWrongKEK(t *testing.T) {
	st, _, _, m := keysEnv(t)
	ctx := keysCtx(t)
	set, err := m.Ensure(ctx, access.CATypeSSH, "")
	keysNoErr(t, err)
	keysNoErr(t, m.Verify(ctx, access.CATypeSSH, ""))

	wrong := NewManager(st, kekForTest(t))
	err = wrong.Verify(ctx, access.CATypeSSH, "")
	if !errors.Is(err, ErrKEKMismatch) ||
		!strings.Contains(err.Error(), "key-encryption key does not open the stored CA keys (wrong GATEHOUSE_KEK or kek_file?)") {
		t.Fatalf("Verify with a wrong KEK: %v", err)
	}
	if _, _, err := wrong.Signer(ctx, access.CATypeSSH, ""); !errors.Is(err, ErrKEKMismatch) {
		t.Fatalf("Signer with a wrong KEK: %v", err)
	}
	if _, err := wrong.Ensure(ctx, access.CATypeSSH, ""); err != nil {
		t.Fatalf("Ensure with a wrong KEK: %v", err)
	}
	if _, err := wrong.Rotate(ctx, access.CATypeSSH, "", PhaseSwitch); err == nil {
		t.Fatal("switch with nothing published succeeded")
	}
	// Nothing was rewritten: the same record, and the right KEK still works.
	now, err := st.GetCAKeys(ctx, access.CATypeSSH, "")
	keysNoErr(t, err)
	if now.Revision != set.Revision || !bytes.Equal(now.Keys[0].Sealed, set.Keys[0].Sealed) {
		t.Fatal("a wrong KEK rewrote the CA keys")
	}
	keysNoErr(t, NewManager(st, m.kek).Verify(ctx, access.CATypeSSH, ""))

	// A key published by a replica with the wrong KEK is refused at switch.
	_, err = wrong.Rotate(ctx, access.CATypeSSH, "", PhasePublish)
	keysNoErr(t, err)
	if _, err := m.Rotate(ctx, access.CATypeSSH, "", PhaseSwitch); !errors.Is(err, ErrKEKMismatch) {
		t.Fatalf("switch to a key the KEK cannot open: %v", err)
	}
}

// TestCAKeyAADBinding moves sealed keys to another etcd key, CA type and
// version: none of them opens.
func TestCAKeyAADBinding(t *testing.T) {
	st, _, _, m := keysEnv(t)
	ctx := keysCtx(t)
	orders, err := m.Ensure(ctx, access.CATypeDB, "orders")
	keysNoErr(t, err)
	sshSet, err := m.Ensure(ctx, access.CATypeSSH, "")
	keysNoErr(t, err)

	fresh := func() *Manager { return NewManager(st, m.kek) } // no cache

	// Another resource of the same type (another etcd key).
	moved := access.CAKeySet{Type: access.CATypeDB, Resource: "billing", Keys: orders.Keys}
	_, err = st.PutCAKeys(ctx, moved)
	keysNoErr(t, err)
	if _, _, err := fresh().Signer(ctx, access.CATypeDB, "billing"); !errors.Is(err, ErrKEKMismatch) {
		t.Fatalf("key moved to another database: %v", err)
	}
	// Another type, same resource name.
	moved = access.CAKeySet{Type: access.CATypeKube, Resource: "orders", Keys: orders.Keys}
	_, err = st.PutCAKeys(ctx, moved)
	keysNoErr(t, err)
	if _, _, err := fresh().Signer(ctx, access.CATypeKube, "orders"); !errors.Is(err, ErrKEKMismatch) {
		t.Fatalf("key moved to another CA type: %v", err)
	}
	// Another version in place.
	bumped := orders
	bumped.Keys = []access.CAKey{orders.Keys[0]}
	bumped.Keys[0].Version = 2
	_, err = st.PutCAKeys(ctx, bumped)
	keysNoErr(t, err)
	if _, _, err := fresh().Signer(ctx, access.CATypeDB, "orders"); !errors.Is(err, ErrKEKMismatch) {
		t.Fatalf("key with another version: %v", err)
	}
	// The ssh key's AAD does not open under another type at its own path.
	if _, err := m.kek.Open(sshSet.Keys[0].Sealed, keyAAD(st.CAKeyPath("ssh", ""), "app", 1)); !errors.Is(err, ErrKEKMismatch) {
		t.Fatalf("ssh key opened as app: %v", err)
	}
	// A record whose public key was replaced (the sealed key kept) is refused.
	swapped := sshSet
	swapped.Keys = []access.CAKey{sshSet.Keys[0]}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	sp, _ := ssh.NewPublicKey(other)
	swapped.Keys[0].Public = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
	_, err = st.PutCAKeys(ctx, swapped)
	keysNoErr(t, err)
	if _, _, err := fresh().Signer(ctx, access.CATypeSSH, ""); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("public key swapped: %v", err)
	}
}

// keysSSHCert signs a user certificate with the CA's current key.
func keysSSHCert(t *testing.T, m *Manager, clk *keysClock, life time.Duration) *ssh.Certificate {
	t.Helper()
	ctx := keysCtx(t)
	notAfter := clk.Now().Add(life)
	s, k, err := m.SignerUntil(ctx, access.CATypeSSH, "", notAfter)
	keysNoErr(t, err)
	userPub, _, _ := ed25519.GenerateKey(rand.Reader)
	up, _ := ssh.NewPublicKey(userPub)
	cert := &ssh.Certificate{
		Key: up, CertType: ssh.UserCert, KeyId: "alice", ValidPrincipals: []string{"root@web1"},
		ValidAfter: uint64(clk.Now().Add(-time.Minute).Unix()), ValidBefore: uint64(notAfter.Unix()),
	}
	sig, err := ssh.NewSignerFromSigner(s)
	keysNoErr(t, err)
	keysNoErr(t, cert.SignCert(rand.Reader, sig))
	if !bytes.Equal(cert.SignatureKey.Marshal(), mustSSHPub(t, k).Marshal()) {
		t.Fatal("signed by another key than returned")
	}
	return cert
}

func mustSSHPub(t *testing.T, k access.CAKey) ssh.PublicKey {
	t.Helper()
	p, err := KeySSHPublic(k)
	keysNoErr(t, err)
	return p
}

// keysSSHAccepts is what sshd with TrustedUserCAKeys = export does.
func keysSSHAccepts(t *testing.T, export string, cert *ssh.Certificate, clk *keysClock) bool {
	t.Helper()
	var cas []ssh.PublicKey
	rest := []byte(export)
	for len(bytes.TrimSpace(rest)) > 0 {
		pk, comment, _, r, err := ssh.ParseAuthorizedKey(rest)
		keysNoErr(t, err)
		if !strings.HasPrefix(comment, "gatehouse-ssh-ca-v") {
			t.Fatalf("export comment %q", comment)
		}
		cas = append(cas, pk)
		rest = r
	}
	checker := &ssh.CertChecker{
		Clock: clk.Now,
		IsUserAuthority: func(auth ssh.PublicKey) bool {
			for _, ca := range cas {
				if bytes.Equal(ca.Marshal(), auth.Marshal()) {
					return true
				}
			}
			return false
		},
	}
	_, err := checker.Authenticate(keysConnMeta{"root@web1"}, cert)
	return err == nil
}

type keysConnMeta struct{ user string }

func (c keysConnMeta) User() string        { return c.user }
func (keysConnMeta) SessionID() []byte     { return nil }
func (keysConnMeta) ClientVersion() []byte { return nil }
func (keysConnMeta) ServerVersion() []byte { return nil }
func (keysConnMeta) RemoteAddr() net.Addr  { return nil }
func (keysConnMeta) LocalAddr() net.Addr   { return nil }

func keysStates(set access.CAKeySet) string {
	var b []string
	for _, k := range set.Keys {
		b = append(b, "v"+big.NewInt(int64(k.Version)).String()+"="+k.State)
	}
	return strings.Join(b, " ")
}

func TestRotateSSH(t *testing.T) {
	_, _, clk, m := keysEnv(t)
	ctx := keysCtx(t)
	_, err := m.Ensure(ctx, access.CATypeSSH, "")
	keysNoErr(t, err)
	export := func() string {
		keys, err := m.Trusted(ctx, access.CATypeSSH, "")
		keysNoErr(t, err)
		for _, k := range keys {
			if k.Sealed != nil {
				t.Fatal("Trusted returned sealed keys")
			}
		}
		return ExportSSH(keys)
	}

	old := keysSSHCert(t, m, clk, 2*time.Hour)
	before := export()
	if strings.Count(before, "\n") != 1 || !strings.HasSuffix(before, " gatehouse-ssh-ca-v1\n") || !keysSSHAccepts(t, before, old, clk) {
		t.Fatalf("export before rotation: %q", before)
	}

	if _, err := m.Rotate(ctx, access.CATypeSSH, "", PhaseSwitch); !errors.Is(err, access.ErrConflict) || !strings.Contains(err.Error(), "publish first") {
		t.Fatalf("switch before publish: %v", err)
	}
	if _, err := m.Rotate(ctx, access.CATypeSSH, "", PhaseRetire); !errors.Is(err, access.ErrConflict) {
		t.Fatalf("retire before switch: %v", err)
	}
	if _, err := m.Rotate(ctx, access.CATypeSSH, "", "later"); !errors.Is(err, access.ErrInvalid) {
		t.Fatalf("unknown phase: %v", err)
	}

	// publish: v2 is trusted beside v1, v1 still signs.
	set, err := m.Rotate(ctx, access.CATypeSSH, "", PhasePublish)
	keysNoErr(t, err)
	if got := keysStates(set); got != "v1=active v2=published" {
		t.Fatalf("after publish: %s", got)
	}
	if _, err := m.Rotate(ctx, access.CATypeSSH, "", PhasePublish); !errors.Is(err, access.ErrConflict) || !strings.Contains(err.Error(), "already published") {
		t.Fatalf("second publish: %v", err)
	}
	published := export() // what targets are given after publish
	if strings.Count(published, "\n") != 2 || !strings.Contains(published, "gatehouse-ssh-ca-v2") {
		t.Fatalf("export after publish: %q", published)
	}
	if _, k, _ := m.Signer(ctx, access.CATypeSSH, ""); k.Version != 1 {
		t.Fatalf("signing with v%d before switch", k.Version)
	}
	if !keysSSHAccepts(t, published, old, clk) {
		t.Fatal("published export refuses the old credential")
	}

	// switch: v2 signs; targets that took the publish export accept both.
	clk.Add(10 * time.Minute)
	set, err = m.Rotate(ctx, access.CATypeSSH, "", PhaseSwitch)
	keysNoErr(t, err)
	if got := keysStates(set); got != "v1=retiring v2=active" {
		t.Fatalf("after switch: %s", got)
	}
	fresh := keysSSHCert(t, m, clk, time.Hour)
	switched := export()
	for name, exp := range map[string]string{"publish": published, "switch": switched} {
		if !keysSSHAccepts(t, exp, old, clk) || !keysSSHAccepts(t, exp, fresh, clk) {
			t.Fatalf("export at %s does not accept both credentials: %q", name, exp)
		}
	}
	if keysSSHAccepts(t, before, fresh, clk) {
		t.Fatal("test broken: the pre-rotation export accepts the new key")
	}

	// retire: refused while the old key's credentials live.
	_, retireErr := m.Rotate(ctx, access.CATypeSSH, "", PhaseRetire)
	if !errors.Is(retireErr, access.ErrConflict) || !strings.Contains(retireErr.Error(), "cannot retire yet") || !strings.Contains(retireErr.Error(), "key v1") {
		t.Fatalf("early retire: %v", retireErr)
	}
	cur, err := m.st.GetCAKeys(ctx, access.CATypeSSH, "")
	keysNoErr(t, err)
	until := cur.Keys[0].SignedUntil
	if until.Before(time.Unix(int64(old.ValidBefore), 0)) || !strings.Contains(retireErr.Error(), until.Format(time.RFC3339)) {
		t.Fatalf("SignedUntil %s vs old cert end %d; err %v", until, old.ValidBefore, retireErr)
	}

	// Past the old credentials' end: the old key leaves the export and can be retired.
	clk.Add(2*time.Hour + time.Minute)
	if late := export(); strings.Contains(late, "gatehouse-ssh-ca-v1") {
		t.Fatalf("expired retiring key still exported: %q", late)
	}
	set, err = m.Rotate(ctx, access.CATypeSSH, "", PhaseRetire)
	keysNoErr(t, err)
	if got := keysStates(set); got != "v2=active" {
		t.Fatalf("after retire: %s", got)
	}
	final := export()
	if strings.Count(final, "\n") != 1 || !strings.Contains(final, "gatehouse-ssh-ca-v2") {
		t.Fatalf("export after retire: %q", final)
	}

	// Next rotation numbers on.
	set, err = m.Rotate(ctx, access.CATypeSSH, "", PhasePublish)
	keysNoErr(t, err)
	if got := keysStates(set); got != "v2=active v3=published" {
		t.Fatalf("second rotation: %s", got)
	}
}

func TestRotateX509(t *testing.T) {
	_, _, clk, m := keysEnv(t)
	ctx := keysCtx(t)
	const typ, res = access.CATypeDB, "orders"
	_, err := m.Ensure(ctx, typ, res)
	keysNoErr(t, err)

	leaf := func(life time.Duration) *x509.Certificate {
		notAfter := clk.Now().Add(life)
		s, k, err := m.SignerUntil(ctx, typ, res, notAfter)
		keysNoErr(t, err)
		caCert, err := KeyCertificate(k)
		keysNoErr(t, err)
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		serial, _ := caCertSerial()
		tmpl := &x509.Certificate{
			SerialNumber: serial, Subject: pkix.Name{CommonName: "alice"},
			NotBefore: clk.Now().Add(-time.Minute), NotAfter: notAfter,
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, s)
		keysNoErr(t, err)
		c, err := x509.ParseCertificate(der)
		keysNoErr(t, err)
		return c
	}
	accepts := func(bundle string, c *x509.Certificate) bool {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(bundle)) {
			t.Fatalf("bad bundle %q", bundle)
		}
		_, err := c.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: clk.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		return err == nil
	}
	export := func() string {
		keys, err := m.Trusted(ctx, typ, res)
		keysNoErr(t, err)
		return ExportPEM(keys)
	}

	old := leaf(time.Hour)
	if !accepts(export(), old) {
		t.Fatal("export refuses a fresh credential")
	}
	_, err = m.Rotate(ctx, typ, res, PhasePublish)
	keysNoErr(t, err)
	published := export()
	if strings.Count(published, "BEGIN CERTIFICATE") != 2 {
		t.Fatalf("bundle after publish: %q", published)
	}
	_, err = m.Rotate(ctx, typ, res, PhaseSwitch)
	keysNoErr(t, err)
	fresh := leaf(3 * time.Hour)
	if fresh.Issuer.String() == old.Issuer.String() {
		t.Fatalf("both CA keys have the issuer name %s", fresh.Issuer)
	}
	for _, b := range []string{published, export()} {
		if !accepts(b, old) || !accepts(b, fresh) {
			t.Fatal("overlap bundle does not accept both credentials")
		}
	}
	if _, err := m.Rotate(ctx, typ, res, PhaseRetire); !errors.Is(err, access.ErrConflict) {
		t.Fatalf("early retire: %v", err)
	}
	clk.Add(time.Hour + 2*time.Minute)
	_, err = m.Rotate(ctx, typ, res, PhaseRetire)
	keysNoErr(t, err)
	final := export()
	if strings.Count(final, "BEGIN CERTIFICATE") != 1 || !accepts(final, fresh) {
		t.Fatalf("bundle after retire: %q", final)
	}
}

func TestRotateConcurrent(t *testing.T) {
	st, kek, _, m := keysEnv(t)
	ctx := keysCtx(t)
	_, err := m.Ensure(ctx, access.CATypeApp, "")
	keysNoErr(t, err)
	const n = 6
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = NewManager(st, kek).Rotate(ctx, access.CATypeApp, "", PhasePublish)
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if !strings.Contains(err.Error(), "already published") {
			t.Fatalf("concurrent publish: %v", err)
		}
	}
	set, err := st.GetCAKeys(ctx, access.CATypeApp, "")
	keysNoErr(t, err)
	if ok != 1 || keysStates(set) != "v1=active v2=published" {
		t.Fatalf("%d publishes won; %s", ok, keysStates(set))
	}
}

func TestKeyNoteSigned(t *testing.T) {
	st, _, clk, m := keysEnv(t)
	ctx := keysCtx(t)
	set, err := m.Ensure(ctx, access.CATypeSSH, "")
	keysNoErr(t, err)
	end := clk.Now().Add(90 * time.Minute).Add(7 * time.Second)
	keysNoErr(t, m.NoteSigned(ctx, access.CATypeSSH, "", 1, end))
	cur, err := st.GetCAKeys(ctx, access.CATypeSSH, "")
	keysNoErr(t, err)
	got := cur.Keys[0].SignedUntil
	if got.Before(end) || got.Sub(end) > time.Minute || cur.Revision == set.Revision {
		t.Fatalf("SignedUntil = %s for %s", got, end)
	}
	// Earlier or equal ends write nothing.
	keysNoErr(t, m.NoteSigned(ctx, access.CATypeSSH, "", 1, end))
	keysNoErr(t, m.NoteSigned(ctx, access.CATypeSSH, "", 1, end.Add(-time.Hour)))
	again, err := st.GetCAKeys(ctx, access.CATypeSSH, "")
	keysNoErr(t, err)
	if again.Revision != cur.Revision {
		t.Fatal("NoteSigned wrote without raising SignedUntil")
	}
	if err := m.NoteSigned(ctx, access.CATypeSSH, "", 7, end); !errors.Is(err, access.ErrNotFound) {
		t.Fatalf("unknown version: %v", err)
	}

	// Concurrent issuances all land: SignedUntil ends at the latest.
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			if err := m.NoteSigned(ctx, access.CATypeSSH, "", 1, end.Add(time.Duration(i+1)*time.Hour)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	last, err := st.GetCAKeys(ctx, access.CATypeSSH, "")
	keysNoErr(t, err)
	if want := end.Add(10 * time.Hour); last.Keys[0].SignedUntil.Before(want) {
		t.Fatalf("SignedUntil = %s, want >= %s", last.Keys[0].SignedUntil, want)
	}
}

func TestKeyAlgorithms(t *testing.T) {
	st, kek, _, _ := keysEnv(t)
	ctx := keysCtx(t)
	m := NewManager(st, kek, WithAlgorithm(access.CATypeSSH, AlgECDSAP256))
	set, err := m.Ensure(ctx, access.CATypeSSH, "")
	keysNoErr(t, err)
	if set.Keys[0].Algorithm != AlgECDSAP256 || !strings.HasPrefix(set.Keys[0].Public, "ecdsa-sha2-nistp256 ") {
		t.Fatalf("ssh ecdsa key = %+v", set.Keys[0])
	}
	s, _, err := m.Signer(ctx, access.CATypeSSH, "")
	keysNoErr(t, err)
	if _, ok := s.(*ecdsa.PrivateKey); !ok {
		t.Fatalf("signer %T", s)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("ed25519 for app JWTs accepted")
		}
	}()
	NewManager(st, kek, WithAlgorithm(access.CATypeApp, AlgEd25519))
}

func BenchmarkSignerCached(b *testing.B) {
	_, _, _, m := keysEnv(b)
	ctx := keysCtx(b)
	if _, err := m.Ensure(ctx, access.CATypeSSH, ""); err != nil {
		b.Fatal(err)
	}
	if _, _, err := m.Signer(ctx, access.CATypeSSH, ""); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := m.Signer(ctx, access.CATypeSSH, ""); err != nil {
			b.Fatal(err)
		}
	}
}
