package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

func next[E any](t testing.TB, ch <-chan E) E {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event within 10s")
	}
	panic("unreachable")
}

func describe(e access.RequestEvent) string {
	if e.Type == access.EventReset {
		var ids []string
		for _, r := range e.Snapshot {
			ids = append(ids, fmt.Sprintf("%s=%s", r.ID, r.State))
		}
		return "reset[" + strings.Join(ids, ",") + "]"
	}
	return fmt.Sprintf("%s %s=%s", e.Type, e.Request.ID, e.Request.State)
}

func setState(st access.State) func(*access.Request) ([]access.AuditEvent, error) {
	return func(r *access.Request) ([]access.AuditEvent, error) {
		r.State = st
		return nil, nil
	}
}

func TestWatchRequests(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	r1 := must[access.Request](t)(s.CreateRequest(ctx, pendingRequest("r1", 1)))
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	ch := s.WatchRequests(wctx, r1.Revision-1)

	u := must[access.Request](t)(s.UpdateRequest(ctx, "r1", setState(access.StateApproved)))
	must[access.Request](t)(s.CreateRequest(ctx, pendingRequest("r2", 1)))
	_, err := s.Client().Delete(ctx, s.Prefix()+"requests/r1")
	noErr(t, err)

	var got []string
	var revs []int64
	for range 4 {
		e := next(t, ch)
		got = append(got, describe(e))
		revs = append(revs, e.Revision)
		if e.Type == access.EventPut && e.Request.Revision != e.Revision {
			t.Fatalf("event revision %d, request revision %d", e.Revision, e.Request.Revision)
		}
	}
	want := "put r1=PENDING|put r1=APPROVED|put r2=PENDING|delete r1=APPROVED"
	if strings.Join(got, "|") != want {
		t.Fatalf("events = %q, want %q", strings.Join(got, "|"), want)
	}
	if revs[1] != u.Revision {
		t.Fatalf("update event at %d, want %d", revs[1], u.Revision)
	}

	// Resume after the second event: only what came later.
	rctx, rstop := context.WithCancel(ctx)
	defer rstop()
	rch := s.WatchRequests(rctx, revs[1])
	if d := describe(next(t, rch)); d != "put r2=PENDING" {
		t.Fatalf("resumed watch starts with %q", d)
	}
	if d := describe(next(t, rch)); d != "delete r1=APPROVED" {
		t.Fatalf("resumed watch continues with %q", d)
	}

	// The channel closes when ctx ends.
	stop()
	select {
	case _, ok := <-ch:
		for ok {
			_, ok = <-ch
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after ctx ended")
	}
}

func TestWatchFromNow(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	must[access.Request](t)(s.CreateRequest(ctx, pendingRequest("old", 1)))
	ch := s.WatchRequests(ctx, 0)
	// "From now" is the call, not whenever the stream gets set up: the
	// first write after the call must arrive.
	must[access.Request](t)(s.CreateRequest(ctx, pendingRequest("new", 1)))
	select {
	case e := <-ch:
		if e.Request.ID != "new" {
			t.Fatalf("watch from now delivered %q, want new", e.Request.ID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the write right after the watch call was missed")
	}
}

// TestWatchCompacted: a watch from a compacted revision must not skip
// ahead; it sends the whole current state as EventReset, then continues.
func TestWatchCompacted(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	r1 := must[access.Request](t)(s.CreateRequest(ctx, pendingRequest("r1", 1)))
	must[access.Request](t)(s.CreateRequest(ctx, pendingRequest("r2", 1)))
	must[access.Request](t)(s.UpdateRequest(ctx, "r1", setState(access.StateApproved)))
	last := must[access.Request](t)(s.UpdateRequest(ctx, "r2", setState(access.StateDenied)))
	_, err := s.Client().Compact(ctx, last.Revision, clientv3.WithCompactPhysical())
	noErr(t, err)

	ch := s.WatchRequests(ctx, r1.Revision)
	e := next(t, ch)
	if e.Type != access.EventReset || describe(e) != "reset[r1=APPROVED,r2=DENIED]" || e.Revision < last.Revision {
		t.Fatalf("first event = %s at %d, want reset[r1=APPROVED,r2=DENIED] at >= %d", describe(e), e.Revision, last.Revision)
	}
	for _, r := range e.Snapshot {
		if r.Revision == 0 {
			t.Fatalf("snapshot request %s without revision", r.ID)
		}
	}
	must[access.Request](t)(s.CreateRequest(ctx, pendingRequest("r3", 1)))
	if d := describe(next(t, ch)); d != "put r3=PENDING" {
		t.Fatalf("after reset: %q", d)
	}
}

func TestWatchResources(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	_, rev, err := s.ListResources(ctx)
	noErr(t, err)
	ch := s.WatchResources(ctx, rev)
	node := access.Resource{Kind: access.KindNode, Metadata: access.Metadata{Name: "web-1"}, Spec: access.ResourceSpec{Hostname: "web-1"}}
	node = must[access.Resource](t)(s.PutResource(ctx, node))
	noErr(t, s.DeleteResource(ctx, access.KindNode, "web-1"))

	e := next(t, ch)
	if e.Type != access.EventPut || e.Resource.Metadata.Name != "web-1" || e.Revision != node.Metadata.Revision || e.Resource.Metadata.Revision != node.Metadata.Revision {
		t.Fatalf("put event = %+v", e)
	}
	e = next(t, ch)
	if e.Type != access.EventDelete || e.Resource.Kind != access.KindNode || e.Resource.Metadata.Name != "web-1" || e.Revision <= node.Metadata.Revision {
		t.Fatalf("delete event = %+v", e)
	}

	// Compaction: reset with the (now empty) snapshot.
	must[access.Resource](t)(s.PutResource(ctx, access.Resource{Kind: access.KindDB, Metadata: access.Metadata{Name: "orders"}}))
	resp, err := s.Client().Get(ctx, "x")
	noErr(t, err)
	_, err = s.Client().Compact(ctx, resp.Header.Revision)
	noErr(t, err)
	ch2 := s.WatchResources(ctx, rev)
	e = next(t, ch2)
	if e.Type != access.EventReset || len(e.Snapshot) != 1 || e.Snapshot[0].Metadata.Name != "orders" || e.Snapshot[0].Kind != access.KindDB {
		t.Fatalf("reset event = %+v", e)
	}
}
