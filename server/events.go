package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/service"
)

// handleEvents streams request changes as Server-Sent Events. Each event's
// id is its etcd revision, so a client resumes with ?since=REV or the
// Last-Event-ID header; after a compaction the stream sends a "reset"
// event with the current visible requests.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request, c service.Caller) {
	since := r.URL.Query().Get("since")
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		since = last
	}
	var from int64
	if since != "" {
		var err error
		if from, err = strconv.ParseInt(since, 10, 64); err != nil || from < 0 {
			writeError(w, fmt.Errorf("%w: since %q: want an etcd revision", access.ErrInvalid, since))
			return
		}
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()

	events := s.svc.WatchRequests(r.Context(), c, from)
	tick := time.NewTicker(heartbeatInterval)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			_ = rc.Flush()
		case ev, ok := <-events:
			if !ok {
				return
			}
			out := api.Event{Revision: ev.Revision}
			if ev.Type == access.EventReset {
				out.Type = "reset"
				out.Snapshot = ev.Snapshot
			} else {
				out.Type = "request"
				req := ev.Request
				out.Request = &req
			}
			b, err := json.Marshal(out)
			if err != nil {
				return
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Revision, out.Type, b); err != nil {
				return
			}
			_ = rc.Flush()
		}
	}
}
