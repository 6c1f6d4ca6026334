package store

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/store/embedded"
)

// A bucket lease that vanished (revoked, or expired across a long pause) is
// granted anew instead of failing every request of its bucket.
func TestRememberRequestRegrantsALostLease(t *testing.T) {
	dir, err := os.MkdirTemp("", "gh-seen-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx := context.Background()
	m, err := embedded.Start(ctx, embedded.Config{DataDir: dir, UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	s, err := Dial(ctx, Config{Endpoints: m.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })

	until := time.Now().Add(5 * time.Minute)
	if fresh, err := s.RememberRequest(ctx, "slack:a", until); err != nil || !fresh {
		t.Fatalf("first: %v %v", fresh, err)
	}
	for _, id := range s.seen.leases {
		if _, err := s.client.Revoke(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// The revoke deleted slack:a with its lease; a new id in the same
	// bucket still works.
	if fresh, err := s.RememberRequest(ctx, "slack:b", until); err != nil || !fresh {
		t.Fatalf("after the lease was lost: %v %v", fresh, err)
	}
	if fresh, err := s.RememberRequest(ctx, "slack:b", until); err != nil || fresh {
		t.Fatalf("repeat after regrant: %v %v", fresh, err)
	}
}
