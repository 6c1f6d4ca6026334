package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

func TestAuditConfig(t *testing.T) {
	for _, tc := range []struct {
		yaml    string
		want    time.Duration
		wantErr string
	}{
		{yaml: "", want: 90 * 24 * time.Hour},
		{yaml: "audit:\n  retention: 720h\n  export_dir: /var/lib/gatehouse-audit\n", want: 720 * time.Hour},
		{yaml: "audit:\n  retention: \"\"\n", want: 90 * 24 * time.Hour},
		{yaml: "audit:\n  retention: 90d\n", wantErr: `audit.retention "90d"`},
		{yaml: "audit:\n  retention: 10m\n", wantErr: `audit.retention "10m"`},
		{yaml: "audit:\n  retention: \"0\"\n", wantErr: `audit.retention "0"`},
		{yaml: "audit:\n  retention: -1h\n", wantErr: `audit.retention "-1h"`},
		{yaml: "audit:\n  retension: 1h\n", wantErr: "retension"},
	} {
		path := filepath.Join(t.TempDir(), "accessd.yaml")
		if err := os.WriteFile(path, []byte("listen: 127.0.0.1:0\n"+tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfig(path)
		var keep time.Duration
		if err == nil {
			keep, err = cfg.Audit.retention()
		}
		switch {
		case tc.wantErr == "" && (err != nil || keep != tc.want):
			t.Errorf("%q: %v, %v; want %v", tc.yaml, keep, err, tc.want)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%q: %v; want an error naming %s", tc.yaml, err, tc.wantErr)
		}
	}
	// The example configuration shows the defaults.
	if cfg, err := loadConfig("../../deploy/accessd.yaml"); err != nil || cfg.Audit.Retention != "2160h" || cfg.Audit.ExportDir != "" {
		t.Errorf("deploy/accessd.yaml: audit %+v, %v", cfg.Audit, err)
	}
	if _, err := newAuditRetention(AuditConfig{ExportDir: "/proc/no-such-dir/audit"}, nil, slog.Default()); err == nil || !strings.Contains(err.Error(), "audit.export_dir") {
		t.Errorf("unwritable export_dir: %v", err)
	}
}

// TestAuditRetentionPass: one pass with an export directory moves the
// events past the retention into their day's file and out of etcd, logs
// the counts, and a second pass finds nothing to do.
func TestAuditRetentionPass(t *testing.T) {
	st := storetest.Embedded(t)
	ctx := context.Background()
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	var evs []access.AuditEvent
	for h := range 72 { // the three days before now, hourly
		evs = append(evs, access.AuditEvent{ID: fmt.Sprintf("h%02d", h), Time: now.Add(-time.Duration(72-h) * time.Hour), Type: "user.login", Actor: "alice"})
	}
	if err := st.AppendAudit(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "audit")
	var logs bytes.Buffer
	r, err := newAuditRetention(AuditConfig{Retention: "36h", ExportDir: dir}, st, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	r.now, r.batch = func() time.Time { return now }, 10

	if err := r.pass(ctx); err != nil {
		t.Fatal(err)
	}
	// Older than now-36h = 2026-06-09T00:00: h00 (06-07 12:00) .. h35 (06-08 23:00).
	files := map[string][]string{}
	for _, name := range []string{"audit-2026-06-07.jsonl", "audit-2026-06-08.jsonl", "audit-2026-06-09.jsonl"} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var ev access.AuditEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatal(err)
			}
			files[name] = append(files[name], ev.ID)
		}
		f.Close()
	}
	if got := fmt.Sprint(len(files["audit-2026-06-07.jsonl"]), len(files["audit-2026-06-08.jsonl"]), len(files["audit-2026-06-09.jsonl"])); got != "12 24 0" {
		t.Fatalf("events per day file (7th, 8th, 9th): %s", got)
	}
	left, err := st.ListAudit(ctx, access.AuditFilter{})
	if err != nil || len(left) != 36 || left[0].ID != "h36" {
		t.Fatalf("etcd keeps %d events from %v, %v", len(left), left[0].ID, err)
	}
	if !strings.Contains(logs.String(), "exported=36 deleted=36") {
		t.Fatalf("log: %s", logs.String())
	}

	logs.Reset()
	if err := r.pass(ctx); err != nil {
		t.Fatal(err)
	}
	if logs.Len() != 0 {
		t.Fatalf("an idle pass logged: %s", logs.String())
	}
}
