package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/internal/testcluster"
	"github.com/gatehouse-dev/gatehouse/service"
)

// TestAuditExportCommand runs `accessctl audit export` in-process against
// a cluster: stdout holds the window's events as JSON lines, and bad
// flags are usage errors naming the flag.
func TestAuditExportCommand(t *testing.T) {
	c := testcluster.Start(t)
	ctx := context.Background()
	now := time.Now().UTC()
	var evs []access.AuditEvent
	for d := range 10 { // one event a day, 0 to 9 days ago
		evs = append(evs, access.AuditEvent{ID: fmt.Sprintf("d%d", d), Time: now.Add(-time.Duration(d)*24*time.Hour - time.Hour), Type: "user.login", Actor: "alice"})
	}
	if err := c.Store.AppendAudit(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	id, err := c.Svc.MintIdentity(ctx, c.URL, service.AdminUser, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(id)
	idFile := filepath.Join(t.TempDir(), "admin.identity")
	if err := os.WriteFile(idFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		cmd := auditCmd(&globals{identity: idFile, format: "text"})
		cmd.SetArgs(append([]string{"export"}, args...))
		cmd.SetOut(&out)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		err := cmd.Execute()
		return out.String(), err
	}

	out, err := run("--since", "7d", "--until", "2d")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var ev access.AuditEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		ids = append(ids, ev.ID)
	}
	// 7d back to 2d back: the events of 6 to 2 days ago (each an hour
	// older than its whole day).
	if got := strings.Join(ids, " "); got != "d6 d5 d4 d3 d2" {
		t.Fatalf("exported %q", got)
	}
	for _, tc := range []struct{ args []string }{
		{[]string{"--since", "soon"}},
		{[]string{"--until", "-1h"}},
		{[]string{"--since", "1d", "--until", "2d"}},
	} {
		if _, err := run(tc.args...); err == nil || !strings.Contains(err.Error(), "--") {
			t.Errorf("%v: %v, want a usage error naming the flag", tc.args, err)
		}
	}
}
