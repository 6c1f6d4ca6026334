package slack

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	slackgo "github.com/slack-go/slack"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/bot"
	"github.com/gatehouse-dev/gatehouse/bot/bottest"
	"github.com/gatehouse-dev/gatehouse/integrations/slack/slackfake"
)

// The ack must not wait on the Handler (etcd): with the Handler stuck, the
// command is still answered 200 with nothing, within Slack's 3 seconds; the
// Reply is posted to the response_url once the Handler returns, privately.
func TestSlashCommandAcksAtOnceAndRepliesPrivately(t *testing.T) {
	hs := newHarness(t, slackfake.Options{}, nil)
	hs.h.Hold()
	// Should the ack wait for the Handler after all, release it late
	// rather than hang: the elapsed-time check below then fails.
	defer time.AfterFunc(slackfake.AckTimeout+time.Second, hs.h.Release).Stop()
	hs.h.SetReply(bot.Reply{Text: "Request `r-1` created.", Card: new(pendingCard("r-1"))})

	start := time.Now()
	status, body, err := hs.fake.SlashCommand(hs.commandsURL, alice, "request dba for 2h because ticket #42")
	if err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed > slackfake.AckTimeout {
		t.Fatalf("ack took %s, Slack gives up after %s", elapsed, slackfake.AckTimeout)
	}
	if status != http.StatusOK || body != "" {
		t.Fatalf("ack = %d %q, want 200 and an empty body", status, body)
	}
	if got := hs.fake.Responses(); len(got) != 0 {
		t.Fatalf("a reply was posted before the Handler answered: %+v", got)
	}

	hs.h.Release()
	replies, err := hs.fake.WaitResponses(1, waitLong)
	if err != nil {
		t.Fatal(err)
	}
	r := replies[0]
	if r.ResponseType != slackgo.ResponseTypeEphemeral || r.ReplaceOriginal || r.UserID != alice.ID {
		t.Fatalf("reply is not private to alice: %+v", r)
	}
	if !strings.Contains(r.Rendered, "Request `r-1` created.") || !strings.Contains(r.Rendered, "alice requests dba") {
		t.Fatalf("reply reads %q", r.Rendered)
	}
	if want := []string{bot.ActionApprove, bot.ActionDeny}; strings.Join(r.Buttons, ",") != strings.Join(want, ",") {
		t.Fatalf("buttons = %v, want %v", r.Buttons, want)
	}

	calls := hs.h.Calls()
	want := bottest.Call{Method: bottest.MethodCommand, Text: "request dba for 2h because ticket #42",
		User: bot.ChatUser{Platform: bot.Slack, Workspace: hs.fake.TeamID, ID: alice.ID, Name: alice.Name}}
	if len(calls) != 1 || calls[0] != want {
		t.Fatalf("calls = %+v, want %+v", calls, want)
	}
}

// A request that fails verification, or one seen before, is refused and
// runs nothing.
func TestRefusedRequestsRunNothing(t *testing.T) {
	cases := []struct {
		name string
		send func(t *testing.T, hs *harness) (int, string, error)
		want int
	}{
		{"forged signature", func(t *testing.T, hs *harness) (int, string, error) {
			return hs.fake.SlashCommand(hs.commandsURL, alice, "ls", slackfake.WithSecret("not-the-signing-secret"))
		}, http.StatusUnauthorized},
		{"stale timestamp", func(t *testing.T, hs *harness) (int, string, error) {
			return hs.fake.SlashCommand(hs.commandsURL, alice, "ls", slackfake.WithTimestamp(time.Now().Add(-6*time.Minute)))
		}, http.StatusUnauthorized},
		{"forged click", func(t *testing.T, hs *harness) (int, string, error) {
			msg := postCard(t, hs, pendingCard("r-1"))
			return hs.fake.ClickButton(hs.interactionsURL, bob, msg, bot.ActionApprove, slackfake.WithSecret("guess"))
		}, http.StatusUnauthorized},
		{"oversized body", func(t *testing.T, hs *harness) (int, string, error) {
			return hs.fake.SlashCommand(hs.commandsURL, alice, strings.Repeat("x", MaxBodyBytes))
		}, http.StatusRequestEntityTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hs := newHarness(t, slackfake.Options{}, nil)
			status, body, err := tc.send(t, hs)
			if err != nil {
				t.Fatal(err)
			}
			if status != tc.want {
				t.Fatalf("status = %d (%s), want %d", status, body, tc.want)
			}
			shutdown(t, hs.a)
			if calls := hs.h.Calls(); len(calls) != 0 {
				t.Fatalf("Handler called: %+v", calls)
			}
			if r := hs.fake.Responses(); len(r) != 0 {
				t.Fatalf("replies posted: %+v", r)
			}
		})
	}
}

// A captured, authentic request sent again within its 5 minutes is refused
// with 409 (our documented choice over a silent 200) and runs nothing more.
func TestReplayedRequestRefused(t *testing.T) {
	for _, kind := range []string{"command", "click"} {
		t.Run(kind, func(t *testing.T) {
			hs := newHarness(t, slackfake.Options{}, nil)
			var status int
			var err error
			if kind == "command" {
				status, _, err = hs.fake.SlashCommand(hs.commandsURL, alice, "ls")
			} else {
				status, _, err = hs.fake.ClickButton(hs.interactionsURL, bob, postCard(t, hs, pendingCard("r-1")), bot.ActionApprove)
			}
			if err != nil || status != http.StatusOK {
				t.Fatalf("first request: %d %v", status, err)
			}
			status, body, err := hs.fake.Resend()
			if err != nil {
				t.Fatal(err)
			}
			if status != http.StatusConflict {
				t.Fatalf("replay answered %d (%s), want 409", status, body)
			}
			shutdown(t, hs.a)
			if calls := hs.h.Calls(); len(calls) != 1 {
				t.Fatalf("Handler called %d times, want once: %+v", len(calls), calls)
			}
		})
	}
}

// postCard posts a card through the adapter into a fresh channel and
// returns it as Slack holds it.
func postCard(t testing.TB, hs *harness, card bot.Card) slackfake.Message {
	t.Helper()
	ch := hs.fake.AddChannel(slackfake.Channel{Name: "access-" + strings.ToLower(card.RequestID)})
	if _, err := hs.a.PostCard(context.Background(), ch, card, nil, bot.Post{Tag: "out-" + card.RequestID}); err != nil {
		t.Fatal(err)
	}
	msgs := hs.fake.Messages(ch)
	if len(msgs) != 1 {
		t.Fatalf("channel holds %d messages", len(msgs))
	}
	return msgs[0]
}

// Approve on the shared card is a review by exactly the clicker, from the
// team it was clicked in; the answer goes to the clicker alone and the card
// itself is left for the outbox to edit.
func TestApproveClickReviewsAsTheClicker(t *testing.T) {
	hs := newHarness(t, slackfake.Options{}, nil)
	hs.h.SetReply(bot.Reply{Text: "Approved `r-7` (security 1/1)."})
	msg := postCard(t, hs, pendingCard("r-7"))

	status, body, err := hs.fake.ClickButton(hs.interactionsURL, bob, msg, bot.ActionApprove)
	if err != nil || status != http.StatusOK || body != "" {
		t.Fatalf("click answered %d %q %v", status, body, err)
	}
	replies, err := hs.fake.WaitResponses(1, waitLong)
	if err != nil {
		t.Fatal(err)
	}
	if r := replies[0]; r.UserID != bob.ID || r.ResponseType != slackgo.ResponseTypeEphemeral || r.ReplaceOriginal || !strings.Contains(r.Text, "Approved `r-7`") {
		t.Fatalf("reply = %+v, want a private message to bob that leaves the card alone", r)
	}
	want := bottest.Call{Method: bottest.MethodReview, RequestID: "r-7", Verdict: access.VerdictApprove,
		User: bot.ChatUser{Platform: bot.Slack, Workspace: hs.fake.TeamID, ID: bob.ID, Name: bob.Name}}
	if calls := hs.h.Calls(); len(calls) != 1 || calls[0] != want {
		t.Fatalf("calls = %+v, want %+v", calls, want)
	}
	if now := hs.fake.Messages(msg.Channel)[0]; now.Edits != 0 {
		t.Fatalf("the shared card was edited from the click path: %+v", now)
	}
}

// Deny opens a modal asking for the reason; submitting it is
// Review(DENY, reason); the modal is cleared and the outcome posted to the
// clicker privately.
func TestDenyClickOpensModalAndSubmissionDenies(t *testing.T) {
	hs := newHarness(t, slackfake.Options{}, nil)
	hs.h.SetReply(bot.Reply{Text: "Denied `r-9`."})
	msg := postCard(t, hs, pendingCard("r-9"))

	if status, body, err := hs.fake.ClickButton(hs.interactionsURL, bob, msg, bot.ActionDeny); err != nil || status != http.StatusOK {
		t.Fatalf("click answered %d %q %v", status, body, err)
	}
	views, err := hs.fake.WaitViews(1, waitLong)
	if err != nil {
		t.Fatal(err)
	}
	v := views[0]
	if v.UserID != bob.ID || v.CallbackID != denyCallbackID || !strings.Contains(v.PrivateMetadata, "r-9") || v.Inputs[reasonBlockID] != reasonActionID {
		t.Fatalf("modal = %+v", v)
	}
	if calls := hs.h.Calls(); len(calls) != 0 {
		t.Fatalf("Deny click called the Handler before a reason: %+v", calls)
	}

	status, body, err := hs.fake.SubmitView(hs.interactionsURL, bob, v, map[string]string{reasonBlockID: "  no ticket given  "})
	if err != nil || status != http.StatusOK {
		t.Fatalf("submission answered %d %q %v", status, body, err)
	}
	if got := responseAction(t, body); got.ResponseAction != slackgo.RAClear {
		t.Fatalf("submission answer = %s, want clear", body)
	}
	want := bottest.Call{Method: bottest.MethodReview, RequestID: "r-9", Verdict: access.VerdictDeny, Reason: "no ticket given",
		User: bot.ChatUser{Platform: bot.Slack, Workspace: hs.fake.TeamID, ID: bob.ID, Name: bob.Name}}
	if calls := hs.h.Calls(); len(calls) != 1 || calls[0] != want {
		t.Fatalf("calls = %+v, want %+v", calls, want)
	}
	replies, err := hs.fake.WaitResponses(1, waitLong)
	if err != nil {
		t.Fatal(err)
	}
	if r := replies[0]; r.UserID != bob.ID || r.ReplaceOriginal || !strings.Contains(r.Text, "Denied `r-9`") {
		t.Fatalf("outcome = %+v, want it private to bob", r)
	}
}

func responseAction(t *testing.T, body string) slackgo.ViewSubmissionResponse {
	t.Helper()
	var r slackgo.ViewSubmissionResponse
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("answer %q is not a view submission response: %v", body, err)
	}
	return r
}

// A refusal from the core is shown in the modal, under the reason, so the
// user sees it where they typed; an empty reason never reaches the core.
func TestDenySubmissionErrorsShowInModal(t *testing.T) {
	cases := []struct {
		name      string
		reason    string
		reply     bot.Reply
		wantError string
		wantCalls int
	}{
		{"core refuses", "too risky", bot.Reply{Error: true, Text: "request r-3 is already APPROVED"}, "request r-3 is already APPROVED", 1},
		{"empty reason", "   ", bot.Reply{}, reasonNeeded, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hs := newHarness(t, slackfake.Options{}, nil)
			hs.h.SetReply(tc.reply)
			msg := postCard(t, hs, pendingCard("r-3"))
			if _, _, err := hs.fake.ClickButton(hs.interactionsURL, bob, msg, bot.ActionDeny); err != nil {
				t.Fatal(err)
			}
			views, err := hs.fake.WaitViews(1, waitLong)
			if err != nil {
				t.Fatal(err)
			}
			status, body, err := hs.fake.SubmitView(hs.interactionsURL, bob, views[0], map[string]string{reasonBlockID: tc.reason})
			if err != nil || status != http.StatusOK {
				t.Fatalf("submission answered %d %q %v", status, body, err)
			}
			got := responseAction(t, body)
			if got.ResponseAction != slackgo.RAErrors || got.Errors[reasonBlockID] != tc.wantError {
				t.Fatalf("answer = %s, want errors{%s: %q}", body, reasonBlockID, tc.wantError)
			}
			shutdown(t, hs.a)
			if calls := hs.h.Calls(); len(calls) != tc.wantCalls {
				t.Fatalf("Handler called %d times, want %d", len(calls), tc.wantCalls)
			}
			if r := hs.fake.Responses(); len(r) != 0 {
				t.Fatalf("an error shown in the modal was also posted: %+v", r)
			}
		})
	}
}

// Authentic but malformed or unknown interactions are refused with 400 and
// a message saying what is wrong; nothing is called.
func TestMalformedInteractionsRefused(t *testing.T) {
	click := func(actionID, value string) string {
		return `{"type":"block_actions","user":{"id":"U0BOB","name":"bob","team_id":"T0GATEHOUSE"},"team":{"id":"T0GATEHOUSE"},` +
			`"trigger_id":"1.2.3","response_url":"http://127.0.0.1:1/nowhere","actions":[{"type":"button","block_id":"b","action_id":"` + actionID + `","value":"` + value + `"}]}`
	}
	cases := []struct {
		name    string
		form    url.Values
		wantMsg string
	}{
		{"no payload", url.Values{"foo": {"bar"}}, "malformed interaction payload"},
		{"payload not JSON", url.Values{"payload": {"{not json"}}, "malformed interaction payload"},
		{"unknown action id", url.Values{"payload": {click("delete_everything", "r-1")}}, `unknown action_id "delete_everything"`},
		{"approve without value", url.Values{"payload": {click(bot.ActionApprove, "")}}, "approve button without a value"},
		{"no actions", url.Values{"payload": {`{"type":"block_actions","user":{"id":"U0BOB"},"actions":[]}`}}, "expected one block action, got 0"},
		{"no user", url.Values{"payload": {`{"type":"block_actions","actions":[]}`}}, "interaction without a user"},
		{"unsupported type", url.Values{"payload": {`{"type":"shortcut","user":{"id":"U0BOB"}}`}}, `unsupported interaction type "shortcut"`},
		{"foreign modal", url.Values{"payload": {`{"type":"view_submission","user":{"id":"U0BOB"},"view":{"callback_id":"other_app"}}`}}, `unknown view callback_id "other_app"`},
		{"deny modal without request", url.Values{"payload": {`{"type":"view_submission","user":{"id":"U0BOB"},"view":{"callback_id":"gatehouse_deny","private_metadata":""}}`}}, "names no request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hs := newHarness(t, slackfake.Options{}, nil)
			status, body, err := hs.fake.PostRaw(hs.interactionsURL, tc.form)
			if err != nil {
				t.Fatal(err)
			}
			if status != http.StatusBadRequest || !strings.Contains(body, tc.wantMsg) {
				t.Fatalf("answer = %d %q, want 400 mentioning %q", status, body, tc.wantMsg)
			}
			shutdown(t, hs.a)
			if calls := hs.h.Calls(); len(calls) != 0 {
				t.Fatalf("Handler called: %+v", calls)
			}
			if n := hs.fake.Calls("views.open"); n != 0 {
				t.Fatalf("views.open called %d times", n)
			}
		})
	}
}

// `/access login CODE` answers with a private prompt showing the device;
// its Confirm button is ConfirmLogin(code) by the clicker.
func TestLoginPromptConfirmButton(t *testing.T) {
	hs := newHarness(t, slackfake.Options{}, nil)
	expires := time.Now().Add(5 * time.Minute)
	hs.h.SetReplyFunc(func(c bottest.Call) bot.Reply {
		if c.Method == bottest.MethodCommand {
			return bot.Reply{Login: &bot.LoginPrompt{Code: "ABCD-1234", User: "alice", Address: "203.0.113.7", KeyHash: "SHA256:abc", Expires: expires}}
		}
		return bot.Reply{Text: "Device login confirmed."}
	})
	if _, _, err := hs.fake.SlashCommand(hs.commandsURL, alice, "login ABCD-1234"); err != nil {
		t.Fatal(err)
	}
	replies, err := hs.fake.WaitResponses(1, waitLong)
	if err != nil {
		t.Fatal(err)
	}
	prompt := replies[0]
	for _, want := range []string{"203.0.113.7", "alice", "SHA256:abc", "ABCD-1234", "[Confirm]"} {
		if !strings.Contains(prompt.Rendered, want) {
			t.Fatalf("prompt %q lacks %q", prompt.Rendered, want)
		}
	}
	if status, _, err := hs.fake.ClickButton(hs.interactionsURL, alice, prompt.Message, bot.ActionConfirmLogin); err != nil || status != http.StatusOK {
		t.Fatalf("confirm click: %d %v", status, err)
	}
	if _, err := hs.fake.WaitResponses(2, waitLong); err != nil {
		t.Fatal(err)
	}
	calls := hs.h.Calls()
	if len(calls) != 2 || calls[1].Method != bottest.MethodConfirmLogin || calls[1].Code != "ABCD-1234" || calls[1].User.ID != alice.ID {
		t.Fatalf("calls = %+v", calls)
	}
}

// With EmailLookup on, the e-mail comes from users.info (once per user,
// cached); off, users.info is never called.
func TestEmailLookup(t *testing.T) {
	for _, on := range []bool{true, false} {
		hs := newHarness(t, slackfake.Options{}, func(c *Config) { c.EmailLookup = on })
		for i := range 2 {
			if _, _, err := hs.fake.SlashCommand(hs.commandsURL, alice, "ls"); err != nil {
				t.Fatal(err)
			}
			if _, err := hs.fake.WaitResponses(i+1, waitLong); err != nil {
				t.Fatal(err)
			}
		}
		shutdown(t, hs.a)
		wantEmail, wantLookups := "", 0
		if on {
			wantEmail, wantLookups = alice.Email, 1
		}
		for _, c := range hs.h.Calls() {
			if c.User.Email != wantEmail {
				t.Fatalf("EmailLookup=%v: email %q, want %q", on, c.User.Email, wantEmail)
			}
		}
		if n := hs.fake.Calls("users.info"); n != wantLookups {
			t.Fatalf("EmailLookup=%v: users.info called %d times, want %d", on, n, wantLookups)
		}
	}
}

func TestNewValidatesConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no bot token", Config{SigningSecret: "s"}, "bot_token is required"},
		{"no signing secret", Config{BotToken: "xoxb-1"}, "signing_secret is required"},
		{"socket mode without app token", Config{BotToken: "xoxb-1", SocketMode: true}, "app_token is required"},
		{"socket mode with a bot token as app token", Config{BotToken: "xoxb-1", SocketMode: true, AppToken: "xoxb-1"}, "app-level token"},
		{"bad api url", Config{BotToken: "xoxb-1", SigningSecret: "s", APIURL: "slack.com/api"}, "api_url"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, &bottest.Handler{}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}
	if _, err := New(Config{BotToken: "xoxb-1", SocketMode: true, AppToken: "xapp-1"}, &bottest.Handler{}, nil); err != nil {
		t.Fatalf("socket mode needs no signing secret: %v", err)
	}
}
