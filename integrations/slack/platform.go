package slack

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	slackgo "github.com/slack-go/slack"

	"github.com/gatehouse-dev/gatehouse/bot"
)

// Bounds of the outbound side.
const (
	// channelCacheTTL is how long a #name -> id listing is reused.
	channelCacheTTL = 10 * time.Minute
	// channelRelistAfter: a name missing from a listing younger than this
	// is not listed again.
	channelRelistAfter = time.Minute
	// listPageSize is conversations.list's page size (Slack advises at
	// most 200) and maxListPages caps the walk: 100,000 channels.
	listPageSize = 200
	maxListPages = 500
	// historyPageSize and maxHistoryPages bound the search for an earlier
	// post of a retried delivery; the search starts at Post.Since minus
	// historySlack, so a few pages are plenty.
	historyPageSize = 100
	maxHistoryPages = 10
	historySlack    = time.Minute
)

// channelIDPattern is a conversation id: C (public), G (private or legacy
// group), D (direct message).
var channelIDPattern = regexp.MustCompile(`^[CGD][A-Z0-9]{6,}$`)

type channelCache struct {
	fill    sync.Mutex // guards the rest; held for a whole lookup, listing included
	byName  map[string]string
	fetched time.Time
}

// ResolveChannel accepts a conversation id as is, and looks a "#name" (or a
// bare name) up with conversations.list, public and private channels the
// bot can see, every page. The listing is reused for channelCacheTTL; a
// name missing from a listing younger than channelRelistAfter is refused
// without listing again, so a misspelt channel in a policy cannot hammer
// conversations.list. An unknown name wraps bot.ErrPermanent.
func (a *Adapter) ResolveChannel(ctx context.Context, channel string) (string, error) {
	channel = strings.TrimSpace(channel)
	if channelIDPattern.MatchString(channel) {
		return channel, nil
	}
	name := strings.ToLower(strings.TrimPrefix(channel, "#"))
	if name == "" {
		return "", fmt.Errorf("%w: slack: empty channel name", bot.ErrPermanent)
	}
	notFound := fmt.Errorf("%w: slack: no channel #%s visible to the bot (a private channel needs the bot invited)", bot.ErrPermanent, name)
	a.channels.fill.Lock() // one conversations.list walk at a time
	defer a.channels.fill.Unlock()
	age := a.cfg.Now().Sub(a.channels.fetched)
	id, found := a.channels.byName[name]
	if a.channels.byName != nil {
		switch {
		case found && age < channelCacheTTL:
			return id, nil
		case !found && age < channelRelistAfter:
			return "", notFound
		}
	}
	byName, err := a.listChannels(ctx)
	if err != nil {
		return "", err
	}
	a.channels.byName, a.channels.fetched = byName, a.cfg.Now()
	if id, ok := byName[name]; ok {
		return id, nil
	}
	return "", notFound
}

func (a *Adapter) listChannels(ctx context.Context) (map[string]string, error) {
	byName := make(map[string]string)
	params := &slackgo.GetConversationsParameters{
		ExcludeArchived: true,
		Limit:           listPageSize,
		Types:           []string{"public_channel", "private_channel"},
		TeamID:          a.cfg.TeamID,
	}
	for range maxListPages {
		chans, next, err := a.api.GetConversationsContext(ctx, params)
		if err != nil {
			return nil, apiError("conversations.list", err)
		}
		for _, c := range chans {
			byName[strings.ToLower(c.Name)] = c.ID
		}
		if next == "" {
			return byName, nil
		}
		params.Cursor = next
	}
	return nil, fmt.Errorf("slack conversations.list: more than %d pages", maxListPages)
}

// metadata tags a post with its outbox message id, so a retried delivery
// finds it (conversations.history with include_all_metadata).
func metadata(tag, requestID string) slackgo.SlackMetadata {
	payload := map[string]any{"outbox_id": tag}
	if requestID != "" {
		payload["request_id"] = requestID
	}
	return slackgo.SlackMetadata{EventType: outboxEventType, EventPayload: payload}
}

func taggedWith(m slackgo.Message, tag string) bool {
	if m.Metadata.EventType != outboxEventType {
		return false
	}
	id, _ := m.Metadata.EventPayload["outbox_id"].(string)
	return id == tag
}

// slackTS is a Slack timestamp ("seconds.micros") for t.
func slackTS(t time.Time) string {
	return fmt.Sprintf("%d.%06d", t.Unix(), t.Nanosecond()/1000)
}

// findTagged looks for an earlier post tagged tag in channel (or, when
// threadTS is set, in that thread) no older than since minus historySlack.
// found is false when there is none. A bot that may post in a public
// channel (chat:write.public) without being a member cannot read its
// history: then the post cannot be looked for, and the caller posts again
// rather than lose the message.
func (a *Adapter) findTagged(ctx context.Context, channel, threadTS, tag string, since time.Time) (ref bot.MessageRef, found bool, err error) {
	if tag == "" {
		return bot.MessageRef{}, false, nil
	}
	var oldest string
	if !since.IsZero() {
		oldest = slackTS(since.Add(-historySlack))
	}
	method := "conversations.history"
	if threadTS != "" {
		method = "conversations.replies"
	}
	cursor := ""
	for range maxHistoryPages {
		var msgs []slackgo.Message
		var next string
		if threadTS == "" {
			resp, err := a.api.GetConversationHistoryContext(ctx, &slackgo.GetConversationHistoryParameters{
				ChannelID: channel, Oldest: oldest, Limit: historyPageSize, Cursor: cursor, IncludeAllMetadata: true,
			})
			if err != nil {
				return a.lookupFailed(method, channel, err)
			}
			msgs, next = resp.Messages, resp.ResponseMetaData.NextCursor
		} else {
			var err error
			msgs, _, next, err = a.api.GetConversationRepliesContext(ctx, &slackgo.GetConversationRepliesParameters{
				ChannelID: channel, Timestamp: threadTS, Oldest: oldest, Limit: historyPageSize, Cursor: cursor, IncludeAllMetadata: true,
			})
			if err != nil {
				return a.lookupFailed(method, channel, err)
			}
		}
		for _, m := range msgs {
			if taggedWith(m, tag) {
				return bot.MessageRef{Channel: channel, ID: m.Timestamp}, true, nil
			}
		}
		if next == "" {
			return bot.MessageRef{}, false, nil
		}
		cursor = next
	}
	return bot.MessageRef{}, false, nil
}

func (a *Adapter) lookupFailed(method, channel string, err error) (bot.MessageRef, bool, error) {
	switch slackCode(err) {
	case "not_in_channel", "missing_scope":
		a.log.Warn("cannot look for an earlier post of a retried delivery; posting again (invite the bot to the channel to avoid duplicates)",
			"method", method, "channel", channel, "err", err)
		return bot.MessageRef{}, false, nil
	}
	return bot.MessageRef{}, false, apiError(method, err)
}

// post is chat.postMessage with the tag, after a look for an earlier post
// when p.Retry.
func (a *Adapter) post(ctx context.Context, channel, threadTS string, p bot.Post, requestID string, opts ...slackgo.MsgOption) (bot.MessageRef, error) {
	if p.Retry {
		ref, found, err := a.findTagged(ctx, channel, threadTS, p.Tag, p.Since)
		if err != nil {
			return bot.MessageRef{}, err
		}
		if found {
			a.log.Info("retried delivery found its earlier post", "channel", channel, "ts", ref.ID, "outbox_id", p.Tag)
			return ref, nil
		}
	}
	if p.Tag != "" {
		opts = append(opts, slackgo.MsgOptionMetadata(metadata(p.Tag, requestID)))
	}
	if threadTS != "" {
		opts = append(opts, slackgo.MsgOptionTS(threadTS))
	}
	ch, ts, err := a.api.PostMessageContext(ctx, channel, opts...)
	if err != nil {
		return bot.MessageRef{}, apiError("chat.postMessage", err)
	}
	if ch == "" {
		ch = channel
	}
	return bot.MessageRef{Channel: ch, ID: ts}, nil
}

// PostCard posts card with Block Kit, the card's text as the fallback
// (mentions first, so they notify) and message metadata
// {event_type: gatehouse_outbox, event_payload: {outbox_id, request_id}}.
func (a *Adapter) PostCard(ctx context.Context, channel string, card bot.Card, mentions []string, p bot.Post) (bot.MessageRef, error) {
	return a.post(ctx, channel, "", p, card.RequestID,
		slackgo.MsgOptionText(cardText(card, mentions), false),
		slackgo.MsgOptionBlocks(cardBlocks(card, mentions)...),
	)
}

// UpdateCard edits a posted card with chat.update. The metadata is left
// out, which Slack documents as keeping the message's metadata, so a later
// retry still finds the post by its tag.
func (a *Adapter) UpdateCard(ctx context.Context, ref bot.MessageRef, card bot.Card) error {
	_, _, _, err := a.api.UpdateMessageContext(ctx, ref.Channel, ref.ID,
		slackgo.MsgOptionText(cardText(card, nil), false),
		slackgo.MsgOptionBlocks(cardBlocks(card, nil)...),
	)
	return apiError("chat.update", err)
}

// SendDM opens the direct message with conversations.open (Slack's
// documented way; the D… id is also what conversations.history needs to
// find a retried post) and posts text, and the card if any.
func (a *Adapter) SendDM(ctx context.Context, userID string, text string, card *bot.Card, p bot.Post) (bot.MessageRef, error) {
	ch, _, _, err := a.api.OpenConversationContext(ctx, &slackgo.OpenConversationParameters{Users: []string{userID}})
	if err != nil {
		return bot.MessageRef{}, apiError("conversations.open", err)
	}
	if ch == nil || ch.ID == "" {
		return bot.MessageRef{}, fmt.Errorf("slack conversations.open: no channel for user %s", userID)
	}
	blocks := textBlocks(text)
	fallback := esc(text)
	requestID := ""
	if card != nil {
		if len(blocks) > 0 {
			blocks = append(blocks, slackgo.NewDividerBlock())
		}
		blocks = append(blocks, cardBlocks(*card, nil)...)
		requestID = card.RequestID
		if fallback == "" {
			fallback = cardText(*card, nil)
		}
	}
	return a.post(ctx, ch.ID, "", p, requestID,
		slackgo.MsgOptionText(truncate(fallback, maxFallbackText), false),
		slackgo.MsgOptionBlocks(blocks...),
	)
}

// ThreadReply posts text in parent's thread (chat.postMessage thread_ts);
// a retry looks in that thread (conversations.replies) for the tag.
func (a *Adapter) ThreadReply(ctx context.Context, parent bot.MessageRef, text string, p bot.Post) (bot.MessageRef, error) {
	return a.post(ctx, parent.Channel, parent.ID, p, "",
		slackgo.MsgOptionText(truncate(esc(text), maxFallbackText), false),
		slackgo.MsgOptionBlocks(textBlocks(text)...),
	)
}
