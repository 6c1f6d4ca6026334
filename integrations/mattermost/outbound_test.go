package mattermost

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/bot"
	"github.com/gatehouse-dev/gatehouse/bot/bottest"
	"github.com/gatehouse-dev/gatehouse/integrations/mattermost/mattermostfake"
	"github.com/gatehouse-dev/gatehouse/outbox"
)

func TestNewNamesTheBadKey(t *testing.T) {
	good := Config{URL: "https://mm.example.com", BotToken: "b", CommandToken: "c", Team: "t",
		PublicURL: "https://gatehouse.example.com", ButtonKey: testKey}
	cases := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no URL", func(c *Config) { c.URL = "" }, "mattermost.url"},
		{"URL without scheme", func(c *Config) { c.URL = "mm.example.com" }, "mattermost.url"},
		{"no public URL", func(c *Config) { c.PublicURL = "" }, "public_url"},
		{"no bot token", func(c *Config) { c.BotToken = "" }, "mattermost.bot_token"},
		{"no command token", func(c *Config) { c.CommandToken = "" }, "mattermost.command_token"},
		{"no team", func(c *Config) { c.Team = " " }, "mattermost.team"},
		{"short button key", func(c *Config) { c.ButtonKey = testKey[:16] }, "button key"},
		{"bad allow-list", func(c *Config) { c.AllowedAddresses = []string{"mattermost.internal"} }, "mattermost.allowed_addresses"},
		{"negative button TTL", func(c *Config) { c.ButtonTTL = -time.Second }, "button TTL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.change(&cfg)
			_, err := New(cfg, &bottest.Handler{}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one naming %q", err, tc.want)
			}
		})
	}
	if _, err := New(good, &bottest.Handler{}, nil); err != nil {
		t.Fatalf("good config refused: %v", err)
	}
}

func TestInitResolvesBotAndTeam(t *testing.T) {
	e := newEnv(t)
	if e.a.TeamID() != e.mm.TeamID() || e.a.botUserID() != e.mm.BotUserID() {
		t.Fatalf("team %q bot %q, want %q %q", e.a.TeamID(), e.a.botUserID(), e.mm.TeamID(), e.mm.BotUserID())
	}
	a, err := New(Config{URL: e.mm.URL, BotToken: e.mm.BotToken(), CommandToken: "c", Team: "no-such-team",
		PublicURL: e.hooks.URL, ButtonKey: testKey}, e.h, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Init(context.Background()); err == nil || !errors.Is(err, bot.ErrPermanent) {
		t.Fatalf("unknown team: err %v", err)
	}
	a, _ = New(Config{URL: e.mm.URL, BotToken: "wrong", CommandToken: "c", Team: e.mm.Team(),
		PublicURL: e.hooks.URL, ButtonKey: testKey}, e.h, nil)
	if err := a.Init(context.Background()); err == nil {
		t.Fatal("wrong bot token accepted")
	}
}

func TestResolveChannel(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := model.NewId()
	if got, err := e.a.ResolveChannel(ctx, id); err != nil || got != id {
		t.Fatalf("id: %q %v", got, err)
	}
	for range 2 {
		got, err := e.a.ResolveChannel(ctx, e.mm.Team()+"/access")
		if err != nil || got != e.channel {
			t.Fatalf("team/channel: %q %v, want %q", got, err, e.channel)
		}
	}
	if n := e.mm.Calls(mattermostfake.RouteGetChannelByName); n != 1 {
		t.Errorf("channel looked up %d times, want 1 (cached)", n)
	}
	for _, bad := range []string{e.mm.Team() + "/nowhere", "no-team/access", "#access", "a/b/c"} {
		if _, err := e.a.ResolveChannel(ctx, bad); !errors.Is(err, bot.ErrPermanent) {
			t.Errorf("%q: err %v, want ErrPermanent", bad, err)
		}
	}
}

func TestPostCardMakesOnePostWithWorkingButtons(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	card := pendingCard("R-5")
	card.Reason = "@channel see [this](https://evil.example) *now*"
	ref, err := e.a.PostCard(ctx, e.channel, card, []string{e.bob.ID, model.NewId()}, bot.Post{Tag: "ob-1", Since: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	msgs := e.mm.Messages(e.channel)
	if len(msgs) != 1 || msgs[0].ID != ref.ID || ref.Channel != e.channel {
		t.Fatalf("messages %+v, ref %+v", msgs, ref)
	}
	m := msgs[0]
	for _, want := range []string{"Review requested: @bob", "alice requests dba — PENDING", "Requester: alice", "Duration: 2h",
		"Approvals: security 0/1", "access request show R-5", `\[this\]\(https://evil.example\) \*now\*`} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("card text lacks %q:\n%s", want, m.Text)
		}
	}
	if m.Props[propOutboxID] != "ob-1" || m.Props[propRequestID] != "R-5" {
		t.Errorf("props %v", m.Props)
	}
	if len(m.Buttons) != 2 || m.Buttons[0].Name != "Approve" || m.Buttons[1].Name != "Deny" || m.Buttons[0].URL != e.url(ActionsPath) {
		t.Fatalf("buttons %+v", m.Buttons)
	}
	if n := e.mm.Calls(mattermostfake.RouteCreatePost); n != 1 {
		t.Errorf("%d posts created, want 1", n)
	}
	if status, _, err := e.mm.ClickButton(m, "Approve", e.bob); err != nil || status != 200 {
		t.Fatalf("click: %d %v", status, err)
	}
	if calls := e.h.Calls(); len(calls) != 1 || calls[0].RequestID != "R-5" {
		t.Fatalf("handler calls %+v", calls)
	}
}

func TestPostCardRetryFindsTheEarlierPost(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	since := time.Now()
	// The post is made, then adding its buttons fails: the outbox will try
	// again with Retry set.
	e.mm.FailNext(mattermostfake.RoutePatchPost, http.StatusInternalServerError, 0)
	if _, err := e.a.PostCard(ctx, e.channel, pendingCard("R-2"), nil, bot.Post{Tag: "ob-2", Since: since}); err == nil || errors.Is(err, bot.ErrPermanent) {
		t.Fatalf("first attempt: err %v, want a retryable error", err)
	}
	if msgs := e.mm.Messages(e.channel); len(msgs) != 1 || len(msgs[0].Buttons) != 0 {
		t.Fatalf("after the first attempt: %+v", msgs)
	}
	// A post of another delivery in between must not be taken for ours.
	if _, err := e.a.PostCard(ctx, e.channel, pendingCard("R-3"), nil, bot.Post{Tag: "ob-3", Since: since}); err != nil {
		t.Fatal(err)
	}
	ref, err := e.a.PostCard(ctx, e.channel, pendingCard("R-2"), nil, bot.Post{Tag: "ob-2", Retry: true, Since: since})
	if err != nil {
		t.Fatal(err)
	}
	msgs := e.mm.Messages(e.channel)
	if len(msgs) != 2 || msgs[0].ID != ref.ID || len(msgs[0].Buttons) != 2 {
		t.Fatalf("after the retry: ref %s, messages %+v", ref.ID, msgs)
	}
	if n := e.mm.Calls(mattermostfake.RouteCreatePost); n != 2 {
		t.Errorf("%d posts created, want 2 (R-2 once, R-3)", n)
	}
	// A retry whose first attempt never reached Mattermost posts.
	e.mm.FailNext(mattermostfake.RouteCreatePost, http.StatusServiceUnavailable, 0)
	if _, err := e.a.PostCard(ctx, e.channel, pendingCard("R-4"), nil, bot.Post{Tag: "ob-4", Since: since}); err == nil {
		t.Fatal("503 not reported")
	}
	if _, err := e.a.PostCard(ctx, e.channel, pendingCard("R-4"), nil, bot.Post{Tag: "ob-4", Retry: true, Since: since}); err != nil {
		t.Fatal(err)
	}
	if msgs := e.mm.Messages(e.channel); len(msgs) != 3 {
		t.Fatalf("%d messages, want 3", len(msgs))
	}
}

func TestUpdateCardRefreshesSecretsAndDropsButtons(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	first := e.postCard(t, e.channel, "R-6")
	ref := bot.MessageRef{Channel: e.channel, ID: first.ID}

	e.clock.Advance(time.Hour)
	card := pendingCard("R-6")
	card.Progress = []string{"security 1/2"}
	if err := e.a.UpdateCard(ctx, ref, card); err != nil {
		t.Fatal(err)
	}
	refreshed, _ := e.mm.Message(first.ID)
	if refreshed.Buttons[0].Context[ctxSecret] == first.Buttons[0].Context[ctxSecret] {
		t.Error("secret not refreshed")
	}
	if !strings.Contains(refreshed.Text, "security 1/2") {
		t.Errorf("text not updated:\n%s", refreshed.Text)
	}
	// The refreshed buttons outlive the first ones.
	e.clock.Advance(DefaultButtonTTL - 30*time.Minute)
	if status, _, _ := e.mm.ClickButton(first, "Approve", e.bob); status != http.StatusForbidden {
		t.Errorf("first button: status %d, want 403 (expired)", status)
	}
	if status, _, _ := e.mm.ClickButton(refreshed, "Approve", e.bob); status != http.StatusOK {
		t.Errorf("refreshed button: status %d, want 200", status)
	}

	card.State, card.StateReason, card.Actionable = access.StateApproved, "approved by bob", false
	if err := e.a.UpdateCard(ctx, ref, card); err != nil {
		t.Fatal(err)
	}
	final, _ := e.mm.Message(first.ID)
	if len(final.Buttons) != 0 || !strings.Contains(final.Text, "APPROVED — approved by bob") || final.Edits != 3 {
		t.Fatalf("final card: edits %d buttons %+v\n%s", final.Edits, final.Buttons, final.Text)
	}
	if n := e.mm.Calls(mattermostfake.RouteCreatePost); n != 1 {
		t.Errorf("%d posts created, want 1", n)
	}
}

func TestSendDM(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	card := pendingCard("R-8")
	ref, err := e.a.SendDM(ctx, e.alice.ID, "Your request `R-8` is waiting for review.", &card, bot.Post{Tag: "ob-8"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.SendDM(ctx, e.alice.ID, "Still waiting. @here", nil, bot.Post{Tag: "ob-9"}); err != nil {
		t.Fatal(err)
	}
	dms := e.mm.DMs(e.alice.ID)
	if len(dms) != 2 || dms[0].ID != ref.ID || dms[0].ChannelID != ref.Channel {
		t.Fatalf("DMs %+v, ref %+v", dms, ref)
	}
	if !strings.Contains(dms[0].Text, "is waiting for review") || !strings.Contains(dms[0].Text, "access request show R-8") || len(dms[0].Buttons) != 0 {
		t.Errorf("first DM: %+v", dms[0])
	}
	if strings.Contains(dms[1].Text, "@here") {
		t.Errorf("@here left live in %q", dms[1].Text)
	}
	if n := e.mm.Calls(mattermostfake.RouteDirectChannel); n != 1 {
		t.Errorf("direct channel opened %d times, want 1 (cached)", n)
	}
	if _, err := e.a.SendDM(ctx, model.NewId(), "hello", nil, bot.Post{Tag: "ob-10"}); !errors.Is(err, bot.ErrPermanent) {
		t.Errorf("DM to an unknown user: err %v, want ErrPermanent", err)
	}
}

func TestThreadReply(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	parent := e.postCard(t, e.channel, "R-10")
	p := bot.Post{Tag: "ob-11", Since: time.Now()}
	ref, err := e.a.ThreadReply(ctx, bot.MessageRef{Channel: e.channel, ID: parent.ID}, "Denied by bob: @channel no", p)
	if err != nil {
		t.Fatal(err)
	}
	// A redelivery finds the reply instead of posting it again.
	p.Retry = true
	again, err := e.a.ThreadReply(ctx, bot.MessageRef{Channel: e.channel, ID: parent.ID}, "Denied by bob: @channel no", p)
	if err != nil || again != ref {
		t.Fatalf("retry: %+v %v, want %+v", again, err, ref)
	}
	msgs := e.mm.Messages(e.channel)
	if len(msgs) != 2 || msgs[1].RootID != parent.ID || msgs[1].ID != ref.ID {
		t.Fatalf("messages %+v", msgs)
	}
	if !strings.Contains(msgs[1].Text, "Denied by bob:") || strings.Contains(msgs[1].Text, "@channel") {
		t.Errorf("reply text %q", msgs[1].Text)
	}
}

func TestDeliveryErrorsRetryOrDrop(t *testing.T) {
	cases := []struct {
		name       string
		setup      func(e *env) (channel string)
		permanent  bool
		retryAfter time.Duration
	}{
		{"429 waits Retry-After", func(e *env) string {
			e.mm.FailNext(mattermostfake.RouteCreatePost, http.StatusTooManyRequests, 7*time.Second)
			return e.channel
		}, false, 7 * time.Second},
		{"500 is retried", func(e *env) string {
			e.mm.FailNext(mattermostfake.RouteCreatePost, http.StatusInternalServerError, 0)
			return e.channel
		}, false, 0},
		{"401 (token being rotated) is retried", func(e *env) string {
			e.mm.FailNext(mattermostfake.RouteCreatePost, http.StatusUnauthorized, 0)
			return e.channel
		}, false, 0},
		{"403: bot not in the channel", func(e *env) string {
			e.mm.RemoveBot(e.channel)
			return e.channel
		}, true, 0},
		{"403 injected", func(e *env) string {
			e.mm.FailNext(mattermostfake.RouteCreatePost, http.StatusForbidden, 0)
			return e.channel
		}, true, 0},
		{"404 injected", func(e *env) string {
			e.mm.FailNext(mattermostfake.RouteCreatePost, http.StatusNotFound, 0)
			return e.channel
		}, true, 0},
		{"network down is retried", func(e *env) string {
			e.mm.Close()
			return e.channel
		}, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ch := tc.setup(e)
			_, err := e.a.PostCard(context.Background(), ch, pendingCard("R-1"), nil, bot.Post{Tag: "ob-1"})
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, bot.ErrPermanent) != tc.permanent {
				t.Errorf("err %v: permanent=%v, want %v", err, !tc.permanent, tc.permanent)
			}
			var ra outbox.RetryAfter
			got := time.Duration(0)
			if errors.As(err, &ra) {
				got = ra.RetryAfter()
			}
			if got != tc.retryAfter {
				t.Errorf("err %v: RetryAfter %s, want %s", err, got, tc.retryAfter)
			}
		})
	}
}

func TestRateLimitWaitHeaders(t *testing.T) {
	cases := []struct {
		name   string
		header http.Header
		want   time.Duration
	}{
		{"Retry-After", http.Header{"Retry-After": {"12"}}, 12 * time.Second},
		{"X-Ratelimit-Reset only", http.Header{"X-Ratelimit-Reset": {"3"}}, 3 * time.Second},
		{"zero means at least a second", http.Header{"Retry-After": {"0"}}, time.Second},
		{"none", http.Header{}, defaultRateLimitWait},
	}
	for _, tc := range cases {
		if got := rateLimitWait(tc.header); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
