package discordfake

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"
)

// Discord's documented limits, enforced on everything the adapter sends so
// that a payload the fake accepts is one Discord accepts. Lengths count
// characters.
//
// Messages and embeds: https://discord.com/developers/docs/resources/message
// (Create Message; Embed Limits). Components:
// https://discord.com/developers/docs/components/reference. Commands:
// https://discord.com/developers/docs/interactions/application-commands.
const (
	MaxContent        = 2000
	MaxEmbeds         = 10
	MaxEmbedTotal     = 6000
	MaxEmbedTitle     = 256
	MaxEmbedDesc      = 4096
	MaxEmbedFields    = 25
	MaxFieldName      = 256
	MaxFieldValue     = 1024
	MaxFooter         = 2048
	MaxAuthorName     = 256
	MaxNonce          = 25
	MaxActionRows     = 5
	MaxRowButtons     = 5
	MaxCustomID       = 100
	MaxButtonLabel    = 80
	MaxModalTitle     = 45
	MaxTextInputLabel = 45
	MaxTextInputLen   = 4000
	MaxPlaceholder    = 100

	MaxCommandName        = 32
	MaxCommandDescription = 100
	MaxOptions            = 25
	MaxChoices            = 25
	MaxChoiceName         = 100
	MaxChoiceValue        = 100
	MaxOptionLength       = 6000
	// MaxCommandTotal bounds the combined name, description and choice
	// characters of one command with all its options (the figure client
	// libraries check; Discord has raised it since, so this is the safe side).
	MaxCommandTotal = 4000
)

// commandNameRe is Discord's CHAT_INPUT name rule
// ^[-_'\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$ (and lower case where a
// letter has a lower-case form).
var commandNameRe = regexp.MustCompile(`^[-_'\p{L}\p{N}\p{Devanagari}\p{Thai}]{1,32}$`)

func runes(s string) int { return utf8.RuneCountInString(s) }

// ValidateCommand checks a CHAT_INPUT command against Discord's documented
// limits: names (1-32 characters, lower case, the naming rule), descriptions
// (1-100), at most 25 options and choices, unique option names, required
// options before optional ones, choice names and values (1-100), string
// lengths (0-6000), subcommands not mixed with plain options, and the
// combined length.
func ValidateCommand(cmd *discordgo.ApplicationCommand) error {
	if cmd == nil {
		return fmt.Errorf("null command")
	}
	if cmd.Type != 0 && cmd.Type != discordgo.ChatApplicationCommand {
		return fmt.Errorf("command %q: only CHAT_INPUT commands are supported by the fake", cmd.Name)
	}
	if err := checkName("command", cmd.Name); err != nil {
		return err
	}
	if n := runes(cmd.Description); n < 1 || n > MaxCommandDescription {
		return fmt.Errorf("command %q: description is %d characters, want 1-%d", cmd.Name, n, MaxCommandDescription)
	}
	total := runes(cmd.Name) + runes(cmd.Description)
	if err := checkOptions(cmd.Name, cmd.Options, 0, &total); err != nil {
		return err
	}
	if total > MaxCommandTotal {
		return fmt.Errorf("command %q: %d characters in names, descriptions and choices, at most %d", cmd.Name, total, MaxCommandTotal)
	}
	return nil
}

func checkName(what, name string) error {
	if !commandNameRe.MatchString(name) {
		return fmt.Errorf("%s name %q: want 1-%d letters, digits, '-', '_' or '\\''", what, name, MaxCommandName)
	}
	if strings.ToLower(name) != name {
		return fmt.Errorf("%s name %q: must be lower case", what, name)
	}
	return nil
}

func checkOptions(parent string, opts []*discordgo.ApplicationCommandOption, depth int, total *int) error {
	if len(opts) > MaxOptions {
		return fmt.Errorf("%s: %d options, at most %d", parent, len(opts), MaxOptions)
	}
	seen := map[string]bool{}
	optionalSeen, subs, plain := false, 0, 0
	for _, o := range opts {
		if o == nil {
			return fmt.Errorf("%s: null option", parent)
		}
		where := parent + " " + o.Name
		if err := checkName("option", o.Name); err != nil {
			return fmt.Errorf("%s: %w", parent, err)
		}
		if seen[o.Name] {
			return fmt.Errorf("%s: option name %q used twice", parent, o.Name)
		}
		seen[o.Name] = true
		if n := runes(o.Description); n < 1 || n > MaxCommandDescription {
			return fmt.Errorf("%s: description is %d characters, want 1-%d", where, n, MaxCommandDescription)
		}
		*total += runes(o.Name) + runes(o.Description)
		switch o.Type {
		case discordgo.ApplicationCommandOptionSubCommand, discordgo.ApplicationCommandOptionSubCommandGroup:
			subs++
			if o.Required {
				return fmt.Errorf("%s: a subcommand cannot be required", where)
			}
			if depth > 1 || (depth == 1 && o.Type == discordgo.ApplicationCommandOptionSubCommandGroup) {
				return fmt.Errorf("%s: subcommands nest at most group > subcommand", where)
			}
			if err := checkOptions(where, o.Options, depth+1, total); err != nil {
				return err
			}
			continue
		case discordgo.ApplicationCommandOptionString, discordgo.ApplicationCommandOptionInteger,
			discordgo.ApplicationCommandOptionBoolean, discordgo.ApplicationCommandOptionUser,
			discordgo.ApplicationCommandOptionChannel, discordgo.ApplicationCommandOptionRole,
			discordgo.ApplicationCommandOptionMentionable, discordgo.ApplicationCommandOptionNumber,
			discordgo.ApplicationCommandOptionAttachment:
			plain++
		default:
			return fmt.Errorf("%s: unknown option type %d", where, o.Type)
		}
		if len(o.Options) > 0 {
			return fmt.Errorf("%s: only subcommands have options", where)
		}
		if o.Required && optionalSeen {
			return fmt.Errorf("%s: required options must be listed before optional ones", where)
		}
		optionalSeen = optionalSeen || !o.Required
		if len(o.Choices) > MaxChoices {
			return fmt.Errorf("%s: %d choices, at most %d", where, len(o.Choices), MaxChoices)
		}
		if len(o.Choices) > 0 && o.Type != discordgo.ApplicationCommandOptionString &&
			o.Type != discordgo.ApplicationCommandOptionInteger && o.Type != discordgo.ApplicationCommandOptionNumber {
			return fmt.Errorf("%s: choices are for string, integer and number options", where)
		}
		if len(o.Choices) > 0 && o.Autocomplete {
			return fmt.Errorf("%s: autocomplete cannot be set with choices", where)
		}
		for _, c := range o.Choices {
			if n := runes(c.Name); n < 1 || n > MaxChoiceName {
				return fmt.Errorf("%s: choice name %q is %d characters, want 1-%d", where, c.Name, n, MaxChoiceName)
			}
			*total += runes(c.Name)
			if s, ok := c.Value.(string); ok {
				if runes(s) > MaxChoiceValue {
					return fmt.Errorf("%s: choice value %q longer than %d", where, s, MaxChoiceValue)
				}
				*total += runes(s)
			}
		}
		if o.MinLength != nil && (*o.MinLength < 0 || *o.MinLength > MaxOptionLength) {
			return fmt.Errorf("%s: min_length %d, want 0-%d", where, *o.MinLength, MaxOptionLength)
		}
		if o.MaxLength != 0 && (o.MaxLength < 1 || o.MaxLength > MaxOptionLength) {
			return fmt.Errorf("%s: max_length %d, want 1-%d", where, o.MaxLength, MaxOptionLength)
		}
		if (o.MinLength != nil || o.MaxLength != 0) && o.Type != discordgo.ApplicationCommandOptionString {
			return fmt.Errorf("%s: min_length and max_length are for string options", where)
		}
	}
	if subs > 0 && plain > 0 {
		return fmt.Errorf("%s: subcommands cannot be mixed with other options", parent)
	}
	return nil
}

// wireComponent is any component as JSON.
type wireComponent struct {
	Type        int             `json:"type"`
	Components  []wireComponent `json:"components"`
	CustomID    string          `json:"custom_id"`
	Label       string          `json:"label"`
	Style       int             `json:"style"`
	URL         string          `json:"url"`
	Disabled    bool            `json:"disabled"`
	Placeholder string          `json:"placeholder"`
	Value       string          `json:"value"`
	Required    *bool           `json:"required"`
	MinLength   *int            `json:"min_length"`
	MaxLength   *int            `json:"max_length"`
}

// checkMessage validates a message body as Create/Edit Message and
// interaction responses do. need says that one of content, embeds and
// components must be present.
func checkMessage(content string, embeds []*discordgo.MessageEmbed, components []wireComponent, need bool) error {
	if runes(content) > MaxContent {
		return fmt.Errorf("content: %d characters, at most %d", runes(content), MaxContent)
	}
	if need && content == "" && len(embeds) == 0 && len(components) == 0 {
		return fmt.Errorf("cannot send an empty message: content, embeds or components required")
	}
	if len(embeds) > MaxEmbeds {
		return fmt.Errorf("embeds: %d, at most %d", len(embeds), MaxEmbeds)
	}
	total := 0
	for i, e := range embeds {
		if e == nil {
			return fmt.Errorf("embeds[%d]: null", i)
		}
		n, err := checkEmbed(e)
		if err != nil {
			return fmt.Errorf("embeds[%d]: %w", i, err)
		}
		total += n
	}
	if total > MaxEmbedTotal {
		return fmt.Errorf("embeds: %d characters in total, at most %d", total, MaxEmbedTotal)
	}
	return checkButtonRows(components)
}

func checkEmbed(e *discordgo.MessageEmbed) (int, error) {
	n := 0
	limit := func(what, s string, max int) error {
		if runes(s) > max {
			return fmt.Errorf("%s: %d characters, at most %d", what, runes(s), max)
		}
		n += runes(s)
		return nil
	}
	if err := limit("title", e.Title, MaxEmbedTitle); err != nil {
		return 0, err
	}
	if err := limit("description", e.Description, MaxEmbedDesc); err != nil {
		return 0, err
	}
	if len(e.Fields) > MaxEmbedFields {
		return 0, fmt.Errorf("fields: %d, at most %d", len(e.Fields), MaxEmbedFields)
	}
	for i, f := range e.Fields {
		if f == nil || f.Name == "" || f.Value == "" {
			return 0, fmt.Errorf("fields[%d]: name and value are required", i)
		}
		if err := limit(fmt.Sprintf("fields[%d].name", i), f.Name, MaxFieldName); err != nil {
			return 0, err
		}
		if err := limit(fmt.Sprintf("fields[%d].value", i), f.Value, MaxFieldValue); err != nil {
			return 0, err
		}
	}
	if e.Footer != nil {
		if e.Footer.Text == "" {
			return 0, fmt.Errorf("footer.text is required")
		}
		if err := limit("footer.text", e.Footer.Text, MaxFooter); err != nil {
			return 0, err
		}
	}
	if e.Author != nil {
		if err := limit("author.name", e.Author.Name, MaxAuthorName); err != nil {
			return 0, err
		}
	}
	if e.URL != "" {
		if u, err := url.Parse(e.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return 0, fmt.Errorf("url %q: Not a well formed URL", e.URL)
		}
	}
	if e.Timestamp != "" {
		if _, err := time.Parse(time.RFC3339, e.Timestamp); err != nil {
			return 0, fmt.Errorf("timestamp %q: not ISO8601", e.Timestamp)
		}
	}
	if e.Color < 0 || e.Color > 0xFFFFFF {
		return 0, fmt.Errorf("color %d out of range", e.Color)
	}
	if e.Title == "" && e.Description == "" && len(e.Fields) == 0 && e.Footer == nil && e.Author == nil && e.Image == nil && e.Thumbnail == nil {
		return 0, fmt.Errorf("embed is empty")
	}
	return n, nil
}

// checkButtonRows validates a message's components: up to 5 action rows of
// up to 5 buttons, custom ids unique and at most 100 characters.
func checkButtonRows(rows []wireComponent) error {
	if len(rows) > MaxActionRows {
		return fmt.Errorf("components: %d rows, at most %d", len(rows), MaxActionRows)
	}
	ids := map[string]bool{}
	for i, row := range rows {
		if row.Type != int(discordgo.ActionsRowComponent) {
			return fmt.Errorf("components[%d]: type %d, want an action row (1)", i, row.Type)
		}
		if len(row.Components) == 0 || len(row.Components) > MaxRowButtons {
			return fmt.Errorf("components[%d]: %d components, want 1-%d", i, len(row.Components), MaxRowButtons)
		}
		for j, b := range row.Components {
			where := fmt.Sprintf("components[%d].components[%d]", i, j)
			if b.Type != int(discordgo.ButtonComponent) {
				return fmt.Errorf("%s: type %d: the fake supports buttons only", where, b.Type)
			}
			if runes(b.Label) > MaxButtonLabel {
				return fmt.Errorf("%s: label longer than %d", where, MaxButtonLabel)
			}
			switch {
			case b.Style >= 1 && b.Style <= 4:
				if b.CustomID == "" || runes(b.CustomID) > MaxCustomID || b.URL != "" {
					return fmt.Errorf("%s: style %d needs a custom_id of 1-%d characters and no url", where, b.Style, MaxCustomID)
				}
				if ids[b.CustomID] {
					return fmt.Errorf("%s: custom_id %q used twice", where, b.CustomID)
				}
				ids[b.CustomID] = true
			case b.Style == 5:
				if b.URL == "" || b.CustomID != "" {
					return fmt.Errorf("%s: a link button needs a url and no custom_id", where)
				}
			default:
				return fmt.Errorf("%s: unknown button style %d", where, b.Style)
			}
		}
	}
	return nil
}

// checkModal validates a MODAL response: custom_id, a title of up to 45
// characters, 1-5 rows of one text input each.
func checkModal(customID, title string, rows []wireComponent) error {
	if customID == "" || runes(customID) > MaxCustomID {
		return fmt.Errorf("modal custom_id: want 1-%d characters", MaxCustomID)
	}
	if n := runes(title); n < 1 || n > MaxModalTitle {
		return fmt.Errorf("modal title: %d characters, want 1-%d", n, MaxModalTitle)
	}
	if len(rows) < 1 || len(rows) > MaxActionRows {
		return fmt.Errorf("modal: %d rows, want 1-%d", len(rows), MaxActionRows)
	}
	for i, row := range rows {
		if row.Type != int(discordgo.ActionsRowComponent) || len(row.Components) != 1 || row.Components[0].Type != int(discordgo.TextInputComponent) {
			return fmt.Errorf("modal components[%d]: want an action row holding one text input", i)
		}
		in := row.Components[0]
		if in.CustomID == "" || runes(in.CustomID) > MaxCustomID {
			return fmt.Errorf("modal text input %d: custom_id: want 1-%d characters", i, MaxCustomID)
		}
		if n := runes(in.Label); n < 1 || n > MaxTextInputLabel {
			return fmt.Errorf("modal text input %q: label %d characters, want 1-%d", in.CustomID, n, MaxTextInputLabel)
		}
		if in.Style != int(discordgo.TextInputShort) && in.Style != int(discordgo.TextInputParagraph) {
			return fmt.Errorf("modal text input %q: style %d", in.CustomID, in.Style)
		}
		if in.MinLength != nil && (*in.MinLength < 0 || *in.MinLength > MaxTextInputLen) {
			return fmt.Errorf("modal text input %q: min_length %d", in.CustomID, *in.MinLength)
		}
		if in.MaxLength != nil && (*in.MaxLength < 1 || *in.MaxLength > MaxTextInputLen) {
			return fmt.Errorf("modal text input %q: max_length %d", in.CustomID, *in.MaxLength)
		}
		if runes(in.Placeholder) > MaxPlaceholder {
			return fmt.Errorf("modal text input %q: placeholder longer than %d", in.CustomID, MaxPlaceholder)
		}
	}
	return nil
}

// decodeComponents reads raw components (null and absent read as none).
func decodeComponents(raw json.RawMessage) ([]wireComponent, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var out []wireComponent
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("components: %v", err)
	}
	return out, nil
}
