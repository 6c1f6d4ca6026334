package ca

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/pki"
)

// The cluster's TLS CA (pki/: it signs accessd's server certificate and
// every session certificate) keeps its private key in access.ClusterState.
// With a key-encryption key the key is sealed there in the same AES-256-GCM
// envelope as the credential CA keys, under its own additional data;
// without one it stays in the clear, as it was before sealing existed.
// Whatever reads the key goes through OpenClusterKey.

// ErrClusterKeySealed is returned when the cluster CA key is sealed and no
// key-encryption key was given to open it.
var ErrClusterKeySealed = errors.New("the cluster CA key is sealed under a key-encryption key, and none is set: give the one it was sealed with (ca.kek_file, --kek-file or " + KEKEnv + ")")

// clusterKeyAAD is the additional data of the sealed cluster CA key: a
// label of its own, so neither a credential CA key nor anything else
// sealed under the same KEK opens as the cluster key, or the reverse.
func clusterKeyAAD() []byte {
	var b []byte
	for _, s := range []string{"gatehouse-cluster-key-v1", "cluster/tls-ca"} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

// ClusterKeySealed reports whether cs holds its CA key sealed.
func ClusterKeySealed(cs access.ClusterState) bool { return cs.CAKeySealed != "" }

// NewClusterState makes the state of a new cluster: a fresh TLS CA whose
// key is sealed under kek, or kept in the clear when kek is zero.
func NewClusterState(name string, now time.Time, kek KEK) (access.ClusterState, error) {
	certPEM, keyPEM, err := pki.NewCA(name, now)
	if err != nil {
		return access.ClusterState{}, err
	}
	cs := access.ClusterState{Name: name, CACertPEM: string(certPEM), CAKeyPEM: string(keyPEM), Created: now.UTC()}
	clear(keyPEM)
	if kek.IsZero() {
		return cs, nil
	}
	return SealClusterKey(cs, kek)
}

// SealClusterKey returns cs with its CA key sealed under kek and the clear
// key removed; a state already sealed is returned as it is. The key must
// belong to the CA certificate: a damaged key is never sealed. The PEM is
// sealed byte for byte, so what OpenClusterKey returns (and every key
// derived from it) is the same before and after.
func SealClusterKey(cs access.ClusterState, kek KEK) (access.ClusterState, error) {
	if ClusterKeySealed(cs) {
		return cs, nil
	}
	if kek.IsZero() {
		return cs, errors.New("seal the cluster CA key: no key-encryption key")
	}
	if _, err := pki.LoadCA([]byte(cs.CACertPEM), []byte(cs.CAKeyPEM)); err != nil {
		return cs, fmt.Errorf("seal the cluster CA key: %w", err)
	}
	sealed, err := kek.Seal([]byte(cs.CAKeyPEM), clusterKeyAAD())
	if err != nil {
		return cs, fmt.Errorf("seal the cluster CA key: %w", err)
	}
	cs.CAKeySealed = base64.StdEncoding.EncodeToString(sealed)
	cs.CAKeyPEM = ""
	return cs, nil
}

// OpenClusterKey returns the cluster TLS CA's private key (PEM) from cs:
// opened with kek when sealed (ErrClusterKeySealed without a KEK,
// ErrKEKMismatch with another one), as stored otherwise. It is the one way
// to read the key; the caller must not keep or log it.
func OpenClusterKey(cs access.ClusterState, kek KEK) ([]byte, error) {
	if !ClusterKeySealed(cs) {
		if cs.CAKeyPEM == "" {
			return nil, errors.New("cluster CA key: the cluster state holds no key")
		}
		return []byte(cs.CAKeyPEM), nil
	}
	if kek.IsZero() {
		return nil, ErrClusterKeySealed
	}
	sealed, err := base64.StdEncoding.DecodeString(cs.CAKeySealed)
	if err != nil {
		return nil, fmt.Errorf("cluster CA key: sealed value is not base64: %w", err)
	}
	keyPEM, err := kek.Open(sealed, clusterKeyAAD())
	if err != nil {
		return nil, fmt.Errorf("cluster CA key: %w", err)
	}
	return keyPEM, nil
}

// LoadClusterCA loads the cluster's TLS CA from cs, its key opened by
// OpenClusterKey.
func LoadClusterCA(cs access.ClusterState, kek KEK) (*pki.CA, error) {
	keyPEM, err := OpenClusterKey(cs, kek)
	if err != nil {
		return nil, err
	}
	ca, err := pki.LoadCA([]byte(cs.CACertPEM), keyPEM)
	clear(keyPEM) // our copy: the CA keeps the parsed key only
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	return ca, nil
}

// ClusterKeyKEKID is the id of the KEK the sealed cluster CA key names
// (see SealedKEKID): "" when the key is in the clear, or sealed before
// KEK ids.
func ClusterKeyKEKID(cs access.ClusterState) string {
	sealed, err := base64.StdEncoding.DecodeString(cs.CAKeySealed)
	if err != nil {
		return ""
	}
	return SealedKEKID(sealed)
}

// ResealClusterKey returns cs with its sealed CA key re-sealed under the
// KEK to, opened with from; changed is false when the key was already
// under to (checked to open) and cs is returned as it is. A key in the
// clear is not sealed here (accessd seals it at start); it is an error, as
// is a key neither KEK opens (ErrKEKMismatch naming the KEKs).
func ResealClusterKey(cs access.ClusterState, from, to KEK) (access.ClusterState, bool, error) {
	if !ClusterKeySealed(cs) {
		return cs, false, errors.New("cluster CA key: stored in the clear, not sealed; accessd seals it under its KEK at start")
	}
	sealed, err := base64.StdEncoding.DecodeString(cs.CAKeySealed)
	if err != nil {
		return cs, false, fmt.Errorf("cluster CA key: sealed value is not base64: %w", err)
	}
	out, changed, err := reseal(sealed, clusterKeyAAD(), from, to)
	if err != nil {
		return cs, false, fmt.Errorf("cluster CA key: %w", err)
	}
	if changed {
		cs.CAKeySealed = base64.StdEncoding.EncodeToString(out)
	}
	return cs, changed, nil
}
