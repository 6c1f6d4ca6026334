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
// (never inside the data dir). With neither set it returns the zero KEK:
// no credentials, and the cluster CA key stays in the clear.
func loadKEK(cfg Config) (kek ca.KEK, source string, err error) {
	if cfg.CA.KEKFile == "" && os.Getenv(ca.KEKEnv) == "" {
		return ca.KEK{}, "", nil
	}
	if err := ca.CheckKEKOutside(cfg.CA.KEKFile, cfg.DataDir); err != nil {
		return ca.KEK{}, "", err
	}
	kek, source, err = ca.ResolveKEK(cfg.CA.KEKFile)
	if err != nil {
		return ca.KEK{}, "", fmt.Errorf("ca: %w", err)
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
	for _, typ := range []string{access.CATypeSSH, access.CATypeApp} {
		if err := m.Verify(ctx, typ, ""); err != nil && !errors.Is(err, access.ErrNotFound) {
			return nil, fmt.Errorf("ca %s (key-encryption key from %s): %w", typ, source, err)
		}
	}
	log.Info("certificate authority ready", "kek_from", source)
	return ca.NewAuthority(m, ca.WithForbiddenKubeGroups(cfg.CA.ForbiddenKubeGroups...)), nil
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
