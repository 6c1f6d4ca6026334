package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/service"
)

// exportBufferBytes is how much of an audit export is buffered before it
// goes out; a page of etcd reads is about this size.
const exportBufferBytes = 64 << 10

// handleAuditExport streams GET /v1/audit/export?since=&until= as JSON
// lines (application/x-ndjson), one event per line, oldest first; since
// is inclusive, until exclusive, each an RFC 3339 time or a duration back
// from now. Refusals (rights, bad window) are ordinary JSON errors. Once
// the first line is out the status is sent, so an error later aborts the
// connection instead: the client sees a broken stream, never a short
// export that looks complete.
func (s *Server) handleAuditExport(w http.ResponseWriter, r *http.Request, c service.Caller) {
	now := time.Now()
	q := r.URL.Query()
	var since, until time.Time
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &since}, {"until", &until}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		t, err := parseExportTime(p.name, v, now)
		if err != nil {
			writeError(w, err)
			return
		}
		*p.dst = t
	}

	bw := bufio.NewWriterSize(w, exportBufferBytes)
	started := false
	n := 0
	err := s.svc.ExportAudit(r.Context(), c, since, until, func(ev json.RawMessage) error {
		if !started {
			startExport(w)
			started = true
		}
		n++
		_, _ = bw.Write(ev)
		return bw.WriteByte('\n')
	})
	if err == nil {
		if !started {
			startExport(w)
		}
		err = bw.Flush()
	}
	if err == nil {
		return
	}
	if !started {
		writeError(w, err)
		return
	}
	if r.Context().Err() != nil {
		s.log.Info("audit export ended: the client went away", "user", c.Name(), "events_sent", n)
	} else {
		s.log.Warn("audit export aborted", "user", c.Name(), "events_sent", n, "err", err)
	}
	panic(http.ErrAbortHandler)
}

func startExport(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
}

// parseExportTime accepts RFC 3339 or a duration back from now ("24h").
func parseExportTime(name, v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%w: %s %q: want RFC 3339 time or a duration such as 24h", access.ErrInvalid, name, v)
}
