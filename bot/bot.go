// Package bot is the platform-neutral core of Gatehouse's chat bots. Every
// platform adapter (integrations/slack, integrations/discord,
// integrations/mattermost) does two things with it:
//
//   - inbound: it verifies the platform's request (signature, token, replay),
//     turns it into a ChatUser plus command text or a click, and calls a
//     Handler (the *Bot of this package), then renders the Reply;
//   - outbound: it implements Platform, which the outbox delivery worker
//     (Deliverer) calls to post request cards, edit them as reviews arrive,
//     DM requesters and reply in threads.
//
// Rules that must be the same everywhere (who a chat user is, what a
// command does, what a card says) live here, so a new platform is one
// package implementing Platform and calling Handler.
package bot

import (
	"context"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/outbox"
)

// Platform names, as used in outbox messages, audit sources, user traits
// (PLATFORM_id) and the policy's notify targets.
const (
	Slack      = "slack"
	Discord    = "discord"
	Mattermost = "mattermost"
)

// Platforms lists the chat platforms.
var Platforms = []string{Slack, Discord, Mattermost}

// TraitKey is the user trait that maps a platform's user id to a Gatehouse
// user: slack_id, discord_id, mattermost_id.
func TraitKey(platform string) string { return platform + "_id" }

// ChatUser is who sent a command or clicked a button, as the platform's
// verified request says.
type ChatUser struct {
	Platform string
	// Workspace is the Slack team id, the Discord guild id or the
	// Mattermost team id the request came from. Only configured workspaces
	// map to anyone; a DM interaction on Discord has no guild and maps to
	// nobody.
	Workspace string
	// ID is the platform's user id (Slack U…, Discord snowflake,
	// Mattermost 26-character id).
	ID string
	// Name is the platform's user name, for logs and messages only.
	Name string
	// Email is the platform's e-mail for the user, when the adapter knows
	// it; it maps to a user only when identity.chat_email_mapping is on.
	Email string
}

// Action ids carried by card buttons.
const (
	ActionApprove      = "approve"
	ActionDeny         = "deny"
	ActionConfirmLogin = "confirm_login"
)

// Handler is what adapters call for inbound interactions; *Bot implements
// it. Every method answers within the platform's deadline in normal
// operation (one or two etcd transactions); adapters with a hard limit
// (Slack's 3 s) still acknowledge first and deliver the Reply afterwards.
// A Reply is always meant for the caller only (ephemeral) unless it says
// otherwise.
type Handler interface {
	// Command runs the `/access ...` text (without "/access").
	Command(ctx context.Context, u ChatUser, text string) Reply
	// Review records an Approve or Deny click (verdict) on requestID.
	Review(ctx context.Context, u ChatUser, requestID string, verdict access.Verdict, reason string) Reply
	// ConfirmLogin confirms the device login with code, started by
	// `access login --user NAME`.
	ConfirmLogin(ctx context.Context, u ChatUser, code string) Reply
}

// Reply is the answer to one interaction. Text uses only the markup all
// three platforms render the same way: `code` spans and line breaks.
type Reply struct {
	Text string
	// Card is a request card to show (after a request is created, for
	// show, after a review).
	Card *Card
	// Cards are several (ls).
	Cards []Card
	// Login asks the user to confirm a device login (a Confirm button).
	Login *LoginPrompt
	// Error marks a refusal or a failure; Text says why.
	Error bool
}

// LoginPrompt is the private confirmation shown for `/access login CODE`.
type LoginPrompt struct {
	Code    string
	User    string // the Gatehouse user the device claims to be
	Address string // the device's address as accessd saw it
	KeyHash string // SHA256:... of the key to be certified
	Expires time.Time
}

// MessageRef is where a posted message lives on its platform.
type MessageRef struct {
	// Channel is the platform's channel id (Slack C…/D…, Discord channel
	// snowflake, Mattermost channel id).
	Channel string `json:"channel"`
	// ID is the message id (Slack ts, Discord message snowflake,
	// Mattermost post id).
	ID string `json:"id"`
}

// Post says how to tag one delivery so a redelivery finds it.
type Post struct {
	// Tag is the outbox message id; the adapter stores it with the post
	// (Slack message metadata, Discord nonce with enforce_nonce, Mattermost
	// post props).
	Tag string
	// Retry is true when an earlier attempt of the same delivery may have
	// posted already (the worker died before recording the reference, or
	// the platform answered with an error after posting). The adapter then
	// looks for a post tagged Tag, no older than Since, and returns it
	// instead of posting again.
	Retry bool
	Since time.Time
}

// Platform is one chat platform's outbound side. Errors that carry the
// platform's wait (429 Retry-After) implement outbox.RetryAfter; errors
// that no retry can fix (unknown channel, bot not in channel, bad token
// scope) wrap ErrPermanent so the message is dropped, audited as failed,
// instead of retried forever.
type Platform interface {
	Name() string
	// ResolveChannel turns a configured or policy-routed channel (Slack
	// "#name" or id, Discord id, Mattermost "team/channel" or id) into the
	// platform's channel id.
	ResolveChannel(ctx context.Context, channel string) (string, error)
	// PostCard posts card to the channel id, mentioning the platform user
	// ids in mentions, and returns its reference.
	PostCard(ctx context.Context, channel string, card Card, mentions []string, p Post) (MessageRef, error)
	// UpdateCard edits a posted card in place.
	UpdateCard(ctx context.Context, ref MessageRef, card Card) error
	// SendDM sends text (and the card, if not nil) to the platform user id
	// in a direct message.
	SendDM(ctx context.Context, userID string, text string, card *Card, p Post) (MessageRef, error)
	// ThreadReply posts text under parent. Platforms without threads
	// (Discord) reply to the message instead.
	ThreadReply(ctx context.Context, parent MessageRef, text string, p Post) (MessageRef, error)
}

// ErrPermanent marks a delivery error that retrying cannot fix; the outbox
// worker drops such a message and audits the failure.
var ErrPermanent = outbox.ErrPermanent

// Card is a request card as every platform renders it.
type Card struct {
	RequestID string
	User      string // Gatehouse user name of the requester
	Roles     []string
	Resources []string
	Reason    string
	Duration  string // "2h", as the CLI prints it
	State     access.State
	// StateReason says why the state is what it is (the policy's deny
	// reasons, "expired", an admin's reason).
	StateReason string
	// Progress is one line per threshold: "security 1/2".
	Progress []string
	// PolicyReasons are the policy's reasons (deny or auto-approve).
	PolicyReasons []string
	// PolicyOutcome is review, approve, deny or policy_error.
	PolicyOutcome string
	Reviews       []CardReview
	// SuggestedReviewers are Gatehouse user names; adapters mention the
	// platform ids the delivery passes in mentions.
	SuggestedReviewers []string
	Created            time.Time
	PendingExpires     time.Time
	AccessExpires      *time.Time
	// ShowCommand is the CLI line to see everything: `access request show ID`.
	ShowCommand string
	// Link is PUBLIC_URL/v1/requests/ID when public_url is set, else empty.
	Link string
	// Actionable is true while the request is PENDING: only then are
	// Approve and Deny buttons shown.
	Actionable bool
}

// CardReview is one review on a card.
type CardReview struct {
	Author  string
	Verdict access.Verdict
	Reason  string
	Time    time.Time
}

// Title is the card's one-line summary ("alice requests dba — PENDING").
func (c Card) Title() string {
	what := joinWhat(c.Roles, c.Resources)
	return c.User + " requests " + what + " — " + string(c.State)
}
