package inventory

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
)

// fakeSource is an in-memory Source. Lists return its current contents;
// each watch is handed to the test on watches, which feeds it through
// watch.send and breaks it with watch.close, as an etcd hiccup would.
type fakeSource struct {
	mu       sync.Mutex
	items    []access.Resource
	rev      int64
	listErrs int // fail this many lists first
	lists    int

	watches chan *watch
}

type watch struct {
	fromRev int64
	ctx     context.Context
	in      chan access.ResourceEvent
	once    sync.Once
}

func newFakeSource(rev int64, items ...access.Resource) *fakeSource {
	return &fakeSource{items: items, rev: rev, watches: make(chan *watch, 16)}
}

func (f *fakeSource) set(rev int64, items ...access.Resource) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items, f.rev = items, rev
}

func (f *fakeSource) listCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists
}

func (f *fakeSource) ListResources(ctx context.Context) ([]access.Resource, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if f.listErrs > 0 {
		f.listErrs--
		return nil, 0, access.ErrUnavailable
	}
	return slices.Clone(f.items), f.rev, ctx.Err()
}

// WatchResources keeps the store's contract: the channel closes when ctx
// ends, or here also when the test breaks the watch.
func (f *fakeSource) WatchResources(ctx context.Context, fromRev int64) <-chan access.ResourceEvent {
	w := &watch{fromRev: fromRev, ctx: ctx, in: make(chan access.ResourceEvent)}
	out := make(chan access.ResourceEvent)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.in:
				if !ok {
					return
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	f.watches <- w
	return out
}

func (w *watch) send(t *testing.T, ev access.ResourceEvent) {
	t.Helper()
	select {
	case w.in <- ev:
	case <-time.After(5 * time.Second):
		t.Fatalf("watch from %d: nobody received %s", w.fromRev, ev.Type)
	}
}

func (w *watch) close() { w.once.Do(func() { close(w.in) }) }

func nextWatch(t *testing.T, f *fakeSource) *watch {
	t.Helper()
	select {
	case w := <-f.watches:
		return w
	case <-time.After(5 * time.Second):
		t.Fatal("no watch started")
		return nil
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// fastIndex has retry delays short enough for tests.
func fastIndex() *Index {
	ix := New()
	ix.retryMin, ix.retryMax = time.Millisecond, 4*time.Millisecond
	return ix
}

// runIndex starts Run and returns a stop function that cancels it and
// returns its result.
func runIndex(t *testing.T, ix *Index, src Source) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx, src) }()
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after cancel")
			return nil
		}
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func isReady(ix *Index) bool {
	select {
	case <-ix.Ready():
		return true
	default:
		return false
	}
}

func TestRun(t *testing.T) {
	src := newFakeSource(10, node("a", nil), node("b", nil), db("orders", nil))
	ix := fastIndex()
	if isReady(ix) {
		t.Fatal("ready before Run")
	}
	stop := runIndex(t, ix, src)

	w := nextWatch(t, src)
	if !isReady(ix) {
		t.Fatal("watching but not ready")
	}
	if w.fromRev != 10 {
		t.Errorf("watch from %d, want the list's revision 10", w.fromRev)
	}
	if got := names(ix, access.KindNode); !slices.Equal(got, []string{"a", "b"}) || ix.Len() != 3 || ix.Revision() != 10 {
		t.Fatalf("after load: nodes %q, Len %d, Revision %d", got, ix.Len(), ix.Revision())
	}

	w.send(t, put(node("c", nil), 11))
	w.send(t, del(access.KindNode, "a", 12))
	eventually(t, "watch events applied", func() bool { return ix.Revision() == 12 })
	if got := names(ix, access.KindNode); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("after events: nodes %q", got)
	}

	// The watch breaks; meanwhile the store changed in ways the broken watch
	// never reported (b deleted, d added). The re-list must catch both.
	src.set(20, node("c", nil), node("d", nil))
	w.close()
	w2 := nextWatch(t, src)
	if w2.fromRev != 20 {
		t.Errorf("second watch from %d, want 20", w2.fromRev)
	}
	if got := names(ix, access.KindNode); !slices.Equal(got, []string{"c", "d"}) || ix.Len() != 2 || ix.Revision() != 20 {
		t.Fatalf("after re-list: nodes %q, Len %d, Revision %d", got, ix.Len(), ix.Revision())
	}
	if n := src.listCount(); n != 2 {
		t.Errorf("%d lists, want 2", n)
	}

	// A reset from the watch (etcd compaction) replaces everything.
	w2.send(t, reset(30, node("z", nil)))
	eventually(t, "reset applied", func() bool { return ix.Revision() == 30 })
	if got := names(ix, access.KindNode); !slices.Equal(got, []string{"z"}) {
		t.Fatalf("after reset: nodes %q", got)
	}

	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
	select {
	case <-w2.ctx.Done():
	default:
		t.Error("watch context still alive after Run returned")
	}
}

func TestRunRetries(t *testing.T) {
	tests := []struct {
		name     string
		listErrs int
		breaks   int // watches that close at once
	}{
		{"list fails first", 3, 0},
		{"watch keeps breaking", 0, 4},
		{"both", 2, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newFakeSource(5, node("a", nil))
			src.listErrs = tt.listErrs
			ix := fastIndex()
			runIndex(t, ix, src)
			for range tt.breaks {
				nextWatch(t, src).close()
			}
			w := nextWatch(t, src)
			if !isReady(ix) || ix.Len() != 1 || w.fromRev != 5 {
				t.Fatalf("ready %v, Len %d, watch from %d", isReady(ix), ix.Len(), w.fromRev)
			}
			if got, want := src.listCount(), tt.listErrs+tt.breaks+1; got != want {
				t.Errorf("%d lists, want %d", got, want)
			}
		})
	}
}

func TestRunNotReadyUntilListed(t *testing.T) {
	src := newFakeSource(1, node("a", nil))
	src.listErrs = 1 << 30
	ix := fastIndex()
	stop := runIndex(t, ix, src)
	eventually(t, "a few failed lists", func() bool { return src.listCount() >= 3 })
	if isReady(ix) {
		t.Fatal("ready although no list succeeded")
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
}

// A source that never closes its channel must not keep Run alive past ctx.
type stuckSource struct{ *fakeSource }

func (s *stuckSource) WatchResources(context.Context, int64) <-chan access.ResourceEvent {
	return make(chan access.ResourceEvent)
}

func TestRunReturnsOnCancelWithStuckWatch(t *testing.T) {
	src := &stuckSource{newFakeSource(1, node("a", nil))}
	ix := fastIndex()
	stop := runIndex(t, ix, src)
	<-ix.Ready()
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
}

func TestRunCancelledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	src := newFakeSource(1)
	if err := New().Run(ctx, src); !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
	if n := src.listCount(); n != 0 {
		t.Errorf("%d lists after cancel", n)
	}
}
