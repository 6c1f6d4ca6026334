package service

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
)

// auditScanner is what the etcd store adds to access.AuditLog: paging
// through a window in constant memory, events as stored
// (store.Store.ScanAuditJSON).
type auditScanner interface {
	ScanAuditJSON(ctx context.Context, since, until time.Time, fn func(event json.RawMessage) error) error
}

// ExportAudit calls fn with the JSON of every audit event with since <=
// time < until (zero: open), oldest first, one compact object each; it
// needs the right of ListAudit (audit:list). Memory stays constant on the
// etcd store, which pages and hands over events as stored, undecoded. The
// export itself is audited first (audit.export): a bulk read of
// everyone's history is worth a line, and a failed audit write refuses
// it. An error from fn stops the export and is returned as is.
func (s *Service) ExportAudit(ctx context.Context, c Caller, since, until time.Time, fn func(event json.RawMessage) error) error {
	if err := require(c, access.RuleAudit, access.VerbList); err != nil {
		return err
	}
	if !since.IsZero() && !until.IsZero() && !since.Before(until) {
		return fmt.Errorf("%w: export audit: since %s is not before until %s", access.ErrInvalid,
			since.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339))
	}
	fields := map[string]any{}
	if !since.IsZero() {
		fields["since"] = since.UTC().Format(time.RFC3339Nano)
	}
	if !until.IsZero() {
		fields["until"] = until.UTC().Format(time.RFC3339Nano)
	}
	if err := s.store.AppendAudit(ctx, s.audit(c, "audit.export", "", OutcomeSuccess, "", fields)); err != nil {
		return fmt.Errorf("audit the export: %w", err)
	}
	if sc, ok := s.store.(auditScanner); ok {
		return sc.ScanAuditJSON(ctx, since, until, fn)
	}
	evs, err := s.store.ListAudit(ctx, access.AuditFilter{Since: since, Until: until})
	if err != nil {
		return err
	}
	for _, ev := range evs {
		b, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("export audit event %s: %w", ev.ID, err)
		}
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

// AuditFiles archives audit events into daily JSON-lines files,
// DIR/audit-YYYY-MM-DD.jsonl by each event's UTC day, one event per line
// as stored, the lines GET /v1/audit/export writes. Files are 0600 in a 0700
// directory, and every append is synced before it returns. It implements
// store.AuditArchive: the undo record holds the size of each file before
// the append, and a rollback truncates back to it.
type AuditFiles struct {
	dir  string
	host string
	log  *slog.Logger
}

// auditFileName matches the files AuditFiles writes, and nothing that
// could leave the directory.
var auditFileName = regexp.MustCompile(`^audit-\d{4}-\d{2}-\d{2}\.jsonl$`)

// tailChunk is how much a torn-tail repair reads back per step.
const tailChunk = 64 << 10

// NewAuditFiles creates dir (0700) when missing and checks that a file can
// be created in it, so a wrong export_dir fails at start.
func NewAuditFiles(dir string, log *slog.Logger) (*AuditFiles, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: audit export directory: empty path", access.ErrInvalid)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("audit export directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("audit export directory: %w", err)
	}
	probe, err := os.CreateTemp(abs, ".probe-*")
	if err != nil {
		return nil, fmt.Errorf("audit export directory %s is not writable: %w", abs, err)
	}
	_ = probe.Close()
	_ = os.Remove(probe.Name())
	host, _ := os.Hostname()
	if log == nil {
		log = slog.Default()
	}
	return &AuditFiles{dir: abs, host: host, log: log}, nil
}

// Dir is the absolute directory the files are written to.
func (a *AuditFiles) Dir() string { return a.dir }

// auditFilesUndo is the undo record: where the files are and how long
// each was before the append.
type auditFilesUndo struct {
	Host  string           `json:"host"`
	Dir   string           `json:"dir"`
	Sizes map[string]int64 `json:"sizes"`
}

// AuditFileName is the archive file of the day of t (UTC).
func AuditFileName(t time.Time) string {
	return "audit-" + t.UTC().Format(time.DateOnly) + ".jsonl"
}

// Prepare records the size of each file events at times will go to. A
// file whose last line is torn (a write cut short that nobody rolled
// back, e.g. on another leader's watch) is first cut back to its last
// whole line.
func (a *AuditFiles) Prepare(times []time.Time) (string, error) {
	u := auditFilesUndo{Host: a.host, Dir: a.dir, Sizes: map[string]int64{}}
	for _, t := range times {
		name := AuditFileName(t)
		if _, ok := u.Sizes[name]; ok {
			continue
		}
		size, err := a.repairTail(filepath.Join(a.dir, name))
		if err != nil {
			return "", err
		}
		u.Sizes[name] = size
	}
	b, err := json.Marshal(u)
	return string(b), err
}

// Append writes each event, a one-line JSON object, to its day's file,
// and syncs each file, and the directory when it created one.
func (a *AuditFiles) Append(times []time.Time, events []json.RawMessage) error {
	if len(times) != len(events) {
		return fmt.Errorf("audit archive: %d times for %d events", len(times), len(events))
	}
	for _, ev := range events {
		if len(ev) == 0 || bytes.IndexByte(ev, '\n') >= 0 {
			return fmt.Errorf("audit archive: an event must be one line of JSON: %.60q", ev)
		}
	}
	created := false
	for i := 0; i < len(events); {
		name := AuditFileName(times[i])
		j := i + 1
		for j < len(events) && AuditFileName(times[j]) == name {
			j++
		}
		isNew, err := a.appendFile(name, events[i:j])
		if err != nil {
			return err
		}
		created = created || isNew
		i = j
	}
	if created {
		return syncDir(a.dir)
	}
	return nil
}

func (a *AuditFiles) appendFile(name string, events []json.RawMessage) (created bool, err error) {
	path := filepath.Join(a.dir, name)
	_, statErr := os.Lstat(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return false, fmt.Errorf("audit archive: %w", err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 64<<10)
	for _, ev := range events {
		_, _ = w.Write(ev)
		_ = w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return false, fmt.Errorf("audit archive %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("audit archive %s: sync: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return false, fmt.Errorf("audit archive %s: %w", name, err)
	}
	return errors.Is(statErr, os.ErrNotExist), nil
}

// Rollback truncates each file back to its size before the append; a
// file the append created is removed. A record from another host or
// directory wraps access.ErrNotFound; so does a file that is now shorter
// than before the append (moved or rotated meanwhile: what is in it is no
// longer ours to cut), after the other files were rolled back.
func (a *AuditFiles) Rollback(undo string) error {
	var u auditFilesUndo
	if err := json.Unmarshal([]byte(undo), &u); err != nil {
		return fmt.Errorf("audit archive: undo record %q: %w", undo, err)
	}
	if u.Host != a.host || u.Dir != a.dir {
		return fmt.Errorf("audit archive: the interrupted export wrote to %s on host %q, not here: %w", u.Dir, u.Host, access.ErrNotFound)
	}
	var shrunk []string
	names := make([]string, 0, len(u.Sizes))
	for name := range u.Sizes {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		size := u.Sizes[name]
		if !auditFileName.MatchString(name) || size < 0 {
			return fmt.Errorf("audit archive: undo record names %q (size %d): %w", name, size, access.ErrInvalid)
		}
		path := filepath.Join(a.dir, name)
		fi, err := os.Lstat(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if size > 0 {
				shrunk = append(shrunk, name)
			}
			continue
		case err != nil:
			return fmt.Errorf("audit archive: %w", err)
		case fi.Size() < size:
			shrunk = append(shrunk, name)
			continue
		case size == 0:
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("audit archive: roll back: %w", err)
			}
			continue
		}
		if err := truncateSync(path, size); err != nil {
			return err
		}
		if fi.Size() > size {
			a.log.Info("rolled back an interrupted audit export", "file", path, "bytes", fi.Size()-size)
		}
	}
	if err := syncDir(a.dir); err != nil {
		return err
	}
	if len(shrunk) > 0 {
		return fmt.Errorf("audit archive: %v shrank since the interrupted export (moved or rotated?); left as they are: %w", shrunk, access.ErrNotFound)
	}
	return nil
}

// repairTail cuts a torn last line off path and returns its size (0 when
// it does not exist).
func (a *AuditFiles) repairTail(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("audit archive: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("audit archive: %w", err)
	}
	size := fi.Size()
	buf := make([]byte, min(size, tailChunk))
	for end := size; end > 0; {
		n := min(end, int64(len(buf)))
		if _, err := f.ReadAt(buf[:n], end-n); err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("audit archive: read %s: %w", path, err)
		}
		if i := lastNewline(buf[:n]); i >= 0 {
			whole := end - n + int64(i) + 1
			if whole == size {
				return size, nil
			}
			a.log.Warn("cutting a torn line off the audit archive", "file", path, "bytes", size-whole)
			return whole, truncateSync(path, whole)
		}
		end -= n
	}
	if size > 0 {
		a.log.Warn("cutting a torn line off the audit archive", "file", path, "bytes", size)
		return 0, truncateSync(path, 0)
	}
	return 0, nil
}

func lastNewline(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			return i
		}
	}
	return -1
}

func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("audit archive: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("audit archive: truncate %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("audit archive: sync %s: %w", path, err)
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("audit archive: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("audit archive: sync %s: %w", dir, err)
	}
	return nil
}
