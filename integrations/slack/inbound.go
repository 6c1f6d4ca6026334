package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	slackgo "github.com/slack-go/slack"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/bot"
	"github.com/gatehouse-dev/gatehouse/bot/webhook"
)

// Inbound routes, as the Slack app's settings (deploy/slack/manifest.yaml)
// point at them.
const (
	CommandsPath     = "/v1/hooks/slack/commands"
	InteractionsPath = "/v1/hooks/slack/interactions"
)

const (
	busyText     = "Gatehouse is busy right now; try again in a moment."
	reasonNeeded = "A reason is required to deny a request."
	// maxInputError bounds the error shown under the modal's input.
	maxInputError = 300
)

// Routes are the HTTP endpoints Slack calls, keyed by ServeMux pattern.
//
// Every request is first verified (VerifyRequest: 401 for a bad signature
// or a timestamp outside 5 minutes, 413 for an oversized body), then
// checked against a replay cache: an X-Slack-Signature already seen within
// its validity window is refused with 409 Conflict and nothing runs. Slash
// commands and clicks are answered at once (Slack allows 3 s) and the
// Handler runs afterwards; its Reply is posted to the response_url,
// privately.
func (a *Adapter) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		http.MethodPost + " " + CommandsPath:     http.HandlerFunc(a.serveCommand),
		http.MethodPost + " " + InteractionsPath: http.HandlerFunc(a.serveInteraction),
	}
}

// ack is what Slack gets at once for a command or an interaction; the work
// it started, if any, runs afterwards.
type ack struct {
	status int    // HTTP status
	body   any    // JSON body; nil for an empty answer
	msg    string // the refusal, when status >= 400
}

var ackEmpty = ack{status: http.StatusOK}

func badRequest(format string, args ...any) ack {
	return ack{status: http.StatusBadRequest, msg: "slack: " + fmt.Sprintf(format, args...)}
}

func (a *Adapter) writeAck(w http.ResponseWriter, k ack) {
	switch {
	case k.status >= 400:
		a.log.Warn("refused a Slack request", "status", k.status, "reason", k.msg)
		http.Error(w, k.msg, k.status)
	case k.body == nil:
		w.WriteHeader(k.status)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(k.status)
		if err := json.NewEncoder(w).Encode(k.body); err != nil {
			a.log.Warn("writing the answer to Slack failed", "err", err)
		}
	}
}

// verify checks the signature, the timestamp and the replay cache, and
// answers the refusal itself when one fails.
func (a *Adapter) verify(w http.ResponseWriter, r *http.Request) bool {
	now := a.cfg.Now()
	if _, err := VerifyRequest(r, a.cfg.SigningSecret, now); err != nil {
		a.log.Warn("refused a Slack request", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
		http.Error(w, err.Error(), StatusCode(err))
		return false
	}
	// Remember the signature until its timestamp goes stale; VerifyRequest
	// refuses it from then on.
	// VerifyRequest has parsed the timestamp already; it cannot fail here.
	ts, _ := strconv.ParseInt(r.Header.Get(headerTimestamp), 10, 64)
	until := webhook.ReplayUntil(now, time.Unix(ts, 0), MaxSkew)
	if err := a.replays.Check(r.Context(), "sig:"+r.Header.Get(headerSignature), now, until); err != nil {
		err = fmt.Errorf("slack: %w", err)
		a.log.Warn("refused a replayed Slack request", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
		http.Error(w, err.Error(), replayStatus(err))
		return false
	}
	return true
}

func (a *Adapter) serveCommand(w http.ResponseWriter, r *http.Request) {
	if !a.verify(w, r) {
		return
	}
	cmd, err := slackgo.SlashCommandParse(r)
	if err != nil {
		a.writeAck(w, badRequest("malformed slash command: %v", err))
		return
	}
	a.writeAck(w, a.command(cmd))
}

func (a *Adapter) serveInteraction(w http.ResponseWriter, r *http.Request) {
	if !a.verify(w, r) {
		return
	}
	ic, err := slackgo.InteractionCallbackParse(r)
	if err != nil {
		a.writeAck(w, badRequest("malformed interaction payload: %v", err))
		return
	}
	a.writeAck(w, a.interaction(ic))
}

// command acknowledges a slash command and runs it in the background. The
// ack never waits on the Handler; when maxInflight commands are running it
// says "busy" instead of queueing.
func (a *Adapter) command(cmd slackgo.SlashCommand) ack {
	if cmd.UserID == "" || cmd.TeamID == "" {
		return badRequest("slash command without user_id or team_id")
	}
	if cmd.ResponseURL == "" {
		return badRequest("slash command without response_url")
	}
	started := a.spawn(func(ctx context.Context) {
		u := a.chatUser(ctx, cmd.TeamID, cmd.UserID, cmd.UserName)
		a.respond(ctx, cmd.ResponseURL, a.h.Command(ctx, u, cmd.Text))
	})
	if !started {
		return ack{status: http.StatusOK, body: slackgo.Msg{ResponseType: slackgo.ResponseTypeEphemeral, Text: busyText}}
	}
	return ackEmpty
}

// interaction handles the payload of the interactivity endpoint.
func (a *Adapter) interaction(ic slackgo.InteractionCallback) ack {
	if ic.User.ID == "" {
		return badRequest("interaction without a user")
	}
	switch ic.Type {
	case slackgo.InteractionTypeBlockActions:
		return a.blockAction(ic)
	case slackgo.InteractionTypeViewSubmission:
		return a.viewSubmission(ic)
	case slackgo.InteractionTypeViewClosed:
		return ackEmpty
	default:
		return badRequest("unsupported interaction type %q", ic.Type)
	}
}

// clicker is the user behind an interaction. The workspace is the team the
// click happened in (team.id), falling back to the user's home team.
func (a *Adapter) clicker(ctx context.Context, ic slackgo.InteractionCallback) bot.ChatUser {
	team := ic.Team.ID
	if team == "" {
		team = ic.User.TeamID
	}
	name := ic.User.Name
	if name == "" {
		name = ic.User.Username
	}
	return a.chatUser(ctx, team, ic.User.ID, name)
}

// blockAction handles a button: approve and confirm_login call the Handler
// and answer the clicker privately through the payload's response_url; deny
// opens the reason modal. The shared card is never replaced from here: the
// outbox edits it once the review is recorded.
func (a *Adapter) blockAction(ic slackgo.InteractionCallback) ack {
	acts := ic.ActionCallback.BlockActions
	if len(acts) != 1 {
		return badRequest("expected one block action, got %d", len(acts))
	}
	act := acts[0]
	value := strings.TrimSpace(act.Value)
	var work func(ctx context.Context)
	switch act.ActionID {
	case bot.ActionApprove:
		work = func(ctx context.Context) {
			a.respond(ctx, ic.ResponseURL, a.h.Review(ctx, a.clicker(ctx, ic), value, access.VerdictApprove, ""))
		}
	case bot.ActionConfirmLogin:
		work = func(ctx context.Context) {
			a.respond(ctx, ic.ResponseURL, a.h.ConfirmLogin(ctx, a.clicker(ctx, ic), value))
		}
	case bot.ActionDeny:
		if ic.TriggerID == "" {
			return badRequest("deny click without trigger_id")
		}
		work = func(ctx context.Context) {
			a.openDenyModal(ctx, ic.TriggerID, denyState{RequestID: value, ResponseURL: ic.ResponseURL})
		}
	default:
		return badRequest("unknown action_id %q", act.ActionID)
	}
	if value == "" {
		return badRequest("%s button without a value", act.ActionID)
	}
	if !a.spawn(work) {
		// Slack marks the button with a warning on a non-200 answer.
		return ack{status: http.StatusServiceUnavailable, msg: busyText}
	}
	return ackEmpty
}

// openDenyModal opens the reason modal. trigger_id lives 3 s, which is why
// this runs right after the ack and does not wait for anything else.
func (a *Adapter) openDenyModal(ctx context.Context, triggerID string, st denyState) {
	view, err := denyModal(st)
	if err == nil {
		_, err = a.api.OpenViewContext(ctx, triggerID, view)
	}
	if err != nil {
		err = apiError("views.open", err)
		a.log.Error("opening the deny modal failed", "request", st.RequestID, "err", err)
		a.respond(ctx, st.ResponseURL, bot.Reply{Error: true,
			Text: "Could not open the reason dialog. Deny with `/access deny " + st.RequestID + " REASON` instead."})
	}
}

// viewSubmission handles the deny modal's submit: Review(DENY, reason).
// Slack waits up to 3 s for the answer, so the Handler gets
// viewSubmissionWait: an error Reply is shown in the modal under the reason
// (response_action errors), anything else closes it (clear) and is posted
// to the clicker privately. A Reply later than that closes the modal and is
// posted privately, error or not.
func (a *Adapter) viewSubmission(ic slackgo.InteractionCallback) ack {
	if ic.View.CallbackID != denyCallbackID {
		return badRequest("unknown view callback_id %q", ic.View.CallbackID)
	}
	st, err := parseDenyState(ic.View.PrivateMetadata)
	if err != nil {
		return badRequest("deny modal: %v", err)
	}
	var reason string
	if ic.View.State != nil {
		reason = strings.TrimSpace(ic.View.State.Values[reasonBlockID][reasonActionID].Value)
	}
	if reason == "" {
		return ack{status: http.StatusOK, body: slackgo.NewErrorsViewSubmissionResponse(map[string]string{reasonBlockID: reasonNeeded})}
	}

	answered := make(chan bot.Reply)
	abandoned := make(chan struct{})
	started := a.spawn(func(ctx context.Context) {
		r := a.h.Review(ctx, a.clicker(ctx, ic), st.RequestID, access.VerdictDeny, reason)
		select {
		case answered <- r:
			if !r.Error {
				a.respond(ctx, st.ResponseURL, r)
			}
		case <-abandoned:
			a.respond(ctx, st.ResponseURL, r)
		}
	})
	if !started {
		return ack{status: http.StatusOK, body: slackgo.NewErrorsViewSubmissionResponse(map[string]string{reasonBlockID: busyText})}
	}
	timer := time.NewTimer(viewSubmissionWait)
	defer timer.Stop()
	select {
	case r := <-answered:
		if r.Error {
			text := r.Text
			if text == "" {
				text = "The request could not be denied."
			}
			return ack{status: http.StatusOK, body: slackgo.NewErrorsViewSubmissionResponse(map[string]string{reasonBlockID: truncate(text, maxInputError)})}
		}
		return ack{status: http.StatusOK, body: slackgo.NewClearViewSubmissionResponse()}
	case <-timer.C:
		close(abandoned)
		return ack{status: http.StatusOK, body: slackgo.NewClearViewSubmissionResponse()}
	}
}
