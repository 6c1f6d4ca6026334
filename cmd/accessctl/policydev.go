package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/cmd/internal/cliui"
	"github.com/gatehouse-dev/gatehouse/policies"
)

// Policy authoring commands run locally, with the same engine and built-ins
// as accessd; they need no server.
func policyDevCmds() []*cobra.Command {
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
			return nil
		},
	}

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

	var dir, input string
	eval := &cobra.Command{
		Use: "eval --input FILE [--dir DIR]", Short: "Decide one request input with a bundle and print the decision", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if input == "" {
				return cliui.UsageError("--input FILE is required (the policy input JSON, as in the audit event's policy_input)")
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
			d, err := e.Decide(cmd.Context(), in)
			if err != nil {
				return err
			}
			d.NDCache = nil
			out, _ := json.MarshalIndent(d, "", "  ")
			fmt.Println(string(out))
			return nil
		},
	}
	eval.Flags().StringVar(&input, "input", "", "policy input JSON file")
	eval.Flags().StringVar(&dir, "dir", "", "bundle directory (default: the built-in bundle)")
	return []*cobra.Command{test, check, fmtCmd, eval}
}
