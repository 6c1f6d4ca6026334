package pki

import (
	"encoding/hex"
	"errors"
	"strings"
)

// invitePrefix versions the invite token format.
const invitePrefix = "v1"

// FormatInvite builds an invite token from its secret (32 hex digits) and
// the CA pin: the token alone is enough for a first login verified without
// trust on first use.
func FormatInvite(secret, pin string) string {
	return invitePrefix + "." + secret + "." + strings.TrimPrefix(pin, "sha256:")
}

// ParseInvite splits an invite token into its secret and CA pin
// ("sha256:HEX").
func ParseInvite(t string) (secret, pin string, err error) {
	parts := strings.Split(strings.TrimSpace(t), ".")
	if len(parts) != 3 || parts[0] != invitePrefix || len(parts[1]) != 32 || len(parts[2]) != 64 {
		return "", "", errors.New("invite token: want v1.SECRET.PIN as printed by accessctl users add")
	}
	if _, err := hex.DecodeString(parts[1] + parts[2]); err != nil {
		return "", "", errors.New("invite token: not hexadecimal")
	}
	return parts[1], "sha256:" + parts[2], nil
}
