package access_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
)

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

// pending is alice's request for dba and web, for two hours, reviewable for
// one hour, under the given thresholds (default when none).
func pending(thresholds ...access.Threshold) access.Request {
	if len(thresholds) == 0 {
		thresholds = access.DefaultThresholds()
	}
	return access.Request{
		ID: "r1", User: "alice", Roles: []string{"dba", "web"}, Reason: "ticket #123",
		Duration: access.Duration(2 * time.Hour), State: access.StatePending,
		Created: t0, PendingExpires: t0.Add(time.Hour), Thresholds: thresholds, Source: access.SourceCLI,
	}
}

func approved() access.Request {
	r := pending()
	end := t0.Add(2 * time.Hour)
	r.State, r.AccessExpires, r.GrantedRoles = access.StateApproved, &end, []string{"dba", "web"}
	return r
}

func inState(s access.State) access.Request {
	r := pending()
	r.State = s
	return r
}

// deepCopy copies every slice and pointer, so that a test can tell whether a
// failed call changed anything.
func deepCopy(r access.Request) access.Request {
	c := r
	c.Roles = slices.Clone(r.Roles)
	c.GrantedRoles = slices.Clone(r.GrantedRoles)
	c.Thresholds = slices.Clone(r.Thresholds)
	c.Reviews = slices.Clone(r.Reviews)
	if r.AccessExpires != nil {
		e := *r.AccessExpires
		c.AccessExpires = &e
	}
	return c
}

func wantUnchanged(t *testing.T, before, after access.Request) {
	t.Helper()
	if !reflect.DeepEqual(before, after) {
		t.Errorf("a refused call changed the request:\nbefore %+v\nafter  %+v", before, after)
	}
}

func TestAddReviewRefuses(t *testing.T) {
	reviewed := pending()
	reviewed.Reviews = []access.Review{{Author: "bob", Verdict: access.VerdictApprove, Kind: access.ReviewKindReview, Time: t0}}
	reviewed.Thresholds = []access.Threshold{{Name: "default", Approve: 2, Deny: 1, Approvals: 1}}

	tests := []struct {
		name     string
		req      access.Request
		review   access.Review
		now      time.Time
		sentinel error
		want     string
	}{
		{"a finished request", approved(), access.Review{Author: "bob", Verdict: access.VerdictApprove}, t0,
			access.ErrConflict, "request r1 is APPROVED: reviews are closed"},
		{"a denied request", inState(access.StateDenied), access.Review{Author: "bob", Verdict: access.VerdictDeny}, t0,
			access.ErrConflict, "request r1 is DENIED"},
		{"after the pending time", pending(), access.Review{Author: "bob", Verdict: access.VerdictApprove}, t0.Add(time.Hour),
			access.ErrExpired, "nobody reviewed it in time"},
		{"a self-review", pending(), access.Review{Author: "alice", Verdict: access.VerdictApprove}, t0,
			access.ErrForbidden, "you cannot review your own request"},
		{"a second review by the same reviewer", reviewed, access.Review{Author: "bob", Verdict: access.VerdictDeny}, t0,
			access.ErrConflict, "bob has already reviewed request r1"},
		{"no author", pending(), access.Review{Verdict: access.VerdictApprove}, t0,
			access.ErrInvalid, "author is empty"},
		{"no verdict", pending(), access.Review{Author: "bob"}, t0,
			access.ErrInvalid, "want APPROVE or DENY"},
		{"a made-up verdict", pending(), access.Review{Author: "bob", Verdict: "MAYBE"}, t0,
			access.ErrInvalid, `verdict "MAYBE"`},
		{"narrowing to a role nobody asked for", pending(), access.Review{Author: "bob", Verdict: access.VerdictApprove, Roles: []string{"admin"}}, t0,
			access.ErrInvalid, `role "admin" is not requested by request r1`},
		{"narrowing on a denial", pending(), access.Review{Author: "bob", Verdict: access.VerdictDeny, Roles: []string{"dba"}}, t0,
			access.ErrInvalid, "only an approving review may narrow"},
		{"narrowing by a reviewer who counts for no threshold",
			pending(access.Threshold{Name: "dba", Approve: 1, Deny: 1, Reviewers: access.ReviewerSelector{Users: []string{"dave"}}}),
			access.Review{Author: "bob", Verdict: access.VerdictApprove, Roles: []string{"dba"}}, t0,
			access.ErrInvalid, "bob counts for no threshold of request r1 (dba), so the review cannot narrow its roles"},
		{"an admin decision through the review path", pending(), access.Review{Author: "bob", Verdict: access.VerdictApprove, Kind: access.ReviewKindAdmin}, t0,
			access.ErrInvalid, `review kind "admin"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.req
			before := deepCopy(r)
			err := r.AddReview(tt.review, []string{"reviewer"}, tt.now)
			wantErr(t, err, tt.sentinel, tt.want)
			wantUnchanged(t, before, r)
		})
	}
}

// step is one review in a scenario.
type step struct {
	author  string
	roles   []string // the reviewer's standing roles
	verdict access.Verdict
	narrow  []string
	reason  string
}

func approve(author string, roles ...string) step {
	return step{author: author, roles: roles, verdict: access.VerdictApprove}
}

func deny(author, reason string, roles ...string) step {
	return step{author: author, roles: roles, verdict: access.VerdictDeny, reason: reason}
}

func (s step) narrowTo(roles ...string) step { s.narrow = roles; return s }

func TestReviewScenarios(t *testing.T) {
	security := access.Threshold{Name: "security", Approve: 2, Deny: 1, Reviewers: access.ReviewerSelector{Roles: []string{"security"}}}
	dba := access.Threshold{Name: "dba", Approve: 1, Deny: 2, Reviewers: access.ReviewerSelector{Roles: []string{"dba-lead"}, Users: []string{"dave"}}}
	tests := []struct {
		name       string
		thresholds []access.Threshold
		start      *time.Time
		steps      []step
		state      access.State
		progress   string
		granted    []string
		reason     string // substring of state_reason
	}{
		{"one approval meets the default threshold", nil,
			nil, []step{approve("bob")}, access.StateApproved, "default 1/1", []string{"dba", "web"}, "approved by bob"},
		{"one denial ends it with the reviewer's reason", nil,
			nil, []step{deny("bob", "not during the freeze")}, access.StateDenied, "default 0/1", nil, "not during the freeze"},
		{"a denial without a reason names the reviewer", nil,
			nil, []step{deny("bob", "")}, access.StateDenied, "default 0/1", nil, "denied by bob"},
		{"no thresholds at all means the default", []access.Threshold{},
			nil, []step{approve("bob")}, access.StateApproved, "default 1/1", []string{"dba", "web"}, ""},
		{"every threshold must be met (AND): still pending", []access.Threshold{security, dba},
			nil, []step{approve("sam", "security"), approve("lee", "dba-lead")}, access.StatePending, "security 1/2, dba 1/1", nil, ""},
		{"every threshold must be met (AND): approved on the last one", []access.Threshold{security, dba},
			nil, []step{approve("sam", "security"), approve("lee", "dba-lead"), approve("sue", "security")},
			access.StateApproved, "security 2/2, dba 1/1", []string{"dba", "web"}, "approved by sam, lee, sue"},
		{"a reviewer in both selectors counts for both", []access.Threshold{security, dba},
			nil, []step{approve("sam", "security", "dba-lead"), approve("sue", "security")},
			access.StateApproved, "security 2/2, dba 1/1", []string{"dba", "web"}, ""},
		{"a threshold selects users by name", []access.Threshold{dba},
			nil, []step{approve("dave")}, access.StateApproved, "dba 1/1", []string{"dba", "web"}, ""},
		{"a review matching no threshold is recorded and counts for nothing", []access.Threshold{dba},
			nil, []step{approve("bob", "dev"), deny("eve", "no", "dev")}, access.StatePending, "dba 0/1", nil, ""},
		{"any threshold reaching its deny count denies", []access.Threshold{security, dba},
			nil, []step{approve("lee", "dba-lead"), deny("sam", "no ticket", "security")}, access.StateDenied, "security 0/2, dba 1/1", nil, "no ticket"},
		{"a deny count of two needs two denials", []access.Threshold{dba},
			nil, []step{deny("lee", "a", "dba-lead")}, access.StatePending, "dba 0/1", nil, ""},
		{"the second denial denies", []access.Threshold{dba},
			nil, []step{deny("lee", "a", "dba-lead"), deny("dave", "b")}, access.StateDenied, "dba 0/1", nil, "b"},
		{"a threshold needing no approvals is met", []access.Threshold{{Name: "a", Approve: 1, Deny: 1}, {Name: "b", Approve: 0, Deny: 1, Reviewers: access.ReviewerSelector{Users: []string{"zed"}}}},
			nil, []step{approve("bob")}, access.StateApproved, "a 1/1, b 0/0", []string{"dba", "web"}, ""},
		{"a denial never approves, even with nothing left to approve", []access.Threshold{{Name: "quiet", Approve: 0, Deny: 2}},
			nil, []step{deny("bob", "no")}, access.StatePending, "quiet 0/0", nil, ""},
		{"one reviewer narrows: the grant is narrowed", []access.Threshold{{Name: "two", Approve: 2, Deny: 1}},
			nil, []step{approve("bob").narrowTo("dba"), approve("carol")}, access.StateApproved, "two 2/2", []string{"dba"}, ""},
		{"the granted roles keep the request's order", nil,
			nil, []step{approve("bob").narrowTo("web", "dba")}, access.StateApproved, "default 1/1", []string{"dba", "web"}, ""},
		{"the grant is the intersection of the reviewers' choices", []access.Threshold{{Name: "two", Approve: 2, Deny: 1}},
			nil, []step{approve("bob").narrowTo("dba", "web"), approve("carol").narrowTo("web")}, access.StateApproved, "two 2/2", []string{"web"}, ""},
		{"choices with nothing in common deny the request", []access.Threshold{{Name: "two", Approve: 2, Deny: 1}},
			nil, []step{approve("bob").narrowTo("dba"), approve("carol").narrowTo("web")}, access.StateDenied, "two 2/2", nil,
			"narrowed the roles to nothing in common: bob approved [dba]; carol approved [web]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := pending(tt.thresholds...)
			if tt.thresholds != nil && len(tt.thresholds) == 0 {
				r.Thresholds = nil
			}
			for i, s := range tt.steps {
				now := t0.Add(time.Duration(i+1) * time.Minute)
				rv := access.Review{Author: s.author, Verdict: s.verdict, Reason: s.reason, Roles: s.narrow}
				if err := r.AddReview(rv, s.roles, now); err != nil {
					t.Fatalf("review %d by %s: %v", i, s.author, err)
				}
				got := r.Reviews[len(r.Reviews)-1]
				if !got.Time.Equal(now) || got.Kind != access.ReviewKindReview {
					t.Errorf("recorded review %+v: want time %v and kind review", got, now)
				}
			}
			if r.State != tt.state {
				t.Fatalf("state %s (%q), want %s", r.State, r.StateReason, tt.state)
			}
			if got := r.ProgressSummary(); got != tt.progress {
				t.Errorf("progress %q, want %q", got, tt.progress)
			}
			if !reflect.DeepEqual(r.GrantedRoles, tt.granted) {
				t.Errorf("granted roles %q, want %q", r.GrantedRoles, tt.granted)
			}
			if !strings.Contains(r.StateReason, tt.reason) {
				t.Errorf("state reason %q, want it to contain %q", r.StateReason, tt.reason)
			}
			if len(r.Reviews) != len(tt.steps) {
				t.Errorf("%d reviews recorded, want %d", len(r.Reviews), len(tt.steps))
			}
			if tt.state == access.StateApproved {
				decided := t0.Add(time.Duration(len(tt.steps)) * time.Minute)
				if r.AccessExpires == nil || !r.AccessExpires.Equal(decided.Add(2*time.Hour)) {
					t.Errorf("access expires %v, want the approval time plus the duration, %v", r.AccessExpires, decided.Add(2*time.Hour))
				}
			} else if r.AccessExpires != nil {
				t.Errorf("access expires %v on a %s request", r.AccessExpires, r.State)
			}
		})
	}
}

func TestAddReviewDoesNotShareTheCallersSlices(t *testing.T) {
	r := pending()
	r.Thresholds = make([]access.Threshold, 1, 4)
	r.Thresholds[0] = access.Threshold{Name: "two", Approve: 2, Deny: 1}
	shared := r.Thresholds
	if err := r.AddReview(access.Review{Author: "bob", Verdict: access.VerdictApprove}, nil, t0); err != nil {
		t.Fatal(err)
	}
	if shared[0].Approvals != 0 {
		t.Error("AddReview counted into the caller's threshold slice")
	}
}

func TestScheduledStart(t *testing.T) {
	r := pending()
	start := t0.Add(6 * time.Hour) // tonight's migration
	r.Start = &start
	if err := r.AddReview(access.Review{Author: "bob", Verdict: access.VerdictApprove}, nil, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if want := start.Add(2 * time.Hour); r.AccessExpires == nil || !r.AccessExpires.Equal(want) {
		t.Fatalf("access expires %v, want start plus duration %v", r.AccessExpires, want)
	}
	tests := []struct {
		name string
		now  time.Time
		want bool
	}{
		{"approved but not started", t0.Add(time.Hour), false},
		{"at the start", start, true},
		{"inside the window", start.Add(time.Hour), true},
		{"at the end", start.Add(2 * time.Hour), false},
	}
	for _, tt := range tests {
		if got := r.Active(tt.now); got != tt.want {
			t.Errorf("%s: Active = %v, want %v", tt.name, got, tt.want)
		}
	}

	// A start already past when the request is approved starts at approval.
	r = pending()
	past := t0.Add(-time.Minute)
	r.Start = &past
	if err := r.AddReview(access.Review{Author: "bob", Verdict: access.VerdictApprove}, nil, t0); err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(2 * time.Hour); !r.AccessExpires.Equal(want) {
		t.Errorf("access expires %v, want approval plus duration %v", r.AccessExpires, want)
	}
}

func TestAdminDecide(t *testing.T) {
	tests := []struct {
		name     string
		req      access.Request
		review   access.Review
		now      time.Time
		sentinel error  // nil: accepted
		want     string // error fragment, or state reason
		state    access.State
		granted  []string
	}{
		{"an admin approves", pending(), access.Review{Author: "root", Verdict: access.VerdictApprove, Reason: "incident 42"}, t0,
			nil, "incident 42", access.StateApproved, []string{"dba", "web"}},
		{"an admin approves, narrowed", pending(), access.Review{Author: "root", Verdict: access.VerdictApprove, Reason: "only dba", Roles: []string{"dba"}}, t0,
			nil, "only dba", access.StateApproved, []string{"dba"}},
		{"an admin denies", pending(), access.Review{Author: "root", Verdict: access.VerdictDeny, Reason: "use the runbook"}, t0,
			nil, "use the runbook", access.StateDenied, nil},
		{"an admin decides a request that already has reviews", func() access.Request {
			r := pending(access.Threshold{Name: "two", Approve: 2, Deny: 2})
			_ = r.AddReview(access.Review{Author: "bob", Verdict: access.VerdictApprove}, nil, t0)
			return r
		}(), access.Review{Author: "root", Verdict: access.VerdictApprove, Reason: "urgent"}, t0.Add(time.Minute),
			nil, "urgent", access.StateApproved, []string{"dba", "web"}},
		{"the reason is mandatory", pending(), access.Review{Author: "root", Verdict: access.VerdictApprove, Reason: "  "}, t0,
			access.ErrInvalid, "needs a reason", "", nil},
		{"nobody decides their own request, admins included", pending(), access.Review{Author: "alice", Verdict: access.VerdictApprove, Reason: "me"}, t0,
			access.ErrForbidden, "your own request", "", nil},
		{"only a pending request", approved(), access.Review{Author: "root", Verdict: access.VerdictDeny, Reason: "late"}, t0,
			access.ErrConflict, "is APPROVED", "", nil},
		{"not after the pending time", pending(), access.Review{Author: "root", Verdict: access.VerdictApprove, Reason: "late"}, t0.Add(2 * time.Hour),
			access.ErrExpired, "expired", "", nil},
		{"narrowing to a role nobody asked for", pending(), access.Review{Author: "root", Verdict: access.VerdictApprove, Reason: "x", Roles: []string{"admin"}}, t0,
			access.ErrInvalid, `role "admin" is not requested`, "", nil},
		{"no verdict", pending(), access.Review{Author: "root", Reason: "x"}, t0,
			access.ErrInvalid, "want APPROVE or DENY", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.req
			before := deepCopy(r)
			err := r.AdminDecide(tt.review, tt.now)
			if tt.sentinel != nil {
				wantErr(t, err, tt.sentinel, tt.want)
				wantUnchanged(t, before, r)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.State != tt.state || r.StateReason != tt.want {
				t.Errorf("state %s %q, want %s %q", r.State, r.StateReason, tt.state, tt.want)
			}
			if !reflect.DeepEqual(r.GrantedRoles, tt.granted) {
				t.Errorf("granted %q, want %q", r.GrantedRoles, tt.granted)
			}
			last := r.Reviews[len(r.Reviews)-1]
			if last.Kind != access.ReviewKindAdmin || last.Author != "root" || !last.Time.Equal(tt.now) {
				t.Errorf("recorded %+v, want an admin review by root at %v", last, tt.now)
			}
		})
	}
}

func TestAutoDecide(t *testing.T) {
	r := pending()
	if err := r.AutoDecide(access.VerdictApprove, []string{"alice is on call for checkout"}, t0); err != nil {
		t.Fatal(err)
	}
	if r.State != access.StateApproved || r.StateReason != "alice is on call for checkout" || !reflect.DeepEqual(r.GrantedRoles, r.Roles) {
		t.Errorf("after auto-approval: %s %q granted %q", r.State, r.StateReason, r.GrantedRoles)
	}
	if rv := r.Reviews[0]; rv.Author != "policy" || rv.Kind != access.ReviewKindPolicy || rv.Verdict != access.VerdictApprove {
		t.Errorf("recorded %+v, want a policy review", rv)
	}
	if want := t0.Add(2 * time.Hour); r.AccessExpires == nil || !r.AccessExpires.Equal(want) {
		t.Errorf("access expires %v, want %v", r.AccessExpires, want)
	}

	r = pending()
	if err := r.AutoDecide(access.VerdictDeny, []string{"contractors must cite a ticket", "outside hours"}, t0); err != nil {
		t.Fatal(err)
	}
	if r.State != access.StateDenied || r.StateReason != "contractors must cite a ticket; outside hours" {
		t.Errorf("after auto-denial: %s %q", r.State, r.StateReason)
	}

	r = pending()
	if err := r.AutoDecide(access.VerdictDeny, nil, t0); err != nil || r.StateReason != "denied by policy" {
		t.Errorf("a denial without reasons: %v, %q", err, r.StateReason)
	}

	r = approved()
	before := deepCopy(r)
	wantErr(t, r.AutoDecide(access.VerdictDeny, nil, t0), access.ErrConflict, "only a pending request")
	wantUnchanged(t, before, r)

	r = pending()
	before = deepCopy(r)
	wantErr(t, r.AutoDecide("", nil, t0), access.ErrInvalid, "verdict")
	wantUnchanged(t, before, r)
}

func TestLifecycle(t *testing.T) {
	later := t0.Add(30 * time.Minute)
	tests := []struct {
		name     string
		req      access.Request
		act      func(r *access.Request) error
		sentinel error
		want     string // error fragment or state reason
		state    access.State
	}{
		{"the requester cancels a pending request", pending(), func(r *access.Request) error { return r.Cancel("alice", later) },
			nil, "cancelled by alice", access.StateCancelled},
		{"someone else cannot cancel it", pending(), func(r *access.Request) error { return r.Cancel("bob", later) },
			access.ErrForbidden, "only the requester alice can cancel", ""},
		{"an approved request cannot be cancelled", approved(), func(r *access.Request) error { return r.Cancel("alice", later) },
			access.ErrConflict, "only a pending request can be cancelled", ""},
		{"the requester drops an approved grant", approved(), func(r *access.Request) error { return r.Drop("alice", later) },
			nil, "dropped by alice", access.StateDropped},
		{"someone else cannot drop it", approved(), func(r *access.Request) error { return r.Drop("bob", later) },
			access.ErrForbidden, "only the requester alice can drop", ""},
		{"a pending request cannot be dropped", pending(), func(r *access.Request) error { return r.Drop("alice", later) },
			access.ErrConflict, "only an approved request can be dropped", ""},
		{"an admin revokes an approved grant", approved(), func(r *access.Request) error { return r.Revoke("root", "left the company", later) },
			nil, "left the company", access.StateRevoked},
		{"revoking needs a reason", approved(), func(r *access.Request) error { return r.Revoke("root", " ", later) },
			access.ErrInvalid, "needs a reason", ""},
		{"a pending request cannot be revoked", pending(), func(r *access.Request) error { return r.Revoke("root", "x", later) },
			access.ErrConflict, "only an approved request can be revoked", ""},
		{"a final state never changes: revoke after drop", inState(access.StateDropped), func(r *access.Request) error { return r.Revoke("root", "x", later) },
			access.ErrConflict, "is DROPPED", ""},
		{"a final state never changes: cancel after deny", inState(access.StateDenied), func(r *access.Request) error { return r.Cancel("alice", later) },
			access.ErrConflict, "is DENIED", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.req
			before := deepCopy(r)
			err := tt.act(&r)
			if tt.sentinel != nil {
				wantErr(t, err, tt.sentinel, tt.want)
				wantUnchanged(t, before, r)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.State != tt.state || r.StateReason != tt.want {
				t.Errorf("state %s %q, want %s %q", r.State, r.StateReason, tt.state, tt.want)
			}
			if !r.IsFinal() {
				t.Errorf("%s is not final", r.State)
			}
			if before.State == access.StateApproved && (r.AccessExpires == nil || !r.AccessExpires.Equal(later)) {
				t.Errorf("access expires %v after ending the grant at %v", r.AccessExpires, later)
			}
		})
	}
}

func TestExpire(t *testing.T) {
	tests := []struct {
		name    string
		req     access.Request
		now     time.Time
		changed bool
		state   access.State
		reason  string
	}{
		{"pending, still in time", pending(), t0.Add(59 * time.Minute), false, access.StatePending, ""},
		{"pending, time is up", pending(), t0.Add(time.Hour), true, access.StateExpired, "nobody reviewed it in time"},
		{"approved, inside the window", approved(), t0.Add(time.Hour), false, access.StateApproved, ""},
		{"approved, window over", approved(), t0.Add(2 * time.Hour), true, access.StateExpired, "access window ended"},
		{"approved without an end is left alone", func() access.Request { r := approved(); r.AccessExpires = nil; return r }(),
			t0.Add(48 * time.Hour), false, access.StateApproved, ""},
		{"denied stays denied", inState(access.StateDenied), t0.Add(48 * time.Hour), false, access.StateDenied, ""},
		{"cancelled stays cancelled", inState(access.StateCancelled), t0.Add(48 * time.Hour), false, access.StateCancelled, ""},
	}
	for _, tt := range tests {
		r := tt.req
		if got := r.Expire(tt.now); got != tt.changed {
			t.Errorf("%s: Expire = %v, want %v", tt.name, got, tt.changed)
		}
		if r.State != tt.state || r.StateReason != tt.reason {
			t.Errorf("%s: state %s %q, want %s %q", tt.name, r.State, r.StateReason, tt.state, tt.reason)
		}
	}
}

func TestActive(t *testing.T) {
	tests := []struct {
		name string
		req  access.Request
		now  time.Time
		want bool
	}{
		{"approved, inside the window", approved(), t0.Add(time.Hour), true},
		{"approved, at the end", approved(), t0.Add(2 * time.Hour), false},
		{"approved without an end", func() access.Request { r := approved(); r.AccessExpires = nil; return r }(), t0, false},
		{"pending", pending(), t0, false},
		{"revoked inside the old window", func() access.Request { r := approved(); r.State = access.StateRevoked; return r }(), t0.Add(time.Hour), false},
	}
	for _, tt := range tests {
		if got := tt.req.Active(tt.now); got != tt.want {
			t.Errorf("%s: Active = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestIsFinal(t *testing.T) {
	final := map[access.State]bool{
		access.StatePending: false, access.StateApproved: false,
		access.StateDenied: true, access.StateExpired: true, access.StateCancelled: true,
		access.StateDropped: true, access.StateRevoked: true,
	}
	for s, want := range final {
		r := inState(s)
		if got := r.IsFinal(); got != want {
			t.Errorf("%s: IsFinal = %v, want %v", s, got, want)
		}
	}
}

func TestThresholdMatches(t *testing.T) {
	tests := []struct {
		name   string
		sel    access.ReviewerSelector
		author string
		roles  []string
		want   bool
	}{
		{"an empty selector counts everyone", access.ReviewerSelector{}, "bob", nil, true},
		{"by role", access.ReviewerSelector{Roles: []string{"security"}}, "bob", []string{"dev", "security"}, true},
		{"by role, missing", access.ReviewerSelector{Roles: []string{"security"}}, "bob", []string{"dev"}, false},
		{"by user", access.ReviewerSelector{Users: []string{"carol", "bob"}}, "bob", nil, true},
		{"by user, someone else", access.ReviewerSelector{Users: []string{"carol"}}, "bob", []string{"carol"}, false},
		{"users or roles", access.ReviewerSelector{Users: []string{"carol"}, Roles: []string{"admin"}}, "bob", []string{"admin"}, true},
	}
	for _, tt := range tests {
		th := access.Threshold{Name: "t", Approve: 1, Deny: 1, Reviewers: tt.sel}
		if got := th.Matches(tt.author, tt.roles); got != tt.want {
			t.Errorf("%s: Matches = %v, want %v", tt.name, got, tt.want)
		}
	}

	pe := access.PolicyErrorThreshold(access.ReviewerSelector{Roles: []string{"admin"}})
	if pe.Name != "policy_error" || pe.Approve != 1 || pe.Deny != 1 || pe.Matches("bob", []string{"dba"}) || !pe.Matches("root", []string{"admin"}) {
		t.Errorf("policy error threshold %+v: only the fallback reviewers may decide", pe)
	}
	if d := access.DefaultThresholds(); !reflect.DeepEqual(d, []access.Threshold{{Name: "default", Approve: 1, Deny: 1}}) {
		t.Errorf("DefaultThresholds = %+v", d)
	}
}

func TestPolicyErrorScenario(t *testing.T) {
	// The policy failed: only admins can decide, a plain reviewer's approval
	// is recorded and counts for nothing.
	r := pending(access.PolicyErrorThreshold(access.ReviewerSelector{Roles: []string{"admin"}}))
	if err := r.AddReview(access.Review{Author: "bob", Verdict: access.VerdictApprove}, []string{"dba-reviewer"}, t0); err != nil {
		t.Fatal(err)
	}
	if r.State != access.StatePending || r.ProgressSummary() != "policy_error 0/1" {
		t.Fatalf("after a non-admin approval: %s, %s", r.State, r.ProgressSummary())
	}
	if err := r.AddReview(access.Review{Author: "root", Verdict: access.VerdictApprove}, []string{"admin"}, t0); err != nil {
		t.Fatal(err)
	}
	if r.State != access.StateApproved {
		t.Fatalf("after an admin approval: %s", r.State)
	}
}
