package ca

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func kekForTest(t testing.TB) KEK {
	t.Helper()
	k, err := NewKEK()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKEKSealOpen(t *testing.T) {
	k := kekForTest(t)
	aad := keyAAD("/gatehouse/ca/ssh", "ssh", 1)
	plain := []byte("private key bytes")
	sealed, err := k.Seal(plain, aad)
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != sealedHeaderSize+gcmNonceSize+len(plain)+gcmTagSize || bytes.Contains(sealed, plain) {
		t.Fatalf("sealed = %x", sealed)
	}
	nonce := func(b []byte) []byte { return b[sealedHeaderSize : sealedHeaderSize+gcmNonceSize] }
	again, _ := k.Seal(plain, aad)
	if bytes.Equal(nonce(again), nonce(sealed)) {
		t.Fatal("nonce reused")
	}
	got, err := k.Open(sealed, aad)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}

	other := kekForTest(t)
	if _, err := other.Open(sealed, aad); !errors.Is(err, ErrKEKMismatch) {
		t.Fatalf("wrong KEK: err = %v", err)
	}
	if _, err := k.Open(sealed, keyAAD("/gatehouse/ca/ssh", "ssh", 2)); !errors.Is(err, ErrKEKMismatch) {
		t.Fatalf("other AAD: err = %v", err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	if _, err := k.Open(tampered, aad); !errors.Is(err, ErrKEKMismatch) {
		t.Fatalf("tampered: err = %v", err)
	}
	if _, err := k.Open(sealed[:10], aad); err == nil || !strings.Contains(err.Error(), "too short") {
		t.Fatalf("short: err = %v", err)
	}
	var zero KEK
	if _, err := zero.Seal(plain, aad); err == nil {
		t.Fatal("zero KEK sealed")
	}
	if _, err := zero.Open(sealed, aad); err == nil {
		t.Fatal("zero KEK opened")
	}
}

func TestKEKAADUnambiguous(t *testing.T) {
	cases := [][3]any{
		{"/p/ca/db/a", "db", 1},
		{"/p/ca/db/a", "db", 2},
		{"/p/ca/db/a", "kube", 1},
		{"/p/ca/db/ad", "b", 1},
		{"/p/ca/db/", "adb", 1},
		{"/p/ca/kube/a", "db", 1},
		{"", "", 0},
	}
	seen := map[string]int{}
	for i, c := range cases {
		a := string(keyAAD(c[0].(string), c[1].(string), c[2].(int)))
		if j, dup := seen[a]; dup {
			t.Fatalf("keyAAD(%v) == keyAAD(%v)", c, cases[j])
		}
		seen[a] = i
	}
}

func TestKEKParse(t *testing.T) {
	k := kekForTest(t)
	for name, s := range map[string]string{
		"hex":         hex.EncodeToString(k.key[:]),
		"hex upper":   "  " + strings.ToUpper(hex.EncodeToString(k.key[:])) + "\n",
		"base64":      base64.StdEncoding.EncodeToString(k.key[:]) + "\n",
		"base64 raw":  base64.RawStdEncoding.EncodeToString(k.key[:]),
		"base64 url":  base64.RawURLEncoding.EncodeToString(k.key[:]),
		"base64 tabs": "\t" + base64.URLEncoding.EncodeToString(k.key[:]) + "\r\n",
	} {
		got, err := ParseKEK(s)
		if err != nil || got != k {
			t.Errorf("%s: ParseKEK = %v, %v", name, got == k, err)
		}
	}
	short := hex.EncodeToString(k.key[:16])
	for _, bad := range []string{"", "  \n", short, base64.StdEncoding.EncodeToString(k.key[:31]), "not a key at all"} {
		_, err := ParseKEK(bad)
		if err == nil {
			t.Errorf("ParseKEK(%q) accepted", bad)
			continue
		}
		if len(strings.TrimSpace(bad)) > 4 && strings.Contains(err.Error(), strings.TrimSpace(bad)) {
			t.Errorf("error quotes the key material: %v", err)
		}
	}
	if _, err := ParseKEK(hex.EncodeToString(make([]byte, 32))); err == nil || !strings.Contains(err.Error(), "zeros") {
		t.Fatalf("zero key: err = %v", err)
	}
}

func TestKEKFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kek")
	if err := GenerateKEKFile(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %o, want 600", fi.Mode().Perm())
	}
	k, err := LoadKEK(path)
	if err != nil || k.IsZero() {
		t.Fatalf("LoadKEK = %v", err)
	}
	before, _ := os.ReadFile(path)
	if err := GenerateKEKFile(path); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("overwrite: err = %v", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("GenerateKEKFile overwrote an existing key")
	}

	// Group- or world-accessible files are refused.
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o644, 0o602} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadKEK(path)
		if err == nil || !strings.Contains(err.Error(), "group or others") || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("mode %o: err = %v", mode, err)
		}
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if k2, err := LoadKEK(path); err != nil || k2 != k {
		t.Fatalf("mode 0400: %v", err)
	}

	if _, err := LoadKEK(dir); err == nil {
		t.Fatal("a directory was accepted")
	}
	if _, err := LoadKEK(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing file was accepted")
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("secret-but-malformed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKEK(bad); err == nil || strings.Contains(err.Error(), "secret-but-malformed") {
		t.Fatalf("malformed file: err = %v", err)
	}
}

func TestKEKFromEnv(t *testing.T) {
	k := kekForTest(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "kek")
	if err := GenerateKEKFile(file); err != nil {
		t.Fatal(err)
	}
	fileKEK, _ := LoadKEK(file)

	t.Setenv(KEKEnv, "")
	if _, ok, err := KEKFromEnv(); ok || err != nil {
		t.Fatalf("empty env: ok=%v err=%v", ok, err)
	}
	got, src, err := ResolveKEK(file)
	if err != nil || got != fileKEK || src != "kek_file "+file {
		t.Fatalf("ResolveKEK(file) = %v, %q, %v", got == fileKEK, src, err)
	}
	if _, _, err := ResolveKEK(""); err == nil || !strings.Contains(err.Error(), KEKEnv) {
		t.Fatalf("nothing configured: err = %v", err)
	}

	t.Setenv(KEKEnv, base64.StdEncoding.EncodeToString(k.key[:]))
	got, ok, err := KEKFromEnv()
	if !ok || err != nil || got != k {
		t.Fatalf("KEKFromEnv: ok=%v err=%v", ok, err)
	}
	got, src, err = ResolveKEK(file)
	if err != nil || got != k || src != KEKEnv {
		t.Fatalf("env wins over file: %q %v", src, err)
	}
	t.Setenv(KEKEnv, "tooshort")
	if _, ok, err := KEKFromEnv(); !ok || err == nil || !strings.Contains(err.Error(), KEKEnv) || strings.Contains(err.Error(), "tooshort") {
		t.Fatalf("bad env: ok=%v err=%v", ok, err)
	}
}

func TestKEKOutsideDataDir(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := CheckKEKOutside(filepath.Join(dir, "kek"), data); err != nil {
		t.Fatalf("beside the data dir: %v", err)
	}
	if err := CheckKEKOutside(filepath.Join(dir, "data-kek"), data); err != nil {
		t.Fatalf("sibling with a common prefix: %v", err)
	}
	if err := CheckKEKOutside(filepath.Join(data, "kek"), data); err == nil {
		t.Fatal("inside the data dir accepted")
	}
	if err := CheckKEKOutside(filepath.Join(data, "sub", "..", "kek"), data+"/"); err == nil {
		t.Fatal("inside the data dir (unclean path) accepted")
	}
}

func TestKEKNeverPrinted(t *testing.T) {
	k := kekForTest(t)
	h := hex.EncodeToString(k.key[:])
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("kek", "kek", k)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("kek", "kek", k)
	for _, s := range []string{
		fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s %x %X %q %d", k, k, k, k, k, k, k, k),
		fmt.Sprintf("%v", struct{ K KEK }{k}), fmt.Sprintf("%+v", &k), logged.String(),
	} {
		if strings.Contains(strings.ToLower(s), h[:16]) || strings.Contains(s, base64.StdEncoding.EncodeToString(k.key[:])[:16]) {
			t.Fatalf("key printed: %s", s)
		}
		if !strings.Contains(s, "redacted") {
			t.Fatalf("no redaction marker in %q", s)
		}
	}
	var dec []byte
	fmt.Sscanf(h, "%x", &dec) // sanity: h is the key
	if !bytes.Equal(dec, k.key[:]) {
		t.Fatal("test setup")
	}
}

// BenchmarkKEKOpen is the uncached part of opening a CA key: AES-256-GCM
// over a PKCS#8 Ed25519 key, as Manager.open does once per key.
func BenchmarkKEKOpen(b *testing.B) {
	k := kekForTest(b)
	aad := keyAAD("/gatehouse/ca/ssh", "ssh", 1)
	sealed, err := k.Seal(make([]byte, 48), aad)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := k.Open(sealed, aad); err != nil {
			b.Fatal(err)
		}
	}
}

// sealLegacy seals as Seal did before KEK ids: nonce || ciphertext+tag,
// no header. nonce may be given (to make one that looks like a header).
func sealLegacy(t testing.TB, k KEK, plain, aad, nonce []byte) []byte {
	t.Helper()
	g, err := aeadOf(&k.key)
	if err != nil {
		t.Fatal(err)
	}
	if nonce == nil {
		nonce = make([]byte, gcmNonceSize)
		if _, err := rand.Read(nonce); err != nil {
			t.Fatal(err)
		}
	}
	return g.Seal(bytes.Clone(nonce), nonce, plain, aad)
}

// TestKEKIDs: a sealed value names the KEK it is sealed under, so a wrong
// KEK is diagnosed by id; the header is authenticated; values sealed
// before KEK ids still open, even one whose nonce looks like a header.
func TestKEKIDs(t *testing.T) {
	k, other := kekForTest(t), kekForTest(t)
	if len(k.ID()) != 2*kekIDSize || k.ID() == other.ID() || (KEK{}).ID() != "" {
		t.Fatalf("IDs %q %q", k.ID(), other.ID())
	}
	sum := sha256.Sum256(k.key[:])
	if k.ID() != hex.EncodeToString(sum[:8]) {
		t.Fatalf("ID %s is not the first 8 bytes of SHA-256 of the key", k.ID())
	}
	aad := keyAAD("/gatehouse/ca/ssh", "ssh", 1)
	plain := []byte("private key bytes")
	sealed, err := k.Seal(plain, aad)
	if err != nil {
		t.Fatal(err)
	}
	if SealedKEKID(sealed) != k.ID() {
		t.Fatalf("SealedKEKID = %q, want %q", SealedKEKID(sealed), k.ID())
	}
	_, err = other.Open(sealed, aad)
	if !errors.Is(err, ErrKEKMismatch) || !strings.Contains(err.Error(), "sealed under KEK "+k.ID()+", this process has KEK "+other.ID()) {
		t.Fatalf("wrong KEK: %v", err)
	}
	relabeled := bytes.Clone(sealed) // claims to be under other
	copy(relabeled[len(sealedMagic):], mustID(t, other))
	if _, err := other.Open(relabeled, aad); !errors.Is(err, ErrKEKMismatch) {
		t.Fatalf("relabeled header opened: %v", err)
	}
	if _, err := k.Open(relabeled, aad); !errors.Is(err, ErrKEKMismatch) {
		t.Fatalf("relabeled header opened under the real key: %v", err)
	}

	legacy := sealLegacy(t, k, plain, aad, nil)
	headerNonce := func(id []byte) []byte { return append(bytes.Clone(sealedMagic[:]), id...) }
	for name, v := range map[string][]byte{
		"legacy": legacy,
		"legacy, nonce like a header naming another KEK": sealLegacy(t, k, plain, aad, headerNonce(mustID(t, other))),
		"legacy, nonce like a header naming this KEK":    sealLegacy(t, k, plain, aad, headerNonce(mustID(t, k))),
	} {
		got, err := k.Open(v, aad)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%s: Open = %q, %v", name, got, err)
		}
		if _, err := other.Open(v, aad); !errors.Is(err, ErrKEKMismatch) {
			t.Fatalf("%s under another KEK: %v", name, err)
		}
	}
	if SealedKEKID(legacy) != "" {
		t.Fatalf("a legacy value names KEK %q", SealedKEKID(legacy))
	}
}

func mustID(t testing.TB, k KEK) []byte {
	t.Helper()
	b, err := hex.DecodeString(k.ID())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKEKWithPrevious: during a KEK rotation a KEK opens what its previous
// key sealed, and seals only under the current one.
func TestKEKWithPrevious(t *testing.T) {
	oldK, newK, third := kekForTest(t), kekForTest(t), kekForTest(t)
	both, err := newK.WithPrevious(oldK)
	if err != nil {
		t.Fatal(err)
	}
	if both.ID() != newK.ID() || both.PreviousID() != oldK.ID() || newK.PreviousID() != "" {
		t.Fatalf("ids %s/%s", both.ID(), both.PreviousID())
	}
	aad := keyAAD("/gatehouse/ca/db/orders", "db", 3)
	plain := []byte("pkcs8")
	underOld, _ := oldK.Seal(plain, aad)
	underNew, _ := newK.Seal(plain, aad)
	for name, v := range map[string][]byte{"under the old KEK": underOld, "under the new KEK": underNew, "legacy under the old KEK": sealLegacy(t, oldK, plain, aad, nil)} {
		if got, err := both.Open(v, aad); err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%s: Open = %q, %v", name, got, err)
		}
	}
	sealed, err := both.Seal(plain, aad)
	if err != nil || SealedKEKID(sealed) != newK.ID() {
		t.Fatalf("sealed under %q (%v), want the current KEK %s", SealedKEKID(sealed), err, newK.ID())
	}
	if _, err := oldK.Open(sealed, aad); !errors.Is(err, ErrKEKMismatch) {
		t.Fatalf("the old KEK opens a new seal: %v", err)
	}
	underThird, _ := third.Seal(plain, aad)
	_, err = both.Open(underThird, aad)
	want := fmt.Sprintf("sealed under KEK %s, this process has KEK %s (previous %s)", third.ID(), newK.ID(), oldK.ID())
	if !errors.Is(err, ErrKEKMismatch) || !strings.Contains(err.Error(), want) {
		t.Fatalf("third KEK: %v, want %q", err, want)
	}

	for _, tc := range []struct {
		name      string
		cur, prev KEK
		want      string
	}{
		{"the same key twice", newK, newK, "is the current one"},
		{"no previous key", newK, KEK{}, "empty"},
		{"no current key", KEK{}, oldK, "needs a current one"},
	} {
		if _, err := tc.cur.WithPrevious(tc.prev); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if s := fmt.Sprintf("%v %+v %#v", both, both, both); strings.Contains(s, hex.EncodeToString(oldK.key[:])[:16]) {
		t.Fatalf("previous key printed: %s", s)
	}
}

// TestResolvePreviousKEK: GATEHOUSE_PREVIOUS_KEK wins over the file; neither
// is not an error; a bad file is named as previous_kek_file.
func TestResolvePreviousKEK(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "old.kek")
	if err := GenerateKEKFile(file); err != nil {
		t.Fatal(err)
	}
	fileKEK, _ := LoadKEK(file)
	t.Setenv(PreviousKEKEnv, "")
	if _, _, ok, err := ResolvePreviousKEK(""); ok || err != nil {
		t.Fatalf("nothing set: ok=%v err=%v", ok, err)
	}
	got, src, ok, err := ResolvePreviousKEK(file)
	if !ok || err != nil || got != fileKEK || src != "previous_kek_file "+file {
		t.Fatalf("file: %q %v %v", src, ok, err)
	}
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := ResolvePreviousKEK(file); err == nil || !strings.HasPrefix(err.Error(), "previous_kek_file "+file) {
		t.Fatalf("loose mode: %v", err)
	}
	k := kekForTest(t)
	t.Setenv(PreviousKEKEnv, hex.EncodeToString(k.key[:]))
	if got, src, ok, err := ResolvePreviousKEK(file); !ok || err != nil || got != k || src != PreviousKEKEnv {
		t.Fatalf("env: %q %v %v", src, ok, err)
	}
}
