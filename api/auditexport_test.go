package api_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/api"
)

// TestAuditStreamReportsABrokenExport: a server that aborts an export
// after some lines (as accessd does when etcd fails half-way) gives the
// reader those whole lines and then an error, never a clean end; a torn
// last line is not handed out as an event.
func TestAuditStreamReportsABrokenExport(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    string
		abort   bool
		want    string
		wantErr bool
	}{
		{name: "complete", body: "{\"id\":\"a\"}\n{\"id\":\"b\"}\n", want: "a b"},
		{name: "empty", body: "", want: ""},
		{name: "aborted after whole lines", body: "{\"id\":\"a\"}\n", abort: true, want: "a", wantErr: true},
		{name: "aborted inside a line", body: "{\"id\":\"a\"}\n{\"id\":", abort: true, want: "a", wantErr: true},
		{name: "ends inside a line", body: "{\"id\":\"a\"}\n{\"id\":", want: "a", wantErr: true},
	} {
		for _, h2 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/http2=%v", tc.name, h2), func(t *testing.T) {
				srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path != "/v1/audit/export" || r.URL.Query().Get("since") == "" {
						http.Error(w, "unexpected "+r.URL.String(), http.StatusBadRequest)
						return
					}
					w.Header().Set("Content-Type", "application/x-ndjson")
					_, _ = w.Write([]byte(tc.body))
					if tc.abort {
						w.(http.Flusher).Flush()
						panic(http.ErrAbortHandler)
					}
				}))
				srv.EnableHTTP2 = h2
				srv.StartTLS()
				defer srv.Close()
				pool := x509.NewCertPool()
				pool.AddCert(srv.Certificate())
				c, err := api.New(api.Config{Server: srv.URL, RootCAs: pool})
				if err != nil {
					t.Fatal(err)
				}
				s, err := c.ExportAudit(context.Background(), api.AuditExportQuery{Since: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				var ids []string
				for s.Next() {
					ev, err := s.Event()
					if err != nil {
						t.Fatal(err)
					}
					ids = append(ids, ev.ID)
				}
				if got := strings.Join(ids, " "); got != tc.want || (s.Err() != nil) != tc.wantErr {
					t.Fatalf("read %q, err %v; want %q, error %v", got, s.Err(), tc.want, tc.wantErr)
				}
			})
		}
	}
}
