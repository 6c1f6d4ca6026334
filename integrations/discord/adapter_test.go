package discord

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/bot"
	"github.com/gatehouse-dev/gatehouse/bot/bottest"
	"github.com/gatehouse-dev/gatehouse/integrations/discord/discordfake"
)

func TestNewNamesTheBadKey(t *testing.T) {
	good := Config{ApplicationID: "123456789012345678", PublicKey: strings.Repeat("ab", 32), BotToken: "tok", GuildIDs: []string{testGuild}}
	cases := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{"valid", func(*Config) {}, ""},
		{"public key missing", func(c *Config) { c.PublicKey = "" }, "public_key is required"},
		{"public key short", func(c *Config) { c.PublicKey = "abcd" }, "public_key is 4 characters, want 64 hex"},
		{"public key not hex", func(c *Config) { c.PublicKey = strings.Repeat("zz", 32) }, "public_key is not hex"},
		{"application id missing", func(c *Config) { c.ApplicationID = "" }, "application_id is required"},
		{"application id not a snowflake", func(c *Config) { c.ApplicationID = "my-app" }, "application_id \"my-app\""},
		{"bot token missing", func(c *Config) { c.BotToken = " " }, "bot_token is required"},
		{"api url not http", func(c *Config) { c.APIURL = "ftp://discord.com/" }, "api_url \"ftp://discord.com/\""},
		{"guild id bad", func(c *Config) { c.GuildIDs = []string{"my-guild"} }, "guild_ids: \"my-guild\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			a, err := New(cfg, &bottest.Handler{}, nil)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if a.cfg.APIURL != DefaultAPIURL {
					t.Fatalf("api url default = %q", a.cfg.APIURL)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestPingAnsweredWithPong(t *testing.T) {
	e := newTestEnv(t)
	status, body, err := e.fake.Ping(e.hook)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusOK || strings.TrimSpace(string(body)) != `{"type":1}` {
		t.Fatalf("PING answered %d %s, want 200 {\"type\":1}", status, body)
	}
}

// Forged, stale and replayed interactions are refused before anything in
// them is believed: the handler is never called.
func TestRefusedInteractionsNeverReachTheHandler(t *testing.T) {
	e := newTestEnv(t)
	card, err := e.adapter.PostCard(t.Context(), e.channel, pendingCard(), nil, bot.Post{Tag: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	msg := e.fake.Messages(card.Channel)[0]

	send := func(in discordfake.Interaction, opts ...discordfake.SignOption) int {
		t.Helper()
		d, err := e.fake.Deliver(e.hook, in, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return d.Status
	}
	click := func(customID string) discordfake.Interaction {
		in, err := e.fake.ButtonInteraction(e.member, msg, customID)
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	cases := []struct {
		name string
		do   func() int
		want int
	}{
		{"signed with another key", func() int { return send(click("approve:"+requestID), discordfake.WithWrongKey()) }, http.StatusUnauthorized},
		{"timestamp ten minutes old", func() int {
			return send(click("approve:"+requestID), discordfake.SignedAt(time.Now().Add(-10*time.Minute)))
		}, http.StatusUnauthorized},
		{"unknown button", func() int { return send(click("delete:" + requestID)) }, http.StatusBadRequest},
		{"button without argument", func() int { return send(click("approve:")) }, http.StatusBadRequest},
		{"argument with spaces", func() int { return send(click("approve:a b")) }, http.StatusBadRequest},
		{"modal never shown", func() int {
			in, _ := e.fake.ModalSubmitInteraction(e.member, "grant_all:"+requestID, map[string]string{"reason": "x"})
			return send(in)
		}, http.StatusBadRequest},
		{"body over 1 MiB", func() int {
			return send(discordfake.Interaction{ID: "1", Token: "t", Type: discordgo.InteractionPing,
				JSON: []byte(`{"type":1,"id":"1","pad":"` + strings.Repeat("a", MaxBodyBytes) + `"}`)})
		}, http.StatusRequestEntityTooLarge},
		{"deny modal without reason", func() int {
			in, _ := e.fake.ModalSubmitInteraction(e.member, "deny_reason:"+requestID, map[string]string{"reason": "  "})
			return send(in)
		}, http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.do(); got != tc.want {
				t.Fatalf("status %d, want %d", got, tc.want)
			}
		})
	}

	t.Run("replayed click", func(t *testing.T) {
		status, _, err := e.fake.ClickButton(e.hook, e.member, msg, "approve:"+requestID)
		if err != nil || status != http.StatusOK {
			t.Fatalf("first click: %d %v", status, err)
		}
		e.handler.WaitCalls(t, 1)
		status, body, err := e.fake.ReplayLast()
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusConflict {
			t.Fatalf("replay answered %d %s, want 409", status, body)
		}
	})
	if calls := e.handler.Calls(); len(calls) != 1 {
		t.Fatalf("handler called %d times, want once (the genuine click): %+v", len(calls), calls)
	}
}

func TestSlashCommandIsDeferredThenOriginalEdited(t *testing.T) {
	e := newTestEnv(t)
	if _, err := RegisterCommands(t.Context(), e.adapter.cfg, []string{testGuild}); err != nil {
		t.Fatal(err)
	}
	card := pendingCard()
	e.handler.SetReply(bot.Reply{Text: "Request `" + requestID + "` created.", Card: &card})
	e.handler.Hold()

	status, body, err := e.fake.SlashCommand(e.hook, e.member, "request", map[string]any{
		"roles": "dba", "duration": "2h", "reason": `restore "orders" from backup`,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Answered while the handler is still working.
	var resp discordgo.InteractionResponse
	if err := json.Unmarshal(body, &resp); err != nil || status != http.StatusOK {
		t.Fatalf("answer %d %s (%v)", status, body, err)
	}
	if resp.Type != discordgo.InteractionResponseDeferredChannelMessageWithSource || resp.Data == nil || resp.Data.Flags != discordgo.MessageFlagsEphemeral {
		t.Fatalf("answer %s, want type 5 with flags 64", body)
	}
	calls := e.handler.WaitCalls(t, 1)
	e.handler.Release()

	want := `request --roles "dba" --duration "2h" --reason "restore \"orders\" from backup"`
	if c := calls[0]; c.Method != bottest.MethodCommand || c.Text != want {
		t.Fatalf("handler got %s %q, want Command %q", c.Method, c.Text, want)
	}
	if u := calls[0].User; u.Platform != bot.Discord || u.Workspace != testGuild || u.ID != alice || u.Name != "alice" {
		t.Fatalf("chat user %+v", u)
	}
	orig, err := e.fake.WaitOriginal(e.fake.LastDelivery().Token, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !orig.Ephemeral || !strings.Contains(orig.Content, "created") || !strings.Contains(orig.EmbedText, "alice requests dba — PENDING") {
		t.Fatalf("original response %+v", orig)
	}
	if len(orig.Mentions) != 0 {
		t.Fatalf("a reply pings %v", orig.Mentions)
	}
}

func TestApproveClickReviewsWithTheGuildAsWorkspace(t *testing.T) {
	e := newTestEnv(t)
	e.handler.SetReply(bot.Reply{Text: "Approved `" + requestID + "` (security 1/2)."})
	ref, err := e.adapter.PostCard(t.Context(), e.channel, pendingCard(), nil, bot.Post{Tag: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	msg := e.fake.Messages(ref.Channel)[0]

	status, body, err := e.fake.ClickButton(e.hook, e.member, msg, "approve:"+requestID)
	if err != nil || status != http.StatusOK {
		t.Fatalf("click: %d %s %v", status, body, err)
	}
	d := e.fake.LastDelivery()
	if d.Response.Type != discordgo.InteractionResponseChannelMessageWithSource || d.Response.Data.Flags != discordgo.MessageFlagsEphemeral ||
		!strings.Contains(d.Response.Data.Content, "Approved") {
		t.Fatalf("answer %s, want an ephemeral type 4 carrying the reply", body)
	}
	c := e.handler.Calls()[0]
	want := bottest.Call{Method: bottest.MethodReview, User: bot.ChatUser{Platform: bot.Discord, Workspace: testGuild, ID: alice, Name: "alice"},
		RequestID: requestID, Verdict: access.VerdictApprove}
	if c != want {
		t.Fatalf("handler got %+v, want %+v", c, want)
	}
	// The shared card is the outbox's to edit, not the click's.
	if m := e.fake.Messages(ref.Channel)[0]; m.Edits != 0 {
		t.Fatalf("click edited the card %d times", m.Edits)
	}
}

func TestDenyOpensModalAndSubmissionReviews(t *testing.T) {
	e := newTestEnv(t)
	e.handler.SetReply(bot.Reply{Text: "Denied."})
	ref, err := e.adapter.PostCard(t.Context(), e.channel, pendingCard(), nil, bot.Post{Tag: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	msg := e.fake.Messages(ref.Channel)[0]

	if status, body, err := e.fake.ClickButton(e.hook, e.member, msg, "deny:"+requestID); err != nil || status != http.StatusOK {
		t.Fatalf("deny click: %d %s %v", status, body, err)
	}
	d := e.fake.LastDelivery()
	if d.Response.Type != discordgo.InteractionResponseModal || d.Response.Data.CustomID != "deny_reason:"+requestID {
		t.Fatalf("deny answered %s, want a modal deny_reason:%s", d.Body, requestID)
	}
	if n := len(e.handler.Calls()); n != 0 {
		t.Fatalf("opening the modal called the handler %d times", n)
	}
	// Discord's client refuses to submit the required reason empty.
	if _, _, err := e.fake.SubmitModal(e.hook, e.member, "deny_reason:"+requestID, map[string]string{"reason": ""}); err == nil {
		t.Fatal("empty required reason submitted")
	}
	status, body, err := e.fake.SubmitModal(e.hook, e.member, "deny_reason:"+requestID, map[string]string{"reason": "use the read-only role"})
	if err != nil || status != http.StatusOK {
		t.Fatalf("submit: %d %s %v", status, body, err)
	}
	if r := e.fake.LastDelivery().Response; r.Type != discordgo.InteractionResponseChannelMessageWithSource || r.Data.Content != "Denied." {
		t.Fatalf("submission answered %s", e.fake.LastDelivery().Body)
	}
	c := e.handler.Calls()[0]
	if c.Method != bottest.MethodReview || c.Verdict != access.VerdictDeny || c.Reason != "use the read-only role" || c.RequestID != requestID || c.User.Workspace != testGuild {
		t.Fatalf("handler got %+v", c)
	}
}

// A DM interaction has no guild: Workspace is "", which the core maps to
// nobody.
func TestDMInteractionHasNoWorkspace(t *testing.T) {
	e := newTestEnv(t)
	if _, err := e.adapter.SendDM(t.Context(), alice, "Please review", nil, bot.Post{Tag: "t1"}); err != nil {
		t.Fatal(err)
	}
	in, err := e.fake.ButtonInteraction(discordfake.User{ID: alice, Name: "alice"}, e.fake.DMs(alice)[0], "approve:"+requestID)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := e.fake.Deliver(e.hook, in); err != nil || d.Status != http.StatusOK {
		t.Fatalf("DM click: %v %v", d, err)
	}
	c := e.handler.Calls()[0]
	if c.User.Workspace != "" || c.User.ID != alice || c.User.Platform != bot.Discord {
		t.Fatalf("DM click user %+v, want Workspace \"\"", c.User)
	}
}

func TestLoginConfirmation(t *testing.T) {
	e := newTestEnv(t)
	e.handler.SetReplyFunc(func(c bottest.Call) bot.Reply {
		if c.Method == bottest.MethodConfirmLogin {
			return bot.Reply{Text: "Login confirmed."}
		}
		return bot.Reply{Login: &bot.LoginPrompt{Code: "ABCD-1234", User: "alice", Address: "198.51.100.7", KeyHash: "SHA256:abc", Expires: time.Now().Add(5 * time.Minute)}}
	})
	if status, _, err := e.fake.SlashCommand(e.hook, e.member, "login", map[string]any{"code": "ABCD-1234"}); err != nil || status != http.StatusOK {
		t.Fatalf("login: %d %v", status, err)
	}
	prompt, err := e.fake.WaitOriginal(e.fake.LastDelivery().Token, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(prompt.EmbedText, "198.51.100.7") || len(prompt.Buttons) != 1 {
		t.Fatalf("login prompt %+v", prompt)
	}
	if status, _, err := e.fake.ClickButton(e.hook, e.member, prompt, prompt.Buttons[0]); err != nil || status != http.StatusOK {
		t.Fatalf("confirm: %d %v", status, err)
	}
	calls := e.handler.Calls()
	if calls[0].Text != `login "ABCD-1234"` || calls[1].Method != bottest.MethodConfirmLogin || calls[1].Code != "ABCD-1234" {
		t.Fatalf("calls %+v", calls)
	}
	if r := e.fake.LastDelivery().Response; r.Data == nil || r.Data.Content != "Login confirmed." {
		t.Fatalf("confirmation answered %s", e.fake.LastDelivery().Body)
	}
}

// A review slower than the ack budget is answered "deferred" in time and
// its reply edited in afterwards.
func TestSlowReviewIsDeferred(t *testing.T) {
	e := newTestEnv(t)
	e.adapter.ackBudget = 20 * time.Millisecond
	e.handler.Hold()
	e.handler.SetReply(bot.Reply{Text: "Approved after all."})
	ref, err := e.adapter.PostCard(t.Context(), e.channel, pendingCard(), nil, bot.Post{Tag: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	msg := e.fake.Messages(ref.Channel)[0]
	if status, _, err := e.fake.ClickButton(e.hook, e.member, msg, "approve:"+requestID); err != nil || status != http.StatusOK {
		t.Fatalf("click: %d %v", status, err)
	}
	d := e.fake.LastDelivery()
	if d.Response.Type != discordgo.InteractionResponseDeferredChannelMessageWithSource {
		t.Fatalf("slow click answered %s, want type 5", d.Body)
	}
	e.handler.Release()
	orig, err := e.fake.WaitOriginal(d.Token, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if orig.Content != "Approved after all." {
		t.Fatalf("original %q", orig.Content)
	}
}

// A list longer than Discord's embed limits is cut with a note, and the
// edit passes the fake's limit checks.
func TestLongListFitsDiscordLimits(t *testing.T) {
	e := newTestEnv(t)
	var cards []bot.Card
	for range 30 {
		c := pendingCard()
		c.Reason = strings.Repeat("long reason ", 40)
		cards = append(cards, c)
	}
	e.handler.SetReply(bot.Reply{Text: "30 requests", Cards: cards})
	if status, _, err := e.fake.SlashCommand(e.hook, e.member, "ls", nil); err != nil || status != http.StatusOK {
		t.Fatalf("ls: %d %v", status, err)
	}
	orig, err := e.fake.WaitOriginal(e.fake.LastDelivery().Token, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(orig.Embeds) == 0 || len(orig.Embeds) > 10 || !strings.Contains(orig.Content, "more: `access request ls`") {
		t.Fatalf("%d embeds, content %q", len(orig.Embeds), orig.Content)
	}
}

func TestBadOptionValueAnsweredPrivately(t *testing.T) {
	e := newTestEnv(t)
	status, body, err := e.fake.SlashCommand(e.hook, e.member, "search", map[string]any{"labels": "envprod"})
	if err != nil || status != http.StatusOK {
		t.Fatalf("search: %d %v", status, err)
	}
	r := e.fake.LastDelivery().Response
	if r.Type != discordgo.InteractionResponseChannelMessageWithSource || r.Data.Flags != discordgo.MessageFlagsEphemeral || !strings.Contains(r.Data.Content, "key=value") {
		t.Fatalf("answered %s", body)
	}
	if n := len(e.handler.Calls()); n != 0 {
		t.Fatalf("handler called %d times", n)
	}
}

// The deferred reply is delivered through Discord's transient answers: a
// 404 when the edit overtakes the deferred answer, a 429, a 502.
func TestDeferredReplyRetriesTransientErrors(t *testing.T) {
	for _, fail := range []struct {
		status int
		wait   time.Duration
	}{{http.StatusNotFound, 0}, {http.StatusTooManyRequests, 100 * time.Millisecond}, {http.StatusBadGateway, 0}} {
		t.Run(http.StatusText(fail.status), func(t *testing.T) {
			e := newTestEnv(t)
			e.handler.SetReply(bot.Reply{Text: "listed"})
			e.fake.FailNext(discordfake.RouteEditOriginal, fail.status, fail.wait)
			if status, _, err := e.fake.SlashCommand(e.hook, e.member, "ls", nil); err != nil || status != http.StatusOK {
				t.Fatalf("ls: %d %v", status, err)
			}
			orig, err := e.fake.WaitOriginal(e.fake.LastDelivery().Token, 5*time.Second)
			if err != nil || orig.Content != "listed" {
				t.Fatalf("original %+v, %v", orig, err)
			}
			if n := e.fake.Calls(discordfake.RouteEditOriginal); n < 2 {
				t.Fatalf("%d edit calls, want a retry", n)
			}
		})
	}
}
