package ca

import (
	"bytes"
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
	if len(sealed) != gcmNonceSize+len(plain)+16 || bytes.Contains(sealed, plain) {
		t.Fatalf("sealed = %x", sealed)
	}
	again, _ := k.Seal(plain, aad)
	if bytes.Equal(again[:gcmNonceSize], sealed[:gcmNonceSize]) {
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
