package inventory

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-dev/gatehouse/access"
)

func node(name string, labels map[string]string) access.Resource {
	return access.Resource{
		Kind:     access.KindNode,
		Version:  "v1",
		Metadata: access.Metadata{Name: name, Labels: labels},
		Spec:     access.ResourceSpec{Hostname: name},
	}
}

func db(name string, labels map[string]string) access.Resource {
	return access.Resource{
		Kind:     access.KindDB,
		Version:  "v1",
		Metadata: access.Metadata{Name: name, Labels: labels},
		Spec:     access.ResourceSpec{Protocol: "postgres", URI: name + ".internal:5432"},
	}
}

func put(r access.Resource, rev int64) access.ResourceEvent {
	return access.ResourceEvent{Type: access.EventPut, Resource: r, Revision: rev}
}

func del(kind, name string, rev int64) access.ResourceEvent {
	return access.ResourceEvent{
		Type:     access.EventDelete,
		Resource: access.Resource{Kind: kind, Metadata: access.Metadata{Name: name}},
		Revision: rev,
	}
}

func reset(rev int64, rs ...access.Resource) access.ResourceEvent {
	return access.ResourceEvent{Type: access.EventReset, Snapshot: rs, Revision: rev}
}

// names lists what a search for everything of kind returns, as "name" or
// "name@hostname" when the hostname differs, so replacements show.
func names(ix *Index, kind string) []string {
	out := []string{}
	for _, r := range ix.Search(Query{Kind: kind}) {
		s := r.Metadata.Name
		if r.Spec.Hostname != "" && r.Spec.Hostname != s {
			s += "@" + r.Spec.Hostname
		}
		out = append(out, s)
	}
	return out
}

func TestApply(t *testing.T) {
	renamed := node("a", nil)
	renamed.Spec.Hostname = "a2"
	tests := []struct {
		name   string
		events []access.ResourceEvent
		nodes  []string
		dbs    []string
		len    int
		rev    int64
	}{
		{name: "empty", nodes: []string{}, dbs: []string{}},
		{
			name:   "puts sort by name",
			events: []access.ResourceEvent{put(node("c", nil), 1), put(node("a", nil), 2), put(node("b", nil), 3)},
			nodes:  []string{"a", "b", "c"}, dbs: []string{}, len: 3, rev: 3,
		},
		{
			name:   "put replaces same kind and name",
			events: []access.ResourceEvent{put(node("a", nil), 1), put(renamed, 2)},
			nodes:  []string{"a@a2"}, dbs: []string{}, len: 1, rev: 2,
		},
		{
			name:   "same name in two kinds are two resources",
			events: []access.ResourceEvent{put(node("x", nil), 1), put(db("x", nil), 2)},
			nodes:  []string{"x"}, dbs: []string{"x"}, len: 2, rev: 2,
		},
		{
			name:   "delete removes only that kind",
			events: []access.ResourceEvent{put(node("x", nil), 1), put(db("x", nil), 2), del(access.KindDB, "x", 3)},
			nodes:  []string{"x"}, dbs: []string{}, len: 1, rev: 3,
		},
		{
			name:   "delete of a missing resource records the revision",
			events: []access.ResourceEvent{put(node("a", nil), 1), del(access.KindNode, "zz", 7), del(access.KindApp, "a", 8)},
			nodes:  []string{"a"}, dbs: []string{}, len: 1, rev: 8,
		},
		{
			name:   "delete the last one",
			events: []access.ResourceEvent{put(node("a", nil), 1), del(access.KindNode, "a", 2)},
			nodes:  []string{}, dbs: []string{}, len: 0, rev: 2,
		},
		{
			name: "reset replaces everything",
			events: []access.ResourceEvent{
				put(node("a", nil), 1), put(db("d", nil), 2),
				reset(10, node("c", nil), node("b", nil)),
			},
			nodes: []string{"b", "c"}, dbs: []string{}, len: 2, rev: 10,
		},
		{
			name:   "reset keeps the last of duplicate names",
			events: []access.ResourceEvent{reset(5, node("a", nil), node("b", nil), renamed)},
			nodes:  []string{"a@a2", "b"}, dbs: []string{}, len: 2, rev: 5,
		},
		{
			name:   "empty reset empties",
			events: []access.ResourceEvent{put(node("a", nil), 1), reset(4)},
			nodes:  []string{}, dbs: []string{}, len: 0, rev: 4,
		},
		{
			name:   "events after a reset apply on top of it",
			events: []access.ResourceEvent{reset(4, node("a", nil)), put(node("b", nil), 5), del(access.KindNode, "a", 6)},
			nodes:  []string{"b"}, dbs: []string{}, len: 1, rev: 6,
		},
		{
			name: "resources without kind or name are skipped",
			events: []access.ResourceEvent{
				put(access.Resource{Kind: access.KindNode}, 1),
				put(access.Resource{Metadata: access.Metadata{Name: "x"}}, 2),
				reset(3, node("", nil), access.Resource{Metadata: access.Metadata{Name: "y"}}, node("ok", nil)),
			},
			nodes: []string{"ok"}, dbs: []string{}, len: 1, rev: 3,
		},
		{
			name:   "unknown event types are ignored",
			events: []access.ResourceEvent{put(node("a", nil), 1), {Type: "bogus", Resource: node("b", nil), Revision: 9}},
			nodes:  []string{"a"}, dbs: []string{}, len: 1, rev: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix := New()
			wantReady := false
			for _, ev := range tt.events {
				ix.Apply(ev)
				wantReady = wantReady || ev.Type == access.EventReset
			}
			if got := isReady(ix); got != wantReady {
				t.Errorf("ready = %v, want %v (only a reset is a full load)", got, wantReady)
			}
			if got := names(ix, access.KindNode); !slices.Equal(got, tt.nodes) {
				t.Errorf("nodes = %q, want %q", got, tt.nodes)
			}
			if got := names(ix, access.KindDB); !slices.Equal(got, tt.dbs) {
				t.Errorf("dbs = %q, want %q", got, tt.dbs)
			}
			if got := ix.Len(); got != tt.len {
				t.Errorf("Len = %d, want %d", got, tt.len)
			}
			if got := ix.Revision(); got != tt.rev {
				t.Errorf("Revision = %d, want %d", got, tt.rev)
			}
		})
	}
}

// searchFixture is a small inventory covering every searchable field.
func searchFixture() *Index {
	ix := New()
	ix.Apply(reset(1,
		access.Resource{Kind: access.KindNode, Metadata: access.Metadata{
			Name: "iot", Description: "IoT Gateway", Labels: map[string]string{"env": "staging", "team": "edge"},
		}, Spec: access.ResourceSpec{Hostname: "iot-gw-1", Addr: "10.0.0.7:22"}},
		access.Resource{Kind: access.KindNode, Metadata: access.Metadata{
			Name: "web-1", Labels: map[string]string{"env": "prod", "team": "web"},
		}, Spec: access.ResourceSpec{Hostname: "WEB-1.example.com", Addr: "10.0.1.1:22"}},
		access.Resource{Kind: access.KindNode, Metadata: access.Metadata{
			Name: "web-2", Labels: map[string]string{"env": "staging", "team": "web", "Owner": "Zoë"},
		}, Spec: access.ResourceSpec{Hostname: "web-2.example.com", Addr: "10.0.1.2:22"}},
		access.Resource{Kind: access.KindNode, Metadata: access.Metadata{
			Name: "bastion", Labels: map[string]string{"env": "prod"},
		}, Spec: access.ResourceSpec{Hostname: "bastion", Addr: "10.0.9.9:22"}},
		access.Resource{Kind: access.KindApp, Metadata: access.Metadata{
			Name: "grafana", Labels: map[string]string{"env": "prod"},
		}, Spec: access.ResourceSpec{URI: "http://grafana:3000", PublicAddr: "grafana.example.com"}},
		access.Resource{Kind: access.KindDB, Metadata: access.Metadata{
			Name: "orders", Labels: map[string]string{"env": "prod"},
		}, Spec: access.ResourceSpec{Protocol: "postgres", URI: "orders.internal:5432"}},
	))
	return ix
}

func TestSearch(t *testing.T) {
	ix := searchFixture()
	onlyProd := func(r access.Resource) bool { return r.Metadata.Labels["env"] == "prod" }
	tests := []struct {
		name string
		q    Query
		want []string
	}{
		{"all of a kind, sorted by name", Query{Kind: access.KindNode}, []string{"bastion", "iot", "web-1", "web-2"}},
		{"other kind", Query{Kind: access.KindApp}, []string{"grafana"}},
		{"empty kind finds nothing", Query{}, []string{}},
		{"unknown kind finds nothing", Query{Kind: "pod"}, []string{}},
		{"kind with no resources", Query{Kind: access.KindWindowsDesktop}, []string{}},

		{"word in name", Query{Kind: access.KindNode, Words: []string{"bast"}}, []string{"bastion"}},
		{"word in hostname", Query{Kind: access.KindNode, Words: []string{"gw-1"}}, []string{"iot"}},
		{"word in addr", Query{Kind: access.KindNode, Words: []string{"10.0.1."}}, []string{"web-1", "web-2"}},
		{"word in uri", Query{Kind: access.KindApp, Words: []string{":3000"}}, []string{"grafana"}},
		{"word in public_addr", Query{Kind: access.KindApp, Words: []string{"example.com"}}, []string{"grafana"}},
		{"word in description", Query{Kind: access.KindNode, Words: []string{"gateway"}}, []string{"iot"}},
		{"word in label key", Query{Kind: access.KindNode, Words: []string{"owner"}}, []string{"web-2"}},
		{"word in label value", Query{Kind: access.KindNode, Words: []string{"edge"}}, []string{"iot"}},
		{"word not searched in protocol", Query{Kind: access.KindDB, Words: []string{"postgres"}}, []string{}},

		{"words are ANDed", Query{Kind: access.KindNode, Words: []string{"web", "staging"}}, []string{"web-2"}},
		{"AND across different fields", Query{Kind: access.KindNode, Words: []string{"gateway", "10.0.0.7"}}, []string{"iot"}},
		{"one missing word fails", Query{Kind: access.KindNode, Words: []string{"web", "nope"}}, []string{}},
		{"query upper, data lower", Query{Kind: access.KindNode, Words: []string{"WEB-2"}}, []string{"web-2"}},
		{"query lower, data upper", Query{Kind: access.KindNode, Words: []string{"web-1.example"}}, []string{"web-1"}},
		{"non-ASCII case", Query{Kind: access.KindNode, Words: []string{"ZOË"}}, []string{"web-2"}},
		{"phrase within a field", Query{Kind: access.KindNode, Words: []string{"iot gateway"}}, []string{"iot"}},
		{"no match across fields", Query{Kind: access.KindNode, Words: []string{"edgestaging"}}, []string{}},
		{"separator never matches", Query{Kind: access.KindNode, Words: []string{"\x00"}}, []string{}},
		{"empty and blank words ignored", Query{Kind: access.KindNode, Words: []string{"", "  ", " web "}}, []string{"web-1", "web-2"}},

		{"label", Query{Kind: access.KindNode, Labels: map[string]string{"env": "prod"}}, []string{"bastion", "web-1"}},
		{"labels are ANDed", Query{Kind: access.KindNode, Labels: map[string]string{"env": "staging", "team": "web"}}, []string{"web-2"}},
		{"label value is exact", Query{Kind: access.KindNode, Labels: map[string]string{"env": "Prod"}}, []string{}},
		{"label value is not a substring", Query{Kind: access.KindNode, Labels: map[string]string{"env": "pro"}}, []string{}},
		{"missing label key", Query{Kind: access.KindNode, Labels: map[string]string{"team": "edge", "x": ""}}, []string{}},
		{"labels and words", Query{Kind: access.KindNode, Labels: map[string]string{"env": "prod"}, Words: []string{"web"}}, []string{"web-1"}},

		{"allow filters", Query{Kind: access.KindNode, Allow: onlyProd}, []string{"bastion", "web-1"}},
		{"allow nothing", Query{Kind: access.KindNode, Allow: func(access.Resource) bool { return false }}, []string{}},
		{"allow with words", Query{Kind: access.KindNode, Allow: onlyProd, Words: []string{"web"}}, []string{"web-1"}},

		{"limit keeps the first by name", Query{Kind: access.KindNode, Limit: 2}, []string{"bastion", "iot"}},
		{"limit counts matches, not scanned", Query{Kind: access.KindNode, Words: []string{"web"}, Limit: 1}, []string{"web-1"}},
		{"limit after allow", Query{Kind: access.KindNode, Allow: onlyProd, Limit: 1}, []string{"bastion"}},
		{"limit above count", Query{Kind: access.KindNode, Limit: 99}, []string{"bastion", "iot", "web-1", "web-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := ix.Search(tt.q)
			if res == nil {
				t.Fatal("Search returned nil, want an empty slice")
			}
			got := []string{}
			for _, r := range res {
				if r.Kind != tt.q.Kind {
					t.Errorf("%s has kind %q, want %q", r.Metadata.Name, r.Kind, tt.q.Kind)
				}
				got = append(got, r.Metadata.Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAllowSeesEachCandidateOnce(t *testing.T) {
	ix := searchFixture()
	var seen []string
	ix.Search(Query{Kind: access.KindNode, Labels: map[string]string{"env": "staging"}, Allow: func(r access.Resource) bool {
		seen = append(seen, r.Metadata.Name)
		return true
	}})
	// Allow runs after the label filter: it is the caller's and may be the
	// expensive part, so it must not see resources the cheap filters drop.
	if want := []string{"iot", "web-2"}; !slices.Equal(seen, want) {
		t.Errorf("Allow saw %q, want %q", seen, want)
	}
}

// TestSearchShared: SearchShared answers what Search answers, without
// copying: the same resource twice is the same memory, and nothing found
// is an empty slice, not nil (JSON []).
func TestSearchShared(t *testing.T) {
	ix := searchFixture()
	q := Query{Kind: access.KindNode, Labels: map[string]string{"env": "staging"}}
	copies, shared := ix.Search(q), ix.SearchShared(q)
	if len(shared) != len(copies) || len(shared) == 0 {
		t.Fatalf("SearchShared found %d, Search %d", len(shared), len(copies))
	}
	for i, r := range shared {
		if !reflect.DeepEqual(*r, copies[i]) {
			t.Errorf("result %d: SearchShared %+v, Search %+v", i, *r, copies[i])
		}
	}
	if again := ix.SearchShared(q); again[0] != shared[0] {
		t.Error("SearchShared copied a resource")
	}
	for _, q := range []Query{{Kind: access.KindNode, Words: []string{"no-such-thing"}}, {Kind: "no-such-kind"}, {Kind: access.KindNode, Words: []string{"a\x00b"}}} {
		if got := ix.SearchShared(q); got == nil || len(got) != 0 {
			t.Errorf("%+v: %#v, want an empty slice", q, got)
		}
	}
}

func TestCopies(t *testing.T) {
	in := node("a", map[string]string{"env": "prod"})
	ix := New()
	ix.Apply(put(in, 1))

	in.Metadata.Labels["env"] = "changed-by-writer"
	got := ix.Search(Query{Kind: access.KindNode})
	got[0].Metadata.Labels["env"] = "changed-by-reader"
	got[0].Metadata.Name = "renamed"

	again := ix.Search(Query{Kind: access.KindNode, Labels: map[string]string{"env": "prod"}})
	if len(again) != 1 || again[0].Metadata.Name != "a" {
		t.Fatalf("index changed through a caller's map: %+v", again)
	}

	list := []access.Resource{node("b", map[string]string{"env": "prod"})}
	ix.Apply(reset(2, list...))
	list[0].Metadata.Labels["env"] = "changed-by-writer"
	if n := len(ix.Search(Query{Kind: access.KindNode, Labels: map[string]string{"env": "prod"}})); n != 1 {
		t.Fatalf("index changed through a reset's map: %d results", n)
	}
}

// checkInvariants verifies the chunk structure and returns the names in
// index order.
func checkInvariants(t *testing.T, ks *kindSet) []string {
	t.Helper()
	if ks == nil {
		return nil
	}
	var all []string
	for i, c := range ks.chunks {
		if c.len() == 0 || c.len() > maxChunk {
			t.Fatalf("chunk %d has %d entries", i, c.len())
		}
		if len(c.labels) != c.len() {
			t.Fatalf("chunk %d has %d entries and %d label signatures", i, c.len(), len(c.labels))
		}
		for w, col := range c.grams {
			if len(col) != c.len() {
				t.Fatalf("chunk %d has %d entries and %d words %d of gram signatures", i, c.len(), len(col), w)
			}
		}
		for j, e := range c.entries {
			all = append(all, e.name())
			if want := e.sign(); c.labels[j] != want.labels || c.gramsOf(j) != want.grams {
				t.Fatalf("chunk %d: the signatures of %s are not its own", i, e.name())
			}
		}
	}
	if len(all) != ks.n {
		t.Fatalf("n = %d, chunks hold %d", ks.n, len(all))
	}
	if len(all) == 0 {
		t.Fatal("empty kindSet published; want nil")
	}
	for i := 1; i < len(all); i++ {
		if all[i-1] >= all[i] {
			t.Fatalf("not strictly sorted at %d: %q, %q", i, all[i-1], all[i])
		}
	}
	return all
}

// snapshotNames lists name@hostname of every node in s, as names does for
// the current snapshot.
func snapshotNames(s *snapshot) []string {
	var view Index
	view.cur.Store(s)
	return names(&view, access.KindNode)
}

// TestChunksAgainstReference drives random puts and deletes through the
// chunked structure, checks it against a plain map after every step, and
// checks that no earlier snapshot ever changed (copy-on-write).
func TestChunksAgainstReference(t *testing.T) {
	tests := []struct {
		name     string
		keys     int // distinct names; small means many replaces
		initial  int // names loaded by a reset first, which fills chunks to fillChunk
		steps    int
		putRatio float64
	}{
		{"grow", 5000, 0, 6000, 0.9},
		{"churn", 2000, 0, 8000, 0.5},
		{"shrink", 3000, 0, 8000, 0.3},
		{"few keys", 10, 0, 2000, 0.5},
		// Start from many chunks so deletes merge neighbours and empty
		// whole chunks.
		{"shrink after reset", 4000, 4000, 12000, 0.1},
		{"churn after reset", 4000, 3000, 12000, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tt.keys)))
			ix := New()
			ref := map[string]string{} // name -> hostname
			var initial []access.Resource
			for i := range tt.initial {
				r := node(fmt.Sprintf("n%05d", i*tt.keys/tt.initial), nil)
				initial = append(initial, r)
				ref[r.Metadata.Name] = r.Spec.Hostname
			}
			ix.Apply(reset(0, initial...))
			type frozen struct {
				s    *snapshot
				want []string
			}
			var old []frozen
			for step := range tt.steps {
				name := fmt.Sprintf("n%05d", rng.IntN(tt.keys))
				if rng.Float64() < tt.putRatio {
					r := node(name, nil)
					r.Spec.Hostname = fmt.Sprintf("h%d", step)
					ix.Apply(put(r, int64(step)))
					ref[name] = r.Spec.Hostname
				} else {
					ix.Apply(del(access.KindNode, name, int64(step)))
					delete(ref, name)
				}
				s := ix.cur.Load()
				got := checkInvariants(t, s.kinds[access.KindNode])
				if len(got) != len(ref) || s.n != len(ref) {
					t.Fatalf("step %d: %d names, n %d, want %d", step, len(got), s.n, len(ref))
				}
				if len(ref) == 0 {
					if _, ok := s.kinds[access.KindNode]; ok {
						t.Fatalf("step %d: empty kind still present", step)
					}
					continue
				}
				for _, c := range s.kinds[access.KindNode].chunks {
					for _, e := range c.entries {
						if ref[e.name()] != e.res.Spec.Hostname {
							t.Fatalf("step %d: %s has hostname %q, want %q", step, e.name(), e.res.Spec.Hostname, ref[e.name()])
						}
					}
				}
				if step%500 == 0 {
					old = append(old, frozen{s, snapshotNames(s)})
				}
			}
			for i, f := range old {
				if got := snapshotNames(f.s); !slices.Equal(got, f.want) {
					t.Fatalf("snapshot %d changed after publication", i)
				}
			}
		})
	}
}

// TestConcurrentApplySearch runs one writer against many searchers; run it
// with -race. Every search must see a consistent snapshot: sorted, all of the
// requested kind, all matching.
func TestConcurrentApplySearch(t *testing.T) {
	ix := New()
	ix.Apply(reset(1, genResources(2000, access.KindNode, 1)...))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(2, 2))
		extra := genResources(3000, access.KindNode, 2)
		for i := int64(2); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			switch r := extra[rng.IntN(len(extra))]; {
			case i%500 == 0:
				ix.Apply(reset(i, genResources(1500, access.KindNode, uint64(i))...))
			case rng.IntN(3) == 0:
				ix.Apply(del(r.Kind, r.Metadata.Name, i))
			default:
				ix.Apply(put(r, i))
			}
		}
	}()
	var searchers sync.WaitGroup
	for g := range 4 {
		searchers.Add(1)
		go func() {
			defer searchers.Done()
			for i := range 200 {
				q := Query{Kind: access.KindNode, Words: []string{"web"}, Labels: map[string]string{"env": "prod"}}
				if (g+i)%2 == 0 {
					q.Allow = func(r access.Resource) bool { return r.Metadata.Labels["team"] != "team-03" }
				}
				res := ix.Search(q)
				for j, r := range res {
					if j > 0 && res[j-1].Metadata.Name >= r.Metadata.Name {
						t.Errorf("unsorted: %q then %q", res[j-1].Metadata.Name, r.Metadata.Name)
						return
					}
					if r.Metadata.Labels["env"] != "prod" || !strings.Contains(string(appendHay(nil, &r)), "web") {
						t.Errorf("%s does not match", r.Metadata.Name)
						return
					}
					if q.Allow != nil && r.Metadata.Labels["team"] == "team-03" {
						t.Errorf("%s not allowed", r.Metadata.Name)
						return
					}
				}
				_ = ix.Len()
				_ = ix.Revision()
			}
		}()
	}
	searchers.Wait()
	close(stop)
	wg.Wait()
}

// matchesReference is the search predicate written plainly, field by field,
// with none of the index's precomputation, to check the index against.
func matchesReference(r access.Resource, q Query) bool {
	if r.Kind != q.Kind {
		return false
	}
	for k, v := range q.Labels {
		if have, ok := r.Metadata.Labels[k]; !ok || have != v {
			return false
		}
	}
	fields := []string{r.Metadata.Name, r.Spec.Hostname, r.Spec.Addr, r.Spec.URI, r.Spec.PublicAddr, r.Metadata.Description}
	for k, v := range r.Metadata.Labels {
		fields = append(fields, k, v)
	}
	for _, w := range q.Words {
		w = strings.ToLower(strings.TrimSpace(w))
		if w == "" {
			continue
		}
		if !slices.ContainsFunc(fields, func(f string) bool { return strings.Contains(strings.ToLower(f), w) }) {
			return false
		}
	}
	return q.Allow == nil || q.Allow(r)
}

// TestSearchMatchesReference runs random queries built from the data itself
// (so that many match) against both the index and matchesReference. It is
// what shows that the prefilters of filter.go never drop a match.
func TestSearchMatchesReference(t *testing.T) {
	list := genResources(1500, access.KindNode, 3)
	list = append(list, genResources(300, access.KindDB, 4)...)
	for i := range 50 {
		r := node(fmt.Sprintf("ÜBER-Knoten-%d", i), map[string]string{"Ört": "Zürich", "env": "prod"})
		r.Metadata.Description = "Großer Server"
		list = append(list, r)
	}
	ix := New()
	ix.Apply(reset(1, list...))
	// Some puts after the reset, so entries built both ways are covered.
	for i := range 200 {
		r := list[i*7]
		r.Metadata.Description = fmt.Sprintf("Updated %d via PUT", i)
		r.Metadata.Labels = map[string]string{"env": "prod", "patched": fmt.Sprint(i % 3)}
		list[i*7] = r
		ix.Apply(put(r, int64(2+i)))
	}

	rng := rand.New(rand.NewPCG(5, 5))
	pick := func() access.Resource { return list[rng.IntN(len(list))] }
	word := func() string {
		r := pick()
		fields := []string{r.Metadata.Name, r.Spec.Hostname, r.Spec.Addr, r.Metadata.Description}
		for k, v := range r.Metadata.Labels {
			fields = append(fields, k, v)
		}
		f := []rune(fields[rng.IntN(len(fields))])
		if len(f) == 0 {
			return "x"
		}
		i := rng.IntN(len(f))
		w := string(f[i:min(len(f), i+1+rng.IntN(6))])
		if rng.IntN(3) == 0 {
			w = strings.ToUpper(w)
		}
		return w
	}
	allowed := map[string]bool{"team-01": true, "team-02": true, "team-03": true}
	matched := 0
	const queries = 1500
	for i := range queries {
		q := Query{Kind: access.KindNode}
		if i%10 == 0 {
			q.Kind = access.KindDB
		}
		for range rng.IntN(4) {
			q.Words = append(q.Words, word())
		}
		if rng.IntN(2) == 0 {
			q.Labels = map[string]string{}
			r := pick()
			for k, v := range r.Metadata.Labels {
				if rng.IntN(3) == 0 {
					q.Labels[k] = v
				}
			}
		}
		if rng.IntN(3) == 0 {
			q.Allow = func(r access.Resource) bool { return allowed[r.Metadata.Labels["team"]] }
		}
		var want []string
		for _, r := range list {
			if matchesReference(r, q) {
				want = append(want, r.Metadata.Name)
			}
		}
		slices.Sort(want)
		got := []string{}
		for _, r := range ix.Search(q) {
			got = append(got, r.Metadata.Name)
		}
		if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("query %+v: got %d results, want %d\ngot  %q\nwant %q", q, len(got), len(want), head(got), head(want))
		}
		shared := []string{}
		for _, r := range ix.SearchShared(q) {
			shared = append(shared, r.Metadata.Name)
		}
		if !slices.Equal(shared, got) {
			t.Fatalf("query %+v: SearchShared found %q, Search %q", q, head(shared), head(got))
		}
		if len(want) > 0 {
			matched++
		}
	}
	// The test means little if the random queries rarely match anything.
	t.Logf("%d of %d queries matched something", matched, queries)
	if matched < queries/4 {
		t.Errorf("only %d of %d queries matched anything", matched, queries)
	}
}

func head(s []string) []string { return s[:min(len(s), 5)] }

// TestChunkLayout checks the split and merge rules on hand-made layouts.
func TestChunkLayout(t *testing.T) {
	// seq makes n names with a prefix, in order.
	seq := func(prefix string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s%04d", prefix, i)
		}
		return out
	}
	build := func(chunks ...[]string) *kindSet {
		ks := &kindSet{}
		for _, c := range chunks {
			ch := makeChunk(len(c))
			for _, n := range c {
				e := &entry{res: node(n, nil)}
				sg := e.sign()
				ch.appendEntry(e, &sg)
			}
			ks.chunks = append(ks.chunks, ch)
			ks.n += ch.len()
		}
		return ks
	}
	// Two neighbour sizes that each leave room for a small chunk.
	const big, small = maxChunk * 5 / 8, maxChunk * 3 / 8
	tests := []struct {
		name   string
		start  *kindSet
		put    string // name to put, or
		del    string // name to delete
		sizes  []int  // chunk sizes after
		delta  int
		absent bool
	}{
		{name: "insert inside a chunk", start: build(seq("a", 3), seq("c", 3)), put: "a0000x", sizes: []int{4, 3}, delta: 1},
		{name: "insert between chunks goes to the later one", start: build(seq("a", 3), seq("c", 3)), put: "b", sizes: []int{3, 4}, delta: 1},
		{name: "insert past the end goes to the last chunk", start: build(seq("a", 3), seq("c", 3)), put: "z", sizes: []int{3, 4}, delta: 1},
		{name: "insert before the start goes to the first chunk", start: build(seq("b", 3), seq("c", 3)), put: "a", sizes: []int{4, 3}, delta: 1},
		{name: "replace keeps sizes", start: build(seq("a", 3), seq("c", 3)), put: "c0001", sizes: []int{3, 3}},
		{name: "a full chunk splits", start: build(seq("a", maxChunk), seq("c", 3)), put: "a0000x", sizes: []int{maxChunk / 2, maxChunk/2 + 1, 3}, delta: 1},
		{name: "deleting a chunk's last entry drops it", start: build(seq("a", maxChunk), seq("b", 1), seq("c", maxChunk)), del: "b0000", sizes: []int{maxChunk, maxChunk}, delta: -1},
		{name: "a small chunk merges right", start: build(seq("a", big), seq("b", mergeBelow), seq("c", small)), del: "b0000", sizes: []int{big, mergeBelow - 1 + small}, delta: -1},
		{name: "a small chunk merges left when right is bigger", start: build(seq("a", small), seq("b", mergeBelow), seq("c", big)), del: "b0000", sizes: []int{small + mergeBelow - 1, big}, delta: -1},
		{name: "no merge that would overflow", start: build(seq("a", maxChunk), seq("b", mergeBelow), seq("c", maxChunk)), del: "b0000", sizes: []int{maxChunk, mergeBelow - 1, maxChunk}, delta: -1},
		{name: "no merge above the threshold", start: build(seq("a", 10), seq("b", mergeBelow+1), seq("c", 10)), del: "b0000", sizes: []int{10, mergeBelow, 10}, delta: -1},
		{name: "delete of a missing name", start: build(seq("a", 3)), del: "a9999", sizes: []int{3}, absent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := checkInvariants(t, tt.start)
			var ks *kindSet
			var delta int
			if tt.put != "" {
				ks, delta = tt.start.put(&entry{res: node(tt.put, nil)})
			} else {
				var removed bool
				ks, removed = tt.start.del(tt.del)
				if removed == tt.absent {
					t.Errorf("removed = %v", removed)
				}
				if removed {
					delta = -1
				}
			}
			if delta != tt.delta {
				t.Errorf("delta = %d, want %d", delta, tt.delta)
			}
			checkInvariants(t, ks)
			var sizes []int
			for _, c := range ks.chunks {
				sizes = append(sizes, c.len())
			}
			if !slices.Equal(sizes, tt.sizes) {
				t.Errorf("chunk sizes %v, want %v", sizes, tt.sizes)
			}
			if got := checkInvariants(t, tt.start); !slices.Equal(got, before) {
				t.Error("the original kindSet changed")
			}
		})
	}
}
