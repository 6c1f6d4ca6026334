package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gatehouse-dev/gatehouse/service"
	"github.com/gatehouse-dev/gatehouse/store"
)

// AuditConfig is audit: how long audit events (and the policy inputs they
// carry) stay in etcd, and where they go before they are deleted.
type AuditConfig struct {
	// Retention is a Go duration, at least 1h; empty means 2160h (90
	// days). There is no "keep forever" in etcd: set ExportDir to keep
	// everything, in files.
	Retention string `json:"retention"`
	// ExportDir, when set, receives every event before retention deletes
	// it, as DIR/audit-YYYY-MM-DD.jsonl (0600 files, 0700 directory).
	ExportDir string `json:"export_dir"`
}

const (
	defaultAuditRetention = 90 * 24 * time.Hour
	// minAuditRetention refuses retentions that would empty the log
	// under the feet of replay and of auditors (a unit typo: 90m for 90
	// days). The error message of retention() quotes it.
	minAuditRetention = time.Hour
	// auditRetentionInterval is how often the elected replica trims the
	// log; the first pass runs as soon as it is elected.
	auditRetentionInterval = 5 * time.Minute
)

// retention validates audit.retention.
func (a AuditConfig) retention() (time.Duration, error) {
	if a.Retention == "" {
		return defaultAuditRetention, nil
	}
	d, err := time.ParseDuration(a.Retention)
	if err != nil || d < minAuditRetention {
		return 0, fmt.Errorf("audit.retention %q: want a Go duration of at least 1h, e.g. 2160h for 90 days", a.Retention)
	}
	return d, nil
}

// auditRetention trims the audit log of the store it runs on.
type auditRetention struct {
	st      *store.Store
	keep    time.Duration
	archive store.AuditArchive // nil: delete without export
	log     *slog.Logger
	now     func() time.Time
	batch   int
}

// newAuditRetention validates cfg and opens the export directory.
func newAuditRetention(cfg AuditConfig, st *store.Store, log *slog.Logger) (*auditRetention, error) {
	keep, err := cfg.retention()
	if err != nil {
		return nil, err
	}
	r := &auditRetention{st: st, keep: keep, log: log.With("component", "audit-retention"), now: time.Now}
	if cfg.ExportDir != "" {
		files, err := service.NewAuditFiles(cfg.ExportDir, r.log)
		if err != nil {
			return nil, fmt.Errorf("audit.export_dir: %w", err)
		}
		r.archive = files
	}
	return r, nil
}

// startAuditRetention validates cfg and, under the "audit-retention"
// election, trims the audit log now and every auditRetentionInterval.
func startAuditRetention(ctx context.Context, cfg AuditConfig, st *store.Store, log *slog.Logger) error {
	r, err := newAuditRetention(cfg, st, log)
	if err != nil {
		return err
	}
	go r.run(ctx)
	return nil
}

func (r *auditRetention) run(ctx context.Context) {
	err := r.st.RunElected(ctx, "audit-retention", func(ctx context.Context) {
		r.log.Info("leading audit retention", "retention", r.keep, "export_dir", r.exportDir())
		t := time.NewTicker(auditRetentionInterval)
		defer t.Stop()
		for {
			if err := r.pass(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("audit retention pass", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		r.log.Error("audit retention stopped", "err", err)
	}
}

// pass exports (when configured) and deletes every event older than the
// retention, and logs what it did.
func (r *auditRetention) pass(ctx context.Context) error {
	before := r.now().Add(-r.keep)
	start := time.Now()
	res, err := r.st.TrimAudit(ctx, before, r.batch, r.archive)
	if res.Deleted > 0 || res.Recovered || err != nil {
		r.log.Info("audit retention pass", "before", before.UTC().Format(time.RFC3339),
			"exported", res.Archived, "deleted", res.Deleted, "recovered_interrupted_export", res.Recovered,
			"took", time.Since(start).Round(time.Millisecond))
	}
	return err
}

func (r *auditRetention) exportDir() string {
	if f, ok := r.archive.(*service.AuditFiles); ok {
		return f.Dir()
	}
	return ""
}
