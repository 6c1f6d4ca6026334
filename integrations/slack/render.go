package slack

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	slackgo "github.com/slack-go/slack"
	"github.com/slack-go/slack/slackutilsx"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/bot"
	"github.com/gatehouse-dev/gatehouse/bot/command"
)

// Block Kit limits (https://docs.slack.dev/reference/block-kit/blocks):
// exceeding one makes Slack refuse the whole message with invalid_blocks, so
// every text is cut to fit, with an ellipsis.
const (
	maxBlocks         = 50   // blocks in one message or modal
	maxSectionText    = 3000 // section text
	maxFieldText      = 2000 // one section field
	maxHeaderText     = 150  // header block text
	maxContextText    = 3000 // one context element
	maxButtonValue    = 2000 // button value
	maxBlockID        = 255  // block_id
	maxFallbackText   = 4000 // message text: Slack cuts at 40,000 and advises 4,000
	maxModalTitle     = 24   // modal title
	maxPrivateMeta    = 3000 // view private_metadata
	ellipsis          = "…"
	denyCallbackID    = "gatehouse_deny"
	reasonBlockID     = "reason"
	reasonActionID    = "reason_input"
	outboxEventType   = "gatehouse_outbox"
	reviewBlockPrefix = "gatehouse_review/"
	loginBlockPrefix  = "gatehouse_login/"
)

// truncate cuts s to at most n characters (Slack counts characters, not
// bytes), ending with an ellipsis when cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + ellipsis
}

// esc escapes the three characters Slack's mrkdwn treats as control
// characters. Everything that comes from users (reasons, names, resource
// ids) goes through it, so a reason of "<!channel>" cannot ping a channel.
func esc(s string) string { return slackutilsx.EscapeMessage(s) }

func mrkdwn(text string, limit int) *slackgo.TextBlockObject {
	return slackgo.NewTextBlockObject(slackgo.MarkdownType, truncate(text, limit), false, false)
}

func plain(text string, limit int) *slackgo.TextBlockObject {
	return slackgo.NewTextBlockObject(slackgo.PlainTextType, truncate(text, limit), false, false)
}

// slackDate renders t in each reader's own time zone, with a UTC fallback
// for clients that cannot.
func slackDate(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", t.Unix(), t.UTC().Format("2006-01-02 15:04 UTC"))
}

// userIDPattern is a Slack user id; anything else in mentions is dropped
// rather than pasted into mrkdwn.
var userIDPattern = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)

func mentionText(userIDs []string) string {
	var parts []string
	for _, id := range userIDs {
		if userIDPattern.MatchString(id) {
			parts = append(parts, "<@"+id+">")
		}
	}
	return strings.Join(parts, " ")
}

// cardBlocks renders a request card: a header with the title, the facts as
// fields, the reason, policy reasons and reviews, the CLI line (and link) as
// context, and Approve/Deny buttons only while the card is actionable.
func cardBlocks(c bot.Card, mentions []string) []slackgo.Block {
	blocks := []slackgo.Block{slackgo.NewHeaderBlock(plain(c.Title(), maxHeaderText))}

	field := func(name, value string) *slackgo.TextBlockObject {
		return mrkdwn("*"+name+"*\n"+value, maxFieldText)
	}
	fields := []*slackgo.TextBlockObject{field("Requester", esc(c.User))}
	if len(c.Roles) > 0 {
		fields = append(fields, field("Roles", esc(strings.Join(c.Roles, ", "))))
	}
	if len(c.Resources) > 0 {
		fields = append(fields, field("Resources", esc(strings.Join(c.Resources, ", "))))
	}
	fields = append(fields, field("Duration", esc(c.Duration)))
	state := string(c.State)
	if c.StateReason != "" {
		state += " — " + esc(c.StateReason)
	}
	fields = append(fields, field("State", state))
	if len(c.Progress) > 0 {
		fields = append(fields, field("Approvals", esc(strings.Join(c.Progress, "\n"))))
	}
	if c.Actionable && !c.PendingExpires.IsZero() {
		fields = append(fields, field("Decide by", slackDate(c.PendingExpires)))
	}
	if c.State == access.StateApproved && c.AccessExpires != nil {
		fields = append(fields, field("Access until", slackDate(*c.AccessExpires)))
	}
	blocks = append(blocks, slackgo.NewSectionBlock(nil, fields, nil))

	reason := c.Reason
	if reason == "" {
		reason = "(none given)"
	}
	blocks = append(blocks, slackgo.NewSectionBlock(mrkdwn("*Reason*\n"+esc(reason), maxSectionText), nil, nil))

	if len(c.PolicyReasons) > 0 {
		title := "*Policy*"
		if c.PolicyOutcome != "" {
			title += " (" + esc(c.PolicyOutcome) + ")"
		}
		var b strings.Builder
		b.WriteString(title)
		for _, r := range c.PolicyReasons {
			b.WriteString("\n• " + esc(r))
		}
		blocks = append(blocks, slackgo.NewSectionBlock(mrkdwn(b.String(), maxSectionText), nil, nil))
	}
	if len(c.Reviews) > 0 {
		var b strings.Builder
		b.WriteString("*Reviews*")
		for _, rv := range c.Reviews {
			b.WriteString("\n• " + bot.ReviewVerb(rv.Verdict) + " by " + esc(rv.Author))
			if rv.Reason != "" {
				b.WriteString(": " + esc(rv.Reason))
			}
			if !rv.Time.IsZero() {
				b.WriteString(" (" + slackDate(rv.Time) + ")")
			}
		}
		blocks = append(blocks, slackgo.NewSectionBlock(mrkdwn(b.String(), maxSectionText), nil, nil))
	}
	if m := mentionText(mentions); m != "" {
		blocks = append(blocks, slackgo.NewSectionBlock(mrkdwn("*Suggested reviewers*: "+m, maxSectionText), nil, nil))
	}

	context := []slackgo.MixedElement{mrkdwn("See: `"+esc(c.ShowCommand)+"`", maxContextText)}
	if c.Link != "" {
		context = append(context, mrkdwn("<"+esc(c.Link)+"|Open in Gatehouse>", maxContextText))
	}
	blocks = append(blocks, slackgo.NewContextBlock("", context...))

	if c.Actionable {
		value := truncate(c.RequestID, maxButtonValue)
		blocks = append(blocks, slackgo.NewActionBlock(truncate(reviewBlockPrefix+c.RequestID, maxBlockID),
			slackgo.NewButtonBlockElement(bot.ActionApprove, value, plain("Approve", 75)).WithStyle(slackgo.StylePrimary),
			slackgo.NewButtonBlockElement(bot.ActionDeny, value, plain("Deny", 75)).WithStyle(slackgo.StyleDanger),
		))
	}
	return blocks
}

// cardText is the message's text: what notifications and clients without
// Block Kit show. Mentions go first so that they notify.
func cardText(c bot.Card, mentions []string) string {
	text := esc(c.Text())
	if m := mentionText(mentions); m != "" {
		text = m + " " + text
	}
	return truncate(text, maxFallbackText)
}

// loginBlocks asks the user to confirm a device login: where the device is,
// who it claims to be, which key, until when, and a Confirm button.
func loginBlocks(p bot.LoginPrompt) []slackgo.Block {
	fields := []*slackgo.TextBlockObject{
		mrkdwn("*Device address*\n"+esc(p.Address), maxFieldText),
		mrkdwn("*Claimed user*\n"+esc(p.User), maxFieldText),
		mrkdwn("*Key*\n`"+esc(p.KeyHash)+"`", maxFieldText),
	}
	if !p.Expires.IsZero() {
		fields = append(fields, mrkdwn("*Expires*\n"+slackDate(p.Expires), maxFieldText))
	}
	return []slackgo.Block{
		slackgo.NewSectionBlock(mrkdwn("*Confirm device login* `"+esc(p.Code)+"`\nConfirm only if you just ran `access login` on this device.", maxSectionText), nil, nil),
		slackgo.NewSectionBlock(nil, fields, nil),
		slackgo.NewActionBlock(truncate(loginBlockPrefix+p.Code, maxBlockID),
			slackgo.NewButtonBlockElement(bot.ActionConfirmLogin, truncate(p.Code, maxButtonValue), plain("Confirm", 75)).WithStyle(slackgo.StylePrimary),
		),
	}
}

// textBlocks renders core text as sections, split at line breaks so that no
// section passes Slack's limit.
func textBlocks(text string) []slackgo.Block {
	var blocks []slackgo.Block
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			blocks = append(blocks, slackgo.NewSectionBlock(mrkdwn(cur.String(), maxSectionText), nil, nil))
			cur.Reset()
		}
	}
	for _, line := range strings.Split(esc(text), "\n") {
		if cur.Len() > 0 && utf8.RuneCountInString(cur.String())+1+utf8.RuneCountInString(line) > maxSectionText {
			flush()
		}
		if cur.Len() > 0 {
			cur.WriteByte('\n')
		}
		cur.WriteString(line)
	}
	flush()
	return blocks
}

// replyMessage renders a Reply: its text, then its card(s), then a login
// prompt. A list of cards longer than one message holds ends with a note
// instead of being refused by Slack.
func replyMessage(r bot.Reply) (text string, blocks []slackgo.Block) {
	text = r.Text
	if r.Error && text != "" {
		text = ":warning: " + text
	}
	if text != "" {
		blocks = append(blocks, textBlocks(text)...)
	}
	cards := r.Cards
	if r.Card != nil {
		cards = append([]bot.Card{*r.Card}, cards...)
	}
	for i, c := range cards {
		cb := cardBlocks(c, nil)
		// Keep room for the divider and for the note about what is left.
		if len(blocks)+len(cb)+2 > maxBlocks {
			blocks = append(blocks, slackgo.NewContextBlock("", mrkdwn(fmt.Sprintf("%d more not shown: use `access request ls` for the full list.", len(cards)-i), maxContextText)))
			break
		}
		if len(blocks) > 0 {
			blocks = append(blocks, slackgo.NewDividerBlock())
		}
		blocks = append(blocks, cb...)
	}
	if r.Login != nil {
		blocks = append(blocks, loginBlocks(*r.Login)...)
	}
	if len(blocks) > maxBlocks {
		blocks = blocks[:maxBlocks]
	}
	switch {
	case text != "":
	case len(cards) > 0:
		text = cards[0].Title()
	case r.Login != nil:
		text = "Confirm device login " + r.Login.Code
	default:
		text = "Done."
	}
	return truncate(esc(text), maxFallbackText), blocks
}

// denyState is the deny modal's private_metadata: which request, and where
// to send the outcome privately (the clicker's response_url), since a
// view_submission carries no response_url of its own.
type denyState struct {
	RequestID   string `json:"request_id"`
	ResponseURL string `json:"response_url,omitempty"`
}

// parseDenyState reads private_metadata: the JSON above, or a bare request
// id (what a hand-made view carries).
func parseDenyState(meta string) (denyState, error) {
	meta = strings.TrimSpace(meta)
	var st denyState
	if strings.HasPrefix(meta, "{") {
		if err := json.Unmarshal([]byte(meta), &st); err != nil {
			return denyState{}, fmt.Errorf("private_metadata: %w", err)
		}
	} else {
		st.RequestID = meta
	}
	if st.RequestID == "" {
		return denyState{}, fmt.Errorf("private_metadata names no request")
	}
	return st, nil
}

// denyModal is the modal a Deny click opens: a required reason, submitted
// back as a view_submission with callback_id gatehouse_deny.
func denyModal(st denyState) (slackgo.ModalViewRequest, error) {
	meta, err := json.Marshal(st)
	if err != nil {
		return slackgo.ModalViewRequest{}, err
	}
	if len(meta) > maxPrivateMeta {
		// A response_url is ~100 bytes, so only a monstrous request id gets
		// here; drop the URL rather than fail the modal.
		st.ResponseURL = ""
		meta, _ = json.Marshal(st)
	}
	input := slackgo.NewPlainTextInputBlockElement(plain("Why is this request denied?", 150), reasonActionID)
	input.Multiline = true
	input.MaxLength = command.MaxReasonLen
	return slackgo.ModalViewRequest{
		Type:            slackgo.VTModal,
		CallbackID:      denyCallbackID,
		Title:           plain("Deny request", maxModalTitle),
		Submit:          plain("Deny", maxModalTitle),
		Close:           plain("Cancel", maxModalTitle),
		PrivateMetadata: string(meta),
		Blocks: slackgo.Blocks{BlockSet: []slackgo.Block{
			slackgo.NewSectionBlock(mrkdwn("Deny access request `"+esc(st.RequestID)+"`. The requester sees your reason.", maxSectionText), nil, nil),
			slackgo.NewInputBlock(reasonBlockID, plain("Reason", 2000), nil, input),
		}},
	}, nil
}
