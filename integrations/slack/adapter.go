package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	slackgo "github.com/slack-go/slack"

	"github.com/gatehouse-dev/gatehouse/bot"
	"github.com/gatehouse-dev/gatehouse/bot/webhook"
)

// Timeouts and bounds of the inbound side.
const (
	// maxInflight bounds the commands and clicks worked on at once. Past it
	// a command is answered at once with "busy" rather than queued: the ack
	// never waits, and a flood cannot pile up goroutines.
	maxInflight = 256
	// workTimeout bounds one Handler call plus posting its Reply to the
	// response_url (valid for 30 minutes, so no hurry beyond the user's).
	workTimeout = 20 * time.Second
	// viewSubmissionWait is how long a deny submission waits for the
	// Handler before closing the modal anyway: Slack drops an answer after
	// 3 s. A Reply that comes later goes to the clicker's response_url.
	viewSubmissionWait = 2500 * time.Millisecond
	// apiTimeout bounds one Web API call.
	apiTimeout = 10 * time.Second
	// emailCacheTTL is how long a users.info e-mail is reused.
	emailCacheTTL = 10 * time.Minute
	maxEmailCache = 10_000
)

// Adapter is Gatehouse's Slack integration: inbound it verifies Slack's
// requests (HTTP or Socket Mode), acknowledges them at once and calls the
// bot.Handler afterwards; outbound it implements bot.Platform.
type Adapter struct {
	cfg     Config
	h       bot.Handler
	log     *slog.Logger
	api     *slackgo.Client
	replays *webhook.ReplayCache
	workers *webhook.Workers // at most maxInflight commands and clicks

	mu     sync.Mutex
	emails map[string]cachedEmail // user id -> e-mail

	channels channelCache // has its own lock
}

type cachedEmail struct {
	email string
	until time.Time
}

// Interface guard.
var _ bot.Platform = (*Adapter)(nil)

// New builds the adapter. cfg is validated: a missing key is named in the
// error (bot_token, signing_secret, app_token, api_url). log may be nil.
func New(cfg Config, h bot.Handler, log *slog.Logger) (*Adapter, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("slack: no bot handler")
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("platform", bot.Slack)
	return &Adapter{
		cfg:     cfg,
		h:       h,
		log:     log,
		api:     slackgo.New(cfg.BotToken, slackgo.OptionAPIURL(cfg.APIURL), slackgo.OptionHTTPClient(&http.Client{Timeout: apiTimeout})),
		replays: webhook.NewSharedReplayCache(cfg.Replays, "slack"),
		workers: webhook.NewWorkers(maxInflight),
		emails:  make(map[string]cachedEmail),
	}, nil
}

// Name is "slack".
func (a *Adapter) Name() string { return bot.Slack }

// Shutdown stops taking new work and waits for the commands and clicks in
// flight (their Replies still get posted) until ctx ends.
func (a *Adapter) Shutdown(ctx context.Context) error {
	a.workers.Close()
	if err := a.workers.Wait(ctx); err != nil {
		return fmt.Errorf("slack: shutdown: %w", err)
	}
	return nil
}

// spawn runs fn in the background, detached from the request that asked for
// it, under workTimeout. It returns false without running fn when
// maxInflight works are running or the adapter is shutting down.
func (a *Adapter) spawn(fn func(ctx context.Context)) bool {
	return a.workers.TryGo(func() {
		ctx, cancel := context.WithTimeout(context.Background(), workTimeout)
		defer cancel()
		fn(ctx)
	})
}

// chatUser is who sent a command or clicked. With EmailLookup the e-mail
// comes from users.info; a failed lookup leaves it empty (the user then maps
// by id only), it never fails the interaction.
func (a *Adapter) chatUser(ctx context.Context, teamID, userID, userName string) bot.ChatUser {
	u := bot.ChatUser{Platform: bot.Slack, Workspace: teamID, ID: userID, Name: userName}
	if a.cfg.EmailLookup && userID != "" {
		u.Email = a.email(ctx, userID)
	}
	return u
}

func (a *Adapter) email(ctx context.Context, userID string) string {
	now := a.cfg.Now()
	a.mu.Lock()
	if c, ok := a.emails[userID]; ok && now.Before(c.until) {
		a.mu.Unlock()
		return c.email
	}
	a.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	info, err := a.api.GetUserInfoContext(ctx, userID)
	if err != nil {
		a.log.Warn("users.info failed; continuing without the e-mail", "user", userID, "err", apiError("users.info", err))
		return ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.emails) >= maxEmailCache {
		for id, c := range a.emails {
			if !now.Before(c.until) {
				delete(a.emails, id)
			}
		}
		if len(a.emails) >= maxEmailCache {
			clear(a.emails)
		}
	}
	a.emails[userID] = cachedEmail{email: info.Profile.Email, until: now.Add(emailCacheTTL)}
	return info.Profile.Email
}

// respond posts r privately to the user behind responseURL: an ephemeral
// message that never replaces the message the user clicked on (the outbox
// edits shared cards).
func (a *Adapter) respond(ctx context.Context, responseURL string, r bot.Reply) {
	if responseURL == "" {
		a.log.Warn("no response_url to answer on; reply dropped", "text", r.Text)
		return
	}
	text, blocks := replyMessage(r)
	_, _, err := a.api.PostMessageContext(ctx, "",
		slackgo.MsgOptionResponseURL(responseURL, slackgo.ResponseTypeEphemeral),
		slackgo.MsgOptionText(text, false),
		slackgo.MsgOptionBlocks(blocks...),
	)
	if err != nil {
		a.log.Error("posting the reply to response_url failed", "err", err)
	}
}
