package slack

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/bot"
	"github.com/gatehouse-dev/gatehouse/bot/bottest"
	"github.com/gatehouse-dev/gatehouse/integrations/slack/slackfake"
)

// harness is the adapter serving its routes on an httptest server, against
// a slackfake Slack.
type harness struct {
	fake            *slackfake.Server
	h               *bottest.Handler
	a               *Adapter
	commandsURL     string
	interactionsURL string
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newHarness(t testing.TB, opts slackfake.Options, configure func(*Config)) *harness {
	t.Helper()
	fake := slackfake.New(t, opts)
	h := &bottest.Handler{}
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
	// Registered last so it runs first: a test that failed while holding
	// the handler does not leave shutdown waiting for it.
	t.Cleanup(h.Release)
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
