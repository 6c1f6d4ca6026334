package slack

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
	"github.com/gatehouse-dev/gatehouse/integrations/slack/slackfake"
)

// call is one Handler call the fake handler recorded.
type call struct {
	Method    string // Command, Review, ConfirmLogin
	User      bot.ChatUser
	Text      string // Command
	RequestID string // Review
	Verdict   access.Verdict
	Reason    string
	Code      string // ConfirmLogin
}

// fakeHandler records calls and answers with canned Replies. With hold
// set, every call waits until release is called: a slow etcd.
type fakeHandler struct {
	mu    sync.Mutex
	calls []call
	reply func(call) bot.Reply
	hold  chan struct{}
}

func (f *fakeHandler) record(c call) bot.Reply {
	f.mu.Lock()
	f.calls = append(f.calls, c)
	hold, reply := f.hold, f.reply
	f.mu.Unlock()
	if hold != nil {
		<-hold
	}
	if reply != nil {
		return reply(c)
	}
	return bot.Reply{Text: "ok: " + c.Method}
}

func (f *fakeHandler) Command(_ context.Context, u bot.ChatUser, text string) bot.Reply {
	return f.record(call{Method: "Command", User: u, Text: text})
}

func (f *fakeHandler) Review(_ context.Context, u bot.ChatUser, requestID string, verdict access.Verdict, reason string) bot.Reply {
	return f.record(call{Method: "Review", User: u, RequestID: requestID, Verdict: verdict, Reason: reason})
}

func (f *fakeHandler) ConfirmLogin(_ context.Context, u bot.ChatUser, code string) bot.Reply {
	return f.record(call{Method: "ConfirmLogin", User: u, Code: code})
}

func (f *fakeHandler) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

// harness is the adapter serving its routes on an httptest server, against
// a slackfake Slack.
type harness struct {
	fake            *slackfake.Server
	h               *fakeHandler
	a               *Adapter
	commandsURL     string
	interactionsURL string
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newHarness(t testing.TB, opts slackfake.Options, configure func(*Config)) *harness {
	t.Helper()
	fake := slackfake.New(t, opts)
	h := &fakeHandler{}
	cfg := Config{BotToken: fake.BotToken, SigningSecret: fake.SigningSecret, APIURL: fake.APIURL, TeamID: fake.TeamID}
	if configure != nil {
		configure(&cfg)
	}
	a, err := New(cfg, h, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for pattern, handler := range a.Routes() {
		mux.Handle(pattern, handler)
	}
	hooks := httptest.NewServer(mux)
	t.Cleanup(hooks.Close)
	t.Cleanup(func() { shutdown(t, a) })
	return &harness{fake: fake, h: h, a: a, commandsURL: hooks.URL + CommandsPath, interactionsURL: hooks.URL + InteractionsPath}
}

// shutdown waits for the adapter's background work: after it, the
// Handler's call list is final.
func shutdown(t testing.TB, a *Adapter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Error(err)
	}
}

var (
	alice = slackfake.User{ID: "U0ALICE", Name: "alice", Email: "alice@example.com"}
	bob   = slackfake.User{ID: "U0BOB", Name: "bob", Email: "bob@example.com"}
)

func pendingCard(id string) bot.Card {
	return bot.Card{
		RequestID: id, User: "alice", Roles: []string{"dba"}, Reason: "ticket #42", Duration: "2h",
		State: access.StatePending, Progress: []string{"security 0/1"}, ShowCommand: "access request show " + id,
		Actionable: true, PendingExpires: time.Unix(1_760_003_600, 0),
	}
}

const waitLong = 10 * time.Second
