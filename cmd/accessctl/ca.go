package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/cmd/internal/cliui"
)

func caCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "ca", Short: "Certificate authority material for targets"}
	var typ, resource string
	export := &cobra.Command{
		Use:   "export --type ssh|db|kube|desktop|app [--resource NAME]",
		Short: "Print what targets must trust (ssh: TrustedUserCAKeys lines; db, kube, desktop: the resource's PEM bundle; app: JWKS)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if typ == "" {
				return cliui.UsageError("--type is required")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			out, err := c.ExportCA(cmd.Context(), typ, resource)
			if err != nil {
				return err
			}
			fmt.Print(out)
			return nil
		},
	}
	export.Flags().StringVar(&typ, "type", "", "ssh, db, kube, desktop or app")
	export.Flags().StringVar(&resource, "resource", "", "the database, Kubernetes cluster or Windows domain (db, kube, desktop)")
	var rtyp, rresource, phase string
	rotate := &cobra.Command{
		Use:   "rotate --type T [--resource NAME] --phase publish|switch|retire",
		Short: "Rotate a CA without leaving any target untrusting",
		Long: `Rotation has three phases; run them in order, updating targets in between:
  publish  a new key is added to the export beside the old one; nothing signs with it.
           Re-run "accessctl ca export" and install it on every target.
  switch   new credentials are signed with the new key; the old one stays trusted.
  retire   the old key leaves the export, refused until everything it signed has expired.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rtyp == "" || phase == "" {
				return cliui.UsageError("--type and --phase are required")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			set, err := c.RotateCA(cmd.Context(), rtyp, rresource, phase)
			if err != nil {
				return err
			}
			if g.format == "json" {
				return cliui.JSON(os.Stdout, set)
			}
			for _, k := range set.Keys {
				fmt.Printf("v%d  %-9s  %s  created %s\n", k.Version, k.State, k.Algorithm, k.Created.Local().Format("2006-01-02 15:04"))
			}
			return nil
		},
	}
	rotate.Flags().StringVar(&rtyp, "type", "", "ssh, db, kube, desktop or app")
	rotate.Flags().StringVar(&rresource, "resource", "", "the database, Kubernetes cluster or Windows domain (db, kube, desktop)")
	rotate.Flags().StringVar(&phase, "phase", "", "publish, switch or retire")
	cmd.AddCommand(export, rotate)
	return cmd
}
