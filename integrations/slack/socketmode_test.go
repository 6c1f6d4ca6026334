package slack

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	slackgo "github.com/slack-go/slack"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/bot"
	"github.com/gatehouse-dev/gatehouse/bot/bottest"
	"github.com/gatehouse-dev/gatehouse/integrations/slack/slackfake"
)

// runSocketMode starts RunSocketMode against the fake and waits for the
// connection; the returned stop ends it and reports its error.
func runSocketMode(t *testing.T, hs *harness) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- hs.a.RunSocketMode(ctx) }()
	if err := hs.fake.WaitSocketConnected(waitLong); err != nil {
		cancel()
		t.Fatal(err)
	}
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(waitLong):
			return errors.New("RunSocketMode did not return after cancel")
		}
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func socketHarness(t *testing.T, appToken string) *harness {
	return newHarness(t, slackfake.Options{}, func(c *Config) {
		c.SocketMode, c.AppToken, c.SigningSecret = true, appToken, ""
	})
}

// Over Socket Mode the same scenarios as over HTTP: a command is acked at
// once and answered on its response_url; approve reviews as the clicker;
// deny opens the modal and its submission is acked with the response
// action; a redelivered envelope is acked and not run again.
func TestSocketMode(t *testing.T) {
	hs := socketHarness(t, slackfake.DefaultAppToken)
	stop := runSocketMode(t, hs)
	hs.h.SetReplyFunc(func(c bottest.Call) bot.Reply { return bot.Reply{Text: c.Method + " done"} })

	ack, err := hs.fake.SocketSlashCommand(alice, "ls")
	if err != nil || ack != nil {
		t.Fatalf("command ack = %s, %v; want an empty ack", ack, err)
	}
	replies, err := hs.fake.WaitResponses(1, waitLong)
	if err != nil {
		t.Fatal(err)
	}
	if r := replies[0]; r.UserID != alice.ID || r.ResponseType != slackgo.ResponseTypeEphemeral || r.Text != "Command done" {
		t.Fatalf("reply = %+v", r)
	}

	card := postCard(t, hs, pendingCard("r-5"))
	if _, err := hs.fake.SocketClickButton(bob, card, bot.ActionApprove); err != nil {
		t.Fatal(err)
	}
	if _, err := hs.fake.WaitResponses(2, waitLong); err != nil {
		t.Fatal(err)
	}

	if _, err := hs.fake.SocketClickButton(bob, card, bot.ActionDeny); err != nil {
		t.Fatal(err)
	}
	views, err := hs.fake.WaitViews(1, waitLong)
	if err != nil {
		t.Fatal(err)
	}
	ack, err = hs.fake.SocketSubmitView(bob, views[0], map[string]string{reasonBlockID: "not on call"})
	if err != nil {
		t.Fatal(err)
	}
	var answer slackgo.ViewSubmissionResponse
	if err := json.Unmarshal(ack, &answer); err != nil || answer.ResponseAction != slackgo.RAClear {
		t.Fatalf("submission ack = %s, want response_action clear", ack)
	}

	// Slack redelivers an envelope whose ack it did not see: same id.
	if _, err := hs.fake.ResendEnvelope(); err != nil {
		t.Fatalf("redelivered envelope not acknowledged: %v", err)
	}

	if err := stop(); err != nil {
		t.Fatalf("RunSocketMode after cancel: %v", err)
	}
	shutdown(t, hs.a)
	calls := hs.h.Calls()
	wantUser := bot.ChatUser{Platform: bot.Slack, Workspace: hs.fake.TeamID, ID: bob.ID, Name: bob.Name}
	want := []bottest.Call{
		{Method: bottest.MethodCommand, Text: "ls", User: bot.ChatUser{Platform: bot.Slack, Workspace: hs.fake.TeamID, ID: alice.ID, Name: alice.Name}},
		{Method: bottest.MethodReview, RequestID: "r-5", Verdict: access.VerdictApprove, User: wantUser},
		{Method: bottest.MethodReview, RequestID: "r-5", Verdict: access.VerdictDeny, Reason: "not on call", User: wantUser},
	}
	if len(calls) != len(want) {
		t.Fatalf("calls = %+v, want %+v", calls, want)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Fatalf("call %d = %+v, want %+v", i, calls[i], want[i])
		}
	}
}

// A core refusal of a deny is shown in the modal over Socket Mode too.
func TestSocketModeDenyErrorInModal(t *testing.T) {
	hs := socketHarness(t, slackfake.DefaultAppToken)
	runSocketMode(t, hs)
	hs.h.SetReply(bot.Reply{Error: true, Text: "you may not review your own request"})
	card := postCard(t, hs, pendingCard("r-6"))
	if _, err := hs.fake.SocketClickButton(alice, card, bot.ActionDeny); err != nil {
		t.Fatal(err)
	}
	views, err := hs.fake.WaitViews(1, waitLong)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := hs.fake.SocketSubmitView(alice, views[0], map[string]string{reasonBlockID: "changed my mind"})
	if err != nil {
		t.Fatal(err)
	}
	var answer slackgo.ViewSubmissionResponse
	if err := json.Unmarshal(ack, &answer); err != nil || answer.ResponseAction != slackgo.RAErrors ||
		!strings.Contains(answer.Errors[reasonBlockID], "your own request") {
		t.Fatalf("submission ack = %s, want the error under the reason", ack)
	}
}

// A wrong app token is a fatal error, not a reconnect loop.
func TestSocketModeInvalidAppToken(t *testing.T) {
	hs := socketHarness(t, "xapp-1-wrong")
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	err := hs.a.RunSocketMode(ctx)
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "invalid_auth") {
		t.Fatalf("RunSocketMode = %v, want invalid_auth at once", err)
	}
}
