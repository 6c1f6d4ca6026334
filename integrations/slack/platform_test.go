package slack

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/bot"
	"github.com/gatehouse-dev/gatehouse/integrations/slack/slackfake"
	"github.com/gatehouse-dev/gatehouse/outbox"
)

var ctx = context.Background()

// A posted card carries the Block Kit card, the card's text as fallback
// with the reviewers' mentions first, and the outbox tag as metadata.
func TestPostCard(t *testing.T) {
	hs := newHarness(t, slackfake.Options{}, nil)
	ch := hs.fake.AddChannel(slackfake.Channel{Name: "access-requests"})
	card := pendingCard("r-1")
	card.Link = "https://gatehouse.example.com:3025/v1/requests/r-1"

	ref, err := hs.a.PostCard(ctx, ch, card, []string{"U0BOB", "<!channel>"}, bot.Post{Tag: "outbox-1"})
	if err != nil {
		t.Fatal(err)
	}
	msgs := hs.fake.Messages(ch)
	if len(msgs) != 1 || ref != (bot.MessageRef{Channel: ch, ID: msgs[0].TS}) {
		t.Fatalf("ref %+v, messages %+v", ref, msgs)
	}
	m := msgs[0]
	if m.OutboxID != "outbox-1" || m.RequestID != "r-1" || m.MetadataType != "gatehouse_outbox" {
		t.Fatalf("metadata = %q %q %q", m.MetadataType, m.OutboxID, m.RequestID)
	}
	if !strings.HasPrefix(m.Text, "<@U0BOB> Access request `r-1`") || strings.Contains(m.Text, "<!channel>") {
		t.Fatalf("fallback text = %q: want bob mentioned first and no channel ping", m.Text)
	}
	for _, want := range []string{"alice requests dba — PENDING", "*Requester*\nalice", "*Roles*\ndba", "*Duration*\n2h",
		"*State*\nPENDING", "*Approvals*\nsecurity 0/1", "*Reason*\nticket #42", "`access request show r-1`",
		"<https://gatehouse.example.com:3025/v1/requests/r-1|Open in Gatehouse>", "<@U0BOB>", "[Approve] [Deny]"} {
		if !strings.Contains(m.Rendered, want) {
			t.Errorf("card lacks %q:\n%s", want, m.Rendered)
		}
	}
	if !slices.Equal(m.Buttons, []string{bot.ActionApprove, bot.ActionDeny}) {
		t.Fatalf("buttons = %v", m.Buttons)
	}
}

// Approve and Deny appear only while the request can be decided.
func TestCardButtonsOnlyWhenActionable(t *testing.T) {
	hs := newHarness(t, slackfake.Options{}, nil)
	ch := hs.fake.AddChannel(slackfake.Channel{Name: "access-requests"})
	until := time.Now().Add(2 * time.Hour)
	for _, c := range []bot.Card{
		{RequestID: "r-a", User: "alice", State: access.StateApproved, AccessExpires: &until, Reviews: []bot.CardReview{{Author: "bob", Verdict: access.VerdictApprove, Time: time.Now()}}},
		{RequestID: "r-d", User: "alice", State: access.StateDenied, StateReason: "no ticket"},
		{RequestID: "r-e", User: "alice", State: access.StateExpired},
	} {
		if _, err := hs.a.PostCard(ctx, ch, c, nil, bot.Post{Tag: c.RequestID}); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range hs.fake.Messages(ch) {
		if len(m.Buttons) != 0 || strings.Contains(m.Rendered, "[Approve]") {
			t.Fatalf("card %s has buttons %v", m.RequestID, m.Buttons)
		}
	}
}

// Reasons, names and resources are user input: Slack's control characters
// are escaped so "<!channel>" in a reason pings nobody.
func TestCardEscapesUserInput(t *testing.T) {
	hs := newHarness(t, slackfake.Options{}, nil)
	ch := hs.fake.AddChannel(slackfake.Channel{Name: "access-requests"})
	card := pendingCard("r-x")
	card.Reason = "<!channel> & <@U0ADMIN> please"
	if _, err := hs.a.PostCard(ctx, ch, card, nil, bot.Post{Tag: "t"}); err != nil {
		t.Fatal(err)
	}
	m := hs.fake.Messages(ch)[0]
	for _, text := range []string{m.Text, m.Rendered} {
		if strings.Contains(text, "<!channel>") || strings.Contains(text, "<@U0ADMIN>") || !strings.Contains(text, "&lt;!channel&gt; &amp; &lt;@U0ADMIN&gt;") {
			t.Fatalf("user input not escaped: %q", text)
		}
	}
}

// A card bigger than Block Kit allows is cut to fit, not refused: the fake
// refuses what Slack refuses.
func TestCardWithinBlockKitLimits(t *testing.T) {
	hs := newHarness(t, slackfake.Options{}, nil)
	ch := hs.fake.AddChannel(slackfake.Channel{Name: "access-requests"})
	card := pendingCard("r-big")
	card.Reason = strings.Repeat("very long reason ", 1000)
	card.User = strings.Repeat("u", 300)
	for i := range 200 {
		card.Resources = append(card.Resources, "/prod/node/db-"+strings.Repeat("x", 20)+string(rune('a'+i%26)))
		card.Reviews = append(card.Reviews, bot.CardReview{Author: "reviewer", Verdict: access.VerdictApprove, Reason: strings.Repeat("ok ", 20)})
		card.PolicyReasons = append(card.PolicyReasons, "rule "+strings.Repeat("r", 40))
	}
	if _, err := hs.a.PostCard(ctx, ch, card, nil, bot.Post{Tag: "t"}); err != nil {
		t.Fatalf("oversized card refused: %v", err)
	}
	if m := hs.fake.Messages(ch)[0]; !strings.Contains(m.Rendered, "…") || !slices.Equal(m.Buttons, []string{bot.ActionApprove, bot.ActionDeny}) {
		t.Fatalf("card not cut to fit or lost its buttons: buttons %v", m.Buttons)
	}

	// A long `access request ls` answer stays one valid message.
	cards := make([]bot.Card, 30)
	for i := range cards {
		cards[i] = pendingCard("r-" + strings.Repeat("n", i+1))
	}
	text, blocks := replyMessage(bot.Reply{Text: "30 requests", Cards: cards})
	if len(blocks) > maxBlocks || text != "30 requests" {
		t.Fatalf("%d blocks, text %q", len(blocks), text)
	}
}

// chat.update replaces the content, keeps the outbox tag, posts nothing.
func TestUpdateCard(t *testing.T) {
	hs := newHarness(t, slackfake.Options{}, nil)
	ch := hs.fake.AddChannel(slackfake.Channel{Name: "access-requests"})
	ref, err := hs.a.PostCard(ctx, ch, pendingCard("r-1"), nil, bot.Post{Tag: "outbox-1"})
	if err != nil {
		t.Fatal(err)
	}
	approved := pendingCard("r-1")
	approved.State, approved.Actionable, approved.Progress = access.StateApproved, false, []string{"security 1/1"}
	approved.Reviews = []bot.CardReview{{Author: "bob", Verdict: access.VerdictApprove, Reason: "looks fine"}}
	if err := hs.a.UpdateCard(ctx, ref, approved); err != nil {
		t.Fatal(err)
	}
	msgs := hs.fake.Messages(ch)
	if len(msgs) != 1 {
		t.Fatalf("%d messages after an update", len(msgs))
	}
	m := msgs[0]
	if m.Edits != 1 || m.OutboxID != "outbox-1" || len(m.Buttons) != 0 ||
		!strings.Contains(m.Rendered, "APPROVED") || !strings.Contains(m.Rendered, "Approved by bob: looks fine") {
		t.Fatalf("after update: %+v", m)
	}
	if err := hs.a.UpdateCard(ctx, bot.MessageRef{Channel: ch, ID: "1.000001"}, approved); !errors.Is(err, bot.ErrPermanent) {
		t.Fatalf("update of a missing message: %v, want ErrPermanent", err)
	}
}

// A DM goes to the user's direct message channel, opened with
// conversations.open.
func TestSendDM(t *testing.T) {
	hs := newHarness(t, slackfake.Options{}, nil)
	hs.fake.AddUser(alice)
	card := pendingCard("r-1")
	ref, err := hs.a.SendDM(ctx, alice.ID, "Your request `r-1` is pending.", &card, bot.Post{Tag: "dm-1"})
	if err != nil {
		t.Fatal(err)
	}
	dms := hs.fake.DMs(alice.ID)
	if len(dms) != 1 || ref != (bot.MessageRef{Channel: dms[0].Channel, ID: dms[0].TS}) || !strings.HasPrefix(ref.Channel, "D") {
		t.Fatalf("ref %+v, DMs %+v", ref, dms)
	}
	if m := dms[0]; m.OutboxID != "dm-1" || m.Text != "Your request `r-1` is pending." || !strings.Contains(m.Rendered, "alice requests dba") {
		t.Fatalf("DM = %+v", m)
	}
	if n := hs.fake.Calls("conversations.open"); n != 1 {
		t.Fatalf("conversations.open called %d times", n)
	}
	if _, err := hs.a.SendDM(ctx, "U0NOBODY", "hi", nil, bot.Post{Tag: "dm-2"}); !errors.Is(err, bot.ErrPermanent) {
		t.Fatalf("DM to an unknown user: %v, want ErrPermanent (user_not_found)", err)
	}
}

func TestThreadReply(t *testing.T) {
	hs := newHarness(t, slackfake.Options{}, nil)
	ch := hs.fake.AddChannel(slackfake.Channel{Name: "access-requests"})
	parent, err := hs.a.PostCard(ctx, ch, pendingCard("r-1"), nil, bot.Post{Tag: "card"})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := hs.a.ThreadReply(ctx, parent, "Approved by bob: looks fine", bot.Post{Tag: "reply-1"})
	if err != nil {
		t.Fatal(err)
	}
	replies := hs.fake.ThreadReplies(ch, parent.ID)
	if len(replies) != 1 || replies[0].TS != ref.ID || replies[0].Text != "Approved by bob: looks fine" || replies[0].ThreadTS != parent.ID {
		t.Fatalf("replies = %+v, ref %+v", replies, ref)
	}
	if top := hs.fake.Messages(ch); len(top) != 1 {
		t.Fatalf("the reply landed in the channel: %+v", top)
	}
}

// The worker posted, Slack's answer was lost, the worker retries: the
// adapter finds its own post by the outbox tag instead of posting twice.
func TestRetryFindsTheEarlierPost(t *testing.T) {
	cases := []struct {
		name string
		list func(hs *harness, ch string, parent bot.MessageRef) []slackfake.Message
		send func(hs *harness, ch string, parent bot.MessageRef, p bot.Post) (bot.MessageRef, error)
	}{
		{"card",
			func(hs *harness, ch string, _ bot.MessageRef) []slackfake.Message { return hs.fake.Messages(ch) },
			func(hs *harness, ch string, _ bot.MessageRef, p bot.Post) (bot.MessageRef, error) {
				return hs.a.PostCard(ctx, ch, pendingCard("r-1"), nil, p)
			}},
		{"DM",
			func(hs *harness, _ string, _ bot.MessageRef) []slackfake.Message { return hs.fake.DMs(alice.ID) },
			func(hs *harness, _ string, _ bot.MessageRef, p bot.Post) (bot.MessageRef, error) {
				return hs.a.SendDM(ctx, alice.ID, "Approved.", nil, p)
			}},
		{"thread reply",
			func(hs *harness, ch string, parent bot.MessageRef) []slackfake.Message {
				return hs.fake.ThreadReplies(ch, parent.ID)
			},
			func(hs *harness, _ string, parent bot.MessageRef, p bot.Post) (bot.MessageRef, error) {
				return hs.a.ThreadReply(ctx, parent, "Approved by bob", p)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hs := newHarness(t, slackfake.Options{PageSize: 1}, nil)
			hs.fake.AddUser(alice)
			ch := hs.fake.AddChannel(slackfake.Channel{Name: "access-requests"})
			parent, err := hs.a.PostCard(ctx, ch, pendingCard("r-0"), nil, bot.Post{Tag: "parent"})
			if err != nil {
				t.Fatal(err)
			}
			// Other tagged posts around it, which a retry must not mistake
			// for its own.
			if _, err := tc.send(hs, ch, parent, bot.Post{Tag: "someone-else"}); err != nil {
				t.Fatal(err)
			}
			since := time.Now()
			posts := hs.fake.Calls("chat.postMessage")

			hs.fake.LoseNextResponse("chat.postMessage")
			if _, err := tc.send(hs, ch, parent, bot.Post{Tag: "outbox-7", Since: since}); err == nil || errors.Is(err, bot.ErrPermanent) {
				t.Fatalf("lost answer: err = %v, want a retryable error", err)
			}
			ref, err := tc.send(hs, ch, parent, bot.Post{Tag: "outbox-7", Retry: true, Since: since})
			if err != nil {
				t.Fatal(err)
			}
			if n := hs.fake.Calls("chat.postMessage") - posts; n != 1 {
				t.Fatalf("chat.postMessage called %d times for one delivery, want 1", n)
			}
			var mine []slackfake.Message
			for _, m := range tc.list(hs, ch, parent) {
				if m.OutboxID == "outbox-7" {
					mine = append(mine, m)
				}
			}
			if len(mine) != 1 || ref.ID != mine[0].TS || ref.Channel != mine[0].Channel {
				t.Fatalf("posts tagged outbox-7: %+v, ref %+v", mine, ref)
			}
		})
	}
}

// A retry of a delivery that never reached Slack posts it, once.
func TestRetryPostsWhenNothingWasPosted(t *testing.T) {
	hs := newHarness(t, slackfake.Options{}, nil)
	ch := hs.fake.AddChannel(slackfake.Channel{Name: "access-requests"})
	since := time.Now()
	hs.fake.FailNext("chat.postMessage", http.StatusServiceUnavailable, 0)
	_, err := hs.a.PostCard(ctx, ch, pendingCard("r-1"), nil, bot.Post{Tag: "outbox-1", Since: since})
	if err == nil || errors.Is(err, bot.ErrPermanent) {
		t.Fatalf("5xx: err = %v, want a retryable error", err)
	}
	if _, err := hs.a.PostCard(ctx, ch, pendingCard("r-1"), nil, bot.Post{Tag: "outbox-1", Retry: true, Since: since}); err != nil {
		t.Fatal(err)
	}
	if msgs := hs.fake.Messages(ch); len(msgs) != 1 || msgs[0].OutboxID != "outbox-1" {
		t.Fatalf("messages = %+v", msgs)
	}
}

// Slack's 429 becomes an error carrying Retry-After for the outbox worker.
func TestRateLimitedCarriesRetryAfter(t *testing.T) {
	hs := newHarness(t, slackfake.Options{}, nil)
	ch := hs.fake.AddChannel(slackfake.Channel{Name: "access-requests"})
	calls := []struct {
		method string
		do     func() error
	}{
		{"chat.postMessage", func() error {
			_, err := hs.a.PostCard(ctx, ch, pendingCard("r-1"), nil, bot.Post{Tag: "t"})
			return err
		}},
		{"chat.update", func() error { return hs.a.UpdateCard(ctx, bot.MessageRef{Channel: ch, ID: "1.1"}, pendingCard("r-1")) }},
		{"conversations.history", func() error {
			_, err := hs.a.PostCard(ctx, ch, pendingCard("r-1"), nil, bot.Post{Tag: "t", Retry: true})
			return err
		}},
	}
	for _, c := range calls {
		hs.fake.FailNext(c.method, http.StatusTooManyRequests, 7*time.Second)
		err := c.do()
		var ra outbox.RetryAfter
		if !errors.As(err, &ra) || ra.RetryAfter() != 7*time.Second || errors.Is(err, bot.ErrPermanent) {
			t.Fatalf("%s 429: err = %v, want RetryAfter 7s", c.method, err)
		}
	}
}

// Errors no retry can fix wrap bot.ErrPermanent; others do not.
func TestPermanentErrors(t *testing.T) {
	hs := newHarness(t, slackfake.Options{}, nil)
	ch := hs.fake.AddChannel(slackfake.Channel{Name: "access-requests"})
	archived := hs.fake.AddChannel(slackfake.Channel{Name: "old", Archived: true})
	post := func(channel string) error {
		_, err := hs.a.PostCard(ctx, channel, pendingCard("r-1"), nil, bot.Post{Tag: "t"})
		return err
	}
	cases := []struct {
		name      string
		inject    string // an ok:false code the next chat.postMessage answers
		channel   string
		permanent bool
	}{
		{"unknown channel", "", "C0NOSUCH", true},
		{"archived channel", "", archived, true},
		{"not in channel", "not_in_channel", ch, true},
		{"invalid auth", "invalid_auth", ch, true},
		{"missing scope", "missing_scope", ch, true},
		{"internal error", "internal_error", ch, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.inject != "" {
				hs.fake.FailNextWith("chat.postMessage", tc.inject)
			}
			err := post(tc.channel)
			if err == nil || errors.Is(err, bot.ErrPermanent) != tc.permanent {
				t.Fatalf("err = %v, permanent %v", err, tc.permanent)
			}
		})
	}

	// A wrong token is Slack's real invalid_auth, not only an injected one.
	bad, err := New(Config{BotToken: "xoxb-wrong", SigningSecret: "s", APIURL: hs.fake.APIURL}, hs.h, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.PostCard(ctx, ch, pendingCard("r-1"), nil, bot.Post{}); !errors.Is(err, bot.ErrPermanent) || !strings.Contains(err.Error(), "invalid_auth") {
		t.Fatalf("wrong token: %v", err)
	}
}

// A retry in a public channel the bot posts to without being a member
// cannot read the history; it posts rather than lose the card.
func TestRetryWithoutHistoryAccessStillDelivers(t *testing.T) {
	hs := newHarness(t, slackfake.Options{}, nil)
	ch := hs.fake.AddChannel(slackfake.Channel{Name: "announcements", NotMember: true})
	if _, err := hs.a.PostCard(ctx, ch, pendingCard("r-1"), nil, bot.Post{Tag: "t", Retry: true, Since: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if n := len(hs.fake.Messages(ch)); n != 1 {
		t.Fatalf("%d messages", n)
	}
}

func TestResolveChannel(t *testing.T) {
	hs := newHarness(t, slackfake.Options{PageSize: 1}, nil)
	for _, n := range []string{"general", "random", "ops"} {
		hs.fake.AddChannel(slackfake.Channel{Name: n})
	}
	secret := hs.fake.AddChannel(slackfake.Channel{Name: "security-reviews", Private: true})
	hs.fake.AddChannel(slackfake.Channel{Name: "hidden", Private: true, NotMember: true})
	want := hs.fake.AddChannel(slackfake.Channel{Name: "access-requests"})

	cases := []struct{ in, want string }{
		{"#access-requests", want},
		{"access-requests", want},
		{"#Security-Reviews", secret},
		{"C0123ABCD", "C0123ABCD"},
		{"G0123ABCD", "G0123ABCD"},
	}
	for _, tc := range cases {
		got, err := hs.a.ResolveChannel(ctx, tc.in)
		if err != nil || got != tc.want {
			t.Fatalf("ResolveChannel(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	// One paginated walk (6 visible channels, pages of 1), then the cache.
	if n := hs.fake.Calls("conversations.list"); n != 5 {
		t.Fatalf("conversations.list called %d times, want 5 pages once", n)
	}
	for _, name := range []string{"#hidden", "#no-such-channel"} {
		if _, err := hs.a.ResolveChannel(ctx, name); !errors.Is(err, bot.ErrPermanent) {
			t.Fatalf("ResolveChannel(%q): %v, want ErrPermanent", name, err)
		}
	}
}
