package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/integrations/pagerduty"
	"github.com/gatehouse-dev/gatehouse/metrics"
	"github.com/gatehouse-dev/gatehouse/outbox"
	"github.com/gatehouse-dev/gatehouse/policies"
	"github.com/gatehouse-dev/gatehouse/service"
	"github.com/gatehouse-dev/gatehouse/store"
)

// openPagerDuty returns the PagerDuty directory, or nil when the
// pagerduty section is absent.
func openPagerDuty(cfg Config) (*pagerduty.Directory, error) {
	if cfg.PagerDuty == nil {
		return nil, nil
	}
	key, err := cfg.PagerDuty.apiKey()
	if err != nil {
		return nil, err
	}
	pcfg := pagerduty.Config{APIKey: key, APIURL: cfg.PagerDuty.APIURL, FromEmail: cfg.PagerDuty.FromEmail}
	if cfg.PagerDuty.CacheTTL != "" {
		if pcfg.CacheTTL, err = time.ParseDuration(cfg.PagerDuty.CacheTTL); err != nil {
			return nil, fmt.Errorf("pagerduty.cache_ttl %q: %w", cfg.PagerDuty.CacheTTL, err)
		}
	}
	dir, err := pagerduty.New(pcfg)
	if err != nil {
		return nil, fmt.Errorf("pagerduty: %w", err)
	}
	return dir, nil
}

// openPolicy builds the engine with the bundle in etcd (or the built-in
// default when none was pushed) and keeps it in step with etcd.
func openPolicy(ctx context.Context, cfg Config, st *store.Store, pd *pagerduty.Directory, log *slog.Logger) (*policies.Live, error) {
	timeout, err := time.ParseDuration(cfg.Policies.Timeout)
	if err != nil || timeout <= 0 {
		return nil, fmt.Errorf("policies.timeout %q: want a positive duration", cfg.Policies.Timeout)
	}
	opts := []policies.Option{policies.WithTimeout(timeout)}
	if pd != nil {
		opts = append(opts, policies.WithOnCall(pd))
	}
	engine, err := policies.New(policies.Default(), opts...)
	if err != nil {
		return nil, fmt.Errorf("built-in policy bundle: %w", err)
	}
	return policies.Follow(ctx, st, engine, log)
}

// deliverPagerDuty runs the PagerDuty outbox worker while this replica
// holds its election: the incidents the policy's notify asked for.
func deliverPagerDuty(ctx context.Context, st *store.Store, pd *pagerduty.Directory, m *metrics.Metrics, log *slog.Logger) {
	w := &outbox.Worker{Store: st, Platform: access.PlatformPagerDuty, Log: log, Metrics: m,
		Deliver: func(ctx context.Context, m access.OutboxMessage) error {
			_, err := pd.CreateIncident(ctx, m.Target, m.Title, m.Body, m.ID)
			return err
		}}
	if err := st.RunElected(ctx, "outbox-pagerduty", w.Run); err != nil && ctx.Err() == nil {
		log.Error("pagerduty outbox worker stopped", "err", err)
	}
}

// policyDirPoll is how often the policies.dir watcher looks for changes; a
// valid change is in force well within 2 seconds.
const policyDirPoll = 500 * time.Millisecond

// watchPolicyDir pushes every valid change of dir as the bundle in force.
// Only the elected leader runs it, so replicas sharing a directory do not
// push the same change several times; a change that does not compile is
// logged with file:line:col and the bundle in force stays.
func watchPolicyDir(ctx context.Context, dir string, st *store.Store, svc *service.Service, log *slog.Logger) {
	err := st.RunElected(ctx, "policy-dir", func(ctx context.Context) {
		log := log.With("dir", dir)
		last := ""
		if b, err := st.GetPolicyBundle(ctx); err == nil {
			last = bundleHash(b.Files)
		}
		t := time.NewTicker(policyDirPoll)
		defer t.Stop()
		for {
			files, err := readPolicyDir(dir)
			if err != nil {
				log.Warn("read policies.dir", "err", err)
			} else if h := bundleHash(files); h != last {
				b, err := svc.InstallPolicy(ctx, access.PolicyBundle{Files: files}, "policies.dir")
				if err != nil {
					log.Error("policies.dir change refused; the bundle in force stays", "err", err)
				} else {
					log.Info("policies.dir change pushed", "revision", b.Revision)
				}
				last = h // a refused change is not retried until it changes again
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	if err != nil && ctx.Err() == nil {
		log.Error("policies.dir watcher stopped", "err", err)
	}
}

// readPolicyDir reads the bundle files of dir, tests left out.
func readPolicyDir(dir string) (map[string]string, error) {
	b, err := policies.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	files := map[string]string{}
	for name, src := range b.Files {
		if !strings.HasSuffix(name, "_test.rego") {
			files[name] = string(src)
		}
	}
	return files, nil
}

func bundleHash(files map[string]string) string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%s\x00%d\x00%s", n, len(files[n]), files[n])
	}
	return hex.EncodeToString(h.Sum(nil))
}
