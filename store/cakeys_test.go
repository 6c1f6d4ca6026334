package store_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

func caSet(typ, resource string) access.CAKeySet {
	return access.CAKeySet{Type: typ, Resource: resource, Keys: []access.CAKey{{
		Version: 1, Algorithm: "ed25519", State: access.CAKeyActive,
		Public: "ssh-ed25519 AAAA", Sealed: []byte{1, 2, 3}, Created: time.Unix(1700000000, 0).UTC(),
	}}}
}

func TestCAKeys(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)

	if got, want := s.CAKeyPath("ssh", ""), s.Prefix()+"ca/ssh"; got != want {
		t.Fatalf("CAKeyPath(ssh) = %q, want %q", got, want)
	}
	if got, want := s.CAKeyPath("db", "orders"), s.Prefix()+"ca/db/orders"; got != want {
		t.Fatalf("CAKeyPath(db, orders) = %q, want %q", got, want)
	}

	_, err := s.GetCAKeys(ctx, "ssh", "")
	wantErr(t, err, access.ErrNotFound, "CA keys ssh")

	// Create-if-absent.
	set := must[access.CAKeySet](t)(s.PutCAKeys(ctx, caSet("ssh", ""), ev("ca.create", "system")))
	if set.Revision == 0 {
		t.Fatal("PutCAKeys did not set Revision")
	}
	_, err = s.PutCAKeys(ctx, caSet("ssh", ""))
	wantErr(t, err, access.ErrAlreadyExists, "CA keys ssh")

	got := must[access.CAKeySet](t)(s.GetCAKeys(ctx, "ssh", ""))
	if got.Revision != set.Revision || len(got.Keys) != 1 || !bytes.Equal(got.Keys[0].Sealed, []byte{1, 2, 3}) ||
		got.Keys[0].State != access.CAKeyActive || !got.Keys[0].Created.Equal(set.Keys[0].Created) {
		t.Fatalf("GetCAKeys = %+v, want %+v", got, set)
	}
	env, ok := raw(t, s, "ca/ssh")
	if !ok || string(env["schema"]) != "1" || strings.Contains(string(env["data"]), "revision") {
		t.Fatalf("stored value = %v", env)
	}

	// Compare-and-swap on the mod revision.
	next := got
	next.Keys = append(next.Keys, access.CAKey{Version: 2, Algorithm: "ed25519", State: access.CAKeyPublished})
	next = must[access.CAKeySet](t)(s.PutCAKeys(ctx, next))
	if next.Revision <= got.Revision {
		t.Fatalf("revision did not grow: %d -> %d", got.Revision, next.Revision)
	}
	_, err = s.PutCAKeys(ctx, got) // stale
	wantErr(t, err, access.ErrConflict, "CA keys ssh")
	if cur := must[access.CAKeySet](t)(s.GetCAKeys(ctx, "ssh", "")); len(cur.Keys) != 2 {
		t.Fatalf("stale write changed the set: %+v", cur)
	}

	// Per-resource sets are separate keys.
	must[access.CAKeySet](t)(s.PutCAKeys(ctx, caSet("db", "orders")))
	must[access.CAKeySet](t)(s.PutCAKeys(ctx, caSet("db", "billing")))
	_, err = s.GetCAKeys(ctx, "db", "payroll")
	wantErr(t, err, access.ErrNotFound, "CA keys db/payroll")
	if g := must[access.CAKeySet](t)(s.GetCAKeys(ctx, "db", "orders")); g.Resource != "orders" || g.Type != "db" {
		t.Fatalf("GetCAKeys(db, orders) = %+v", g)
	}

	// Names that would escape the layout are refused.
	_, err = s.GetCAKeys(ctx, "db", "../ssh")
	wantErr(t, err, access.ErrInvalid, "")
	_, err = s.PutCAKeys(ctx, caSet("", ""))
	wantErr(t, err, access.ErrInvalid, "")

	// A record copied to another key is refused, not served as this CA.
	resp, err := s.Client().Get(ctx, s.Prefix()+"ca/db/orders")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get raw: %v", err)
	}
	if _, err := s.Client().Put(ctx, s.Prefix()+"ca/db/copied", string(resp.Kvs[0].Value)); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetCAKeys(ctx, "db", "copied")
	if err == nil || !strings.Contains(err.Error(), "record is for CA keys db/orders") {
		t.Fatalf("copied record: err = %v", err)
	}
}

func TestCAKeysConcurrentCreate(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.PutCAKeys(ctx, caSet("app", ""))
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, access.ErrAlreadyExists):
			t.Fatalf("unexpected error %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d creates succeeded, want 1", won)
	}
}

// caVersions lists the key versions of a set, for comparing views.
func caVersions(set access.CAKeySet) []int {
	var v []int
	for _, k := range set.Keys {
		v = append(v, k.Version)
	}
	return v
}

func withKey(set access.CAKeySet, version int) access.CAKeySet {
	set.Keys = append(slices.Clone(set.Keys), access.CAKey{Version: version, Algorithm: "ed25519", State: access.CAKeyPublished, Public: "ssh-ed25519 AAAB", Sealed: []byte{4}})
	return set
}

// TestCAKeyCacheReadsItsWrites: a write through the cache is what the next
// read returns, at once; the read is served from memory (a change made
// behind the cache's back, with its watch stopped, is not seen) until a
// write loses its compare, which reloads the set.
func TestCAKeyCacheReadsItsWrites(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	wctx, stopWatch := context.WithCancel(ctx)
	c := must[*store.CAKeyCache](t)(s.CacheCAKeys(wctx))
	stopWatch() // from here only the cache's own writes and reloads change it

	_, err := c.GetCAKeys(ctx, "ssh", "")
	wantErr(t, err, access.ErrNotFound, "CA keys ssh")
	created := must[access.CAKeySet](t)(c.PutCAKeys(ctx, caSet("ssh", "")))
	if got := must[access.CAKeySet](t)(c.GetCAKeys(ctx, "ssh", "")); got.Revision != created.Revision || len(got.Keys) != 1 {
		t.Fatalf("read after create = %+v, want revision %d", got, created.Revision)
	}
	published := must[access.CAKeySet](t)(c.PutCAKeys(ctx, withKey(created, 2)))
	got := must[access.CAKeySet](t)(c.GetCAKeys(ctx, "ssh", ""))
	if got.Revision != published.Revision || !slices.Equal(caVersions(got), []int{1, 2}) {
		t.Fatalf("read after publish = %+v, want keys 1, 2 at %d", got, published.Revision)
	}
	// What a caller does to its copy does not reach the cache.
	got.Keys[0].State = access.CAKeyRetiring
	if again := must[access.CAKeySet](t)(c.GetCAKeys(ctx, "ssh", "")); again.Keys[0].State != access.CAKeyActive {
		t.Fatal("changing a returned set changed the cache")
	}

	// Another replica writes: this cache, not following, still serves its
	// view, so reads cost no etcd round trip.
	behind := must[access.CAKeySet](t)(s.PutCAKeys(ctx, withKey(published, 3)))
	if got := must[access.CAKeySet](t)(c.GetCAKeys(ctx, "ssh", "")); got.Revision != published.Revision {
		t.Fatalf("cache read revision %d, want its own view %d", got.Revision, published.Revision)
	}
	// A write on that view loses its compare and reloads the set, so the
	// caller's retry works on what won.
	_, err = c.PutCAKeys(ctx, withKey(published, 4))
	wantErr(t, err, access.ErrConflict, "")
	if got := must[access.CAKeySet](t)(c.GetCAKeys(ctx, "ssh", "")); got.Revision != behind.Revision || !slices.Equal(caVersions(got), []int{1, 2, 3}) {
		t.Fatalf("after a lost compare = %+v, want keys 1, 2, 3 at %d", got, behind.Revision)
	}

	// A create that loses to another replica's reloads too; a set the cache
	// never saw is read from etcd.
	other := must[access.CAKeySet](t)(s.PutCAKeys(ctx, caSet("db", "orders")))
	_, err = c.PutCAKeys(ctx, caSet("db", "orders"))
	wantErr(t, err, access.ErrAlreadyExists, "")
	if got := must[access.CAKeySet](t)(c.GetCAKeys(ctx, "db", "orders")); got.Revision != other.Revision {
		t.Fatalf("after a lost create: revision %d, want %d", got.Revision, other.Revision)
	}
	missed := must[access.CAKeySet](t)(s.PutCAKeys(ctx, caSet("app", "")))
	if got := must[access.CAKeySet](t)(c.GetCAKeys(ctx, "app", "")); got.Revision != missed.Revision {
		t.Fatalf("set written elsewhere: revision %d, want %d", got.Revision, missed.Revision)
	}
	_, err = c.GetCAKeys(ctx, "db", "../ssh")
	wantErr(t, err, access.ErrInvalid, "")
}

// TestCAKeyCacheFollowsOtherReplicas: writes made elsewhere reach the
// cache through its watch (its view changes without a read of etcd), a
// deleted set is no longer served, and a record copied to another key is
// refused as by the store.
func TestCAKeyCacheFollowsOtherReplicas(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	first := must[access.CAKeySet](t)(s.PutCAKeys(ctx, caSet("ssh", "")))
	c := must[*store.CAKeyCache](t)(s.CacheCAKeys(ctx))
	if got := must[access.CAKeySet](t)(c.GetCAKeys(ctx, "ssh", "")); got.Revision != first.Revision {
		t.Fatalf("loaded revision %d, want %d", got.Revision, first.Revision)
	}

	eventually := func(what string, ok func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for time.Since(start) < 5*time.Second {
			if ok() {
				return time.Since(start)
			}
			time.Sleep(time.Millisecond)
		}
		t.Fatalf("%s: not seen in 5s", what)
		return 0
	}
	next := must[access.CAKeySet](t)(s.PutCAKeys(ctx, withKey(first, 2)))
	took := eventually("another replica's publish", func() bool {
		got, err := c.GetCAKeys(ctx, "ssh", "")
		return err == nil && got.Revision == next.Revision
	})
	t.Logf("another replica's write reached the cache after %s", took)

	if _, err := s.Client().Delete(ctx, s.CAKeyPath("ssh", "")); err != nil {
		t.Fatal(err)
	}
	eventually("the deletion", func() bool {
		_, err := c.GetCAKeys(ctx, "ssh", "")
		return errors.Is(err, access.ErrNotFound)
	})

	orders := must[access.CAKeySet](t)(s.PutCAKeys(ctx, caSet("db", "orders")))
	raw, err := s.Client().Get(ctx, s.CAKeyPath("db", "orders"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client().Put(ctx, s.CAKeyPath("db", "copied"), string(raw.Kvs[0].Value)); err != nil {
		t.Fatal(err)
	}
	eventually("db/orders", func() bool {
		got, err := c.GetCAKeys(ctx, "db", "orders")
		return err == nil && got.Revision == orders.Revision
	})
	if _, err := c.GetCAKeys(ctx, "db", "copied"); err == nil || !strings.Contains(err.Error(), "record is for CA keys db/orders") {
		t.Fatalf("copied record through the cache: %v", err)
	}
}

func TestUpdateCluster(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	_, err := s.UpdateCluster(ctx, access.ClusterState{Name: "x", Revision: 1})
	wantErr(t, err, access.ErrConflict, "")
	cs, created, err := s.InitCluster(ctx, access.ClusterState{Name: "test.local", CACertPEM: "cert", CAKeyPEM: "key"})
	noErr(t, err)
	if !created || cs.Revision == 0 {
		t.Fatalf("InitCluster = %+v, %v", cs, created)
	}
	_, err = s.UpdateCluster(ctx, access.ClusterState{Name: "x"})
	wantErr(t, err, access.ErrInvalid, "no revision")

	sealed := cs
	sealed.CAKeyPEM, sealed.CAKeySealed = "", "c2VhbGVk"
	out := must[access.ClusterState](t)(s.UpdateCluster(ctx, sealed, ev("cluster.ca_key_sealed", "system")))
	if out.Revision <= cs.Revision {
		t.Fatalf("revision %d after %d", out.Revision, cs.Revision)
	}
	if got := must[access.ClusterState](t)(s.GetCluster(ctx)); got != out {
		t.Fatalf("GetCluster = %+v, want %+v", got, out)
	}
	// The write compared the revision: the stale state is refused and
	// changes nothing.
	_, err = s.UpdateCluster(ctx, cs)
	wantErr(t, err, access.ErrConflict, "")
	if got := must[access.ClusterState](t)(s.GetCluster(ctx)); got != out {
		t.Fatalf("after a stale update: %+v", got)
	}
	raw, err := s.Client().Get(ctx, s.Prefix()+"cluster/state")
	if err != nil || bytes.Contains(raw.Kvs[0].Value, []byte(`"ca_key_pem"`)) || bytes.Contains(raw.Kvs[0].Value, []byte(`"revision"`)) {
		t.Fatalf("stored state: %s, %v", raw.Kvs[0].Value, err)
	}
}

// TestListCAKeys: every set, each with the revision PutCAKeys compares; a
// set stored at another set's key fails the list instead of being passed
// over (a KEK rotation would leave it under the old key).
func TestListCAKeys(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	if sets, err := s.ListCAKeys(ctx); err != nil || len(sets) != 0 {
		t.Fatalf("empty store: %v, %v", sets, err)
	}
	var want []access.CAKeySet
	for _, c := range [][2]string{{"app", ""}, {"db", "billing"}, {"db", "orders"}, {"ssh", ""}} {
		want = append(want, must[access.CAKeySet](t)(s.PutCAKeys(ctx, caSet(c[0], c[1]))))
	}
	sets, err := s.ListCAKeys(ctx)
	if err != nil || len(sets) != len(want) {
		t.Fatalf("ListCAKeys = %d sets, %v; want %d", len(sets), err, len(want))
	}
	for i, set := range sets {
		if set.Type != want[i].Type || set.Resource != want[i].Resource || set.Revision != want[i].Revision || !bytes.Equal(set.Keys[0].Sealed, []byte{1, 2, 3}) {
			t.Fatalf("set %d = %+v, want %+v", i, set, want[i])
		}
	}
	sets[0].Keys[0].State = access.CAKeyRetiring
	if _, err := s.PutCAKeys(ctx, sets[0]); err != nil {
		t.Fatalf("a listed set does not write back: %v", err)
	}

	resp, err := s.Client().Get(ctx, s.CAKeyPath("db", "orders"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client().Put(ctx, s.CAKeyPath("kube", "prod"), string(resp.Kvs[0].Value)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListCAKeys(ctx); err == nil || !strings.Contains(err.Error(), "ca/kube/prod") || !strings.Contains(err.Error(), "record is for CA keys db/orders") {
		t.Fatalf("a set copied to another key: %v", err)
	}
}
