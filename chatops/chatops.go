// Package chatops wires the chat platforms into accessd: each configured
// adapter over the one bot core, its webhook routes, and one outbox
// delivery worker per platform, run by whichever replica holds that
// platform's etcd election.
package chatops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/bot"
	"github.com/gatehouse-dev/gatehouse/integrations/discord"
	"github.com/gatehouse-dev/gatehouse/integrations/mattermost"
	"github.com/gatehouse-dev/gatehouse/integrations/slack"
	"github.com/gatehouse-dev/gatehouse/metrics"
	"github.com/gatehouse-dev/gatehouse/outbox"
	"github.com/gatehouse-dev/gatehouse/service"
	"github.com/gatehouse-dev/gatehouse/store"
)

// Config selects the platforms; a nil platform config disables it.
type Config struct {
	PublicURL    string
	EmailMapping bool
	Slack        *slack.Config
	Discord      *discord.Config
	Mattermost   *mattermost.Config
}

// adapter is what wiring needs of a platform adapter.
type adapter interface {
	bot.Platform
	Routes() map[string]http.Handler
}

// Chat is the running chat side of accessd.
type Chat struct {
	// Routes are the platforms' webhooks, to mount on the API server.
	Routes map[string]http.Handler
	drains []func(context.Context) error
	// workers are the delivery workers and Socket Mode, which end with
	// Start's context.
	workers sync.WaitGroup
}

// Shutdown waits, until ctx ends, for the replies still being worked on
// after their interaction was acknowledged and, once Start's context has
// ended, for the delivery workers to stop (call it once the API server has
// stopped taking requests, before closing the store).
func (c *Chat) Shutdown(ctx context.Context) error {
	var errs []error
	for _, d := range c.drains {
		errs = append(errs, d(ctx))
	}
	done := make(chan struct{})
	go func() { c.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("chat delivery workers still running: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}

// Start builds the configured adapters over the bot core, starts their
// delivery workers (and Slack's Socket Mode when chosen) until ctx ends,
// and returns the webhook routes to mount on the API server.
func Start(ctx context.Context, cfg Config, svc *service.Service, st *store.Store, log *slog.Logger) (*Chat, error) {
	// The adapters need the core, and the core needs the workspaces the
	// adapters resolve (Mattermost's team id): the map is filled below,
	// before any interaction can arrive.
	bcfg := bot.Config{PublicURL: cfg.PublicURL, EmailMapping: cfg.EmailMapping, Workspaces: map[string][]string{}}
	core := bot.New(svc, bcfg, log.With("component", "bot"))
	var adapters []adapter
	chat := &Chat{Routes: map[string]http.Handler{}}
	var socketMode *slack.Adapter
	if c := cfg.Slack; c != nil {
		c.EmailLookup = cfg.EmailMapping
		c.Replays = st
		a, err := slack.New(*c, core, log.With("platform", bot.Slack))
		if err != nil {
			return nil, fmt.Errorf("slack: %w", err)
		}
		bcfg.Workspaces[bot.Slack] = []string{c.TeamID}
		if c.SocketMode {
			socketMode = a
		}
		chat.drains = append(chat.drains, a.Shutdown)
		adapters = append(adapters, a)
	}
	if c := cfg.Discord; c != nil {
		c.Replays = st
		a, err := discord.New(*c, core, log.With("platform", bot.Discord))
		if err != nil {
			return nil, fmt.Errorf("discord: %w", err)
		}
		bcfg.Workspaces[bot.Discord] = c.GuildIDs
		chat.drains = append(chat.drains, a.Shutdown)
		adapters = append(adapters, a)
	}
	if c := cfg.Mattermost; c != nil {
		if c.PublicURL == "" {
			c.PublicURL = cfg.PublicURL
		}
		if len(c.ButtonKey) == 0 {
			key, err := ButtonKey(ctx, svc)
			if err != nil {
				return nil, err
			}
			c.ButtonKey = key
		}
		c.EmailLookup = cfg.EmailMapping
		a, err := mattermost.New(*c, core, log.With("platform", bot.Mattermost))
		if err != nil {
			return nil, fmt.Errorf("mattermost: %w", err)
		}
		ictx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err = a.Init(ictx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("mattermost at %s: %w", c.URL, err)
		}
		bcfg.Workspaces[bot.Mattermost] = []string{a.TeamID()}
		chat.drains = append(chat.drains, a.Shutdown)
		adapters = append(adapters, a)
	}

	for _, a := range adapters {
		for p, h := range a.Routes() {
			chat.Routes[p] = h
		}
		chat.workers.Go(func() { deliver(ctx, st, a, cfg.PublicURL, svc.Metrics(), log) })
	}
	if socketMode != nil {
		chat.workers.Go(func() {
			if err := socketMode.RunSocketMode(ctx); err != nil && ctx.Err() == nil {
				log.Error("slack socket mode stopped", "err", err)
			}
		})
	}
	return chat, nil
}

// deliver runs the platform's outbox worker while this replica holds the
// platform's election; the worker is woken by a watch on its outbox.
func deliver(ctx context.Context, st *store.Store, p bot.Platform, publicURL string, m *metrics.Metrics, log *slog.Logger) {
	log = log.With("platform", p.Name())
	d := &bot.Deliverer{Store: st, Platform: p, PublicURL: publicURL, Log: log}
	run := func(ctx context.Context) {
		log.Info("leading chat delivery")
		w := &outbox.Worker{Store: st, Platform: p.Name(), Deliver: d.Deliver, Log: log,
			Wake: st.WatchOutbox(ctx, p.Name()), WriteAhead: bot.WriteAhead, Metrics: m}
		w.Run(ctx)
	}
	if err := st.RunElected(ctx, "outbox-"+p.Name(), run); err != nil && ctx.Err() == nil {
		log.Error("chat outbox worker stopped", "err", err)
	}
}

// ButtonKey is the key of Mattermost's button secrets, derived from the
// cluster CA key that every replica shares, so that a button made by one
// replica is checked by any other. It is the same whether that key is
// stored sealed or in the clear, so sealing it keeps the buttons working.
// Rotating the cluster CA key invalidates the buttons on old cards; the
// next edit of a card makes new ones.
func ButtonKey(ctx context.Context, svc *service.Service) ([]byte, error) {
	key, err := svc.DeriveClusterKey(ctx, "gatehouse/mattermost/button-key/v1", 32)
	if err != nil {
		return nil, fmt.Errorf("mattermost button key: %w", err)
	}
	return key, nil
}
