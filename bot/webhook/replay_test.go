package webhook

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const window = 5 * time.Minute

// A full cache refuses new ids instead of evicting live ones; an id is
// refused while live and forgotten once expired, which makes room again.
func TestReplayCacheBoundedAndExpiring(t *testing.T) {
	now := time.Unix(1_760_000_000, 0)
	t1 := now.Add(time.Minute)
	t5 := now.Add(window) // "a" expires here
	c := NewReplayCache(2)
	steps := []struct {
		name    string
		id      string
		now     time.Time
		wantErr error
	}{
		{"first id", "a", now, nil},
		{"second id", "b", t1, nil},
		{"third id while both are live: full", "c", t1, ErrReplayCacheFull},
		{"the refused id was not recorded", "c", t1, ErrReplayCacheFull},
		{"a live id again: replay", "a", t1, ErrReplay},
		{"once a expired there is room", "c", t5, nil},
		{"b is still live", "b", t5, ErrReplay},
		{"a is forgotten, but the cache is full again", "a", t5, ErrReplayCacheFull},
	}
	for _, s := range steps {
		err := c.Add(s.id, s.now, s.now.Add(window))
		if !errors.Is(err, s.wantErr) {
			t.Fatalf("%s: Add(%q) = %v, want %v", s.name, s.id, err, s.wantErr)
		}
	}
	if n := c.Len(t5); n != 2 {
		t.Fatalf("Len at +5m = %d, want 2 (b and c)", n)
	}
	if n := c.Len(now.Add(time.Hour)); n != 0 {
		t.Fatalf("after an hour the cache holds %d", n)
	}
}

// The expiry is the caller's until, not a fixed window after now: an id
// remembered until later than now+window stays refused until then.
func TestReplayCacheKeepsIDUntilItsOwnExpiry(t *testing.T) {
	now := time.Unix(1_760_000_000, 0)
	c := NewReplayCache(0)
	until := now.Add(9 * time.Minute)
	if err := c.Add("future", now, until); err != nil {
		t.Fatal(err)
	}
	if err := c.Add("future", now.Add(7*time.Minute), now.Add(12*time.Minute)); !errors.Is(err, ErrReplay) {
		t.Fatalf("before its expiry: err = %v, want ErrReplay", err)
	}
	if err := c.Add("future", until, until.Add(window)); err != nil {
		t.Fatalf("at its expiry: err = %v, want it forgotten", err)
	}
}

func TestNewReplayCacheDefaultCapacity(t *testing.T) {
	if c := NewReplayCache(-1); c.capacity != DefaultReplayCapacity {
		t.Fatalf("capacity = %d, want %d", c.capacity, DefaultReplayCapacity)
	}
}

// Of many concurrent Adds of one id exactly one succeeds; the others are
// replays, never errors of another kind.
func TestReplayCacheConcurrent(t *testing.T) {
	now := time.Unix(1_760_000_000, 0)
	c := NewReplayCache(0)
	var accepted, replays atomic.Int32
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			// Other ids in between, so the map and heap change under the race.
			_ = c.Add(fmt.Sprint("other-", i), now, now.Add(window))
			err := c.Add("777", now, now.Add(window))
			switch {
			case err == nil:
				accepted.Add(1)
			case errors.Is(err, ErrReplay):
				replays.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if accepted.Load() != 1 || replays.Load() != 63 {
		t.Fatalf("accepted %d, replays %d; want exactly one accepted", accepted.Load(), replays.Load())
	}
	if n := c.Len(now); n != 65 {
		t.Fatalf("Len = %d, want 65", n)
	}
}

// sharedMap stands in for the etcd store in the shared check.
type sharedMap struct {
	seen map[string]bool
	err  error
}

func (s *sharedMap) RememberRequest(_ context.Context, key string, _ time.Time) (bool, error) {
	if s.err != nil {
		return false, s.err
	}
	if s.seen[key] {
		return false, nil
	}
	s.seen[key] = true
	return true, nil
}

// Two replicas' caches sharing one store: an id seen by one is refused by
// the other; an unreachable store refuses rather than lets a replay in.
func TestCheckSharesIDsAcrossReplicas(t *testing.T) {
	shared := &sharedMap{seen: map[string]bool{}}
	a, b := NewReplayCache(0), NewReplayCache(0)
	a.Share(shared, "discord")
	b.Share(shared, "discord")
	ctx := context.Background()
	now := time.Now()
	if err := a.Check(ctx, "i1", now, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := b.Check(ctx, "i1", now, now.Add(time.Minute)); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay on the other replica: %v", err)
	}
	if !shared.seen["discord:i1"] {
		t.Fatal("the shared key is not scoped by platform")
	}
	shared.err = errors.New("etcd down")
	if err := b.Check(ctx, "i2", now, now.Add(time.Minute)); !errors.Is(err, ErrReplayUnchecked) {
		t.Fatalf("unreachable shared store: %v", err)
	}
}

func TestReplayUntil(t *testing.T) {
	now := time.Unix(1_760_000_000, 0)
	for _, tc := range []struct {
		name   string
		signed time.Time
		want   time.Time
	}{
		{"signed now", now, now.Add(window)},
		{"signed in the past", now.Add(-time.Minute), now.Add(window)},
		{"signed in the future", now.Add(time.Minute), now.Add(time.Minute + window)},
	} {
		if got := ReplayUntil(now, tc.signed, window); !got.Equal(tc.want) {
			t.Errorf("%s: ReplayUntil = %v, want %v", tc.name, got, tc.want)
		}
	}
}
