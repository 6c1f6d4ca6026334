package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/policies"
)

func TestParseWindow(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "36h": 36 * time.Hour, "1d12h": 36 * time.Hour, "90m": 90 * time.Minute} {
		got, err := parseWindow(in, now)
		if err != nil || now.Sub(got) != want {
			t.Errorf("parseWindow(%q) = %v, %v; want %v back", in, got, err, want)
		}
	}
	if got, err := parseWindow("2026-11-01T00:00:00Z", now); err != nil || !got.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("RFC 3339: %v, %v", got, err)
	}
	for _, bad := range []string{"", "soon", "d", "7x", "-1h", "0d"} {
		if _, err := parseWindow(bad, now); err == nil {
			t.Errorf("parseWindow(%q) accepted", bad)
		}
	}
}

// TestReplayFeedsBackRecordedCalls records a decision that called a ticket
// API, shuts the API down, and replays it through an audit event as the
// server returns it (decoded JSON): the recorded answer is used.
func TestReplayFeedsBackRecordedCalls(t *testing.T) {
	ticketAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"open": false}`))
	}))
	bundle := func(src string) *policies.Engine {
		t.Helper()
		e, err := policies.New(policies.Bundle{Files: map[string][]byte{"p.rego": []byte(src)}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	ticket := `http.send({"method": "GET", "url": "` + ticketAPI.URL + `/t/1"}).body.open`
	recordedBundle := bundle("package gatehouse\n\nmax_ttl contains \"1h\" if " + ticket + "\n")
	candidate := bundle("package gatehouse\n\ndeny contains \"the ticket is closed\" if not " + ticket + "\n")

	in := access.PolicyInput{
		Request: access.PolicyRequest{ID: "r1", User: "alice", Roles: []string{"dba"}, Resources: []access.PolicyResource{}, Reason: "#1", Duration: "1h",
			SuggestedReviewers: []string{}, Annotations: map[string][]string{}},
		User: access.PolicyUser{Name: "alice", Roles: []string{}, Traits: map[string][]string{}},
		Now:  time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC),
	}
	d, err := recordedBundle.Decide(context.Background(), in)
	if err != nil || len(d.NDCache) == 0 {
		t.Fatalf("recorded decision: %+v, %v", d, err)
	}
	ticketAPI.Close()

	// As the server writes the event and the client decodes it.
	fields := map[string]any{"policy_input": in, "decision": "review", "bundle_revision": 0, "nd_cache": d.NDCache}
	raw, _ := json.Marshal(api.AuditEvent{ID: "e1", Type: "request.create", RequestID: "r1", Fields: fields})
	var ev api.AuditEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	reqs := map[string]api.Request{"r1": {ID: "r1", Thresholds: access.DefaultThresholds()}}

	rep := replayAll(context.Background(), candidate, []api.AuditEvent{ev}, reqs)
	if rep.replayed != 1 || len(rep.failures) != 0 || len(rep.changes) != 1 {
		t.Fatalf("replay: %+v", rep)
	}
	if c := rep.changes[0]; c.Recorded.Outcome != "review" || c.Candidate.Outcome != "deny" || c.Candidate.Reasons[0] != "the ticket is closed" {
		t.Fatalf("change: %+v", c)
	}

	// Without the recording, the call is refused rather than made.
	delete(ev.Fields, "nd_cache")
	rep = replayAll(context.Background(), candidate, []api.AuditEvent{ev}, reqs)
	if rep.replayed != 0 || len(rep.failures) != 1 {
		t.Fatalf("replay without a recording: %+v", rep)
	}
}
