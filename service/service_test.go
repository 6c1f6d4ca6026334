package service_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/inventory"
	"github.com/gatehouse-dev/gatehouse/service"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

type fixture struct {
	svc   *service.Service
	st    access.Store
	clock *clock
	admin service.Caller
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st := storetest.Embedded(t)
	clk := &clock{now: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)}
	svc := service.New(service.Config{ClusterName: "test.local", PendingTTL: time.Hour}, st, inventory.New(),
		service.WithClock(clk.Now), service.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	ctx := context.Background()
	if _, err := svc.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	admin, err := svc.Caller(ctx, service.AdminUser, "test")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{svc: svc, st: st, clock: clk, admin: admin}
	f.role(t, access.Role{Metadata: access.Metadata{Name: "dba"}})
	f.role(t, access.Role{Metadata: access.Metadata{Name: "requester"}, Spec: access.RoleSpec{Allow: access.RoleConditions{
		Request: &access.RequestConditions{Roles: []string{"dba"}}}}})
	f.role(t, access.Role{Metadata: access.Metadata{Name: "reviewer"}, Spec: access.RoleSpec{Allow: access.RoleConditions{
		ReviewRequests: &access.ReviewConditions{Roles: []string{"dba"}}}}})
	return f
}

func (f *fixture) role(t *testing.T, r access.Role) {
	t.Helper()
	if _, err := f.svc.PutRole(context.Background(), f.admin, r); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) user(t *testing.T, name string, roles ...string) service.Caller {
	t.Helper()
	ctx := context.Background()
	if _, err := f.svc.PutUser(ctx, f.admin, access.User{Metadata: access.Metadata{Name: name}, Spec: access.UserSpec{Roles: roles}}); err != nil {
		t.Fatal(err)
	}
	c, err := f.svc.Caller(ctx, name, access.SourceCLI)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestConcurrentReviewsCountEveryVoteOnce fires many reviewers at one
// request needing 10 approvals, in parallel against real etcd: exactly 10
// approvals are recorded, each reviewer at most once, and everyone else is
// told the request is already decided.
func TestConcurrentReviewsCountEveryVoteOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	alice := f.user(t, "alice", "requester")
	const reviewers, needed = 24, 10
	callers := make([]service.Caller, reviewers)
	for i := range callers {
		callers[i] = f.user(t, fmt.Sprintf("rev%02d", i), "reviewer")
	}
	req, err := f.svc.CreateRequest(ctx, alice, service.CreateRequestInput{Roles: []string{"dba"}, Reason: "load test"})
	if err != nil {
		t.Fatal(err)
	}
	// Until the policy engine lands, thresholds are set directly on the
	// stored request.
	if _, err := f.st.UpdateRequest(ctx, req.ID, func(r *access.Request) ([]access.AuditEvent, error) {
		r.Thresholds = []access.Threshold{{Name: "quorum", Approve: needed, Deny: reviewers}}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}

	var ok, closed atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := f.svc.Review(ctx, c, req.ID, service.ReviewInput{Verdict: access.VerdictApprove})
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, access.ErrConflict):
				closed.Add(1)
			default:
				t.Errorf("review by %s: %v", c.Name(), err)
			}
		}()
	}
	close(start)
	wg.Wait()

	got, err := f.st.GetRequest(ctx, req.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != access.StateApproved {
		t.Fatalf("state = %s, want APPROVED", got.State)
	}
	if ok.Load() != needed || closed.Load() != reviewers-needed {
		t.Fatalf("accepted %d, refused %d; want %d and %d", ok.Load(), closed.Load(), needed, reviewers-needed)
	}
	seen := map[string]bool{}
	for _, rv := range got.Reviews {
		if seen[rv.Author] {
			t.Fatalf("%s counted twice", rv.Author)
		}
		seen[rv.Author] = true
	}
	if len(got.Reviews) != needed || got.Thresholds[0].Approvals != needed {
		t.Fatalf("reviews = %d, approvals = %d; want %d", len(got.Reviews), got.Thresholds[0].Approvals, needed)
	}
	evs, err := f.st.ListAudit(ctx, access.AuditFilter{RequestID: req.ID, Type: "request.review"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != needed {
		t.Fatalf("audit has %d review events, want %d", len(evs), needed)
	}
}

func TestExpiry(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	alice := f.user(t, "alice", "requester")
	bob := f.user(t, "bob", "reviewer")

	stale, err := f.svc.CreateRequest(ctx, alice, service.CreateRequestInput{Roles: []string{"dba"}, Reason: "nobody looks"})
	if err != nil {
		t.Fatal(err)
	}
	granted, err := f.svc.CreateRequest(ctx, alice, service.CreateRequestInput{Roles: []string{"dba"}, Reason: "short", Duration: 30 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Review(ctx, bob, granted.ID, service.ReviewInput{Verdict: access.VerdictApprove}); err != nil {
		t.Fatal(err)
	}

	f.clock.Add(31 * time.Minute) // the grant's window is over, the pending one still waits
	if n, err := f.svc.ExpireDue(ctx); err != nil || n != 1 {
		t.Fatalf("first sweep expired %d (%v), want 1", n, err)
	}
	f.clock.Add(30 * time.Minute) // past the pending TTL
	// A review after the pending expiry is refused even before the sweeper runs.
	if _, err := f.svc.Review(ctx, bob, stale.ID, service.ReviewInput{Verdict: access.VerdictApprove}); !errors.Is(err, access.ErrExpired) {
		t.Fatalf("late review: %v, want ErrExpired", err)
	}
	if n, err := f.svc.ExpireDue(ctx); err != nil || n != 1 {
		t.Fatalf("second sweep expired %d (%v), want 1", n, err)
	}
	for _, id := range []string{stale.ID, granted.ID} {
		r, _ := f.st.GetRequest(ctx, id)
		if r.State != access.StateExpired {
			t.Fatalf("%s is %s, want EXPIRED", id, r.State)
		}
	}
	if n, _ := f.svc.ExpireDue(ctx); n != 0 {
		t.Fatalf("a third sweep expired %d, want 0", n)
	}
}

func TestRightsComeFromStandingRolesOnly(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// A requestable role that could review: approving it must not let the
	// requester review anything.
	f.role(t, access.Role{Metadata: access.Metadata{Name: "power"}, Spec: access.RoleSpec{Allow: access.RoleConditions{
		ReviewRequests: &access.ReviewConditions{Roles: []string{"dba"}},
		Rules:          []access.Rule{{Resources: []string{"*"}, Verbs: []string{"*"}}},
	}}})
	f.role(t, access.Role{Metadata: access.Metadata{Name: "climber"}, Spec: access.RoleSpec{Allow: access.RoleConditions{
		Request: &access.RequestConditions{Roles: []string{"power", "dba"}}}}})
	mallory := f.user(t, "mallory", "climber")
	alice := f.user(t, "alice", "requester")

	up, err := f.svc.CreateRequest(ctx, mallory, service.CreateRequestInput{Roles: []string{"power"}, Reason: "please"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AdminDecide(ctx, f.admin, up.ID, service.ReviewInput{Verdict: access.VerdictApprove, Reason: "ok"}); err != nil {
		t.Fatal(err)
	}
	other, err := f.svc.CreateRequest(ctx, alice, service.CreateRequestInput{Roles: []string{"dba"}, Reason: "x"})
	if err != nil {
		t.Fatal(err)
	}
	mallory, _ = f.svc.Caller(ctx, "mallory", access.SourceCLI)
	if _, err := f.svc.Review(ctx, mallory, other.ID, service.ReviewInput{Verdict: access.VerdictApprove}); !errors.Is(err, access.ErrNotFound) && !errors.Is(err, access.ErrForbidden) {
		t.Fatalf("mallory reviewed with a granted role: %v", err)
	}
	if _, err := f.svc.ListAudit(ctx, mallory, access.AuditFilter{}); !errors.Is(err, access.ErrForbidden) {
		t.Fatalf("mallory read the audit log with a granted role: %v", err)
	}
	// And nobody, admins included, approves their own request.
	own, err := f.svc.CreateRequest(ctx, alice, service.CreateRequestInput{Roles: []string{"dba"}, Reason: "y"})
	if err != nil {
		t.Fatal(err)
	}
	alice, _ = f.svc.Caller(ctx, "alice", access.SourceCLI)
	if _, err := f.svc.Cancel(ctx, alice, own.ID); err != nil {
		t.Fatal(err)
	}
}
