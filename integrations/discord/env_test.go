package discord

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
	"github.com/gatehouse-dev/gatehouse/integrations/discord/discordfake"
)

const (
	testGuild = "900000000000000001"
	alice     = "800000000000000001"
	bob       = "800000000000000002"
	requestID = "2f1c6c0e-6a51-4c1e-9d9e-0b6a1b7c9e42"
)

// testEnv is an adapter wired to a discordfake and served over HTTP.
type testEnv struct {
	fake    *discordfake.Fake
	adapter *Adapter
	handler *bottest.Handler
	hook    string // the interactions endpoint URL
	channel string // a channel in testGuild
	member  discordfake.User
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	f := discordfake.New(t)
	h := &bottest.Handler{} // answers "ok"
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
	// Registered last so it runs first: a test that failed while holding
	// the handler does not leave Shutdown waiting for it.
	t.Cleanup(h.Release)
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
