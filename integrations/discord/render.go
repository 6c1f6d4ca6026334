package discord

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/bot"
)

// Discord's message limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits),
// counted in characters.
const (
	maxContentLen     = 2000
	maxEmbeds         = 10
	maxEmbedTotal     = 6000
	maxTitleLen       = 256
	maxDescriptionLen = 4096
	maxFields         = 25
	maxFieldNameLen   = 256
	maxFieldValueLen  = 1024
	maxFooterLen      = 2048
	maxCustomIDLen    = 100
)

// Embed colours by request state.
const (
	colourPending  = 0xF1C40F
	colourApproved = 0x2ECC71
	colourDenied   = 0xE74C3C
	colourRevoked  = 0xE67E22
	colourInactive = 0x95A5A6
	colourNeutral  = 0x5865F2
)

func stateColour(s access.State) int {
	switch s {
	case access.StatePending:
		return colourPending
	case access.StateApproved:
		return colourApproved
	case access.StateDenied:
		return colourDenied
	case access.StateRevoked:
		return colourRevoked
	case access.StateExpired, access.StateCancelled, access.StateDropped:
		return colourInactive
	}
	return colourNeutral
}

// footerText is the footer of every embed Gatehouse posts; posts append
// their tag marker to it.
const footerText = "Gatehouse"

// cardEmbed renders a request card as one embed.
func cardEmbed(c bot.Card) *discordgo.MessageEmbed {
	e := &discordgo.MessageEmbed{
		Title:  clipText(c.Title(), maxTitleLen),
		Color:  stateColour(c.State),
		Footer: &discordgo.MessageEmbedFooter{Text: footerText},
	}
	if isWebURL(c.Link) {
		e.URL = c.Link
	}
	if !c.Created.IsZero() {
		e.Timestamp = c.Created.UTC().Format(time.RFC3339)
	}
	add := func(name, value string, inline bool) {
		if strings.TrimSpace(value) == "" || len(e.Fields) >= maxFields {
			return
		}
		e.Fields = append(e.Fields, &discordgo.MessageEmbedField{Name: name, Value: clipText(value, maxFieldValueLen), Inline: inline})
	}
	add("Requester", c.User, true)
	add("Duration", c.Duration, true)
	state := string(c.State)
	if c.StateReason != "" {
		state += ": " + c.StateReason
	}
	add("State", state, true)
	add("Roles", strings.Join(c.Roles, ", "), false)
	add("Resources", strings.Join(c.Resources, "\n"), false)
	reason := c.Reason
	if reason == "" {
		reason = "(none given)"
	}
	add("Reason", reason, false)
	add("Approvals", strings.Join(c.Progress, "\n"), true)
	policy := strings.Join(c.PolicyReasons, "\n")
	if c.PolicyOutcome != "" {
		policy = strings.TrimSpace(c.PolicyOutcome + "\n" + policy)
	}
	add("Policy", policy, true)
	var reviews []string
	for _, rv := range c.Reviews {
		l := bot.ReviewVerb(rv.Verdict) + " by " + rv.Author
		if rv.Reason != "" {
			l += ": " + rv.Reason
		}
		if !rv.Time.IsZero() {
			l += " " + discordTime(rv.Time, "R")
		}
		reviews = append(reviews, l)
	}
	add("Reviews", strings.Join(reviews, "\n"), false)
	add("Suggested reviewers", strings.Join(c.SuggestedReviewers, ", "), false)
	if c.State == access.StatePending && !c.PendingExpires.IsZero() {
		add("Pending until", discordTime(c.PendingExpires, "f"), true)
	}
	if c.State == access.StateApproved && c.AccessExpires != nil {
		add("Access until", discordTime(*c.AccessExpires, "f"), true)
	}
	if c.ShowCommand != "" {
		add("Details", "`"+c.ShowCommand+"`", false)
	}
	fitEmbed(e, maxEmbedTotal)
	return e
}

// cardButtons is the Approve/Deny row of an actionable card, and an empty
// list (which removes buttons on an edit) otherwise.
func cardButtons(c bot.Card) []discordgo.MessageComponent {
	approve, deny := bot.ActionApprove+":"+c.RequestID, bot.ActionDeny+":"+c.RequestID
	if !c.Actionable || c.RequestID == "" || len(approve) > maxCustomIDLen || len(deny) > maxCustomIDLen {
		return []discordgo.MessageComponent{}
	}
	return []discordgo.MessageComponent{discordgo.ActionsRow{Components: []discordgo.MessageComponent{
		discordgo.Button{Label: "Approve", Style: discordgo.SuccessButton, CustomID: approve},
		discordgo.Button{Label: "Deny", Style: discordgo.DangerButton, CustomID: deny},
	}}}
}

// listEmbed is the compact embed of one card in a list (ls).
func listEmbed(c bot.Card) *discordgo.MessageEmbed {
	var lines []string
	if c.Reason != "" {
		lines = append(lines, "Reason: "+clipText(c.Reason, 200))
	}
	if c.StateReason != "" {
		lines = append(lines, "State: "+clipText(c.StateReason, 200))
	}
	if len(c.Progress) > 0 {
		lines = append(lines, "Approvals: "+strings.Join(c.Progress, ", "))
	}
	if c.ShowCommand != "" {
		lines = append(lines, "`"+c.ShowCommand+"`")
	}
	e := &discordgo.MessageEmbed{
		Title:       clipText(c.Title(), maxTitleLen),
		Description: clipText(strings.Join(lines, "\n"), 600),
		Color:       stateColour(c.State),
	}
	if isWebURL(c.Link) {
		e.URL = c.Link
	}
	return e
}

// loginEmbed and loginButtons render the private device-login confirmation.
func loginEmbed(l bot.LoginPrompt) *discordgo.MessageEmbed {
	e := &discordgo.MessageEmbed{
		Title: "Confirm device login",
		Description: clipText(fmt.Sprintf("A device asks to sign in as **%s**. Confirm only if you just ran `access login --user %s` yourself.",
			l.User, l.User), maxDescriptionLen),
		Color: colourNeutral,
		Fields: []*discordgo.MessageEmbedField{
			{Name: "User", Value: clipText(nonEmpty(l.User), maxFieldValueLen), Inline: true},
			{Name: "Device address", Value: clipText(nonEmpty(l.Address), maxFieldValueLen), Inline: true},
			{Name: "Code", Value: clipText("`"+l.Code+"`", maxFieldValueLen), Inline: true},
			{Name: "Key", Value: clipText("`"+nonEmpty(l.KeyHash)+"`", maxFieldValueLen)},
		},
		Footer: &discordgo.MessageEmbedFooter{Text: footerText},
	}
	if !l.Expires.IsZero() {
		e.Fields = append(e.Fields, &discordgo.MessageEmbedField{Name: "Expires", Value: discordTime(l.Expires, "R"), Inline: true})
	}
	return e
}

func loginButtons(l bot.LoginPrompt) []discordgo.MessageComponent {
	id := bot.ActionConfirmLogin + ":" + l.Code
	if l.Code == "" || len(id) > maxCustomIDLen {
		return nil
	}
	return []discordgo.MessageComponent{discordgo.ActionsRow{Components: []discordgo.MessageComponent{
		discordgo.Button{Label: "Confirm login", Style: discordgo.SuccessButton, CustomID: id},
	}}}
}

// rendered is one message body.
type rendered struct {
	content    string
	embeds     []*discordgo.MessageEmbed
	components []discordgo.MessageComponent
}

// renderReply renders a Reply (always shown to the caller only).
func renderReply(r bot.Reply) rendered {
	out := rendered{content: r.Text}
	switch {
	case r.Login != nil:
		out.embeds = append(out.embeds, loginEmbed(*r.Login))
		out.components = loginButtons(*r.Login)
	case r.Card != nil:
		out.embeds = append(out.embeds, cardEmbed(*r.Card))
		if r.Card.Actionable {
			out.components = cardButtons(*r.Card)
		}
	}
	if len(r.Cards) > 0 {
		total := embedsLen(out.embeds)
		shown := 0
		for _, c := range r.Cards {
			e := listEmbed(c)
			if len(out.embeds) >= maxEmbeds || total+embedLen(e) > maxEmbedTotal {
				break
			}
			total += embedLen(e)
			out.embeds = append(out.embeds, e)
			shown++
		}
		if more := len(r.Cards) - shown; more > 0 {
			out.content = strings.TrimSpace(out.content + fmt.Sprintf("\n…and %d more: `access request ls` shows them all.", more))
		}
	}
	if strings.TrimSpace(out.content) == "" && len(out.embeds) == 0 {
		out.content = "Done."
	}
	out.content = clipText(out.content, maxContentLen)
	return out
}

// noMentions is allowed_mentions for anything that echoes user text:
// nothing pings.
func noMentions() *discordgo.MessageAllowedMentions {
	return &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}}
}

// discordTime is Discord's timestamp markup, shown in the reader's zone.
func discordTime(t time.Time, style string) string {
	return "<t:" + strconv.FormatInt(t.Unix(), 10) + ":" + style + ">"
}

// embedLen counts an embed's characters as Discord's 6000 limit does.
func embedLen(e *discordgo.MessageEmbed) int {
	n := utf8.RuneCountInString(e.Title) + utf8.RuneCountInString(e.Description)
	if e.Footer != nil {
		n += utf8.RuneCountInString(e.Footer.Text)
	}
	if e.Author != nil {
		n += utf8.RuneCountInString(e.Author.Name)
	}
	for _, f := range e.Fields {
		n += utf8.RuneCountInString(f.Name) + utf8.RuneCountInString(f.Value)
	}
	return n
}

func embedsLen(es []*discordgo.MessageEmbed) int {
	n := 0
	for _, e := range es {
		n += embedLen(e)
	}
	return n
}

// fitEmbed shortens the longest field values (then the description) until
// the embed is within limit characters.
func fitEmbed(e *discordgo.MessageEmbed, limit int) {
	for over := embedLen(e) - limit; over > 0; over = embedLen(e) - limit {
		var longest *string
		for _, f := range e.Fields {
			if longest == nil || utf8.RuneCountInString(f.Value) > utf8.RuneCountInString(*longest) {
				longest = &f.Value
			}
		}
		if longest == nil || utf8.RuneCountInString(e.Description) > utf8.RuneCountInString(*longest) {
			longest = &e.Description
		}
		n := utf8.RuneCountInString(*longest)
		if n <= 1 {
			return
		}
		*longest = clipText(*longest, max(1, n-over))
	}
}

// clipText cuts s to at most n characters, ending with "…" when cut.
func clipText(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 1 {
		return "…"
	}
	i, count := 0, 0
	for i < len(s) && count < n-1 {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		count++
	}
	return s[:i] + "…"
}

func nonEmpty(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

func isWebURL(s string) bool {
	u, err := url.Parse(s)
	return s != "" && err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}
