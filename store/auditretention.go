package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse-dev/gatehouse/access"
)

// keyAuditExportMark holds the undo record of the archive write in
// flight. It lies outside keyAudit, so audit ranges never include it.
const keyAuditExportMark = "auditexport/mark"

// DefaultAuditTrimBatch is how many events TrimAudit reads, archives and
// deletes per round; each round is two reads and a delete of one key range.
const DefaultAuditTrimBatch = 1000

// maxTrimConflicts is how many rounds in a row TrimAudit retries after
// events appeared inside the range it was about to delete.
const maxTrimConflicts = 3

// AuditArchive keeps audit events outside etcd before TrimAudit deletes
// them (daily JSON-lines files in accessd). Events travel as their stored
// JSON, one compact object each, with their time: TrimAudit decodes
// nothing it does not need, and the archive holds what was recorded. The
// three calls make the hand-over exactly-once: TrimAudit stores Prepare's
// undo record in etcd before Append and removes it in the same
// transaction that deletes the events, so a record found later means the
// delete never happened and Rollback must undo the append before the
// events are archived again.
type AuditArchive interface {
	// Prepare returns what Rollback needs to undo an Append of events
	// with these times, e.g. the sizes of the files it will append to.
	Prepare(times []time.Time) (undo string, err error)
	// Append writes events (events[i] happened at times[i]) durably
	// (synced), oldest first. Once it returns nil, they may be deleted
	// from etcd.
	Append(times []time.Time, events []json.RawMessage) error
	// Rollback undoes an Append prepared with undo, complete or torn.
	// An undo record this archive cannot act on (another host wrote it)
	// gives an error wrapping access.ErrNotFound: that batch may then be
	// archived twice, once on each host, but never lost.
	Rollback(undo string) error
}

// auditExportMark is the stored undo record.
type auditExportMark struct {
	Undo    string    `json:"undo"`
	Created time.Time `json:"created"`
}

// auditRange returns the key range [start, end) of events with
// since <= time < until; zero times leave that side open.
func (s *Store) auditRange(since, until time.Time) (start, end string) {
	base := s.key(keyAudit)
	start, end = base, clientv3.GetPrefixRangeEnd(base)
	if !since.IsZero() {
		start = base + auditKeyTime(since)
	}
	if !until.IsZero() {
		end = base + auditKeyTime(until)
	}
	return start, end
}

// ScanAuditJSON calls fn with the stored JSON of every event with since
// <= time < until (zero: open), oldest first, one compact object each,
// reading one page per round trip so memory stays constant however long
// the log is. Pages are not read at one revision: events never change,
// and a scan that outlives etcd's compaction window must not fail; an
// event appended during the scan may or may not be included. An error
// from fn stops the scan and is returned as is.
func (s *Store) ScanAuditJSON(ctx context.Context, since, until time.Time, fn func(event json.RawMessage) error) error {
	start, end := s.auditRange(since, until)
	for start < end {
		resp, err := s.get(ctx, "scan audit", start, clientv3.WithRange(end), clientv3.WithLimit(auditPage))
		if err != nil {
			return err
		}
		for _, kv := range resp.Kvs {
			data, err := auditJSON(kv)
			if err != nil {
				s.log.Warn("skipping undecodable audit event", "key", string(kv.Key), "err", err)
				continue
			}
			if err := fn(data); err != nil {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	return nil
}

// auditJSON unwraps a stored event's JSON from its envelope without
// decoding the event: one line, as json.Marshal wrote it. Values in the
// exact shape encode writes are sliced, not parsed (a JSON scan of the
// envelope was most of a retention pass); anything else is decoded.
func auditJSON(kv *mvccpb.KeyValue) (json.RawMessage, error) {
	if data, ok := envelopeData(kv.Value); ok {
		return data, nil
	}
	var env envelope
	if err := json.Unmarshal(kv.Value, &env); err != nil {
		return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
	}
	if env.Schema < 1 || env.Schema > access.SchemaVersion {
		return nil, fmt.Errorf("decode %s: schema version %d not supported (this release knows %d): %w", kv.Key, env.Schema, access.SchemaVersion, errSchema)
	}
	if len(env.Data) == 0 || env.Data[0] != '{' {
		return nil, fmt.Errorf("decode %s: not a JSON object", kv.Key)
	}
	if bytes.IndexByte(env.Data, '\n') >= 0 {
		// Not written by us (etcdctl?); a line must stay one line.
		var buf bytes.Buffer
		if err := json.Compact(&buf, env.Data); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		env.Data = buf.Bytes()
	}
	return env.Data, nil
}

// envelopeData slices data out of {"schema":N,"data":{...}} as encode
// writes it, for a supported N and a data object on one line.
func envelopeData(v []byte) (json.RawMessage, bool) {
	rest, ok := bytes.CutPrefix(v, []byte(`{"schema":`))
	if !ok {
		return nil, false
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	schema, err := strconv.Atoi(string(rest[:i]))
	if err != nil || schema < 1 || schema > access.SchemaVersion {
		return nil, false
	}
	data, ok := bytes.CutPrefix(rest[i:], []byte(`,"data":`))
	if !ok || len(data) < 3 || data[0] != '{' || data[len(data)-1] != '}' || data[len(data)-2] != '}' {
		return nil, false
	}
	data = data[:len(data)-1]
	if bytes.IndexByte(data, '\n') >= 0 {
		return nil, false
	}
	return data, true
}

// errSchema: a value of a schema version this release cannot read,
// probably written by a newer one.
var errSchema = errors.New("unknown schema version")

// auditTimeOfKey reads an event's time from its key (base + 20 digits of
// Unix nanoseconds + "-" + id).
func auditTimeOfKey(base string, key []byte) (time.Time, error) {
	digits, ok := bytes.CutPrefix(key, []byte(base))
	if !ok || len(digits) < 20 {
		return time.Time{}, fmt.Errorf("audit key %q: no time", key)
	}
	n, err := strconv.ParseInt(string(digits[:20]), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("audit key %q: %w", key, err)
	}
	return time.Unix(0, n).UTC(), nil
}

// DeleteAuditBefore deletes the oldest audit events older than t, at most
// about limit of them (an event appended into the range meanwhile goes
// too: it is just as old), and returns how many it deleted. Callers loop
// until it returns less than limit. It is a keys-only read and one range
// delete, guarded by leadership when ctx comes from RunElected.
func (s *Store) DeleteAuditBefore(ctx context.Context, t time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("delete audit before %s: limit %d: %w", t.Format(time.RFC3339), limit, access.ErrInvalid)
	}
	start, end := s.auditRange(time.Time{}, t)
	resp, err := s.get(ctx, "delete audit: read keys", start, clientv3.WithRange(end), clientv3.WithLimit(int64(limit)), clientv3.WithKeysOnly())
	if err != nil || len(resp.Kvs) == 0 {
		return 0, err
	}
	last := string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	tr, err := s.txn(ctx, "delete audit", nil, []clientv3.Op{clientv3.OpDelete(start, clientv3.WithRange(last))})
	if err != nil {
		return 0, err
	}
	return int(tr.Responses[0].GetResponseDeleteRange().Deleted), nil
}

// TrimResult counts what one TrimAudit did.
type TrimResult struct {
	Archived int // events written to the archive
	Deleted  int // events deleted from etcd (undecodable ones too)
	// Recovered is true when an interrupted earlier round was undone.
	Recovered bool
}

// TrimAudit deletes every audit event older than before, batch events
// per round (DefaultAuditTrimBatch when 0). With an archive, each round's
// events are archived first and only the archived ones are deleted: the
// delete compares the range's mod revisions, so an event appended into
// it after the read stays (and is archived next round). A round cut
// short (crash, lost leadership, etcd down) leaves its undo record; the
// next TrimAudit rolls the archive back first, so no event is lost and
// none is archived twice. Run it under RunElected: two concurrent
// trimmers would archive the same events.
//
// On error the counts cover the rounds that completed.
func (s *Store) TrimAudit(ctx context.Context, before time.Time, batch int, archive AuditArchive) (TrimResult, error) {
	var res TrimResult
	if batch <= 0 {
		batch = DefaultAuditTrimBatch
	}
	recovered, err := s.recoverAuditExport(ctx, archive)
	if err != nil {
		return res, err
	}
	res.Recovered = recovered
	if archive == nil {
		for {
			n, err := s.DeleteAuditBefore(ctx, before, batch)
			res.Deleted += n
			if err != nil || n < batch {
				return res, err
			}
		}
	}
	conflicts := 0
	for {
		archived, deleted, full, err := s.archiveRound(ctx, before, batch, archive)
		switch {
		case errors.Is(err, errRangeChanged) && conflicts < maxTrimConflicts:
			conflicts++
			continue
		case err != nil:
			return res, err
		}
		conflicts = 0
		res.Archived += archived
		res.Deleted += deleted
		if !full {
			return res, nil
		}
	}
}

// errRangeChanged: an event appeared in the range being archived.
var errRangeChanged = fmt.Errorf("audit events were added to the range being archived: %w", access.ErrConflict)

// archiveRound archives and deletes the oldest batch events older than
// before; full reports that there may be more.
func (s *Store) archiveRound(ctx context.Context, before time.Time, batch int, archive AuditArchive) (archived, deleted int, full bool, err error) {
	start, end := s.auditRange(time.Time{}, before)
	resp, err := s.get(ctx, "trim audit: read", start, clientv3.WithRange(end), clientv3.WithLimit(int64(batch)))
	if err != nil || len(resp.Kvs) == 0 {
		return 0, 0, false, err
	}
	base := s.key(keyAudit)
	kvs := resp.Kvs
	times := make([]time.Time, 0, len(kvs))
	events := make([]json.RawMessage, 0, len(kvs))
	for i, kv := range kvs {
		data, err := auditJSON(kv)
		var at time.Time
		if err == nil {
			at, err = auditTimeOfKey(base, kv.Key)
		}
		if errors.Is(err, errSchema) {
			// A newer release wrote it (a rolling upgrade): archive up
			// to it and leave it to a leader that can read it.
			if i == 0 {
				return 0, 0, false, fmt.Errorf("trim audit: waiting for an upgraded leader: %w", err)
			}
			kvs = kvs[:i]
			break
		}
		if err != nil {
			// Nothing can read it back either; keeping it would only
			// hold the quota.
			s.log.Warn("deleting undecodable audit event without archiving it", "key", string(kv.Key), "err", err)
			continue
		}
		times = append(times, at)
		events = append(events, data)
	}
	first, last := string(kvs[0].Key), string(kvs[len(kvs)-1].Key)+"\x00"

	undo, err := archive.Prepare(times)
	if err != nil {
		return 0, 0, false, fmt.Errorf("trim audit: prepare archive: %w", err)
	}
	mark, err := encode(auditExportMark{Undo: undo, Created: time.Now().UTC()})
	if err != nil {
		return 0, 0, false, err
	}
	markKey := s.key(keyAuditExportMark)
	if _, err := s.txn(ctx, "trim audit: record archive write", nil, []clientv3.Op{clientv3.OpPut(markKey, mark)}); err != nil {
		return 0, 0, false, err
	}
	if err := archive.Append(times, events); err != nil {
		// The record stays: the next round rolls the torn append back.
		return 0, 0, false, fmt.Errorf("trim audit: archive %d events: %w", len(events), err)
	}
	// Every key in the range still has the revision we read; a new key
	// would have a later one.
	same := clientv3.Compare(clientv3.ModRevision(first), "<", resp.Header.Revision+1).WithRange(last)
	tr, err := s.txn(ctx, "trim audit: delete archived", []clientv3.Cmp{same},
		[]clientv3.Op{clientv3.OpDelete(first, clientv3.WithRange(last)), clientv3.OpDelete(markKey)})
	if err != nil {
		return 0, 0, false, err
	}
	if !tr.Succeeded {
		if err := s.rollbackAuditExport(ctx, archive, undo); err != nil {
			return 0, 0, false, err
		}
		return 0, 0, false, errRangeChanged
	}
	// A batch cut short by a newer event goes on, to report it.
	more := len(resp.Kvs) == batch || len(kvs) < len(resp.Kvs)
	return len(events), int(tr.Responses[0].GetResponseDeleteRange().Deleted), more, nil
}

// recoverAuditExport rolls back the archive write of a round that never
// reached its delete, and reports whether there was one.
func (s *Store) recoverAuditExport(ctx context.Context, archive AuditArchive) (bool, error) {
	resp, err := s.get(ctx, "trim audit: read archive record", s.key(keyAuditExportMark))
	if err != nil || len(resp.Kvs) == 0 {
		return false, err
	}
	var m auditExportMark
	if err := decode(resp.Kvs[0], &m); err != nil {
		return false, fmt.Errorf("trim audit: %w", err)
	}
	if archive == nil {
		s.log.Warn("dropping the record of an interrupted audit export: no archive is configured any more", "since", m.Created)
	}
	return true, s.rollbackAuditExport(ctx, archive, m.Undo)
}

// rollbackAuditExport undoes one archive write, then removes its record.
func (s *Store) rollbackAuditExport(ctx context.Context, archive AuditArchive, undo string) error {
	if archive != nil {
		err := archive.Rollback(undo)
		switch {
		case errors.Is(err, access.ErrNotFound):
			s.log.Warn("cannot undo an interrupted audit export here; its events are archived again, so that batch may be in two archives", "err", err)
		case err != nil:
			return fmt.Errorf("trim audit: roll back interrupted export: %w", err)
		}
	}
	_, err := s.txn(ctx, "trim audit: clear archive record", nil, []clientv3.Op{clientv3.OpDelete(s.key(keyAuditExportMark))})
	return err
}
