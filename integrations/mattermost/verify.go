// Package mattermost is Gatehouse's Mattermost integration. This file is its
// verification edge.
//
// Mattermost signs nothing. A slash command carries the command's token (set
// when the command is created; compared with VerifyCommandToken). Interactive
// message buttons POST their "context" to the integration URL with nothing
// that proves the click came from Mattermost, so anyone who can reach accessd
// could forge one. Every button therefore carries a per-button secret in its
// context, made by ButtonSecret and checked by CheckButtonSecret, bound to
// (request id, action, post id, expiry) with HMAC-SHA256 under a server key.
// The post id comes from Mattermost's callback (post_id), so a secret copied
// from one card to another post, or from Approve to Deny, does not verify.
// Because a post's id exists only after the post is created, the card is
// created first and its buttons' contexts are filled in by the update that
// follows (cards are edited on every change anyway, and each edit re-issues
// secrets with a fresh expiry).
//
// AddressAllowed is the optional allow-list of the Mattermost server's
// addresses, applied to the TCP peer (r.RemoteAddr). It does not look at
// X-Forwarded-For; behind a proxy, the proxy must enforce it.
package mattermost

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

var (
	// ErrBadToken: the slash-command token is missing or wrong. Answer 401.
	ErrBadToken = errors.New("mattermost: bad command token")
	// ErrBadButtonSecret: the button secret is malformed, or was not made
	// for this request, action and post, or under this key. Answer 403.
	ErrBadButtonSecret = errors.New("mattermost: bad button secret")
	// ErrButtonExpired: an authentic button secret past its expiry. Answer 403
	// with a message asking to use the refreshed card.
	ErrButtonExpired = errors.New("mattermost: button expired")
)

// MinKeyLen is the shortest button key accepted.
const MinKeyLen = 32

// buttonDomain separates these MACs from any other use of the same key.
const buttonDomain = "gatehouse/mattermost/button/v1"

// VerifyCommandToken compares the token Mattermost sent with the configured
// one in constant time. An empty configured token refuses everything.
func VerifyCommandToken(got, want string) error {
	if want == "" {
		return fmt.Errorf("%w: no command token configured", ErrBadToken)
	}
	// Compare digests, so that not even the token's length leaks through timing.
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	if subtle.ConstantTimeCompare(g[:], w[:]) != 1 {
		return ErrBadToken
	}
	return nil
}

// ButtonSecret returns the secret to put in a button's context: base64url
// (unpadded) of the 8-byte big-endian expiry in unix seconds followed by
// HMAC-SHA256(key, domain ‖ len‖requestID ‖ len‖action ‖ len‖postID ‖ expiry),
// every string prefixed with its 4-byte big-endian length so that no two
// field tuples encode alike. The expiry travels in the clear so that it can
// be checked; it is covered by the MAC. expires is kept to the second.
//
// key must be at least MinKeyLen bytes; with a shorter key ButtonSecret
// returns "", which CheckButtonSecret never accepts.
func ButtonSecret(key []byte, requestID, action, postID string, expires time.Time) string {
	if len(key) < MinKeyLen {
		return ""
	}
	exp := expires.Unix()
	out := make([]byte, 8, 8+sha256.Size)
	binary.BigEndian.PutUint64(out, uint64(exp))
	out = append(out, buttonMAC(key, requestID, action, postID, exp)...)
	return base64.RawURLEncoding.EncodeToString(out)
}

// CheckButtonSecret verifies a secret from a button callback against the
// request id, action and post id the callback is about (the post id from the
// callback's post_id, not from the context), and refuses it once expired
// (now after the expiry). Errors wrap ErrBadButtonSecret or ErrButtonExpired;
// expiry is reported only for secrets that are otherwise authentic.
func CheckButtonSecret(key []byte, secret, requestID, action, postID string, now time.Time) error {
	if len(key) < MinKeyLen {
		return fmt.Errorf("%w: button key shorter than %d bytes", ErrBadButtonSecret, MinKeyLen)
	}
	raw, err := base64.RawURLEncoding.DecodeString(secret)
	if err != nil || len(raw) != 8+sha256.Size {
		return fmt.Errorf("%w: malformed", ErrBadButtonSecret)
	}
	exp := int64(binary.BigEndian.Uint64(raw[:8]))
	if !hmac.Equal(raw[8:], buttonMAC(key, requestID, action, postID, exp)) {
		return ErrBadButtonSecret
	}
	if now.Unix() > exp {
		return fmt.Errorf("%w: at %s", ErrButtonExpired, time.Unix(exp, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

func buttonMAC(key []byte, requestID, action, postID string, exp int64) []byte {
	mac := hmac.New(sha256.New, key)
	var n [8]byte
	for _, field := range []string{buttonDomain, requestID, action, postID} {
		binary.BigEndian.PutUint32(n[:4], uint32(len(field)))
		mac.Write(n[:4])
		mac.Write([]byte(field))
	}
	binary.BigEndian.PutUint64(n[:], uint64(exp))
	mac.Write(n[:])
	return mac.Sum(nil)
}

// AddressAllowed reports whether remoteAddr ("host:port" as in
// http.Request.RemoteAddr, or a bare IP) is one of allowed, each entry an IP
// ("10.0.0.5", "::1") or a CIDR ("10.0.0.0/24"). IPv4-mapped IPv6 addresses
// match their IPv4 form. Entries that parse as neither are ignored, and an
// empty list allows nothing: when no allow-list is configured the caller
// skips this check. Validate the list at configuration time with
// ParseAllowList.
func AddressAllowed(remoteAddr string, allowed []string) bool {
	host := remoteAddr
	if h, _, err := net.SplitHostPort(remoteAddr); err == nil {
		host = h
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	addr = addr.Unmap().WithZone("")
	for _, a := range allowed {
		p, err := parseEntry(a)
		if err == nil && p.Contains(addr) {
			return true
		}
	}
	return false
}

// ParseAllowList checks every allow-list entry, for configuration loading.
func ParseAllowList(allowed []string) error {
	for _, a := range allowed {
		if _, err := parseEntry(a); err != nil {
			return err
		}
	}
	return nil
}

func parseEntry(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("mattermost: allow-list entry %q is neither an IP nor a CIDR", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
