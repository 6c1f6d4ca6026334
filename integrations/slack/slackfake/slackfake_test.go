package slackfake

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	slackgo "github.com/slack-go/slack"
)

var ctx = context.Background()

func client(s *Server, token string) *slackgo.Client {
	return slackgo.New(token, slackgo.OptionAPIURL(s.APIURL))
}

// The fake refuses what Slack refuses, with Slack's error codes, through
// slack-go's own client.
func TestWebAPIRefusesLikeSlack(t *testing.T) {
	s := New(t, Options{})
	ch := s.AddChannel(Channel{Name: "access-requests"})
	archived := s.AddChannel(Channel{Name: "old", Archived: true})
	hidden := s.AddChannel(Channel{Name: "hidden", Private: true, NotMember: true})
	api := client(s, s.BotToken)
	longSection := slackgo.NewSectionBlock(slackgo.NewTextBlockObject(slackgo.MarkdownType, strings.Repeat("x", 3001), false, false), nil, nil)

	cases := []struct {
		name string
		do   func() error
		code string
	}{
		{"wrong token", func() error {
			_, _, err := client(s, "xoxb-wrong").PostMessageContext(ctx, ch, slackgo.MsgOptionText("hi", false))
			return err
		}, "invalid_auth"},
		{"no token", func() error {
			_, _, err := client(s, "").PostMessageContext(ctx, ch, slackgo.MsgOptionText("hi", false))
			return err
		}, "not_authed"},
		{"app token on a bot method", func() error {
			_, _, err := client(s, s.AppToken).PostMessageContext(ctx, ch, slackgo.MsgOptionText("hi", false))
			return err
		}, "invalid_auth"},
		{"unknown channel", func() error {
			_, _, err := api.PostMessageContext(ctx, "C0NOSUCH", slackgo.MsgOptionText("hi", false))
			return err
		}, "channel_not_found"},
		{"private channel without the bot", func() error {
			_, _, err := api.PostMessageContext(ctx, hidden, slackgo.MsgOptionText("hi", false))
			return err
		}, "channel_not_found"},
		{"archived channel", func() error {
			_, _, err := api.PostMessageContext(ctx, archived, slackgo.MsgOptionText("hi", false))
			return err
		}, "is_archived"},
		{"section over 3000 characters", func() error {
			_, _, err := api.PostMessageContext(ctx, ch, slackgo.MsgOptionText("hi", false), slackgo.MsgOptionBlocks(longSection))
			return err
		}, "invalid_blocks"},
		{"51 blocks", func() error {
			blocks := make([]slackgo.Block, 51)
			for i := range blocks {
				blocks[i] = slackgo.NewDividerBlock()
			}
			_, _, err := api.PostMessageContext(ctx, ch, slackgo.MsgOptionText("hi", false), slackgo.MsgOptionBlocks(blocks...))
			return err
		}, "invalid_blocks"},
		{"nothing to post", func() error {
			_, _, err := api.PostMessageContext(ctx, ch)
			return err
		}, "no_text"},
		{"update of a missing message", func() error {
			_, _, _, err := api.UpdateMessageContext(ctx, ch, "1.000001", slackgo.MsgOptionText("hi", false))
			return err
		}, "message_not_found"},
		{"reply to a missing thread", func() error {
			_, _, err := api.PostMessageContext(ctx, ch, slackgo.MsgOptionText("hi", false), slackgo.MsgOptionTS("1.000001"))
			return err
		}, "thread_not_found"},
		{"DM with an unknown user", func() error {
			_, _, _, err := api.OpenConversationContext(ctx, &slackgo.OpenConversationParameters{Users: []string{"U0NOBODY"}})
			return err
		}, "user_not_found"},
		{"modal with an unknown trigger", func() error {
			_, err := api.OpenViewContext(ctx, "123.456.abc", slackgo.ModalViewRequest{Type: slackgo.VTModal, Title: slackgo.NewTextBlockObject("plain_text", "t", false, false)})
			return err
		}, "invalid_trigger_id"},
		{"injected code", func() error {
			s.FailNextWith("users.info", "missing_scope")
			_, err := api.GetUserInfoContext(ctx, "U0ANY")
			return err
		}, "missing_scope"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if se, ok := errors.AsType[slackgo.SlackErrorResponse](err); !ok || se.Err != tc.code {
				t.Fatalf("err = %v, want Slack error %q", err, tc.code)
			}
		})
	}
	if n := len(s.Messages(ch)); n != 0 {
		t.Fatalf("refused calls posted %d messages", n)
	}
}

// FailNext answers as Slack's edge does: 429 with Retry-After, 5xx with
// HTML; each injected failure is used once.
func TestFailNext(t *testing.T) {
	s := New(t, Options{})
	ch := s.AddChannel(Channel{Name: "c"})
	api := client(s, s.BotToken)
	post := func() error {
		_, _, err := api.PostMessageContext(ctx, ch, slackgo.MsgOptionText("hi", false))
		return err
	}
	s.FailNext("chat.postMessage", http.StatusTooManyRequests, 1500*time.Millisecond)
	s.FailNext("chat.postMessage", http.StatusBadGateway, 0)
	if rl, ok := errors.AsType[*slackgo.RateLimitedError](post()); !ok || rl.RetryAfter != 2*time.Second {
		t.Fatalf("first: want a rate limit of 2s (1.5s rounded up), got %v", rl)
	}
	if sc, ok := errors.AsType[slackgo.StatusCodeError](post()); !ok || sc.Code != http.StatusBadGateway {
		t.Fatalf("second: want 502, got %v", sc)
	}
	if err := post(); err != nil {
		t.Fatalf("third: %v", err)
	}
	if got := s.Calls("chat.postMessage"); got != 3 {
		t.Fatalf("calls = %d", got)
	}
	s.LoseNextResponse("chat.postMessage")
	if err := post(); err == nil {
		t.Fatal("lost response: no error")
	}
	if n := len(s.Messages(ch)); n != 2 {
		t.Fatalf("%d messages: the lost response's post must exist", n)
	}
}

// A trigger opens one modal, within 3 seconds; a response_url takes 5
// messages.
func TestTriggerAndResponseURLLimits(t *testing.T) {
	s := New(t, Options{})
	api := client(s, s.BotToken)
	trigger, respURL := s.issue(s.user(User{ID: "U0A"}), "D0APPHOME")
	view := slackgo.ModalViewRequest{Type: slackgo.VTModal, Title: slackgo.NewTextBlockObject("plain_text", "Title", false, false)}
	if _, err := api.OpenViewContext(ctx, trigger, view); err != nil {
		t.Fatal(err)
	}
	if _, err := api.OpenViewContext(ctx, trigger, view); err == nil || !strings.Contains(err.Error(), "trigger_exchanged") {
		t.Fatalf("second use of a trigger: %v", err)
	}
	old, _ := s.issue(s.user(User{ID: "U0A"}), "")
	s.mu.Lock()
	s.triggers[old].issued = time.Now().Add(-TriggerTTL - time.Second)
	s.mu.Unlock()
	if _, err := api.OpenViewContext(ctx, old, view); err == nil || !strings.Contains(err.Error(), "expired_trigger_id") {
		t.Fatalf("stale trigger: %v", err)
	}

	for i := range ResponseURLUses + 1 {
		resp, err := http.Post(respURL, "application/json", bytes.NewReader([]byte(`{"text":"hi","response_type":"ephemeral"}`)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := i < ResponseURLUses; (resp.StatusCode == http.StatusOK) != want {
			t.Fatalf("use %d of a response_url: %d", i+1, resp.StatusCode)
		}
	}
	if r := s.Responses(); len(r) != ResponseURLUses || r[0].UserID != "U0A" || !r[0].Ephemeral {
		t.Fatalf("responses = %+v", r)
	}
}

// Inbound requests carry Slack's v0 signature: the worked example from
// Slack's documentation.
func TestSignMatchesSlacksExample(t *testing.T) {
	body := "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	got := Sign("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", []byte(body))
	if want := "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}
