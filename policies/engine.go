// Package policies is Gatehouse's Rego policy engine: it compiles a bundle
// (package gatehouse, OPA v1 syntax) once per revision, evaluates its
// set-valued rules for each request and validates every result strictly.
// Errors, timeouts and results of the wrong shape all fail closed: they come
// back as errors wrapping access.ErrPolicy.
package policies

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"

	"github.com/gatehouse-dev/gatehouse/access"
)

// DefaultTimeout is the evaluation deadline when WithTimeout is not given.
const DefaultTimeout = 500 * time.Millisecond

// Queries the engine prepares. Each rule is wrapped in an array
// comprehension so that an undefined rule reads as [] (the empty set) and a
// defined one as [value], whatever its type, for the validation to judge;
// only these rules are evaluated (not the tests or helpers of the package).
const (
	DecideQuery = `result := {` +
		`"deny": [x | x := data.gatehouse.deny], ` +
		`"auto_approve": [x | x := data.gatehouse.auto_approve], ` +
		`"thresholds": [x | x := data.gatehouse.thresholds], ` +
		`"max_ttl": [x | x := data.gatehouse.max_ttl], ` +
		`"notify": [x | x := data.gatehouse.notify]}`
	DenyReviewQuery = `result := {"deny_review": [x | x := data.gatehouse.deny_review]}`
)

// Bundle is a policy bundle: .rego sources and optional data.json files by
// slash-separated path, and the revision it is stored at.
type Bundle struct {
	Files    map[string][]byte
	Revision int64
}

//go:embed bundle
var defaultBundle embed.FS

// Default returns the bundle shipped in the binary (policies/bundle).
func Default() Bundle {
	b, err := loadFS(defaultBundle, "bundle")
	if err != nil {
		panic("policies: embedded bundle: " + err.Error())
	}
	return b
}

// LoadDir reads the bundle in dir: every *.rego file (tests included; they
// only define test_ rules) and data.json files, in sub-directories too.
// Hidden files and directories are skipped.
func LoadDir(dir string) (Bundle, error) {
	return loadFS(os.DirFS(dir), ".")
}

func loadFS(fsys fs.FS, root string) (Bundle, error) {
	b := Bundle{Files: map[string][]byte{}}
	size := 0
	err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || (!strings.HasSuffix(p, ".rego") && d.Name() != "data.json") {
			return nil
		}
		src, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		size += len(src)
		if size > MaxBundleBytes || len(b.Files) >= MaxBundleFiles {
			return fmt.Errorf("bundle too large (limits: %d files, %d bytes)", MaxBundleFiles, MaxBundleBytes)
		}
		rel := p
		if root != "." {
			rel = strings.TrimPrefix(p, root+"/")
		}
		b.Files[filepath.ToSlash(rel)] = src
		return nil
	})
	if err != nil {
		return Bundle{}, fmt.Errorf("loading policy bundle: %w", err)
	}
	return b, nil
}

// Engine evaluates the bundle in force. It is safe for concurrent use; Load
// swaps bundles atomically.
type Engine struct {
	cur     atomic.Pointer[prepared]
	dir     access.OnCallDirectory
	timeout time.Duration
	loadMu  sync.Mutex
}

// Interface guard.
var _ access.PolicyEngine = (*Engine)(nil)

// prepared is one compiled bundle revision with its prepared queries.
type prepared struct {
	revision int64
	decide   rego.PreparedEvalQuery
	review   rego.PreparedEvalQuery
}

// Option configures an Engine.
type Option func(*Engine)

// WithOnCall backs the pagerduty.* built-ins. Without it they raise an
// error, so a policy that asks fails closed.
func WithOnCall(d access.OnCallDirectory) Option { return func(e *Engine) { e.dir = d } }

// WithTimeout sets the evaluation deadline (default DefaultTimeout).
func WithTimeout(d time.Duration) Option {
	return func(e *Engine) {
		if d > 0 {
			e.timeout = d
		}
	}
}

// New compiles b and prepares its queries.
func New(b Bundle, opts ...Option) (*Engine, error) {
	e := &Engine{timeout: DefaultTimeout}
	for _, o := range opts {
		o(e)
	}
	p, err := e.prepare(b)
	if err != nil {
		return nil, err
	}
	e.cur.Store(p)
	return e, nil
}

// Load compiles b and, if it compiles, puts it in force atomically. On error
// the bundle in force stays.
func (e *Engine) Load(b Bundle) error {
	e.loadMu.Lock()
	defer e.loadMu.Unlock()
	p, err := e.prepare(b)
	if err != nil {
		return err
	}
	e.cur.Store(p)
	return nil
}

// Revision returns the revision of the bundle in force.
func (e *Engine) Revision() int64 { return e.cur.Load().revision }

// termResult keeps query results as AST terms: no JSON conversion, and sets
// stay distinguishable from arrays for the validation.
func termResult(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }

func (e *Engine) prepare(b Bundle) (*prepared, error) {
	c, store, err := compileBundle(b)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	base := append([]func(*rego.Rego){
		rego.Compiler(c),
		rego.Store(store),
		rego.StrictBuiltinErrors(true),
		rego.GenerateJSON(termResult),
	}, builtinOptions(func() access.OnCallDirectory { return e.dir })...)
	p := &prepared{revision: b.Revision}
	for _, q := range []struct {
		query string
		dst   *rego.PreparedEvalQuery
	}{{DecideQuery, &p.decide}, {DenyReviewQuery, &p.review}} {
		pq, err := rego.New(append(base, rego.Query(q.query))...).PrepareForEval(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: preparing %s: %w", access.ErrInvalid, q.query, err)
		}
		*q.dst = pq
	}
	return p, nil
}

// Decide evaluates deny, auto_approve, thresholds, max_ttl and notify for a
// new request.
func (e *Engine) Decide(ctx context.Context, in access.PolicyInput) (access.PolicyDecision, error) {
	return e.decide(ctx, in, builtins.NDBCache{}, false)
}

// DecideReplay evaluates like Decide but answers non-deterministic built-ins
// (http.send, pagerduty.*) from nd, the NDCache of a recorded decision; a
// call nd does not hold raises an error instead of calling out.
func (e *Engine) DecideReplay(ctx context.Context, in access.PolicyInput, nd json.RawMessage) (access.PolicyDecision, error) {
	cache, err := parseNDCache(nd)
	if err != nil {
		return access.PolicyDecision{}, fmt.Errorf("%w: recorded ND cache: %w", access.ErrInvalid, err)
	}
	return e.decide(ctx, in, cache, true)
}

// parseNDCache reads a recorded ND cache. Its JSON form has the argument
// arrays as string keys; they are parsed back into arrays, as the evaluator
// looks them up.
func parseNDCache(nd json.RawMessage) (builtins.NDBCache, error) {
	out := builtins.NDBCache{}
	if len(nd) == 0 {
		return out, nil
	}
	var raw builtins.NDBCache
	if err := json.Unmarshal(nd, &raw); err != nil {
		return nil, err
	}
	for name, obj := range raw {
		var err error
		obj.Foreach(func(k, v *ast.Term) {
			key := k.Value
			if s, ok := key.(ast.String); ok {
				var perr error
				if key, perr = ast.ValueFromReader(strings.NewReader(string(s))); perr != nil {
					err = fmt.Errorf("%s: key %q: %w", name, string(s), perr)
					return
				}
			}
			out.Put(name, key, v.Value)
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (e *Engine) decide(ctx context.Context, in access.PolicyInput, nd builtins.NDBCache, replay bool) (access.PolicyDecision, error) {
	p := e.cur.Load()
	obj, err := e.eval(ctx, p.decide, "data.gatehouse", in, nd, replay)
	if err != nil {
		return access.PolicyDecision{BundleRevision: p.revision, NDCache: ndJSON(nd)}, err
	}
	d, err := validateDecision(obj)
	d.BundleRevision = p.revision
	d.NDCache = ndJSON(nd)
	return d, err
}

// DenyReview evaluates deny_review for one review (in.Review and
// in.Reviewer set).
func (e *Engine) DenyReview(ctx context.Context, in access.PolicyInput) ([]string, error) {
	p := e.cur.Load()
	obj, err := e.eval(ctx, p.review, "data.gatehouse.deny_review", in, builtins.NDBCache{}, false)
	if err != nil {
		return nil, err
	}
	return stringSet(obj, RuleDenyReview)
}

func ndJSON(nd builtins.NDBCache) json.RawMessage {
	if len(nd) == 0 {
		return nil
	}
	b, err := json.Marshal(nd)
	if err != nil {
		return nil
	}
	return b
}

// refuseTransport answers every http.send of a replay that the recorded
// cache does not hold.
type refuseTransport struct{}

func (refuseTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("replay: %s %s: %w", r.Method, r.URL.Redacted(), errReplay)
}

func (e *Engine) eval(ctx context.Context, pq rego.PreparedEvalQuery, what string, in access.PolicyInput, nd builtins.NDBCache, replay bool) (ast.Object, error) {
	input, err := inputValue(in)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding input: %w", access.ErrPolicy, err)
	}
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	opts := []rego.EvalOption{
		rego.EvalParsedInput(input),
		rego.EvalNDBuiltinCache(nd),
	}
	if !in.Now.IsZero() {
		opts = append(opts, rego.EvalTime(in.Now)) // time.now_ns() agrees with input.now, also in replays
	}
	if replay {
		ctx = context.WithValue(ctx, replayKey{}, true)
		opts = append(opts, rego.EvalHTTPRoundTripper(func(*http.Transport) http.RoundTripper { return refuseTransport{} }))
	}
	rs, err := pq.Eval(ctx, opts...)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			if errors.Is(cerr, context.DeadlineExceeded) {
				return nil, fmt.Errorf("%w: evaluating %s: timed out after %s: %w", access.ErrPolicy, what, e.timeout, err)
			}
			return nil, fmt.Errorf("%w: evaluating %s: %w", access.ErrPolicy, what, cerr)
		}
		return nil, fmt.Errorf("%w: evaluating %s: %w", access.ErrPolicy, what, err)
	}
	if len(rs) != 1 {
		return nil, fmt.Errorf("%w: evaluating %s: %d results", access.ErrPolicy, what, len(rs))
	}
	t, ok := rs[0].Bindings["result"].(*ast.Term)
	if !ok {
		return nil, fmt.Errorf("%w: evaluating %s: unexpected result %T", access.ErrPolicy, what, rs[0].Bindings["result"])
	}
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("%w: evaluating %s: unexpected result %v", access.ErrPolicy, what, t)
	}
	return obj, nil
}

// inputValue turns the input into the JSON document DESIGN.md defines (the
// JSON encoding of access.PolicyInput, built directly as AST values: no
// encode/decode round trip per decision; TestInputValueIsJSON holds the two
// equal). Nil lists and maps are empty ones, so that policies never meet
// null where a collection is expected.
func inputValue(in access.PolicyInput) (ast.Value, error) {
	req := in.Request
	resources := make([]*ast.Term, len(req.Resources))
	for i, r := range req.Resources {
		resources[i] = ast.ObjectTerm(
			item("id", ast.StringTerm(r.ID)),
			item("kind", ast.StringTerm(r.Kind)),
			item("name", ast.StringTerm(r.Name)),
			item("labels", stringMap(r.Labels)),
		)
	}
	fields := []*ast.Term{
		ast.InternedTerm("request"), ast.ObjectTerm(
			item("id", ast.StringTerm(req.ID)),
			item("user", ast.StringTerm(req.User)),
			item("roles", strings_(req.Roles)),
			item("resources", ast.ArrayTerm(resources...)),
			item("reason", ast.StringTerm(req.Reason)),
			item("duration", ast.StringTerm(req.Duration)),
			item("suggested_reviewers", strings_(req.SuggestedReviewers)),
			item("annotations", listMap(req.Annotations)),
		),
		ast.InternedTerm("user"), userTerm(in.User),
		ast.InternedTerm("now"), ast.StringTerm(in.Now.Format(time.RFC3339Nano)),
		ast.InternedTerm("source"), ast.StringTerm(in.Source),
	}
	if in.Review != nil {
		fields = append(fields, ast.InternedTerm("review"), ast.ObjectTerm(
			item("verdict", ast.StringTerm(string(in.Review.Verdict))),
			item("reason", ast.StringTerm(in.Review.Reason)),
			item("roles", strings_(in.Review.Roles)),
		))
	}
	if in.Reviewer != nil {
		fields = append(fields, ast.InternedTerm("reviewer"), userTerm(*in.Reviewer))
	}
	obj := ast.NewObject()
	for i := 0; i < len(fields); i += 2 {
		obj.Insert(fields[i], fields[i+1])
	}
	return obj, nil
}

func item(k string, v *ast.Term) [2]*ast.Term { return ast.Item(ast.InternedTerm(k), v) }

func userTerm(u access.PolicyUser) *ast.Term {
	return ast.ObjectTerm(
		item("name", ast.StringTerm(u.Name)),
		item("roles", strings_(u.Roles)),
		item("traits", listMap(u.Traits)),
	)
}

func strings_(ss []string) *ast.Term {
	ts := make([]*ast.Term, len(ss))
	for i, s := range ss {
		ts[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(ts...)
}

func stringMap(m map[string]string) *ast.Term {
	obj := ast.NewObject()
	for k, v := range m {
		obj.Insert(ast.StringTerm(k), ast.StringTerm(v))
	}
	return ast.NewTerm(obj)
}

func listMap(m map[string][]string) *ast.Term {
	obj := ast.NewObject()
	for k, v := range m {
		obj.Insert(ast.StringTerm(k), strings_(v))
	}
	return ast.NewTerm(obj)
}
