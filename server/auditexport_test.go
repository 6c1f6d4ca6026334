package server_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/internal/testcluster"
)

// TestAuditExportStreamsTheWindow: an admin's export holds exactly the
// events of the window, oldest first, as JSON lines; a user without
// audit:list and a malformed window are refused with ordinary errors.
func TestAuditExportStreamsTheWindow(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	at := func(m int) time.Time { return time.Date(2026, 3, 1, 12, m, 0, 0, time.UTC) }
	var evs []access.AuditEvent
	for m := range 700 { // more than one etcd page
		evs = append(evs, access.AuditEvent{ID: fmt.Sprintf("m%03d", m), Time: at(m), Type: "user.login", Actor: "alice", Outcome: "success"})
		if len(evs) == 100 {
			if err := c.Store.AppendAudit(ctx, evs...); err != nil {
				t.Fatal(err)
			}
			evs = nil
		}
	}
	export := func(cl *api.Client, q api.AuditExportQuery) ([]string, error) {
		s, err := cl.ExportAudit(ctx, q)
		if err != nil {
			return nil, err
		}
		defer s.Close()
		var ids []string
		for s.Next() {
			ev, err := s.Event()
			if err != nil {
				return ids, err
			}
			if !strings.HasPrefix(string(s.Line()), "{") {
				return ids, fmt.Errorf("line %q", s.Line())
			}
			ids = append(ids, ev.ID)
		}
		return ids, s.Err()
	}

	ids, err := export(c.Admin, api.AuditExportQuery{Since: at(5), Until: at(605)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 600 || ids[0] != "m005" || ids[599] != "m604" {
		t.Fatalf("exported %d events, %v ... %v", len(ids), ids[:min(3, len(ids))], ids[max(0, len(ids)-3):])
	}
	ids, err = export(c.Admin, api.AuditExportQuery{Since: at(700)})
	if err != nil || len(ids) == 0 || slicesContainsPrefix(ids, "m") {
		// Bootstrap events and the first export's own audit.export only.
		t.Fatalf("open-ended export after the test data: %v, %v", ids, err)
	}

	alice, _ := c.Demo() // alice, a requester
	_, err = export(alice, api.AuditExportQuery{})
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden {
		t.Fatalf("alice's export: %v", err)
	}
	_, err = export(c.Admin, api.AuditExportQuery{Since: at(10), Until: at(5)})
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || !strings.Contains(apiErr.Message, "not before") {
		t.Fatalf("reversed window: %v", err)
	}
	// The typed client always sends RFC 3339; curl may send anything.
	id, err := c.Svc.MintIdentity(ctx, c.URL, "admin", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair([]byte(id.CertPEM), []byte(id.KeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.Pool, Certificates: []tls.Certificate{cert}}}}
	resp, err := hc.Get(c.URL + "/v1/audit/export?until=yesterday")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `until \"yesterday\"`) {
		t.Fatalf("bad until: %s %s", resp.Status, body)
	}
	// A duration back from now works as since.
	resp, err = hc.Get(c.URL + "/v1/audit/export?since=1h")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" || strings.Count(string(body), `"type":"audit.export"`) != 3 {
		// The two exports above and this one; refusals are not audited.
		t.Fatalf("since=1h: %s %s %q", resp.Status, resp.Header.Get("Content-Type"), body)
	}
}

func slicesContainsPrefix(ids []string, prefix string) bool {
	for _, id := range ids {
		if strings.HasPrefix(id, prefix) {
			return true
		}
	}
	return false
}

// BenchmarkAuditExport streams 10,000 events (about 600 bytes each)
// through GET /v1/audit/export over mTLS, read line by line by the client.
func BenchmarkAuditExport(b *testing.B) {
	c := testcluster.Start(b)
	ctx := context.Background()
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	fields := map[string]any{"policy_input": strings.Repeat("x", 400), "decision": "review"}
	for i := 0; i < 10_000; i += 100 {
		evs := make([]access.AuditEvent, 100)
		for j := range evs {
			evs[j] = access.AuditEvent{Time: start.Add(time.Duration(i+j) * time.Second), Type: "request.create", Actor: "alice", Outcome: "success", Fields: fields}
		}
		if err := c.Store.AppendAudit(ctx, evs...); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		s, err := c.Admin.ExportAudit(ctx, api.AuditExportQuery{Since: start, Until: start.Add(24 * time.Hour)})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for s.Next() {
			n++
		}
		s.Close()
		if s.Err() != nil || n != 10_000 {
			b.Fatalf("%d events, %v", n, s.Err())
		}
	}
}
