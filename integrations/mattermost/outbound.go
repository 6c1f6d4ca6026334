package mattermost

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/gatehouse-dev/gatehouse/bot"
)

// sinceMargin widens the search for a post an earlier attempt made: the
// outbox message's creation time is accessd's clock, create_at is
// Mattermost's.
const sinceMargin = time.Minute

var errNotInitialised = errors.New("mattermost adapter not initialised (Init not called or failed)")

// ResolveChannel takes a 26-character channel id as it is, and resolves
// "team/channel" (channel is the channel's name, as in its URL) through the
// API, caching the answer. An unknown team or channel is permanent.
func (a *Adapter) ResolveChannel(ctx context.Context, channel string) (string, error) {
	channel = strings.TrimSpace(channel)
	if model.IsValidId(channel) {
		return channel, nil
	}
	team, name, ok := strings.Cut(channel, "/")
	name = strings.TrimPrefix(name, "~")
	if !ok || team == "" || name == "" || strings.Contains(name, "/") {
		return "", fmt.Errorf("mattermost channel %q: want TEAM/CHANNEL or a channel id: %w", channel, bot.ErrPermanent)
	}
	key := team + "/" + name
	a.mu.RLock()
	id, ok := a.channels[key]
	a.mu.RUnlock()
	if ok {
		return id, nil
	}
	ch, resp, err := a.client.GetChannelByNameForTeamName(ctx, name, team, "")
	if err != nil {
		return "", apiError("get channel "+key, resp, err)
	}
	a.mu.Lock()
	a.channels[key] = ch.Id
	a.mu.Unlock()
	return ch.Id, nil
}

// PostCard posts the card to channel, with a message naming the request
// and mentioning the suggested reviewers (Mattermost user ids) by
// @username. Actionable cards get
// their Approve and Deny buttons in a second call: each button's secret is
// bound to the post's id, which exists only once the post is created. If
// that second call fails, the error makes the outbox retry, and the retry
// finds the post by its tag and adds the buttons then.
func (a *Adapter) PostCard(ctx context.Context, channel string, card bot.Card, mentions []string, p bot.Post) (bot.MessageRef, error) {
	mentionLine, err := a.mentionLine(ctx, mentions)
	if err != nil {
		return bot.MessageRef{}, err
	}
	// The message says only what stays true (edits change the card, not
	// the message): it is what notifications and previews show.
	message := "Access request `" + strings.ReplaceAll(card.RequestID, "`", "") + "` by " + escape(card.User)
	if mentionLine != "" {
		message += "\n" + mentionLine
	}
	post := &model.Post{ChannelId: channel, Message: message, Props: cardProps(cardAttachment(card), p.Tag, card.RequestID)}
	posted, found, err := a.postOnce(ctx, post, p)
	if err != nil {
		return bot.MessageRef{}, err
	}
	// A post found from an earlier attempt is brought up to date too: the
	// request may have changed since, and its buttons may be missing.
	if card.Actionable || found {
		if err := a.editCard(ctx, posted.Id, card, p.Tag); err != nil {
			return bot.MessageRef{}, err
		}
	}
	return bot.MessageRef{Channel: posted.ChannelId, ID: posted.Id}, nil
}

// UpdateCard replaces the card of a posted message, with new button
// secrets (a fresh expiry) while it is actionable and no buttons after.
// The message (request id, requester, mentions) is left as it was. The post's outbox tag is
// not kept: it only matters until the delivery that made the post has
// stored its reference, and only stored references are edited.
func (a *Adapter) UpdateCard(ctx context.Context, ref bot.MessageRef, card bot.Card) error {
	return a.editCard(ctx, ref.ID, card, "")
}

func (a *Adapter) editCard(ctx context.Context, postID string, card bot.Card, tag string) error {
	att := cardAttachment(card)
	if card.Actionable {
		att.Actions = a.cardButtons(card.RequestID, postID)
	}
	props := cardProps(att, tag, card.RequestID)
	if _, resp, err := a.client.PatchPost(ctx, postID, &model.PostPatch{Props: &props}); err != nil {
		return apiError("update post "+postID, resp, err)
	}
	return nil
}

// SendDM sends text, and the card if any, to the user's direct channel with
// the bot. Cards in DMs carry no buttons: a click in a direct channel comes
// without a team id, and reviews happen on the channel card.
func (a *Adapter) SendDM(ctx context.Context, userID string, text string, card *bot.Card, p bot.Post) (bot.MessageRef, error) {
	channel, err := a.directChannel(ctx, userID)
	if err != nil {
		return bot.MessageRef{}, err
	}
	post := &model.Post{ChannelId: channel, Message: defang(text), Props: postProps(p.Tag, "")}
	if card != nil {
		c := *card
		c.Actionable = false
		post.Props = cardProps(cardAttachment(c), p.Tag, c.RequestID)
	}
	posted, _, err := a.postOnce(ctx, post, p)
	if err != nil {
		return bot.MessageRef{}, err
	}
	return bot.MessageRef{Channel: posted.ChannelId, ID: posted.Id}, nil
}

// ThreadReply posts text in parent's thread.
func (a *Adapter) ThreadReply(ctx context.Context, parent bot.MessageRef, text string, p bot.Post) (bot.MessageRef, error) {
	post := &model.Post{ChannelId: parent.Channel, RootId: parent.ID, Message: defang(text), Props: postProps(p.Tag, "")}
	posted, _, err := a.postOnce(ctx, post, p)
	if err != nil {
		return bot.MessageRef{}, err
	}
	return bot.MessageRef{Channel: posted.ChannelId, ID: posted.Id}, nil
}

// postOnce creates post, unless this is a retry and an earlier attempt
// already made it (a post of ours tagged p.Tag since p.Since): found says
// which.
func (a *Adapter) postOnce(ctx context.Context, post *model.Post, p bot.Post) (posted *model.Post, found bool, err error) {
	if p.Retry && p.Tag != "" {
		earlier, err := a.findTagged(ctx, post.ChannelId, p)
		if err != nil {
			return nil, false, err
		}
		if earlier != nil {
			a.log.Info("mattermost post found from an earlier attempt", "outbox_id", p.Tag, "post_id", earlier.Id)
			return earlier, true, nil
		}
	}
	created, resp, err := a.client.CreatePost(ctx, post)
	if err != nil {
		return nil, false, apiError("create post in channel "+post.ChannelId, resp, err)
	}
	return created, false, nil
}

// findTagged looks for our post tagged p.Tag among the channel's posts
// since p.Since (less sinceMargin); nil when there is none.
func (a *Adapter) findTagged(ctx context.Context, channelID string, p bot.Post) (*model.Post, error) {
	botID := a.botUserID()
	if botID == "" {
		return nil, errNotInitialised
	}
	var since int64
	if !p.Since.IsZero() {
		since = max(p.Since.Add(-sinceMargin).UnixMilli(), 1)
	}
	list, resp, err := a.client.GetPostsSince(ctx, channelID, since, false)
	if err != nil {
		return nil, apiError("list posts of channel "+channelID, resp, err)
	}
	var found *model.Post
	for _, post := range list.Posts {
		if post == nil || post.DeleteAt != 0 || post.UserId != botID {
			continue
		}
		if tag, _ := post.GetProp(propOutboxID).(string); tag == p.Tag && (found == nil || post.CreateAt < found.CreateAt) {
			found = post
		}
	}
	return found, nil
}

// mentionLine is "Review requested: @bob @carol" for the user ids. Ids of
// users Mattermost does not know (deleted) are left out.
func (a *Adapter) mentionLine(ctx context.Context, userIDs []string) (string, error) {
	var names []string
	for _, id := range userIDs {
		name, err := a.username(ctx, id)
		if errors.Is(err, bot.ErrPermanent) {
			a.log.Warn("mattermost reviewer to mention not found", "user_id", id, "err", err)
			continue
		}
		if err != nil {
			return "", err
		}
		names = append(names, "@"+name)
	}
	if len(names) == 0 {
		return "", nil
	}
	return "Review requested: " + strings.Join(names, " "), nil
}

func (a *Adapter) username(ctx context.Context, userID string) (string, error) {
	a.mu.RLock()
	name, ok := a.usernames[userID]
	a.mu.RUnlock()
	if ok {
		return name, nil
	}
	if !model.IsValidId(userID) {
		return "", fmt.Errorf("mattermost user id %q is not an id: %w", userID, bot.ErrPermanent)
	}
	u, resp, err := a.client.GetUser(ctx, userID, "")
	if err != nil {
		return "", apiError("get user "+userID, resp, err)
	}
	a.mu.Lock()
	a.usernames[userID] = u.Username
	a.mu.Unlock()
	return u.Username, nil
}

// directChannel is the id of the bot's direct channel with userID
// (created on first use, then cached).
func (a *Adapter) directChannel(ctx context.Context, userID string) (string, error) {
	botID := a.botUserID()
	if botID == "" {
		return "", errNotInitialised
	}
	a.mu.RLock()
	id, ok := a.dms[userID]
	a.mu.RUnlock()
	if ok {
		return id, nil
	}
	if !model.IsValidId(userID) {
		return "", fmt.Errorf("mattermost user id %q is not an id: %w", userID, bot.ErrPermanent)
	}
	ch, resp, err := a.client.CreateDirectChannel(ctx, botID, userID)
	if err != nil {
		return "", apiError("open direct channel with "+userID, resp, err)
	}
	a.mu.Lock()
	a.dms[userID] = ch.Id
	a.mu.Unlock()
	return ch.Id, nil
}
