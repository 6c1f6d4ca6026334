package ca

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// KEKEnv is the environment variable that may hold the key-encryption key
// (64 hex characters or base64 of 32 bytes); it takes precedence over
// ca.kek_file.
const KEKEnv = "GATEHOUSE_KEK"

// KEKSize is the size of a key-encryption key: AES-256.
const KEKSize = 32

// PreviousKEKEnv is the environment variable that may hold the previous
// key-encryption key during a KEK rotation (as GATEHOUSE_KEK); it takes
// precedence over ca.previous_kek_file.
const PreviousKEKEnv = "GATEHOUSE_PREVIOUS_KEK"

// gcmNonceSize is the nonce in every sealed value.
const gcmNonceSize = 12

// gcmTagSize is the authentication tag at the end of every sealed value.
const gcmTagSize = 16

// kekIDSize is the length of a KEK id: the first 8 bytes of the SHA-256 of
// the key, shown as 16 hex characters. It names a key without revealing it.
const kekIDSize = 8

// sealedMagic starts every value sealed since KEK ids exist; the id of the
// KEK follows, then the nonce and the ciphertext. The header is part of the
// additional data, so it cannot be swapped. Values sealed before (nonce ||
// ciphertext, no header) still open, and get a header when a KEK rotation
// re-seals them.
var sealedMagic = [4]byte{'G', 'H', 'K', 1}

// sealedHeaderSize is sealedMagic and the KEK id.
const sealedHeaderSize = len(sealedMagic) + kekIDSize

// ErrKEKMismatch is returned when a sealed CA key does not open: the
// key-encryption key is not the one it was sealed with, or the record was
// moved to another etcd key, CA type or version. When the value names the
// KEK it was sealed under, the error wrapping it says which, and which
// keys this process has.
var ErrKEKMismatch = errors.New("key-encryption key does not open the stored CA keys (wrong GATEHOUSE_KEK or kek_file?)")

// KEK is the key-encryption key that seals CA private keys in etcd with
// AES-256-GCM. During a KEK rotation it may also hold the previous key
// (WithPrevious), which opens what it sealed but never seals. It never
// prints: fmt, %v, %#v and slog all show "KEK(redacted)". The zero KEK is
// unusable: Seal and Open refuse it.
type KEK struct {
	key [KEKSize]byte
	// prev opens values sealed under the previous KEK; zero: none.
	prev [KEKSize]byte
}

// String, GoString, Format and LogValue keep the key out of logs and
// error messages, whatever verb or handler is used.
func (KEK) String() string             { return "KEK(redacted)" }
func (KEK) GoString() string           { return "KEK(redacted)" }
func (KEK) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "KEK(redacted)") }
func (KEK) LogValue() slog.Value       { return slog.StringValue("KEK(redacted)") }
func (KEK) MarshalText() ([]byte, error) {
	return nil, errors.New("a key-encryption key is never serialized")
}

// IsZero reports whether no key was loaded.
func (k KEK) IsZero() bool { return k.key == [KEKSize]byte{} }

// kekID names a key in sealed values and messages.
type kekID [kekIDSize]byte

func (id kekID) String() string { return hex.EncodeToString(id[:]) }

func idOf(key *[KEKSize]byte) kekID {
	sum := sha256.Sum256(key[:])
	return kekID(sum[:kekIDSize])
}

// ID names the key that seals: the first 8 bytes of its SHA-256 in hex,
// "" for the zero KEK. It is safe to log and to show.
func (k KEK) ID() string {
	if k.IsZero() {
		return ""
	}
	return idOf(&k.key).String()
}

// PreviousID is the ID of the previous key, "" when there is none.
func (k KEK) PreviousID() string {
	if k.prev == [KEKSize]byte{} {
		return ""
	}
	return idOf(&k.prev).String()
}

// describe names the keys k holds, for errors: "KEK 1a2b…" or
// "KEK 1a2b… (previous 9f8e…)".
func (k KEK) describe() string {
	if p := k.PreviousID(); p != "" {
		return fmt.Sprintf("KEK %s (previous %s)", k.ID(), p)
	}
	return "KEK " + k.ID()
}

// WithPrevious returns k that also opens what prev sealed, for the time a
// KEK rotation takes: values are always sealed under k, and opened under
// whichever of the two they name. prev must be another, non-zero key.
func (k KEK) WithPrevious(prev KEK) (KEK, error) {
	if k.IsZero() {
		return KEK{}, errors.New("a previous key-encryption key needs a current one")
	}
	if prev.IsZero() {
		return KEK{}, errors.New("the previous key-encryption key is empty")
	}
	if subtle.ConstantTimeCompare(k.key[:], prev.key[:]) == 1 {
		return KEK{}, fmt.Errorf("the previous key-encryption key is the current one (KEK %s): give the key the CA keys were sealed under before", k.ID())
	}
	return KEK{key: k.key, prev: prev.key}, nil
}

// current is k without its previous key.
func (k KEK) current() KEK { return KEK{key: k.key} }

func aeadOf(key *[KEKSize]byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	return cipher.NewGCM(block)
}

// NewKEK returns a fresh random key-encryption key.
func NewKEK() (KEK, error) {
	var k KEK
	if _, err := rand.Read(k.key[:]); err != nil {
		return KEK{}, fmt.Errorf("generate key-encryption key: %w", err)
	}
	return k, nil
}

// Seal encrypts plain with AES-256-GCM under k (never under its previous
// key), authenticating aad: the result is a header naming the KEK (see
// sealedMagic), a 12-byte random nonce, then the ciphertext and tag.
func (k KEK) Seal(plain, aad []byte) ([]byte, error) {
	if k.IsZero() {
		return nil, errors.New("no key-encryption key loaded")
	}
	g, err := aeadOf(&k.key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, sealedHeaderSize+gcmNonceSize, sealedHeaderSize+gcmNonceSize+len(plain)+g.Overhead())
	copy(out, sealedMagic[:])
	id := idOf(&k.key)
	copy(out[len(sealedMagic):], id[:])
	nonce := out[sealedHeaderSize:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return g.Seal(out, nonce, plain, headerAAD(out[:sealedHeaderSize], aad)), nil
}

// headerAAD is the additional data of a value with a header: the header,
// then the caller's.
func headerAAD(header, aad []byte) []byte {
	b := make([]byte, 0, len(header)+len(aad))
	return append(append(b, header...), aad...)
}

// sealedID returns the KEK id in sealed's header; ok is false for a value
// sealed before KEK ids existed.
func sealedID(sealed []byte) (id kekID, ok bool) {
	if len(sealed) < sealedHeaderSize || !bytes.Equal(sealed[:len(sealedMagic)], sealedMagic[:]) {
		return kekID{}, false
	}
	copy(id[:], sealed[len(sealedMagic):sealedHeaderSize])
	return id, true
}

// SealedKEKID is the id of the KEK a sealed value names (as KEK.ID), or ""
// when it predates KEK ids. It is read from the value, not proven: only
// opening it proves it.
func SealedKEKID(sealed []byte) string {
	if id, ok := sealedID(sealed); ok {
		return id.String()
	}
	return ""
}

// Open decrypts what Seal returned for the same aad, with the key the
// value names: k's, or its previous one. Any mismatch (another key, other
// additional data, altered bytes) is ErrKEKMismatch, wrapped with the id of
// the KEK the value names, if any, and the ids of the keys k holds.
func (k KEK) Open(sealed, aad []byte) ([]byte, error) {
	if k.IsZero() {
		return nil, errors.New("no key-encryption key loaded")
	}
	keys := []*[KEKSize]byte{&k.key}
	if k.prev != ([KEKSize]byte{}) {
		keys = append(keys, &k.prev)
	}
	id, named := sealedID(sealed)
	if named && len(sealed) >= sealedHeaderSize+gcmNonceSize+gcmTagSize {
		for _, key := range keys {
			if idOf(key) != id {
				continue
			}
			if plain, err := openWith(key, sealed[sealedHeaderSize:], headerAAD(sealed[:sealedHeaderSize], aad)); err == nil {
				return plain, nil
			}
		}
	}
	// A value without a header; or, once in 2^32 values sealed before KEK
	// ids, one whose random nonce starts like a header.
	if len(sealed) < gcmNonceSize+gcmTagSize {
		return nil, fmt.Errorf("open sealed value: %d bytes is too short", len(sealed))
	}
	for _, key := range keys {
		if plain, err := openWith(key, sealed, aad); err == nil {
			return plain, nil
		}
	}
	switch {
	case !named:
		return nil, ErrKEKMismatch
	case id == idOf(&k.key) || (len(keys) > 1 && id == idOf(&k.prev)):
		return nil, fmt.Errorf("%w: sealed under KEK %s, but altered or moved from another record", ErrKEKMismatch, id)
	default:
		return nil, fmt.Errorf("%w: sealed under KEK %s, this process has %s", ErrKEKMismatch, id, k.describe())
	}
}

// kekMismatchError is ErrKEKMismatch with a message of its own, for
// where "wrong GATEHOUSE_KEK or kek_file?" is not the question.
type kekMismatchError string

func (e kekMismatchError) Error() string { return string(e) }
func (e kekMismatchError) Unwrap() error { return ErrKEKMismatch }

// openWith opens nonce || ciphertext+tag under key.
func openWith(key *[KEKSize]byte, body, aad []byte) ([]byte, error) {
	g, err := aeadOf(key)
	if err != nil {
		return nil, err
	}
	return g.Open(nil, body[:gcmNonceSize], body[gcmNonceSize:], aad)
}

// reseal returns the value sealed under to, with the same aad: opened
// with from, or already under to (then returned as it is, once it opened).
// Neither key's previous one is used. A value neither opens is
// ErrKEKMismatch naming the three KEKs.
func reseal(sealed, aad []byte, from, to KEK) (out []byte, changed bool, err error) {
	from, to = from.current(), to.current()
	if id, ok := sealedID(sealed); ok && id == idOf(&to.key) {
		if plain, err := to.Open(sealed, aad); err == nil {
			clear(plain)
			return sealed, false, nil
		}
	}
	plain, err := from.Open(sealed, aad)
	if err != nil {
		// Sealed under to before KEK ids: it needs a header.
		var errTo error
		if plain, errTo = to.Open(sealed, aad); errTo != nil {
			under := "a KEK it does not name (sealed before KEK ids)"
			if id := SealedKEKID(sealed); id != "" {
				under = "KEK " + id
			}
			return nil, false, kekMismatchError(fmt.Sprintf("sealed under %s, but neither the old KEK %s nor the new KEK %s opens it", under, from.ID(), to.ID()))
		}
	}
	out, err = to.Seal(plain, aad)
	clear(plain)
	if err != nil {
		return nil, false, err
	}
	return out, true, nil
}

// keyAAD is the additional data a CA private key is sealed with: its etcd
// key, CA type and key version, each length-prefixed, so a record moved to
// another key, type or version does not open.
func keyAAD(path, typ string, version int) []byte {
	const label = "gatehouse-ca-key-v1"
	b := make([]byte, 0, 4+len(label)+4+len(path)+4+len(typ)+8)
	for _, s := range []string{label, path, typ} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return binary.BigEndian.AppendUint64(b, uint64(int64(version)))
}

// ParseKEK decodes a key-encryption key written as 64 hex characters or as
// base64 (standard or URL alphabet, padded or not) of 32 bytes; surrounding
// whitespace is ignored. Errors never quote the input.
func ParseKEK(s string) (KEK, error) {
	s = strings.TrimSpace(s)
	var k KEK
	decoded := false
	if len(s) == 2*KEKSize {
		if b, err := hex.DecodeString(s); err == nil {
			copy(k.key[:], b)
			clear(b)
			decoded = true
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if decoded {
			break
		}
		if b, err := enc.DecodeString(s); err == nil && len(b) == KEKSize {
			copy(k.key[:], b)
			clear(b)
			decoded = true
		}
	}
	if decoded {
		if k.IsZero() {
			return KEK{}, errors.New("key-encryption key is all zeros")
		}
		return k, nil
	}
	if s == "" {
		return KEK{}, errors.New("key-encryption key is empty")
	}
	return KEK{}, fmt.Errorf("key-encryption key must be %d random bytes as %d hex characters or base64 (got %d characters)", KEKSize, 2*KEKSize, len(s))
}

// LoadKEK reads a key-encryption key file. The file must be a regular file
// readable by its owner only (mode 0600 or stricter): a key others can read
// protects nothing.
func LoadKEK(file string) (KEK, error) {
	f, err := os.Open(file)
	if err != nil {
		return KEK{}, fmt.Errorf("kek_file: %w", err)
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return KEK{}, fmt.Errorf("kek_file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return KEK{}, fmt.Errorf("kek_file %s: not a regular file", file)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return KEK{}, fmt.Errorf("kek_file %s: mode %04o lets group or others access the key-encryption key; chmod 600 %s", file, perm, file)
	}
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return KEK{}, fmt.Errorf("kek_file %s: %w", file, err)
	}
	k, err := ParseKEK(string(b))
	clear(b)
	if err != nil {
		return KEK{}, fmt.Errorf("kek_file %s: %w", file, err)
	}
	return k, nil
}

// KEKFromEnv reads GATEHOUSE_KEK; ok is false when it is unset or empty.
func KEKFromEnv() (k KEK, ok bool, err error) { return kekFromEnv(KEKEnv) }

func kekFromEnv(name string) (k KEK, ok bool, err error) {
	v, set := os.LookupEnv(name)
	if !set || strings.TrimSpace(v) == "" {
		return KEK{}, false, nil
	}
	k, err = ParseKEK(v)
	if err != nil {
		return KEK{}, true, fmt.Errorf("%s: %w", name, err)
	}
	return k, true, nil
}

// ResolveKEK is what accessd does at start: GATEHOUSE_KEK when set,
// otherwise the kek_file. source says which, for the log ("GATEHOUSE_KEK"
// or "kek_file /etc/gatehouse/kek"); the key itself is never logged.
func ResolveKEK(file string) (k KEK, source string, err error) {
	k, ok, err := KEKFromEnv()
	if ok || err != nil {
		return k, KEKEnv, err
	}
	if file == "" {
		return KEK{}, "", fmt.Errorf("no key-encryption key: set ca.kek_file or %s (generate one with 32 random bytes, mode 0600, outside the data dir)", KEKEnv)
	}
	k, err = LoadKEK(file)
	return k, "kek_file " + file, err
}

// ResolvePreviousKEK is ResolveKEK for the previous key of a KEK rotation:
// GATEHOUSE_PREVIOUS_KEK when set, otherwise the previous_kek_file; ok is
// false when neither is set.
func ResolvePreviousKEK(file string) (k KEK, source string, ok bool, err error) {
	k, ok, err = kekFromEnv(PreviousKEKEnv)
	if ok || err != nil {
		return k, PreviousKEKEnv, true, err
	}
	if file == "" {
		return KEK{}, "", false, nil
	}
	k, err = LoadKEK(file)
	if err != nil {
		err = fmt.Errorf("previous_%w", err) // LoadKEK's errors start with "kek_file"
	}
	return k, "previous_kek_file " + file, true, err
}

// CheckKEKOutside refuses a kek_file inside the data dir: a backup or copy
// of the data dir must not carry the key that opens it.
func CheckKEKOutside(file, dataDir string) error {
	if file == "" || dataDir == "" {
		return nil
	}
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			p = a
		}
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		return filepath.Clean(p)
	}
	f, d := abs(file), abs(dataDir)
	rel, err := filepath.Rel(d, f)
	if err != nil {
		return nil
	}
	if rel == "." || (rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))) {
		return fmt.Errorf("kek_file %s is inside the data dir %s: keep the key-encryption key apart from the data it protects", file, dataDir)
	}
	return nil
}

// GenerateKEKFile writes a new random key-encryption key to path as hex,
// mode 0600. It refuses to overwrite an existing file: replacing a KEK
// makes every sealed CA key unreadable.
func GenerateKEKFile(path string) error {
	k, err := NewKEK()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("kek_file %s already exists; not overwriting a key-encryption key", path)
		}
		return fmt.Errorf("kek_file: %w", err)
	}
	buf := make([]byte, 2*KEKSize+1)
	hex.Encode(buf, k.key[:])
	buf[len(buf)-1] = '\n'
	_, err = f.Write(buf)
	clear(buf)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("kek_file %s: %w", path, err)
	}
	return nil
}
