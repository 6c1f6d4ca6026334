// Package ca is Gatehouse's certificate authority: CA keys kept in etcd
// sealed under a key-encryption key, and one issuer per credential kind
// (ssh, db, kube, desktop, app). Issuers take the CA's crypto.Signer and an
// explicit Validity computed from the grant, so no credential outlives it.
package ca

import "time"

// Validity is a credential's window. Callers compute it from the grant
// (access.CredentialTTL): NotBefore backdated a minute for clock skew,
// NotAfter never past the access expiry.
type Validity struct {
	NotBefore time.Time
	NotAfter  time.Time
}
