package policies

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/gatehouse-dev/gatehouse/access"
)

// TestOptions are the options of RunTests (`accessctl policy test`).
type TestOptions struct {
	Run      string // only tests whose name matches this regular expression
	Verbose  bool   // print every test and traces of failures
	Coverage bool   // print a coverage report after the results
}

// testerBuiltins are the custom built-ins for OPA's tester, without a
// directory: tests mock them with `with`; an unmocked call raises an error.
func testerBuiltins() []*tester.Builtin {
	opts := builtinOptions(func() access.OnCallDirectory { return nil })
	return []*tester.Builtin{
		{Decl: astBuiltin(onCallsDecl), Func: opts[0]},
		{Decl: astBuiltin(onCallDecl), Func: opts[1]},
	}
}

// RunTests runs the Rego tests (rules named test_*) of the bundles in dirs
// with OPA's tester, Gatehouse's built-ins registered, and writes OPA's
// report to w. It returns the number of passed and failed (or erroring)
// tests; err is set when the tests could not run (a compile error).
func RunTests(ctx context.Context, dirs []string, opts TestOptions, w io.Writer) (passed, failed int, err error) {
	modules, store, err := tester.LoadWithRegoVersion(dirs, nil, ast.RegoV1)
	if err != nil {
		return 0, 0, err
	}
	compiler := ast.NewCompiler().
		WithCapabilities(capabilities()).
		WithDefaultRegoVersion(ast.RegoV1).
		WithEnablePrintStatements(true)
	runner := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(store).
		SetDefaultRegoVersion(ast.RegoV1).
		AddCustomBuiltins(testerBuiltins()).
		CapturePrintOutput(true).
		EnableTracing(opts.Verbose).
		Filter(opts.Run)
	var cov *cover.Cover
	if opts.Coverage {
		cov = cover.New()
		runner = runner.SetCoverageQueryTracer(cov)
	}
	ch, err := runner.SetModules(modules).RunTests(ctx, nil)
	if err != nil {
		return 0, 0, err
	}
	// Count the results while OPA's reporter prints them.
	fwd := make(chan *tester.Result)
	done := make(chan error, 1)
	go func() {
		done <- tester.PrettyReporter{Output: w, Verbose: opts.Verbose}.Report(fwd)
	}()
	for r := range ch {
		switch {
		case r.Skip:
		case r.Fail || r.Error != nil:
			failed++
		default:
			passed++
		}
		fwd <- r
	}
	close(fwd)
	// The pretty reporter returns an error when a test failed; the counts
	// say that already.
	<-done
	if cov != nil {
		writeCoverage(w, cov.Report(modules))
	}
	return passed, failed, nil
}

func writeCoverage(w io.Writer, rep cover.Report) {
	fmt.Fprintf(w, "\ncoverage: %.1f%% (%d lines covered, %d not covered)\n", rep.Coverage, rep.CoveredLines, rep.NotCoveredLines)
	files := make([]string, 0, len(rep.Files))
	for f := range rep.Files {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		fr := rep.Files[f]
		var missing []string
		for _, r := range fr.NotCovered {
			if r.Start.Row == r.End.Row {
				missing = append(missing, fmt.Sprint(r.Start.Row))
			} else {
				missing = append(missing, fmt.Sprintf("%d-%d", r.Start.Row, r.End.Row))
			}
		}
		line := fmt.Sprintf("  %-50s %5.1f%%", f, fr.Coverage)
		if len(missing) > 0 {
			line += "  not covered: " + strings.Join(missing, ",")
		}
		fmt.Fprintln(w, line)
	}
}
