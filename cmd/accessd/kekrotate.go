package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/ca"
)

// kekRotateCmd re-seals every sealed private key under a new KEK, from the
// host, while accessd runs (over the member's unix socket, as
// admin-identity) or not. The procedure around it is in the README
// ("Rotating the key-encryption key").
func kekRotateCmd() *cobra.Command {
	var dataDir, config, oldFile, newFile string
	cmd := &cobra.Command{
		Use:   "kek-rotate --old-kek-file OLD --new-kek-file NEW",
		Short: "Re-seal every CA private key under a new key-encryption key (on the host; safe to run again)",
		Long: `Re-seal every CA private key (credential CAs and the cluster TLS CA) from the
old key-encryption key to the new one, one compare-and-swap write per record.
Records already under the new KEK are left alone, so an interrupted run
resumes and a second run changes nothing. If any record opens under neither
KEK, nothing is changed.

Run it once every replica runs with ca.kek_file = NEW and
ca.previous_kek_file = OLD; afterwards remove previous_kek_file and restart
the replicas one at a time.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := hostConfig(cmd, config, dataDir)
			if err != nil {
				return err
			}
			from, err := loadKEKFlag("--old-kek-file", oldFile, cfg.DataDir)
			if err != nil {
				return err
			}
			to, err := loadKEKFlag("--new-kek-file", newFile, cfg.DataDir)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			st, closeStore, err := openHostStore(ctx, cfg, newLogger(LogConfig{Level: "warn"}))
			if err != nil {
				return err
			}
			defer closeStore()
			r, err := ca.RotateKEK(ctx, st, from, to, "system")
			if err != nil {
				return fmt.Errorf("kek-rotate from KEK %s to KEK %s: %w", from.ID(), to.ID(), err)
			}
			out := cmd.OutOrStdout()
			if r.Resealed == 0 {
				fmt.Fprintf(out, "nothing to re-seal: %s under KEK %s already (cluster CA key: %s)\n", privateKeys(r.AlreadyNew), r.NewKEK, r.ClusterKey)
			} else {
				fmt.Fprintf(out, "re-sealed %s from KEK %s to KEK %s (%d under it already; cluster CA key: %s)\n", privateKeys(r.Resealed), r.OldKEK, r.NewKEK, r.AlreadyNew, r.ClusterKey)
			}
			if r.ClusterKey == "clear" {
				fmt.Fprintln(out, "the cluster CA key is stored unencrypted: accessd seals it under its ca.kek_file at the next start")
			}
			fmt.Fprintln(out, "next: remove ca.previous_kek_file (and GATEHOUSE_PREVIOUS_KEK) on every replica and restart them one at a time; then destroy the old KEK and its copies")
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dataDir, "data-dir", "/var/lib/gatehouse", "data directory of accessd")
	fl.StringVar(&config, "config", "", "accessd.yaml (storage settings; its ca.kek_file is not used)")
	fl.StringVar(&oldFile, "old-kek-file", "", "the key-encryption key the keys are sealed under now (mode 0600)")
	fl.StringVar(&newFile, "new-kek-file", "", "the key-encryption key to seal them under (accessd kek-generate; mode 0600)")
	_ = cmd.MarkFlagRequired("old-kek-file")
	_ = cmd.MarkFlagRequired("new-kek-file")
	return cmd
}

func privateKeys(n int) string {
	if n == 1 {
		return "1 private key"
	}
	return fmt.Sprintf("%d private keys", n)
}

// loadKEKFlag reads the key file given with flag; like ca.kek_file, it must
// be mode 0600 and outside the data dir.
func loadKEKFlag(flag, file, dataDir string) (ca.KEK, error) {
	if err := ca.CheckKEKOutside(file, dataDir); err != nil {
		return ca.KEK{}, fmt.Errorf("%s: %w", flag, err)
	}
	k, err := ca.LoadKEK(file)
	if err != nil {
		return ca.KEK{}, fmt.Errorf("%s: %w", flag, err)
	}
	return k, nil
}
