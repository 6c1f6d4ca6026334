package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/cmd/internal/cliui"
)

func sshCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "ssh", Short: "What SSH hosts need to accept Gatehouse certificates"}
	var logins []string
	principals := &cobra.Command{
		Use:   "principals HOST --login L[,L]",
		Short: "Print the AuthorizedPrincipalsFile lines a host needs (one file per local login)",
		Long: `Certificates carry host-scoped principals, LOGIN@HOST, so a certificate granted
for one host opens no other. A host accepts them with
  TrustedUserCAKeys /etc/ssh/gatehouse_ca.pub            (accessctl ca export --type ssh)
  AuthorizedPrincipalsFile /etc/ssh/gatehouse_principals/%u
where the file of each local login holds the line this command prints for it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(logins) == 0 {
				return cliui.UsageError("--login is required: the local accounts Gatehouse users may log in as")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			raw, err := c.GetObjects(cmd.Context(), "resource", access.KindNode+"/"+args[0])
			if err != nil {
				return fmt.Errorf("node %q: %w", args[0], err)
			}
			var node access.Resource
			if err := json.Unmarshal(raw, &node); err != nil {
				return err
			}
			host := node.Spec.Hostname
			if host == "" {
				host = node.Metadata.Name
			}
			if len(logins) == 1 {
				fmt.Print(access.AuthorizedPrincipals(host, logins[0]))
				return nil
			}
			for _, l := range logins {
				fmt.Printf("# /etc/ssh/gatehouse_principals/%s\n%s", l, access.AuthorizedPrincipals(host, l))
			}
			return nil
		},
	}
	principals.Flags().StringSliceVar(&logins, "login", nil, "local logins on the host")
	cmd.AddCommand(principals)
	return cmd
}
