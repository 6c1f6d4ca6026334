package bottest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/bot"
)

var alice = bot.ChatUser{Platform: bot.Slack, Workspace: "T1", ID: "U1", Name: "alice"}

// Each method is recorded with its own arguments, in order, and answered
// with the default reply until one is set.
func TestHandlerRecordsEveryMethod(t *testing.T) {
	var h Handler
	ctx := context.Background()
	replies := []bot.Reply{
		h.Command(ctx, alice, "ls"),
		h.Review(ctx, alice, "R-1", access.VerdictDeny, "no ticket"),
		h.ConfirmLogin(ctx, alice, "ABCD-1234"),
	}
	want := []Call{
		{Method: MethodCommand, User: alice, Text: "ls"},
		{Method: MethodReview, User: alice, RequestID: "R-1", Verdict: access.VerdictDeny, Reason: "no ticket"},
		{Method: MethodConfirmLogin, User: alice, Code: "ABCD-1234"},
	}
	calls := h.Calls()
	if len(calls) != len(want) {
		t.Fatalf("calls = %+v, want %+v", calls, want)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Errorf("call %d = %+v, want %+v", i, calls[i], want[i])
		}
		if replies[i].Text != "ok" || replies[i].Error {
			t.Errorf("reply %d = %+v, want the default ok", i, replies[i])
		}
	}
	calls[0].Text = "changed"
	if h.Calls()[0].Text != "ls" {
		t.Fatal("Calls returned the handler's own slice")
	}
}

func TestHandlerReplies(t *testing.T) {
	var h Handler
	ctx := context.Background()
	h.SetReply(bot.Reply{Text: "created"})
	if r := h.Command(ctx, alice, "request dba"); r.Text != "created" {
		t.Fatalf("reply %q, want the one set", r.Text)
	}
	h.SetReplyFunc(func(c Call) bot.Reply {
		if c.Method == MethodConfirmLogin {
			return bot.Reply{Text: "confirmed " + c.Code}
		}
		return bot.Reply{Text: "refused", Error: true}
	})
	if r := h.ConfirmLogin(ctx, alice, "QX7P"); r.Text != "confirmed QX7P" {
		t.Fatalf("ConfirmLogin reply %q", r.Text)
	}
	if r := h.Review(ctx, alice, "R-1", access.VerdictApprove, ""); !r.Error {
		t.Fatalf("Review reply %+v, want the error", r)
	}
}

// A held call is recorded (WaitCalls sees it) but does not answer until
// Release; Release is safe to repeat, and later calls are not held.
func TestHandlerHoldUntilRelease(t *testing.T) {
	var h Handler
	h.Hold()
	h.Release() // a guard firing before the test's own release
	h.Hold()
	answered := make(chan bot.Reply, 1)
	go func() { answered <- h.Command(context.Background(), alice, "ls") }()
	if calls := h.WaitCalls(t, 1); calls[0].Text != "ls" {
		t.Fatalf("calls = %+v", calls)
	}
	select {
	case r := <-answered:
		t.Fatalf("held call answered %+v before Release", r)
	case <-time.After(20 * time.Millisecond):
	}
	h.Release()
	h.Release()
	if r := <-answered; r.Text != "ok" {
		t.Fatalf("reply %+v", r)
	}
	done := make(chan struct{})
	go func() { h.Command(context.Background(), alice, "ls"); close(done) }()
	select {
	case <-done:
	case <-time.After(WaitTimeout):
		t.Fatal("a call after Release was held")
	}
}

// Concurrent callers and readers: every call is recorded once (run with
// -race).
func TestHandlerConcurrent(t *testing.T) {
	var h Handler
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() { h.Command(context.Background(), alice, fmt.Sprint(i)) })
		wg.Go(func() { h.SetReply(bot.Reply{Text: fmt.Sprint(i)}); _ = h.Calls() })
	}
	calls := h.WaitCalls(t, 32)
	wg.Wait()
	seen := map[string]bool{}
	for _, c := range h.Calls() {
		seen[c.Text] = true
	}
	if len(calls) < 32 || len(seen) != 32 {
		t.Fatalf("WaitCalls returned %d calls, %d distinct texts recorded; want 32", len(calls), len(seen))
	}
}
