package mattermostfake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mattermost/mattermost/server/public/model"
)

// maxIntegrationResponse bounds what the fake reads of an integration's
// answer.
const maxIntegrationResponse = 1 << 20

// CommandOption changes one SlashCommand.
type CommandOption func(*commandCall)

type commandCall struct {
	token     string
	channelID string
	command   string
}

// WithToken sends token instead of the command's token (to test refusals).
func WithToken(token string) CommandOption { return func(c *commandCall) { c.token = token } }

// InChannel runs the command in channelID instead of the team's
// town-square.
func InChannel(channelID string) CommandOption {
	return func(c *commandCall) { c.channelID = channelID }
}

func (s *Server) siteURL() string {
	if s.opts.SiteURL != "" {
		return s.opts.SiteURL
	}
	return s.URL
}

// SlashCommand sends "/access text" typed by u to the command's URL
// (hookURL) as Mattermost does: a form POST with token, team_id,
// team_domain, channel_id, channel_name, user_id, user_name, command,
// text, response_url and trigger_id, and "Authorization: Token …". The
// team is u.TeamID (the first team when empty). A 200 answer is parsed as
// Mattermost parses it and shown to u (Ephemeral); other statuses return
// an empty response, as Mattermost then shows only an error.
func (s *Server) SlashCommand(hookURL string, u User, text string, opts ...CommandOption) (int, model.CommandResponse, error) {
	call := commandCall{token: s.opts.CommandToken, command: "/access"}
	for _, o := range opts {
		o(&call)
	}
	s.mu.Lock()
	teamID := u.TeamID
	if teamID == "" {
		teamID = s.teamID
	}
	var teamName string
	if t := s.teams[teamID]; t != nil {
		teamName = t.Name
	}
	if call.channelID == "" {
		if c := s.channelByNameLocked(teamName, "town-square"); c != nil {
			call.channelID = c.ID
		}
	}
	var channelName string
	if c := s.channels[call.channelID]; c != nil {
		channelName = c.Name
	}
	hookID := model.NewId()
	s.hooks[hookID] = &commandHook{UserID: u.ID, ChannelID: call.channelID, Created: time.Now()}
	s.mu.Unlock()
	triggerID, err := s.newTrigger(u.ID, call.channelID, teamID)
	if err != nil {
		return 0, model.CommandResponse{}, err
	}

	form := url.Values{
		"token":        {call.token},
		"team_id":      {teamID},
		"team_domain":  {teamName},
		"channel_id":   {call.channelID},
		"channel_name": {channelName},
		"user_id":      {u.ID},
		"user_name":    {u.Name},
		"command":      {call.command},
		"text":         {text},
		"response_url": {s.siteURL() + "/hooks/commands/" + hookID},
		"trigger_id":   {triggerID},
	}
	status, header, body, err := s.send(hookURL, "application/x-www-form-urlencoded", []byte(form.Encode()),
		map[string]string{"Authorization": "Token " + call.token, "Accept": "application/json"})
	if err != nil || status != http.StatusOK {
		return status, model.CommandResponse{}, err
	}
	resp, err := model.CommandResponseFromHTTPBody(header.Get("Content-Type"), bytes.NewReader(body))
	if err != nil || resp == nil {
		return status, model.CommandResponse{}, fmt.Errorf("mattermostfake: slash command answer: %v", err)
	}
	s.mu.Lock()
	s.showCommandResponseLocked(u.ID, call.channelID, resp)
	s.mu.Unlock()
	return status, *resp, nil
}

// ClickButton clicks the button named buttonName of msg as u: it POSTs to
// the button's integration URL what Mattermost POSTs (user_id, user_name,
// channel_id, channel_name, team_id, team_domain, post_id, a fresh
// trigger_id, type and the button's context, copied verbatim from msg, so
// a test may tamper with msg first). A 200 answer is applied as Mattermost
// applies it (update replaces the post; ephemeral_text is shown to u); the
// answer is decoded whatever the status.
func (s *Server) ClickButton(msg Message, buttonName string, u User) (int, model.PostActionIntegrationResponse, error) {
	var button *Button
	for i := range msg.Buttons {
		if msg.Buttons[i].Name == buttonName {
			button = &msg.Buttons[i]
			break
		}
	}
	if button == nil {
		return 0, model.PostActionIntegrationResponse{}, fmt.Errorf("mattermostfake: message %s has no button %q", msg.ID, buttonName)
	}
	s.mu.Lock()
	var teamID, teamName, channelName string
	if c := s.channels[msg.ChannelID]; c != nil {
		// Mattermost sends the channel's team: none for direct channels.
		teamID, channelName = c.TeamID, c.Name
		if t := s.teams[c.TeamID]; t != nil {
			teamName = t.Name
		}
	}
	s.mu.Unlock()
	triggerID, err := s.newTrigger(u.ID, msg.ChannelID, teamID)
	if err != nil {
		return 0, model.PostActionIntegrationResponse{}, err
	}
	req := model.PostActionIntegrationRequest{
		UserId: u.ID, UserName: u.Name, ChannelId: msg.ChannelID, ChannelName: channelName,
		TeamId: teamID, TeamName: teamName, PostId: msg.ID, TriggerId: triggerID,
		Type: model.PostActionTypeButton, Context: button.Context,
	}
	payload, err := json.Marshal(req)
	if err != nil {
		return 0, model.PostActionIntegrationResponse{}, err
	}
	status, _, body, err := s.send(button.URL, "application/json", payload, nil)
	if err != nil {
		return 0, model.PostActionIntegrationResponse{}, err
	}
	var resp model.PostActionIntegrationResponse
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &resp); err != nil && status == http.StatusOK {
			return status, resp, fmt.Errorf("mattermostfake: button answer: %w", err)
		}
	}
	if status == http.StatusOK {
		s.applyActionResponse(msg, u, &resp)
	}
	return status, resp, nil
}

func (s *Server) applyActionResponse(msg Message, u User, resp *model.PostActionIntegrationResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if resp.Update != nil {
		if sp, ok := s.posts[msg.ID]; ok {
			edited := clonePost(sp.post)
			edited.Message = resp.Update.Message
			props := clonePost(resp.Update).GetProps()
			for _, key := range model.PostActionRetainPropKeys {
				if v, ok := sp.post.GetProps()[key]; ok {
					props[key] = v
				}
			}
			edited.SetProps(props)
			edited.UpdateAt = s.nowMillisLocked()
			sp.post, sp.edits = edited, sp.edits+1
		}
		for i, m := range s.ephemeral {
			if m.ID == msg.ID {
				up := clonePost(resp.Update)
				nm := messageOf(up, m.Edits+1)
				nm.ID, nm.ChannelID, nm.UserID, nm.Ephemeral = m.ID, m.ChannelID, m.UserID, true
				s.ephemeral[i] = nm
			}
		}
	}
	if resp.EphemeralText != "" {
		s.ephemeral = append(s.ephemeral, Message{ID: model.NewId(), ChannelID: msg.ChannelID, UserID: u.ID, Text: resp.EphemeralText, Ephemeral: true})
	}
}

// SubmitDialog submits d as u with the given field values, as Mattermost
// does: a SubmitDialogRequest (type dialog_submission, callback_id, state,
// user_id, channel_id, team_id, submission) POSTed to d.URL. Like the web
// app it refuses, without sending, a value longer than its element's
// max_length. The answer is decoded whatever the status.
func (s *Server) SubmitDialog(d Dialog, u User, submission map[string]any) (int, model.SubmitDialogResponse, error) {
	for _, el := range d.Dialog.Elements {
		if v, ok := submission[el.Name].(string); ok && el.MaxLength > 0 && utf8.RuneCountInString(v) > el.MaxLength {
			return 0, model.SubmitDialogResponse{}, fmt.Errorf("mattermostfake: %q is longer than its max_length %d", el.Name, el.MaxLength)
		}
	}
	req := model.SubmitDialogRequest{
		Type: "dialog_submission", URL: d.URL, CallbackId: d.Dialog.CallbackId, State: d.Dialog.State,
		UserId: u.ID, ChannelId: d.ChannelID, TeamId: d.TeamID, Submission: submission,
	}
	payload, err := json.Marshal(req)
	if err != nil {
		return 0, model.SubmitDialogResponse{}, err
	}
	status, _, body, err := s.send(d.URL, "application/json", payload, nil)
	if err != nil {
		return 0, model.SubmitDialogResponse{}, err
	}
	var resp model.SubmitDialogResponse
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &resp); err != nil && status == http.StatusOK {
			return status, resp, fmt.Errorf("mattermostfake: dialog answer: %w", err)
		}
	}
	return status, resp, nil
}

// newTrigger makes a trigger id for userID the way Mattermost does (signed,
// timestamped) and remembers where the click happened.
func (s *Server) newTrigger(userID, channelID, teamID string) (string, error) {
	clientID, triggerID, appErr := model.GenerateTriggerId(userID, s.triggerKey)
	if appErr != nil {
		return "", appErr
	}
	s.mu.Lock()
	s.triggers[clientID] = triggerInfo{UserID: userID, ChannelID: channelID, TeamID: teamID}
	s.mu.Unlock()
	return triggerID, nil
}

// send POSTs to an integration.
func (s *Server) send(target, contentType string, body []byte, headers map[string]string) (int, http.Header, []byte, error) {
	if !strings.HasPrefix(target, "http://") && !strings.HasPrefix(target, "https://") {
		return 0, nil, nil, errors.New("mattermostfake: integration URL " + target + " is not http(s)")
	}
	req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := s.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	out, err := io.ReadAll(io.LimitReader(res.Body, maxIntegrationResponse))
	if err != nil {
		return res.StatusCode, res.Header, nil, err
	}
	return res.StatusCode, res.Header, out, nil
}
