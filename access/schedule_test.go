package access_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
)

// drain empties s earliest first and describes it as "id@minutes ...",
// minutes after t0.
func drain(s *access.Schedule) string {
	var out []string
	for {
		id, due, ok := s.Next()
		if !ok {
			return strings.Join(out, " ")
		}
		if !s.Remove(id) {
			panic("Next returned an id that Remove does not know: " + id)
		}
		out = append(out, fmt.Sprintf("%s@%d", id, int(due.Sub(t0)/time.Minute)))
	}
}

func TestSchedule(t *testing.T) {
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	type op struct {
		set    string // id to set at min; empty: remove del
		min    int
		remove string
	}
	for _, tc := range []struct {
		name string
		ops  []op
		want string
	}{
		{"empty", nil, ""},
		{"earliest first", []op{{set: "c", min: 30}, {set: "a", min: 10}, {set: "b", min: 20}}, "a@10 b@20 c@30"},
		{"same time in id order", []op{{set: "b", min: 5}, {set: "c", min: 5}, {set: "a", min: 5}}, "a@5 b@5 c@5"},
		{"set again moves later", []op{{set: "a", min: 10}, {set: "b", min: 20}, {set: "a", min: 30}}, "b@20 a@30"},
		{"set again moves earlier", []op{{set: "a", min: 10}, {set: "b", min: 20}, {set: "b", min: 1}}, "b@1 a@10"},
		{"set again to the same time", []op{{set: "a", min: 10}, {set: "a", min: 10}}, "a@10"},
		{"remove the earliest", []op{{set: "a", min: 10}, {set: "b", min: 20}, {remove: "a"}}, "b@20"},
		{"remove from the middle", []op{{set: "a", min: 10}, {set: "b", min: 20}, {set: "c", min: 30}, {remove: "b"}}, "a@10 c@30"},
		{"remove unknown changes nothing", []op{{set: "a", min: 10}, {remove: "zz"}}, "a@10"},
		{"removed then set again", []op{{set: "a", min: 10}, {remove: "a"}, {set: "a", min: 40}}, "a@40"},
		{"past times come first", []op{{set: "a", min: 10}, {set: "b", min: -60}}, "b@-60 a@10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s access.Schedule
			for _, o := range tc.ops {
				if o.set != "" {
					s.Set(o.set, at(o.min))
				} else {
					s.Remove(o.remove)
				}
			}
			if n := strings.Count(tc.want, "@"); s.Len() != n {
				t.Errorf("Len = %d, want %d", s.Len(), n)
			}
			if got := drain(&s); got != tc.want {
				t.Errorf("schedule = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestScheduleDueAndClear(t *testing.T) {
	var s access.Schedule
	if _, ok := s.Due("a"); ok {
		t.Fatal("empty schedule knows a")
	}
	if s.Remove("a") {
		t.Fatal("Remove on an empty schedule reported true")
	}
	s.Set("a", t0)
	s.Set("b", t0.Add(time.Hour))
	if due, ok := s.Due("b"); !ok || !due.Equal(t0.Add(time.Hour)) {
		t.Fatalf("Due(b) = %v, %v", due, ok)
	}
	s.Clear()
	if _, _, ok := s.Next(); ok || s.Len() != 0 {
		t.Fatalf("after Clear: Len %d", s.Len())
	}
	s.Set("c", t0) // usable after Clear
	if id, _, _ := s.Next(); id != "c" {
		t.Fatalf("Next after Clear and Set = %q", id)
	}
}

// TestScheduleAgainstSort runs random sets and removes and compares the
// drained order with a sorted map of what should be left.
func TestScheduleAgainstSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		var s access.Schedule
		want := map[string]int{}
		for range 300 {
			id := fmt.Sprintf("r%02d", rng.IntN(60))
			if rng.IntN(4) == 0 {
				s.Remove(id)
				delete(want, id)
				continue
			}
			m := rng.IntN(100)
			s.Set(id, t0.Add(time.Duration(m)*time.Minute))
			want[id] = m
		}
		ids := make([]string, 0, len(want))
		for id := range want {
			ids = append(ids, id)
		}
		slices.SortFunc(ids, func(a, b string) int {
			if want[a] != want[b] {
				return want[a] - want[b]
			}
			return strings.Compare(a, b)
		})
		var parts []string
		for _, id := range ids {
			parts = append(parts, fmt.Sprintf("%s@%d", id, want[id]))
		}
		if got := drain(&s); got != strings.Join(parts, " ") {
			t.Fatalf("round %d: drained\n%s\nwant\n%s", round, got, strings.Join(parts, " "))
		}
	}
}

// TestExpiryDueMatchesExpire: whatever the state, Expire changes a request
// exactly at and after the time ExpiryDue names, and never when ExpiryDue
// names none.
func TestExpiryDueMatchesExpire(t *testing.T) {
	access30 := t0.Add(30 * time.Minute)
	for _, tc := range []struct {
		name    string
		r       access.Request
		wantDue time.Time
		wantOK  bool
	}{
		{"pending: its pending expiry", access.Request{State: access.StatePending, PendingExpires: t0.Add(time.Hour)}, t0.Add(time.Hour), true},
		{"approved: its access expiry", access.Request{State: access.StateApproved, PendingExpires: t0.Add(time.Hour), AccessExpires: &access30}, access30, true},
		{"approved without access expiry: nothing", access.Request{State: access.StateApproved, PendingExpires: t0.Add(time.Hour)}, time.Time{}, false},
		{"denied: nothing", access.Request{State: access.StateDenied, PendingExpires: t0.Add(time.Hour)}, time.Time{}, false},
		{"cancelled: nothing", access.Request{State: access.StateCancelled, PendingExpires: t0.Add(time.Hour)}, time.Time{}, false},
		{"dropped: nothing", access.Request{State: access.StateDropped, AccessExpires: &access30}, time.Time{}, false},
		{"revoked: nothing", access.Request{State: access.StateRevoked, AccessExpires: &access30}, time.Time{}, false},
		{"expired: nothing", access.Request{State: access.StateExpired, PendingExpires: t0}, time.Time{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			due, ok := tc.r.ExpiryDue()
			if ok != tc.wantOK || !due.Equal(tc.wantDue) {
				t.Fatalf("ExpiryDue = %v, %v; want %v, %v", due, ok, tc.wantDue, tc.wantOK)
			}
			for _, now := range []time.Time{t0.Add(-time.Hour), access30.Add(-time.Nanosecond), access30, t0.Add(time.Hour - time.Nanosecond), t0.Add(time.Hour), t0.Add(48 * time.Hour)} {
				r := tc.r
				want := ok && !now.Before(due)
				if got := r.Expire(now); got != want {
					t.Errorf("at %s: Expire = %v, want %v", now.Sub(t0), got, want)
				}
			}
		})
	}
}
