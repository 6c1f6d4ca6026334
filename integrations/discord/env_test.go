package discord

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/bot"
	"github.com/gatehouse-dev/gatehouse/integrations/discord/discordfake"
)

const (
	testGuild = "900000000000000001"
	alice     = "800000000000000001"
	bob       = "800000000000000002"
	requestID = "2f1c6c0e-6a51-4c1e-9d9e-0b6a1b7c9e42"
)

// handlerCall is one call the recording handler received.
type handlerCall struct {
	method    string // Command, Review, ConfirmLogin
	user      bot.ChatUser
	text      string
	requestID string
	verdict   access.Verdict
	reason    string
	code      string
}

// recordingHandler is a bot.Handler that records calls and answers reply
// (or replyFor), optionally waiting for release first.
type recordingHandler struct {
	mu       sync.Mutex
	calls    []handlerCall
	reply    bot.Reply
	replyFor func(handlerCall) bot.Reply
	// release, when not nil, blocks every call until it is closed.
	release chan struct{}
}

func (h *recordingHandler) record(c handlerCall) bot.Reply {
	h.mu.Lock()
	h.calls = append(h.calls, c)
	release, replyFor, reply := h.release, h.replyFor, h.reply
	h.mu.Unlock()
	if release != nil {
		<-release
	}
	if replyFor != nil {
		return replyFor(c)
	}
	return reply
}

func (h *recordingHandler) Command(_ context.Context, u bot.ChatUser, text string) bot.Reply {
	return h.record(handlerCall{method: "Command", user: u, text: text})
}

func (h *recordingHandler) Review(_ context.Context, u bot.ChatUser, id string, v access.Verdict, reason string) bot.Reply {
	return h.record(handlerCall{method: "Review", user: u, requestID: id, verdict: v, reason: reason})
}

func (h *recordingHandler) ConfirmLogin(_ context.Context, u bot.ChatUser, code string) bot.Reply {
	return h.record(handlerCall{method: "ConfirmLogin", user: u, code: code})
}

func (h *recordingHandler) Calls() []handlerCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]handlerCall(nil), h.calls...)
}

// waitCalls waits until the handler has n calls.
func (h *recordingHandler) waitCalls(t *testing.T, n int) []handlerCall {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c := h.Calls(); len(c) >= n {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("handler got %d calls, want %d", len(h.Calls()), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// testEnv is an adapter wired to a discordfake and served over HTTP.
type testEnv struct {
	fake    *discordfake.Fake
	adapter *Adapter
	handler *recordingHandler
	hook    string // the interactions endpoint URL
	channel string // a channel in testGuild
	member  discordfake.User
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	f := discordfake.New(t)
	h := &recordingHandler{reply: bot.Reply{Text: "ok"}}
	a, err := New(Config{
		ApplicationID: f.ApplicationID,
		PublicKey:     f.PublicKeyHex(),
		BotToken:      f.Token,
		APIURL:        f.URL,
		GuildIDs:      []string{testGuild},
	}, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for pattern, handler := range a.Routes() {
		mux.Handle(pattern, handler)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		srv.Close()
	})
	return &testEnv{
		fake: f, adapter: a, handler: h,
		hook:    srv.URL + "/v1/hooks/discord/interactions",
		channel: f.AddChannel(testGuild),
		member:  discordfake.User{ID: alice, Name: "alice", GuildID: testGuild},
	}
}

// pendingCard is an actionable card.
func pendingCard() bot.Card {
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	return bot.Card{
		RequestID: requestID, User: "alice", Roles: []string{"dba"}, Reason: "ticket #123", Duration: "2h",
		State: access.StatePending, Progress: []string{"security 0/2"}, PolicyOutcome: "review",
		PolicyReasons: []string{"dba needs two security reviewers"}, SuggestedReviewers: []string{"bob"},
		Created: created, PendingExpires: created.Add(time.Hour),
		ShowCommand: "access request show " + requestID, Link: "https://gatehouse.example.com/v1/requests/" + requestID,
		Actionable: true,
	}
}
