package discord

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/bwmarrin/discordgo"

	"github.com/gatehouse-dev/gatehouse/bot/command"
)

// CommandName is the slash command Gatehouse registers: /access.
const CommandName = "access"

// How one option's value becomes command text for bot/command.Parse. Every
// value is double-quoted with quotes and backslashes escaped (quote), so
// what a person typed into an option can never become a flag, a keyword
// ("because", "for") or a second argument.
type optionKind int

const (
	// optFlag: --NAME "VALUE".
	optFlag optionKind = iota
	// optPositional: "VALUE", right after the subcommand.
	optPositional
	// optList: --NAME "A,B" from items separated by commas or white space.
	optList
	// optRepeated: --NAME "ITEM" for each white-space separated item.
	optRepeated
	// optLabels: KEY="VALUE" for each white-space separated KEY=VALUE.
	optLabels
	// optWords: "WORD" for each white-space separated word.
	optWords
)

type optionSpec struct {
	name        string
	description string
	kind        optionKind
	required    bool
	maxLength   int
	choices     []string
}

type subcommandSpec struct {
	name        string
	description string
	options     []optionSpec // in the order their text is written
}

// subcommands is /access as registered with Discord. Option text is written
// in this order whatever order Discord sends the options in, so a request
// ID always precedes --reason.
var subcommands = []subcommandSpec{
	{name: "request", description: "Ask for roles or resources for a while", options: []optionSpec{
		{name: "roles", description: "Roles, comma-separated: dba,dba-readonly", kind: optList, maxLength: 512},
		{name: "resource", description: "Resource IDs, space-separated: /prod/node/db-1", kind: optRepeated, maxLength: 1024},
		{name: "duration", description: "How long: 2h, 90m, 2 hours, 1 day (default: the server's)", kind: optFlag, maxLength: 64},
		{name: "reason", description: "Why you need it: a ticket, an incident", kind: optFlag, maxLength: command.MaxReasonLen},
		{name: "reviewers", description: "Suggested reviewers, comma-separated Gatehouse user names", kind: optList, maxLength: 512},
	}},
	{name: "ls", description: "List access requests", options: []optionSpec{
		{name: "state", description: "Only requests in this state", kind: optFlag,
			choices: []string{"pending", "approved", "denied", "expired", "cancelled", "dropped", "revoked"}},
	}},
	{name: "show", description: "Show one access request", options: []optionSpec{
		{name: "id", description: "Request ID (a UUID, see /access ls)", kind: optPositional, required: true, maxLength: 64},
	}},
	{name: "approve", description: "Approve an access request", options: []optionSpec{
		{name: "id", description: "Request ID (a UUID, see /access ls)", kind: optPositional, required: true, maxLength: 64},
		{name: "reason", description: "Why (optional)", kind: optFlag, maxLength: command.MaxReasonLen},
	}},
	{name: "deny", description: "Deny an access request (a reason is required)", options: []optionSpec{
		{name: "id", description: "Request ID (a UUID, see /access ls)", kind: optPositional, required: true, maxLength: 64},
		{name: "reason", description: "Why the request is denied", kind: optFlag, required: true, maxLength: command.MaxReasonLen},
	}},
	{name: "search", description: "Find resources you can request", options: []optionSpec{
		{name: "kind", description: "Only this kind of resource", kind: optFlag,
			choices: []string{"node", "db", "app", "kube_cluster", "windows_desktop"}},
		{name: "labels", description: "Labels, space-separated key=value: env=prod team=db", kind: optLabels, maxLength: 512},
		{name: "words", description: "Words to match in resource names", kind: optWords, maxLength: 256},
	}},
	{name: "login", description: "Confirm a device login started with: access login --user NAME", options: []optionSpec{
		{name: "code", description: "The code that access login printed", kind: optPositional, required: true, maxLength: 64},
	}},
	{name: "help", description: "How to use /access", options: []optionSpec{
		{name: "topic", description: "A subcommand", kind: optPositional,
			choices: []string{"request", "ls", "show", "approve", "deny", "search", "login"}},
	}},
}

// AccessCommand is the /access chat command Gatehouse registers, with one
// subcommand per verb of the chat grammar.
func AccessCommand() *discordgo.ApplicationCommand {
	cmd := &discordgo.ApplicationCommand{
		Type:        discordgo.ChatApplicationCommand,
		Name:        CommandName,
		Description: "Gatehouse: ask for temporary access, review requests",
	}
	for _, sub := range subcommands {
		so := &discordgo.ApplicationCommandOption{
			Type:        discordgo.ApplicationCommandOptionSubCommand,
			Name:        sub.name,
			Description: sub.description,
		}
		for _, o := range sub.options {
			opt := &discordgo.ApplicationCommandOption{
				Type:        discordgo.ApplicationCommandOptionString,
				Name:        o.name,
				Description: o.description,
				Required:    o.required,
			}
			if len(o.choices) == 0 {
				opt.MaxLength = o.maxLength
			}
			for _, c := range o.choices {
				opt.Choices = append(opt.Choices, &discordgo.ApplicationCommandOptionChoice{Name: c, Value: c})
			}
			so.Options = append(so.Options, opt)
		}
		cmd.Options = append(cmd.Options, so)
	}
	return cmd
}

// userError is a value a person typed that cannot be turned into command
// text; the message is shown to them.
type userError struct{ msg string }

func (e *userError) Error() string { return e.msg }

// commandText rebuilds the `/access` text (without "/access") from an
// application command's subcommand and options, for the core's grammar
// (bot/command.Parse). An interaction that does not match the registered
// command wraps ErrMalformed; a value that cannot be written as grammar
// (a label without "=") is a *userError.
func commandText(data discordgo.ApplicationCommandInteractionData) (string, error) {
	if data.Name != CommandName {
		return "", fmt.Errorf("%w: unknown command %q", ErrMalformed, data.Name)
	}
	if len(data.Options) != 1 || data.Options[0] == nil || data.Options[0].Type != discordgo.ApplicationCommandOptionSubCommand {
		return "", fmt.Errorf("%w: /%s needs exactly one subcommand", ErrMalformed, CommandName)
	}
	subOpt := data.Options[0]
	var sub *subcommandSpec
	for i := range subcommands {
		if subcommands[i].name == subOpt.Name {
			sub = &subcommands[i]
		}
	}
	if sub == nil {
		return "", fmt.Errorf("%w: unknown subcommand %q", ErrMalformed, subOpt.Name)
	}
	values := map[string]string{}
	for _, o := range subOpt.Options {
		if o == nil {
			return "", fmt.Errorf("%w: null option", ErrMalformed)
		}
		known := false
		for _, spec := range sub.options {
			known = known || spec.name == o.Name
		}
		if !known {
			return "", fmt.Errorf("%w: unknown option %q for %s", ErrMalformed, o.Name, sub.name)
		}
		v, ok := o.Value.(string)
		if o.Type != discordgo.ApplicationCommandOptionString || !ok {
			return "", fmt.Errorf("%w: option %q is not a string", ErrMalformed, o.Name)
		}
		if _, dup := values[o.Name]; dup {
			return "", fmt.Errorf("%w: option %q given twice", ErrMalformed, o.Name)
		}
		values[o.Name] = v
	}

	var b strings.Builder
	b.WriteString(sub.name)
	for _, spec := range sub.options {
		v, ok := values[spec.name]
		if !ok {
			continue
		}
		switch spec.kind {
		case optFlag:
			b.WriteString(" --" + spec.name + " " + quote(v))
		case optPositional:
			b.WriteString(" " + quote(v))
		case optList:
			items := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
			b.WriteString(" --" + spec.name + " " + quote(strings.Join(items, ",")))
		case optRepeated:
			for _, item := range strings.Fields(v) {
				b.WriteString(" --" + spec.name + " " + quote(item))
			}
		case optLabels:
			for _, item := range strings.Fields(v) {
				k, val, ok := strings.Cut(item, "=")
				if !ok || !labelKeyRe.MatchString(k) || val == "" {
					return "", &userError{fmt.Sprintf("label %q: write key=value, e.g. env=prod (keys are letters, digits, '.', '_', '/' or '-')", clipText(item, 64))}
				}
				b.WriteString(" " + k + "=" + quote(val))
			}
		case optWords:
			for _, w := range strings.Fields(v) {
				b.WriteString(" " + quote(w))
			}
		}
	}
	return b.String(), nil
}

// labelKeyRe: a label key written bare before "=", so it must not start a
// flag ("-") or a quoted group, nor contain white space or quotes.
var labelKeyRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_./-]*$`)

// quote double-quotes v for bot/command's lexer: inside double quotes a
// backslash escapes any double-quote character (" “ ” „ ‟) and backslashes,
// and nothing else is special, so the lexer gives back v exactly.
func quote(v string) string {
	var b strings.Builder
	b.Grow(len(v) + 2)
	b.WriteByte('"')
	for _, r := range v {
		switch r {
		case '\\', '"', '\u201c', '\u201d', '\u201e', '\u201f':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// RegisterCommands registers /access (AccessCommand) with Discord by bulk
// overwrite: PUT /applications/{application.id}/guilds/{guild.id}/commands
// for each guild in guildIDs, or the global PUT
// /applications/{application.id}/commands when guildIDs is empty. A bulk
// overwrite replaces every command the application has in that scope, so it
// is idempotent and removes commands of older versions. Guild commands
// update at once; global ones are also usable in DMs, where nobody maps to a
// user, so they are limited to the guild context. It needs cfg's
// application_id, bot_token and api_url only, and returns the commands as
// Discord stored them (with their ids), guild by guild.
func RegisterCommands(ctx context.Context, cfg Config, guildIDs []string) ([]discordgo.ApplicationCommand, error) {
	cfg, err := cfg.restDefaults()
	if err != nil {
		return nil, err
	}
	for _, g := range guildIDs {
		if !isSnowflake(g) {
			return nil, fmt.Errorf("discord: guild %q is not a guild id (want a snowflake such as 999999999999999999)", g)
		}
	}
	rc := newRESTClient(cfg)
	var registered []discordgo.ApplicationCommand
	if len(guildIDs) == 0 {
		cmd := AccessCommand()
		cmd.Contexts = &[]discordgo.InteractionContextType{discordgo.InteractionContextGuild}
		var out []discordgo.ApplicationCommand
		if err := rc.do(ctx, "PUT", "/applications/{application.id}/commands",
			"applications/"+cfg.ApplicationID+"/commands", []*discordgo.ApplicationCommand{cmd}, &out); err != nil {
			return nil, fmt.Errorf("registering global commands: %w", err)
		}
		return out, nil
	}
	for _, g := range guildIDs {
		var out []discordgo.ApplicationCommand
		if err := rc.do(ctx, "PUT", "/applications/{application.id}/guilds/{guild.id}/commands",
			"applications/"+cfg.ApplicationID+"/guilds/"+g+"/commands", []*discordgo.ApplicationCommand{AccessCommand()}, &out); err != nil {
			return registered, fmt.Errorf("registering commands in guild %s: %w", g, err)
		}
		registered = append(registered, out...)
	}
	if len(registered) == 0 {
		return nil, errors.New("discord: registration answered no commands")
	}
	return registered, nil
}
