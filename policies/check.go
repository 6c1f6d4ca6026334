package policies

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/format"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/gatehouse-dev/gatehouse/access"
)

// Limits of a bundle: a bigger one is refused and never replaces the bundle
// in force.
const (
	MaxBundleBytes = 4 << 20
	MaxBundleFiles = 500
)

// Problem is one compile problem of a bundle, located at file:line:col.
type Problem struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Col     int    `json:"col"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	loc := p.File
	if p.Line > 0 {
		loc = fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
	}
	if loc == "" {
		return p.Code + ": " + p.Message
	}
	return loc + ": " + p.Code + ": " + p.Message
}

// CompileError is the error of a bundle that does not compile. It wraps
// access.ErrInvalid: the bundle is refused, the one in force stays.
type CompileError struct {
	Problems []Problem
}

func (e *CompileError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "policy bundle does not compile:\n" + strings.Join(lines, "\n")
}

func (e *CompileError) Unwrap() error { return access.ErrInvalid }

// Check compiles the bundle as the engine does (strict mode, Rego v1, our
// built-ins) and returns its problems, none if it would load.
func Check(b Bundle) []Problem {
	_, _, err := compileBundle(b)
	if err == nil {
		return nil
	}
	var ce *CompileError
	if errors.As(err, &ce) {
		return ce.Problems
	}
	return []Problem{{Code: "error", Message: err.Error()}}
}

// Format formats Rego source as `opa fmt` does (Rego v1).
func Format(src []byte) ([]byte, error) {
	return format.SourceWithOpts("policy.rego", src, format.Opts{RegoVersion: ast.RegoV1})
}

var capabilities = sync.OnceValue(Capabilities)

func problemsOf(err error) []Problem {
	var errs ast.Errors
	if errors.As(err, &errs) {
		out := make([]Problem, 0, len(errs))
		for _, e := range errs {
			p := Problem{Code: e.Code, Message: e.Message}
			if e.Location != nil {
				p.File, p.Line, p.Col = e.Location.File, e.Location.Row, e.Location.Col
			}
			out = append(out, p)
		}
		return out
	}
	return []Problem{{Code: "error", Message: err.Error()}}
}

// parseBundle parses the modules and merges the data files of b.
func parseBundle(b Bundle) (map[string]*ast.Module, map[string]any, []Problem) {
	var problems []Problem
	size := 0
	for _, src := range b.Files {
		size += len(src)
	}
	if size > MaxBundleBytes || len(b.Files) > MaxBundleFiles {
		return nil, nil, []Problem{{Code: "bundle_too_large", Message: fmt.Sprintf(
			"%d files, %d bytes (limits: %d files, %d bytes)", len(b.Files), size, MaxBundleFiles, MaxBundleBytes)}}
	}
	names := make([]string, 0, len(b.Files))
	for name := range b.Files {
		names = append(names, name)
	}
	sort.Strings(names)

	modules := map[string]*ast.Module{}
	data := map[string]any{}
	popts := ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true, Capabilities: capabilities()}
	for _, name := range names {
		src := b.Files[name]
		switch {
		case strings.HasSuffix(name, ".rego"):
			m, err := ast.ParseModuleWithOpts(name, string(src), popts)
			if err != nil {
				problems = append(problems, problemsOf(err)...)
				continue
			}
			if m == nil {
				problems = append(problems, Problem{File: name, Code: ast.ParseErr, Message: "empty module (no package)"})
				continue
			}
			modules[name] = m
		case path.Base(name) == "data.json":
			var v any
			if err := util.UnmarshalJSON(src, &v); err != nil {
				problems = append(problems, Problem{File: name, Code: "data_error", Message: err.Error()})
				continue
			}
			obj, ok := v.(map[string]any)
			if !ok {
				problems = append(problems, Problem{File: name, Code: "data_error", Message: "data.json must hold a JSON object"})
				continue
			}
			if err := mergeData(data, path.Dir(name), obj); err != nil {
				problems = append(problems, Problem{File: name, Code: "data_error", Message: err.Error()})
			}
		default:
			problems = append(problems, Problem{File: name, Code: "bundle_error", Message: "unsupported file (a bundle holds .rego files and data.json)"})
		}
	}
	return modules, data, problems
}

// mergeData puts obj at dir (as OPA's loader does: a/b/data.json is data.a.b).
func mergeData(root map[string]any, dir string, obj map[string]any) error {
	node := root
	if dir != "." && dir != "" {
		for _, seg := range strings.Split(dir, "/") {
			child, ok := node[seg]
			if !ok {
				m := map[string]any{}
				node[seg] = m
				node = m
				continue
			}
			m, ok := child.(map[string]any)
			if !ok {
				return fmt.Errorf("data path %s conflicts with another data file", dir)
			}
			node = m
		}
	}
	for k, v := range obj {
		if _, ok := node[k]; ok {
			return fmt.Errorf("key %q is defined by more than one data file", k)
		}
		node[k] = v
	}
	return nil
}

// compileBundle parses and compiles b: strict mode, Rego v1, Gatehouse's
// capabilities. Problems come back as *CompileError.
func compileBundle(b Bundle) (*ast.Compiler, storage.Store, error) {
	modules, data, problems := parseBundle(b)
	if len(problems) > 0 {
		return nil, nil, &CompileError{Problems: problems}
	}
	store := inmem.NewFromObjectWithOpts(data, inmem.OptRoundTripOnWrite(false))
	ctx := context.Background()
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer store.Abort(ctx, txn)
	c := ast.NewCompiler().
		WithStrict(true).
		WithCapabilities(capabilities()).
		WithDefaultRegoVersion(ast.RegoV1).
		WithEnablePrintStatements(false).
		WithPathConflictsCheck(storage.NonEmpty(ctx, store, txn))
	c.Compile(modules)
	if c.Failed() {
		return nil, nil, &CompileError{Problems: problemsOf(c.Errors)}
	}
	return c, store, nil
}
