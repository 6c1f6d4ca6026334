package main

import (
	"fmt"

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
	cmd.AddCommand(export)
	return cmd
}
