package policies

import (
	"fmt"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/gatehouse-dev/gatehouse/access"
)

// Rules of package gatehouse the engine reads.
const (
	RuleDeny        = "deny"
	RuleAutoApprove = "auto_approve"
	RuleThresholds  = "thresholds"
	RuleMaxTTL      = "max_ttl"
	RuleNotify      = "notify"
	RuleDenyReview  = "deny_review"
)

// Notify platforms a policy may name.
var notifyPlatforms = []string{"slack", "discord", "mattermost", "pagerduty"}

// invalid returns an error wrapping access.ErrPolicy that names the rule.
func invalid(rule, format string, args ...any) error {
	return fmt.Errorf("%w: invalid result of data.gatehouse.%s: %s", access.ErrPolicy, rule, fmt.Sprintf(format, args...))
}

// ruleSet reads one rule's value from the query result object, where each
// rule is wrapped in an array of zero (undefined) or one element. The rule
// must be a set (a multi-value rule: `rule contains x if ...`).
func ruleSet(result ast.Object, rule string) ([]*ast.Term, error) {
	t := result.Get(ast.InternedTerm(rule))
	if t == nil {
		return nil, invalid(rule, "missing from the query result")
	}
	arr, ok := t.Value.(*ast.Array)
	if !ok || arr.Len() > 1 {
		return nil, invalid(rule, "unexpected query result %v", t)
	}
	if arr.Len() == 0 {
		return nil, nil // undefined: the empty set
	}
	v := arr.Elem(0).Value
	set, ok := v.(ast.Set)
	if !ok {
		return nil, invalid(rule, "must be a set (write `%s contains ... if { ... }`), got %s", rule, ast.ValueName(v))
	}
	return sortedElems(set), nil
}

// stringSet reads a rule whose elements are strings.
func stringSet(result ast.Object, rule string) ([]string, error) {
	elems, err := ruleSet(result, rule)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range elems {
		s, ok := e.Value.(ast.String)
		if !ok {
			return nil, invalid(rule, "elements must be strings, got %s %v", ast.ValueName(e.Value), e)
		}
		out = append(out, string(s))
	}
	return out, nil
}

// validateDecision turns the result object of the decision query into a
// PolicyDecision, rejecting anything not exactly of the documented shape.
func validateDecision(result ast.Object) (access.PolicyDecision, error) {
	var d access.PolicyDecision
	var err error
	if d.Deny, err = stringSet(result, RuleDeny); err != nil {
		return d, err
	}
	if d.AutoApprove, err = stringSet(result, RuleAutoApprove); err != nil {
		return d, err
	}
	if d.Thresholds, err = thresholds(result); err != nil {
		return d, err
	}
	if d.MaxTTL, err = maxTTL(result); err != nil {
		return d, err
	}
	if d.Notify, err = notify(result); err != nil {
		return d, err
	}
	return d, nil
}

// object checks that v is an object with exactly the allowed keys (all of
// required present) and returns its fields by key.
func object(rule, what string, v ast.Value, required, optional []string) (map[string]ast.Value, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, invalid(rule, "%s must be an object, got %s %v", what, ast.ValueName(v), v)
	}
	fields := make(map[string]ast.Value, obj.Len())
	var err error
	obj.Until(func(k, val *ast.Term) bool {
		key, ok := k.Value.(ast.String)
		if !ok {
			err = invalid(rule, "%s has a non-string key %v", what, k)
			return true
		}
		if !slices.Contains(required, string(key)) && !slices.Contains(optional, string(key)) {
			err = invalid(rule, "%s has unknown key %q (allowed: %v)", what, string(key), append(slices.Clone(required), optional...))
			return true
		}
		fields[string(key)] = val.Value
		return false
	})
	if err != nil {
		return nil, err
	}
	for _, k := range required {
		if _, ok := fields[k]; !ok {
			return nil, invalid(rule, "%s is missing key %q", what, k)
		}
	}
	return fields, nil
}

// count reads a non-negative integer.
func count(rule, what string, v ast.Value) (int, error) {
	n, ok := v.(ast.Number)
	if !ok {
		return 0, invalid(rule, "%s must be a number, got %s %v", what, ast.ValueName(v), v)
	}
	i, ok := n.Int()
	if !ok {
		return 0, invalid(rule, "%s must be an integer, got %v", what, n)
	}
	if i < 0 {
		return 0, invalid(rule, "%s must not be negative, got %d", what, i)
	}
	if i > maxCount {
		return 0, invalid(rule, "%s must be at most %d, got %d", what, maxCount, i)
	}
	return i, nil
}

// maxCount bounds approve/deny counts: a threshold of more reviews than any
// organisation has reviewers is a policy bug, not a threshold.
const maxCount = 100

// strings reads an array or set of strings.
func stringList(rule, what string, v ast.Value) ([]string, error) {
	var elems []*ast.Term
	switch x := v.(type) {
	case *ast.Array:
		for i := range x.Len() {
			elems = append(elems, x.Elem(i))
		}
	case ast.Set:
		elems = sortedElems(x)
	default:
		return nil, invalid(rule, "%s must be an array of strings, got %s %v", what, ast.ValueName(v), v)
	}
	out := make([]string, 0, len(elems))
	for _, e := range elems {
		s, ok := e.Value.(ast.String)
		if !ok || s == "" {
			return nil, invalid(rule, "%s must hold non-empty strings, got %v", what, e)
		}
		out = append(out, string(s))
	}
	return out, nil
}

func thresholds(result ast.Object) ([]access.Threshold, error) {
	elems, err := ruleSet(result, RuleThresholds)
	if err != nil {
		return nil, err
	}
	var out []access.Threshold
	seen := map[string]bool{}
	for i, e := range elems {
		what := fmt.Sprintf("element %d", i)
		f, err := object(RuleThresholds, what, e.Value, []string{"name", "approve", "deny", "reviewers"}, nil)
		if err != nil {
			return nil, err
		}
		name, ok := f["name"].(ast.String)
		if !ok || name == "" {
			return nil, invalid(RuleThresholds, "%s: name must be a non-empty string, got %v", what, f["name"])
		}
		what = fmt.Sprintf("threshold %q", string(name))
		if seen[string(name)] {
			return nil, invalid(RuleThresholds, "%s is defined more than once (names must be unique)", what)
		}
		seen[string(name)] = true
		t := access.Threshold{Name: string(name)}
		if t.Approve, err = count(RuleThresholds, what+": approve", f["approve"]); err != nil {
			return nil, err
		}
		if t.Deny, err = count(RuleThresholds, what+": deny", f["deny"]); err != nil {
			return nil, err
		}
		if t.Approve == 0 && t.Deny == 0 {
			return nil, invalid(RuleThresholds, "%s can never decide (approve and deny are both 0)", what)
		}
		r, err := object(RuleThresholds, what+": reviewers", f["reviewers"], nil, []string{"roles", "users"})
		if err != nil {
			return nil, err
		}
		if v, ok := r["roles"]; ok {
			if t.Reviewers.Roles, err = stringList(RuleThresholds, what+": reviewers.roles", v); err != nil {
				return nil, err
			}
		}
		if v, ok := r["users"]; ok {
			if t.Reviewers.Users, err = stringList(RuleThresholds, what+": reviewers.users", v); err != nil {
				return nil, err
			}
		}
		out = append(out, t)
	}
	return out, nil
}

func maxTTL(result ast.Object) (time.Duration, error) {
	elems, err := stringSet(result, RuleMaxTTL)
	if err != nil {
		return 0, err
	}
	var least time.Duration
	for _, s := range elems {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, invalid(RuleMaxTTL, "%q is not a duration such as \"8h\" or \"90m\"", s)
		}
		if d <= 0 {
			return 0, invalid(RuleMaxTTL, "%q must be greater than zero", s)
		}
		if least == 0 || d < least {
			least = d
		}
	}
	return least, nil
}

func notify(result ast.Object) ([]access.NotifyTarget, error) {
	elems, err := ruleSet(result, RuleNotify)
	if err != nil {
		return nil, err
	}
	var out []access.NotifyTarget
	for i, e := range elems {
		what := fmt.Sprintf("element %d", i)
		f, err := object(RuleNotify, what, e.Value, []string{"platform", "channel"}, nil)
		if err != nil {
			return nil, err
		}
		p, ok := f["platform"].(ast.String)
		if !ok || !slices.Contains(notifyPlatforms, string(p)) {
			return nil, invalid(RuleNotify, "%s: platform must be one of %v, got %v", what, notifyPlatforms, f["platform"])
		}
		c, ok := f["channel"].(ast.String)
		if !ok || c == "" {
			return nil, invalid(RuleNotify, "%s: channel must be a non-empty string, got %v", what, f["channel"])
		}
		out = append(out, access.NotifyTarget{Platform: string(p), Channel: string(c)})
	}
	return out, nil
}

// sortedElems returns the elements of s in sorted order, so results do not
// depend on hashing.
func sortedElems(s ast.Set) []*ast.Term {
	arr := s.Sorted()
	out := make([]*ast.Term, arr.Len())
	for i := range out {
		out[i] = arr.Elem(i)
	}
	return out
}
