package webhook

import (
	"context"
	"sync"
)

// Workers runs the work that inbound requests start after they are
// acknowledged ("acknowledge now, work later"): at most limit functions at
// once, never queued, and tracked so that a shutdown can wait for them.
// Past the limit TryGo refuses at once, so the acknowledgement never waits
// and a flood cannot pile up goroutines; the endpoint answers "busy".
// Workers is safe for concurrent use.
type Workers struct {
	slots chan struct{} // one token per running function

	// mu makes the closed check and the WaitGroup's Add one step, so that
	// nothing is added once Close has returned.
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// NewWorkers returns Workers running at most limit functions at once;
// limit must be positive.
func NewWorkers(limit int) *Workers {
	return &Workers{slots: make(chan struct{}, limit)}
}

// TryGo runs fn in a new goroutine and reports true, or reports false
// without running it when limit functions are running or Close was called.
// fn gets no context: it makes its own, detached from the request that
// started it, with its own timeout.
func (w *Workers) TryGo(fn func()) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return false
	}
	select {
	case w.slots <- struct{}{}:
	default:
		return false
	}
	w.wg.Go(func() {
		defer func() { <-w.slots }()
		fn()
	})
	return true
}

// Close makes every later TryGo refuse; functions already running go on.
// Call it before the last Wait of a shutdown, so that nothing starts while
// Wait waits.
func (w *Workers) Close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

// Wait blocks until every function started by TryGo has returned, or until
// ctx ends; then it returns ctx's error and the functions go on running
// (cancelling them is the caller's business, through the contexts it gave
// them).
func (w *Workers) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
