package discord

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/gatehouse-dev/gatehouse/bot"
)

// Outbound limits.
const (
	// maxNonceLen is Discord's cap on a message nonce.
	maxNonceLen = 25
	// lookbackLimit is how many recent messages a retried post searches
	// for its own earlier attempt (Discord's page size cap is 100).
	lookbackLimit = 50
	// lookbackSkew widens Post.Since for clock skew between accessd and
	// Discord.
	lookbackSkew = time.Minute
	// markerPrefix precedes the nonce in a post's embed footer.
	markerPrefix = "ref "
)

// Name is "discord".
func (a *Adapter) Name() string { return bot.Discord }

// ResolveChannel accepts channel ids only (snowflakes, what Discord's
// "Copy Channel ID" gives): names are not unique across guilds, and
// resolving them needs the guild's channel list.
func (a *Adapter) ResolveChannel(_ context.Context, channel string) (string, error) {
	c := strings.TrimSpace(channel)
	// <#123> is how Discord writes a channel mention; accept it too.
	if strings.HasPrefix(c, "<#") && strings.HasSuffix(c, ">") {
		c = c[2 : len(c)-1]
	}
	if !isSnowflake(c) {
		return "", fmt.Errorf("discord: channel %q: %w: want a channel id such as 123456789012345678 (Discord: enable Developer Mode, right-click the channel, Copy Channel ID)", channel, bot.ErrPermanent)
	}
	return c, nil
}

// PostCard posts card to channel as an embed (with Approve and Deny
// buttons while card.Actionable), mentioning the user ids in mentions.
func (a *Adapter) PostCard(ctx context.Context, channel string, card bot.Card, mentions []string, p bot.Post) (bot.MessageRef, error) {
	if !isSnowflake(channel) {
		return bot.MessageRef{}, fmt.Errorf("discord: posting card %s: channel %q is not a channel id: %w", card.RequestID, channel, bot.ErrPermanent)
	}
	msg := discordgo.MessageSend{
		Embeds:          []*discordgo.MessageEmbed{cardEmbed(card)},
		Components:      cardButtons(card),
		AllowedMentions: noMentions(),
	}
	var tags []string
	for _, id := range mentions {
		if isSnowflake(id) {
			tags = append(tags, "<@"+id+">")
			msg.AllowedMentions.Users = append(msg.AllowedMentions.Users, id)
		} else {
			a.log.Warn("mention skipped: not a Discord user id", "request", card.RequestID, "mention", id)
		}
	}
	if len(tags) > 0 {
		msg.Content = clipText("Review requested: "+strings.Join(tags, " "), maxContentLen)
	}
	ref, err := a.post(ctx, channel, msg, p)
	if err != nil {
		return ref, fmt.Errorf("posting card %s: %w", card.RequestID, err)
	}
	return ref, nil
}

// UpdateCard edits a posted card in place: PATCH
// /channels/{channel.id}/messages/{message.id} with the new embed, and the
// buttons removed once the card is no longer actionable.
func (a *Adapter) UpdateCard(ctx context.Context, ref bot.MessageRef, card bot.Card) error {
	if !isSnowflake(ref.Channel) || !isSnowflake(ref.ID) {
		return fmt.Errorf("discord: updating card %s: bad message reference %+v: %w", card.RequestID, ref, bot.ErrPermanent)
	}
	embeds := []*discordgo.MessageEmbed{cardEmbed(card)}
	components := cardButtons(card)
	edit := messageEdit{MessageEdit: &discordgo.MessageEdit{Embeds: &embeds, Components: &components}}
	err := a.rest.do(ctx, http.MethodPatch, "/channels/{channel.id}/messages/{message.id}",
		"channels/"+ref.Channel+"/messages/"+ref.ID, edit, nil)
	if err != nil {
		return fmt.Errorf("updating card %s: %w", card.RequestID, err)
	}
	return nil
}

// SendDM sends text, and card if not nil, to the user in their DM channel
// (POST /users/@me/channels, cached per user). The card carries no buttons
// in a DM: an interaction from a DM has no guild, so nobody it maps to
// could review.
func (a *Adapter) SendDM(ctx context.Context, userID string, text string, card *bot.Card, p bot.Post) (bot.MessageRef, error) {
	if !isSnowflake(userID) {
		return bot.MessageRef{}, fmt.Errorf("discord: DM to %q: not a user id: %w", userID, bot.ErrPermanent)
	}
	channel, err := a.dmChannel(ctx, userID)
	if err != nil {
		return bot.MessageRef{}, fmt.Errorf("opening DM with %s: %w", userID, err)
	}
	msg := discordgo.MessageSend{Content: clipText(text, maxContentLen), AllowedMentions: noMentions()}
	if card != nil {
		msg.Embeds = []*discordgo.MessageEmbed{cardEmbed(*card)}
	}
	ref, err := a.post(ctx, channel, msg, p)
	if err != nil {
		return ref, fmt.Errorf("DM to %s: %w", userID, err)
	}
	return ref, nil
}

// ThreadReply answers parent. Discord has no reply threads like Slack's,
// so this is a reply (message_reference to parent; still posted if parent
// was deleted).
func (a *Adapter) ThreadReply(ctx context.Context, parent bot.MessageRef, text string, p bot.Post) (bot.MessageRef, error) {
	if !isSnowflake(parent.Channel) || !isSnowflake(parent.ID) {
		return bot.MessageRef{}, fmt.Errorf("discord: reply: bad parent reference %+v: %w", parent, bot.ErrPermanent)
	}
	failIfMissing := false
	msg := discordgo.MessageSend{
		Content:         clipText(text, maxContentLen),
		AllowedMentions: noMentions(),
		Reference:       &discordgo.MessageReference{MessageID: parent.ID, ChannelID: parent.Channel, FailIfNotExists: &failIfMissing},
	}
	ref, err := a.post(ctx, parent.Channel, msg, p)
	if err != nil {
		return ref, fmt.Errorf("replying to %s: %w", parent.ID, err)
	}
	return ref, nil
}

// messageCreate is Create Message's body: discordgo.MessageSend has no
// nonce or enforce_nonce.
type messageCreate struct {
	discordgo.MessageSend
	Nonce        string `json:"nonce,omitempty"`
	EnforceNonce bool   `json:"enforce_nonce,omitempty"`
}

// messageEdit is Edit Message's body. discordgo.MessageEdit's ID and
// Channel have no JSON tags; these shallower, always empty fields of the
// same names hide them.
type messageEdit struct {
	*discordgo.MessageEdit
	ID      string `json:"ID,omitempty"`
	Channel string `json:"Channel,omitempty"`
}

// post creates a message tagged with p.Tag: the nonce (with
// enforce_nonce) and a marker in the last embed's footer. A message
// without embeds gets a footer-only embed for the marker.
//
// On p.Retry it first looks for an earlier attempt. Discord documents the
// nonce only for the Create Message answer and the MESSAGE_CREATE gateway
// event ("Value will appear in the Message Create event"), and
// enforce_nonce dedupes only "in the past few minutes"; Get Channel
// Messages does not document returning it. So the lookback matches the
// footer marker, which is part of the message itself (and the nonce too,
// should Discord send it).
func (a *Adapter) post(ctx context.Context, channel string, msg discordgo.MessageSend, p bot.Post) (bot.MessageRef, error) {
	body := messageCreate{MessageSend: msg}
	if p.Tag != "" {
		body.Nonce = nonceFor(p.Tag)
		body.EnforceNonce = true
		body.Embeds = withMarker(msg.Embeds, markerPrefix+body.Nonce)
		if p.Retry {
			ref, found, err := a.findTagged(ctx, channel, body.Nonce, p.Since)
			if err != nil {
				return bot.MessageRef{}, err
			}
			if found {
				a.log.Info("retried post found its earlier attempt", "channel", channel, "message", ref.ID, "tag", p.Tag)
				return ref, nil
			}
		}
	}
	var out discordgo.Message
	if err := a.rest.do(ctx, http.MethodPost, "/channels/{channel.id}/messages", "channels/"+channel+"/messages", body, &out); err != nil {
		return bot.MessageRef{}, err
	}
	if out.ID == "" {
		return bot.MessageRef{}, errors.New("discord: Create Message answered no message id")
	}
	if out.ChannelID == "" {
		out.ChannelID = channel
	}
	return bot.MessageRef{Channel: out.ChannelID, ID: out.ID}, nil
}

// nonceFor derives the ≤25-character nonce from a post tag (an outbox id,
// usually a 36-character UUID): 25 base32 characters of its SHA-256, 125
// bits, so distinct tags do not collide.
func nonceFor(tag string) string {
	sum := sha256.Sum256([]byte(tag))
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))[:maxNonceLen]
}

// withMarker returns embeds with marker appended to the last footer.
func withMarker(embeds []*discordgo.MessageEmbed, marker string) []*discordgo.MessageEmbed {
	out := make([]*discordgo.MessageEmbed, len(embeds))
	copy(out, embeds)
	if len(out) == 0 {
		return []*discordgo.MessageEmbed{{Footer: &discordgo.MessageEmbedFooter{Text: footerText + " · " + marker}}}
	}
	last := *out[len(out)-1]
	text := footerText
	if last.Footer != nil && last.Footer.Text != "" {
		text = last.Footer.Text
	}
	last.Footer = &discordgo.MessageEmbedFooter{Text: clipText(text, maxFooterLen-len(marker)-3) + " · " + marker}
	out[len(out)-1] = &last
	return out
}

// findTagged looks through the channel's latest messages for one of ours
// carrying nonce (in the footer marker or the nonce field), not older than
// since. A channel whose history the bot may not read is searched as empty:
// the post that follows still carries enforce_nonce.
func (a *Adapter) findTagged(ctx context.Context, channel, nonce string, since time.Time) (bot.MessageRef, bool, error) {
	me, err := a.me(ctx)
	if err != nil {
		return bot.MessageRef{}, false, err
	}
	var page []json.RawMessage
	err = a.rest.do(ctx, http.MethodGet, "/channels/{channel.id}/messages",
		fmt.Sprintf("channels/%s/messages?limit=%d", channel, lookbackLimit), nil, &page)
	if errors.Is(err, bot.ErrPermanent) {
		a.log.Warn("cannot search channel history for an earlier post; posting with enforce_nonce only", "channel", channel, "err", err)
		return bot.MessageRef{}, false, nil
	}
	if err != nil {
		return bot.MessageRef{}, false, fmt.Errorf("searching for an earlier post: %w", err)
	}
	marker := markerPrefix + nonce
	for _, raw := range page {
		var m discordgo.Message
		var extra struct {
			Nonce any `json:"nonce"`
		}
		if json.Unmarshal(raw, &m) != nil || json.Unmarshal(raw, &extra) != nil {
			continue
		}
		if m.Author == nil || m.Author.ID != me {
			continue
		}
		if !since.IsZero() && m.Timestamp.Before(since.Add(-lookbackSkew)) {
			continue
		}
		ours := fmt.Sprint(extra.Nonce) == nonce
		for _, e := range m.Embeds {
			ours = ours || (e.Footer != nil && strings.HasSuffix(e.Footer.Text, marker))
		}
		if ours {
			if m.ChannelID == "" {
				m.ChannelID = channel
			}
			return bot.MessageRef{Channel: m.ChannelID, ID: m.ID}, true, nil
		}
	}
	return bot.MessageRef{}, false, nil
}

// me is the bot user's id (GET /users/@me, asked once).
func (a *Adapter) me(ctx context.Context) (string, error) {
	a.mu.Lock()
	id := a.botUserID
	a.mu.Unlock()
	if id != "" {
		return id, nil
	}
	var u discordgo.User
	if err := a.rest.do(ctx, http.MethodGet, "/users/@me", "users/@me", nil, &u); err != nil {
		return "", fmt.Errorf("asking who the bot is: %w", err)
	}
	if u.ID == "" {
		return "", errors.New("discord: GET /users/@me answered no id")
	}
	a.mu.Lock()
	a.botUserID = u.ID
	a.mu.Unlock()
	return u.ID, nil
}

// dmChannel opens (or finds, Discord answers the same channel) the DM
// channel with userID.
func (a *Adapter) dmChannel(ctx context.Context, userID string) (string, error) {
	a.mu.Lock()
	id, ok := a.dmChannels[userID]
	a.mu.Unlock()
	if ok {
		return id, nil
	}
	var ch discordgo.Channel
	if err := a.rest.do(ctx, http.MethodPost, "/users/@me/channels", "users/@me/channels",
		map[string]string{"recipient_id": userID}, &ch); err != nil {
		return "", err
	}
	if !isSnowflake(ch.ID) {
		return "", fmt.Errorf("discord: Create DM answered channel id %q", ch.ID)
	}
	a.mu.Lock()
	a.dmChannels[userID] = ch.ID
	a.mu.Unlock()
	return ch.ID, nil
}
