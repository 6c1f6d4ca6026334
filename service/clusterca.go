package service

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/pki"
)

// The cluster's TLS CA signs accessd's server certificate and every
// session certificate: whoever holds its key can mint an admin session. With
// a key-encryption key (WithKEK) the key is kept sealed in etcd; every read
// of it goes through ca.OpenClusterKey.

// clusterSealAttempts bounds the compare-and-swap retries of sealing the
// cluster CA key; only replicas sealing at the same moment contend.
const clusterSealAttempts = 8

// WithKEK sets the key-encryption key that seals the cluster TLS CA key.
// Without it (or with the zero KEK) the key stays in the clear, and a
// sealed key cannot be opened. During a KEK rotation kek carries the
// previous key too (ca.KEK.WithPrevious): the key opens under either, and
// is sealed under the current one; accessd kek-rotate re-seals it (the
// same PEM, so the keys DeriveClusterKey gives do not change).
func WithKEK(kek ca.KEK) Option { return func(s *Service) { s.kek = kek } }

// authority returns the cluster's TLS CA from the store, its key opened
// with the KEK.
func (s *Service) authority(ctx context.Context) (*pki.CA, error) {
	cs, err := s.store.GetCluster(ctx)
	if err != nil {
		return nil, fmt.Errorf("load cluster CA: %w", err)
	}
	return ca.LoadClusterCA(cs, s.kek)
}

// ClusterAuthority returns the cluster's TLS CA, for accessd to sign its
// server certificate.
func (s *Service) ClusterAuthority(ctx context.Context) (*pki.CA, error) {
	return s.authority(ctx)
}

// DeriveClusterKey derives a size-byte key for purpose label from the
// cluster CA key, which every replica shares (HKDF-SHA256 over the key's
// PEM, no salt): a secret all replicas agree on without configuring one.
// It is the same whether the key is stored sealed or in the clear.
func (s *Service) DeriveClusterKey(ctx context.Context, label string, size int) ([]byte, error) {
	cs, err := s.store.GetCluster(ctx)
	if err != nil {
		return nil, fmt.Errorf("read cluster state: %w", err)
	}
	keyPEM, err := ca.OpenClusterKey(cs, s.kek)
	if err != nil {
		return nil, err
	}
	defer clear(keyPEM)
	return hkdf.Key(sha256.New, keyPEM, nil, label, size)
}

// bootstrapClusterCA creates the cluster CA when the storage has none
// (sealed when a KEK is set), seals the key of an existing cluster that
// holds it in the clear, and checks the key opens. Replicas starting
// together agree: creation is create-if-absent and sealing a
// compare-and-swap, so the losers find the winner's sealed key. A key that
// does not open (sealed under another KEK, or sealed with no KEK given)
// stops here and nothing is written.
func (s *Service) bootstrapClusterCA(ctx context.Context) error {
	cs, err := s.store.GetCluster(ctx)
	if errors.Is(err, access.ErrNotFound) {
		fresh, err := ca.NewClusterState(s.cfg.ClusterName, s.now(), s.kek)
		if err != nil {
			return err
		}
		if cs, _, err = s.store.InitCluster(ctx, fresh); err != nil {
			return fmt.Errorf("init cluster: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("read cluster state: %w", err)
	}
	if !ca.ClusterKeySealed(cs) && !s.kek.IsZero() {
		if cs, err = s.sealClusterKey(ctx, cs); err != nil {
			return err
		}
	}
	if _, err := ca.LoadClusterCA(cs, s.kek); err != nil {
		return err // names the cluster CA key and what to do
	}
	if !ca.ClusterKeySealed(cs) {
		s.log.Warn("the cluster CA key is stored unencrypted in etcd: whoever can read etcd can mint an admin session certificate; set ca.kek_file (or " + ca.KEKEnv + ") to seal it at the next start")
	}
	return nil
}

// sealClusterKey replaces the clear cluster CA key with the sealed one in
// one compare-and-swap, with an audit event; when another replica sealed
// it first, it returns that state.
func (s *Service) sealClusterKey(ctx context.Context, cs access.ClusterState) (access.ClusterState, error) {
	system := Caller{User: access.User{Metadata: access.Metadata{Name: "system"}}, Source: "bootstrap"}
	for range clusterSealAttempts {
		if ca.ClusterKeySealed(cs) {
			return cs, nil
		}
		sealed, err := ca.SealClusterKey(cs, s.kek)
		if err != nil {
			return cs, err
		}
		out, err := s.store.UpdateCluster(ctx, sealed,
			s.audit(system, "cluster.ca_key_sealed", "", OutcomeSuccess, "cluster CA key sealed under the key-encryption key", nil))
		if err == nil {
			s.log.Info("sealed the cluster CA key under the key-encryption key")
			return out, nil
		}
		if !errors.Is(err, access.ErrConflict) {
			return cs, fmt.Errorf("seal the cluster CA key: %w", err)
		}
		if cs, err = s.store.GetCluster(ctx); err != nil {
			return cs, fmt.Errorf("read cluster state: %w", err)
		}
	}
	return cs, fmt.Errorf("seal the cluster CA key: the cluster state kept changing: %w", access.ErrConflict)
}
