package store_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

func withChatIDs(u access.User, traits map[string][]string) access.User {
	u.Spec.Traits = traits
	return u
}

// Chat ids map to exactly one user: claimed in the user's transaction,
// released when the trait changes or the user is deleted.
func TestChatIDIndex(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)

	alice := must[access.User](t)(s.CreateUser(ctx, withChatIDs(user("alice", "dev"), map[string][]string{"slack_id": {"U1"}, "discord_id": {"111"}})))
	if got := must[string](t)(s.ChatUser(ctx, "slack", "U1")); got != "alice" {
		t.Fatalf("slack U1 maps to %q, want alice", got)
	}
	if got := must[string](t)(s.ChatUser(ctx, "discord", "111")); got != "alice" {
		t.Fatalf("discord 111 maps to %q, want alice", got)
	}

	// bob cannot claim alice's Slack id, neither at creation nor later.
	_, err := s.CreateUser(ctx, withChatIDs(user("bob", "dev"), map[string][]string{"slack_id": {"U1"}}))
	wantErr(t, err, access.ErrAlreadyExists, `slack_id U1 already belongs to user "alice"`)
	if _, err := s.GetUser(ctx, "bob"); !errors.Is(err, access.ErrNotFound) {
		t.Fatalf("refused create left bob behind: %v", err)
	}
	bob := must[access.User](t)(s.CreateUser(ctx, user("bob", "dev")))
	_, err = s.PutUser(ctx, withChatIDs(bob, map[string][]string{"slack_id": {"U1"}}))
	wantErr(t, err, access.ErrAlreadyExists, "already belongs")

	// alice moves to another Slack id: U1 is released, bob can take it.
	alice = must[access.User](t)(s.PutUser(ctx, withChatIDs(alice, map[string][]string{"slack_id": {"U2"}})))
	if _, err := s.ChatUser(ctx, "slack", "U1"); !errors.Is(err, access.ErrNotFound) {
		t.Fatalf("U1 still mapped after alice dropped it: %v", err)
	}
	if _, err := s.ChatUser(ctx, "discord", "111"); !errors.Is(err, access.ErrNotFound) {
		t.Fatalf("discord 111 still mapped after alice dropped it: %v", err)
	}
	bob = must[access.User](t)(s.GetUser(ctx, "bob"))
	must[access.User](t)(s.PutUser(ctx, withChatIDs(bob, map[string][]string{"slack_id": {"U1"}})))
	if got := must[string](t)(s.ChatUser(ctx, "slack", "U1")); got != "bob" {
		t.Fatalf("U1 maps to %q, want bob", got)
	}
	// Re-putting alice unchanged keeps her id.
	must[access.User](t)(s.PutUser(ctx, alice))
	if got := must[string](t)(s.ChatUser(ctx, "slack", "U2")); got != "alice" {
		t.Fatalf("U2 maps to %q, want alice", got)
	}

	// Deleting a user releases its ids.
	noErr(t, s.DeleteUser(ctx, "alice", access.Lock{Reason: "left"}))
	if _, err := s.ChatUser(ctx, "slack", "U2"); !errors.Is(err, access.ErrNotFound) {
		t.Fatalf("U2 still mapped after alice was deleted: %v", err)
	}

	// Ids that would escape their key are refused and nothing is written.
	_, err = s.CreateUser(ctx, withChatIDs(user("carol", "dev"), map[string][]string{"mattermost_id": {"a/b"}}))
	wantErr(t, err, access.ErrInvalid, "mattermost_id")
}

// Two users racing for one chat id: exactly one gets it.
func TestChatIDIndexConcurrent(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	const n = 12
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.CreateUser(ctx, withChatIDs(user(string(rune('a'+i))+"-user", "dev"), map[string][]string{"slack_id": {"UCONTESTED"}}))
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, access.ErrAlreadyExists):
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d users got the same Slack id, want 1", ok)
	}
}

func TestChatRefs(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	now := time.Now().UTC()
	first := access.ChatRef{RequestID: "r1", Platform: "slack", Channel: "C1", MessageID: "1.1", OutboxID: "o1", Created: now}
	must[access.ChatRef](t)(s.PutChatRef(ctx, first))
	// A second post recorded for the same channel keeps the first.
	kept := must[access.ChatRef](t)(s.PutChatRef(ctx, access.ChatRef{RequestID: "r1", Platform: "slack", Channel: "C1", MessageID: "2.2", Created: now}))
	if kept.MessageID != "1.1" {
		t.Fatalf("second put returned %+v, want the first reference", kept)
	}
	must[access.ChatRef](t)(s.PutChatRef(ctx, access.ChatRef{RequestID: "r1", Platform: "slack", Channel: "C2", MessageID: "3.3", Created: now.Add(time.Second)}))
	must[access.ChatRef](t)(s.PutChatRef(ctx, access.ChatRef{RequestID: "r1", Platform: "discord", Channel: "9", MessageID: "4", Created: now}))
	refs := must[[]access.ChatRef](t)(s.ChatRefs(ctx, "r1", "slack"))
	if len(refs) != 2 || refs[0].MessageID != "1.1" || refs[1].MessageID != "3.3" {
		t.Fatalf("ChatRefs = %+v", refs)
	}
	_, err := s.PutChatRef(ctx, access.ChatRef{RequestID: "r1", Platform: "slack", Channel: "../x"})
	wantErr(t, err, access.ErrInvalid, "")
}

// A request id remembered through one connection is not new through
// another (another replica), and survives the loss of its cached lease.
func TestRememberRequestAcrossReplicas(t *testing.T) {
	s, m := storetest.EmbeddedMember(t)
	ctx := ctxT(t)
	until := time.Now().Add(5 * time.Minute)
	if fresh := must[bool](t)(s.RememberRequest(ctx, "discord:1", until)); !fresh {
		t.Fatal("a new id was reported as seen")
	}
	if fresh := must[bool](t)(s.RememberRequest(ctx, "discord:1", until)); fresh {
		t.Fatal("a repeated id was reported as new")
	}
	other, err := store.Dial(ctx, store.Config{Endpoints: m.Endpoints(), Logger: storetest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	if fresh := must[bool](t)(other.RememberRequest(ctx, "discord:1", until)); fresh {
		t.Fatal("another replica took a repeated id as new")
	}
	if fresh := must[bool](t)(other.RememberRequest(ctx, "discord:2", until)); !fresh {
		t.Fatal("another replica refused a new id")
	}
}

// The messages of one transaction share their creation time and are
// listed in the order the transaction wrote them, whatever their ids.
func TestOutboxKeepsATransactionsOrder(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	now := time.Now().UTC()
	var msgs []access.OutboxMessage
	for i, kind := range []string{"card_update", "dm", "review", "review"} {
		// Ids in reverse of the order written, so key order cannot pass.
		msgs = append(msgs, access.OutboxMessage{ID: fmt.Sprintf("m%d", 9-i), Platform: "slack", Kind: kind, RequestID: "r1", Created: now})
	}
	r := pendingRequest("7f1f1a3e-2c4b-4d2a-9a0e-1d2c3b4a5f60", 1)
	if _, err := s.CreateRequestFx(ctx, r, access.Effects{Outbox: msgs}); err != nil {
		t.Fatal(err)
	}
	got := must[[]access.OutboxMessage](t)(s.ListOutbox(ctx, "slack"))
	var order []string
	for _, m := range got {
		order = append(order, m.ID)
	}
	if strings.Join(order, ",") != "m9,m8,m7,m6" {
		t.Fatalf("listed %v, want the written order m9,m8,m7,m6", order)
	}
}
