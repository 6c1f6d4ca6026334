package service

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/gatehouse-dev/gatehouse/access"
)

// Chat outbox kinds. Cards are rendered by the delivery worker from the
// request as it is when delivered, so a message only says what to do, and a
// delayed delivery still shows the current state.
const (
	// OutboxCard posts the request's card to a channel (Target), or edits
	// it if already posted there.
	OutboxCard = "card"
	// OutboxCardUpdate edits every posted card of the request.
	OutboxCardUpdate = "card_update"
	// OutboxDM tells the requester (Target = user name) about a state
	// change in a direct message.
	OutboxDM = "dm"
	// OutboxReview posts a review as a thread reply under each card.
	OutboxReview = "review"
)

// ChatConfig routes request cards.
type ChatConfig struct {
	// Channels holds each enabled platform's default channels; a platform
	// absent from the map is disabled and gets no messages, whatever the
	// policy's notify says.
	Channels map[string][]string
	// Threads lists the platforms where reviews are also posted as thread
	// replies under the card.
	Threads []string
}

func (c ChatConfig) enabled(platform string) bool {
	_, ok := c.Channels[platform]
	return ok
}

func (c ChatConfig) platforms() []string {
	out := make([]string, 0, len(c.Channels))
	for p := range c.Channels {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// chatCreated are the chat messages of a new request: its card in every
// routed channel (config defaults plus the policy's notify targets of
// enabled platforms) and, when the policy decided at once, the requester's
// DM.
func (s *Service) chatCreated(r *access.Request, now time.Time) []access.OutboxMessage {
	var out []access.OutboxMessage
	routes := map[string][]string{}
	for _, p := range s.cfg.Chat.platforms() {
		routes[p] = append(routes[p], s.cfg.Chat.Channels[p]...)
	}
	if r.Decision != nil {
		for _, t := range r.Decision.Notify {
			if t.Platform == access.PlatformPagerDuty {
				continue
			}
			if !s.cfg.Chat.enabled(t.Platform) {
				s.log.Warn("policy routes a request to a chat platform that is not configured", "platform", t.Platform, "channel", t.Channel, "id", r.ID)
				continue
			}
			routes[t.Platform] = append(routes[t.Platform], t.Channel)
		}
	}
	for _, p := range s.cfg.Chat.platforms() {
		seen := map[string]bool{}
		for _, ch := range routes[p] {
			if ch == "" || seen[ch] {
				continue
			}
			seen[ch] = true
			out = append(out, access.OutboxMessage{ID: uuid.NewString(), Platform: p, Kind: OutboxCard, RequestID: r.ID, Target: ch, Created: now})
		}
	}
	if r.State != access.StatePending {
		out = append(out, s.chatDMs(r, now)...)
	}
	return out
}

// chatChanged are the chat messages of a change from before to r: the
// cards edited, the requester DMed on a state change, and new reviews
// posted in the card's thread.
func (s *Service) chatChanged(before access.Request, r *access.Request, now time.Time) []access.OutboxMessage {
	stateChanged := before.State != r.State
	newReviews := r.Reviews[min(len(before.Reviews), len(r.Reviews)):]
	if !stateChanged && len(newReviews) == 0 {
		return nil
	}
	// Each platform's worker delivers in this order: the card first (what
	// reviewers look at), then the requester's DM (what they wait for),
	// then the thread replies.
	var out []access.OutboxMessage
	for _, p := range s.cfg.Chat.platforms() {
		out = append(out, access.OutboxMessage{ID: uuid.NewString(), Platform: p, Kind: OutboxCardUpdate, RequestID: r.ID, Created: now})
	}
	if stateChanged {
		out = append(out, s.chatDMs(r, now)...)
	}
	for _, p := range s.cfg.Chat.platforms() {
		if slices.Contains(s.cfg.Chat.Threads, p) {
			for _, rv := range newReviews {
				out = append(out, access.OutboxMessage{ID: uuid.NewString(), Platform: p, Kind: OutboxReview, RequestID: r.ID, Created: now,
					Body: reviewLine(rv, r)})
			}
		}
	}
	return out
}

func (s *Service) chatDMs(r *access.Request, now time.Time) []access.OutboxMessage {
	var out []access.OutboxMessage
	for _, p := range s.cfg.Chat.platforms() {
		out = append(out, access.OutboxMessage{ID: uuid.NewString(), Platform: p, Kind: OutboxDM, RequestID: r.ID, Target: r.User, Created: now,
			Body: stateNotice(r)})
	}
	return out
}

// reviewLine is a review as a thread reply: who, verdict, reason, progress.
func reviewLine(rv access.Review, r *access.Request) string {
	verb := "approved"
	if rv.Verdict == access.VerdictDeny {
		verb = "denied"
	}
	line := fmt.Sprintf("%s %s at %s", rv.Author, verb, rv.Time.UTC().Format("15:04 MST"))
	if rv.Reason != "" {
		line += ": " + rv.Reason
	}
	if p := r.ProgressSummary(); p != "" && rv.Kind == access.ReviewKindReview {
		line += " (" + p + ")"
	}
	return line
}

// stateNotice tells the requester what happened to their request.
func stateNotice(r *access.Request) string {
	what := strings.Join(append(append([]string{}, r.Roles...), r.Resources...), ", ")
	var b strings.Builder
	fmt.Fprintf(&b, "Your request `%s` for %s is %s", r.ID, what, r.State)
	if r.StateReason != "" {
		fmt.Fprintf(&b, ": %s", r.StateReason)
	}
	b.WriteString(".")
	switch r.State {
	case access.StateApproved:
		if r.AccessExpires != nil {
			fmt.Fprintf(&b, " Access until %s.", r.AccessExpires.UTC().Format("2006-01-02 15:04 MST"))
		}
		fmt.Fprintf(&b, "\nUse it: `access login --request-id %s`", r.ID)
	case access.StateDenied, access.StateExpired:
		fmt.Fprintf(&b, "\nSee: `access request show %s`", r.ID)
	}
	return b.String()
}
