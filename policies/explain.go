package policies

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"
	"github.com/open-policy-agent/opa/v1/topdown/lineage"

	"github.com/gatehouse-dev/gatehouse/access"
)

// Explain modes. ExplainRules is Gatehouse's own summary: for each
// definition of the decision rules, what it contributed or the expressions
// that stopped it. The others are OPA's, as `opa eval --explain`: the
// pretty-printed trace filtered by topdown/lineage.
const (
	ExplainRules = "rules"
	ExplainFails = "fails"
	ExplainNotes = "notes"
	ExplainFull  = "full"
)

// ExplainModes lists the modes Explain accepts.
var ExplainModes = []string{ExplainRules, ExplainFails, ExplainNotes, ExplainFull}

// decisionRules are the rules DecideQuery reads, in the order explained.
var decisionRules = []string{RuleDeny, RuleAutoApprove, RuleThresholds, RuleMaxTTL, RuleNotify}

// Explain decides in as Decide does, but with a tracer (and without rule
// indexing, so that every definition of a rule is tried and its failure
// can be shown), and writes why to w in the given mode. It returns the
// decision; on an error, w still gets the explanation of what was
// evaluated before it.
func (e *Engine) Explain(ctx context.Context, in access.PolicyInput, mode string, w io.Writer) (access.PolicyDecision, error) {
	switch mode {
	case "":
		mode = ExplainRules
	case ExplainRules, ExplainFails, ExplainNotes, ExplainFull:
	default:
		return access.PolicyDecision{}, fmt.Errorf("%w: explain mode %q: want %s", access.ErrInvalid, mode, strings.Join(ExplainModes, ", "))
	}
	p := e.cur.Load()
	tr := &explainTracer{byQuery: map[uint64]*ruleTrace{}}
	nd := builtins.NDBCache{}
	obj, evalErr := e.explainEval(ctx, p.decide, in, nd, tr)

	switch mode {
	case ExplainRules:
		tr.writeRules(w)
	case ExplainFails:
		topdown.PrettyTraceWithLocation(w, lineage.Fails(tr.events))
	case ExplainNotes:
		topdown.PrettyTraceWithLocation(w, lineage.Notes(tr.events))
	case ExplainFull:
		topdown.PrettyTraceWithLocation(w, lineage.Full(tr.events))
	}
	if evalErr != nil {
		return access.PolicyDecision{BundleRevision: p.revision, NDCache: ndJSON(nd)}, evalErr
	}
	d, err := validateDecision(obj)
	d.BundleRevision = p.revision
	d.NDCache = ndJSON(nd)
	return d, err
}

// explainEval is eval with a tracer and rule indexing off.
func (e *Engine) explainEval(ctx context.Context, pq rego.PreparedEvalQuery, in access.PolicyInput, nd builtins.NDBCache, tr topdown.QueryTracer) (ast.Object, error) {
	input, err := inputValue(in)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding input: %w", access.ErrPolicy, err)
	}
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	opts := []rego.EvalOption{
		rego.EvalParsedInput(input),
		rego.EvalNDBuiltinCache(nd),
		rego.EvalQueryTracer(tr),
		rego.EvalRuleIndexing(false),
	}
	if !in.Now.IsZero() {
		opts = append(opts, rego.EvalTime(in.Now))
	}
	rs, err := pq.Eval(ctx, opts...)
	if err != nil {
		if cerr := ctx.Err(); errors.Is(cerr, context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: evaluating data.gatehouse: timed out after %s: %w", access.ErrPolicy, e.timeout, err)
		}
		return nil, fmt.Errorf("%w: evaluating data.gatehouse: %w", access.ErrPolicy, err)
	}
	if len(rs) != 1 {
		return nil, fmt.Errorf("%w: evaluating data.gatehouse: %d results", access.ErrPolicy, len(rs))
	}
	t, ok := rs[0].Bindings["result"].(*ast.Term)
	if !ok {
		return nil, fmt.Errorf("%w: evaluating data.gatehouse: unexpected result %T", access.ErrPolicy, rs[0].Bindings["result"])
	}
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("%w: evaluating data.gatehouse: unexpected result %v", access.ErrPolicy, t)
	}
	return obj, nil
}

// ruleTrace is what one definition of a decision rule did.
type ruleTrace struct {
	rule   *ast.Rule
	name   string
	values []string        // what each successful body contributed
	seen   map[string]bool // values, deduplicated
	fails  []*failedExpr   // distinct failing expressions, first first
	failAt map[string]*failedExpr
}

type failedExpr struct {
	loc, text string
	count     int
}

// explainTracer buffers the events (for the lineage modes) and, as they
// come, attributes successes and failures to the decision rules; values
// are plugged while the bindings are live.
type explainTracer struct {
	events  []*topdown.Event
	byQuery map[uint64]*ruleTrace // query ID of a rule body → its rule
	rules   []*ruleTrace
	byRule  map[*ast.Rule]*ruleTrace
	notes   []string
}

func (*explainTracer) Enabled() bool { return true }

func (*explainTracer) Config() topdown.TraceConfig { return topdown.TraceConfig{PlugLocalVars: true} }

func (t *explainTracer) TraceEvent(evt topdown.Event) {
	t.events = append(t.events, &evt)
	switch evt.Op {
	case topdown.EnterOp:
		rule, ok := evt.Node.(*ast.Rule)
		if !ok {
			return
		}
		name, ok := decisionRuleName(rule)
		if !ok {
			return
		}
		if t.byRule == nil {
			t.byRule = map[*ast.Rule]*ruleTrace{}
		}
		rt := t.byRule[rule]
		if rt == nil {
			rt = &ruleTrace{rule: rule, name: name, seen: map[string]bool{}, failAt: map[string]*failedExpr{}}
			t.byRule[rule] = rt
			t.rules = append(t.rules, rt)
		}
		t.byQuery[evt.QueryID] = rt
	case topdown.ExitOp:
		rule, ok := evt.Node.(*ast.Rule)
		if !ok {
			return
		}
		rt := t.byQuery[evt.QueryID]
		if rt == nil || rt.rule != rule {
			return
		}
		head := rule.Head.Value
		if rule.Head.RuleKind() == ast.MultiValue {
			head = rule.Head.Key
		}
		v := "true"
		if head != nil {
			v = evt.Plug(head).String()
		}
		if !rt.seen[v] {
			rt.seen[v] = true
			rt.values = append(rt.values, v)
		}
	case topdown.FailOp:
		expr, ok := evt.Node.(*ast.Expr)
		if !ok {
			return
		}
		rt := t.byQuery[evt.QueryID]
		if rt == nil {
			return
		}
		loc, text := "?", expr.String()
		if expr.Location != nil {
			loc = fmt.Sprintf("%s:%d", expr.Location.File, expr.Location.Row)
			if len(expr.Location.Text) > 0 {
				text = string(expr.Location.Text)
			}
		}
		key := loc + " " + text
		f := rt.failAt[key]
		if f == nil {
			f = &failedExpr{loc: loc, text: text}
			rt.failAt[key] = f
			rt.fails = append(rt.fails, f)
		}
		f.count++
	case topdown.NoteOp:
		loc := "?"
		if evt.Location != nil {
			loc = fmt.Sprintf("%s:%d", evt.Location.File, evt.Location.Row)
		}
		t.notes = append(t.notes, fmt.Sprintf("%s: %s", loc, evt.Message))
	}
}

// decisionRuleName reports whether rule defines one of the decision rules
// of package gatehouse.
func decisionRuleName(rule *ast.Rule) (string, bool) {
	if rule.Module == nil {
		return "", false
	}
	full := rule.Ref().GroundPrefix()
	if len(full) == 0 || !full[0].Equal(ast.DefaultRootDocument) {
		full = rule.Module.Package.Path.Extend(full)
	}
	if len(full) != 3 || !full[1].Equal(ast.StringTerm("gatehouse")) {
		return "", false
	}
	s, ok := full[2].Value.(ast.String)
	if !ok {
		return "", false
	}
	for _, r := range decisionRules {
		if string(s) == r {
			return r, true
		}
	}
	return "", false
}

// maxFailsShown bounds the failing expressions listed per definition.
const maxFailsShown = 3

func (t *explainTracer) writeRules(w io.Writer) {
	byName := map[string][]*ruleTrace{}
	for _, rt := range t.rules {
		byName[rt.name] = append(byName[rt.name], rt)
	}
	for _, name := range decisionRules {
		defs := byName[name]
		if len(defs) == 0 {
			fmt.Fprintf(w, "%s: no definition evaluated (empty)\n", name)
			continue
		}
		for _, rt := range defs {
			if len(rt.values) > 0 {
				fmt.Fprintf(w, "%s (%s): applies\n", name, locOf(rt.rule))
				for _, v := range rt.values {
					fmt.Fprintf(w, "    + %s\n", v)
				}
				continue
			}
			fmt.Fprintf(w, "%s (%s): does not apply\n", name, locOf(rt.rule))
			for i, f := range rt.fails {
				if i == maxFailsShown {
					fmt.Fprintf(w, "    ... and %d more failing expressions\n", len(rt.fails)-maxFailsShown)
					break
				}
				times := ""
				if f.count > 1 {
					times = fmt.Sprintf(" (%d times)", f.count)
				}
				fmt.Fprintf(w, "    failed at %s: %s%s\n", f.loc, f.text, times)
			}
			if len(rt.fails) == 0 {
				fmt.Fprintf(w, "    (no expression failed: evaluation stopped before the body completed)\n")
			}
		}
	}
	for _, n := range t.notes {
		fmt.Fprintf(w, "note %s\n", n)
	}
}

func locOf(r *ast.Rule) string {
	if r.Location == nil {
		return "?"
	}
	return fmt.Sprintf("%s:%d", r.Location.File, r.Location.Row)
}
