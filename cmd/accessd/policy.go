package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/gatehouse-dev/gatehouse/integrations/pagerduty"
	"github.com/gatehouse-dev/gatehouse/policies"
	"github.com/gatehouse-dev/gatehouse/store"
)

// openPolicy builds the engine with the bundle in etcd (or the built-in
// default when none was pushed) and keeps it in step with etcd.
func openPolicy(ctx context.Context, cfg Config, st *store.Store, log *slog.Logger) (*policies.Live, error) {
	timeout, err := time.ParseDuration(cfg.Policies.Timeout)
	if err != nil || timeout <= 0 {
		return nil, fmt.Errorf("policies.timeout %q: want a positive duration", cfg.Policies.Timeout)
	}
	opts := []policies.Option{policies.WithTimeout(timeout)}
	if cfg.PagerDuty != nil {
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
		opts = append(opts, policies.WithOnCall(dir))
	}
	engine, err := policies.New(policies.Default(), opts...)
	if err != nil {
		return nil, fmt.Errorf("built-in policy bundle: %w", err)
	}
	return policies.Follow(ctx, st, engine, log)
}
