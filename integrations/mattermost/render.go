package mattermost

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/bot"
)

// Post props that tag our posts. The outbox id lets a redelivery find the
// post an earlier attempt made (bot.Post).
const (
	propOutboxID  = "gatehouse_outbox_id"
	propRequestID = "gatehouse_request_id"
)

// Context keys of buttons.
const (
	ctxAction    = "action"
	ctxRequestID = "request_id"
	ctxCode      = "code"
	ctxTeamID    = "team_id"
	ctxSecret    = "secret"
)

// actionDenyReason is the action the deny dialog's secret is bound to, so
// that it can never pass for a Deny button's secret or the reverse.
const actionDenyReason = "deny_reason"

// maxReplyCards bounds the cards of one reply (`/access ls`): Mattermost
// limits a post's props, and nobody reads fifty cards in a chat reply.
const maxReplyCards = 20

// Attachment colours by state.
var stateColors = map[access.State]string{
	access.StatePending:  "#f2c744",
	access.StateApproved: "good",
	access.StateDenied:   "danger",
}

const neutralColor = "#8a8a8a"

// markdownEscaper backslash-escapes the characters that would turn text
// from users (reasons, names) into links, emphasis, code or HTML in
// Mattermost's markdown.
var markdownEscaper = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`,
	"(", `\(`, ")", `\)`, "<", `\<`, ">", `\>`, "#", `\#`, "|", `\|`, "~", `\~`,
)

func escape(s string) string { return markdownEscaper.Replace(s) }

// cardAttachment renders a card as a message attachment, without buttons.
// User-supplied text goes in the title and fields only: Mattermost looks
// for @mentions in an attachment's text and pretext, not in its fields.
func cardAttachment(c bot.Card) *model.MessageAttachment {
	color, ok := stateColors[c.State]
	if !ok {
		color = neutralColor
	}
	att := &model.MessageAttachment{
		Fallback: c.Text(),
		Color:    color,
		Title:    escape(c.Title()),
		Text:     "See: `" + c.ShowCommand + "`",
		Footer:   "Gatehouse · request " + c.RequestID,
	}
	if strings.HasPrefix(c.Link, "https://") || strings.HasPrefix(c.Link, "http://") {
		att.TitleLink = c.Link
	}
	field := func(title, value string, short bool) {
		if value != "" {
			att.Fields = append(att.Fields, &model.MessageAttachmentField{Title: title, Value: value, Short: model.SlackCompatibleBool(short)})
		}
	}
	field("Requester", escape(c.User), true)
	field("Duration", escape(c.Duration), true)
	field("Roles", escape(strings.Join(c.Roles, ", ")), true)
	field("Resources", escape(strings.Join(c.Resources, ", ")), true)
	field("Reason", escape(c.Reason), false)
	state := string(c.State)
	if c.StateReason != "" {
		state += " — " + escape(c.StateReason)
	}
	if c.AccessExpires != nil && c.State == access.StateApproved {
		state += "\nAccess until " + c.AccessExpires.UTC().Format("2006-01-02 15:04 MST")
	} else if c.State == access.StatePending && !c.PendingExpires.IsZero() {
		state += "\nReview by " + c.PendingExpires.UTC().Format("2006-01-02 15:04 MST")
	}
	field("State", state, true)
	field("Approvals", escape(strings.Join(c.Progress, ", ")), true)
	if len(c.PolicyReasons) > 0 || (c.PolicyOutcome != "" && c.PolicyOutcome != "review") {
		policy := escape(c.PolicyOutcome)
		if len(c.PolicyReasons) > 0 {
			policy += ": " + escape(strings.Join(c.PolicyReasons, "; "))
		}
		field("Policy", policy, false)
	}
	var reviews []string
	for _, rv := range c.Reviews {
		l := fmt.Sprintf("%s by %s", bot.ReviewVerb(rv.Verdict), escape(rv.Author))
		if rv.Reason != "" {
			l += ": " + escape(rv.Reason)
		}
		if !rv.Time.IsZero() {
			l += " (" + rv.Time.UTC().Format("2006-01-02 15:04 MST") + ")"
		}
		reviews = append(reviews, l)
	}
	field("Reviews", strings.Join(reviews, "\n"), false)
	return att
}

// cardButtons are the Approve and Deny buttons of a card posted as postID.
// Each carries a secret bound to (request, action, post, expiry): the post
// id is the one Mattermost sends back in the click's post_id, so a secret
// copied to another post, or from Approve to Deny, does not verify.
func (a *Adapter) cardButtons(requestID, postID string) []*model.PostAction {
	expires := a.now().Add(a.cfg.ButtonTTL)
	button := func(action, name, style string) *model.PostAction {
		return &model.PostAction{
			Id: action, Type: model.PostActionTypeButton, Name: name, Style: style,
			Integration: &model.PostActionIntegration{URL: a.actionsURL, Context: map[string]any{
				ctxAction:    action,
				ctxRequestID: requestID,
				ctxSecret:    ButtonSecret(a.cfg.ButtonKey, requestID, action, postID, expires),
			}},
		}
	}
	return []*model.PostAction{
		button(bot.ActionApprove, "Approve", "success"),
		button(bot.ActionDeny, "Deny", "danger"),
	}
}

// loginBinding is what a login prompt's secret is bound to instead of a
// post id. The prompt is the ephemeral post Mattermost makes from our
// command response, so its id does not exist when the secret is made.
// Binding the clicker's user id and the team of the verified command keeps
// it as narrow: the prompt is shown only to that user, a click carries the
// clicker's user_id, and a secret lifted from it is useless to anyone else
// (another user id does not verify) and after the code's expiry. The team
// is bound so that a click from a direct channel, where Mattermost sends no
// team_id, still counts for the team the command came from.
func loginBinding(userID, teamID string) string { return "user:" + userID + "/team:" + teamID }

// loginAttachment is the private device-login confirmation with its
// Confirm button.
func (a *Adapter) loginAttachment(p bot.LoginPrompt, userID, teamID string) *model.MessageAttachment {
	expires := p.Expires
	if expires.IsZero() || expires.After(a.now().Add(a.cfg.ButtonTTL)) {
		expires = a.now().Add(a.cfg.ButtonTTL)
	}
	att := &model.MessageAttachment{
		Fallback: fmt.Sprintf("Confirm the device login of %s from %s (code %s)", p.User, p.Address, p.Code),
		Color:    stateColors[access.StatePending],
		Title:    "Confirm device login",
		Fields: []*model.MessageAttachmentField{
			{Title: "User", Value: escape(p.User), Short: true},
			{Title: "Device address", Value: escape(p.Address), Short: true},
			{Title: "Key", Value: "`" + strings.ReplaceAll(p.KeyHash, "`", "") + "`"},
			{Title: "Code", Value: "`" + strings.ReplaceAll(p.Code, "`", "") + "`", Short: true},
		},
		Footer: "Only confirm a login you started yourself.",
		Actions: []*model.PostAction{{
			Id: "confirmlogin", Type: model.PostActionTypeButton, Name: "Confirm", Style: "primary",
			Integration: &model.PostActionIntegration{URL: a.actionsURL, Context: map[string]any{
				ctxAction: bot.ActionConfirmLogin,
				ctxCode:   p.Code,
				ctxTeamID: teamID,
				ctxSecret: ButtonSecret(a.cfg.ButtonKey, p.Code, bot.ActionConfirmLogin, loginBinding(userID, teamID), expires),
			}},
		}},
	}
	if !p.Expires.IsZero() {
		att.Fields = append(att.Fields, &model.MessageAttachmentField{Title: "Expires", Value: p.Expires.UTC().Format(time.TimeOnly + " MST"), Short: true})
	}
	return att
}

// commandResponse renders a reply to a slash command for its caller only.
// Cards in replies carry no buttons: the ephemeral post's id is unknown, and
// the channel card or `/access approve` serve to review.
func (a *Adapter) commandResponse(r bot.Reply, userID, teamID string) *model.CommandResponse {
	resp := &model.CommandResponse{ResponseType: model.CommandResponseTypeEphemeral, Text: r.Text}
	cards := r.Cards
	if r.Card != nil {
		cards = append([]bot.Card{*r.Card}, cards...)
	}
	for i, c := range cards {
		if i == maxReplyCards {
			resp.Text += fmt.Sprintf("\n…and %d more; use the CLI to see them all.", len(cards)-maxReplyCards)
			break
		}
		resp.Attachments = append(resp.Attachments, cardAttachment(c))
	}
	if r.Login != nil {
		resp.Attachments = append(resp.Attachments, a.loginAttachment(*r.Login, userID, teamID))
	}
	if resp.Text == "" && len(resp.Attachments) == 0 {
		resp.Text = "Done."
	}
	return resp
}

// ephemeralText renders a reply as the plain text of an action's
// ephemeral answer (Mattermost shows no attachments there).
func ephemeralText(r bot.Reply) string {
	parts := []string{}
	if r.Text != "" {
		parts = append(parts, r.Text)
	}
	if r.Card != nil {
		parts = append(parts, r.Card.Text())
	}
	if len(parts) == 0 {
		return "Done."
	}
	return strings.Join(parts, "\n")
}

// groupMention matches the mentions that notify a whole channel.
var groupMention = regexp.MustCompile(`(?i)@(channel|all|here)\b`)

// defang keeps text from users (a review's reason in a thread reply) from
// notifying a whole channel: a zero-width space after the @ leaves it
// readable but no longer a mention.
func defang(s string) string { return groupMention.ReplaceAllString(s, "@\u200b$1") }

// postProps are the props of every post we make: our tags.
func postProps(tag, requestID string) model.StringInterface {
	props := model.StringInterface{}
	if tag != "" {
		props[propOutboxID] = tag
	}
	if requestID != "" {
		props[propRequestID] = requestID
	}
	return props
}

// cardProps are a card post's props: postProps and the card.
func cardProps(att *model.MessageAttachment, tag, requestID string) model.StringInterface {
	props := postProps(tag, requestID)
	props[model.PostPropsAttachments] = []*model.MessageAttachment{att}
	return props
}
