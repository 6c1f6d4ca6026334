package chatops_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/bot"
	"github.com/gatehouse-dev/gatehouse/chatops"
	"github.com/gatehouse-dev/gatehouse/integrations/discord"
	"github.com/gatehouse-dev/gatehouse/integrations/discord/discordfake"
	"github.com/gatehouse-dev/gatehouse/integrations/mattermost"
	"github.com/gatehouse-dev/gatehouse/integrations/mattermost/mattermostfake"
	"github.com/gatehouse-dev/gatehouse/integrations/slack"
	"github.com/gatehouse-dev/gatehouse/integrations/slack/slackfake"
	"github.com/gatehouse-dev/gatehouse/internal/testcluster"
	"github.com/gatehouse-dev/gatehouse/pki"
	"github.com/gatehouse-dev/gatehouse/policies"
	"github.com/gatehouse-dev/gatehouse/service"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

// twoApprovals is a policy that wants two approvals for everything.
const twoApprovals = `package gatehouse

thresholds contains {"name": "default", "approve": 2, "deny": 1, "reviewers": {}}

# Requests for dba with "prod" in the reason also go to #security.
notify contains {"platform": "slack", "channel": "#security"} if {
	"dba" in input.request.roles
	contains(input.request.reason, "prod")
}
`

// chatWorld is accessd with its chat platforms replaced by the test
// servers: the real service, store, outbox workers and webhook routes
// (mounted on the API server's own handler, served here over plain HTTP as
// a TLS-terminating proxy would).
type chatWorld struct {
	c       *testcluster.Cluster
	hooks   string // accessd's public URL
	cfg     chatops.Config
	slack   *slackfake.Server
	discord *discordfake.Fake
	mm      *mattermostfake.Server

	slackChannel    string
	securityChannel string
	discordChannel  string
	mmChannel       string

	alice        slackfake.User // requester, in Slack (and Discord, Mattermost)
	aliceDiscord discordfake.User
	aliceMM      mattermostfake.User
	carol        mattermostfake.User // reviewer, in Mattermost
	dave         slackfake.User      // reviewer, in Slack
	bob          discordfake.User    // reviewer, in Discord
}

const guild = "900000000000000001"

func newChatWorld(t testing.TB, start bool) (*chatWorld, func() context.CancelFunc) {
	t.Helper()
	w := &chatWorld{}
	w.slack = slackfake.New(t, slackfake.Options{TeamID: "T0GATE"})
	w.slackChannel = w.slack.AddChannel(slackfake.Channel{Name: "access-requests"})
	w.securityChannel = w.slack.AddChannel(slackfake.Channel{Name: "security"})
	w.alice = slackfake.User{ID: "UALICE", Name: "alice"}
	w.dave = slackfake.User{ID: "UDAVE", Name: "dave"}
	w.slack.AddUser(w.alice)
	w.slack.AddUser(w.dave)

	w.discord = discordfake.New(t)
	w.discordChannel = w.discord.AddChannel(guild)
	w.bob = discordfake.User{ID: "800000000000000002", Name: "bob", GuildID: guild}

	w.mm = mattermostfake.New(mattermostfake.Options{})
	t.Cleanup(w.mm.Close)
	w.mmChannel = w.mm.AddChannel(w.mm.Team(), "access-requests")
	w.carol = w.mm.AddUser("", "carol", "carol@example.com")
	w.aliceMM = w.mm.AddUser("", "alice", "alice@example.com")
	w.aliceDiscord = discordfake.User{ID: "800000000000000001", Name: "alice", GuildID: guild}

	engine, err := policies.New(policies.Bundle{Files: map[string][]byte{"thresholds.rego": []byte(twoApprovals)}})
	if err != nil {
		t.Fatal(err)
	}
	w.c = testcluster.StartCustom(t, storetest.Embedded(t), service.Config{Chat: service.ChatConfig{
		Channels: map[string][]string{
			bot.Slack:      {"#access-requests"},
			bot.Discord:    {w.discordChannel},
			bot.Mattermost: {w.mm.Team() + "/access-requests"},
		},
		Threads: []string{bot.Slack, bot.Mattermost},
	}}, service.WithPolicy(engine, policies.CheckBundle))
	w.c.Apply(testcluster.DemoRoles)
	w.c.Apply(fmt.Sprintf(`
kind: user
version: v1
metadata: {name: alice}
spec: {roles: [requester], traits: {slack_id: [UALICE], discord_id: ["800000000000000001"], mattermost_id: [%s]}}
---
kind: user
version: v1
metadata: {name: carol}
spec: {roles: [reviewer], traits: {mattermost_id: [%s]}}
---
kind: user
version: v1
metadata: {name: dave}
spec: {roles: [reviewer], traits: {slack_id: [UDAVE]}}
---
kind: user
version: v1
metadata: {name: bob}
spec: {roles: [reviewer], traits: {discord_id: ["%s"]}}
`, w.aliceMM.ID, w.carol.ID, w.bob.ID))

	srv := httptest.NewServer(w.c.Server.Handler())
	t.Cleanup(srv.Close)
	w.hooks = srv.URL
	cfg := chatops.Config{
		PublicURL: srv.URL,
		Slack:     &slack.Config{BotToken: w.slack.BotToken, SigningSecret: w.slack.SigningSecret, APIURL: w.slack.APIURL, TeamID: w.slack.TeamID},
		Discord: &discord.Config{ApplicationID: w.discord.ApplicationID, PublicKey: w.discord.PublicKeyHex(), BotToken: w.discord.Token,
			APIURL: w.discord.URL, GuildIDs: []string{guild}},
		Mattermost: &mattermost.Config{URL: w.mm.URL, BotToken: w.mm.BotToken(), CommandToken: w.mm.CommandToken(), Team: w.mm.Team()},
	}
	w.cfg = cfg
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mounted := false
	run := func() context.CancelFunc {
		ctx, cancel := context.WithCancel(context.Background())
		chat, err := chatops.Start(ctx, cfg, w.c.Svc, w.c.Store, log)
		if err != nil {
			t.Fatal(err)
		}
		if !mounted {
			w.c.Server.Mount(chat.Routes)
			mounted = true
		}
		return func() {
			cancel()
			sctx, done := context.WithTimeout(context.Background(), 5*time.Second)
			defer done()
			if err := chat.Shutdown(sctx); err != nil {
				t.Error(err)
			}
		}
	}
	if start {
		t.Cleanup(run())
	}
	return w, run
}

// eventually polls cond for up to 10 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (w *chatWorld) slackCard(id string) (slackfake.Message, bool) {
	for _, m := range w.slack.Messages(w.slackChannel) {
		if m.RequestID == id && m.ThreadTS == "" {
			return m, true
		}
	}
	return slackfake.Message{}, false
}

func (w *chatWorld) discordCard(id string) (discordfake.Message, bool) {
	for _, m := range w.discord.Messages(w.discordChannel) {
		if strings.Contains(m.EmbedText, id) && m.ReferenceID == "" {
			return m, true
		}
	}
	return discordfake.Message{}, false
}

// mmCard is the request's Mattermost card once complete: a pending card
// gets its buttons in a second call, once the post id they are bound to
// exists.
func (w *chatWorld) mmCard(id string) (mattermostfake.Message, bool) {
	for _, m := range w.mm.Messages(w.mmChannel) {
		if m.Props["gatehouse_request_id"] == id && m.RootID == "" {
			return m, len(m.Buttons) > 0 || !strings.Contains(m.Text, "PENDING")
		}
	}
	return mattermostfake.Message{}, false
}

func (w *chatWorld) request(t *testing.T, text string) string {
	t.Helper()
	status, _, err := w.slack.SlashCommand(w.hooks+"/v1/hooks/slack/commands", w.alice, text)
	if err != nil || status != 200 {
		t.Fatalf("slash command: %d %v", status, err)
	}
	resps, err := w.slack.WaitResponses(1, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	last := resps[len(resps)-1]
	id := requestIDIn(last.Text + last.Rendered)
	if id == "" {
		t.Fatalf("no request id in the reply %q", last.Text+last.Rendered)
	}
	return id
}

func requestIDIn(s string) string {
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == '`' || r == ' ' || r == '\n' || r == '*' }) {
		if len(f) == 36 && strings.Count(f, "-") == 4 {
			return f
		}
	}
	return ""
}

// The done-when: a request made in Slack is approved by two clicks,
// in Discord and in Mattermost; the cards on all three are edited in place
// as the reviews arrive, and the requester is told in a Slack DM.
func TestRequestInSlackApprovedInDiscordAndMattermost(t *testing.T) {
	w, _ := newChatWorld(t, true)
	ctx := context.Background()

	id := w.request(t, "request dba for 1h because ticket #42")
	r, err := w.c.Store.GetRequest(ctx, id)
	if err != nil || r.User != "alice" || r.Source != bot.Slack || r.Reason != "ticket #42" || r.Duration.Std() != time.Hour {
		t.Fatalf("request = %+v, %v", r, err)
	}

	// The card lands in the three platforms' channels, with buttons.
	var sc slackfake.Message
	var dc discordfake.Message
	var mc mattermostfake.Message
	cards := func() bool {
		var ok1, ok2, ok3 bool
		sc, ok1 = w.slackCard(id)
		dc, ok2 = w.discordCard(id)
		mc, ok3 = w.mmCard(id)
		return ok1 && ok2 && ok3
	}
	eventually(t, "cards in Slack, Discord and Mattermost", cards)
	if len(sc.Buttons) != 2 || len(dc.Buttons) != 2 || len(mc.Buttons) != 2 ||
		!strings.Contains(sc.Rendered, "0/2") || !strings.Contains(dc.EmbedText, "0/2") || !strings.Contains(mc.Text, "0/2") {
		t.Fatalf("cards:\nslack %+v\ndiscord %+v\nmattermost %+v", sc, dc, mc)
	}

	// alice clicking Approve on her own card is refused; nothing changes.
	if status, _, err := w.slack.ClickButton(w.hooks+"/v1/hooks/slack/interactions", w.alice, sc, bot.ActionApprove); err != nil || status != 200 {
		t.Fatalf("self click: %d %v", status, err)
	}
	resps, err := w.slack.WaitResponses(2, 10*time.Second)
	if err != nil || !strings.Contains(resps[len(resps)-1].Text+resps[len(resps)-1].Rendered, "own request") {
		t.Fatalf("self-approval answer = %+v, %v", resps, err)
	}

	// bob approves in Discord: 1/2 on every card.
	status, body, err := w.discord.ClickButton(w.hooks+"/v1/hooks/discord/interactions", w.bob, dc, "approve:"+id)
	if err != nil || status != 200 {
		t.Fatalf("discord click: %d %s %v", status, body, err)
	}
	eventually(t, "1/2 on all three cards", func() bool {
		cards()
		return strings.Contains(sc.Rendered, "1/2") && strings.Contains(dc.EmbedText, "1/2") && strings.Contains(mc.Text, "1/2")
	})

	// carol approves in Mattermost: APPROVED everywhere, buttons gone,
	// alice DMed in Slack.
	mc0 := mc
	status, resp, err := w.mm.ClickButton(mc, "Approve", w.carol)
	if err != nil || status != 200 {
		t.Fatalf("mattermost click: %d %+v %v", status, resp, err)
	}
	eventually(t, "APPROVED on the three cards and alice's DM", func() bool {
		cards()
		dms := w.slack.DMs(w.alice.ID)
		return strings.Contains(sc.Rendered, "APPROVED") && len(sc.Buttons) == 0 &&
			strings.Contains(dc.EmbedText, "APPROVED") && len(dc.Buttons) == 0 &&
			strings.Contains(mc.Text, "APPROVED") && len(mc.Buttons) == 0 &&
			len(dms) == 1 && strings.Contains(dms[0].Text+dms[0].Rendered, "APPROVED")
	})
	got, _ := w.c.Store.GetRequest(ctx, id)
	if got.State != access.StateApproved || len(got.Reviews) != 2 || got.Reviews[0].Author != "bob" || got.Reviews[1].Author != "carol" {
		t.Fatalf("request = %s with reviews %+v", got.State, got.Reviews)
	}
	// Each card was posted once and edited in place; the reviews are
	// threaded under the Slack card.
	if n := len(w.slack.Messages(w.slackChannel)); n != 1 {
		t.Fatalf("%d Slack messages in the channel, want the one card", n)
	}
	if n := len(w.discord.Messages(w.discordChannel)); n != 1 {
		t.Fatalf("%d Discord messages in the channel, want the one card", n)
	}
	eventually(t, "both reviews in the card's Slack thread", func() bool {
		replies := w.slack.ThreadReplies(w.slackChannel, sc.TS)
		return len(replies) == 2 && strings.Contains(replies[0].Text, "bob approved") && strings.Contains(replies[1].Text, "carol approved")
	})

	// A click on an old copy of the card (it had buttons then) is refused
	// and changes nothing.
	status, resp, err = w.mm.ClickButton(mc0, "Approve", w.carol)
	if err != nil || status != 200 || !strings.Contains(resp.EphemeralText, "APPROVED") {
		t.Fatalf("late click answered %d %+v %v", status, resp, err)
	}
	after, _ := w.c.Store.GetRequest(ctx, id)
	if len(after.Reviews) != 2 || after.State != access.StateApproved {
		t.Fatalf("late click changed the request: %+v", after)
	}
}

// aliceRequests makes a request as alice through the service, as the CLI
// would, without any chat interaction.
func (w *chatWorld) aliceRequests(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	c, err := w.c.Svc.Caller(ctx, "alice", access.SourceCLI)
	if err != nil {
		t.Fatal(err)
	}
	r, err := w.c.Svc.CreateRequest(ctx, c, service.CreateRequestInput{Roles: []string{"dba"}, Reason: "ticket #7"})
	if err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// The delivery worker is down when the state changes, and later dies
// between posting and recording the post: after each restart the card is
// posted exactly once.
func TestDeliveryWorkerKilledPostsOnce(t *testing.T) {
	w, run := newChatWorld(t, false)
	id := w.aliceRequests(t) // no worker runs: the card waits in the outbox

	// Slack makes the post but the worker never hears back, as if it died
	// right after sending; then the worker is killed.
	w.slack.LoseNextResponse("chat.postMessage")
	stop := run()
	eventually(t, "the first post attempt", func() bool { return w.slack.Calls("chat.postMessage") >= 1 })
	stop()

	// A new worker (another replica, or this one restarted) takes over.
	t.Cleanup(run())
	eventually(t, "the card recorded after the restart", func() bool {
		refs, err := w.c.Store.ChatRefs(context.Background(), id, bot.Slack)
		return err == nil && len(refs) == 1
	})
	if n := len(w.slack.Messages(w.slackChannel)); n != 1 {
		t.Fatalf("%d Slack cards after a lost answer and a restart, want 1", n)
	}
	if _, ok := w.mmCard(id); !ok {
		t.Fatal("the Mattermost card was not posted after the restart")
	}
}

// Slack answers 429, then 500, then 200: the card is posted once, after
// the Retry-After.
func TestRateLimitThenErrorThenSuccessDeliversOnce(t *testing.T) {
	w, run := newChatWorld(t, false)
	w.slack.FailNext("chat.postMessage", 429, time.Second)
	w.slack.FailNext("chat.postMessage", 500, 0)
	start := time.Now()
	t.Cleanup(run())
	id := w.aliceRequests(t)
	eventually(t, "the Slack card", func() bool { _, ok := w.slackCard(id); return ok })
	if calls := w.slack.Calls("chat.postMessage"); calls != 3 {
		t.Fatalf("chat.postMessage called %d times, want 3 (429, 500, 200)", calls)
	}
	if n := len(w.slack.Messages(w.slackChannel)); n != 1 {
		t.Fatalf("%d Slack cards, want 1", n)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("delivered after %s: the 1 s Retry-After was not honoured", waited)
	}
}

// Refused interactions through accessd's own routes change nothing.
func TestForgedAndReplayedInteractionsChangeNothing(t *testing.T) {
	w, _ := newChatWorld(t, true)
	ctx := context.Background()
	id := w.aliceRequests(t)
	var dc discordfake.Message
	var mc mattermostfake.Message
	eventually(t, "cards", func() bool {
		var ok1, ok2 bool
		dc, ok1 = w.discordCard(id)
		mc, ok2 = w.mmCard(id)
		return ok1 && ok2
	})
	slackHook := w.hooks + "/v1/hooks/slack/commands"
	discordHook := w.hooks + "/v1/hooks/discord/interactions"

	status, _, _ := w.slack.SlashCommand(slackHook, w.dave, "approve "+id, slackfake.WithSecret("not-the-secret"))
	if status != 401 {
		t.Errorf("forged Slack command: %d, want 401", status)
	}
	status, _, _ = w.slack.SlashCommand(slackHook, w.dave, "approve "+id, slackfake.WithTimestamp(time.Now().Add(-6*time.Minute)))
	if status != 401 {
		t.Errorf("stale Slack command: %d, want 401", status)
	}
	in, err := w.discord.ButtonInteraction(w.bob, dc, "approve:"+id)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := w.discord.Deliver(discordHook, in, discordfake.WithWrongKey()); err != nil || d.Status != 401 {
		t.Errorf("forged Discord click: %+v %v, want 401", d, err)
	}
	if code, _, _ := w.mm.SlashCommand(w.hooks+"/v1/hooks/mattermost/commands", w.carol, "approve "+id, mattermostfake.WithToken("wrong")); code != 401 {
		t.Errorf("wrong Mattermost token: %d, want 401", code)
	}
	tampered := mc
	tampered.Buttons = append([]mattermostfake.Button(nil), mc.Buttons...)
	for i, b := range tampered.Buttons {
		ctxCopy := map[string]any{}
		for k, v := range b.Context {
			ctxCopy[k] = v
		}
		ctxCopy["request_id"] = "00000000-0000-4000-8000-000000000000"
		tampered.Buttons[i].Context = ctxCopy
	}
	if code, _, _ := w.mm.ClickButton(tampered, "Approve", w.carol); code != 403 {
		t.Errorf("tampered Mattermost button: %d, want 403", code)
	}
	if r, _ := w.c.Store.GetRequest(ctx, id); len(r.Reviews) != 0 || r.State != access.StatePending {
		t.Fatalf("refused interactions changed the request: %+v", r)
	}

	// A real click counts once; the same signed click replayed is refused.
	d, err := w.discord.Deliver(discordHook, in)
	if err != nil || d.Status != 200 {
		t.Fatalf("bob's click: %+v %v", d, err)
	}
	if again, err := w.discord.Replay(d); err != nil || again.Status != 409 {
		t.Fatalf("replayed click: %+v %v, want 409", again, err)
	}
	eventually(t, "bob's review", func() bool {
		r, _ := w.c.Store.GetRequest(ctx, id)
		return len(r.Reviews) == 1
	})
}

// `access login --user alice --chat` is finished by alice in Slack; the
// same code sent by dave certifies nobody.
func TestDeviceLoginConfirmedFromSlack(t *testing.T) {
	w, _ := newChatWorld(t, true)
	ctx := context.Background()
	_, csr, err := pki.NewKeyAndCSR("alice")
	if err != nil {
		t.Fatal(err)
	}
	d, err := w.c.Svc.StartDeviceLogin(ctx, "alice", string(csr), "192.0.2.7:50000")
	if err != nil {
		t.Fatal(err)
	}
	cmds := w.hooks + "/v1/hooks/slack/commands"

	// dave has the code (phished): he is told nothing about it.
	if status, _, err := w.slack.SlashCommand(cmds, w.dave, "login "+d.Code); err != nil || status != 200 {
		t.Fatalf("dave's login command: %d %v", status, err)
	}
	resps, err := w.slack.WaitResponses(1, 10*time.Second)
	if err != nil || !strings.Contains(resps[0].Text+resps[0].Rendered, "no such login code") || len(resps[0].Buttons) != 0 {
		t.Fatalf("dave's answer = %+v, %v", resps, err)
	}

	// alice sees the device's address and key, and confirms.
	if status, _, err := w.slack.SlashCommand(cmds, w.alice, "login "+d.Code); err != nil || status != 200 {
		t.Fatalf("alice's login command: %d %v", status, err)
	}
	resps, err = w.slack.WaitResponses(2, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	prompt := resps[1]
	if !strings.Contains(prompt.Rendered, "192.0.2.7") || !strings.Contains(prompt.Rendered, d.KeyHash) || len(prompt.Buttons) != 1 {
		t.Fatalf("prompt = %+v", prompt)
	}
	if _, err := w.c.Svc.RedeemDeviceLogin(ctx, d.Code, string(csr)); !errors.Is(err, service.ErrDeviceLoginPending) {
		t.Fatalf("redeem before the confirmation: %v", err)
	}
	if status, _, err := w.slack.ClickButton(w.hooks+"/v1/hooks/slack/interactions", w.alice, prompt.Message, bot.ActionConfirmLogin); err != nil || status != 200 {
		t.Fatalf("confirm click: %d %v", status, err)
	}
	eventually(t, "the device login redeemed", func() bool {
		res, err := w.c.Svc.RedeemDeviceLogin(ctx, d.Code, string(csr))
		return err == nil && res.CertPEM != ""
	})
}

// The same journey starting in Discord and in Mattermost: the slash
// command makes the request, a click on that platform's card approves it
// (after a first approval elsewhere), the card shows APPROVED without
// buttons, and alice is DMed on that platform too.
func TestEachPlatformEndToEnd(t *testing.T) {
	w, _ := newChatWorld(t, true)
	ctx := context.Background()
	dave, err := w.c.Svc.Caller(ctx, "dave", bot.Slack)
	if err != nil {
		t.Fatal(err)
	}
	newest := func() access.Request {
		all, err := w.c.Store.ListRequests(ctx)
		if err != nil || len(all) == 0 {
			t.Fatalf("requests: %d, %v", len(all), err)
		}
		latest := all[0]
		for _, r := range all {
			if r.Created.After(latest.Created) {
				latest = r
			}
		}
		return latest
	}

	t.Run("discord", func(t *testing.T) {
		status, body, err := w.discord.SlashCommand(w.hooks+"/v1/hooks/discord/interactions", w.aliceDiscord, "request",
			map[string]any{"roles": "dba", "duration": "1h", "reason": "ticket #43"})
		if err != nil || status != 200 {
			t.Fatalf("slash command: %d %s %v", status, body, err)
		}
		reply, err := w.discord.WaitOriginal(w.discord.LastDelivery().Token, 10*time.Second)
		if err != nil || !strings.Contains(reply.Content+reply.EmbedText, "created") {
			t.Fatalf("reply = %+v, %v", reply, err)
		}
		r := newest()
		if r.Source != bot.Discord || r.Reason != "ticket #43" {
			t.Fatalf("request = %+v", r)
		}
		if _, err := w.c.Svc.Review(ctx, dave, r.ID, service.ReviewInput{Verdict: access.VerdictApprove}); err != nil {
			t.Fatal(err)
		}
		var card discordfake.Message
		eventually(t, "the Discord card at 1/2", func() bool {
			var ok bool
			card, ok = w.discordCard(r.ID)
			return ok && strings.Contains(card.EmbedText, "1/2")
		})
		if status, body, err := w.discord.ClickButton(w.hooks+"/v1/hooks/discord/interactions", w.bob, card, "approve:"+r.ID); err != nil || status != 200 {
			t.Fatalf("click: %d %s %v", status, body, err)
		}
		eventually(t, "APPROVED on the Discord card and alice's Discord DM", func() bool {
			card, _ = w.discordCard(r.ID)
			dms := w.discord.DMs(w.aliceDiscord.ID)
			return strings.Contains(card.EmbedText, "APPROVED") && len(card.Buttons) == 0 &&
				len(dms) > 0 && strings.Contains(dms[len(dms)-1].Content+dms[len(dms)-1].EmbedText, "APPROVED")
		})
	})

	t.Run("mattermost", func(t *testing.T) {
		status, resp, err := w.mm.SlashCommand(w.hooks+"/v1/hooks/mattermost/commands", w.aliceMM, "request dba for 1h because ticket #44")
		if err != nil || status != 200 || !strings.Contains(resp.Text, "created") {
			t.Fatalf("slash command: %d %+v %v", status, resp, err)
		}
		r := newest()
		if r.Source != bot.Mattermost || r.Reason != "ticket #44" {
			t.Fatalf("request = %+v", r)
		}
		if _, err := w.c.Svc.Review(ctx, dave, r.ID, service.ReviewInput{Verdict: access.VerdictApprove}); err != nil {
			t.Fatal(err)
		}
		var card mattermostfake.Message
		eventually(t, "the Mattermost card at 1/2", func() bool {
			var ok bool
			card, ok = w.mmCard(r.ID)
			return ok && strings.Contains(card.Text, "1/2")
		})
		if status, resp, err := w.mm.ClickButton(card, "Approve", w.carol); err != nil || status != 200 {
			t.Fatalf("click: %d %+v %v", status, resp, err)
		}
		eventually(t, "APPROVED on the Mattermost card and alice's Mattermost DM", func() bool {
			card, _ = w.mmCard(r.ID)
			dms := w.mm.DMs(w.aliceMM.ID)
			return strings.Contains(card.Text, "APPROVED") && len(card.Buttons) == 0 &&
				len(dms) > 0 && strings.Contains(dms[len(dms)-1].Text, "APPROVED")
		})
	})
}

// secondReplica starts another accessd's chat side on the same etcd: its
// own adapters (own in-process caches), its own webhook server, its
// delivery workers competing in the same elections.
func (w *chatWorld) secondReplica(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	chat, err := chatops.Start(ctx, w.cfg, w.c.Svc, w.c.Store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for p, h := range chat.Routes {
		mux.Handle(p, h)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		sctx, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		_ = chat.Shutdown(sctx)
	})
	return srv.URL
}

// With two replicas, each card is posted once (one elected worker per
// platform), and a click replayed to the other replica is refused there.
func TestTwoReplicas(t *testing.T) {
	w, _ := newChatWorld(t, true)
	other := w.secondReplica(t)
	ctx := context.Background()
	id := w.aliceRequests(t)
	var dc discordfake.Message
	eventually(t, "the cards", func() bool {
		var ok1, ok2, ok3 bool
		_, ok1 = w.slackCard(id)
		dc, ok2 = w.discordCard(id)
		_, ok3 = w.mmCard(id)
		return ok1 && ok2 && ok3
	})
	in, err := w.discord.ButtonInteraction(w.bob, dc, "approve:"+id)
	if err != nil {
		t.Fatal(err)
	}
	d, err := w.discord.Deliver(w.hooks+"/v1/hooks/discord/interactions", in)
	if err != nil || d.Status != 200 {
		t.Fatalf("bob's click: %+v %v", d, err)
	}
	again, err := w.discord.Deliver(other+"/v1/hooks/discord/interactions", in)
	if err != nil || again.Status != http.StatusConflict {
		t.Fatalf("the same click at the other replica: %+v %v, want 409", again, err)
	}
	eventually(t, "bob's review on the card", func() bool {
		c, _ := w.discordCard(id)
		return strings.Contains(c.EmbedText, "1/2")
	})
	time.Sleep(300 * time.Millisecond) // time for a second worker to post, were there one
	if n := len(w.slack.Messages(w.slackChannel)); n != 1 {
		t.Fatalf("%d Slack cards with two replicas, want 1", n)
	}
	if n := len(w.discord.Messages(w.discordChannel)); n != 1 {
		t.Fatalf("%d Discord cards with two replicas, want 1", n)
	}
	if r, _ := w.c.Store.GetRequest(ctx, id); len(r.Reviews) != 1 {
		t.Fatalf("reviews = %+v", r.Reviews)
	}
}

// The policy's notify routes a request to one more Slack channel; its card
// there is edited like the others.
func TestPolicyNotifyRoutesToMoreChannels(t *testing.T) {
	w, _ := newChatWorld(t, true)
	ctx := context.Background()
	c, err := w.c.Svc.Caller(ctx, "alice", access.SourceCLI)
	if err != nil {
		t.Fatal(err)
	}
	routed, err := w.c.Svc.CreateRequest(ctx, c, service.CreateRequestInput{Roles: []string{"dba"}, Reason: "prod incident INC-7"})
	if err != nil {
		t.Fatal(err)
	}
	plain := w.aliceRequests(t)
	inSecurity := func(id string) (slackfake.Message, bool) {
		for _, m := range w.slack.Messages(w.securityChannel) {
			if m.RequestID == id {
				return m, true
			}
		}
		return slackfake.Message{}, false
	}
	eventually(t, "the routed card in #security and both in #access-requests", func() bool {
		_, a := inSecurity(routed.ID)
		_, b := w.slackCard(routed.ID)
		_, c := w.slackCard(plain)
		return a && b && c
	})
	if _, ok := inSecurity(plain); ok {
		t.Fatal("a request the policy does not route reached #security")
	}
	dave, err := w.c.Svc.Caller(ctx, "dave", bot.Slack)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.c.Svc.Review(ctx, dave, routed.ID, service.ReviewInput{Verdict: access.VerdictApprove}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "1/2 on the #security card", func() bool {
		m, _ := inSecurity(routed.ID)
		return strings.Contains(m.Rendered, "1/2")
	})
}
