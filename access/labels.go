package access

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Wildcard matches any key or value.
const Wildcard = "*"

// isRegexPattern reports whether a label value or name is a `^...$` regular
// expression rather than a literal or glob.
func isRegexPattern(p string) bool {
	return len(p) >= 2 && p[0] == '^' && p[len(p)-1] == '$'
}

// regexpCacheMax bounds the cache so that patterns taken from user input
// (resource IDs) cannot grow it without limit.
const regexpCacheMax = 4096

type compiled struct {
	re  *regexp.Regexp
	err error
}

var (
	regexpCache     sync.Map // pattern -> compiled
	regexpCacheSize atomic.Int64
)

// compileCached compiles a `^...$` pattern once. Role selectors are matched
// against every resource on every search, so recompiling would dominate.
func compileCached(p string) (*regexp.Regexp, error) {
	if v, ok := regexpCache.Load(p); ok {
		c := v.(compiled)
		return c.re, c.err
	}
	re, err := regexp.Compile(p)
	if regexpCacheSize.Load() >= regexpCacheMax {
		// Dropping everything is crude but keeps memory bounded; the hot
		// patterns of the roles come back on their next use.
		regexpCache.Clear()
		regexpCacheSize.Store(0)
	}
	if _, loaded := regexpCache.LoadOrStore(p, compiled{re: re, err: err}); !loaded {
		regexpCacheSize.Add(1)
	}
	return re, err
}

// MatchValue matches value against a selector pattern: "*" matches anything,
// "^...$" is a regular expression, a pattern containing "*" is a glob
// ("nginx-*"), anything else must be equal. The error reports a pattern that
// is not a valid regular expression.
func MatchValue(pattern, value string) (bool, error) {
	switch {
	case pattern == Wildcard:
		return true, nil
	case isRegexPattern(pattern):
		re, err := compileCached(pattern)
		if err != nil {
			return false, fmt.Errorf("%w: invalid regular expression %q: %v", ErrInvalid, pattern, err)
		}
		return re.MatchString(value), nil
	case strings.Contains(pattern, Wildcard):
		return matchGlob(pattern, value), nil
	}
	return pattern == value, nil
}

// matchGlob matches a pattern whose only metacharacter is "*" without
// building a regexp or allocating.
func matchGlob(pattern, value string) bool {
	first, rest, _ := strings.Cut(pattern, Wildcard)
	last := rest
	if i := strings.LastIndex(rest, Wildcard); i >= 0 {
		last, rest = rest[i+1:], rest[:i]
	} else {
		rest = ""
	}
	if len(value) < len(first)+len(last) || !strings.HasPrefix(value, first) || !strings.HasSuffix(value, last) {
		return false
	}
	value = value[len(first) : len(value)-len(last)]
	for rest != "" {
		var mid string
		mid, rest, _ = strings.Cut(rest, Wildcard)
		i := strings.Index(value, mid)
		if i < 0 {
			return false
		}
		value = value[i+len(mid):]
	}
	return true
}

// Validate checks that every key is non-empty, every value is non-empty and
// every regular expression compiles. field is the path used in errors, e.g.
// "spec.allow.node_labels".
func (l Labels) Validate(field string) error {
	for _, k := range sortedKeys(l) {
		if strings.TrimSpace(k) == "" {
			return fmt.Errorf("%w: %s: empty label key", ErrInvalid, field)
		}
		for i, v := range l[k] {
			path := fmt.Sprintf("%s[%q]", field, k)
			if len(l[k]) > 1 {
				path = fmt.Sprintf("%s[%d]", path, i)
			}
			if v == "" {
				return fmt.Errorf("%w: %s: empty label value", ErrInvalid, path)
			}
			if err := checkValuePattern(path, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// Matches is the allow side of a selector: it is non-empty and every key
// matches. Key "*" with value "*" matches any resource, even one without
// labels; key "*" with another value needs some label value to match. An
// empty selector matches nothing, so an allow rule never grants by omission.
func (l Labels) Matches(labels map[string]string) bool {
	if len(l) == 0 {
		return false
	}
	for k, vals := range l {
		if !keyMatches(k, vals, labels, false) {
			return false
		}
	}
	return true
}

// MatchesAny is the deny side of a selector: any matching key is enough, and
// a pattern that fails to compile counts as a match, because a broken deny
// rule must not silently allow.
func (l Labels) MatchesAny(labels map[string]string) bool {
	for k, vals := range l {
		if keyMatches(k, vals, labels, true) {
			return true
		}
	}
	return false
}

func keyMatches(k string, vals Strings, labels map[string]string, onError bool) bool {
	if k == Wildcard {
		for _, p := range vals {
			if p == Wildcard {
				return true
			}
		}
		for _, v := range labels {
			if valueMatches(vals, v, onError) {
				return true
			}
		}
		return false
	}
	v, ok := labels[k]
	return ok && valueMatches(vals, v, onError)
}

func valueMatches(patterns Strings, v string, onError bool) bool {
	for _, p := range patterns {
		ok, err := MatchValue(p, v)
		if err != nil {
			ok = onError
		}
		if ok {
			return true
		}
	}
	return false
}

// IsWildcard reports whether the selector is exactly {"*": ["*"]}.
func (l Labels) IsWildcard() bool {
	v, ok := l[Wildcard]
	return len(l) == 1 && ok && len(v) == 1 && v[0] == Wildcard
}

// MatchResourceLabels reports whether labels hold every key=value of the
// search filter q exactly. An empty filter matches everything.
func MatchResourceLabels(q map[string]string, labels map[string]string) bool {
	for k, want := range q {
		if got, ok := labels[k]; !ok || got != want {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
