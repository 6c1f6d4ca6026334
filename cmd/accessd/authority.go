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

// openAuthority opens the CA with the key-encryption key from GATEHOUSE_KEK
// or ca.kek_file (never inside the data dir). A KEK that does not open the
// stored keys stops the start with a clear error and rewrites nothing.
// Without any KEK there is no CA: credentials are refused.
func openAuthority(ctx context.Context, cfg Config, st *store.Store, log *slog.Logger) (*ca.Authority, error) {
	if cfg.CA.KEKFile == "" && os.Getenv(ca.KEKEnv) == "" {
		log.Warn("no key-encryption key (ca.kek_file or GATEHOUSE_KEK): credentials are disabled")
		return nil, nil
	}
	if err := ca.CheckKEKOutside(cfg.CA.KEKFile, cfg.DataDir); err != nil {
		return nil, err
	}
	kek, source, err := ca.ResolveKEK(cfg.CA.KEKFile)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	var mopts []ca.Option
	if alg := cfg.CA.SSHAlgorithm; alg != "" {
		if !ca.AlgorithmAllowed(access.CATypeSSH, alg) {
			return nil, fmt.Errorf("ca.ssh_algorithm %q: want ed25519, ecdsa-p256 or rsa-3072", alg)
		}
		mopts = append(mopts, ca.WithAlgorithm(access.CATypeSSH, alg))
	}
	m := ca.NewManager(st, kek, mopts...)
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
