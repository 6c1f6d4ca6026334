package mattermost

import (
	"bytes"
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
	"github.com/gatehouse-dev/gatehouse/bot/bottest"
	"github.com/gatehouse-dev/gatehouse/integrations/mattermost/mattermostfake"
)

// testClock is a settable clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is one adapter wired to a fake Mattermost, with accessd's routes
// served at hooks.
type env struct {
	mm      *mattermostfake.Server
	a       *Adapter
	h       *bottest.Handler
	clock   *testClock
	hooks   *httptest.Server
	alice   mattermostfake.User
	bob     mattermostfake.User
	channel string // "access" channel of the team
}

func (e *env) url(path string) string { return e.hooks.URL + path }

var testKey = bytes.Repeat([]byte{0x42}, 32)

// newEnv starts a fake Mattermost and an adapter on it (Init done).
// configure may change the adapter's Config before New.
func newEnv(t testing.TB, configure ...func(*Config)) *env {
	t.Helper()
	return newEnvWith(t, mattermostfake.Options{}, configure...)
}

// newEnvWith is newEnv with a fake Mattermost made with opts.
func newEnvWith(t testing.TB, opts mattermostfake.Options, configure ...func(*Config)) *env {
	t.Helper()
	mm := mattermostfake.New(opts)
	t.Cleanup(mm.Close)
	mux := http.NewServeMux()
	hooks := httptest.NewServer(mux)
	t.Cleanup(hooks.Close)
	e := &env{
		mm: mm, h: &bottest.Handler{}, hooks: hooks, // h answers "ok"
		clock: &testClock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)},
	}
	cfg := Config{
		URL: mm.URL, BotToken: mm.BotToken(), CommandToken: mm.CommandToken(), Team: mm.Team(),
		PublicURL: hooks.URL, ButtonKey: testKey, Now: e.clock.Now,
	}
	for _, c := range configure {
		c(&cfg)
	}
	a, err := New(cfg, e.h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := a.Init(context.Background()); err != nil {
		t.Fatalf("Init: %v", err)
	}
	for pattern, h := range a.Routes() {
		mux.Handle(pattern, h)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	// Registered after Shutdown so it runs first: a test that failed while
	// holding the handler does not leave Shutdown waiting for it.
	t.Cleanup(e.h.Release)
	e.a = a
	e.alice = mm.AddUser("", "alice", "alice@example.com")
	e.bob = mm.AddUser("", "bob", "bob@example.com")
	e.channel = mm.AddChannel(mm.Team(), "access")
	return e
}

// pendingCard is an actionable card for request id.
func pendingCard(id string) bot.Card {
	return bot.Card{
		RequestID: id, User: "alice", Roles: []string{"dba"}, Reason: "ticket #123", Duration: "2h",
		State: access.StatePending, Progress: []string{"security 0/1"}, ShowCommand: "access request show " + id,
		Link: "https://gatehouse.example.com/v1/requests/" + id, Actionable: true,
	}
}

// postCard posts an actionable card for id and returns its message.
func (e *env) postCard(t testing.TB, channel, id string) mattermostfake.Message {
	t.Helper()
	ref, err := e.a.PostCard(context.Background(), channel, pendingCard(id), nil, bot.Post{Tag: "outbox-" + id + "-" + channel, Since: time.Now()})
	if err != nil {
		t.Fatalf("PostCard: %v", err)
	}
	msg, ok := e.mm.Message(ref.ID)
	if !ok {
		t.Fatalf("post %s not on the server", ref.ID)
	}
	return msg
}
