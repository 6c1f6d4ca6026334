package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/cmd/internal/cliui"
	"github.com/gatehouse-dev/gatehouse/manifest"
	"github.com/gatehouse-dev/gatehouse/policies"
)

// Policy authoring commands run locally, with the same engine and built-ins
// as accessd; they need no server.
func policyDevCmds(g *globals) []*cobra.Command {
	var run string
	var verbose, coverage bool
	test := &cobra.Command{
		Use: "test [DIR...]", Short: "Run the Rego tests (OPA's tester, with Gatehouse's built-ins)", Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"."}
			}
			passed, failed, err := policies.RunTests(cmd.Context(), args, policies.TestOptions{Run: run, Verbose: verbose, Coverage: coverage}, os.Stdout)
			if err != nil {
				return err
			}
			if failed > 0 {
				return fmt.Errorf("%d passed, %d failed", passed, failed)
			}
			if passed == 0 {
				return fmt.Errorf("no tests found in %s", strings.Join(args, " "))
			}
			return nil
		},
	}
	test.Flags().StringVar(&run, "run", "", "only tests matching this regular expression")
	test.Flags().BoolVarP(&verbose, "verbose", "v", false, "print every test and traces of failures")
	test.Flags().BoolVar(&coverage, "coverage", false, "report coverage")

	var rolesFile string
	check := &cobra.Command{
		Use: "check [DIR]", Short: "Compile a bundle strictly and report file:line:col problems", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			b, err := policies.LoadDir(dir)
			if err != nil {
				return err
			}
			problems := policies.Check(b)
			for _, p := range problems {
				fmt.Fprintln(os.Stderr, p.String())
			}
			if len(problems) > 0 {
				return fmt.Errorf("%d problems", len(problems))
			}
			fmt.Printf("%s: %d files compile\n", dir, len(b.Files))
			roles, from, err := lintRoles(cmd, g, rolesFile)
			if err != nil {
				return err
			}
			if roles == nil {
				fmt.Println("roles not linted: no --roles file and no identity to read them from the server")
				return nil
			}
			findings := access.LintRequestableRoles(roles)
			for _, f := range findings {
				fmt.Fprintln(os.Stderr, "lint: "+f)
			}
			if len(findings) > 0 {
				return fmt.Errorf("%d requestable roles flagged (roles from %s)", len(findings), from)
			}
			fmt.Printf("%d roles from %s: no requestable role can edit roles or users\n", len(roles), from)
			return nil
		},
	}
	check.Flags().StringVar(&rolesFile, "roles", "", "lint the roles of this YAML file instead of the server's")

	var write bool
	fmtCmd := &cobra.Command{
		Use: "fmt [-w] DIR|FILE...", Short: "Format Rego as opa fmt does", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var files []string
			for _, a := range args {
				err := filepath.WalkDir(a, func(path string, d os.DirEntry, err error) error {
					if err == nil && !d.IsDir() && strings.HasSuffix(path, ".rego") {
						files = append(files, path)
					}
					return err
				})
				if err != nil {
					return err
				}
			}
			changed := 0
			for _, f := range files {
				src, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				out, err := policies.Format(src)
				if err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				if bytes.Equal(src, out) {
					continue
				}
				changed++
				if write {
					if err := os.WriteFile(f, out, 0o644); err != nil {
						return err
					}
				}
				fmt.Println(f)
			}
			if changed > 0 && !write {
				return &cliui.ExitCodeError{Code: cliui.ExitError, Err: fmt.Errorf("%d files need formatting (use -w)", changed)}
			}
			return nil
		},
	}
	fmtCmd.Flags().BoolVarP(&write, "write", "w", false, "rewrite the files")

	var dir, input, explain string
	eval := &cobra.Command{
		Use: "eval --input FILE [--dir DIR]", Short: "Decide one request input with a bundle and print the decision", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if input == "" {
				return cliui.UsageError("--input FILE is required (the policy input JSON, as in the audit event's policy_input)")
			}
			if explain != "" && !slices.Contains(policies.ExplainModes, explain) {
				return cliui.UsageError("--explain %q: want %s", explain, strings.Join(policies.ExplainModes, ", "))
			}
			raw, err := os.ReadFile(input)
			if err != nil {
				return err
			}
			var in access.PolicyInput
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&in); err != nil {
				return fmt.Errorf("%s: %w", input, err)
			}
			b := policies.Default()
			if dir != "" {
				if b, err = policies.LoadDir(dir); err != nil {
					return err
				}
			}
			e, err := policies.New(b)
			if err != nil {
				return err
			}
			if explain == "" {
				d, err := e.Decide(cmd.Context(), in)
				if err != nil {
					return err
				}
				d.NDCache = nil
				out, _ := json.MarshalIndent(d, "", "  ")
				fmt.Println(string(out))
				return nil
			}
			// One traced evaluation: the decision, then why.
			var why bytes.Buffer
			d, err := e.Explain(cmd.Context(), in, explain, &why)
			if err == nil {
				d.NDCache = nil
				out, _ := json.MarshalIndent(d, "", "  ")
				fmt.Println(string(out))
				fmt.Println()
			}
			fmt.Print(why.String())
			return err
		},
	}
	eval.Flags().StringVar(&input, "input", "", "policy input JSON file")
	eval.Flags().StringVar(&dir, "dir", "", "bundle directory (default: the built-in bundle)")
	eval.Flags().StringVar(&explain, "explain", "", "also print why: "+strings.Join(policies.ExplainModes, ", ")+" (as opa eval --explain; --explain alone: rules)")
	eval.Flags().Lookup("explain").NoOptDefVal = policies.ExplainRules
	return []*cobra.Command{test, check, fmtCmd, eval, replayCmd(g)}
}

// lintRoles reads the roles to lint: from a YAML file, or from the server
// when an identity is at hand; nil when neither is.
func lintRoles(cmd *cobra.Command, g *globals, file string) ([]access.Role, string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, "", err
		}
		objs, err := manifest.Decode(b)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", file, err)
		}
		var roles []access.Role
		for _, o := range objs {
			if o.Role != nil {
				roles = append(roles, *o.Role)
			}
		}
		return roles, file, nil
	}
	c, err := g.client()
	if err != nil {
		return nil, "", nil
	}
	raw, err := c.GetObjects(cmd.Context(), "role", "")
	if err != nil {
		return nil, "", fmt.Errorf("read roles from %s: %w", c.Server(), err)
	}
	var roles []access.Role
	if err := json.Unmarshal(raw, &roles); err != nil {
		return nil, "", err
	}
	return roles, c.Server(), nil
}
