package access

import (
	"context"
	"time"
)

// ChatIDTraits are the user traits that map chat platform users to
// Gatehouse users. Only admins set them; each value is unique across users
// (the store keeps an index key per value, written in the same transaction
// as the user, so two users can never claim the same chat id).
var ChatIDTraits = []string{"slack_id", "discord_id", "mattermost_id"}

// ChatRef records where a request's card or a notice was posted on a chat
// platform, so later changes edit the same message instead of posting again.
type ChatRef struct {
	RequestID string `json:"request_id"`
	Platform  string `json:"platform"`
	// Channel is the platform's channel id; MessageID the message (Slack
	// ts, Discord message id, Mattermost post id).
	Channel   string    `json:"channel"`
	MessageID string    `json:"message_id"`
	OutboxID  string    `json:"outbox_id"`
	Created   time.Time `json:"created"`
}

// ChatStore keeps the chat id index and the message references.
type ChatStore interface {
	// ChatUser returns the user whose trait PLATFORM_id is id
	// (ErrNotFound when nobody has it).
	ChatUser(ctx context.Context, platform, id string) (string, error)
	// PutChatRef records a posted card (one per request, platform and
	// channel; a second put for the same channel keeps the first and
	// returns it).
	PutChatRef(ctx context.Context, ref ChatRef) (ChatRef, error)
	// ChatRefs lists the cards of a request on a platform.
	ChatRefs(ctx context.Context, requestID, platform string) ([]ChatRef, error)
}
