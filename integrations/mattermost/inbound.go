package mattermost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/bot"
	"github.com/gatehouse-dev/gatehouse/bot/webhook"
)

// User-facing texts of refusals.
const (
	textNotConnected = "This Mattermost team is not connected to Gatehouse."
	textBadButton    = "This button could not be verified, so nothing was done. Use the buttons of the card itself, or `/access approve ID` / `/access deny ID reason`."
	textOldButton    = "This card's buttons have expired. Use a refreshed card, or `/access approve ID` / `/access deny ID reason`."
	textWorking      = "Working on it…"
	textBusy         = "Gatehouse is busy right now; try again in a moment."
)

// Routes are the inbound endpoints, keyed by method and path as
// http.ServeMux patterns. Each checks the optional address allow-list
// (403) and bounds the body (413) before anything else.
func (a *Adapter) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		"POST " + CommandsPath: a.inbound("command", a.serveCommand),
		"POST " + ActionsPath:  a.inbound("action", a.serveAction),
		"POST " + DialogsPath:  a.inbound("dialog", a.serveDialog),
	}
}

func (a *Adapter) inbound(kind string, serve func(http.ResponseWriter, *http.Request, []byte)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(a.cfg.AllowedAddresses) > 0 && !AddressAllowed(r.RemoteAddr, a.cfg.AllowedAddresses) {
			a.log.Warn("mattermost callback from an address not allowed", "kind", kind, "remote", r.RemoteAddr)
			http.Error(w, "address not allowed", http.StatusForbidden)
			return
		}
		body, err := webhook.ReadBody(r, maxBody)
		if errors.Is(err, webhook.ErrTooLarge) {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if err != nil {
			http.Error(w, "cannot read request body", http.StatusBadRequest)
			return
		}
		if a.TeamID() == "" {
			http.Error(w, "mattermost adapter not initialised", http.StatusServiceUnavailable)
			return
		}
		serve(w, r, body)
	})
}

// commandRequest is what Mattermost sends for a custom slash command, as a
// form (the default) or as JSON.
type commandRequest struct {
	Token       string `json:"token"`
	TeamID      string `json:"team_id"`
	TeamDomain  string `json:"team_domain"`
	ChannelID   string `json:"channel_id"`
	ChannelName string `json:"channel_name"`
	UserID      string `json:"user_id"`
	UserName    string `json:"user_name"`
	Command     string `json:"command"`
	Text        string `json:"text"`
	ResponseURL string `json:"response_url"`
	TriggerID   string `json:"trigger_id"`
}

func parseCommand(r *http.Request, body []byte) (commandRequest, error) {
	var c commandRequest
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" {
		if err := json.Unmarshal(body, &c); err != nil {
			return c, fmt.Errorf("decoding slash command JSON: %w", err)
		}
	} else {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return c, fmt.Errorf("decoding slash command form: %w", err)
		}
		c = commandRequest{
			Token: form.Get("token"), TeamID: form.Get("team_id"), TeamDomain: form.Get("team_domain"),
			ChannelID: form.Get("channel_id"), ChannelName: form.Get("channel_name"),
			UserID: form.Get("user_id"), UserName: form.Get("user_name"), Command: form.Get("command"),
			Text: form.Get("text"), ResponseURL: form.Get("response_url"), TriggerID: form.Get("trigger_id"),
		}
	}
	// Mattermost also sends the token as "Authorization: Token …".
	if c.Token == "" {
		if h := r.Header.Get("Authorization"); len(h) > 6 && strings.EqualFold(h[:6], "token ") {
			c.Token = h[6:]
		}
	}
	return c, nil
}

// serveCommand runs `/access …`. The answer is ephemeral. A command that
// takes longer than the deadline is answered "working…" and its result
// goes to the command's response_url when it is ready.
func (a *Adapter) serveCommand(w http.ResponseWriter, r *http.Request, body []byte) {
	cmd, err := parseCommand(r, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := VerifyCommandToken(cmd.Token, a.cfg.CommandToken); err != nil {
		a.log.Warn("mattermost slash command refused", "err", err, "remote", r.RemoteAddr, "team_id", cmd.TeamID, "user_id", cmd.UserID)
		http.Error(w, "bad command token", http.StatusUnauthorized)
		return
	}
	if cmd.TeamID != a.TeamID() {
		a.log.Info("mattermost slash command from another team", "team_id", cmd.TeamID, "team", cmd.TeamDomain, "user_id", cmd.UserID)
		writeJSON(w, http.StatusOK, &model.CommandResponse{ResponseType: model.CommandResponseTypeEphemeral, Text: textNotConnected})
		return
	}
	if !model.IsValidId(cmd.UserID) {
		http.Error(w, "slash command without a valid user_id", http.StatusBadRequest)
		return
	}

	// The command outlives this request when it misses the deadline, so
	// it does not take r's context.
	workCtx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), commandWorkTimeout)
	results := make(chan bot.Reply)
	late := make(chan struct{})
	started := a.workers.TryGo(func() {
		defer cancel()
		u := a.chatUser(workCtx, cmd.TeamID, cmd.UserID, cmd.UserName)
		reply := a.h.Command(workCtx, u, cmd.Text)
		select {
		case results <- reply:
		case <-late:
			a.respondLater(workCtx, cmd.ResponseURL, a.commandResponse(reply, cmd.UserID, cmd.TeamID))
		}
	})
	if !started {
		cancel()
		writeJSON(w, http.StatusOK, &model.CommandResponse{ResponseType: model.CommandResponseTypeEphemeral, Text: textBusy})
		return
	}
	timer := time.NewTimer(a.cfg.CommandDeadline)
	defer timer.Stop()
	select {
	case reply := <-results:
		writeJSON(w, http.StatusOK, a.commandResponse(reply, cmd.UserID, cmd.TeamID))
	case <-timer.C:
		close(late)
		writeJSON(w, http.StatusOK, &model.CommandResponse{ResponseType: model.CommandResponseTypeEphemeral, Text: textWorking})
	}
}

// respondLater posts a late command result to its response_url's hook on
// the configured Mattermost server.
func (a *Adapter) respondLater(ctx context.Context, responseURL string, resp *model.CommandResponse) {
	log := a.log.With("response_url", responseURL)
	target, err := lateResultURL(a.cfg.URL, responseURL)
	if err != nil {
		log.Warn("mattermost late command result dropped", "err", err)
		return
	}
	payload, err := json.Marshal(resp)
	if err != nil {
		log.Error("mattermost late command result", "err", err)
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(payload))
	if err != nil {
		log.Error("mattermost late command result", "err", err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		log.Warn("mattermost late command result not delivered", "err", err)
		return
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		log.Warn("mattermost late command result refused", "status", res.StatusCode)
	}
}

// lateResultURL is where a late command result goes: the hook that
// responseURL names, on the Mattermost server at base (mattermost.url).
// Mattermost builds response_url from its SiteURL, which often names the
// server differently than the address accessd reaches it by (a public
// name, a proxy). Only the hook id is taken from response_url, so the
// token-checked command can never send accessd's request elsewhere.
func lateResultURL(base, responseURL string) (string, error) {
	u, err := url.Parse(responseURL)
	if err != nil {
		return "", fmt.Errorf("response_url: %w", err)
	}
	i := strings.LastIndex(u.Path, "/hooks/commands/")
	if i < 0 {
		return "", fmt.Errorf("response_url %q is not a slash command hook (/hooks/commands/ID)", responseURL)
	}
	id := u.Path[i+len("/hooks/commands/"):]
	if !model.IsValidId(id) {
		return "", fmt.Errorf("response_url %q: %q is not a Mattermost id", responseURL, id)
	}
	return strings.TrimSuffix(base, "/") + "/hooks/commands/" + id, nil
}

// serveAction handles a button click. Mattermost signs nothing here, so the
// button's secret is checked before anything else is believed.
func (a *Adapter) serveAction(w http.ResponseWriter, r *http.Request, body []byte) {
	var req model.PostActionIntegrationRequest
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, "cannot decode action request", http.StatusBadRequest)
		return
	}
	action, secret := ctxString(req.Context, ctxAction), ctxString(req.Context, ctxSecret)
	log := a.log.With("action", action, "user_id", req.UserId, "post_id", req.PostId)
	ctx := r.Context()
	switch action {
	case bot.ActionApprove, bot.ActionDeny:
		requestID := ctxString(req.Context, ctxRequestID)
		if err := CheckButtonSecret(a.cfg.ButtonKey, secret, requestID, action, req.PostId, a.now()); err != nil {
			a.refuseButton(w, log.With("request_id", requestID), err)
			return
		}
		if req.TeamId != a.TeamID() {
			writeJSON(w, http.StatusOK, &model.PostActionIntegrationResponse{EphemeralText: textNotConnected})
			return
		}
		if !model.IsValidId(req.UserId) {
			http.Error(w, "action without a valid user_id", http.StatusBadRequest)
			return
		}
		if action == bot.ActionDeny {
			a.openDenyDialog(ctx, w, req, requestID)
			return
		}
		reply := a.h.Review(ctx, a.chatUser(ctx, req.TeamId, req.UserId, req.UserName), requestID, access.VerdictApprove, "")
		// The shared card is not replaced from here: the outbox edits it
		// for everyone once the review is stored.
		writeJSON(w, http.StatusOK, &model.PostActionIntegrationResponse{EphemeralText: ephemeralText(reply)})
	case bot.ActionConfirmLogin:
		code, teamID := ctxString(req.Context, ctxCode), ctxString(req.Context, ctxTeamID)
		if err := CheckButtonSecret(a.cfg.ButtonKey, secret, code, action, loginBinding(req.UserId, teamID), a.now()); err != nil {
			a.refuseButton(w, log, err)
			return
		}
		if teamID != a.TeamID() {
			writeJSON(w, http.StatusOK, &model.PostActionIntegrationResponse{EphemeralText: textNotConnected})
			return
		}
		reply := a.h.ConfirmLogin(ctx, a.chatUser(ctx, teamID, req.UserId, req.UserName), code)
		writeJSON(w, http.StatusOK, &model.PostActionIntegrationResponse{EphemeralText: ephemeralText(reply)})
	default:
		log.Warn("mattermost action refused: unknown action")
		writeJSON(w, http.StatusBadRequest, &model.PostActionIntegrationResponse{EphemeralText: textBadButton})
	}
}

func (a *Adapter) refuseButton(w http.ResponseWriter, log *slog.Logger, err error) {
	log.Warn("mattermost button refused", "err", err)
	text := textBadButton
	if errors.Is(err, ErrButtonExpired) {
		text = textOldButton
	}
	writeJSON(w, http.StatusForbidden, &model.PostActionIntegrationResponse{EphemeralText: text})
}

// denyState travels in the deny dialog's state and comes back with its
// submission. Its secret is bound to (request, "deny_reason", post, user,
// team): the state is visible to the clicker's client, and binding the
// clicker's id keeps them from submitting it under another user's id.
type denyState struct {
	RequestID string `json:"request_id"`
	PostID    string `json:"post_id"`
	TeamID    string `json:"team_id"`
	Secret    string `json:"secret"`
}

func dialogBinding(postID, userID, teamID string) string {
	return postID + "/user:" + userID + "/team:" + teamID
}

// openDenyDialog asks the clicker for the reason of a Deny.
func (a *Adapter) openDenyDialog(ctx context.Context, w http.ResponseWriter, req model.PostActionIntegrationRequest, requestID string) {
	st := denyState{RequestID: requestID, PostID: req.PostId, TeamID: req.TeamId}
	st.Secret = ButtonSecret(a.cfg.ButtonKey, requestID, actionDenyReason, dialogBinding(req.PostId, req.UserId, req.TeamId), a.now().Add(dialogTTL))
	state, err := json.Marshal(st)
	if err != nil {
		http.Error(w, "cannot encode dialog state", http.StatusInternalServerError)
		return
	}
	dialog := model.OpenDialogRequest{
		TriggerId: req.TriggerId,
		URL:       a.dialogsURL,
		Dialog: model.Dialog{
			CallbackId:       requestID,
			Title:            "Deny access request",
			IntroductionText: "Deny request `" + strings.ReplaceAll(requestID, "`", "") + "`. The requester and the channel see your reason.",
			Elements: []model.DialogElement{{
				DisplayName: "Reason", Name: "reason", Type: "textarea",
				Placeholder: "Why is this request denied?", MinLength: 1, MaxLength: 1000,
			}},
			SubmitLabel: "Deny",
			State:       string(state),
		},
	}
	if resp, err := a.client.OpenInteractiveDialog(ctx, dialog); err != nil {
		a.log.Warn("mattermost deny dialog not opened", "request_id", requestID, "err", apiError("open dialog", resp, err))
		writeJSON(w, http.StatusOK, &model.PostActionIntegrationResponse{
			EphemeralText: "Could not open the deny dialog. Use `/access deny " + requestID + " REASON` instead."})
		return
	}
	writeJSON(w, http.StatusOK, &model.PostActionIntegrationResponse{})
}

// serveDialog takes the deny dialog's submission.
func (a *Adapter) serveDialog(w http.ResponseWriter, r *http.Request, body []byte) {
	var req model.SubmitDialogRequest
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, "cannot decode dialog submission", http.StatusBadRequest)
		return
	}
	if req.Cancelled {
		writeJSON(w, http.StatusOK, &model.SubmitDialogResponse{})
		return
	}
	var st denyState
	_ = json.Unmarshal([]byte(req.State), &st) // a bad state fails the check below
	err := CheckButtonSecret(a.cfg.ButtonKey, st.Secret, st.RequestID, actionDenyReason, dialogBinding(st.PostID, req.UserId, st.TeamID), a.now())
	switch {
	case errors.Is(err, ErrButtonExpired):
		writeJSON(w, http.StatusOK, &model.SubmitDialogResponse{Error: "This dialog has expired. Click Deny on the card again."})
		return
	case err != nil:
		a.log.Warn("mattermost dialog submission refused", "err", err, "user_id", req.UserId, "request_id", st.RequestID)
		writeJSON(w, http.StatusForbidden, &model.SubmitDialogResponse{Error: "This dialog could not be verified, so nothing was done."})
		return
	case st.TeamID != a.TeamID():
		writeJSON(w, http.StatusOK, &model.SubmitDialogResponse{Error: textNotConnected})
		return
	}
	reason, _ := req.Submission["reason"].(string)
	reason = strings.TrimSpace(reason)
	if reason == "" {
		writeJSON(w, http.StatusOK, &model.SubmitDialogResponse{Errors: map[string]string{"reason": "Say why the request is denied."}})
		return
	}
	ctx := r.Context()
	reply := a.h.Review(ctx, a.chatUser(ctx, st.TeamID, req.UserId, ""), st.RequestID, access.VerdictDeny, reason)
	if reply.Error {
		writeJSON(w, http.StatusOK, &model.SubmitDialogResponse{Error: ephemeralText(reply)})
		return
	}
	writeJSON(w, http.StatusOK, &model.SubmitDialogResponse{})
}

// chatUser is the verified caller. With EmailLookup it asks Mattermost for
// the user's e-mail (and name, which dialog submissions do not carry); a
// failed lookup leaves them empty, which maps by e-mail to nobody.
func (a *Adapter) chatUser(ctx context.Context, teamID, userID, userName string) bot.ChatUser {
	u := bot.ChatUser{Platform: bot.Mattermost, Workspace: teamID, ID: userID, Name: userName}
	if !a.cfg.EmailLookup && userName != "" {
		return u
	}
	mu, resp, err := a.client.GetUser(ctx, userID, "")
	if err != nil {
		a.log.Warn("mattermost user lookup failed", "user_id", userID, "err", apiError("get user", resp, err))
		return u
	}
	if u.Name == "" {
		u.Name = mu.Username
	}
	if a.cfg.EmailLookup {
		u.Email = mu.Email
	}
	return u
}

func ctxString(ctx map[string]any, key string) string {
	s, _ := ctx[key].(string)
	return s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
