package bot_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/bot"
	"github.com/gatehouse-dev/gatehouse/internal/testcluster"
	"github.com/gatehouse-dev/gatehouse/outbox"
	"github.com/gatehouse-dev/gatehouse/service"
)

// recorder is an in-memory bot.Platform: it keeps posts by channel and can
// be told to fail after posting, as a platform whose answer is lost.
type recorder struct {
	mu    sync.Mutex
	name  string
	posts map[string][]*recorded // channel → posts, in order
	dms   map[string][]string    // user id → texts
	// loseNext makes the next PostCard post and then report an error.
	loseNext bool
}

type recorded struct {
	ref      bot.MessageRef
	tag      string
	card     bot.Card
	mentions []string
	replies  []string
	edits    int
}

func newRecorder(name string) *recorder {
	return &recorder{name: name, posts: map[string][]*recorded{}, dms: map[string][]string{}}
}

func (r *recorder) Name() string { return r.name }

func (r *recorder) ResolveChannel(_ context.Context, ch string) (string, error) {
	if ch == "#gone" {
		return "", fmt.Errorf("channel_not_found: %w", bot.ErrPermanent)
	}
	return strings.TrimPrefix(ch, "#"), nil
}

func (r *recorder) PostCard(_ context.Context, ch string, c bot.Card, mentions []string, p bot.Post) (bot.MessageRef, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.Retry {
		for _, m := range r.posts[ch] {
			if m.tag == p.Tag {
				return m.ref, nil
			}
		}
	}
	m := &recorded{ref: bot.MessageRef{Channel: ch, ID: fmt.Sprintf("%s-%d", ch, len(r.posts[ch])+1)}, tag: p.Tag, card: c, mentions: mentions}
	r.posts[ch] = append(r.posts[ch], m)
	if r.loseNext {
		r.loseNext = false
		return bot.MessageRef{}, errors.New("connection reset after the post was made")
	}
	return m.ref, nil
}

func (r *recorder) find(ref bot.MessageRef) *recorded {
	for _, m := range r.posts[ref.Channel] {
		if m.ref == ref {
			return m
		}
	}
	return nil
}

func (r *recorder) UpdateCard(_ context.Context, ref bot.MessageRef, c bot.Card) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.find(ref)
	if m == nil {
		return fmt.Errorf("message_not_found: %w", bot.ErrPermanent)
	}
	m.card, m.edits = c, m.edits+1
	return nil
}

func (r *recorder) SendDM(_ context.Context, user, text string, _ *bot.Card, _ bot.Post) (bot.MessageRef, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dms[user] = append(r.dms[user], text)
	return bot.MessageRef{Channel: "D" + user, ID: fmt.Sprint(len(r.dms[user]))}, nil
}

func (r *recorder) ThreadReply(_ context.Context, parent bot.MessageRef, text string, _ bot.Post) (bot.MessageRef, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.find(parent)
	if m == nil {
		return bot.MessageRef{}, fmt.Errorf("thread_not_found: %w", bot.ErrPermanent)
	}
	m.replies = append(m.replies, text)
	return bot.MessageRef{Channel: parent.Channel, ID: parent.ID + "/r"}, nil
}

func (r *recorder) channel(ch string) []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []recorded
	for _, m := range r.posts[ch] {
		out = append(out, *m)
	}
	return out
}

func (r *recorder) dmsTo(user string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.dms[user]...)
}

type world struct {
	c      *testcluster.Cluster
	bot    *bot.Bot
	slack  *recorder
	worker *outbox.Worker
}

var (
	aliceSlack = bot.ChatUser{Platform: bot.Slack, Workspace: "T1", ID: "UALICE", Name: "alice"}
	bobSlack   = bot.ChatUser{Platform: bot.Slack, Workspace: "T1", ID: "UBOB", Name: "bob"}
)

func newWorld(t testing.TB) *world {
	t.Helper()
	c := testcluster.StartWithConfig(t, service.Config{Chat: service.ChatConfig{
		Channels: map[string][]string{bot.Slack: {"#access-requests"}}, Threads: []string{bot.Slack}}})
	c.Apply(testcluster.DemoRoles)
	c.Apply(`
kind: user
version: v1
metadata: {name: alice}
spec: {roles: [requester], traits: {slack_id: [UALICE]}}
---
kind: user
version: v1
metadata: {name: bob}
spec: {roles: [reviewer], traits: {slack_id: [UBOB]}}
`)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := bot.New(c.Svc, bot.Config{Workspaces: map[string][]string{bot.Slack: {"T1"}}}, log)
	rec := newRecorder(bot.Slack)
	d := &bot.Deliverer{Store: c.Store, Platform: rec, Log: log}
	return &world{c: c, bot: b, slack: rec, worker: &outbox.Worker{Store: c.Store, Platform: bot.Slack, Deliver: d.Deliver, Log: log, WriteAhead: bot.WriteAhead}}
}

// deliver runs the worker until the outbox is empty.
func (w *world) deliver(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for range 20 {
		if _, err := w.worker.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		left, err := w.c.Store.ListOutbox(ctx, bot.Slack)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			return
		}
		// Make failed messages due at once: the test does not wait out backoff.
		for _, m := range left {
			m.NextAttempt = time.Time{}
			_, _ = w.c.Store.UpdateOutbox(ctx, m)
		}
	}
	t.Fatal("outbox did not drain")
}

func TestRequestReviewedInChat(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()

	rep := w.bot.Command(ctx, aliceSlack, "request dba for 1h because ticket #42")
	if rep.Error || rep.Card == nil {
		t.Fatalf("request reply = %+v", rep)
	}
	id := rep.Card.RequestID
	r, err := w.c.Store.GetRequest(ctx, id)
	if err != nil || r.User != "alice" || r.Source != bot.Slack || r.Reason != "ticket #42" || r.Duration.Std() != time.Hour {
		t.Fatalf("stored request = %+v, %v", r, err)
	}

	w.deliver(t)
	posts := w.slack.channel("access-requests")
	if len(posts) != 1 || posts[0].card.RequestID != id || !posts[0].card.Actionable {
		t.Fatalf("card posts = %+v", posts)
	}
	if got := strings.Join(posts[0].mentions, ","); got != "UBOB" {
		t.Fatalf("mentions = %q, want the suggested reviewer bob's Slack id", got)
	}

	// alice clicking Approve on her own card is refused; nothing changes.
	if rep := w.bot.Review(ctx, aliceSlack, id, access.VerdictApprove, ""); !rep.Error || !strings.Contains(rep.Text, "own request") {
		t.Fatalf("self-approval reply = %+v", rep)
	}
	// bob approves: the card is edited in place, the review is threaded,
	// alice gets a DM.
	if rep := w.bot.Review(ctx, bobSlack, id, access.VerdictApprove, "ok"); rep.Error || !strings.Contains(rep.Text, "APPROVED") {
		t.Fatalf("approve reply = %+v", rep)
	}
	w.deliver(t)
	posts = w.slack.channel("access-requests")
	if len(posts) != 1 || posts[0].edits != 1 || posts[0].card.State != access.StateApproved || posts[0].card.Actionable {
		t.Fatalf("after approval: %+v", posts)
	}
	if len(posts[0].replies) != 1 || !strings.Contains(posts[0].replies[0], "bob approved") {
		t.Fatalf("thread replies = %q", posts[0].replies)
	}
	if dms := w.slack.dmsTo("UALICE"); len(dms) != 1 || !strings.Contains(dms[0], "APPROVED") || !strings.Contains(dms[0], "access login --request-id "+id) {
		t.Fatalf("DMs to alice = %q", dms)
	}
	// A click on the finished request is refused and changes nothing.
	if rep := w.bot.Review(ctx, bobSlack, id, access.VerdictDeny, "too late"); !rep.Error {
		t.Fatalf("late click reply = %+v", rep)
	}
	after, _ := w.c.Store.GetRequest(ctx, id)
	if len(after.Reviews) != 1 || after.State != access.StateApproved {
		t.Fatalf("late click changed the request: %+v", after)
	}
	// The audit trail says it came from Slack.
	events, err := w.c.Store.ListAudit(ctx, access.AuditFilter{RequestID: id})
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]string{}
	for _, e := range events {
		sources[e.Type] = e.Source
	}
	if sources["request.create"] != bot.Slack || sources["request.review"] != bot.Slack {
		t.Fatalf("audit sources = %v", sources)
	}
}

func TestUnmappedUsersGetAClearAnswerAndNothingHappens(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	cases := []struct {
		name string
		u    bot.ChatUser
		want string
	}{
		{"no slack_id trait", bot.ChatUser{Platform: bot.Slack, Workspace: "T1", ID: "UNOBODY"}, "slack_id: UNOBODY"},
		{"another workspace", bot.ChatUser{Platform: bot.Slack, Workspace: "TOTHER", ID: "UALICE"}, `workspace "TOTHER" is not connected`},
		{"a platform not configured", bot.ChatUser{Platform: bot.Discord, Workspace: "T1", ID: "UALICE"}, "not connected"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep := w.bot.Command(ctx, tc.u, "request dba because ticket #1")
			if !rep.Error || !strings.Contains(rep.Text, "not linked to a Gatehouse user") || !strings.Contains(rep.Text, tc.want) {
				t.Fatalf("reply = %+v", rep)
			}
		})
	}
	all, err := w.c.Store.ListRequests(ctx)
	if err != nil || len(all) != 0 {
		t.Fatalf("requests after refusals = %d, %v", len(all), err)
	}
}

func TestCommandsAnswerWithoutMapping(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	nobody := bot.ChatUser{Platform: bot.Slack, Workspace: "T1", ID: "UNOBODY"}
	if rep := w.bot.Command(ctx, nobody, "help"); rep.Error || !strings.Contains(rep.Text, "/access request") {
		t.Fatalf("help = %+v", rep)
	}
	if rep := w.bot.Command(ctx, nobody, "requets dba"); !rep.Error || !strings.Contains(rep.Text, "request") {
		t.Fatalf("typo = %+v", rep)
	}
}

func TestListShowSearch(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.c.Apply(`
kind: db
version: v1
metadata: {name: orders, labels: {env: prod}}
spec: {protocol: postgres, uri: "localhost:5432"}
`)
	rep := w.bot.Command(ctx, aliceSlack, `request dba because "ticket #7"`)
	if rep.Error {
		t.Fatal(rep.Text)
	}
	id := rep.Card.RequestID
	if rep := w.bot.Command(ctx, bobSlack, "ls pending"); rep.Error || len(rep.Cards) != 1 || !strings.Contains(rep.Text, id) {
		t.Fatalf("ls = %+v", rep)
	}
	if rep := w.bot.Command(ctx, bobSlack, "show "+id); rep.Error || rep.Card == nil || rep.Card.Reason != "ticket #7" {
		t.Fatalf("show = %+v", rep)
	}
	waitFor(t, func() bool {
		rep := w.bot.Command(ctx, aliceSlack, "search db env=prod")
		return !rep.Error && strings.Contains(rep.Text, "/test.local/db/orders")
	})
	if rep := w.bot.Command(ctx, bobSlack, "deny "+id+" no ticket"); rep.Error || !strings.Contains(rep.Text, "DENIED") {
		t.Fatalf("deny = %+v", rep)
	}
}

// A worker that dies between posting and recording the reference does not
// post twice: the redelivery finds its post by the outbox id.
func TestRedeliveryFindsItsPost(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.slack.loseNext = true
	rep := w.bot.Command(ctx, aliceSlack, "request dba because ticket #9")
	if rep.Error {
		t.Fatal(rep.Text)
	}
	w.deliver(t)
	if posts := w.slack.channel("access-requests"); len(posts) != 1 {
		t.Fatalf("%d posts after a lost answer, want 1", len(posts))
	}
	refs, err := w.c.Store.ChatRefs(ctx, rep.Card.RequestID, bot.Slack)
	if err != nil || len(refs) != 1 {
		t.Fatalf("references = %+v, %v", refs, err)
	}
}

// A channel that cannot exist is dropped and audited, not retried forever.
func TestPermanentFailureIsDroppedAndAudited(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	rep := w.bot.Command(ctx, aliceSlack, "request dba because ticket #10")
	if rep.Error {
		t.Fatal(rep.Text)
	}
	msgs, _ := w.c.Store.ListOutbox(ctx, bot.Slack)
	for _, m := range msgs {
		m.Target = "#gone"
		_, _ = w.c.Store.UpdateOutbox(ctx, m)
	}
	w.deliver(t)
	events, err := w.c.Store.ListAudit(ctx, access.AuditFilter{RequestID: rep.Card.RequestID, Type: "notify.slack"})
	if err != nil || len(events) != 1 || events[0].Outcome != "failure" || !strings.Contains(events[0].Message, "channel_not_found") {
		t.Fatalf("notify audit = %+v, %v", events, err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A requester without an account on the platform gets no DM there; the
// outbox records that as skipped, not as delivered.
func TestDMToUnmappedRequesterIsSkipped(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.c.Apply(`
kind: user
version: v1
metadata: {name: erin}
spec: {roles: [requester]}
`)
	erin, err := w.c.Svc.Caller(ctx, "erin", access.SourceCLI)
	if err != nil {
		t.Fatal(err)
	}
	r, err := w.c.Svc.CreateRequest(ctx, erin, service.CreateRequestInput{Roles: []string{"dba"}, Reason: "ticket #11"})
	if err != nil {
		t.Fatal(err)
	}
	if rep := w.bot.Review(ctx, bobSlack, r.ID, access.VerdictApprove, ""); rep.Error {
		t.Fatal(rep.Text)
	}
	w.deliver(t)
	events, err := w.c.Store.ListAudit(ctx, access.AuditFilter{RequestID: r.ID, Type: "notify.slack"})
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]string{}
	for _, e := range events {
		outcomes[fmt.Sprint(e.Fields["kind"])] = e.Outcome
	}
	if outcomes["dm"] != "skipped" || outcomes["card"] != "success" {
		t.Fatalf("notify outcomes = %v, want the DM skipped and the card delivered", outcomes)
	}
}
