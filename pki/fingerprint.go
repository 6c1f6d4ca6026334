package pki

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
)

// KeyFingerprint is "SHA256:<base64>" (unpadded, as OpenSSH prints
// fingerprints) of pub's PKIX DER encoding: what the device login binds a
// code to and what both the CLI and the chat prompt show.
func KeyFingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("key fingerprint: %w", err)
	}
	sum := sha256.Sum256(der)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:]), nil
}
