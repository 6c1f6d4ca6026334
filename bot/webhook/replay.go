package webhook

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// DefaultReplayCapacity is the ReplayCache size NewReplayCache(0) gives:
// far more requests than one workspace or application sends in the
// platforms' 5-minute signature window.
const DefaultReplayCapacity = 100_000

var (
	// ErrReplay: an authentic request whose id (interaction id, signature,
	// envelope id) was already seen and has not expired. Answer 409
	// Conflict: the platforms retry with a new id, so a repeat is a replay
	// by someone else.
	ErrReplay = errors.New("request already seen")
	// ErrReplayCacheFull: the cache holds its capacity of unexpired ids, so
	// a new one cannot be remembered. Answer 503: refusing the request is
	// safer than evicting a live id, which would reopen its replay window.
	ErrReplayCacheFull = errors.New("replay cache full")
	// ErrReplayUnchecked: the shared record of ids could not be reached,
	// so whether another replica saw the id is unknown. Answer 503 (the
	// platform retries); accepting could let a replay through.
	ErrReplayUnchecked = errors.New("replay check unavailable")
)

// SharedReplays remembers ids across replicas (the etcd store): it
// reports whether key is new, recording it until until.
type SharedReplays interface {
	RememberRequest(ctx context.Context, key string, until time.Time) (bool, error)
}

// ReplayCache remembers request ids until they expire, so that a captured,
// authentic request cannot be sent again while its signature is still
// fresh. It is bounded (at most capacity unexpired ids; when full, new ids
// are refused with ErrReplayCacheFull rather than evicting live ones) and
// safe for concurrent use.
//
// The cache itself is per process; with Share, Check also records each id
// in a store all replicas share, so a replay that lands on another replica
// is refused too.
type ReplayCache struct {
	mu       sync.Mutex
	capacity int
	byID     map[string]time.Time // id -> expiry
	order    expiryHeap
	shared   SharedReplays
	scope    string
}

// NewSharedReplayCache is NewReplayCache(0) that, when shared is not nil,
// also records ids in shared under scope (see Share): what every adapter
// with a replicated deployment wants.
func NewSharedReplayCache(shared SharedReplays, scope string) *ReplayCache {
	c := NewReplayCache(0)
	if shared != nil {
		c.Share(shared, scope)
	}
	return c
}

// ReplayUntil is how long to remember a request signed at signed: until
// its signature goes stale (signed+window), and at least window from now,
// so a timestamp in the future leaves no gap.
func ReplayUntil(now, signed time.Time, window time.Duration) time.Time {
	until := now.Add(window)
	if t := signed.Add(window); t.After(until) {
		until = t
	}
	return until
}

// Share makes Check consult shared as well, with ids prefixed by scope
// (the platform), after the local check. Call it before use.
func (c *ReplayCache) Share(shared SharedReplays, scope string) {
	c.shared, c.scope = shared, scope
}

// Check is Add, then, when shared, the same in the shared store: an id
// seen by any replica is ErrReplay; a shared store that cannot be reached
// is ErrReplayUnchecked.
func (c *ReplayCache) Check(ctx context.Context, id string, now, until time.Time) error {
	if err := c.Add(id, now, until); err != nil {
		return err
	}
	if c.shared == nil {
		return nil
	}
	fresh, err := c.shared.RememberRequest(ctx, c.scope+":"+id, until)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrReplayUnchecked, err)
	}
	if !fresh {
		return fmt.Errorf("%w (by another replica): id %s", ErrReplay, id)
	}
	return nil
}

// NewReplayCache returns a cache holding at most capacity ids;
// capacity <= 0 means DefaultReplayCapacity.
func NewReplayCache(capacity int) *ReplayCache {
	if capacity <= 0 {
		capacity = DefaultReplayCapacity
	}
	return &ReplayCache{capacity: capacity, byID: make(map[string]time.Time)}
}

// Add records id until until. It fails with ErrReplay when id is already
// held and unexpired at now, and with ErrReplayCacheFull when capacity
// unexpired ids are held; in both cases nothing is recorded. Ids whose
// expiry is not after now are forgotten first.
func (c *ReplayCache) Add(id string, now, until time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prune(now)
	if _, ok := c.byID[id]; ok {
		return fmt.Errorf("%w: id %s", ErrReplay, id)
	}
	if len(c.byID) >= c.capacity {
		return fmt.Errorf("%w: %d ids", ErrReplayCacheFull, c.capacity)
	}
	c.byID[id] = until
	heap.Push(&c.order, entry{id: id, until: until})
	return nil
}

// Len reports how many unexpired ids the cache holds at now.
func (c *ReplayCache) Len(now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prune(now)
	return len(c.byID)
}

// prune drops every entry whose expiry is not after now.
func (c *ReplayCache) prune(now time.Time) {
	for len(c.order) > 0 && !c.order[0].until.After(now) {
		e := heap.Pop(&c.order).(entry)
		delete(c.byID, e.id)
	}
}

type entry struct {
	id    string
	until time.Time
}

// expiryHeap orders entries by expiry, soonest first (container/heap).
type expiryHeap []entry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(entry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
