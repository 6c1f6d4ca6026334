package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/store"
)

// loadKEK reads the key-encryption key from GATEHOUSE_KEK or ca.kek_file
// (never inside the data dir), and during a KEK rotation the previous one
// from GATEHOUSE_PREVIOUS_KEK or ca.previous_kek_file, which then opens what
// it sealed (new keys are always sealed under the current one). With
// neither set it returns the zero KEK: no credentials, and the cluster CA
// key stays in the clear.
func loadKEK(cfg Config) (kek ca.KEK, source string, err error) {
	if cfg.CA.KEKFile == "" && os.Getenv(ca.KEKEnv) == "" {
		if cfg.CA.PreviousKEKFile != "" || os.Getenv(ca.PreviousKEKEnv) != "" {
			return ca.KEK{}, "", errors.New("ca.previous_kek_file (or " + ca.PreviousKEKEnv + ") is set without ca.kek_file (or " + ca.KEKEnv + "): a KEK rotation needs the new key as kek_file")
		}
		return ca.KEK{}, "", nil
	}
	for _, f := range []string{cfg.CA.KEKFile, cfg.CA.PreviousKEKFile} {
		if err := ca.CheckKEKOutside(f, cfg.DataDir); err != nil {
			return ca.KEK{}, "", err
		}
	}
	kek, source, err = ca.ResolveKEK(cfg.CA.KEKFile)
	if err != nil {
		return ca.KEK{}, "", fmt.Errorf("ca: %w", err)
	}
	prev, prevSource, ok, err := ca.ResolvePreviousKEK(cfg.CA.PreviousKEKFile)
	if err != nil {
		return ca.KEK{}, "", fmt.Errorf("ca: %w", err)
	}
	if ok {
		if kek, err = kek.WithPrevious(prev); err != nil {
			return ca.KEK{}, "", fmt.Errorf("ca: %s and %s: %w", source, prevSource, err)
		}
		source += ", previous from " + prevSource
	}
	return kek, source, nil
}

// openAuthority opens the CA with the key-encryption key (loadKEK). A KEK
// that does not open the stored keys stops the start with a clear error
// and rewrites nothing. Without a KEK there is no CA: credentials are
// refused. The CA key sets are kept in memory, following etcd, until ctx
// ends.
func openAuthority(ctx context.Context, cfg Config, st *store.Store, kek ca.KEK, source string, log *slog.Logger) (*ca.Authority, error) {
	if kek.IsZero() {
		log.Warn("no key-encryption key (ca.kek_file or GATEHOUSE_KEK): credentials are disabled")
		return nil, nil
	}
	var mopts []ca.Option
	if alg := cfg.CA.SSHAlgorithm; alg != "" {
		if !ca.AlgorithmAllowed(access.CATypeSSH, alg) {
			return nil, fmt.Errorf("ca.ssh_algorithm %q: want ed25519, ecdsa-p256 or rsa-3072", alg)
		}
		mopts = append(mopts, ca.WithAlgorithm(access.CATypeSSH, alg))
	}
	keys, err := st.CacheCAKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	m := ca.NewManager(keys, kek, mopts...)
	if err := verifyCAKeys(ctx, st, m, kek, source, log); err != nil {
		return nil, err
	}
	log.Info("certificate authority ready", "kek_from", source, "kek_id", kek.ID())
	return ca.NewAuthority(m, ca.WithForbiddenKubeGroups(cfg.CA.ForbiddenKubeGroups...)), nil
}

// verifyCAKeys opens every CA key with the KEK, so a wrong GATEHOUSE_KEK
// or kek_file, or a KEK rotation half done (a key still under a KEK that
// is no longer given), refuses to start instead of failing an issuance;
// nothing is written. With a previous KEK it says whether anything still
// needs it: a key that does not name the current KEK (under the previous
// one, or sealed before KEK ids) waits for accessd kek-rotate.
func verifyCAKeys(ctx context.Context, st *store.Store, m *ca.Manager, kek ca.KEK, source string, log *slog.Logger) error {
	sets, err := st.ListCAKeys(ctx)
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	pending := 0 // keys not under the current KEK
	for _, set := range sets {
		if err := m.Verify(ctx, set.Type, set.Resource); err != nil {
			if errors.Is(err, ca.ErrKEKMismatch) {
				err = fmt.Errorf("%w; during a KEK rotation give the old key as ca.previous_kek_file until accessd kek-rotate has run", err)
			}
			return fmt.Errorf("ca %s (key-encryption key from %s): %w", caLabel(set), source, err)
		}
		for _, k := range set.Keys {
			if ca.SealedKEKID(k.Sealed) != kek.ID() {
				pending++
			}
		}
	}
	if kek.PreviousID() == "" {
		return nil
	}
	if cs, err := st.GetCluster(ctx); err == nil && ca.ClusterKeySealed(cs) && ca.ClusterKeyKEKID(cs) != kek.ID() {
		pending++
	}
	if pending > 0 {
		log.Info("KEK rotation under way: keys sealed under the previous KEK open; run accessd kek-rotate to re-seal them under the current one", "not_yet_resealed", pending, "kek_id", kek.ID(), "previous_kek_id", kek.PreviousID())
	} else {
		log.Info("no key is sealed under the previous KEK any more: remove ca.previous_kek_file once accessd kek-rotate has run", "kek_id", kek.ID(), "previous_kek_id", kek.PreviousID())
	}
	return nil
}

func caLabel(set access.CAKeySet) string {
	if set.Resource == "" {
		return set.Type
	}
	return set.Type + "/" + set.Resource
}

func kekGenerateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "kek-generate FILE",
		Short: "Write a new random key-encryption key (mode 0600; never overwrites)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := ca.GenerateKEKFile(args[0]); err != nil {
				return err
			}
			fmt.Printf("wrote a new key-encryption key to %s (mode 0600): keep it outside the data dir and back it up; without it the CA keys cannot be opened\n", args[0])
			return nil
		},
	}
}
