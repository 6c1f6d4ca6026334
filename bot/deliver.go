package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/outbox"
	"github.com/gatehouse-dev/gatehouse/service"
)

// DeliveryStore is what delivery reads and records.
type DeliveryStore interface {
	GetRequest(ctx context.Context, id string) (access.Request, error)
	GetUser(ctx context.Context, name string) (access.User, error)
	access.ChatStore
}

// Deliverer turns one platform's outbox messages into posts, edits, DMs
// and thread replies (outbox.Worker.Deliver). Cards are rendered from the
// request as it is now, so a late or repeated delivery shows the current
// state; every post is tagged with its outbox id so a redelivery after a
// crash finds it instead of posting twice.
type Deliverer struct {
	Store     DeliveryStore
	Platform  Platform
	PublicURL string
	Log       *slog.Logger
}

// WriteAhead implements outbox.Worker.WriteAhead: every kind that posts a
// message (a card's first post, a DM, a thread reply) has its attempt
// recorded first, so a redelivery after a crash looks for the post it may
// have made; edits are idempotent and skip that write.
func WriteAhead(m access.OutboxMessage) bool { return m.Kind != service.OutboxCardUpdate }

// Deliver implements outbox.Worker.Deliver.
func (d *Deliverer) Deliver(ctx context.Context, m access.OutboxMessage) error {
	r, err := d.Store.GetRequest(ctx, m.RequestID)
	if errors.Is(err, access.ErrNotFound) {
		return fmt.Errorf("request %s is gone: %w", m.RequestID, ErrPermanent)
	}
	if err != nil {
		return err
	}
	card := CardFor(r, d.PublicURL)
	post := Post{Tag: m.ID, Retry: m.Attempts > 0, Since: m.Created}
	switch m.Kind {
	case service.OutboxCard:
		return d.postCard(ctx, m, r, card, post)
	case service.OutboxCardUpdate:
		return d.eachCard(ctx, r.ID, func(ref access.ChatRef) error {
			return d.Platform.UpdateCard(ctx, MessageRef{Channel: ref.Channel, ID: ref.MessageID}, card)
		})
	case service.OutboxReview:
		return d.eachCard(ctx, r.ID, func(ref access.ChatRef) error {
			_, err := d.Platform.ThreadReply(ctx, MessageRef{Channel: ref.Channel, ID: ref.MessageID}, m.Body, post)
			return err
		})
	case service.OutboxDM:
		id, err := d.platformID(ctx, m.Target)
		if err != nil {
			return err
		}
		if id == "" {
			return fmt.Errorf("%s has no %s: %w", m.Target, TraitKey(d.Platform.Name()), outbox.ErrSkip)
		}
		_, err = d.Platform.SendDM(ctx, id, m.Body, &card, post)
		return err
	default:
		return fmt.Errorf("outbox message kind %q: %w", m.Kind, ErrPermanent)
	}
}

// postCard posts the card to the message's channel, or edits the one
// already there (a redelivery after the reference was stored).
func (d *Deliverer) postCard(ctx context.Context, m access.OutboxMessage, r access.Request, card Card, post Post) error {
	ch, err := d.Platform.ResolveChannel(ctx, m.Target)
	if err != nil {
		return fmt.Errorf("channel %q: %w", m.Target, err)
	}
	refs, err := d.Store.ChatRefs(ctx, r.ID, d.Platform.Name())
	if err != nil {
		return err
	}
	for _, ref := range refs {
		if ref.Channel == ch {
			return d.Platform.UpdateCard(ctx, MessageRef{Channel: ref.Channel, ID: ref.MessageID}, card)
		}
	}
	var mentions []string
	if r.State == access.StatePending {
		for _, name := range r.SuggestedReviewers {
			if id, err := d.platformID(ctx, name); err == nil && id != "" {
				mentions = append(mentions, id)
			}
		}
	}
	ref, err := d.Platform.PostCard(ctx, ch, card, mentions, post)
	if err != nil {
		return err
	}
	_, err = d.Store.PutChatRef(ctx, access.ChatRef{RequestID: r.ID, Platform: d.Platform.Name(), Channel: ref.Channel,
		MessageID: ref.ID, OutboxID: m.ID, Created: time.Now().UTC()})
	return err
}

func (d *Deliverer) eachCard(ctx context.Context, requestID string, fn func(access.ChatRef) error) error {
	refs, err := d.Store.ChatRefs(ctx, requestID, d.Platform.Name())
	if err != nil {
		return err
	}
	var transient, permanent []error
	for _, ref := range refs {
		if err := fn(ref); err != nil {
			err = fmt.Errorf("%s message %s/%s: %w", d.Platform.Name(), ref.Channel, ref.MessageID, err)
			if errors.Is(err, ErrPermanent) {
				permanent = append(permanent, err)
			} else {
				transient = append(transient, err)
			}
		}
	}
	// Edits are idempotent, so retrying the whole message is safe; a card
	// that can never be edited (deleted, channel archived) must not stop
	// the others, nor keep the message retrying forever.
	if len(transient) > 0 {
		return errors.Join(transient...)
	}
	return errors.Join(permanent...)
}

// platformID is the user's id on this platform ("" when the user has none
// or no longer exists).
func (d *Deliverer) platformID(ctx context.Context, user string) (string, error) {
	u, err := d.Store.GetUser(ctx, user)
	if errors.Is(err, access.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	ids := u.Spec.Traits[TraitKey(d.Platform.Name())]
	if len(ids) == 0 {
		return "", nil
	}
	return ids[0], nil
}
