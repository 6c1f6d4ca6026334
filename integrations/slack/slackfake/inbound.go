package slackfake

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	slackgo "github.com/slack-go/slack"
)

// RequestOption changes how an inbound request is made: how it is signed
// (for refusal tests) or where it comes from.
type RequestOption func(*requestOpts)

type requestOpts struct {
	secret    string
	timestamp time.Time
	channelID string
}

// WithSecret signs with secret instead of the server's signing secret: a
// forgery.
func WithSecret(secret string) RequestOption { return func(o *requestOpts) { o.secret = secret } }

// WithTimestamp signs with t as X-Slack-Request-Timestamp (a stale
// request when t is more than 5 minutes from the app's clock).
func WithTimestamp(t time.Time) RequestOption { return func(o *requestOpts) { o.timestamp = t } }

// InChannel sends a slash command from channelID (default: a DM with the
// app, "D0APPHOME").
func InChannel(channelID string) RequestOption {
	return func(o *requestOpts) { o.channelID = channelID }
}

type sentRequest struct {
	url     string
	body    []byte
	headers http.Header
}

// Sign computes X-Slack-Signature for body at timestamp, as Slack does:
// "v0=" + hex(HMAC-SHA256(secret, "v0:" + timestamp + ":" + body)).
func Sign(secret, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%s:", timestamp)
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

func (s *Server) options(opts []RequestOption) requestOpts {
	o := requestOpts{secret: s.SigningSecret, timestamp: time.Now(), channelID: "D0APPHOME"}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// postSigned POSTs a form body, signed, and remembers it for Resend.
func (s *Server) postSigned(target string, form url.Values, o requestOpts) (int, string, error) {
	body := []byte(form.Encode())
	ts := strconv.FormatInt(o.timestamp.Unix(), 10)
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set("User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)")
	h.Set("X-Slack-Request-Timestamp", ts)
	h.Set("X-Slack-Signature", Sign(o.secret, ts, body))
	req := &sentRequest{url: target, body: body, headers: h}
	s.mu.Lock()
	s.last = req
	s.mu.Unlock()
	return s.send(req)
}

func (s *Server) send(req *sentRequest) (int, string, error) {
	r, err := http.NewRequest(http.MethodPost, req.url, bytes.NewReader(req.body))
	if err != nil {
		return 0, "", err
	}
	r.Header = req.headers.Clone()
	resp, err := s.client.Do(r)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// Resend repeats the last inbound request byte for byte, headers and
// signature included: a replay.
func (s *Server) Resend() (status int, body string, err error) {
	s.mu.Lock()
	last := s.last
	s.mu.Unlock()
	if last == nil {
		return 0, "", fmt.Errorf("slackfake: nothing sent yet")
	}
	return s.send(last)
}

// issue hands out a trigger_id and a response_url for one interaction by u.
func (s *Server) issue(u User, channelID string) (triggerID, respURL string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	sum := sha256.Sum256([]byte(u.ID + strconv.Itoa(s.seq)))
	triggerID = fmt.Sprintf("%d.%d.%x", s.seq, time.Now().UnixNano(), sum[:16])
	s.triggers[triggerID] = &trigger{user: u, issued: time.Now()}
	secret := sha256.Sum256([]byte(triggerID))
	path := fmt.Sprintf("/response-url/%s/%d/%x", s.TeamID, s.seq, secret[:12])
	s.respURLs[path] = &responseURL{user: u, channel: channelID, issued: time.Now()}
	return triggerID, s.base + path
}

func (s *Server) user(u User) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addUser(u)
}

// slashCommandPayload is the slash command as Slack sends it: form fields
// over HTTP, the same fields as a JSON object over Socket Mode.
func (s *Server) slashCommandPayload(u User, text string, o requestOpts) slackgo.SlashCommand {
	u = s.user(u)
	trigger, respURL := s.issue(u, o.channelID)
	return slackgo.SlashCommand{
		Token: "verification-token-unused", TeamID: u.TeamID, TeamDomain: DefaultTeamDomain,
		ChannelID: o.channelID, ChannelName: "directmessage", UserID: u.ID, UserName: u.Name,
		Command: Command, Text: text, ResponseURL: respURL, TriggerID: trigger, APIAppID: AppID,
	}
}

// SlashCommand sends "/access text" as u to the app's command URL (the
// full URL of POST /v1/hooks/slack/commands) and returns the app's answer.
// The response_url in it points at the fake: what the app posts there
// shows up in Responses.
func (s *Server) SlashCommand(hookURL string, u User, text string, opts ...RequestOption) (status int, body string, err error) {
	o := s.options(opts)
	cmd := s.slashCommandPayload(u, text, o)
	form := url.Values{
		"token": {cmd.Token}, "team_id": {cmd.TeamID}, "team_domain": {cmd.TeamDomain},
		"channel_id": {cmd.ChannelID}, "channel_name": {cmd.ChannelName}, "user_id": {cmd.UserID},
		"user_name": {cmd.UserName}, "command": {cmd.Command}, "text": {cmd.Text}, "api_app_id": {cmd.APIAppID},
		"is_enterprise_install": {"false"}, "response_url": {cmd.ResponseURL}, "trigger_id": {cmd.TriggerID},
	}
	return s.postSigned(hookURL, form, o)
}

// blockActionPayload is a button click on msg, as Slack's block_actions
// payload.
func (s *Server) blockActionPayload(u User, msg Message, actionID string) (map[string]any, error) {
	var blocks slackgo.Blocks
	if err := json.Unmarshal(msg.Blocks, &blocks); err != nil && len(msg.Blocks) > 0 {
		return nil, fmt.Errorf("slackfake: message blocks: %w", err)
	}
	var action map[string]any
	for _, b := range blocks.BlockSet {
		ab, ok := b.(*slackgo.ActionBlock)
		if !ok || ab.Elements == nil {
			continue
		}
		for _, e := range ab.Elements.ElementSet {
			if btn, ok := e.(*slackgo.ButtonBlockElement); ok && btn.ActionID == actionID {
				action = map[string]any{
					"type": "button", "action_id": btn.ActionID, "block_id": ab.BlockID, "text": btn.Text,
					"value": btn.Value, "action_ts": fmt.Sprintf("%d.%06d", time.Now().Unix(), time.Now().Nanosecond()/1000),
				}
				if btn.Style != "" {
					action["style"] = btn.Style
				}
			}
		}
	}
	if action == nil {
		return nil, fmt.Errorf("slackfake: the message has no %q button (buttons: %v)", actionID, msg.Buttons)
	}
	u = s.user(u)
	trigger, respURL := s.issue(u, msg.Channel)
	p := map[string]any{
		"type":                  "block_actions",
		"user":                  map[string]any{"id": u.ID, "username": u.Name, "name": u.Name, "team_id": u.TeamID},
		"api_app_id":            AppID,
		"token":                 "verification-token-unused",
		"container":             map[string]any{"type": "message", "message_ts": msg.TS, "channel_id": msg.Channel, "is_ephemeral": msg.Ephemeral},
		"trigger_id":            trigger,
		"team":                  map[string]any{"id": u.TeamID, "domain": DefaultTeamDomain},
		"is_enterprise_install": false,
		"channel":               map[string]any{"id": msg.Channel},
		"state":                 map[string]any{"values": map[string]any{}},
		"response_url":          respURL,
		"actions":               []any{action},
	}
	if !msg.Ephemeral {
		m := map[string]any{"type": "message", "user": BotUserID, "bot_id": BotID, "text": msg.Text, "ts": msg.TS}
		if len(msg.Blocks) > 0 {
			m["blocks"] = msg.Blocks
		}
		p["message"] = m
	}
	return p, nil
}

// ClickButton clicks the button with actionID on msg (a channel message, a
// DM, or a Response's Message) as u, sending Slack's block_actions payload
// to the app's interactivity URL. The payload's response_url and trigger_id
// point at the fake.
func (s *Server) ClickButton(interactionsURL string, u User, msg Message, actionID string, opts ...RequestOption) (status int, body string, err error) {
	p, err := s.blockActionPayload(u, msg, actionID)
	if err != nil {
		return 0, "", err
	}
	return s.postPayload(interactionsURL, p, s.options(opts))
}

// viewSubmissionPayload submits view with values (block_id -> text typed
// into that input block).
func (s *Server) viewSubmissionPayload(u User, view View, values map[string]string) (map[string]any, error) {
	state := map[string]any{}
	for blockID, v := range values {
		actionID, ok := view.Inputs[blockID]
		if !ok {
			return nil, fmt.Errorf("slackfake: the view has no input block %q (inputs: %v)", blockID, view.Inputs)
		}
		state[blockID] = map[string]any{actionID: map[string]any{"type": "plain_text_input", "value": v}}
	}
	u = s.user(u)
	trigger, _ := s.issue(u, "")
	blocks := view.Blocks
	if blocks == nil {
		blocks = json.RawMessage("[]")
	}
	return map[string]any{
		"type":       "view_submission",
		"team":       map[string]any{"id": u.TeamID, "domain": DefaultTeamDomain},
		"user":       map[string]any{"id": u.ID, "username": u.Name, "name": u.Name, "team_id": u.TeamID},
		"api_app_id": AppID,
		"token":      "verification-token-unused",
		"trigger_id": trigger,
		"view": map[string]any{
			"id": view.ID, "team_id": s.TeamID, "type": "modal", "blocks": blocks,
			"private_metadata": view.PrivateMetadata, "callback_id": view.CallbackID,
			"state": map[string]any{"values": state}, "hash": fmt.Sprintf("%d.%s", time.Now().Unix(), view.ID),
			"title": map[string]any{"type": "plain_text", "text": view.Title}, "root_view_id": view.ID,
			"app_id": AppID, "bot_id": BotID, "app_installed_team_id": s.TeamID,
		},
		"response_urls":         []any{},
		"is_enterprise_install": false,
	}, nil
}

// SubmitView submits the modal view (from Views) as u with values, a map of
// input block_id to the text typed, sending Slack's view_submission payload.
// The answer's body is the app's response_action JSON.
func (s *Server) SubmitView(interactionsURL string, u User, view View, values map[string]string, opts ...RequestOption) (status int, body string, err error) {
	p, err := s.viewSubmissionPayload(u, view, values)
	if err != nil {
		return 0, "", err
	}
	return s.postPayload(interactionsURL, p, s.options(opts))
}

// postPayload sends an interaction payload as Slack does: a form with one
// field, payload, holding the JSON.
func (s *Server) postPayload(target string, p map[string]any, o requestOpts) (int, string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return 0, "", err
	}
	return s.postSigned(target, url.Values{"payload": {string(b)}}, o)
}

// PostRaw POSTs an arbitrary form to url, signed with the options: for
// tests of malformed payloads that are still authentic.
func (s *Server) PostRaw(target string, form url.Values, opts ...RequestOption) (status int, body string, err error) {
	return s.postSigned(target, form, s.options(opts))
}
