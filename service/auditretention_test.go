package service_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/service"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newAuditFiles(t *testing.T) (*service.AuditFiles, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "export", "audit")
	a, err := service.NewAuditFiles(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	return a, dir
}

func auditEvent(id string, at time.Time) access.AuditEvent {
	return access.AuditEvent{ID: id, Time: at, Type: "request.create", Actor: "alice", Outcome: "success",
		Fields: map[string]any{"reason": "<ticket> & more"}}
}

// split hands events over as store.TrimAudit does: times and JSON.
func split(t *testing.T, evs []access.AuditEvent) ([]time.Time, []json.RawMessage) {
	t.Helper()
	times := make([]time.Time, len(evs))
	lines := make([]json.RawMessage, len(evs))
	for i, ev := range evs {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		times[i], lines[i] = ev.Time, b
	}
	return times, lines
}

// prepareAppend archives evs as one TrimAudit round does.
func prepareAppend(t *testing.T, a *service.AuditFiles, evs ...access.AuditEvent) string {
	t.Helper()
	times, lines := split(t, evs)
	undo, err := a.Prepare(times)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Append(times, lines); err != nil {
		t.Fatal(err)
	}
	return undo
}

// fileIDs reads the event ids of one archive file ("" when absent).
func fileIDs(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev access.AuditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("%s: line %q: %v", path, sc.Text(), err)
		}
		ids = append(ids, ev.ID)
	}
	return strings.Join(ids, " ")
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestAuditFilesAppendByDayAndRollBack(t *testing.T) {
	a, dir := newAuditFiles(t)
	day1 := time.Date(2026, 3, 1, 23, 59, 59, 0, time.UTC)
	day2 := day1.Add(time.Second) // midnight: the next file
	// An event's day is its UTC day, whatever zone its time is in.
	day2East := day2.Add(time.Hour).In(time.FixedZone("east", -3*3600)) // 2026-03-01 22:00 local

	undo := prepareAppend(t, a, auditEvent("a1", day1.Add(-time.Hour)), auditEvent("a2", day1), auditEvent("b1", day2), auditEvent("b2", day2East))
	f1, f2 := filepath.Join(dir, "audit-2026-03-01.jsonl"), filepath.Join(dir, "audit-2026-03-02.jsonl")
	if got1, got2 := fileIDs(t, f1), fileIDs(t, f2); got1 != "a1 a2" || got2 != "b1 b2" {
		t.Fatalf("files hold %q and %q", got1, got2)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("directory mode %v, want 0700", m)
	}
	if m := mode(t, f1); m != 0o600 {
		t.Errorf("file mode %v, want 0600", m)
	}
	if !strings.Contains(undo, "audit-2026-03-01.jsonl") {
		t.Errorf("undo record %s does not name the file", undo)
	}

	// A second append to day 2 and a new day 3, rolled back: day 2 is
	// as before and day 3 is gone.
	f3 := filepath.Join(dir, "audit-2026-03-03.jsonl")
	undo2 := prepareAppend(t, a, auditEvent("b3", day2.Add(time.Hour)), auditEvent("c1", day2.Add(24*time.Hour)))
	if got := fileIDs(t, f2) + " / " + fileIDs(t, f3); got != "b1 b2 b3 / c1" {
		t.Fatalf("before rollback: %q", got)
	}
	if err := a.Rollback(undo2); err != nil {
		t.Fatal(err)
	}
	if got := fileIDs(t, f1) + " / " + fileIDs(t, f2); got != "a1 a2 / b1 b2" {
		t.Fatalf("after rollback: %q", got)
	}
	if _, err := os.Stat(f3); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("day 3 file after rollback: %v", err)
	}
	// Rolling back twice changes nothing more.
	if err := a.Rollback(undo2); err != nil || fileIDs(t, f2) != "b1 b2" {
		t.Fatalf("second rollback: %v, %q", err, fileIDs(t, f2))
	}
	// An event must be one line, or the files stop being JSON lines.
	if err := a.Append([]time.Time{day2}, []json.RawMessage{json.RawMessage("{\n}")}); err == nil || fileIDs(t, f2) != "b1 b2" {
		t.Fatalf("multi-line event: %v, %q", err, fileIDs(t, f2))
	}
}

func TestAuditFilesCutTornLine(t *testing.T) {
	day := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	whole := `{"id":"w1"}` + "\n"
	for _, tc := range []struct {
		name, content, want string
	}{
		{"whole lines stay", whole, whole},
		{"torn last line", whole + `{"id":"to`, whole},
		{"only a torn line", `{"id":"to`, ""},
		{"torn line longer than a read-back chunk", whole + strings.Repeat("x", 200<<10), whole},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, dir := newAuditFiles(t)
			path := filepath.Join(dir, service.AuditFileName(day))
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			undo, err := a.Prepare([]time.Time{day})
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(path); string(b) != tc.want {
				t.Fatalf("file %.40q, want %q", b, tc.want)
			}
			if want := fmt.Sprintf(`"%s":%d`, service.AuditFileName(day), len(tc.want)); !strings.Contains(undo, want) {
				t.Fatalf("undo %s, want %s", undo, want)
			}
		})
	}
}

func TestAuditFilesRollbackLeavesWhatIsNotItsOwn(t *testing.T) {
	a, dir := newAuditFiles(t)
	day := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	path := filepath.Join(dir, service.AuditFileName(day))

	if err := a.Rollback(`{"host":"elsewhere","dir":"` + dir + `","sizes":{}}`); !errors.Is(err, access.ErrNotFound) {
		t.Fatalf("another host's record: %v", err)
	}
	if err := a.Rollback(`{"host":"","dir":"/x","sizes":{"../../etc/passwd":0}}`); !errors.Is(err, access.ErrNotFound) {
		t.Fatalf("another directory's record: %v", err)
	}

	prepareAppend(t, a, auditEvent("x1", day))
	undo := prepareAppend(t, a, auditEvent("x2", day))
	// The operator moved the file away and a new one was started.
	if err := os.WriteFile(path, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Rollback(undo); !errors.Is(err, access.ErrNotFound) {
		t.Fatalf("rollback of a rotated file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "{}\n" {
		t.Fatalf("rotated file changed: %q", b)
	}
}

// crashingFiles is AuditFiles whose process "dies" (ctx cancelled) right
// after its crashAt-th append is on disk, before etcd deletes the batch.
type crashingFiles struct {
	*service.AuditFiles
	crashAt, appends int
	crash            func()
}

func (c *crashingFiles) Append(times []time.Time, lines []json.RawMessage) error {
	err := c.AuditFiles.Append(times, lines)
	if c.appends++; c.appends == c.crashAt {
		c.crash()
	}
	return err
}

// TestAuditRetentionToFilesSurvivesCrash runs retention with an export
// directory over three days of events, cut between writing a batch and
// deleting it: after the next pass every expired event is in its day's
// file exactly once and gone from etcd; the others are untouched.
func TestAuditRetentionToFilesSurvivesCrash(t *testing.T) {
	st := storetest.Embedded(t)
	ctx := context.Background()
	start := time.Date(2026, 3, 1, 20, 0, 0, 0, time.UTC)
	var all []access.AuditEvent
	for i := range 30 { // every 4h: days 1 to 6
		all = append(all, auditEvent(fmt.Sprintf("e%02d", i), start.Add(time.Duration(i)*4*time.Hour)))
	}
	if err := st.AppendAudit(ctx, all...); err != nil {
		t.Fatal(err)
	}
	cutoff := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC) // days 1, 2, 3 go
	files, dir := newAuditFiles(t)

	cctx, crash := context.WithCancel(ctx)
	defer crash()
	_, err := st.TrimAudit(cctx, cutoff, 4, &crashingFiles{AuditFiles: files, crashAt: 2, crash: crash})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cut pass: %v", err)
	}
	res, err := st.TrimAudit(ctx, cutoff, 4, files)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Recovered || res.Deleted != 13-4 || res.Archived != res.Deleted {
		t.Fatalf("second pass: %+v", res)
	}

	want := map[string]string{}
	var kept []string
	for _, ev := range all {
		if ev.Time.Before(cutoff) {
			name := service.AuditFileName(ev.Time)
			want[name] = strings.TrimSpace(want[name] + " " + ev.ID)
		} else {
			kept = append(kept, ev.ID)
		}
	}
	if len(want) != 3 {
		t.Fatalf("test data spans %d days before the cutoff, want 3", len(want))
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(want) {
		t.Fatalf("export dir holds %d entries, want %d", len(entries), len(want))
	}
	for name, ids := range want {
		if got := fileIDs(t, filepath.Join(dir, name)); got != ids {
			t.Errorf("%s holds %q, want %q", name, got, ids)
		}
	}
	left, err := st.ListAudit(ctx, access.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var leftIDs []string
	for _, ev := range left {
		leftIDs = append(leftIDs, ev.ID)
	}
	if strings.Join(leftIDs, " ") != strings.Join(kept, " ") {
		t.Fatalf("etcd keeps %v, want %v", leftIDs, kept)
	}
}

var _ store.AuditArchive = (*service.AuditFiles)(nil)

func TestExportAudit(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	at := func(h int) time.Time { return time.Date(2026, 3, 1, h, 0, 0, 0, time.UTC) }
	var evs []access.AuditEvent
	for h := range 6 {
		evs = append(evs, auditEvent(fmt.Sprintf("h%d", h), at(h)))
	}
	if err := f.st.AppendAudit(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	export := func(c service.Caller, since, until time.Time) (string, error) {
		var ids []string
		err := f.svc.ExportAudit(ctx, c, since, until, func(line json.RawMessage) error {
			var ev access.AuditEvent
			if err := json.Unmarshal(line, &ev); err != nil {
				return err
			}
			ids = append(ids, ev.ID)
			return nil
		})
		return strings.Join(ids, " "), err
	}

	alice := f.user(t, "alice", "requester")
	if _, err := export(alice, time.Time{}, time.Time{}); !errors.Is(err, access.ErrForbidden) {
		t.Fatalf("alice exports: %v", err)
	}
	if _, err := export(f.admin, at(3), at(3)); !errors.Is(err, access.ErrInvalid) {
		t.Fatalf("empty window: %v", err)
	}
	if got, err := export(f.admin, at(1), at(4)); err != nil || got != "h1 h2 h3" {
		t.Fatalf("window [1h, 4h) = %q, %v", got, err)
	}
	// Refusals are not audited; the export is, with its window.
	exports, err := f.st.ListAudit(ctx, access.AuditFilter{Type: "audit.export"})
	if err != nil || len(exports) != 1 || exports[0].Actor != "admin" || exports[0].Fields["since"] != at(1).Format(time.RFC3339Nano) {
		t.Fatalf("audit.export events %+v, %v", exports, err)
	}
	stop := errors.New("reader gone")
	if err := f.svc.ExportAudit(ctx, f.admin, time.Time{}, at(5), func(json.RawMessage) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("fn's error: %v", err)
	}
}

// BenchmarkAuditRetentionToFiles is one retention pass with an export
// directory over 10,000 expired events (about 600 bytes each, spread over
// 3 days): read from etcd, appended and fsynced to the daily files,
// deleted, in batches of store.DefaultAuditTrimBatch.
func BenchmarkAuditRetentionToFiles(b *testing.B) {
	const n = 10_000
	st := storetest.Embedded(b)
	ctx := context.Background()
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	fields := map[string]any{"policy_input": strings.Repeat("x", 400), "decision": "review"}
	for b.Loop() {
		b.StopTimer()
		for i := 0; i < n; i += 100 {
			evs := make([]access.AuditEvent, 100)
			for j := range evs {
				evs[j] = access.AuditEvent{Time: start.Add(time.Duration(i+j) * 25 * time.Second), Type: "request.create", Actor: "alice", Outcome: "success", Fields: fields}
			}
			if err := st.AppendAudit(ctx, evs...); err != nil {
				b.Fatal(err)
			}
		}
		files, err := service.NewAuditFiles(b.TempDir(), quiet)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		res, err := st.TrimAudit(ctx, start.Add(30*24*time.Hour), 0, files)
		if err != nil || res.Archived != n {
			b.Fatalf("%+v, %v", res, err)
		}
	}
}
