package mattermost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/gatehouse-dev/gatehouse/bot"
	"github.com/gatehouse-dev/gatehouse/bot/webhook"
)

// Timeouts and limits.
const (
	// DefaultButtonTTL is how long a card's buttons stay valid after the
	// card's last edit; every edit issues new secrets.
	DefaultButtonTTL = 24 * time.Hour
	// DefaultCommandDeadline is how long a slash command may run before the
	// adapter answers "working…" and sends the result to response_url
	// instead. Mattermost itself waits up to its outgoing integration
	// timeout (30 s by default); users should not.
	DefaultCommandDeadline = 2500 * time.Millisecond
	// commandWorkTimeout bounds a command that went to response_url.
	commandWorkTimeout = 30 * time.Second
	// maxInflight bounds the commands running at once; past it a command
	// is answered "busy" at once rather than queued.
	maxInflight = 256
	// apiTimeout bounds one REST call to Mattermost.
	apiTimeout = 15 * time.Second
	// dialogTTL is how long a deny dialog may stay open before its
	// submission is refused.
	dialogTTL = 15 * time.Minute
	// maxBody bounds every inbound request body.
	maxBody = 1 << 20
)

// Inbound routes, as the Mattermost app settings point at them.
const (
	CommandsPath = "/v1/hooks/mattermost/commands"
	ActionsPath  = "/v1/hooks/mattermost/actions"
	DialogsPath  = "/v1/hooks/mattermost/dialogs"
)

// Config is the Mattermost adapter's configuration.
type Config struct {
	// URL is the Mattermost server (https://mattermost.example.com).
	URL string
	// BotToken is the bot account's access token.
	BotToken string
	// CommandToken is the /access slash command's token.
	CommandToken string
	// Team is the team name whose users map to Gatehouse users.
	Team string
	// AllowedAddresses optionally restricts inbound calls to the
	// Mattermost server's addresses (IPs or CIDRs); empty allows any.
	AllowedAddresses []string
	// PublicURL is accessd's public URL: buttons and dialogs call back
	// PublicURL + ActionsPath and PublicURL + DialogsPath.
	PublicURL string
	// ButtonKey is the HMAC key of button secrets (at least MinKeyLen
	// bytes), the same on every replica.
	ButtonKey []byte
	// ButtonTTL is how long buttons live after a card's last edit
	// (default DefaultButtonTTL).
	ButtonTTL time.Duration
	// EmailLookup fills ChatUser.Email from GET /users/{id} (only useful
	// with identity.chat_email_mapping).
	EmailLookup bool
	// CommandDeadline overrides DefaultCommandDeadline.
	CommandDeadline time.Duration
	// HTTPClient makes the REST calls and response_url posts (default: a
	// client with a 15 s timeout).
	HTTPClient *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Adapter is the Mattermost side of the bot: Routes serves Mattermost's
// slash command, button and dialog callbacks; the bot.Platform methods
// post and edit cards through the REST API v4.
type Adapter struct {
	cfg        Config
	h          bot.Handler
	log        *slog.Logger
	client     *model.Client4
	actionsURL string
	dialogsURL string

	mu        sync.RWMutex
	botID     string
	teamID    string
	channels  map[string]string // "team/channel" → channel id
	dms       map[string]string // user id → direct channel id
	usernames map[string]string // user id → username

	// workers run the commands, bounded, and let Wait find those still
	// delivering to response_url.
	workers *webhook.Workers
}

// Interface guard.
var _ bot.Platform = (*Adapter)(nil)

// New checks cfg and makes an adapter that calls h. Call Init before
// serving Routes or delivering.
func New(cfg Config, h bot.Handler, log *slog.Logger) (*Adapter, error) {
	if h == nil {
		return nil, errors.New("mattermost: no handler")
	}
	if log == nil {
		log = slog.Default()
	}
	if err := checkHTTPURL("mattermost.url", cfg.URL); err != nil {
		return nil, err
	}
	if err := checkHTTPURL("public_url", cfg.PublicURL); err != nil {
		return nil, err
	}
	switch {
	case cfg.BotToken == "":
		return nil, errors.New("mattermost.bot_token: required")
	case cfg.CommandToken == "":
		return nil, errors.New("mattermost.command_token: required")
	case strings.TrimSpace(cfg.Team) == "":
		return nil, errors.New("mattermost.team: required")
	case len(cfg.ButtonKey) < MinKeyLen:
		return nil, fmt.Errorf("mattermost button key: %d bytes, want at least %d", len(cfg.ButtonKey), MinKeyLen)
	case cfg.ButtonTTL < 0:
		return nil, fmt.Errorf("mattermost button TTL: %s is negative", cfg.ButtonTTL)
	case cfg.CommandDeadline < 0:
		return nil, fmt.Errorf("mattermost command deadline: %s is negative", cfg.CommandDeadline)
	}
	if err := ParseAllowList(cfg.AllowedAddresses); err != nil {
		return nil, fmt.Errorf("mattermost.allowed_addresses: %w", err)
	}
	if cfg.ButtonTTL == 0 {
		cfg.ButtonTTL = DefaultButtonTTL
	}
	if cfg.CommandDeadline == 0 {
		cfg.CommandDeadline = DefaultCommandDeadline
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: apiTimeout}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Team = strings.TrimSpace(cfg.Team)
	client := model.NewAPIv4Client(cfg.URL)
	client.SetToken(cfg.BotToken)
	client.HTTPClient = cfg.HTTPClient
	public := strings.TrimRight(cfg.PublicURL, "/")
	return &Adapter{
		cfg:        cfg,
		h:          h,
		log:        log,
		workers:    webhook.NewWorkers(maxInflight),
		client:     client,
		actionsURL: public + ActionsPath,
		dialogsURL: public + DialogsPath,
		channels:   map[string]string{},
		dms:        map[string]string{},
		usernames:  map[string]string{},
	}, nil
}

func checkHTTPURL(key, s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: %q is not an http(s) URL", key, s)
	}
	return nil
}

// Init resolves the bot's own user id and the configured team's id. Until
// it succeeds, every inbound call is answered 503.
func (a *Adapter) Init(ctx context.Context) error {
	me, resp, err := a.client.GetMe(ctx, "")
	if err != nil {
		return apiError("get bot user (users/me)", resp, err)
	}
	team, resp, err := a.client.GetTeamByName(ctx, a.cfg.Team, "")
	if err != nil {
		return apiError(fmt.Sprintf("get team %q", a.cfg.Team), resp, err)
	}
	a.mu.Lock()
	a.botID, a.teamID = me.Id, team.Id
	a.mu.Unlock()
	a.log.Info("mattermost connected", "bot_user", me.Username, "bot_id", me.Id, "team", a.cfg.Team, "team_id", team.Id)
	return nil
}

// TeamID is the configured team's id ("" before Init). Only this team's
// users map to Gatehouse users.
func (a *Adapter) TeamID() string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.teamID
}

func (a *Adapter) botUserID() string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.botID
}

// Name is bot.Mattermost.
func (a *Adapter) Name() string { return bot.Mattermost }

// Wait blocks until every slash command answered "working…" has sent its
// result to response_url. Call it once the HTTP server has stopped taking
// Shutdown refuses new commands' background work and waits, until ctx
// ends, for those still delivering their result to response_url; call it
// after the HTTP server stops taking requests.
func (a *Adapter) Shutdown(ctx context.Context) error {
	a.workers.Close()
	if err := a.workers.Wait(ctx); err != nil {
		return fmt.Errorf("mattermost: shutdown: %w", err)
	}
	return nil
}

func (a *Adapter) now() time.Time { return a.cfg.Now() }
