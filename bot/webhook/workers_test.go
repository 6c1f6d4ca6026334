package webhook

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// startBlocked starts n functions on w that block until release is closed,
// and fails the test if one is refused.
func startBlocked(t *testing.T, w *Workers, n int, release <-chan struct{}, ran *atomic.Int32) {
	t.Helper()
	for i := range n {
		if !w.TryGo(func() { ran.Add(1); <-release }) {
			t.Fatalf("function %d of %d refused under the limit", i+1, n)
		}
	}
}

// Past the limit TryGo refuses at once instead of queueing; a finished
// function frees its slot.
func TestWorkersRefusePastTheLimit(t *testing.T) {
	w := NewWorkers(2)
	release := make(chan struct{})
	var ran atomic.Int32
	startBlocked(t, w, 2, release, &ran)
	if w.TryGo(func() { ran.Add(1) }) {
		t.Fatal("a third function started with a limit of 2")
	}
	close(release)
	if err := w.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := ran.Load(); n != 2 {
		t.Fatalf("%d functions ran, want 2", n)
	}
	done := make(chan struct{})
	if !w.TryGo(func() { close(done) }) {
		t.Fatal("refused after the running functions returned")
	}
	<-done
}

// Wait returns ctx's error while functions still run, and nil once they
// have returned.
func TestWorkersWaitBoundedByContext(t *testing.T) {
	w := NewWorkers(4)
	release := make(chan struct{})
	var ran atomic.Int32
	startBlocked(t, w, 3, release, &ran)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := w.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with blocked functions = %v, want the deadline", err)
	}
	close(release)
	if err := w.Wait(t.Context()); err != nil {
		t.Fatalf("Wait after release = %v", err)
	}
	if n := ran.Load(); n != 3 {
		t.Fatalf("%d functions ran, want 3", n)
	}
}

// After Close nothing new starts, and what runs is still waited for.
func TestWorkersCloseRefusesNewWork(t *testing.T) {
	w := NewWorkers(4)
	release := make(chan struct{})
	var ran atomic.Int32
	startBlocked(t, w, 1, release, &ran)
	w.Close()
	if w.TryGo(func() { ran.Add(1) }) {
		t.Fatal("a function started after Close")
	}
	waited := make(chan error, 1)
	go func() { waited <- w.Wait(context.Background()) }()
	select {
	case err := <-waited:
		t.Fatalf("Wait returned %v while a function still ran", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if n := ran.Load(); n != 1 {
		t.Fatalf("%d functions ran, want 1", n)
	}
}

// Of many concurrent TryGo calls while nothing returns, exactly limit
// start, and never more than limit run at once.
func TestWorkersConcurrentTryGo(t *testing.T) {
	const limit = 3
	w := NewWorkers(limit)
	var running, peak, started atomic.Int32
	release := make(chan struct{})
	var tries sync.WaitGroup
	for range 50 {
		tries.Go(func() {
			ok := w.TryGo(func() {
				n := running.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				<-release
				running.Add(-1)
			})
			if ok {
				started.Add(1)
			}
		})
	}
	tries.Wait()
	close(release)
	if err := w.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := started.Load(); n != limit {
		t.Fatalf("%d functions started, want exactly %d", n, limit)
	}
	if p := peak.Load(); p > limit {
		t.Fatalf("peak of %d functions running at once, limit %d", p, limit)
	}
}
