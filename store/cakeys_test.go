package store_test

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
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
