package access_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/gatehouse-dev/gatehouse/access"
)

func TestMatchValue(t *testing.T) {
	tests := []struct {
		pattern, value string
		want           bool
	}{
		{"*", "anything", true},
		{"*", "", true},
		{"prod", "prod", true},
		{"prod", "production", false},
		{"prod", "Prod", false},
		{"nginx-*", "nginx-7f9c", true},
		{"nginx-*", "nginx-", true},
		{"nginx-*", "apache-1", false},
		{"*-db", "orders-db", true},
		{"*-db", "orders-db-replica", false},
		{"web-*-eu-*", "web-1-eu-west", true},
		{"web-*-eu-*", "web-1-us-east", false},
		{"a*a", "a", false}, // the prefix and suffix must not overlap
		{"a*a", "aa", true},
		{"*a*b*", "xaybz", true},
		{"*a*b*", "xbyaz", false},
		{"a**b", "ab", true},
		{"**", "", true},
		{"x*", "", false},
		{"*-*-*", "a--b", true},
		{"^prod|stage$", "stage", true},
		{"^(dev|stage)$", "stage", true},
		{"^(dev|stage)$", "prod", false},
		{"^(dev|stage)$", "staged", false}, // anchors make it a full match
		{"^ip-10-.*$", "ip-10-0-0-7", true},
		{"^$", "", true},
		{"^", "^", true}, // too short to be an expression: literal
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s~%s", tt.pattern, tt.value), func(t *testing.T) {
			got, err := access.MatchValue(tt.pattern, tt.value)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("MatchValue(%q, %q) = %v, want %v", tt.pattern, tt.value, got, tt.want)
			}
		})
	}
}

func TestMatchValueBrokenRegex(t *testing.T) {
	for range 2 { // the second call is answered from the cache
		ok, err := access.MatchValue("^web-($", "web-(")
		wantErr(t, err, access.ErrInvalid, `invalid regular expression "^web-($"`)
		if ok {
			t.Fatal("a broken expression matched")
		}
	}
}

func TestLabelsMatches(t *testing.T) {
	prodDB := map[string]string{"env": "prod", "team": "dba"}
	tests := []struct {
		name     string
		selector access.Labels
		labels   map[string]string
		allow    bool // Matches: every key must match
		deny     bool // MatchesAny: one key is enough
	}{
		{"an empty selector allows and denies nothing", access.Labels{}, prodDB, false, false},
		{"a nil selector allows and denies nothing", nil, prodDB, false, false},
		{"one exact key", access.Labels{"env": {"prod"}}, prodDB, true, true},
		{"a list of values", access.Labels{"env": {"dev", "prod"}}, prodDB, true, true},
		{"a value that differs", access.Labels{"env": {"staging"}}, prodDB, false, false},
		{"a key the resource lacks", access.Labels{"region": {"*"}}, prodDB, false, false},
		{"both keys must match to allow, one is enough to deny",
			access.Labels{"env": {"prod"}, "team": {"web"}}, prodDB, false, true},
		{"both keys match", access.Labels{"env": {"prod"}, "team": {"dba"}}, prodDB, true, true},
		{"a regular expression", access.Labels{"env": {"^pro.*$"}}, prodDB, true, true},
		{"a glob", access.Labels{"team": {"db*"}}, prodDB, true, true},
		{"the wildcard selector matches a resource without labels",
			access.Labels{"*": {"*"}}, nil, true, true},
		{"the wildcard selector matches any resource", access.Labels{"*": {"*"}}, prodDB, true, true},
		{"a wildcard key needs some value to match", access.Labels{"*": {"dba"}}, prodDB, true, true},
		{"a wildcard key with no matching value", access.Labels{"*": {"web"}}, prodDB, false, false},
		{"a wildcard key on a resource without labels", access.Labels{"*": {"dba"}}, nil, false, false},
		{"a key whose trait expanded to nothing", access.Labels{"env": {}}, prodDB, false, false},
		{"a broken expression allows nothing but denies",
			access.Labels{"env": {"^(prod$"}}, prodDB, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.selector.Matches(tt.labels); got != tt.allow {
				t.Errorf("Matches = %v, want %v", got, tt.allow)
			}
			if got := tt.selector.MatchesAny(tt.labels); got != tt.deny {
				t.Errorf("MatchesAny = %v, want %v", got, tt.deny)
			}
		})
	}
}

func TestLabelsValidate(t *testing.T) {
	tests := []struct {
		name     string
		selector access.Labels
		want     []string // empty: valid
	}{
		{"plain values", access.Labels{"env": {"prod", "stage"}}, nil},
		{"the wildcard", access.Labels{"*": {"*"}}, nil},
		{"a regular expression", access.Labels{"env": {"^(dev|stage)$"}}, nil},
		{"a template", access.Labels{"team": {"{{internal.team}}"}}, nil},
		{"a template inside an expression", access.Labels{"team": {"^{{internal.team}}-.*$"}}, nil},
		{"an empty key", access.Labels{"": {"x"}}, []string{"spec.allow.node_labels", "empty label key"}},
		{"an empty value", access.Labels{"env": {""}}, []string{`spec.allow.node_labels["env"]`, "empty label value"}},
		{"a broken expression", access.Labels{"env": {"^(prod$"}},
			[]string{`spec.allow.node_labels["env"]: invalid regular expression "^(prod$"`}},
		{"a broken expression in a list names its index", access.Labels{"env": {"dev", "^(prod$"}},
			[]string{`spec.allow.node_labels["env"][1]: invalid regular expression`}},
		{"an unknown template", access.Labels{"env": {"{{foo}}"}}, []string{`spec.allow.node_labels["env"]`, "unknown template"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.selector.Validate("spec.allow.node_labels")
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			wantErr(t, err, access.ErrInvalid, tt.want...)
		})
	}
}

func TestLabelsIsWildcard(t *testing.T) {
	tests := []struct {
		l    access.Labels
		want bool
	}{
		{access.Labels{"*": {"*"}}, true},
		{access.Labels{"*": {"*", "x"}}, false},
		{access.Labels{"*": {"x"}}, false},
		{access.Labels{"*": {"*"}, "env": {"prod"}}, false},
		{access.Labels{}, false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := tt.l.IsWildcard(); got != tt.want {
			t.Errorf("%v.IsWildcard() = %v, want %v", tt.l, got, tt.want)
		}
	}
}

func TestMatchResourceLabels(t *testing.T) {
	res := map[string]string{"env": "prod", "team": "dba"}
	tests := []struct {
		name string
		q    map[string]string
		want bool
	}{
		{"no filter", nil, true},
		{"one label", map[string]string{"env": "prod"}, true},
		{"two labels", map[string]string{"env": "prod", "team": "dba"}, true},
		{"one of two differs", map[string]string{"env": "prod", "team": "web"}, false},
		{"a missing label", map[string]string{"region": "eu"}, false},
		{"no wildcards in a search", map[string]string{"env": "*"}, false},
		{"an empty value is not a missing label", map[string]string{"owner": ""}, false},
	}
	for _, tt := range tests {
		if got := access.MatchResourceLabels(tt.q, res); got != tt.want {
			t.Errorf("%s: MatchResourceLabels(%v) = %v, want %v", tt.name, tt.q, got, tt.want)
		}
	}
}

func BenchmarkLabelsMatches(b *testing.B) {
	res := map[string]string{"env": "prod", "team": "dba", "region": "eu-west-1", "tier": "db"}
	for _, bc := range []struct {
		name string
		l    access.Labels
	}{
		{"exact", access.Labels{"env": {"prod"}, "team": {"dba"}}},
		{"glob", access.Labels{"region": {"eu-*"}}},
		{"regex", access.Labels{"env": {"^(prod|stage)$"}, "region": {"^eu-.*$"}}},
		{"wildcard", access.Labels{"*": {"*"}}},
		{"wildcard key", access.Labels{"*": {"db"}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !bc.l.Matches(res) {
					b.Fatal("no match")
				}
			}
		})
	}
}

// Role matching runs on many requests at once; the regexp cache must stay
// correct when it fills up and is cleared under concurrent use.
func TestMatchValueConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1500 {
				p := fmt.Sprintf("^v%d-%d-.*$", g, i)
				ok, err := access.MatchValue(p, fmt.Sprintf("v%d-%d-x", g, i))
				if err != nil || !ok {
					t.Errorf("MatchValue(%q) = %v, %v", p, ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
