package mattermost

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/bot"
	"github.com/gatehouse-dev/gatehouse/bot/bottest"
	"github.com/gatehouse-dev/gatehouse/integrations/mattermost/mattermostfake"
)

func TestSlashCommand(t *testing.T) {
	cases := []struct {
		name      string
		configure func(*Config)
		user      func(e *env) mattermostfake.User
		opts      []mattermostfake.CommandOption
		status    int
		wantText  string
		wantCall  bool
		wantEmail string
	}{
		{name: "runs as the caller, answer only for them", status: 200, wantText: "ok", wantCall: true},
		{name: "e-mail looked up when mapping by e-mail is on", configure: func(c *Config) { c.EmailLookup = true },
			status: 200, wantText: "ok", wantCall: true, wantEmail: "alice@example.com"},
		{name: "wrong command token", opts: []mattermostfake.CommandOption{mattermostfake.WithToken("not-the-token")}, status: 401},
		{name: "empty command token", opts: []mattermostfake.CommandOption{mattermostfake.WithToken("")}, status: 401},
		{name: "another team", user: func(e *env) mattermostfake.User {
			u := e.alice
			u.TeamID = e.mm.AddTeam("elsewhere")
			return u
		}, status: 200, wantText: textNotConnected},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var configure []func(*Config)
			if tc.configure != nil {
				configure = append(configure, tc.configure)
			}
			e := newEnv(t, configure...)
			u := e.alice
			if tc.user != nil {
				u = tc.user(e)
			}
			status, resp, err := e.mm.SlashCommand(e.url(CommandsPath), u, "request dba for 2h", tc.opts...)
			if err != nil {
				t.Fatalf("SlashCommand: %v", err)
			}
			if status != tc.status {
				t.Fatalf("status %d, want %d", status, tc.status)
			}
			if tc.wantText != "" && (resp.Text != tc.wantText || resp.ResponseType != model.CommandResponseTypeEphemeral) {
				t.Errorf("response %q (%s), want ephemeral %q", resp.Text, resp.ResponseType, tc.wantText)
			}
			calls := e.h.Calls()
			if !tc.wantCall {
				if len(calls) != 0 {
					t.Fatalf("handler called: %+v", calls)
				}
				return
			}
			want := bottest.Call{Method: bottest.MethodCommand, Text: "request dba for 2h", User: bot.ChatUser{
				Platform: bot.Mattermost, Workspace: e.mm.TeamID(), ID: e.alice.ID, Name: "alice", Email: tc.wantEmail}}
			if len(calls) != 1 || calls[0] != want {
				t.Fatalf("handler calls %+v, want %+v", calls, want)
			}
		})
	}
}

func TestSlashCommandAsJSON(t *testing.T) {
	e := newEnv(t)
	body, _ := json.Marshal(map[string]string{"token": e.mm.CommandToken(), "team_id": e.mm.TeamID(), "user_id": e.alice.ID,
		"user_name": "alice", "text": "ls", "command": "/access"})
	res, err := http.Post(e.url(CommandsPath), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var resp model.CommandResponse
	if err := json.NewDecoder(res.Body).Decode(&resp); err != nil || res.StatusCode != 200 || resp.Text != "ok" {
		t.Fatalf("status %d, response %+v, err %v", res.StatusCode, resp, err)
	}
	if calls := e.h.Calls(); len(calls) != 1 || calls[0].Text != "ls" {
		t.Fatalf("handler calls %+v", calls)
	}
}

func TestSlowCommandAnswersLaterThroughResponseURL(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CommandDeadline = 20 * time.Millisecond })
	e.h.Hold()
	// Should the answer wait for the handler after all, release it late
	// rather than hang: the answer then carries the result, not textWorking.
	defer time.AfterFunc(time.Second, e.h.Release).Stop()
	e.h.SetReply(bot.Reply{Text: "request `R-1` created"})
	status, resp, err := e.mm.SlashCommand(e.url(CommandsPath), e.alice, "request dba")
	if err != nil || status != 200 || resp.Text != textWorking {
		t.Fatalf("first answer: status %d %q err %v, want %q", status, resp.Text, err, textWorking)
	}
	e.h.Release()
	_ = e.a.Shutdown(context.Background())
	shown := e.mm.Ephemeral(e.alice.ID)
	if len(shown) != 2 || shown[1].Text != "request `R-1` created" {
		t.Fatalf("ephemeral posts %+v, want the working notice then the result", shown)
	}
	if got := e.mm.Calls(mattermostfake.RouteCommandResponse); got != 1 {
		t.Fatalf("response_url called %d times, want 1", got)
	}
}

// TestLateResultReachesTheConfiguredServer: Mattermost names itself by its
// SiteURL in response_url, often not the address accessd reaches it by;
// the late result still arrives, through mattermost.url.
func TestLateResultReachesTheConfiguredServer(t *testing.T) {
	e := newEnvWith(t, mattermostfake.Options{SiteURL: "https://chat.example.com/mm"}, func(c *Config) { c.CommandDeadline = 20 * time.Millisecond })
	e.h.Hold()
	defer time.AfterFunc(time.Second, e.h.Release).Stop()
	e.h.SetReply(bot.Reply{Text: "request `R-1` created"})
	if status, resp, err := e.mm.SlashCommand(e.url(CommandsPath), e.alice, "request dba"); err != nil || status != 200 || resp.Text != textWorking {
		t.Fatalf("first answer: status %d %q err %v, want %q", status, resp.Text, err, textWorking)
	}
	e.h.Release()
	_ = e.a.Shutdown(context.Background())
	if shown := e.mm.Ephemeral(e.alice.ID); len(shown) != 2 || shown[1].Text != "request `R-1` created" {
		t.Fatalf("ephemeral posts %+v, want the working notice then the result", shown)
	}
}

func TestLateResultURL(t *testing.T) {
	const id = "xbrkb8p393gjpq5cawei7npije"
	cases := []struct {
		base, responseURL, want, err string
	}{
		{"http://mm:8065", "http://mm:8065/hooks/commands/" + id, "http://mm:8065/hooks/commands/" + id, ""},
		{"http://mm:8065/", "https://chat.example.com/hooks/commands/" + id, "http://mm:8065/hooks/commands/" + id, ""},
		{"http://mm:8065/sub", "https://chat.example.com/sub/hooks/commands/" + id, "http://mm:8065/sub/hooks/commands/" + id, ""},
		// Whatever response_url says, the request goes to base.
		{"http://mm:8065", "http://169.254.169.254/hooks/commands/" + id, "http://mm:8065/hooks/commands/" + id, ""},
		{"http://mm:8065", "http://mm:8065/api/v4/posts", "", "not a slash command hook"},
		{"http://mm:8065", "http://mm:8065/hooks/commands/" + id + "/../../api/v4/users", "", "not a Mattermost id"},
		{"http://mm:8065", "http://mm:8065/hooks/commands/short", "", "not a Mattermost id"},
		{"http://mm:8065", "http://mm:8065/hooks/commands/" + id + "?x=1#y", "http://mm:8065/hooks/commands/" + id, ""},
		{"http://mm:8065", "%zz", "", "response_url"},
	}
	for _, tc := range cases {
		got, err := lateResultURL(tc.base, tc.responseURL)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("lateResultURL(%q, %q) = %q, %v; want an error with %q", tc.base, tc.responseURL, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("lateResultURL(%q, %q) = %q, %v; want %q", tc.base, tc.responseURL, got, err, tc.want)
		}
	}
}

func TestAllowListRefusesOtherAddresses(t *testing.T) {
	cases := []struct {
		name    string
		allowed []string
		status  int
	}{
		{"the Mattermost server's address", []string{"127.0.0.1"}, 200},
		{"its network", []string{"127.0.0.0/8", "::1"}, 200},
		{"another address", []string{"192.0.2.10"}, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.AllowedAddresses = tc.allowed })
			status, _, err := e.mm.SlashCommand(e.url(CommandsPath), e.alice, "ls")
			if err != nil || status != tc.status {
				t.Fatalf("command: status %d err %v, want %d", status, err, tc.status)
			}
			card := e.postCard(t, e.channel, "R-1")
			status, _, err = e.mm.ClickButton(card, "Approve", e.bob)
			if err != nil || status != tc.status {
				t.Fatalf("click: status %d err %v, want %d", status, err, tc.status)
			}
			if calls := e.h.Calls(); (tc.status == 403) != (len(calls) == 0) {
				t.Fatalf("handler calls %+v with status %d", calls, tc.status)
			}
		})
	}
}

func TestOversizedBodyRefused(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{CommandsPath, ActionsPath, DialogsPath} {
		res, err := http.Post(e.url(path), "application/json", bytes.NewReader(make([]byte, maxBody+1)))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("%s: status %d, want 413", path, res.StatusCode)
		}
	}
	if calls := e.h.Calls(); len(calls) != 0 {
		t.Fatalf("handler called: %+v", calls)
	}
}

func TestApproveClickIsAReviewByTheClicker(t *testing.T) {
	e := newEnv(t)
	e.h.SetReply(bot.Reply{Text: "Approved `R-7`."})
	card := e.postCard(t, e.channel, "R-7")
	status, resp, err := e.mm.ClickButton(card, "Approve", e.bob)
	if err != nil || status != 200 {
		t.Fatalf("click: status %d err %v", status, err)
	}
	if resp.EphemeralText != "Approved `R-7`." || resp.Update != nil {
		t.Errorf("answer %+v: want the reply as ephemeral text and the shared post left alone", resp)
	}
	want := bottest.Call{Method: bottest.MethodReview, RequestID: "R-7", Verdict: access.VerdictApprove,
		User: bot.ChatUser{Platform: bot.Mattermost, Workspace: e.mm.TeamID(), ID: e.bob.ID, Name: "bob"}}
	if calls := e.h.Calls(); len(calls) != 1 || calls[0] != want {
		t.Fatalf("handler calls %+v, want %+v", calls, want)
	}
}

func TestTamperedOrOldButtonsRefused(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(t testing.TB, e *env, card *mattermostfake.Message)
		text   string
	}{
		{"request id changed", func(t testing.TB, e *env, card *mattermostfake.Message) {
			card.Buttons[0].Context[ctxRequestID] = "R-other"
		}, textBadButton},
		{"approve secret used for deny", func(t testing.TB, e *env, card *mattermostfake.Message) {
			card.Buttons[0].Context[ctxAction] = bot.ActionDeny
		}, textBadButton},
		{"button copied from another post of the same request", func(t testing.TB, e *env, card *mattermostfake.Message) {
			other := e.postCard(t, e.mm.AddChannel(e.mm.Team(), "elsewhere"), "R-1")
			card.Buttons[0].Context = other.Buttons[0].Context
		}, textBadButton},
		{"secret missing", func(t testing.TB, e *env, card *mattermostfake.Message) {
			delete(card.Buttons[0].Context, ctxSecret)
		}, textBadButton},
		{"secret made under another key", func(t testing.TB, e *env, card *mattermostfake.Message) {
			card.Buttons[0].Context[ctxSecret] = ButtonSecret(bytes.Repeat([]byte{1}, 32), "R-1", "approve", card.ID, e.clock.Now().Add(time.Hour))
		}, textBadButton},
		{"card older than the button TTL", func(t testing.TB, e *env, card *mattermostfake.Message) {
			e.clock.Advance(DefaultButtonTTL + time.Minute)
		}, textOldButton},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			card := e.postCard(t, e.channel, "R-1")
			tc.tamper(t, e, &card)
			status, resp, err := e.mm.ClickButton(card, "Approve", e.bob)
			if err != nil {
				t.Fatal(err)
			}
			if status != http.StatusForbidden || resp.EphemeralText != tc.text {
				t.Fatalf("status %d %q, want 403 %q", status, resp.EphemeralText, tc.text)
			}
			if calls := e.h.Calls(); len(calls) != 0 {
				t.Fatalf("handler called: %+v", calls)
			}
		})
	}
}

func TestClickFromAnotherTeamRefused(t *testing.T) {
	e := newEnv(t)
	e.mm.AddTeam("elsewhere")
	ch := e.mm.AddChannel("elsewhere", "access")
	card := e.postCard(t, ch, "R-1")
	status, resp, err := e.mm.ClickButton(card, "Approve", e.bob)
	if err != nil || status != 200 || resp.EphemeralText != textNotConnected {
		t.Fatalf("status %d %q err %v", status, resp.EphemeralText, err)
	}
	if calls := e.h.Calls(); len(calls) != 0 {
		t.Fatalf("handler called: %+v", calls)
	}
}

func TestDenyOpensDialogThenReviews(t *testing.T) {
	e := newEnv(t)
	card := e.postCard(t, e.channel, "R-9")
	status, resp, err := e.mm.ClickButton(card, "Deny", e.bob)
	if err != nil || status != 200 || resp.EphemeralText != "" {
		t.Fatalf("deny click: status %d %+v err %v", status, resp, err)
	}
	if calls := e.h.Calls(); len(calls) != 0 {
		t.Fatalf("a deny click alone reviewed: %+v", calls)
	}
	dialogs := e.mm.Dialogs()
	if len(dialogs) != 1 || dialogs[0].URL != e.url(DialogsPath) || dialogs[0].UserID != e.bob.ID {
		t.Fatalf("dialogs %+v", dialogs)
	}
	d := dialogs[0]

	// Refusals first: none of them may reach the handler.
	forged := d
	forged.Dialog.State = strings.Replace(d.Dialog.State, "R-9", "R-8", 1)
	refusals := []struct {
		name   string
		d      mattermostfake.Dialog
		by     mattermostfake.User
		status int
		want   model.SubmitDialogResponse
	}{
		{"another user submits the same state", d, e.alice, 403, model.SubmitDialogResponse{Error: "This dialog could not be verified, so nothing was done."}},
		{"state names another request", forged, e.bob, 403, model.SubmitDialogResponse{Error: "This dialog could not be verified, so nothing was done."}},
	}
	for _, r := range refusals {
		status, resp, err := e.mm.SubmitDialog(r.d, r.by, map[string]any{"reason": "no"})
		if err != nil || status != r.status || resp.Error != r.want.Error {
			t.Errorf("%s: status %d %+v err %v", r.name, status, resp, err)
		}
	}
	status, sresp, err := e.mm.SubmitDialog(d, e.bob, map[string]any{"reason": "   "})
	if err != nil || status != 200 || sresp.Errors["reason"] == "" {
		t.Errorf("blank reason: status %d %+v err %v, want a field error", status, sresp, err)
	}
	if calls := e.h.Calls(); len(calls) != 0 {
		t.Fatalf("refused submissions reached the handler: %+v", calls)
	}

	e.h.SetReply(bot.Reply{Text: "Denied."})
	status, sresp, err = e.mm.SubmitDialog(d, e.bob, map[string]any{"reason": "not on call"})
	if err != nil || status != 200 || sresp.Error != "" || len(sresp.Errors) != 0 {
		t.Fatalf("submission: status %d %+v err %v", status, sresp, err)
	}
	want := bottest.Call{Method: bottest.MethodReview, RequestID: "R-9", Verdict: access.VerdictDeny, Reason: "not on call",
		User: bot.ChatUser{Platform: bot.Mattermost, Workspace: e.mm.TeamID(), ID: e.bob.ID, Name: "bob"}}
	if calls := e.h.Calls(); len(calls) != 1 || calls[0] != want {
		t.Fatalf("handler calls %+v, want %+v", calls, want)
	}

	// A refusal from the core is shown in the dialog.
	e.h.SetReply(bot.Reply{Text: "bob may not review R-9", Error: true})
	_, sresp, _ = e.mm.SubmitDialog(d, e.bob, map[string]any{"reason": "again"})
	if sresp.Error != "bob may not review R-9" {
		t.Fatalf("error reply shown as %+v", sresp)
	}

	// The dialog's secret expires.
	e.clock.Advance(dialogTTL + time.Minute)
	_, sresp, _ = e.mm.SubmitDialog(d, e.bob, map[string]any{"reason": "late"})
	if !strings.Contains(sresp.Error, "expired") || len(e.h.Calls()) != 2 {
		t.Fatalf("late submission: %+v, calls %d", sresp, len(e.h.Calls()))
	}
}

func TestDeviceLoginConfirm(t *testing.T) {
	e := newEnv(t)
	e.h.SetReply(bot.Reply{Text: "Confirm this login?", Login: &bot.LoginPrompt{
		Code: "QX7P-2M4K", User: "alice", Address: "203.0.113.9", KeyHash: "SHA256:abc", Expires: e.clock.Now().Add(5 * time.Minute)}})
	status, resp, err := e.mm.SlashCommand(e.url(CommandsPath), e.alice, "login QX7P-2M4K")
	if err != nil || status != 200 || len(resp.Attachments) != 1 {
		t.Fatalf("command: status %d %+v err %v", status, resp, err)
	}
	prompt := e.mm.Ephemeral(e.alice.ID)[0]
	e.h.SetReply(bot.Reply{Text: "Login confirmed."})

	// The prompt's button is bound to alice: bob cannot use it, nor can a
	// changed code pass.
	status, _, _ = e.mm.ClickButton(prompt, "Confirm", e.bob)
	changed := prompt
	changed.Buttons = []mattermostfake.Button{prompt.Buttons[0]}
	changed.Buttons[0].Context = map[string]any{}
	for k, v := range prompt.Buttons[0].Context {
		changed.Buttons[0].Context[k] = v
	}
	changed.Buttons[0].Context[ctxCode] = "AAAA-BBBB"
	status2, _, _ := e.mm.ClickButton(changed, "Confirm", e.alice)
	if status != 403 || status2 != 403 || len(e.h.Calls()) != 1 {
		t.Fatalf("bob's click %d, changed code %d, calls %+v: want 403s and only the command", status, status2, e.h.Calls())
	}

	status, aresp, err := e.mm.ClickButton(prompt, "Confirm", e.alice)
	if err != nil || status != 200 || aresp.EphemeralText != "Login confirmed." {
		t.Fatalf("confirm: status %d %+v err %v", status, aresp, err)
	}
	calls := e.h.Calls()
	want := bottest.Call{Method: bottest.MethodConfirmLogin, Code: "QX7P-2M4K",
		User: bot.ChatUser{Platform: bot.Mattermost, Workspace: e.mm.TeamID(), ID: e.alice.ID, Name: "alice"}}
	if len(calls) != 2 || calls[1] != want {
		t.Fatalf("handler calls %+v, want %+v last", calls, want)
	}
}

func TestUnknownActionRefused(t *testing.T) {
	e := newEnv(t)
	card := e.postCard(t, e.channel, "R-1")
	card.Buttons[0].Context[ctxAction] = "delete_everything"
	status, _, err := e.mm.ClickButton(card, "Approve", e.bob)
	if err != nil || status != 400 || len(e.h.Calls()) != 0 {
		t.Fatalf("status %d err %v calls %+v", status, err, e.h.Calls())
	}
}

func TestNotInitialisedAnswers503(t *testing.T) {
	mm := mattermostfake.New(mattermostfake.Options{})
	defer mm.Close()
	a, err := New(Config{URL: mm.URL, BotToken: "x", CommandToken: "y", Team: "t", PublicURL: "https://gatehouse.example.com", ButtonKey: testKey}, &bottest.Handler{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, CommandsPath, strings.NewReader("token=y"))
	rec := httptest.NewRecorder()
	a.Routes()["POST "+CommandsPath].ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", rec.Code)
	}
}
