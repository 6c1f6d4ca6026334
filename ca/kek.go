package ca

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
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

// gcmNonceSize is the nonce prepended to every sealed value.
const gcmNonceSize = 12

// ErrKEKMismatch is returned when a sealed CA key does not open: the
// key-encryption key is not the one it was sealed with, or the record was
// moved to another etcd key, CA type or version.
var ErrKEKMismatch = errors.New("key-encryption key does not open the stored CA keys (wrong GATEHOUSE_KEK or kek_file?)")

// KEK is the key-encryption key that seals CA private keys in etcd with
// AES-256-GCM. It never prints: fmt, %v, %#v and slog all show
// "KEK(redacted)". The zero KEK is unusable: Seal and Open refuse it.
type KEK struct {
	key [KEKSize]byte
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

func (k KEK) aead() (cipher.AEAD, error) {
	if k.IsZero() {
		return nil, errors.New("no key-encryption key loaded")
	}
	block, err := aes.NewCipher(k.key[:])
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

// Seal encrypts plain with AES-256-GCM under k, authenticating aad: the
// result is a 12-byte random nonce followed by the ciphertext and tag.
func (k KEK) Seal(plain, aad []byte) ([]byte, error) {
	g, err := k.aead()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcmNonceSize, gcmNonceSize+len(plain)+g.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return g.Seal(nonce, nonce, plain, aad), nil
}

// Open decrypts what Seal returned for the same aad. Any mismatch (another
// key, other additional data, altered bytes) is ErrKEKMismatch.
func (k KEK) Open(sealed, aad []byte) ([]byte, error) {
	g, err := k.aead()
	if err != nil {
		return nil, err
	}
	if len(sealed) < gcmNonceSize+g.Overhead() {
		return nil, fmt.Errorf("open sealed value: %d bytes is too short", len(sealed))
	}
	plain, err := g.Open(nil, sealed[:gcmNonceSize], sealed[gcmNonceSize:], aad)
	if err != nil {
		return nil, ErrKEKMismatch
	}
	return plain, nil
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
func KEKFromEnv() (k KEK, ok bool, err error) {
	v, set := os.LookupEnv(KEKEnv)
	if !set || strings.TrimSpace(v) == "" {
		return KEK{}, false, nil
	}
	k, err = ParseKEK(v)
	if err != nil {
		return KEK{}, true, fmt.Errorf("%s: %w", KEKEnv, err)
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
