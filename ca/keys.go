package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/access"
)

// Key algorithms.
const (
	AlgEd25519   = "ed25519"
	AlgECDSAP256 = "ecdsa-p256"
	AlgRSA3072   = "rsa-3072"
)

// Rotation phases (accessctl ca rotate --phase).
const (
	PhasePublish = "publish"
	PhaseSwitch  = "switch"
	PhaseRetire  = "retire"
)

// CACertValidity is the lifetime of a self-signed CA certificate.
const CACertValidity = 10 * 365 * 24 * time.Hour

// casAttempts bounds the compare-and-swap retries of one operation.
const casAttempts = 8

// noteRound: SignedUntil is rounded up to it, so a burst of issuances with
// nearly the same end writes the set once instead of once each.
const noteRound = time.Minute

// CATypes lists the CA types in a stable order.
var CATypes = []string{access.CATypeSSH, access.CATypeDB, access.CATypeKube, access.CATypeDesktop, access.CATypeApp}

func defaultAlgorithm(typ string) string {
	if typ == access.CATypeSSH {
		return AlgEd25519
	}
	return AlgECDSAP256
}

// AlgorithmAllowed reports whether alg may be used for a new CA of typ.
func AlgorithmAllowed(typ, alg string) bool {
	switch typ {
	case access.CATypeSSH:
		return alg == AlgEd25519 || alg == AlgECDSAP256 || alg == AlgRSA3072
	case access.CATypeApp: // ES256 JWTs
		return alg == AlgECDSAP256
	default: // X.509
		return alg == AlgECDSAP256 || alg == AlgRSA3072
	}
}

// hasCert reports whether a CA type's keys carry a self-signed certificate.
func caHasCert(typ string) bool {
	return typ == access.CATypeDB || typ == access.CATypeKube || typ == access.CATypeDesktop
}

// CheckCA validates a CA type and resource: db, kube and desktop CAs exist
// per resource (database, cluster, Windows domain) and need one; ssh and
// app have a single CA and take none.
func CheckCA(typ, resource string) error {
	switch typ {
	case access.CATypeSSH, access.CATypeApp:
		if resource != "" {
			return fmt.Errorf("%w: the %s CA is not per resource; drop the resource %q", access.ErrInvalid, typ, resource)
		}
		return nil
	case access.CATypeDB, access.CATypeKube, access.CATypeDesktop:
		if resource == "" {
			return fmt.Errorf("%w: a %s CA belongs to one resource; name it (--resource NAME)", access.ErrInvalid, typ)
		}
		if strings.ContainsAny(resource, "/\x00") || strings.TrimSpace(resource) != resource {
			return fmt.Errorf("%w: CA resource %q: invalid name", access.ErrInvalid, resource)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown CA type %q (one of %s)", access.ErrInvalid, typ, strings.Join(CATypes, ", "))
}

func caName(typ, resource string) string {
	if resource == "" {
		return "CA " + typ
	}
	return "CA " + typ + "/" + resource
}

// Option configures a Manager.
type Option func(*Manager)

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(m *Manager) { m.now = now } }

// WithAlgorithm sets the algorithm of keys created from now on for a CA
// type (ssh: ed25519, ecdsa-p256 or rsa-3072; db, kube, desktop:
// ecdsa-p256 or rsa-3072; app: ecdsa-p256). Existing keys keep theirs; a
// rotation moves a CA to the new one. NewManager panics on a combination
// that is not allowed, as it is a programming or config-validation error.
func WithAlgorithm(typ, alg string) Option {
	return func(m *Manager) {
		if !AlgorithmAllowed(typ, alg) {
			panic(fmt.Sprintf("ca: algorithm %q not allowed for CA type %q", alg, typ))
		}
		m.algs[typ] = alg
	}
}

// Manager keeps the CA keys: it creates and rotates them in the store,
// sealed under the KEK, and hands issuers the active key as a
// crypto.Signer. Replicas share everything through the store; each write is
// a compare-and-swap, so concurrent replicas agree. Safe for concurrent use.
type Manager struct {
	st   access.CAKeyStore
	kek  KEK
	now  func() time.Time
	algs map[string]string

	mu    sync.RWMutex
	cache map[signerKey]crypto.Signer
}

// signerKey identifies an opened key. The public key is part of it so a
// store that was wiped and refilled cannot be served a stale signer.
type signerKey struct {
	path    string
	version int
	public  string
}

// NewManager returns a Manager over st, sealing with kek. During a KEK
// rotation kek carries the previous key too (KEK.WithPrevious): keys
// sealed under either open, new ones are sealed under the current one.
func NewManager(st access.CAKeyStore, kek KEK, opts ...Option) *Manager {
	m := &Manager{st: st, kek: kek, now: time.Now, algs: map[string]string{}, cache: map[signerKey]crypto.Signer{}}
	for _, o := range opts {
		o(m)
	}
	return m
}

func (m *Manager) algorithm(typ string) string {
	if a, ok := m.algs[typ]; ok {
		return a
	}
	return defaultAlgorithm(typ)
}

// Ensure returns the CA's key set, creating it with one active key when
// absent. Creation is create-if-absent in the store: replicas racing to
// create the same CA all return the one that won.
func (m *Manager) Ensure(ctx context.Context, typ, resource string, events ...access.AuditEvent) (access.CAKeySet, error) {
	if err := CheckCA(typ, resource); err != nil {
		return access.CAKeySet{}, err
	}
	set, err := m.st.GetCAKeys(ctx, typ, resource)
	if err == nil || !errors.Is(err, access.ErrNotFound) {
		return set, err
	}
	path := m.st.CAKeyPath(typ, resource)
	key, signer, err := m.newKey(path, typ, resource, 1, access.CAKeyActive)
	if err != nil {
		return access.CAKeySet{}, err
	}
	set = access.CAKeySet{Type: typ, Resource: resource, Keys: []access.CAKey{key}}
	created, err := m.st.PutCAKeys(ctx, set, events...)
	if errors.Is(err, access.ErrAlreadyExists) {
		return m.st.GetCAKeys(ctx, typ, resource)
	}
	if err != nil {
		return access.CAKeySet{}, err
	}
	m.remember(signerKey{path, key.Version, key.Public}, signer)
	return created, nil
}

// Signer returns the CA's active key, opened with the KEK, and its record.
// Opened keys are cached by (etcd key, version, public key), so signing
// reads the set from the store (from memory when the store is a
// store.CAKeyCache, as in accessd) but decrypts once per key. Issuers
// should prefer SignerUntil, which also records what the key signs.
func (m *Manager) Signer(ctx context.Context, typ, resource string) (crypto.Signer, access.CAKey, error) {
	if err := CheckCA(typ, resource); err != nil {
		return nil, access.CAKey{}, err
	}
	set, err := m.st.GetCAKeys(ctx, typ, resource)
	if err != nil {
		return nil, access.CAKey{}, err
	}
	i := keyIndex(set, func(k access.CAKey) bool { return k.State == access.CAKeyActive })
	if i < 0 {
		return nil, access.CAKey{}, fmt.Errorf("%s has no active key: %w", caName(typ, resource), access.ErrConflict)
	}
	k := set.Keys[i]
	s, err := m.open(m.st.CAKeyPath(typ, resource), typ, resource, k)
	if err != nil {
		return nil, access.CAKey{}, err
	}
	k.Sealed = nil
	return s, k, nil
}

// SignerUntil is Signer for a credential that will be valid until
// notAfter: before returning the key it raises the key's SignedUntil, in
// the same compare-and-swap that checks the key is still active, so a
// rotation can never retire it while that credential lives. Sign only
// after it returned.
func (m *Manager) SignerUntil(ctx context.Context, typ, resource string, notAfter time.Time) (crypto.Signer, access.CAKey, error) {
	for range casAttempts {
		s, k, err := m.Signer(ctx, typ, resource)
		if err != nil {
			return nil, access.CAKey{}, err
		}
		err = m.noteSigned(ctx, typ, resource, k.Version, notAfter, true)
		if err == nil {
			return s, k, nil
		}
		if !errors.Is(err, errNotActive) {
			return nil, access.CAKey{}, err
		}
		// A switch happened between the read and the note: use the new key.
	}
	return nil, access.CAKey{}, fmt.Errorf("%s: active key kept changing: %w", caName(typ, resource), access.ErrConflict)
}

func (m *Manager) remember(k signerKey, s crypto.Signer) {
	m.mu.Lock()
	m.cache[k] = s
	m.mu.Unlock()
}

// open decrypts a key record (or takes it from the cache) and checks it
// matches the record's public key and certificate.
func (m *Manager) open(path, typ, resource string, k access.CAKey) (crypto.Signer, error) {
	ck := signerKey{path, k.Version, k.Public}
	m.mu.RLock()
	s, ok := m.cache[ck]
	m.mu.RUnlock()
	if ok {
		return s, nil
	}
	what := fmt.Sprintf("%s key v%d", caName(typ, resource), k.Version)
	der, err := m.kek.Open(k.Sealed, keyAAD(path, typ, k.Version))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	clear(der)
	if err != nil {
		return nil, fmt.Errorf("%s: parse private key: %w", what, err)
	}
	s, ok = priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: %T is not a signing key", what, priv)
	}
	pub, err := caPublicString(typ, s.Public())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if pub != k.Public {
		return nil, fmt.Errorf("%s: the sealed private key does not match the record's public key", what)
	}
	if k.CertPEM != "" {
		cert, err := parseCACertPEM(k.CertPEM)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if certPub, err := caPublicString(typ, cert.PublicKey); err != nil || certPub != pub {
			return nil, fmt.Errorf("%s: the CA certificate is not for this key", what)
		}
	}
	m.remember(ck, s)
	return s, nil
}

// Verify opens every key of the CA with the KEK. accessd calls it at start
// (after Ensure), so a wrong GATEHOUSE_KEK or kek_file refuses to start
// with ErrKEKMismatch instead of failing at the first issuance; nothing is
// written either way.
func (m *Manager) Verify(ctx context.Context, typ, resource string) error {
	if err := CheckCA(typ, resource); err != nil {
		return err
	}
	set, err := m.st.GetCAKeys(ctx, typ, resource)
	if err != nil {
		return err
	}
	path := m.st.CAKeyPath(typ, resource)
	for _, k := range set.Keys {
		if _, err := m.open(path, typ, resource, k); err != nil {
			return err
		}
	}
	return nil
}

// Trusted returns the keys a target of the CA must trust, by version:
// published and active keys, and retiring keys while something they
// signed may still be valid (SignedUntil ahead of now, or unknown). Sealed
// is stripped: what Trusted returns may be shown or exported.
func (m *Manager) Trusted(ctx context.Context, typ, resource string) ([]access.CAKey, error) {
	if err := CheckCA(typ, resource); err != nil {
		return nil, err
	}
	set, err := m.st.GetCAKeys(ctx, typ, resource)
	if err != nil {
		return nil, err
	}
	return trustedKeys(set, m.now()), nil
}

func trustedKeys(set access.CAKeySet, now time.Time) []access.CAKey {
	var out []access.CAKey
	for _, k := range set.Keys {
		switch k.State {
		case access.CAKeyPublished, access.CAKeyActive:
		case access.CAKeyRetiring:
			if !k.SignedUntil.IsZero() && !k.SignedUntil.After(now) {
				continue
			}
		default:
			continue
		}
		k.Sealed = nil
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b access.CAKey) int { return a.Version - b.Version })
	return out
}

// Redact returns set without the sealed private keys, for API answers.
func Redact(set access.CAKeySet) access.CAKeySet {
	set.Keys = slices.Clone(set.Keys)
	for i := range set.Keys {
		set.Keys[i].Sealed = nil
	}
	return set
}

// Rotate moves the CA one phase through a rotation, in one compare-and-swap
// write (retried when another writer got in between):
//   - publish adds a new key, trusted but not yet signing; refused while a
//     key is already published.
//   - switch makes the published key active and the active one retiring.
//   - retire drops the retiring keys whose credentials have all expired
//     (SignedUntil passed); refused, naming when it becomes possible, while
//     none has.
//
// Between publish and switch, targets must pick up the new export.
func (m *Manager) Rotate(ctx context.Context, typ, resource, phase string, events ...access.AuditEvent) (access.CAKeySet, error) {
	if err := CheckCA(typ, resource); err != nil {
		return access.CAKeySet{}, err
	}
	name := caName(typ, resource)
	switch phase {
	case PhasePublish, PhaseSwitch, PhaseRetire:
	default:
		return access.CAKeySet{}, fmt.Errorf("%w: rotation phase %q: one of publish, switch, retire", access.ErrInvalid, phase)
	}
	path := m.st.CAKeyPath(typ, resource)
	for range casAttempts {
		set, err := m.st.GetCAKeys(ctx, typ, resource)
		if err != nil {
			return access.CAKeySet{}, err
		}
		next := set
		next.Keys = slices.Clone(set.Keys)
		var opened crypto.Signer
		var openedKey access.CAKey
		switch phase {
		case PhasePublish:
			if i := keyIndex(set, func(k access.CAKey) bool { return k.State == access.CAKeyPublished }); i >= 0 {
				return set, fmt.Errorf("%s: key v%d is already published; run --phase switch next: %w", name, set.Keys[i].Version, access.ErrConflict)
			}
			v := 0
			for _, k := range set.Keys {
				v = max(v, k.Version)
			}
			openedKey, opened, err = m.newKey(path, typ, resource, v+1, access.CAKeyPublished)
			if err != nil {
				return set, err
			}
			next.Keys = append(next.Keys, openedKey)
		case PhaseSwitch:
			p := keyIndex(set, func(k access.CAKey) bool { return k.State == access.CAKeyPublished })
			if p < 0 {
				return set, fmt.Errorf("%s: no published key to switch to; run --phase publish first: %w", name, access.ErrConflict)
			}
			// The new key must open before anything signs with it.
			if _, err := m.open(path, typ, resource, set.Keys[p]); err != nil {
				return set, err
			}
			for i := range next.Keys {
				if next.Keys[i].State == access.CAKeyActive {
					next.Keys[i].State = access.CAKeyRetiring
				}
			}
			next.Keys[p].State = access.CAKeyActive
		case PhaseRetire:
			now := m.now()
			var keep []access.CAKey
			var waiting []string
			dropped := 0
			for _, k := range set.Keys {
				if k.State != access.CAKeyRetiring {
					keep = append(keep, k)
					continue
				}
				if k.SignedUntil.After(now) {
					keep = append(keep, k)
					waiting = append(waiting, fmt.Sprintf("key v%d signed credentials valid until %s", k.Version, k.SignedUntil.UTC().Format(time.RFC3339)))
					continue
				}
				dropped++
			}
			if dropped == 0 {
				if len(waiting) == 0 {
					return set, fmt.Errorf("%s: no retiring key; run --phase switch first: %w", name, access.ErrConflict)
				}
				return set, fmt.Errorf("%s: cannot retire yet: %s; retire after that: %w", name, strings.Join(waiting, ", "), access.ErrConflict)
			}
			next.Keys = keep
		}
		out, err := m.st.PutCAKeys(ctx, next, events...)
		if errors.Is(err, access.ErrConflict) {
			continue
		}
		if err != nil {
			return set, err
		}
		if opened != nil {
			m.remember(signerKey{path, openedKey.Version, openedKey.Public}, opened)
		}
		if phase == PhaseRetire {
			m.forget(path, out)
		}
		return out, nil
	}
	return access.CAKeySet{}, fmt.Errorf("%s: rotate %s: the key set kept changing: %w", name, phase, access.ErrConflict)
}

// forget drops cached signers of path whose key left the set.
func (m *Manager) forget(path string, set access.CAKeySet) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for ck := range m.cache {
		if ck.path == path && keyIndex(set, func(k access.CAKey) bool { return k.Version == ck.version }) < 0 {
			delete(m.cache, ck)
		}
	}
}

var errNotActive = errors.New("key is no longer active")

// NoteSigned records that key version of the CA signed something valid
// until notAfter: SignedUntil is raised (rounded up to the minute, by
// compare-and-swap), so retire knows when that key's credentials are gone.
// Nothing is written when SignedUntil is already as late.
func (m *Manager) NoteSigned(ctx context.Context, typ, resource string, version int, notAfter time.Time) error {
	if err := CheckCA(typ, resource); err != nil {
		return err
	}
	return m.noteSigned(ctx, typ, resource, version, notAfter, false)
}

func (m *Manager) noteSigned(ctx context.Context, typ, resource string, version int, notAfter time.Time, mustBeActive bool) error {
	name := caName(typ, resource)
	if notAfter.IsZero() {
		return fmt.Errorf("%w: %s: note signed: no end time", access.ErrInvalid, name)
	}
	until := notAfter.UTC()
	if r := until.Truncate(noteRound); r.Before(until) {
		until = r.Add(noteRound)
	}
	for range casAttempts * 4 { // issuances contend on the same set
		set, err := m.st.GetCAKeys(ctx, typ, resource)
		if err != nil {
			return err
		}
		i := keyIndex(set, func(k access.CAKey) bool { return k.Version == version })
		if i < 0 {
			if mustBeActive {
				return errNotActive
			}
			return fmt.Errorf("%s key v%d: %w", name, version, access.ErrNotFound)
		}
		if mustBeActive && set.Keys[i].State != access.CAKeyActive {
			return errNotActive
		}
		if !set.Keys[i].SignedUntil.Before(notAfter) {
			return nil
		}
		set.Keys = slices.Clone(set.Keys)
		set.Keys[i].SignedUntil = until
		_, err = m.st.PutCAKeys(ctx, set)
		if errors.Is(err, access.ErrConflict) {
			continue
		}
		return err
	}
	return fmt.Errorf("%s key v%d: note signed: the key set kept changing: %w", name, version, access.ErrConflict)
}

func keyIndex(set access.CAKeySet, match func(access.CAKey) bool) int {
	return slices.IndexFunc(set.Keys, match)
}

// newKey generates a key pair for the CA, seals the private key bound to
// path, type and version, and for X.509 types self-signs a CA certificate.
func (m *Manager) newKey(path, typ, resource string, version int, state string) (access.CAKey, crypto.Signer, error) {
	alg := m.algorithm(typ)
	what := fmt.Sprintf("%s key v%d", caName(typ, resource), version)
	var signer crypto.Signer
	var err error
	switch alg {
	case AlgEd25519:
		_, signer, err = ed25519.GenerateKey(rand.Reader)
	case AlgECDSAP256:
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgRSA3072:
		signer, err = rsa.GenerateKey(rand.Reader, 3072)
	default:
		err = fmt.Errorf("unknown algorithm %q", alg)
	}
	if err != nil {
		return access.CAKey{}, nil, fmt.Errorf("%s: generate: %w", what, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(signer)
	if err != nil {
		return access.CAKey{}, nil, fmt.Errorf("%s: %w", what, err)
	}
	sealed, err := m.kek.Seal(der, keyAAD(path, typ, version))
	clear(der)
	if err != nil {
		return access.CAKey{}, nil, fmt.Errorf("%s: seal: %w", what, err)
	}
	pub, err := caPublicString(typ, signer.Public())
	if err != nil {
		return access.CAKey{}, nil, fmt.Errorf("%s: %w", what, err)
	}
	now := m.now().UTC()
	k := access.CAKey{Version: version, Algorithm: alg, State: state, Public: pub, Sealed: sealed, Created: now}
	if caHasCert(typ) {
		k.CertPEM, err = selfSignCA(signer, typ, resource, version, now)
		if err != nil {
			return access.CAKey{}, nil, fmt.Errorf("%s: %w", what, err)
		}
	}
	return k, signer, nil
}

// caCertSerial is a random positive serial of 127 bits.
func caCertSerial() (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	b[0] &= 0x7f // positive in DER without a padding byte
	b[15] |= 1   // never zero
	return new(big.Int).SetBytes(b), nil
}

// selfSign makes the CA certificate: CN "Gatehouse <type> CA <resource>",
// the version in the subject's serialNumber so each key of a rotation has
// its own issuer name, ten years, a CA that signs only end entities.
func selfSignCA(signer crypto.Signer, typ, resource string, version int, now time.Time) (string, error) {
	serial, err := caCertSerial()
	if err != nil {
		return "", err
	}
	name := pkix.Name{
		CommonName:   strings.TrimSpace(fmt.Sprintf("Gatehouse %s CA %s", typ, resource)),
		Organization: []string{"Gatehouse"},
		SerialNumber: strconv.Itoa(version),
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               name,
		Issuer:                name,
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(CACertValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		return "", fmt.Errorf("self-sign CA certificate: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), nil
}

// KeyCertificate parses a key's CA certificate (X.509 types).
func KeyCertificate(k access.CAKey) (*x509.Certificate, error) {
	if k.CertPEM == "" {
		return nil, fmt.Errorf("CA key v%d has no certificate", k.Version)
	}
	return parseCACertPEM(k.CertPEM)
}

func parseCACertPEM(s string) (*x509.Certificate, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("CA certificate: not a PEM certificate")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	return c, nil
}

// caPublicString is a key's Public: an authorized_keys line without comment
// for SSH, a PEM "PUBLIC KEY" (PKIX) otherwise.
func caPublicString(typ string, pub crypto.PublicKey) (string, error) {
	if typ == access.CATypeSSH {
		sp, err := ssh.NewPublicKey(pub)
		if err != nil {
			return "", fmt.Errorf("ssh public key: %w", err)
		}
		return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))), nil
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("public key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

// KeySSHPublic parses an SSH CA key's Public.
func KeySSHPublic(k access.CAKey) (ssh.PublicKey, error) {
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.Public))
	if err != nil {
		return nil, fmt.Errorf("CA key v%d: %w", k.Version, err)
	}
	return pk, nil
}

// ExportSSH renders keys as TrustedUserCAKeys lines, one per key,
// commented "gatehouse-ssh-ca-v<version>". Keys that are not SSH keys are
// skipped.
func ExportSSH(keys []access.CAKey) string {
	var b strings.Builder
	for _, k := range keys {
		pk, err := KeySSHPublic(k)
		if err != nil {
			continue
		}
		line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk)))
		fmt.Fprintf(&b, "%s gatehouse-ssh-ca-v%d\n", line, k.Version)
	}
	return b.String()
}

// ExportPEM renders the keys' CA certificates as one PEM bundle (ssl_ca_file,
// --client-ca-file, NTAuth import). Keys without a certificate are skipped.
func ExportPEM(keys []access.CAKey) string {
	var b strings.Builder
	for _, k := range keys {
		if k.CertPEM == "" {
			continue
		}
		b.WriteString(k.CertPEM)
		if !strings.HasSuffix(k.CertPEM, "\n") {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// resealAttempts bounds the compare-and-swap retries of re-sealing one key
// set: issuances noting SignedUntil contend on the same set.
const resealAttempts = casAttempts * 4

// resealSet returns set with every private key sealed under to (see
// reseal): resealed counts the keys that changed, already those that were
// under to. A key that neither KEK opens fails the set, naming the key.
func resealSet(path string, set access.CAKeySet, from, to KEK) (out access.CAKeySet, resealed, already int, err error) {
	out = set
	out.Keys = slices.Clone(set.Keys)
	for i, k := range out.Keys {
		sealed, changed, err := reseal(k.Sealed, keyAAD(path, set.Type, k.Version), from, to)
		if err != nil {
			return set, 0, 0, fmt.Errorf("%s key v%d: %w", caName(set.Type, set.Resource), k.Version, err)
		}
		if !changed {
			already++
			continue
		}
		out.Keys[i].Sealed = sealed
		resealed++
	}
	return out, resealed, already, nil
}

// ResealCAKeys re-seals the private keys of one CA under the KEK to, each
// opened with from (or found already under to, and left as it is), in one
// compare-and-swap write on the set's revision. A set that changed in
// between (an issuance noting SignedUntil, a rotation phase, another KEK
// rotation) is read and re-sealed again, so no write is lost. Nothing is
// written when every key is already under to, or when a key opens under
// neither KEK (ErrKEKMismatch naming the key and the KEKs). The additional
// data stays as it was: only the header naming the KEK changes.
func ResealCAKeys(ctx context.Context, st access.CAKeyStore, typ, resource string, from, to KEK) (resealed, already int, err error) {
	if err := CheckCA(typ, resource); err != nil {
		return 0, 0, err
	}
	set, err := st.GetCAKeys(ctx, typ, resource)
	if err != nil {
		return 0, 0, err
	}
	return resealCAKeys(ctx, st, set, from, to)
}

// resealCAKeys is ResealCAKeys starting from set as read (by a list): etcd
// is read again only when the write loses its compare.
func resealCAKeys(ctx context.Context, st access.CAKeyStore, set access.CAKeySet, from, to KEK) (resealed, already int, err error) {
	typ, resource := set.Type, set.Resource
	path := st.CAKeyPath(typ, resource)
	for range resealAttempts {
		next, resealed, already, err := resealSet(path, set, from, to)
		if err != nil || resealed == 0 {
			return 0, already, err
		}
		_, err = st.PutCAKeys(ctx, next)
		if errors.Is(err, access.ErrConflict) {
			if set, err = st.GetCAKeys(ctx, typ, resource); err != nil {
				return 0, 0, err
			}
			continue
		}
		if err != nil {
			return 0, 0, fmt.Errorf("%s: re-seal: %w", caName(typ, resource), err)
		}
		return resealed, already, nil
	}
	return 0, 0, fmt.Errorf("%s: re-seal: the key set kept changing: %w", caName(typ, resource), access.ErrConflict)
}
