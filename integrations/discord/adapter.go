package discord

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/bot"
	"github.com/gatehouse-dev/gatehouse/bot/command"
	"github.com/gatehouse-dev/gatehouse/bot/webhook"
)

// InteractionsRoute is the route of the HTTP interactions endpoint, the
// "Interactions Endpoint URL" of the application's settings.
const InteractionsRoute = "POST /v1/hooks/discord/interactions"

// Inbound work limits.
const (
	// maxInFlight bounds the interactions being worked on at once (the
	// handler call plus delivering its reply). Beyond it an interaction is
	// answered "busy" at once instead of queueing goroutines.
	maxInFlight = 64
	// workTimeout bounds one Handler call.
	workTimeout = 30 * time.Second
	// replyTimeout bounds delivering one deferred reply, retries included.
	// The interaction token itself is valid for 15 minutes.
	replyTimeout = 30 * time.Second
	// clickAckBudget is how long a click or modal submission waits for the
	// Handler before the adapter answers "deferred" and edits the reply in
	// later; Discord drops interactions not answered within 3 seconds.
	clickAckBudget = 2 * time.Second
	// modalReasonID is the text input of the deny modal.
	modalReasonID = "reason"
)

// Adapter is Gatehouse's Discord integration: the HTTP interactions
// endpoint (Routes) calling a bot.Handler, and bot.Platform for the outbox.
// It is safe for concurrent use. Shutdown waits for replies in flight.
type Adapter struct {
	cfg       Config
	publicKey ed25519.PublicKey
	handler   bot.Handler
	log       *slog.Logger
	rest      *restClient
	seen      *webhook.ReplayCache

	workers   *webhook.Workers // at most maxInFlight interactions worked on
	base      context.Context  // parent of all background work
	cancel    context.CancelFunc
	ackBudget time.Duration

	mu         sync.Mutex
	dmChannels map[string]string // user id -> DM channel id
	botUserID  string            // GET /users/@me, once known
}

// Interface guard.
var _ bot.Platform = (*Adapter)(nil)

// New validates cfg (errors name the accessd.yaml key) and returns the
// adapter. h receives verified interactions; log may be nil.
func New(cfg Config, h bot.Handler, log *slog.Logger) (*Adapter, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("discord: no bot handler")
	}
	if log == nil {
		log = slog.Default()
	}
	key, _ := parsePublicKey(cfg.PublicKey) // validated by withDefaults
	base, cancel := context.WithCancel(context.Background())
	return &Adapter{
		cfg:        cfg,
		publicKey:  key,
		handler:    h,
		log:        log.With("platform", bot.Discord),
		rest:       newRESTClient(cfg),
		seen:       webhook.NewSharedReplayCache(cfg.Replays, "discord"),
		workers:    webhook.NewWorkers(maxInFlight),
		base:       base,
		cancel:     cancel,
		ackBudget:  clickAckBudget,
		dmChannels: map[string]string{},
	}, nil
}

// Routes returns the inbound HTTP handlers by ServeMux pattern: only
// InteractionsRoute.
func (a *Adapter) Routes() map[string]http.Handler {
	return map[string]http.Handler{InteractionsRoute: http.HandlerFunc(a.serveInteraction)}
}

// Shutdown refuses new background work, waits for interactions in flight
// to deliver their replies until ctx ends, then cancels them and returns
// ctx's error.
func (a *Adapter) Shutdown(ctx context.Context) error {
	a.workers.Close()
	err := a.workers.Wait(ctx)
	a.cancel()
	if err != nil {
		// Cancelled now; wait for them to notice.
		_ = a.workers.Wait(context.Background())
		return err
	}
	return nil
}

func (a *Adapter) now() time.Time { return a.cfg.Now() }

// serveInteraction answers one interaction: verify first, then PING, a
// slash command (deferred, worked on after the answer), a button click or
// a modal submission.
func (a *Adapter) serveInteraction(w http.ResponseWriter, r *http.Request) {
	body, err := VerifyInteraction(r, a.publicKey, a.now(), a.seen)
	if err != nil {
		status := StatusCode(err)
		// Discord probes the endpoint with bad signatures: not a warning.
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelWarn
		}
		a.log.Log(r.Context(), level, "interaction refused", "status", status, "err", err)
		http.Error(w, err.Error(), status)
		return
	}
	var in discordgo.Interaction
	if err := json.Unmarshal(body, &in); err != nil {
		a.refuse(w, &in, fmt.Errorf("%w: %v", ErrMalformed, err))
		return
	}
	switch in.Type {
	case discordgo.InteractionPing:
		writeJSON(w, discordgo.InteractionResponse{Type: discordgo.InteractionResponsePong})
	case discordgo.InteractionApplicationCommand:
		a.serveCommand(w, &in)
	case discordgo.InteractionMessageComponent:
		a.serveComponent(w, &in)
	case discordgo.InteractionModalSubmit:
		a.serveModal(w, &in)
	default:
		a.refuse(w, &in, fmt.Errorf("%w: interaction type %d is not handled", ErrMalformed, in.Type))
	}
}

// refuse answers a malformed interaction 400 with a clear message; the
// handler is not called.
func (a *Adapter) refuse(w http.ResponseWriter, in *discordgo.Interaction, err error) {
	a.log.Warn("interaction malformed", "id", in.ID, "type", int(in.Type), "err", err)
	http.Error(w, err.Error(), http.StatusBadRequest)
}

// chatUser is who sent the interaction: member.user in a guild (Workspace
// = guild id), user in a DM (Workspace "", which maps to nobody).
func chatUser(in *discordgo.Interaction) (bot.ChatUser, error) {
	u := bot.ChatUser{Platform: bot.Discord}
	switch {
	case in.Member != nil && in.Member.User != nil && in.GuildID != "":
		u.Workspace, u.ID, u.Name = in.GuildID, in.Member.User.ID, in.Member.User.Username
	case in.User != nil && in.GuildID == "":
		u.ID, u.Name = in.User.ID, in.User.Username
	default:
		return u, fmt.Errorf("%w: no member.user (guild) or user (DM)", ErrMalformed)
	}
	if !isSnowflake(u.ID) {
		return u, fmt.Errorf("%w: user id %q is not a snowflake", ErrMalformed, u.ID)
	}
	return u, nil
}

func (a *Adapter) serveCommand(w http.ResponseWriter, in *discordgo.Interaction) {
	u, err := chatUser(in)
	if err != nil {
		a.refuse(w, in, err)
		return
	}
	data := in.ApplicationCommandData()
	text, err := commandText(data)
	var ue *userError
	switch {
	case errors.As(err, &ue):
		writeJSON(w, ephemeralResponse(renderReply(bot.Reply{Text: ue.msg, Error: true})))
		return
	case err != nil:
		a.refuse(w, in, err)
		return
	}
	a.log.Info("slash command", "id", in.ID, "user", u.ID, "guild", u.Workspace, "command", firstWord(text))
	// Always deferred: a command may take several etcd transactions.
	a.work(w, in, 0, func(ctx context.Context) bot.Reply { return a.handler.Command(ctx, u, text) })
}

// customIDRe: ACTION:ARGUMENT as our buttons and modals carry them.
var customIDRe = regexp.MustCompile(`^([a-z_]+):([A-Za-z0-9-]{1,64})$`)

func (a *Adapter) serveComponent(w http.ResponseWriter, in *discordgo.Interaction) {
	u, err := chatUser(in)
	if err != nil {
		a.refuse(w, in, err)
		return
	}
	data := in.MessageComponentData()
	m := customIDRe.FindStringSubmatch(data.CustomID)
	if m == nil || data.ComponentType != discordgo.ButtonComponent {
		a.refuse(w, in, fmt.Errorf("%w: unknown component %q", ErrMalformed, clipText(data.CustomID, maxCustomIDLen)))
		return
	}
	action, arg := m[1], m[2]
	a.log.Info("button click", "id", in.ID, "user", u.ID, "guild", u.Workspace, "action", action, "arg", arg)
	switch action {
	case bot.ActionApprove:
		a.work(w, in, a.ackBudget, func(ctx context.Context) bot.Reply {
			return a.handler.Review(ctx, u, arg, access.VerdictApprove, "")
		})
	case bot.ActionDeny:
		// The reason comes from a modal; its submission is the review.
		writeJSON(w, denyModal(arg))
	case bot.ActionConfirmLogin:
		a.work(w, in, a.ackBudget, func(ctx context.Context) bot.Reply { return a.handler.ConfirmLogin(ctx, u, arg) })
	default:
		a.refuse(w, in, fmt.Errorf("%w: unknown button action %q", ErrMalformed, action))
	}
}

// denyModalPrefix is the deny modal's custom id prefix: deny_reason:ID.
const denyModalPrefix = "deny_reason"

// denyModal asks for the reason of a deny (required, one paragraph).
func denyModal(requestID string) discordgo.InteractionResponse {
	return discordgo.InteractionResponse{
		Type: discordgo.InteractionResponseModal,
		Data: &discordgo.InteractionResponseData{
			CustomID: denyModalPrefix + ":" + requestID,
			Title:    "Deny access request",
			Components: []discordgo.MessageComponent{discordgo.ActionsRow{Components: []discordgo.MessageComponent{
				discordgo.TextInput{
					CustomID:    modalReasonID,
					Label:       "Reason",
					Style:       discordgo.TextInputParagraph,
					Placeholder: "Why is this request denied?",
					Required:    true,
					MinLength:   1,
					MaxLength:   command.MaxReasonLen,
				},
			}}},
		},
	}
}

func (a *Adapter) serveModal(w http.ResponseWriter, in *discordgo.Interaction) {
	u, err := chatUser(in)
	if err != nil {
		a.refuse(w, in, err)
		return
	}
	data := in.ModalSubmitData()
	m := customIDRe.FindStringSubmatch(data.CustomID)
	if m == nil || m[1] != denyModalPrefix {
		a.refuse(w, in, fmt.Errorf("%w: unknown modal %q", ErrMalformed, clipText(data.CustomID, maxCustomIDLen)))
		return
	}
	requestID := m[2]
	reason := strings.TrimSpace(modalValue(data.Components, modalReasonID))
	if reason == "" {
		a.refuse(w, in, fmt.Errorf("%w: deny modal without a reason", ErrMalformed))
		return
	}
	a.log.Info("deny submitted", "id", in.ID, "user", u.ID, "guild", u.Workspace, "request", requestID)
	a.work(w, in, a.ackBudget, func(ctx context.Context) bot.Reply {
		return a.handler.Review(ctx, u, requestID, access.VerdictDeny, reason)
	})
}

// modalValue finds the text input id in a modal submission's rows.
func modalValue(components []discordgo.MessageComponent, id string) string {
	for _, c := range components {
		switch c := c.(type) {
		case *discordgo.ActionsRow:
			if v := modalValue(c.Components, id); v != "" {
				return v
			}
		case *discordgo.TextInput:
			if c.CustomID == id {
				return c.Value
			}
		}
	}
	return ""
}

// work runs fn for interaction in, bounded by maxInFlight and workTimeout.
// If fn answers within budget the reply is the HTTP answer (type 4,
// ephemeral); otherwise the answer is DEFERRED (type 5, ephemeral) and the
// reply replaces the deferred message later (PATCH @original). budget 0
// always defers.
func (a *Adapter) work(w http.ResponseWriter, in *discordgo.Interaction, budget time.Duration, fn func(context.Context) bot.Reply) {
	replies := make(chan bot.Reply) // the reply, if the HTTP answer still waits for it
	deferred := make(chan struct{}) // closed once the answer was DEFERRED
	token, id := in.Token, in.ID
	started := a.workers.TryGo(func() {
		ctx, cancel := context.WithTimeout(a.base, workTimeout)
		reply := a.call(ctx, id, fn)
		cancel()
		select {
		case replies <- reply:
		case <-deferred:
			a.editOriginal(token, id, reply)
		}
	})
	if !started {
		a.log.Warn("interaction refused: too many in flight", "id", in.ID, "limit", maxInFlight)
		writeJSON(w, ephemeralResponse(renderReply(bot.Reply{Text: "Gatehouse is busy; try again in a moment.", Error: true})))
		return
	}
	if budget > 0 {
		t := time.NewTimer(budget)
		defer t.Stop()
		select {
		case reply := <-replies:
			writeJSON(w, ephemeralResponse(renderReply(reply)))
			return
		case <-t.C:
		}
	}
	writeJSON(w, discordgo.InteractionResponse{
		Type: discordgo.InteractionResponseDeferredChannelMessageWithSource,
		Data: &discordgo.InteractionResponseData{Flags: discordgo.MessageFlagsEphemeral},
	})
	// Send the answer before the edit can race it to Discord.
	_ = http.NewResponseController(w).Flush()
	close(deferred)
}

// call runs fn, turning a panic into an error reply.
func (a *Adapter) call(ctx context.Context, id string, fn func(context.Context) bot.Reply) (reply bot.Reply) {
	defer func() {
		if p := recover(); p != nil {
			a.log.Error("interaction handler panicked", "id", id, "panic", p)
			reply = bot.Reply{Text: "Internal error; the administrators can find it in the accessd log.", Error: true}
		}
	}()
	return fn(ctx)
}

// editOriginal replaces the deferred "thinking" message with reply:
// PATCH /webhooks/{application.id}/{interaction.token}/messages/@original.
// Rate limits and server errors are retried until replyTimeout, and so is
// 404 Unknown Webhook, which Discord answers when the edit overtakes the
// deferred answer it edits.
func (a *Adapter) editOriginal(token, id string, reply bot.Reply) {
	ctx, cancel := context.WithTimeout(a.base, replyTimeout)
	defer cancel()
	msg := renderReply(reply)
	edit := discordgo.WebhookEdit{
		Content:         &msg.content,
		Embeds:          &msg.embeds,
		Components:      &msg.components,
		AllowedMentions: noMentions(),
	}
	path := "webhooks/" + a.cfg.ApplicationID + "/" + token + "/messages/@original"
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := a.rest.do(ctx, http.MethodPatch, "/webhooks/{application.id}/{interaction.token}/messages/@original", path, edit, nil)
		if err == nil {
			return
		}
		wait := backoff
		var ae *APIError
		switch {
		case errors.As(err, &ae) && ae.Status == http.StatusNotFound && (ae.Code == codeUnknownWebhook || ae.Code == codeUnknownMessage || ae.Code == codeUnknownInteraction) && attempt <= 5:
		case errors.As(err, &ae) && ae.Wait > 0:
			wait = ae.Wait
		case isRetryable(err):
		default:
			a.log.Error("delivering interaction reply failed", "id", id, "err", err)
			return
		}
		backoff = min(2*backoff, 5*time.Second)
		select {
		case <-ctx.Done():
			a.log.Error("delivering interaction reply timed out", "id", id, "attempts", attempt, "err", err)
			return
		case <-time.After(wait):
		}
	}
}

// ephemeralResponse answers an interaction with a message only the caller
// sees (type 4, flags EPHEMERAL).
func ephemeralResponse(m rendered) discordgo.InteractionResponse {
	return discordgo.InteractionResponse{
		Type: discordgo.InteractionResponseChannelMessageWithSource,
		Data: &discordgo.InteractionResponseData{
			Content:         m.content,
			Embeds:          m.embeds,
			Components:      m.components,
			AllowedMentions: noMentions(),
			Flags:           discordgo.MessageFlagsEphemeral,
		},
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func firstWord(s string) string {
	w, _, _ := strings.Cut(s, " ")
	return w
}
