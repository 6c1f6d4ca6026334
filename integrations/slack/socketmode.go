package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	slackgo "github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// RunSocketMode receives slash commands and interactions over Slack's
// Socket Mode websocket (apps.connections.open with the app token) until ctx
// ends, for installs without a public URL. Each envelope goes through the
// same code as the HTTP routes and is acknowledged through the socket, at
// once, with the same answer the HTTP route would give (an envelope the
// HTTP route would refuse is acknowledged empty and logged, since Slack
// would only redeliver it). An envelope id seen before is acknowledged and
// not run again. slack-go reconnects by itself; RunSocketMode returns nil
// when ctx ends, or the error that stopped the connection for good (an
// invalid or revoked app token).
func (a *Adapter) RunSocketMode(ctx context.Context) error {
	if a.cfg.AppToken == "" {
		return errors.New("slack: app_token is required for socket mode")
	}
	api := slackgo.New(a.cfg.BotToken,
		slackgo.OptionAPIURL(a.cfg.APIURL),
		slackgo.OptionAppLevelToken(a.cfg.AppToken),
		slackgo.OptionHTTPClient(&http.Client{Timeout: apiTimeout}))
	client := socketmode.New(api, socketmode.OptionLog(slog.NewLogLogger(a.log.Handler(), slog.LevelDebug)))

	// Deferred in this order so that ctx is cancelled before the wait:
	// an ack still queued then gives up instead of blocking the wait.
	var envelopes sync.WaitGroup
	defer envelopes.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- client.RunContext(ctx) }()
	for {
		select {
		case <-ctx.Done():
			<-runErr
			return nil
		case err := <-runErr:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("slack socket mode: %w", err)
		case evt := <-client.Events:
			switch evt.Type {
			case socketmode.EventTypeConnecting:
				a.log.Debug("socket mode connecting")
			case socketmode.EventTypeConnected:
				a.log.Info("socket mode connected")
			case socketmode.EventTypeConnectionError, socketmode.EventTypeIncomingError, socketmode.EventTypeErrorBadMessage, socketmode.EventTypeErrorWriteFailed:
				a.log.Warn("socket mode trouble", "event", evt.Type, "data", evt.Data)
			case socketmode.EventTypeInvalidAuth:
				a.log.Error("socket mode: Slack refused the app token")
			case socketmode.EventTypeSlashCommand, socketmode.EventTypeInteractive:
				envelopes.Go(func() { a.socketEnvelope(ctx, client, evt) })
			case socketmode.EventTypeEventsAPI:
				// Not subscribed to any; acknowledge so Slack does not resend.
				if evt.Request != nil {
					a.socketAck(ctx, client, *evt.Request, nil)
				}
			default:
				a.log.Debug("socket mode event", "event", evt.Type)
			}
		}
	}
}

// socketEnvelope runs one slash command or interaction from the socket.
func (a *Adapter) socketEnvelope(ctx context.Context, client *socketmode.Client, evt socketmode.Event) {
	req := evt.Request
	if req == nil {
		return
	}
	if req.EnvelopeID != "" {
		now := a.cfg.Now()
		if err := a.replays.Add("envelope:"+req.EnvelopeID, now, now.Add(2*MaxSkew)); err != nil {
			a.log.Warn("socket mode envelope seen before; acknowledged, not run again", "envelope", req.EnvelopeID, "retry", req.RetryAttempt, "err", err)
			a.socketAck(ctx, client, *req, nil)
			return
		}
	}
	var k ack
	switch data := evt.Data.(type) {
	case slackgo.SlashCommand:
		k = a.command(data)
	case slackgo.InteractionCallback:
		k = a.interaction(data)
	default:
		k = badRequest("unexpected socket mode payload %T", evt.Data)
	}
	if k.status >= 400 {
		a.log.Warn("refused a socket mode envelope", "envelope", req.EnvelopeID, "status", k.status, "reason", k.msg)
		a.socketAck(ctx, client, *req, nil)
		return
	}
	a.socketAck(ctx, client, *req, k.body)
}

func (a *Adapter) socketAck(ctx context.Context, client *socketmode.Client, req socketmode.Request, payload any) {
	if err := client.AckCtx(ctx, req.EnvelopeID, payload); err != nil {
		a.log.Warn("socket mode ack failed", "envelope", req.EnvelopeID, "err", err)
	}
}
