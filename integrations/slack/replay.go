package slack

import (
	"container/heap"
	"errors"
	"net/http"
	"sync"
	"time"
)

// replayCapacity bounds the replay cache: far above what one workspace sends
// in ten minutes.
const replayCapacity = 100_000

var (
	// errReplay: an authentic request already seen (same X-Slack-Signature,
	// or same Socket Mode envelope id). Answered 409 Conflict: Slack never
	// resends an interaction or a slash command with the same signature (its
	// retries carry a new timestamp, hence a new signature), so a repeat is
	// a replay by someone else and deserves a refusal, not a silent 200.
	errReplay = errors.New("slack: request already seen")
	// errReplayCacheFull: the cache holds replayCapacity live entries.
	// Answered 503: refusing is safer than evicting a live entry, which
	// would reopen its replay window.
	errReplayCacheFull = errors.New("slack: replay cache full")
)

// replayStatus is the HTTP status for an error of replayCache.add.
func replayStatus(err error) int {
	if errors.Is(err, errReplayCacheFull) {
		return http.StatusServiceUnavailable
	}
	return http.StatusConflict
}

// replayCache remembers keys until they expire; bounded and safe for
// concurrent use. It is per process: with several replicas behind one URL a
// replay landing on another replica is not caught here (the core's state
// checks still make a repeated review harmless).
type replayCache struct {
	mu       sync.Mutex
	capacity int
	until    map[string]time.Time
	order    expiryHeap
}

func newReplayCache(capacity int) *replayCache {
	return &replayCache{capacity: capacity, until: make(map[string]time.Time)}
}

// add records key until until, or fails with errReplay when key is held and
// unexpired at now.
func (c *replayCache) add(key string, now, until time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.order) > 0 && !c.order[0].until.After(now) {
		e := heap.Pop(&c.order).(expiry)
		delete(c.until, e.key)
	}
	if _, ok := c.until[key]; ok {
		return errReplay
	}
	if len(c.until) >= c.capacity {
		return errReplayCacheFull
	}
	c.until[key] = until
	heap.Push(&c.order, expiry{key: key, until: until})
	return nil
}

type expiry struct {
	key   string
	until time.Time
}

type expiryHeap []expiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
