package policies

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"

	"github.com/gatehouse-dev/gatehouse/access"
)

// Names of Gatehouse's own built-ins.
const (
	BuiltinOnCalls = "pagerduty.oncalls"
	BuiltinOnCall  = "pagerduty.on_call"
)

// onCallType is the type of one element of pagerduty.oncalls.
var onCallType = types.NewObject([]*types.StaticProperty{
	types.NewStaticProperty("service", types.S),
	types.NewStaticProperty("escalation_policy", types.S),
	types.NewStaticProperty("escalation_level", types.N),
	types.NewStaticProperty("schedule", types.S),
	types.NewStaticProperty("start", types.S),
	types.NewStaticProperty("end", types.S),
}, nil)

// Declarations of the custom built-ins. Both are non-deterministic: their
// results land in OPA's ND built-in cache, which Decide returns for the audit
// and DecideReplay feeds back.
var (
	onCallsDecl = &rego.Function{
		Name:        BuiltinOnCalls,
		Description: "Returns the current PagerDuty on-call entries of the user with this email: [{service, escalation_policy, escalation_level, schedule, start, end}]. Raises an error when PagerDuty cannot be asked.",
		Decl: types.NewFunction(
			types.Args(types.Named("email", types.S).Description("the user's email")),
			types.Named("oncalls", types.NewArray(nil, onCallType)).Description("current on-call entries"),
		),
		Memoize:          true,
		Nondeterministic: true,
	}
	onCallDecl = &rego.Function{
		Name:        BuiltinOnCall,
		Description: "Returns true if the user with this email is on call at escalation level 1 for the named PagerDuty service. Raises an error when PagerDuty cannot be asked.",
		Decl: types.NewFunction(
			types.Args(
				types.Named("email", types.S).Description("the user's email"),
				types.Named("service", types.S).Description("the PagerDuty service name"),
			),
			types.Named("on_call", types.B).Description("on call at level 1 for the service"),
		),
		Memoize:          true,
		Nondeterministic: true,
	}
)

func astBuiltin(f *rego.Function) *ast.Builtin {
	return &ast.Builtin{
		Name:             f.Name,
		Description:      f.Description,
		Decl:             f.Decl,
		Nondeterministic: f.Nondeterministic,
	}
}

// Capabilities returns the capabilities of this OPA version plus Gatehouse's
// built-ins: what the engine compiles against and what
// policies/capabilities.json publishes for stock `opa test --capabilities`.
func Capabilities() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	c.Builtins = append(c.Builtins, astBuiltin(onCallsDecl), astBuiltin(onCallDecl))
	slices.SortFunc(c.Builtins, func(a, b *ast.Builtin) int { return strings.Compare(a.Name, b.Name) })
	return c
}

// errNoDirectory is raised by the PagerDuty built-ins when no directory is
// configured: the evaluation fails closed instead of reading "not on call".
var errNoDirectory = errors.New("no PagerDuty directory is configured")

// errReplay is raised by built-ins asked for a result the recorded ND cache
// does not hold during a replay.
var errReplay = errors.New("not in the recorded results (replay never calls out)")

type replayKey struct{}

func isReplay(ctx context.Context) bool {
	v, _ := ctx.Value(replayKey{}).(bool)
	return v
}

// builtinOptions returns the rego options that register the custom
// built-ins, backed by dir (which may be nil).
func builtinOptions(dir func() access.OnCallDirectory) []func(*rego.Rego) {
	return []func(*rego.Rego){
		rego.Function1(onCallsDecl, func(bctx rego.BuiltinContext, email *ast.Term) (*ast.Term, error) {
			calls, err := lookupOnCalls(bctx, dir(), email)
			if err != nil {
				return nil, err
			}
			arr := make([]*ast.Term, 0, len(calls))
			for _, c := range calls {
				arr = append(arr, ast.ObjectTerm(
					ast.Item(ast.InternedTerm("service"), ast.StringTerm(c.Service)),
					ast.Item(ast.InternedTerm("escalation_policy"), ast.StringTerm(c.EscalationPolicy)),
					ast.Item(ast.InternedTerm("escalation_level"), ast.IntNumberTerm(c.EscalationLevel)),
					ast.Item(ast.InternedTerm("schedule"), ast.StringTerm(c.Schedule)),
					ast.Item(ast.InternedTerm("start"), ast.StringTerm(c.Start.UTC().Format(time.RFC3339))),
					ast.Item(ast.InternedTerm("end"), ast.StringTerm(c.End.UTC().Format(time.RFC3339))),
				))
			}
			return ast.ArrayTerm(arr...), nil
		}),
		rego.Function2(onCallDecl, func(bctx rego.BuiltinContext, email, service *ast.Term) (*ast.Term, error) {
			svc, ok := service.Value.(ast.String)
			if !ok {
				return nil, fmt.Errorf("%s: service must be a string, got %s", BuiltinOnCall, ast.ValueName(service.Value))
			}
			calls, err := lookupOnCalls(bctx, dir(), email)
			if err != nil {
				return nil, err
			}
			for _, c := range calls {
				if c.Service == string(svc) && c.EscalationLevel == 1 {
					return ast.BooleanTerm(true), nil
				}
			}
			return ast.BooleanTerm(false), nil
		}),
	}
}

func lookupOnCalls(bctx rego.BuiltinContext, dir access.OnCallDirectory, email *ast.Term) ([]access.OnCall, error) {
	e, ok := email.Value.(ast.String)
	if !ok {
		return nil, fmt.Errorf("email must be a string, got %s", ast.ValueName(email.Value))
	}
	ctx := bctx.Context
	if ctx == nil {
		ctx = context.Background()
	}
	if isReplay(ctx) {
		return nil, errReplay
	}
	if dir == nil {
		return nil, errNoDirectory
	}
	calls, err := dir.OnCalls(ctx, string(e))
	if err != nil {
		return nil, fmt.Errorf("PagerDuty on-calls of %q: %w", string(e), err)
	}
	return calls, nil
}
