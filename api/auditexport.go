package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// maxAuditLine bounds one exported event (policy inputs included).
const maxAuditLine = 16 << 20

// AuditExportQuery bounds GET /v1/audit/export: Since inclusive, Until
// exclusive; a zero time leaves that side open.
type AuditExportQuery struct {
	Since time.Time
	Until time.Time
}

// AuditStream reads an audit export one event at a time, in constant
// memory, like bufio.Scanner:
//
//	s, err := c.ExportAudit(ctx, q)
//	if err != nil { ... }
//	defer s.Close()
//	for s.Next() { use(s.Line()) }
//	if err := s.Err(); err != nil { ... } // the export is incomplete
type AuditStream struct {
	body io.ReadCloser
	sc   *bufio.Scanner
	err  error
}

// ExportAudit opens GET /v1/audit/export: every event of the window as
// JSON lines, oldest first (needs audit:list). It has no overall timeout
// (an export may be long); ctx ends it. Refusals are returned here as
// *Error; a stream broken later is reported by AuditStream.Err.
func (c *Client) ExportAudit(ctx context.Context, q AuditExportQuery) (*AuditStream, error) {
	v := url.Values{}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	u := c.base + "/v1/audit/export"
	if len(v) > 0 {
		u += "?" + v.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/x-ndjson")
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	resp, err := c.stream.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /v1/audit/export: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		if err := decodeResponse(resp, nil); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("GET /v1/audit/export: unexpected %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxAuditLine)
	sc.Split(wholeLines)
	return &AuditStream{body: resp.Body, sc: sc}, nil
}

// errTornLine: the stream ended inside a line.
var errTornLine = errors.New("audit export ended in the middle of an event")

// wholeLines is bufio.ScanLines without its last, unterminated token: a
// line cut by a broken connection is an error, not an event.
func wholeLines(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return 0, nil, errTornLine
	}
	return 0, nil, nil
}

// Next advances to the next event; false at the end or on error (Err).
func (s *AuditStream) Next() bool {
	if s.err != nil {
		return false
	}
	for s.sc.Scan() {
		if len(s.sc.Bytes()) > 0 {
			return true
		}
	}
	s.err = s.sc.Err()
	if s.err != nil {
		s.err = fmt.Errorf("audit export: %w", s.err)
	}
	return false
}

// Line is the current event's JSON, without the newline; valid until the
// next call of Next.
func (s *AuditStream) Line() []byte { return s.sc.Bytes() }

// Event decodes the current event.
func (s *AuditStream) Event() (AuditEvent, error) {
	var ev AuditEvent
	if err := json.Unmarshal(s.sc.Bytes(), &ev); err != nil {
		return ev, fmt.Errorf("audit export: decode event: %w", err)
	}
	return ev, nil
}

// Err is why Next returned false: nil when the export is complete.
func (s *AuditStream) Err() error { return s.err }

// Close releases the connection; call it whether or not the stream was
// read to the end.
func (s *AuditStream) Close() error { return s.body.Close() }
