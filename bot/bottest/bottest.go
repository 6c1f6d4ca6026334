// Package bottest provides a recording bot.Handler for the adapters' tests:
// it records every call, answers with a configurable Reply, and can hold
// calls until released, standing in for a slow core (etcd) so that tests
// can prove an adapter acknowledges before the work is done.
package bottest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/bot"
)

// The bot.Handler methods, as Call.Method names them.
const (
	MethodCommand      = "Command"
	MethodReview       = "Review"
	MethodConfirmLogin = "ConfirmLogin"
)

// WaitTimeout is how long WaitCalls waits before failing the test.
const WaitTimeout = 10 * time.Second

// Call is one call a Handler received, with the arguments of its method;
// the others are zero. Calls are comparable with ==.
type Call struct {
	Method    string // MethodCommand, MethodReview or MethodConfirmLogin
	User      bot.ChatUser
	Text      string         // Command
	RequestID string         // Review
	Verdict   access.Verdict // Review
	Reason    string         // Review
	Code      string         // ConfirmLogin
}

// Handler is a bot.Handler that records its calls. Its zero value answers
// every call with bot.Reply{Text: "ok"} at once. It is safe for concurrent
// use: adapters call it from their background work while the test
// configures and reads it.
type Handler struct {
	mu      sync.Mutex
	calls   []Call
	changed chan struct{} // closed and cleared by the next call; see WaitCalls
	reply   func(Call) bot.Reply
	gate    chan struct{} // while not nil, calls block until it is closed
}

// Interface guard.
var _ bot.Handler = (*Handler)(nil)

// SetReply makes every later call answer r.
func (h *Handler) SetReply(r bot.Reply) {
	h.SetReplyFunc(func(Call) bot.Reply { return r })
}

// SetReplyFunc makes every later call answer reply(call), for answers that
// depend on the method or the arguments.
func (h *Handler) SetReplyFunc(reply func(Call) bot.Reply) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reply = reply
}

// Hold makes every later call block, after it is recorded, until Release:
// a core that is slow to answer. Holding while already held does nothing.
func (h *Handler) Hold() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gate == nil {
		h.gate = make(chan struct{})
	}
}

// Release lets the held calls answer and stops holding later ones. It may
// be called any number of times, also without Hold, so a test can both
// release at the right moment and, as a guard, from a timer or a cleanup.
func (h *Handler) Release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gate != nil {
		close(h.gate)
		h.gate = nil
	}
}

// Calls returns a copy of the calls received so far, in order.
func (h *Handler) Calls() []Call {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Call(nil), h.calls...)
}

// WaitCalls waits until the handler has received at least n calls and
// returns them; after WaitTimeout it fails the test. A held call counts as
// received.
func (h *Handler) WaitCalls(t testing.TB, n int) []Call {
	t.Helper()
	timeout := time.NewTimer(WaitTimeout)
	defer timeout.Stop()
	for {
		h.mu.Lock()
		if len(h.calls) >= n {
			calls := append([]Call(nil), h.calls...)
			h.mu.Unlock()
			return calls
		}
		if h.changed == nil {
			h.changed = make(chan struct{})
		}
		changed, got := h.changed, len(h.calls)
		h.mu.Unlock()
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("handler got %d calls in %s, want %d", got, WaitTimeout, n)
		}
	}
}

// Command records a Command call.
func (h *Handler) Command(_ context.Context, u bot.ChatUser, text string) bot.Reply {
	return h.record(Call{Method: MethodCommand, User: u, Text: text})
}

// Review records a Review call.
func (h *Handler) Review(_ context.Context, u bot.ChatUser, requestID string, verdict access.Verdict, reason string) bot.Reply {
	return h.record(Call{Method: MethodReview, User: u, RequestID: requestID, Verdict: verdict, Reason: reason})
}

// ConfirmLogin records a ConfirmLogin call.
func (h *Handler) ConfirmLogin(_ context.Context, u bot.ChatUser, code string) bot.Reply {
	return h.record(Call{Method: MethodConfirmLogin, User: u, Code: code})
}

// record appends c, wakes WaitCalls, waits while held, and answers with the
// reply configured when the call arrived.
func (h *Handler) record(c Call) bot.Reply {
	h.mu.Lock()
	h.calls = append(h.calls, c)
	if h.changed != nil {
		close(h.changed)
		h.changed = nil
	}
	gate, reply := h.gate, h.reply
	h.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if reply == nil {
		return bot.Reply{Text: "ok"}
	}
	return reply(c)
}
