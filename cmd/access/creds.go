package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/cmd/internal/cliui"
)

func credsCmd(g *globals) *cobra.Command {
	var out, ttl string
	cmd := &cobra.Command{
		Use:   "creds ID [--out DIR]",
		Short: "Write the credentials of an approved grant (SSH: id_ed25519 + id_ed25519-cert.pub); the private key never leaves this machine",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := g.client()
			if err != nil {
				return err
			}
			if out == "" {
				out = "."
			}
			if err := os.MkdirAll(out, 0o700); err != nil {
				return err
			}
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			sshPub, err := ssh.NewPublicKey(pub)
			if err != nil {
				return err
			}
			cred, err := c.IssueCredential(cmd.Context(), args[0], api.CredentialRequest{Kind: "ssh", PublicKey: string(ssh.MarshalAuthorizedKey(sshPub)), TTL: ttl})
			if err != nil {
				return err
			}
			block, err := ssh.MarshalPrivateKey(priv, "gatehouse "+cred.KeyID)
			if err != nil {
				return err
			}
			keyPath := filepath.Join(out, "id_ed25519")
			if err := os.WriteFile(keyPath, pem.EncodeToMemory(block), 0o600); err != nil {
				return err
			}
			if err := os.WriteFile(keyPath+".pub", ssh.MarshalAuthorizedKey(sshPub), 0o644); err != nil {
				return err
			}
			if err := os.WriteFile(keyPath+"-cert.pub", []byte(cred.Certificate+"\n"), 0o644); err != nil {
				return err
			}
			if g.format == "json" {
				return cliui.JSON(os.Stdout, map[string]any{"files": []string{keyPath, keyPath + "-cert.pub"}, "credential": cred})
			}
			fmt.Printf("Wrote %s and %s-cert.pub, valid until %s for %s.\nConnect with: ssh -i %s LOGIN@HOST\n",
				keyPath, keyPath, cred.NotAfter.Local().Format(time.RFC3339), strings.Join(cred.Principals, ", "), keyPath)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory for the files (default: the current one)")
	cmd.Flags().StringVar(&ttl, "ttl", "", "ask for a shorter life (capped by the grant and max_session_ttl)")
	return cmd
}
