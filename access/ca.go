package access

import (
	"context"
	"time"
)

// CA types, everywhere the same names.
const (
	CATypeSSH     = "ssh"
	CATypeDB      = "db"
	CATypeKube    = "kube"
	CATypeDesktop = "desktop"
	CATypeApp     = "app"
)

// CA key states through a rotation: a key is published (trusted, not yet
// signing), active (signing), then retiring (still trusted until what it
// signed has expired), then removed.
const (
	CAKeyPublished = "published"
	CAKeyActive    = "active"
	CAKeyRetiring  = "retiring"
)

// CAKey is one key of a CA. The private key is sealed by ca/ with the
// key-encryption key (AES-256-GCM, bound to the record's etcd key, CA type
// and version); the domain never sees it in the clear.
type CAKey struct {
	Version   int       `json:"version"`
	Algorithm string    `json:"algorithm"` // ed25519 | ecdsa-p256 | rsa-3072 ...
	State     string    `json:"state"`
	Public    string    `json:"public"`             // SSH authorized_keys line, or PEM public key
	CertPEM   string    `json:"cert_pem,omitempty"` // self-signed CA certificate (X.509 types)
	Sealed    []byte    `json:"sealed"`             // KEK header (names the KEK) || nonce || AES-GCM ciphertext of the PKCS#8 private key; see ca/kek.go
	Created   time.Time `json:"created"`
	// SignedUntil is the latest NotAfter of anything this key signed; a
	// retiring key leaves the export only after it.
	SignedUntil time.Time `json:"signed_until,omitempty"`
}

// CAKeySet is the keys of one CA: a type, and for db, kube and desktop the
// resource (database, cluster, Windows domain) it serves.
type CAKeySet struct {
	Type     string  `json:"type"`
	Resource string  `json:"resource,omitempty"`
	Keys     []CAKey `json:"keys"`
	Revision int64   `json:"revision,omitempty"`
}

// CAKeyStore keeps CA key sets in etcd.
type CAKeyStore interface {
	// GetCAKeys returns the set (ErrNotFound if none).
	GetCAKeys(ctx context.Context, typ, resource string) (CAKeySet, error)
	// PutCAKeys writes the set; Revision 0 means create-if-absent
	// (ErrAlreadyExists), otherwise compare-and-swap on it (ErrConflict).
	PutCAKeys(ctx context.Context, set CAKeySet, events ...AuditEvent) (CAKeySet, error)
	// CAKeyPath is the etcd key of a set, which the seal binds to.
	CAKeyPath(typ, resource string) string
}

// CARotator rotates CA keys in three phases so no target is ever left
// untrusting: publish (new key exported beside the old, nothing signs with
// it), switch (new credentials are signed with it), retire (the old key
// leaves the export once everything it signed has expired).
type CARotator interface {
	RotateCA(ctx context.Context, typ, resource, phase string) (CAKeySet, error)
}
