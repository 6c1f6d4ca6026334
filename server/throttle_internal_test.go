package server

import (
	"fmt"
	"testing"
	"time"
)

// TestThrottleRefillSweepAndOverflow: a bucket refills at its rate and
// says how long until the next token; idle buckets are forgotten at the
// sweep; past maxThrottleBuckets new addresses share one overflow bucket.
func TestThrottleRefillSweepAndOverflow(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	th := newThrottle(throttleLimit{perSecond: 2, burst: 3}, func() time.Time { return now })

	for i := range 3 {
		if ok, _ := th.allow("192.0.2.1"); !ok {
			t.Fatalf("request %d within the burst refused", i+1)
		}
	}
	if ok, wait := th.allow("192.0.2.1"); ok || wait != 500*time.Millisecond {
		t.Fatalf("fourth request: allowed %v, wait %s; want refused, wait 500ms", ok, wait)
	}
	now = now.Add(250 * time.Millisecond)
	if ok, wait := th.allow("192.0.2.1"); ok || wait != 250*time.Millisecond {
		t.Fatalf("a quarter second later: allowed %v, wait %s; want refused, wait 250ms", ok, wait)
	}
	now = now.Add(250 * time.Millisecond)
	if ok, _ := th.allow("192.0.2.1"); !ok {
		t.Fatal("half a second later: refused, want the refilled token")
	}

	th.allow("192.0.2.2")
	now = now.Add(throttleSweepEvery)
	th.allow("192.0.2.3") // sweeps first: both earlier buckets are full again
	if len(th.buckets) != 1 {
		t.Fatalf("%d buckets after the sweep, want only 192.0.2.3's", len(th.buckets))
	}

	for i := range maxThrottleBuckets {
		th.allow(fmt.Sprintf("network-%d", i))
	}
	if len(th.buckets) != maxThrottleBuckets {
		t.Fatalf("%d buckets, want the cap %d", len(th.buckets), maxThrottleBuckets)
	}
	for i := range 3 { // two new addresses, one overflow bucket of 3
		th.allow(fmt.Sprintf("198.51.100.%d", i))
	}
	if ok, _ := th.allow("198.51.100.200"); ok {
		t.Fatal("a new address past the cap got its own bucket, want the shared overflow one (empty)")
	}
}
