package mattermost

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVerifyCommandToken(t *testing.T) {
	const want = "xr3j5x3p4pfjpjkmq5ncr8e1oe"
	cases := []struct {
		name, got, want string
		ok              bool
	}{
		{"right", want, want, true},
		{"wrong", "xr3j5x3p4pfjpjkmq5ncr8e1of", want, false},
		{"prefix", want[:10], want, false},
		{"longer", want + "x", want, false},
		{"missing", "", want, false},
		{"nothing configured", "", "", false},
		{"nothing configured, something sent", "x", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyCommandToken(tc.got, tc.want)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadToken) {
				t.Fatalf("err %v does not wrap ErrBadToken", err)
			}
		})
	}
}

var key = bytes.Repeat([]byte{0x5a}, 32)

func TestButtonSecret(t *testing.T) {
	now := time.Unix(1_760_000_000, 0)
	exp := now.Add(24 * time.Hour)
	secret := ButtonSecret(key, "R-42", "approve", "post1abc", exp)
	if secret == "" || strings.ContainsAny(secret, "+/=") {
		t.Fatalf("secret %q is not unpadded base64url", secret)
	}
	otherKey := bytes.Repeat([]byte{0x5b}, 32)

	cases := []struct {
		name                    string
		key                     []byte
		secret                  string
		request, action, postID string
		now                     time.Time
		wantErr                 error
	}{
		{"valid", key, secret, "R-42", "approve", "post1abc", now, nil},
		{"valid at expiry", key, secret, "R-42", "approve", "post1abc", exp, nil},
		{"expired", key, secret, "R-42", "approve", "post1abc", exp.Add(time.Second), ErrButtonExpired},
		{"other request", key, secret, "R-43", "approve", "post1abc", now, ErrBadButtonSecret},
		{"other action", key, secret, "R-42", "deny", "post1abc", now, ErrBadButtonSecret},
		{"other post", key, secret, "R-42", "approve", "post2xyz", now, ErrBadButtonSecret},
		{"other key", otherKey, secret, "R-42", "approve", "post1abc", now, ErrBadButtonSecret},
		{"fields shifted across the boundary", key, ButtonSecret(key, "R-4", "2approve", "post1abc", exp), "R-42", "approve", "post1abc", now, ErrBadButtonSecret},
		{"expiry extended", key, extendExpiry(t, secret, 365*24*time.Hour), "R-42", "approve", "post1abc", exp.Add(time.Hour), ErrBadButtonSecret},
		{"mac bit flipped", key, flipLast(t, secret), "R-42", "approve", "post1abc", now, ErrBadButtonSecret},
		{"truncated", key, secret[:len(secret)-2], "R-42", "approve", "post1abc", now, ErrBadButtonSecret},
		{"padded base64", key, secret + "=", "R-42", "approve", "post1abc", now, ErrBadButtonSecret},
		{"empty", key, "", "R-42", "approve", "post1abc", now, ErrBadButtonSecret},
		{"garbage", key, "!!!not-base64!!!", "R-42", "approve", "post1abc", now, ErrBadButtonSecret},
		{"short key refused", key[:16], ButtonSecret(key[:16], "R-42", "approve", "post1abc", exp), "R-42", "approve", "post1abc", now, ErrBadButtonSecret},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckButtonSecret(tc.key, tc.secret, tc.request, tc.action, tc.postID, tc.now)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestButtonSecretShortKeyIsEmpty(t *testing.T) {
	if s := ButtonSecret([]byte("short"), "R", "approve", "p", time.Now()); s != "" {
		t.Fatalf("short key gave secret %q", s)
	}
}

// extendExpiry rewrites the clear-text expiry without re-MACing.
func extendExpiry(t *testing.T, secret string, by time.Duration) string {
	raw, err := base64.RawURLEncoding.DecodeString(secret)
	if err != nil {
		t.Fatal(err)
	}
	// big-endian seconds: adding to the low bytes is enough for the test
	v := uint64(0)
	for _, b := range raw[:8] {
		v = v<<8 | uint64(b)
	}
	v += uint64(by / time.Second)
	for i := 7; i >= 0; i-- {
		raw[i] = byte(v)
		v >>= 8
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

func flipLast(t *testing.T, secret string) string {
	raw, err := base64.RawURLEncoding.DecodeString(secret)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-1] ^= 1
	return base64.RawURLEncoding.EncodeToString(raw)
}

func TestAddressAllowed(t *testing.T) {
	allowed := []string{"10.1.2.0/24", "192.0.2.7", "2001:db8::/32", "::1", "not-an-address"}
	cases := []struct {
		addr string
		want bool
	}{
		{"10.1.2.3:51234", true},
		{"10.1.3.3:51234", false},
		{"192.0.2.7:443", true},
		{"192.0.2.8:443", false},
		{"[2001:db8::5]:8065", true},
		{"[2001:db9::5]:8065", false},
		{"[::1]:1", true},
		{"[::ffff:10.1.2.9]:80", true}, // IPv4-mapped
		{"[fe80::1%eth0]:80", false},
		{"192.0.2.7", true}, // bare IP
		{"mattermost.example.com:443", false},
		{"", false},
	}
	for _, tc := range cases {
		if got := AddressAllowed(tc.addr, allowed); got != tc.want {
			t.Errorf("AddressAllowed(%q) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if AddressAllowed("10.1.2.3:1", nil) {
		t.Error("empty allow-list allowed an address")
	}
	if !AddressAllowed("10.9.9.9:1", []string{"::ffff:10.0.0.0/104"}) {
		t.Error("IPv4-mapped CIDR entry did not match its IPv4 address")
	}
}

func TestParseAllowList(t *testing.T) {
	if err := ParseAllowList([]string{"10.0.0.0/8", "::1", "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"mattermost.example.com", "10.0.0.0/33", "fe80::1%eth0", ""} {
		if err := ParseAllowList([]string{bad}); err == nil {
			t.Errorf("ParseAllowList accepted %q", bad)
		}
	}
}
