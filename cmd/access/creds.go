package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/cmd/internal/cliui"
	"github.com/gatehouse-dev/gatehouse/pki"
)

// credsFlags are the targets of `access creds`: none means SSH.
type credsFlags struct {
	out, ttl   string
	db, dbUser string
	kube, app  string
	desktop    string
	login      string
}

func credsCmd(g *globals) *cobra.Command {
	var f credsFlags
	cmd := &cobra.Command{
		Use:   "creds ID [--out DIR] [--db NAME --db-user U | --kube NAME | --app NAME | --desktop NAME --login L]",
		Short: "Write the credentials of an approved grant; private keys are generated here and never leave this machine",
		Long: `Write the credentials of an approved grant into DIR (default: the current one):
  (no target flag)       SSH: id_ed25519, id_ed25519.pub, id_ed25519-cert.pub
  --db NAME --db-user U  db.crt, db.key, db-ca.pem (subject CN=U, from the database's own CA)
  --kube NAME            kubeconfig (client certificate, key, and the cluster's server and CA)
  --app NAME             app.jwt (ES256; verify with /.well-known/jwks.json)
  --desktop NAME --login L
                         desktop.crt, desktop.key (RSA-2048 smartcard-logon certificate for
                         L@DOMAIN, from the Windows domain's own CA)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dbSet, kubeSet, appSet := cmd.Flags().Changed("db"), cmd.Flags().Changed("kube"), cmd.Flags().Changed("app")
			desktopSet := cmd.Flags().Changed("desktop")
			targets := 0
			for _, on := range []bool{dbSet, kubeSet, appSet, desktopSet} {
				if on {
					targets++
				}
			}
			if targets > 1 {
				return cliui.UsageError("name one target: --db, --kube, --app or --desktop")
			}
			if f.login != "" && !desktopSet {
				return cliui.UsageError("--login goes with --desktop NAME")
			}
			if desktopSet && f.login == "" {
				return cliui.UsageError("--desktop needs --login L (one of the granted windows_desktop_logins)")
			}
			if f.dbUser != "" && !dbSet {
				return cliui.UsageError("--db-user goes with --db NAME")
			}
			if dbSet && f.dbUser == "" {
				return cliui.UsageError("--db needs --db-user U (one of the granted db_users)")
			}
			c, _, err := g.client()
			if err != nil {
				return err
			}
			if f.out == "" {
				f.out = "."
			}
			if err := os.MkdirAll(f.out, 0o700); err != nil {
				return err
			}
			ctx, id := cmd.Context(), args[0]
			switch {
			case dbSet:
				return credsDB(ctx, g, c, id, f)
			case kubeSet:
				return credsKube(ctx, g, c, id, f)
			case appSet:
				return credsApp(ctx, g, c, id, f)
			case desktopSet:
				return credsDesktop(ctx, g, c, id, f)
			}
			return credsSSH(ctx, g, c, id, f)
		},
	}
	cmd.Flags().StringVar(&f.out, "out", "", "directory for the files (default: the current one)")
	cmd.Flags().StringVar(&f.ttl, "ttl", "", "ask for a shorter life (capped by the grant and max_session_ttl)")
	cmd.Flags().StringVar(&f.db, "db", "", "database resource: write db.crt, db.key and db-ca.pem")
	cmd.Flags().StringVar(&f.dbUser, "db-user", "", "database user the certificate names (CN), among the granted db_users")
	cmd.Flags().StringVar(&f.kube, "kube", "", "kube_cluster resource: write kubeconfig")
	cmd.Flags().StringVar(&f.app, "app", "", "app resource: write app.jwt")
	cmd.Flags().StringVar(&f.desktop, "desktop", "", "windows_desktop resource: write desktop.crt and desktop.key")
	cmd.Flags().StringVar(&f.login, "login", "", "Windows login the certificate names, among the granted windows_desktop_logins")
	return cmd
}

func credsSSH(ctx context.Context, g *globals, c *api.Client, id string, f credsFlags) error {
	cred, keyPath, err := writeSSHKey(ctx, c, id, f.out, f.ttl)
	if err != nil {
		return err
	}
	if g.format == "json" {
		return cliui.JSON(os.Stdout, map[string]any{"files": []string{keyPath, keyPath + "-cert.pub"}, "credential": cred})
	}
	fmt.Printf("Wrote %s and %s-cert.pub, valid until %s for %s.\nConnect with: ssh -i %s LOGIN@HOST\n",
		keyPath, keyPath, cred.NotAfter.Local().Format(time.RFC3339), strings.Join(cred.Principals, ", "), keyPath)
	return nil
}

// newCSR generates an ECDSA P-256 key here and a CSR for it: only the CSR
// travels. It returns the CSR and the key as PKCS#8 PEM.
func newCSR(cn string) (csrPEM, keyPEM []byte, err error) {
	keyPEM, csrPEM, err = pki.NewKeyAndCSR(cn)
	return csrPEM, keyPEM, err
}

// outFile is one file `access creds` writes.
type outFile struct {
	name string
	data []byte
	mode os.FileMode
}

// writeFiles writes the files under dir and returns their paths.
func writeFiles(dir string, files ...outFile) ([]string, error) {
	var paths []string
	for _, fl := range files {
		p := filepath.Join(dir, fl.name)
		// Replace, so an older file's looser mode never survives.
		_ = os.Remove(p)
		if err := os.WriteFile(p, fl.data, fl.mode); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

func credsDB(ctx context.Context, g *globals, c *api.Client, id string, f credsFlags) error {
	csr, key, err := newCSR(f.dbUser)
	if err != nil {
		return err
	}
	cred, err := c.IssueCredential(ctx, id, api.CredentialRequest{Kind: "db", Resource: f.db, DBUser: f.dbUser, CSR: string(csr), TTL: f.ttl})
	if err != nil {
		return err
	}
	paths, err := writeFiles(f.out,
		outFile{"db.key", key, 0o600},
		outFile{"db.crt", []byte(cred.Certificate), 0o644},
		outFile{"db-ca.pem", []byte(cred.CAPEM), 0o644})
	if err != nil {
		return err
	}
	if g.format == "json" {
		return cliui.JSON(os.Stdout, map[string]any{"files": paths, "credential": cred})
	}
	fmt.Printf("Wrote %s, valid until %s for database %s as %s.\nConnect with: psql \"host=HOST dbname=DB user=%s sslmode=verify-full sslcert=%s sslkey=%s\"\n",
		strings.Join(paths, ", "), cred.NotAfter.Local().Format(time.RFC3339), cred.Resource, cred.Subject, cred.Subject, paths[1], paths[0])
	return nil
}

func credsKube(ctx context.Context, g *globals, c *api.Client, id string, f credsFlags) error {
	csr, key, err := newCSR("gatehouse")
	if err != nil {
		return err
	}
	cred, err := c.IssueCredential(ctx, id, api.CredentialRequest{Kind: "kube", Resource: f.kube, CSR: string(csr), TTL: f.ttl})
	if err != nil {
		return err
	}
	if cred.Server == "" {
		return fmt.Errorf("kube_cluster %s has no spec.server: ask an admin to set it; the certificate alone cannot make a kubeconfig", cred.Resource)
	}
	kc, err := ca.KubeconfigYAML(cred.Resource, cred.Server, cred.ServerCAPEM, cred.Subject, []byte(cred.Certificate), key)
	if err != nil {
		return err
	}
	paths, err := writeFiles(f.out, outFile{"kubeconfig", kc, 0o600})
	if err != nil {
		return err
	}
	if g.format == "json" {
		return cliui.JSON(os.Stdout, map[string]any{"files": paths, "credential": cred})
	}
	fmt.Printf("Wrote %s, valid until %s for cluster %s as %s (groups: %s).\nUse: kubectl --kubeconfig %s get pods\n",
		paths[0], cred.NotAfter.Local().Format(time.RFC3339), cred.Resource, cred.Subject, strings.Join(cred.Groups, ", "), paths[0])
	return nil
}

func credsApp(ctx context.Context, g *globals, c *api.Client, id string, f credsFlags) error {
	cred, err := c.IssueCredential(ctx, id, api.CredentialRequest{Kind: "app", Resource: f.app, TTL: f.ttl})
	if err != nil {
		return err
	}
	paths, err := writeFiles(f.out, outFile{"app.jwt", []byte(cred.Certificate + "\n"), 0o600})
	if err != nil {
		return err
	}
	if g.format == "json" {
		return cliui.JSON(os.Stdout, map[string]any{"files": paths, "credential": cred})
	}
	fmt.Printf("Wrote %s, valid until %s for app %s.\nUse: curl -H \"Authorization: Bearer $(cat %s)\" ...\n",
		paths[0], cred.NotAfter.Local().Format(time.RFC3339), cred.Resource, paths[0])
	return nil
}

// newRSACSR is newCSR with an RSA-2048 key: Windows smartcard logon
// (PKINIT) accepts RSA client keys on every domain controller version,
// ECDSA only on some.
func newRSACSR(cn string) (csrPEM, keyPEM []byte, err error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, csrPEM, err = pki.CSRFor(k, cn)
	return csrPEM, keyPEM, err
}

func credsDesktop(ctx context.Context, g *globals, c *api.Client, id string, f credsFlags) error {
	csr, key, err := newRSACSR(f.login)
	if err != nil {
		return err
	}
	cred, err := c.IssueCredential(ctx, id, api.CredentialRequest{Kind: "desktop", Resource: f.desktop, Login: f.login, CSR: string(csr), TTL: f.ttl})
	if err != nil {
		return err
	}
	paths, err := writeFiles(f.out,
		outFile{"desktop.key", key, 0o600},
		outFile{"desktop.crt", []byte(cred.Certificate), 0o644})
	if err != nil {
		return err
	}
	if g.format == "json" {
		return cliui.JSON(os.Stdout, map[string]any{"files": paths, "credential": cred})
	}
	fmt.Printf("Wrote %s, valid until %s for %s (domain %s).\nThe domain must trust its CA: accessctl ca export --type desktop --resource %s\n",
		strings.Join(paths, ", "), cred.NotAfter.Local().Format(time.RFC3339), strings.Join(cred.Principals, ", "), cred.Resource, cred.Resource)
	return nil
}
