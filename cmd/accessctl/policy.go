package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/cmd/internal/cliui"
)

func policyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Push, show and develop the Rego policy bundle"}
	push := &cobra.Command{
		Use: "push DIR", Short: "Install the .rego files (and data.json) of DIR as the bundle in force", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := readBundleDir(args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			b, err := c.PushPolicy(cmd.Context(), files)
			if err != nil {
				return err
			}
			if g.format == "json" {
				return cliui.JSON(os.Stdout, map[string]any{"revision": b.Revision, "files": len(files)})
			}
			fmt.Printf("Policy bundle revision %d is in force (%d files).\n", b.Revision, len(files))
			return nil
		},
	}
	show := &cobra.Command{
		Use: "show", Short: "Show the bundle in force", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			b, err := c.GetPolicy(cmd.Context())
			if err != nil {
				return err
			}
			if g.format == "json" {
				return cliui.JSON(os.Stdout, b)
			}
			names := make([]string, 0, len(b.Files))
			for n := range b.Files {
				names = append(names, n)
			}
			sort.Strings(names)
			fmt.Printf("Revision %d, pushed by %s at %s:\n", b.Revision, b.Author, b.Created.Local().Format("2006-01-02 15:04:05"))
			for _, n := range names {
				fmt.Printf("  %s (%d bytes)\n", n, len(b.Files[n]))
			}
			return nil
		},
	}
	cmd.AddCommand(push, show)
	cmd.AddCommand(policyDevCmds(g)...)
	return cmd
}

// readBundleDir reads the .rego files of dir (recursively; tests are left
// out, they are for `policy test`) and an optional data.json.
func readBundleDir(dir string) (map[string]string, error) {
	files := map[string]string{}
	total := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() || strings.HasSuffix(name, "_test.rego") || !(strings.HasSuffix(name, ".rego") || name == "data.json") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files[filepath.ToSlash(rel)] = string(b)
		total += len(b)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, cliui.UsageError("%s holds no .rego files", dir)
	}
	if total > access.MaxPolicyBundleBytes {
		return nil, fmt.Errorf("bundle in %s is %d bytes, at most %d", dir, total, access.MaxPolicyBundleBytes)
	}
	return files, nil
}
