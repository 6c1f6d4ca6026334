package service_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/inventory"
	"github.com/gatehouse-dev/gatehouse/service"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

// testMaxWait lets the sweeper see the test clock move within milliseconds.
const testMaxWait = 5 * time.Millisecond

// runSweeper runs a sweeper of svc until the test ends and waits for its
// first load.
func runSweeper(t *testing.T, svc *service.Service, opts ...service.ExpiryOption) *service.ExpirySweeper {
	t.Helper()
	w := svc.NewExpirySweeper(append([]service.ExpiryOption{service.ExpiryMaxWait(testMaxWait)}, opts...)...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sweeper Run: %v", err)
		}
	})
	eventually(t, "the sweeper's first load", func() bool { return w.Stats().Loads >= 1 })
	return w
}

// eventually waits up to 10 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (f *fixture) state(t *testing.T, id string) access.State {
	t.Helper()
	r, err := f.st.GetRequest(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r.State
}

func (f *fixture) create(t *testing.T, c service.Caller, reason string, d time.Duration) access.Request {
	t.Helper()
	r, err := f.svc.CreateRequest(context.Background(), c, service.CreateRequestInput{Roles: []string{"dba"}, Reason: reason, Duration: d})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// expectDue checks that w has id scheduled at want (zero: not scheduled),
// waiting for the watch to get there.
func expectDue(t *testing.T, w *service.ExpirySweeper, id string, want time.Time) {
	t.Helper()
	eventually(t, fmt.Sprintf("request %s scheduled at %v", id, want), func() bool {
		due, ok := w.Due(id)
		if want.IsZero() {
			return !ok
		}
		return ok && due.Equal(want)
	})
}

// stillPending checks that id stays PENDING while the sweeper looks at
// its schedule many times.
func stillPending(t *testing.T, f *fixture, id string) {
	t.Helper()
	time.Sleep(20 * testMaxWait)
	if s := f.state(t, id); s != access.StatePending && s != access.StateApproved {
		t.Fatalf("request %s is %s before its time", id, s)
	}
}

// expiredOnce waits for id to be EXPIRED by the sweeper with reason, and
// checks the audit log has exactly one request.expired event for it.
func expiredOnce(t *testing.T, f *fixture, id, reason string) {
	t.Helper()
	eventually(t, "request "+id+" EXPIRED", func() bool { return f.state(t, id) == access.StateExpired })
	r, err := f.st.GetRequest(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if r.StateReason != reason {
		t.Errorf("state reason = %q, want %q", r.StateReason, reason)
	}
	evs, err := f.st.ListAudit(context.Background(), access.AuditFilter{RequestID: id, Type: "request.expired"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Actor != "system" || evs[0].Source != "sweeper" {
		t.Fatalf("request.expired events = %+v, want one by system from sweeper", evs)
	}
}

func TestExpirySweeperPendingExpiresAtPendingExpires(t *testing.T) {
	f := newFixture(t)
	alice := f.user(t, "alice", "requester")
	r := f.create(t, alice, "nobody looks", 0)
	w := runSweeper(t, f.svc)
	expectDue(t, w, r.ID, r.PendingExpires)

	f.clock.Add(time.Hour - time.Second)
	stillPending(t, f, r.ID)
	f.clock.Add(time.Second) // exactly pending_expires
	expiredOnce(t, f, r.ID, "nobody reviewed it in time")
	expectDue(t, w, r.ID, time.Time{})
	if st := w.Stats(); st.Expired != 1 || st.Scheduled != 0 || st.Loads != 1 {
		t.Fatalf("stats = %+v, want 1 expired, none scheduled, 1 load", st)
	}
}

func TestExpirySweeperGrantExpiresAtAccessExpires(t *testing.T) {
	f := newFixture(t)
	alice := f.user(t, "alice", "requester")
	bob := f.user(t, "bob", "reviewer")
	r := f.create(t, alice, "short", 30*time.Minute)
	r, err := f.svc.Review(context.Background(), bob, r.ID, service.ReviewInput{Verdict: access.VerdictApprove})
	if err != nil {
		t.Fatal(err)
	}
	w := runSweeper(t, f.svc)
	expectDue(t, w, r.ID, *r.AccessExpires)

	f.clock.Add(30*time.Minute - time.Second)
	stillPending(t, f, r.ID)
	f.clock.Add(time.Second)
	expiredOnce(t, f, r.ID, "access window ended")
}

// TestExpirySweeperFollowsTheWatch: requests created, approved and ended
// after the sweeper started reach its schedule through the watch alone
// (one load, no re-list within the test).
func TestExpirySweeperFollowsTheWatch(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	alice := f.user(t, "alice", "requester")
	bob := f.user(t, "bob", "reviewer")
	w := runSweeper(t, f.svc)

	created := f.create(t, alice, "created while sweeping", 0)
	expectDue(t, w, created.ID, created.PendingExpires)

	// Approved for two hours: the grant outlives the pending hour, so the
	// old due time would be wrong both ways.
	approved := f.create(t, alice, "approved while sweeping", 2*time.Hour)
	expectDue(t, w, approved.ID, approved.PendingExpires)
	approved, err := f.svc.Review(ctx, bob, approved.ID, service.ReviewInput{Verdict: access.VerdictApprove})
	if err != nil {
		t.Fatal(err)
	}
	expectDue(t, w, approved.ID, *approved.AccessExpires)

	cancelled := f.create(t, alice, "cancelled while sweeping", 0)
	expectDue(t, w, cancelled.ID, cancelled.PendingExpires)
	if _, err := f.svc.Cancel(ctx, alice, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	expectDue(t, w, cancelled.ID, time.Time{})
	if st := w.Stats(); st.Scheduled != 2 || st.Loads != 1 {
		t.Fatalf("stats = %+v, want 2 scheduled after 1 load", st)
	}

	f.clock.Add(time.Hour) // the pending one is due, the grant is not
	expiredOnce(t, f, created.ID, "nobody reviewed it in time")
	stillPending(t, f, approved.ID)
	if s := f.state(t, cancelled.ID); s != access.StateCancelled {
		t.Fatalf("cancelled request is %s", s)
	}
	f.clock.Add(time.Hour)
	expiredOnce(t, f, approved.ID, "access window ended")
	if st := w.Stats(); st.Expired != 2 || st.Scheduled != 0 {
		t.Fatalf("stats = %+v, want 2 expired, none scheduled", st)
	}
}

// lossyStore loses the watch events of requests whose reason contains
// "unseen", as a watch that fell behind a compaction would, and can
// inject events into the watch.
type lossyStore struct {
	access.Store
	inject chan access.RequestEvent
}

func (l *lossyStore) WatchRequests(ctx context.Context, fromRev int64) <-chan access.RequestEvent {
	in := l.Store.WatchRequests(ctx, fromRev)
	out := make(chan access.RequestEvent)
	go func() {
		defer close(out)
		for {
			var ev access.RequestEvent
			select {
			case <-ctx.Done():
				return
			case ev = <-l.inject:
			case e, ok := <-in:
				if !ok {
					return
				}
				if strings.Contains(e.Request.Reason, "unseen") {
					continue
				}
				ev = e
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// lossyFixture is a fixture plus a second service, over a lossyStore on
// the same etcd and clock, for the sweeper.
func lossyFixture(t *testing.T) (*fixture, *lossyStore, *service.Service) {
	f := newFixture(t)
	lossy := &lossyStore{Store: f.st, inject: make(chan access.RequestEvent)}
	svc := service.New(service.Config{ClusterName: "test.local", PendingTTL: time.Hour}, lossy, inventory.New(),
		service.WithClock(f.clock.Now), service.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	return f, lossy, svc
}

// TestExpirySweeperResetReplacesSchedule: after changes the watch lost, a
// reset (what the store sends after a compaction) rebuilds the schedule
// from its snapshot, and the watch goes on from there.
func TestExpirySweeperResetReplacesSchedule(t *testing.T) {
	f, lossy, svc := lossyFixture(t)
	ctx := context.Background()
	alice := f.user(t, "alice", "requester")
	ended := f.create(t, alice, "cancelled unseen", 0)
	w := runSweeper(t, svc)
	expectDue(t, w, ended.ID, ended.PendingExpires)

	if _, err := f.svc.Cancel(ctx, alice, ended.ID); err != nil {
		t.Fatal(err)
	}
	missed := f.create(t, alice, "created unseen", 0)
	seen := f.create(t, alice, "created in view", 0)
	expectDue(t, w, seen.ID, seen.PendingExpires) // events are in order: the lost ones went by
	if _, ok := w.Due(missed.ID); ok {
		t.Fatal("the lossy watch delivered the unseen request")
	}
	if _, ok := w.Due(ended.ID); !ok {
		t.Fatal("the lossy watch delivered the unseen cancel")
	}

	all, err := f.st.ListRequests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var rev int64
	for _, r := range all {
		rev = max(rev, r.Revision)
	}
	lossy.inject <- access.RequestEvent{Type: access.EventReset, Snapshot: all, Revision: rev}
	expectDue(t, w, ended.ID, time.Time{})
	expectDue(t, w, missed.ID, missed.PendingExpires)
	expectDue(t, w, seen.ID, seen.PendingExpires)
	if st := w.Stats(); st.Loads != 2 || st.Scheduled != 2 {
		t.Fatalf("stats = %+v, want 2 loads, 2 scheduled", st)
	}
	// An event the reset already covers (here: the cancelled request's
	// creation, replayed) must not bring back an older state.
	lossy.inject <- access.RequestEvent{Type: access.EventPut, Request: ended, Revision: ended.Revision}
	after := f.create(t, alice, "created after the reset", 0)
	expectDue(t, w, after.ID, after.PendingExpires)
	if _, ok := w.Due(ended.ID); ok {
		t.Fatal("a replayed event older than the reset rescheduled the cancelled request")
	}

	f.clock.Add(time.Hour)
	expiredOnce(t, f, missed.ID, "nobody reviewed it in time")
	expiredOnce(t, f, after.ID, "nobody reviewed it in time")
}

// TestExpirySweeperStartsOnCompactedStore: when etcd compacted past the
// revision the sweeper's watch starts from, the store's reset reloads the
// schedule and the watch continues.
func TestExpirySweeperStartsOnCompactedStore(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	alice := f.user(t, "alice", "requester")
	old := f.create(t, alice, "before the compaction", 0)
	// Two later writes elsewhere, then compact: the watch would start at
	// old's revision + 1, now compacted away.
	f.role(t, access.Role{Metadata: access.Metadata{Name: "other1"}})
	f.role(t, access.Role{Metadata: access.Metadata{Name: "other2"}})
	cli := f.st.(*store.Store).Client()
	resp, err := cli.Get(ctx, "compact-here")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}

	w := runSweeper(t, f.svc)
	eventually(t, "the reset after the compaction", func() bool { return w.Stats().Loads == 2 })
	expectDue(t, w, old.ID, old.PendingExpires)
	fresh := f.create(t, alice, "after the compaction", 0)
	expectDue(t, w, fresh.ID, fresh.PendingExpires)
	f.clock.Add(time.Hour)
	expiredOnce(t, f, old.ID, "nobody reviewed it in time")
	expiredOnce(t, f, fresh.ID, "nobody reviewed it in time")
}

// TestExpirySweeperRelistFindsMissedChanges: a change the watch never
// delivered is found by the periodic re-list.
func TestExpirySweeperRelistFindsMissedChanges(t *testing.T) {
	f, _, svc := lossyFixture(t)
	alice := f.user(t, "alice", "requester")
	w := runSweeper(t, svc, service.ExpiryRelist(50*time.Millisecond))
	missed := f.create(t, alice, "created unseen", 0)
	expectDue(t, w, missed.ID, missed.PendingExpires)
	if st := w.Stats(); st.Loads < 2 {
		t.Fatalf("stats = %+v: found without a re-list", st)
	}
	f.clock.Add(time.Hour)
	expiredOnce(t, f, missed.ID, "nobody reviewed it in time")
}

// TestExpirySweepersOnOneStoreExpireOnce: two replicas' sweepers on one
// store race for the same due requests; each request is expired exactly
// once, because the transaction, not the schedule, decides.
func TestExpirySweepersOnOneStoreExpireOnce(t *testing.T) {
	f := newFixture(t)
	alice := f.user(t, "alice", "requester")
	replica := service.New(service.Config{ClusterName: "test.local", PendingTTL: time.Hour}, f.st, inventory.New(),
		service.WithClock(f.clock.Now), service.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	const n = 30
	ids := make([]string, n)
	for i := range ids {
		ids[i] = f.create(t, alice, fmt.Sprintf("race %d", i), 0).ID
	}
	a, b := runSweeper(t, f.svc), runSweeper(t, replica)
	for _, w := range []*service.ExpirySweeper{a, b} {
		eventually(t, "both sweepers scheduling every request", func() bool { return w.Stats().Scheduled == n })
	}
	f.clock.Add(time.Hour)
	for _, id := range ids {
		expiredOnce(t, f, id, "nobody reviewed it in time")
	}
	eventually(t, "both schedules empty", func() bool { return a.Stats().Scheduled == 0 && b.Stats().Scheduled == 0 })
	if got := a.Stats().Expired + b.Stats().Expired; got != n {
		t.Fatalf("sweepers report %d + %d expired, want %d in all", a.Stats().Expired, b.Stats().Expired, n)
	}
	t.Logf("expired by a: %d, by b: %d", a.Stats().Expired, b.Stats().Expired)
}

func TestExpirySweeperRunsOnceAtATime(t *testing.T) {
	f := newFixture(t)
	w := runSweeper(t, f.svc)
	if err := w.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second Run = %v, want already running", err)
	}
}

// Benchmarks: the steady-state cost of expiry with benchRequests stored
// requests of which none is due, and the delay from a due time to EXPIRED.
// Each op is one second of sweeping; run with a fixed count:
//
//	go test -run '^$' -bench ExpirySweep -benchtime 5x ./service/
//
// list-every-tick is the sweeper before the schedule (ExpireDue once a
// second); schedule is ExpirySweeper; idle-process is the same process
// doing nothing, the floor both stand on (embedded etcd included).
const benchRequests = 10_000

type benchEnv struct {
	st  *store.Store
	svc *service.Service
	// rangeBytes is the size of one read of every request from etcd.
	rangeBytes int
}

// newBenchEnv stores benchRequests requests: a third pending, a third
// approved, a third ended, none due for an hour; shaped as the service
// writes them.
func newBenchEnv(b *testing.B) *benchEnv {
	st := storetest.Embedded(b)
	svc := service.New(service.Config{ClusterName: "test.local"}, st, inventory.New(),
		service.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	ctx := context.Background()
	ids := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range ids {
				if _, err := st.CreateRequest(ctx, benchRequest(i, time.Now().Add(time.Hour))); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for i := range benchRequests {
		ids <- i
	}
	close(ids)
	wg.Wait()
	resp, err := st.Client().Get(ctx, st.Prefix(), clientv3.WithPrefix(), clientv3.WithSerializable())
	if err != nil {
		b.Fatal(err)
	}
	env := &benchEnv{st: st, svc: svc}
	for _, kv := range resp.Kvs {
		if strings.Contains(string(kv.Key), "/requests/") {
			env.rangeBytes += len(kv.Key) + len(kv.Value)
		}
	}
	return env
}

func benchRequest(i int, due time.Time) access.Request {
	now := time.Now().UTC()
	r := access.Request{
		ID: uuid.NewString(), User: fmt.Sprintf("user%03d", i%500), Roles: []string{"dba"},
		Reason:             fmt.Sprintf("ticket #%d: migrate the orders table to the new schema", i),
		SuggestedReviewers: []string{"bob", "carol"}, Duration: access.Duration(time.Hour),
		State: access.StatePending, Created: now, PendingExpires: due,
		Thresholds:  access.DefaultThresholds(),
		Decision:    &access.Decision{Outcome: service.OutcomeReview},
		Annotations: map[string][]string{"team": {"payments"}}, Source: access.SourceCLI,
	}
	switch i % 3 {
	case 1, 2:
		end := due
		r.State, r.StateReason, r.AccessExpires, r.GrantedRoles = access.StateApproved, "approved by bob", &end, []string{"dba"}
		r.Reviews = []access.Review{{Author: "bob", Verdict: access.VerdictApprove, Time: now, Kind: access.ReviewKindReview}}
		r.Thresholds[0].Approvals = 1
		if i%3 == 2 {
			r.State, r.StateReason = access.StateDropped, "dropped by "+r.User
		}
	}
	return r
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// perSecond runs b.N seconds of wall time, calling tick at the start of
// each (nil: just wait), and reports the process CPU and the etcd bytes
// the ticks read per second.
func perSecond(b *testing.B, env *benchEnv, tick func() int) {
	cpu0, reads, busy := cpuTime(), 0, time.Duration(0)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if tick != nil {
			reads += tick()
		}
		busy += time.Since(start)
		time.Sleep(time.Until(start.Add(time.Second)))
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0)/time.Microsecond)/1000/float64(b.N), "cpu-ms/s")
	b.ReportMetric(float64(busy/time.Microsecond)/1000/float64(b.N), "tick-ms")
	b.ReportMetric(float64(reads*env.rangeBytes/benchRequests)/1000/float64(b.N), "etcd-kB/s")
}

func BenchmarkExpirySweepIdle(b *testing.B) {
	env := newBenchEnv(b)
	ctx := context.Background()
	b.Run("idle-process", func(b *testing.B) { perSecond(b, env, nil) })
	b.Run("list-every-tick", func(b *testing.B) {
		perSecond(b, env, func() int {
			if n, err := env.svc.ExpireDue(ctx); err != nil || n != 0 {
				b.Fatalf("ExpireDue = %d, %v; want nothing due", n, err)
			}
			return benchRequests
		})
	})
	b.Run("schedule", func(b *testing.B) {
		ctx, cancel := context.WithCancel(ctx)
		counted := &countingStore{Store: env.st}
		svc := service.New(service.Config{ClusterName: "test.local"}, counted, inventory.New(),
			service.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		w := svc.NewExpirySweeper()
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- w.Run(ctx) }()
		for w.Stats().Loads == 0 {
			time.Sleep(time.Millisecond)
		}
		load := time.Since(start)
		counted.listed.Store(0)
		perSecond(b, env, func() int { return int(counted.listed.Swap(0)) })
		b.ReportMetric(float64(load.Microseconds())/1000, "load-ms")
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		if st := w.Stats(); st.Scheduled != benchRequests*2/3+1 || st.Expired != 0 {
			b.Fatalf("stats = %+v", st)
		}
	})
}

// BenchmarkExpirySweepLatency: with benchRequests stored, a request comes
// due at a random moment; each op reports how long after its due time
// the request's EXPIRED state reached a watcher.
func BenchmarkExpirySweepLatency(b *testing.B) {
	env := newBenchEnv(b)
	b.Run("list-every-tick", func(b *testing.B) {
		measureLatency(b, env, func(ctx context.Context) {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					_, _ = env.svc.ExpireDue(ctx)
				}
			}
		})
	})
	b.Run("schedule", func(b *testing.B) {
		w := env.svc.NewExpirySweeper()
		measureLatency(b, env, func(ctx context.Context) { _ = w.Run(ctx) })
	})
}

func measureLatency(b *testing.B, env *benchEnv, sweep func(context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	expired := make(chan string, 16)
	mark, err := env.st.CreateRequest(ctx, benchRequest(1, time.Now().Add(24*time.Hour)))
	if err != nil {
		b.Fatal(err)
	}
	events := env.st.WatchRequests(ctx, mark.Revision)
	go func() {
		for ev := range events {
			if ev.Type == access.EventPut && ev.Request.State == access.StateExpired {
				expired <- ev.Request.ID
			}
		}
	}()
	var wg sync.WaitGroup
	wg.Go(func() { sweep(ctx) })
	defer wg.Wait()
	defer cancel()
	time.Sleep(time.Second) // loaded, and the ticker's phase is random to the dues below

	var late []time.Duration
	b.ResetTimer()
	for b.Loop() {
		due := time.Now().Add(200*time.Millisecond + rand.N(time.Second))
		r, err := env.st.CreateRequest(ctx, benchRequest(0, due))
		if err != nil {
			b.Fatal(err)
		}
		for id := range expired {
			if id == r.ID {
				break
			}
		}
		late = append(late, time.Since(due))
	}
	b.StopTimer()
	slices.Sort(late)
	b.ReportMetric(float64(late[len(late)/2].Microseconds())/1000, "p50-late-ms")
	b.ReportMetric(float64(late[len(late)-1].Microseconds())/1000, "max-late-ms")
}

// countingStore counts the requests read by full lists.
type countingStore struct {
	access.Store
	listed atomic.Int64
}

func (c *countingStore) ListRequests(ctx context.Context) ([]access.Request, error) {
	all, err := c.Store.ListRequests(ctx)
	c.listed.Add(int64(len(all)))
	return all, err
}
