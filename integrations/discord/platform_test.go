package discord

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/bot"
	"github.com/gatehouse-dev/gatehouse/integrations/discord/discordfake"
	"github.com/gatehouse-dev/gatehouse/outbox"
)

func TestResolveChannel(t *testing.T) {
	e := newTestEnv(t)
	for in, want := range map[string]string{"123456789012345678": "123456789012345678", " <#123456789012345678> ": "123456789012345678"} {
		if got, err := e.adapter.ResolveChannel(t.Context(), in); err != nil || got != want {
			t.Errorf("ResolveChannel(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"#access-requests", "access-requests", "12345", ""} {
		_, err := e.adapter.ResolveChannel(t.Context(), bad)
		if err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) || !errors.Is(err, bot.ErrPermanent) {
			t.Errorf("ResolveChannel(%q): err = %v, want a permanent error naming it", bad, err)
		}
	}
}

func TestPostCard(t *testing.T) {
	e := newTestEnv(t)
	card := pendingCard()
	ref, err := e.adapter.PostCard(t.Context(), e.channel, card, []string{bob, "not-an-id"}, bot.Post{Tag: "0190b1c2-outbox-id-0000-000000000001"})
	if err != nil {
		t.Fatal(err)
	}
	msgs := e.fake.Messages(e.channel)
	if len(msgs) != 1 || msgs[0].ID != ref.ID || ref.Channel != e.channel {
		t.Fatalf("ref %+v, messages %+v", ref, msgs)
	}
	m := msgs[0]
	for _, want := range []string{
		"alice requests dba — PENDING", "Requester: alice", "Reason: ticket #123", "Duration: 2h", "State: PENDING",
		"Approvals: security 0/2", "dba needs two security reviewers", "Suggested reviewers: bob",
		"`access request show " + requestID + "`",
	} {
		if !strings.Contains(m.EmbedText, want) {
			t.Errorf("card lacks %q:\n%s", want, m.EmbedText)
		}
	}
	if e := m.Embeds[0]; e.URL != card.Link || e.Color != colourPending {
		t.Errorf("embed url %q colour %x", e.URL, e.Color)
	}
	if !slices.Equal(m.Buttons, []string{"approve:" + requestID, "deny:" + requestID}) {
		t.Errorf("buttons %v", m.Buttons)
	}
	if !slices.Equal(m.Mentions, []string{bob}) || !strings.Contains(m.Content, "<@"+bob+">") {
		t.Errorf("content %q pings %v, want bob only", m.Content, m.Mentions)
	}
	if len(m.Nonce) == 0 || len(m.Nonce) > 25 || !strings.HasSuffix(m.EmbedText, "ref "+m.Nonce) {
		t.Errorf("nonce %q, footer %q", m.Nonce, m.EmbedText)
	}
}

func TestCardWithoutButtonsWhenNotActionable(t *testing.T) {
	e := newTestEnv(t)
	card := pendingCard()
	card.State, card.Actionable = access.StateDenied, false
	if _, err := e.adapter.PostCard(t.Context(), e.channel, card, nil, bot.Post{Tag: "t"}); err != nil {
		t.Fatal(err)
	}
	m := e.fake.Messages(e.channel)[0]
	if len(m.Buttons) != 0 || m.Embeds[0].Color != colourDenied {
		t.Fatalf("denied card has buttons %v, colour %x", m.Buttons, m.Embeds[0].Color)
	}
}

func TestUpdateCardEditsInPlaceAndRemovesButtons(t *testing.T) {
	e := newTestEnv(t)
	ref, err := e.adapter.PostCard(t.Context(), e.channel, pendingCard(), nil, bot.Post{Tag: "t"})
	if err != nil {
		t.Fatal(err)
	}
	approved := pendingCard()
	until := time.Date(2025, 3, 1, 14, 0, 0, 0, time.UTC)
	approved.State, approved.Actionable, approved.AccessExpires = access.StateApproved, false, &until
	approved.Progress = []string{"security 2/2"}
	approved.Reviews = []bot.CardReview{{Author: "bob", Verdict: access.VerdictApprove, Reason: "ok", Time: until.Add(-2 * time.Hour)}}
	if err := e.adapter.UpdateCard(t.Context(), ref, approved); err != nil {
		t.Fatal(err)
	}
	msgs := e.fake.Messages(e.channel)
	if len(msgs) != 1 {
		t.Fatalf("%d messages after an update", len(msgs))
	}
	m := msgs[0]
	if m.Edits != 1 || len(m.Buttons) != 0 || !strings.Contains(m.EmbedText, "APPROVED") ||
		!strings.Contains(m.EmbedText, "Approved by bob: ok") || !strings.Contains(m.EmbedText, "Access until: <t:1740837600:f>") {
		t.Fatalf("after update: edits %d buttons %v\n%s", m.Edits, m.Buttons, m.EmbedText)
	}
	if err := e.adapter.UpdateCard(t.Context(), bot.MessageRef{Channel: e.channel, ID: "123456789012345678"}, approved); !errors.Is(err, bot.ErrPermanent) {
		t.Fatalf("unknown message: err = %v, want permanent", err)
	}
}

func TestSendDM(t *testing.T) {
	e := newTestEnv(t)
	card := pendingCard()
	if _, err := e.adapter.SendDM(t.Context(), alice, "Your request is pending.", &card, bot.Post{Tag: "dm-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.adapter.SendDM(t.Context(), alice, "Your request was approved.", nil, bot.Post{Tag: "dm-2"}); err != nil {
		t.Fatal(err)
	}
	dms := e.fake.DMs(alice)
	if len(dms) != 2 || dms[0].Content != "Your request is pending." || !strings.Contains(dms[0].EmbedText, "PENDING") || dms[1].Content != "Your request was approved." {
		t.Fatalf("DMs %+v", dms)
	}
	if len(dms[0].Buttons) != 0 {
		t.Fatalf("DMed card has buttons %v: a DM click maps to nobody", dms[0].Buttons)
	}
	if n := e.fake.Calls(discordfake.RouteCreateDM); n != 1 {
		t.Fatalf("DM channel opened %d times, want once (cached)", n)
	}
}

func TestThreadReplyRepliesToTheCard(t *testing.T) {
	e := newTestEnv(t)
	parent, err := e.adapter.PostCard(t.Context(), e.channel, pendingCard(), nil, bot.Post{Tag: "card"})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := e.adapter.ThreadReply(t.Context(), parent, "Approved by bob: ok", bot.Post{Tag: "reply"})
	if err != nil {
		t.Fatal(err)
	}
	msgs := e.fake.Messages(e.channel)
	if len(msgs) != 2 || msgs[1].ID != ref.ID || msgs[1].ReferenceID != parent.ID || msgs[1].Content != "Approved by bob: ok" {
		t.Fatalf("messages %+v", msgs)
	}
}

// A post whose first attempt may have landed is not posted twice, also
// after Discord's enforce_nonce window.
func TestRetriedPostIsPostedOnce(t *testing.T) {
	const tag = "0190b1c2-7f00-7000-8000-000000000001"
	start := time.Now()

	t.Run("within the nonce window, enforce_nonce returns the first", func(t *testing.T) {
		e := newTestEnv(t)
		first, err := e.adapter.PostCard(t.Context(), e.channel, pendingCard(), nil, bot.Post{Tag: tag})
		if err != nil {
			t.Fatal(err)
		}
		again, err := e.adapter.PostCard(t.Context(), e.channel, pendingCard(), nil, bot.Post{Tag: tag})
		if err != nil || again != first || len(e.fake.Messages(e.channel)) != 1 {
			t.Fatalf("second post %+v (%v), first %+v, %d messages", again, err, first, len(e.fake.Messages(e.channel)))
		}
	})
	t.Run("after the window, Retry finds the first by its marker", func(t *testing.T) {
		e := newTestEnv(t)
		first, err := e.adapter.PostCard(t.Context(), e.channel, pendingCard(), nil, bot.Post{Tag: tag})
		if err != nil {
			t.Fatal(err)
		}
		e.fake.Advance(discordfake.DefaultNonceWindow + time.Minute)
		again, err := e.adapter.PostCard(t.Context(), e.channel, pendingCard(), nil, bot.Post{Tag: tag, Retry: true, Since: start})
		if err != nil || again != first {
			t.Fatalf("retry returned %+v (%v), want %+v", again, err, first)
		}
		if n := e.fake.Calls(discordfake.RouteCreateMessage); n != 1 || len(e.fake.Messages(e.channel)) != 1 {
			t.Fatalf("%d creates, %d messages; want the first only", n, len(e.fake.Messages(e.channel)))
		}
		// Text-only posts carry the marker too.
		dm, err := e.adapter.SendDM(t.Context(), alice, "approved", nil, bot.Post{Tag: "dm"})
		if err != nil {
			t.Fatal(err)
		}
		e.fake.Advance(discordfake.DefaultNonceWindow + time.Minute)
		dmAgain, err := e.adapter.SendDM(t.Context(), alice, "approved", nil, bot.Post{Tag: "dm", Retry: true})
		if err != nil || dmAgain != dm || len(e.fake.DMs(alice)) != 1 {
			t.Fatalf("DM retry %+v (%v), want %+v", dmAgain, err, dm)
		}
	})
	t.Run("after the window, without Retry, Discord would post again", func(t *testing.T) {
		e := newTestEnv(t)
		if _, err := e.adapter.PostCard(t.Context(), e.channel, pendingCard(), nil, bot.Post{Tag: tag}); err != nil {
			t.Fatal(err)
		}
		e.fake.Advance(discordfake.DefaultNonceWindow + time.Minute)
		if _, err := e.adapter.PostCard(t.Context(), e.channel, pendingCard(), nil, bot.Post{Tag: tag}); err != nil {
			t.Fatal(err)
		}
		if n := len(e.fake.Messages(e.channel)); n != 2 {
			t.Fatalf("%d messages: the fake's nonce window is not enforced", n)
		}
	})
	t.Run("Retry with a different tag posts", func(t *testing.T) {
		e := newTestEnv(t)
		if _, err := e.adapter.PostCard(t.Context(), e.channel, pendingCard(), nil, bot.Post{Tag: tag}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.adapter.PostCard(t.Context(), e.channel, pendingCard(), nil, bot.Post{Tag: "other", Retry: true, Since: start}); err != nil {
			t.Fatal(err)
		}
		if n := len(e.fake.Messages(e.channel)); n != 2 {
			t.Fatalf("%d messages, want 2", n)
		}
	})
}

func TestRateLimitCarriesRetryAfter(t *testing.T) {
	e := newTestEnv(t)
	// Discord's header is whole seconds (2), its body exact (1.5): the
	// adapter waits the longer.
	e.fake.FailNext(discordfake.RouteCreateMessage, http.StatusTooManyRequests, 1500*time.Millisecond)
	_, err := e.adapter.PostCard(t.Context(), e.channel, pendingCard(), nil, bot.Post{Tag: "t"})
	var ra outbox.RetryAfter
	if !errors.As(err, &ra) || ra.RetryAfter() != 2*time.Second {
		t.Fatalf("err = %v, want RetryAfter 2s from the header", err)
	}
	if errors.Is(err, bot.ErrPermanent) {
		t.Fatal("a 429 is permanent")
	}
	// Until then the bucket is held back locally: no second 429 earned.
	_, err = e.adapter.PostCard(t.Context(), e.channel, pendingCard(), nil, bot.Post{Tag: "t"})
	if !errors.As(err, &ra) || ra.RetryAfter() <= 0 || ra.RetryAfter() > 2*time.Second {
		t.Fatalf("held-back call: err = %v", err)
	}
	if n := e.fake.Calls(discordfake.RouteCreateMessage); n != 1 {
		t.Fatalf("%d calls reached Discord during the wait", n)
	}
}

func TestPermanentAndRetryableErrors(t *testing.T) {
	postCard := func(e *testEnv) error {
		_, err := e.adapter.PostCard(t.Context(), e.channel, pendingCard(), nil, bot.Post{})
		return err
	}
	cases := []struct {
		name      string
		setup     func(e *testEnv)
		send      func(e *testEnv) error
		permanent bool
		wantText  string
	}{
		{"403 Missing Access", func(e *testEnv) { e.fake.RevokeAccess(e.channel) }, postCard, true, "Missing Access (code 50001)"},
		{"404 Unknown Channel", func(e *testEnv) { e.channel = "123456789012345678" }, postCard, true, "Unknown Channel (code 10003)"},
		{"50007 Cannot send messages to this user", func(e *testEnv) { e.fake.BlockDMs(bob) },
			func(e *testEnv) error {
				_, err := e.adapter.SendDM(t.Context(), bob, "hi", nil, bot.Post{})
				return err
			}, true, "code 50007"},
		{"500", func(e *testEnv) { e.fake.FailNext(discordfake.RouteCreateMessage, http.StatusInternalServerError, 0) }, postCard, false, "500"},
		{"401 bad token", func(e *testEnv) { e.fake.Token = "rotated" }, postCard, false, "check discord.bot_token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			tc.setup(e)
			err := tc.send(e)
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, bot.ErrPermanent) != tc.permanent || !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("err = %v; permanent = %v, want %v and %q", err, errors.Is(err, bot.ErrPermanent), tc.permanent, tc.wantText)
			}
		})
	}
}
