package service

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
)

// Expiry sweeper timing.
const (
	// DefaultExpiryMaxWait caps how long the sweeper sleeps between looks
	// at its schedule, so that a wall-clock jump cannot hold an expiry back
	// for long.
	DefaultExpiryMaxWait = time.Second
	// DefaultExpiryRelist is how often the sweeper reads every request
	// again, a safety net behind the watch that keeps its schedule.
	DefaultExpiryRelist = 10 * time.Minute
	// expiryRelistRetry is how soon a failed re-list is tried again.
	expiryRelistRetry = 30 * time.Second
)

// ExpirySweeper moves requests to EXPIRED when their time comes (DESIGN.md,
// Storage: expiry is data, a leader-elected sweeper enforces it). It keeps
// in memory the next due time of every request that can still expire
// (PENDING: pending_expires, APPROVED: access_expires), read once when Run
// starts and kept current from the requests watch, so an idle sweeper
// reads nothing from etcd. It wakes at the earliest due time, at most
// every max wait, and re-reads everything every re-list period in case a
// change was missed.
//
// The schedule is only a hint: each move is one transaction on the
// request's mod revision (the same as Service.ExpireDue's) that reads the
// request afresh and moves it only if it is due at that moment, so two
// sweepers on one store (two replicas during a leadership change) never
// expire a request twice. Correctness never waits for the sweeper:
// credentials are refused past access expiry, and reviews past pending
// expiry, whether or not it has run.
type ExpirySweeper struct {
	svc     *Service
	maxWait time.Duration
	relist  time.Duration
	running atomic.Bool

	mu    sync.Mutex
	due   access.Schedule
	stats ExpiryStats
}

// ExpiryStats describes a sweeper's work since it was made.
type ExpiryStats struct {
	// Scheduled is how many requests are waiting for their due time.
	Scheduled int
	// Loads counts full reads of the requests: the one at each Run's
	// start, the periodic re-lists and the watch's resets after a
	// compaction.
	Loads int
	// Expired counts the requests this sweeper moved to EXPIRED.
	Expired int
}

// ExpiryOption configures an ExpirySweeper.
type ExpiryOption func(*ExpirySweeper)

// ExpiryMaxWait sets the longest sleep between looks at the schedule
// (default DefaultExpiryMaxWait); d <= 0 keeps the default.
func ExpiryMaxWait(d time.Duration) ExpiryOption {
	return func(w *ExpirySweeper) {
		if d > 0 {
			w.maxWait = d
		}
	}
}

// ExpiryRelist sets how often every request is read again (default
// DefaultExpiryRelist); d <= 0 keeps the default.
func ExpiryRelist(d time.Duration) ExpiryOption {
	return func(w *ExpirySweeper) {
		if d > 0 {
			w.relist = d
		}
	}
}

// NewExpirySweeper returns a sweeper over the service's store, idle until
// Run.
func (s *Service) NewExpirySweeper(opts ...ExpiryOption) *ExpirySweeper {
	w := &ExpirySweeper{svc: s, maxWait: DefaultExpiryMaxWait, relist: DefaultExpiryRelist}
	for _, o := range opts {
		o(w)
	}
	return w
}

// Run sweeps until ctx ends, then returns nil. Give it the context of a
// won election (store.RunElected): its writes then fail once leadership
// moved, and it ends with the leadership. Each Run starts from a fresh
// read of every request. It returns an error, having changed nothing,
// when that first read fails, and refuses to run twice at once. A failed
// move is logged and tried again at the next wake-up.
func (w *ExpirySweeper) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: the expiry sweeper is already running", access.ErrConflict)
	}
	defer w.running.Store(false)
	log := w.svc.log.With("worker", "expiry")

	all, err := w.svc.store.ListRequests(ctx)
	if err != nil {
		return fmt.Errorf("expiry sweeper: read requests: %w", err)
	}
	// applied is the revision the schedule reflects; watch events at or
	// below it are already in it. The highest mod revision of the list
	// stands in for the list's own revision: no request changed between
	// the two, so the watch starting there misses nothing, and replays at
	// most deletions the list has seen. (With no requests at all, the
	// watch starts at the oldest revision etcd still has.)
	applied := w.load(all)
	log.Info("expiry schedule loaded", "requests", len(all), "scheduled", w.Stats().Scheduled)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := w.svc.store.WatchRequests(wctx, max(applied, 1))

	nextRelist := time.Now().Add(w.relist)
	wake := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("expiry sweeper: the requests watch ended")
			}
			applied = w.apply(ev, applied)
			// Only ever wake earlier here: a stream of events must not keep
			// pushing the wake-up (and the re-list) away.
			if d := w.wait(false); time.Now().Add(d).Before(wake) {
				wake = time.Now().Add(d)
				timer.Reset(d)
			}
			continue
		case <-timer.C:
		}

		n, err := w.sweep(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("expiry sweep", "err", err)
		}
		if n > 0 {
			log.Info("expired requests", "count", n)
		}
		d := w.wait(err != nil)
		wake = time.Now().Add(d)
		timer.Reset(d)
		if time.Now().Before(nextRelist) {
			continue
		}
		all, err := w.svc.store.ListRequests(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("expiry sweeper: re-read requests", "err", err)
			}
			nextRelist = time.Now().Add(min(expiryRelistRetry, w.relist))
			continue
		}
		applied = max(applied, w.load(all))
		nextRelist = time.Now().Add(w.relist)
	}
}

// Due returns the time request id is scheduled to expire at, if it is
// scheduled.
func (w *ExpirySweeper) Due(id string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.due.Due(id)
}

// Stats returns counts of the sweeper's work.
func (w *ExpirySweeper) Stats() ExpiryStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.stats
	st.Scheduled = w.due.Len()
	return st
}

// load replaces the schedule with the due times of all; it returns their
// highest mod revision.
func (w *ExpirySweeper) load(all []access.Request) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.due.Clear()
	var rev int64
	for i := range all {
		w.track(&all[i])
		rev = max(rev, all[i].Revision)
	}
	w.stats.Loads++
	return rev
}

// apply brings the schedule up to ev, unless it has it already; it returns
// the revision the schedule now reflects.
func (w *ExpirySweeper) apply(ev access.RequestEvent, applied int64) int64 {
	if ev.Type == access.EventReset {
		w.load(ev.Snapshot)
		return ev.Revision
	}
	if ev.Revision <= applied {
		return applied
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch ev.Type {
	case access.EventPut:
		w.track(&ev.Request)
	case access.EventDelete:
		w.due.Remove(ev.Request.ID)
	}
	return ev.Revision
}

// track schedules r at its due time, or drops it when nothing is due.
// The caller holds mu.
func (w *ExpirySweeper) track(r *access.Request) {
	if due, ok := r.ExpiryDue(); ok {
		w.due.Set(r.ID, due)
	} else {
		w.due.Remove(r.ID)
	}
}

// wait is how long to sleep before the next look at the schedule.
func (w *ExpirySweeper) wait(backoff bool) time.Duration {
	if backoff {
		return w.maxWait
	}
	w.mu.Lock()
	_, due, ok := w.due.Next()
	w.mu.Unlock()
	if !ok {
		return w.maxWait
	}
	return min(max(due.Sub(w.svc.now()), 0), w.maxWait)
}

// sweep moves every scheduled request that is due, earliest first. A
// request the transaction finds not due (changed meanwhile, or expired by
// another replica) leaves the schedule; the watch brings its new due time
// if it has one. It stops at the first failure, leaving that request
// scheduled.
func (w *ExpirySweeper) sweep(ctx context.Context) (int, error) {
	n := 0
	for ctx.Err() == nil {
		w.mu.Lock()
		id, due, ok := w.due.Next()
		w.mu.Unlock()
		if !ok || w.svc.now().Before(due) {
			return n, nil
		}
		expired, err := w.svc.expireRequest(ctx, id)
		switch {
		case err == nil:
		case errors.Is(err, access.ErrNotFound):
		case errors.Is(err, access.ErrInvalid):
			// Not a request the service can update (say, an id that is no
			// UUID): retrying would fail forever.
			w.svc.log.Warn("expiry sweeper: cannot expire request; dropped from the schedule", "id", id, "err", err)
		default:
			return n, fmt.Errorf("expire request %s: %w", id, err)
		}
		w.mu.Lock()
		w.due.Remove(id)
		if expired {
			w.stats.Expired++
		}
		w.mu.Unlock()
		if expired {
			n++
		}
	}
	return n, nil
}

// expireRequest moves request id to EXPIRED in one transaction on its mod
// revision, if the request as read in that transaction is due now; it
// reports whether it did.
func (s *Service) expireRequest(ctx context.Context, id string) (bool, error) {
	system := Caller{User: access.User{Metadata: access.Metadata{Name: "system"}}, Source: "sweeper"}
	_, err := s.update(ctx, id, func(r *access.Request) ([]access.AuditEvent, error) {
		before := r.State
		if !r.Expire(s.now().UTC()) {
			return nil, errNothingToDo
		}
		return s.stateEvents(system, before, r), nil
	})
	if errors.Is(err, errNothingToDo) {
		return false, nil
	}
	return err == nil, err
}
