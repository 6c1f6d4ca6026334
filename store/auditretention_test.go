package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

var auditBase = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func atMin(m int) time.Time { return auditBase.Add(time.Duration(m) * time.Minute) }

// appendMinutes appends one event per minute m in [from, to), with id
// "e<m>".
func appendMinutes(t testing.TB, s *store.Store, from, to int) {
	t.Helper()
	var evs []access.AuditEvent
	for m := from; m < to; m++ {
		evs = append(evs, access.AuditEvent{ID: fmt.Sprintf("e%d", m), Time: atMin(m), Type: "user.login", Actor: "alice", Outcome: "success"})
		if len(evs) == 100 {
			noErr(t, s.AppendAudit(ctxT(t), evs...))
			evs = nil
		}
	}
	noErr(t, s.AppendAudit(ctxT(t), evs...))
}

func auditIDs(t testing.TB, s *store.Store) string {
	t.Helper()
	evs := must[[]access.AuditEvent](t)(s.ListAudit(ctxT(t), access.AuditFilter{}))
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	return strings.Join(ids, " ")
}

func idRange(from, to int) string {
	var ids []string
	for m := from; m < to; m++ {
		ids = append(ids, fmt.Sprintf("e%d", m))
	}
	return strings.Join(ids, " ")
}

func exportMarkPresent(t testing.TB, s *store.Store) bool {
	t.Helper()
	resp := must[*clientv3.GetResponse](t)(s.Client().Get(ctxT(t), s.Prefix()+"auditexport/mark", clientv3.WithCountOnly()))
	return resp.Count > 0
}

func TestDeleteAuditBefore(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	appendMinutes(t, s, 0, 25)

	_, err := s.DeleteAuditBefore(ctx, atMin(10), 0)
	wantErr(t, err, access.ErrInvalid, "limit 0")
	if n := must[int](t)(s.DeleteAuditBefore(ctx, atMin(0), 4)); n != 0 {
		t.Fatalf("nothing is older than the first event, deleted %d", n)
	}

	// Batches of 4 under a cutoff at minute 10: 4, 4, 2.
	var batches []int
	for {
		n := must[int](t)(s.DeleteAuditBefore(ctx, atMin(10), 4))
		batches = append(batches, n)
		if n < 4 {
			break
		}
		if got, want := auditIDs(t, s), idRange(4*len(batches), 25); got != want {
			t.Fatalf("after batch %d: %q, want %q", len(batches), got, want)
		}
	}
	if !slices.Equal(batches, []int{4, 4, 2}) {
		t.Fatalf("batches = %v, want [4 4 2]", batches)
	}
	if got, want := auditIDs(t, s), idRange(10, 25); got != want {
		t.Fatalf("left %q, want %q", got, want)
	}
	// An event exactly at the cutoff is not older than it.
	if n := must[int](t)(s.DeleteAuditBefore(ctx, atMin(10), 100)); n != 0 {
		t.Fatalf("deleted %d at the cutoff", n)
	}
}

func TestScanAudit(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	appendMinutes(t, s, 0, 1200) // more than two pages

	var got []string
	noErr(t, s.ScanAuditJSON(ctx, atMin(3), atMin(1103), func(line json.RawMessage) error {
		var e access.AuditEvent
		if err := json.Unmarshal(line, &e); err != nil {
			return err
		}
		got = append(got, e.ID)
		return nil
	}))
	if want := idRange(3, 1103); strings.Join(got, " ") != want {
		t.Fatalf("scanned %d events from %s to %s, want e3..e1102", len(got), got[0], got[len(got)-1])
	}
	stop := errors.New("enough")
	n := 0
	err := s.ScanAuditJSON(ctx, time.Time{}, time.Time{}, func(json.RawMessage) error {
		if n++; n == 700 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 700 {
		t.Fatalf("fn's error: %v after %d events", err, n)
	}
}

// memArchive is an AuditArchive in memory; hooks run inside Append.
type memArchive struct {
	events     []access.AuditEvent
	afterWrite func()          // after the events are "written"
	failWrite  error           // Append fails before writing
	rollbacks  []string        // undo records rolled back
	foreign    bool            // Rollback: "another host wrote it"
	prepared   map[string]bool // undo records handed out
}

func (a *memArchive) Prepare([]time.Time) (string, error) {
	if a.prepared == nil {
		a.prepared = map[string]bool{}
	}
	undo := fmt.Sprint(len(a.events))
	a.prepared[undo] = true
	return undo, nil
}

func (a *memArchive) Append(times []time.Time, lines []json.RawMessage) error {
	if a.failWrite != nil {
		return a.failWrite
	}
	for i, line := range lines {
		var ev access.AuditEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return err
		}
		if !ev.Time.Equal(times[i]) {
			return fmt.Errorf("event %s at %v handed over with time %v", ev.ID, ev.Time, times[i])
		}
		a.events = append(a.events, ev)
	}
	if a.afterWrite != nil {
		a.afterWrite()
	}
	return nil
}

func (a *memArchive) Rollback(undo string) error {
	a.rollbacks = append(a.rollbacks, undo)
	if a.foreign {
		return fmt.Errorf("written on another host: %w", access.ErrNotFound)
	}
	var n int
	if _, err := fmt.Sscan(undo, &n); err != nil || !a.prepared[undo] {
		return fmt.Errorf("undo %q was never prepared", undo)
	}
	a.events = a.events[:min(n, len(a.events))]
	return nil
}

func (a *memArchive) ids() string {
	ids := make([]string, len(a.events))
	for i, e := range a.events {
		ids[i] = e.ID
	}
	return strings.Join(ids, " ")
}

func TestTrimAudit(t *testing.T) {
	for _, tc := range []struct {
		name string
		// arrange changes the archive and returns the context of the
		// first TrimAudit.
		arrange     func(t *testing.T, s *store.Store, a *memArchive) context.Context
		firstErr    string // "" : the first pass succeeds
		afterFirst  string // etcd after the first pass
		wantArchive string // the archive after the second pass
	}{{
		name:        "archives then deletes, in batches",
		arrange:     func(t *testing.T, _ *store.Store, _ *memArchive) context.Context { return ctxT(t) },
		afterFirst:  idRange(10, 25),
		wantArchive: idRange(0, 10),
	}, {
		// The process dies after the archive is written, before etcd
		// deletes: the next pass must neither lose nor repeat a batch.
		name: "crash between archive write and delete",
		arrange: func(t *testing.T, _ *store.Store, a *memArchive) context.Context {
			ctx, cancel := context.WithCancel(ctxT(t))
			writes := 0
			a.afterWrite = func() {
				if writes++; writes == 2 {
					cancel()
				}
			}
			return ctx
		},
		firstErr:    "context canceled",
		afterFirst:  idRange(3, 25), // the first batch went, the second was cut
		wantArchive: idRange(0, 10),
	}, {
		name: "archive write fails",
		arrange: func(t *testing.T, _ *store.Store, a *memArchive) context.Context {
			a.failWrite = errors.New("disk full")
			return ctxT(t)
		},
		firstErr:    "disk full",
		afterFirst:  idRange(0, 25),
		wantArchive: idRange(0, 10),
	}, {
		// Another replica appends an event dated inside the batch
		// being archived (a skewed clock): the delete must not take it
		// unarchived.
		name: "event added into the range being archived",
		arrange: func(t *testing.T, s *store.Store, a *memArchive) context.Context {
			added := false
			a.afterWrite = func() {
				if !added {
					added = true
					noErr(t, s.AppendAudit(ctxT(t), access.AuditEvent{ID: "late", Time: atMin(1).Add(time.Second), Type: "user.login"}))
				}
			}
			return ctxT(t)
		},
		afterFirst:  idRange(10, 25),
		wantArchive: "e0 e1 late e2 e3 e4 e5 e6 e7 e8 e9",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := storetest.Embedded(t)
			appendMinutes(t, s, 0, 25)
			a := &memArchive{}
			ctx := tc.arrange(t, s, a)

			res, err := s.TrimAudit(ctx, atMin(10), 3, a)
			switch {
			case tc.firstErr == "" && err != nil:
				t.Fatal(err)
			case tc.firstErr != "" && (err == nil || !strings.Contains(err.Error(), tc.firstErr)):
				t.Fatalf("first pass: %v, want %q", err, tc.firstErr)
			}
			if got := auditIDs(t, s); got != tc.afterFirst {
				t.Fatalf("etcd after the first pass: %q, want %q", got, tc.afterFirst)
			}
			if tc.firstErr == "" && (res.Archived != 10+strings.Count(tc.wantArchive, "late") || res.Deleted != res.Archived) {
				t.Fatalf("result %+v", res)
			}
			if exportMarkPresent(t, s) != (tc.firstErr != "") {
				t.Fatalf("export record present = %v after first pass err %v", exportMarkPresent(t, s), err)
			}

			a.afterWrite, a.failWrite = nil, nil
			res2 := must[store.TrimResult](t)(s.TrimAudit(ctxT(t), atMin(10), 3, a))
			if res2.Recovered != (tc.firstErr != "") {
				t.Fatalf("second pass recovered = %v", res2.Recovered)
			}
			if got := a.ids(); got != tc.wantArchive {
				t.Fatalf("archive %q, want %q", got, tc.wantArchive)
			}
			if got := auditIDs(t, s); got != idRange(10, 25) {
				t.Fatalf("etcd %q, want e10..e24", got)
			}
			if exportMarkPresent(t, s) {
				t.Fatal("export record left behind")
			}
		})
	}
}

func TestTrimAuditWithoutArchive(t *testing.T) {
	s := storetest.Embedded(t)
	appendMinutes(t, s, 0, 25)
	res := must[store.TrimResult](t)(s.TrimAudit(ctxT(t), atMin(20), 6, nil))
	if res.Deleted != 20 || res.Archived != 0 {
		t.Fatalf("result %+v", res)
	}
	if got := auditIDs(t, s); got != idRange(20, 25) {
		t.Fatalf("etcd %q", got)
	}
}

// TestTrimAuditForeignUndo: the interrupted write was on another host,
// which this archive cannot undo; the batch is archived here again (in
// two archives, never in none).
func TestTrimAuditForeignUndo(t *testing.T) {
	s := storetest.Embedded(t)
	appendMinutes(t, s, 0, 5)
	ctx, cancel := context.WithCancel(ctxT(t))
	other := &memArchive{afterWrite: cancel}
	if _, err := s.TrimAudit(ctx, atMin(10), 10, other); err == nil {
		t.Fatal("cut pass succeeded")
	}
	here := &memArchive{foreign: true}
	res := must[store.TrimResult](t)(s.TrimAudit(ctxT(t), atMin(10), 10, here))
	if !res.Recovered || res.Archived != 5 || len(here.rollbacks) != 1 {
		t.Fatalf("result %+v, rollbacks %v", res, here.rollbacks)
	}
	if here.ids() != idRange(0, 5) || other.ids() != idRange(0, 5) || auditIDs(t, s) != "" {
		t.Fatalf("here %q, other %q, etcd %q", here.ids(), other.ids(), auditIDs(t, s))
	}
}

// TestTrimAuditLeadership: a trim by a replica whose leadership ended
// deletes nothing, even with a context that did not notice yet.
func TestTrimAuditLeadership(t *testing.T) {
	s := storetest.Embedded(t)
	appendMinutes(t, s, 0, 5)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		_ = s.RunElected(ctx, "audit-retention", func(lctx context.Context) {
			l, _ := store.LeaderFrom(lctx)
			// Another replica takes over: the leader key goes.
			if _, err := s.Client().Delete(ctx, l.Key); err != nil {
				done <- err
				return
			}
			_, err := s.TrimAudit(context.WithoutCancel(lctx), atMin(10), 10, &memArchive{})
			done <- err
		})
	}()
	select {
	case err := <-done:
		wantErr(t, err, store.ErrNotLeader, "")
	case <-ctx.Done():
		t.Fatal("timeout")
	}
	cancel()
	<-finished
	if got := auditIDs(t, s); got != idRange(0, 5) {
		t.Fatalf("etcd %q after a trim by a former leader", got)
	}
}

// TestTrimAuditOddValues: values not written by the store (etcdctl,
// another release) are handed over as one line when they are events,
// and deleted with a warning when nothing could read them.
func TestTrimAuditOddValues(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	put := func(m int, id, value string) {
		key := fmt.Sprintf("%saudit/%020d-%s", s.Prefix(), atMin(m).UnixNano(), id)
		must[*clientv3.PutResponse](t)(s.Client().Put(ctx, key, value))
	}
	at := func(m int) string { return atMin(m).Format(time.RFC3339) }
	put(0, "pretty", "{\n  \"schema\": 1,\n  \"data\": {\n    \"id\": \"pretty\",\n    \"time\": \""+at(0)+"\"\n  }\n}")
	put(1, "garbage", "not json")
	put(2, "future", `{"schema":99,"data":{"id":"future","time":"`+at(2)+`"}}`)
	put(3, "plain", `{"schema":1,"data":{"id":"plain","time":"`+at(3)+`","fields":{"x":"}}"}}}`)
	put(4, "kept", `{"schema":1,"data":{"id":"kept","time":"`+at(4)+`"}}`)

	var lines []string
	noErr(t, s.ScanAuditJSON(ctx, time.Time{}, time.Time{}, func(l json.RawMessage) error {
		lines = append(lines, string(l))
		return nil
	}))
	want := []string{`{"id":"pretty","time":"` + at(0) + `"}`, `{"id":"plain","time":"` + at(3) + `","fields":{"x":"}}"}}`, `{"id":"kept","time":"` + at(4) + `"}`}
	if !slices.Equal(lines, want) {
		t.Fatalf("scanned %q, want %q", lines, want)
	}

	// The event of a newer release stops the archive before it: that
	// release will read it.
	a := &memArchive{}
	res, err := s.TrimAudit(ctx, atMin(4), 10, a)
	if a.ids() != "pretty" || res.Archived != 1 || res.Deleted != 2 || !strings.Contains(fmt.Sprint(err), "waiting for an upgraded leader") {
		t.Fatalf("archived %q, result %+v, %v", a.ids(), res, err)
	}
	if got := auditIDs(t, s); got != "plain kept" {
		t.Fatalf("etcd %q", got)
	}
	// Without an archive, expired is expired.
	res = must[store.TrimResult](t)(s.TrimAudit(ctx, atMin(4), 10, nil))
	if res.Deleted != 2 || auditIDs(t, s) != "kept" {
		t.Fatalf("result %+v, etcd %q", res, auditIDs(t, s))
	}
}

// BenchmarkTrimAudit is one retention pass over 10,000 expired events
// (about 600 bytes each), deleted in batches of DefaultAuditTrimBatch;
// the archive discards them, so this is the store's share.
func BenchmarkTrimAudit(b *testing.B) {
	const n = 10_000
	fields := map[string]any{"policy_input": strings.Repeat("x", 400), "decision": "review"}
	for _, withArchive := range []bool{false, true} {
		b.Run(fmt.Sprintf("archive=%v", withArchive), func(b *testing.B) {
			s := storetest.Embedded(b)
			ctx := context.Background()
			for b.Loop() {
				b.StopTimer()
				for i := 0; i < n; i += 100 {
					evs := make([]access.AuditEvent, 100)
					for j := range evs {
						evs[j] = access.AuditEvent{Time: auditBase.Add(time.Duration(i+j) * time.Second), Type: "request.create", Actor: "alice", Outcome: "success", Fields: fields}
					}
					if err := s.AppendAudit(ctx, evs...); err != nil {
						b.Fatal(err)
					}
				}
				var a store.AuditArchive
				if withArchive {
					a = discardArchive{}
				}
				b.StartTimer()
				res, err := s.TrimAudit(ctx, auditBase.Add(24*time.Hour), 0, a)
				if err != nil || res.Deleted != n {
					b.Fatalf("%+v, %v", res, err)
				}
			}
		})
	}
}

// discardArchive takes everything and keeps nothing.
type discardArchive struct{}

func (discardArchive) Prepare([]time.Time) (string, error)         { return "", nil }
func (discardArchive) Append([]time.Time, []json.RawMessage) error { return nil }
func (discardArchive) Rollback(string) error                       { return nil }
