package discord

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"

	"github.com/gatehouse-dev/gatehouse/bot/command"
	"github.com/gatehouse-dev/gatehouse/integrations/discord/discordfake"
)

// interactionData is what Discord sends for /access SUB with opts.
func interactionData(sub string, opts map[string]string) discordgo.ApplicationCommandInteractionData {
	so := &discordgo.ApplicationCommandInteractionDataOption{Name: sub, Type: discordgo.ApplicationCommandOptionSubCommand}
	for k, v := range opts {
		so.Options = append(so.Options, &discordgo.ApplicationCommandInteractionDataOption{Name: k, Type: discordgo.ApplicationCommandOptionString, Value: v})
	}
	return discordgo.ApplicationCommandInteractionData{Name: CommandName, Options: []*discordgo.ApplicationCommandInteractionDataOption{so}}
}

// parseOptions runs options through commandText and the core's parser.
func parseOptions(t *testing.T, sub string, opts map[string]string) (string, command.Command) {
	t.Helper()
	text, err := commandText(interactionData(sub, opts))
	if err != nil {
		t.Fatalf("commandText(%s %v): %v", sub, opts, err)
	}
	cmd, err := command.Parse(text)
	if err != nil {
		t.Fatalf("Parse(%q) from %s %v: %v", text, sub, opts, err)
	}
	return text, cmd
}

type roundTrip struct {
	opts map[string]string
	want command.Command
}

// nasty is reason text that must arrive word for word: quotes of every
// kind, backslashes, flags, keywords of the grammar, a newline.
const nasty = `ticket #123 because "it's" down --reason x \ \" “smart” „low‟ for 2h` + "\nsecond line -- 'single' `tick`"

const upperID = "2F1C6C0E-6A51-4C1E-9D9E-0B6A1B7C9E42"

// roundTrips has cases per registered subcommand and option;
// TestEveryRegisteredOptionParses fails for an option without one.
var roundTrips = map[string]map[string][]roundTrip{
	"request": {
		"roles": {
			{map[string]string{"roles": "dba, dba-readonly"}, command.Command{Kind: command.KindRequest, Roles: []string{"dba", "dba-readonly"}}},
			{map[string]string{"roles": "dba ops"}, command.Command{Kind: command.KindRequest, Roles: []string{"dba", "ops"}}},
			{map[string]string{"roles": "because"}, command.Command{Kind: command.KindRequest, Roles: []string{"because"}}},
		},
		"resource": {
			{map[string]string{"resource": "/prod/node/db-1 /prod/db/orders"}, command.Command{Kind: command.KindRequest, Resources: []string{"/prod/node/db-1", "/prod/db/orders"}}},
		},
		"duration": {
			{map[string]string{"roles": "dba", "duration": "2h"}, command.Command{Kind: command.KindRequest, Roles: []string{"dba"}, Duration: 2 * time.Hour}},
			{map[string]string{"roles": "dba", "duration": "1 hour 30 minutes"}, command.Command{Kind: command.KindRequest, Roles: []string{"dba"}, Duration: 90 * time.Minute}},
		},
		"reason": {
			{map[string]string{"roles": "dba", "reason": nasty}, command.Command{Kind: command.KindRequest, Roles: []string{"dba"}, Reason: nasty}},
			{map[string]string{"roles": "dba", "reason": "--help"}, command.Command{Kind: command.KindRequest, Roles: []string{"dba"}, Reason: "--help"}},
		},
		"reviewers": {
			{map[string]string{"roles": "dba", "reviewers": "alice, bob"}, command.Command{Kind: command.KindRequest, Roles: []string{"dba"}, Reviewers: []string{"alice", "bob"}}},
		},
	},
	"ls": {"state": nil}, // one case per choice, generated
	"show": {"id": {
		{map[string]string{"id": upperID}, command.Command{Kind: command.KindShow, RequestID: requestID}},
	}},
	"approve": {
		"id": {{map[string]string{"id": requestID}, command.Command{Kind: command.KindApprove, RequestID: requestID}}},
		"reason": {
			{map[string]string{"id": requestID, "reason": nasty}, command.Command{Kind: command.KindApprove, RequestID: requestID, Reason: nasty}},
			{map[string]string{"id": requestID, "reason": "because it's fine"}, command.Command{Kind: command.KindApprove, RequestID: requestID, Reason: "because it's fine"}},
		},
	},
	"deny": {
		"id":     {{map[string]string{"id": requestID, "reason": "no"}, command.Command{Kind: command.KindDeny, RequestID: requestID, Reason: "no"}}},
		"reason": {{map[string]string{"id": requestID, "reason": nasty}, command.Command{Kind: command.KindDeny, RequestID: requestID, Reason: nasty}}},
	},
	"search": {
		"kind": nil, // generated
		"labels": {
			{map[string]string{"labels": `env=prod team=a"b kubernetes.io/name=x=y`}, command.Command{Kind: command.KindSearch,
				Labels: map[string]string{"env": "prod", "team": `a"b`, "kubernetes.io/name": "x=y"}}},
		},
		"words": {
			{map[string]string{"words": `db -x help a=b "q"`}, command.Command{Kind: command.KindSearch, SearchWords: []string{"db", "-x", "help", "a=b", `"q"`}}},
			{map[string]string{"kind": "node", "labels": "env=prod", "words": "web"}, command.Command{Kind: command.KindSearch, SearchKind: "node",
				Labels: map[string]string{"env": "prod"}, SearchWords: []string{"web"}}},
		},
	},
	"login": {"code": {{map[string]string{"code": "ABCD-1234"}, command.Command{Kind: command.KindLogin, Code: "ABCD-1234"}}}},
	"help":  {"topic": nil}, // generated
}

// Every option /access registers with Discord becomes text that the
// core's grammar parses back to the same values.
func TestEveryRegisteredOptionParses(t *testing.T) {
	for _, sub := range AccessCommand().Options {
		cases, ok := roundTrips[sub.Name]
		if !ok {
			t.Errorf("subcommand %q has no round-trip cases", sub.Name)
			continue
		}
		for _, opt := range sub.Options {
			list, ok := cases[opt.Name]
			if !ok {
				t.Errorf("option %s %s has no round-trip case", sub.Name, opt.Name)
				continue
			}
			for _, c := range opt.Choices {
				v := c.Value.(string)
				want := command.Command{Kind: command.Kind(sub.Name)}
				switch opt.Name {
				case "state":
					want.State = v
				case "kind":
					want.SearchKind = v
				case "topic":
					want = command.Command{Kind: command.KindHelp, HelpTopic: v}
				}
				list = append(list, roundTrip{map[string]string{opt.Name: v}, want})
			}
			if len(list) == 0 {
				t.Errorf("option %s %s has no round-trip case", sub.Name, opt.Name)
			}
			for _, rt := range list {
				text, got := parseOptions(t, sub.Name, rt.opts)
				if !reflect.DeepEqual(got, rt.want) {
					t.Errorf("%s %v\n  text %s\n  got  %+v\n  want %+v", sub.Name, rt.opts, text, got, rt.want)
				}
			}
		}
	}
	for name := range roundTrips {
		found := false
		for _, sub := range AccessCommand().Options {
			found = found || sub.Name == name
		}
		if !found {
			t.Errorf("round-trip cases for %q, which is not registered", name)
		}
	}
}

// Any reason a person can type arrives unchanged (trimmed).
func TestReasonRoundTripsRandomText(t *testing.T) {
	alphabet := []rune(`ab "'\` + "`" + `“”„‟‘’ -—–=,#/because for --reason help` + "\n\t")
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		r := make([]rune, rng.IntN(60)+1)
		for i := range r {
			r[i] = alphabet[rng.IntN(len(alphabet))]
		}
		checkReasonRoundTrip(t, string(r))
	}
}

func FuzzReasonRoundTrip(f *testing.F) {
	for _, s := range []string{nasty, `\`, `"`, `\"`, "“", "because", "--x", "a\\“b"} {
		f.Add(s)
	}
	f.Fuzz(checkReasonRoundTrip)
}

func checkReasonRoundTrip(t *testing.T, reason string) {
	want := strings.TrimSpace(reason)
	if want == "" || !utf8.ValidString(reason) || len(want) > command.MaxReasonLen {
		return
	}
	for _, sub := range []string{"request", "approve", "deny"} {
		opts := map[string]string{"reason": reason, "roles": "dba"}
		if sub != "request" {
			opts = map[string]string{"reason": reason, "id": requestID}
		}
		text, err := commandText(interactionData(sub, opts))
		if err != nil {
			t.Fatal(err)
		}
		cmd, err := command.Parse(text)
		if err != nil {
			t.Fatalf("%s reason %q: Parse(%q): %v", sub, reason, text, err)
		}
		if cmd.Reason != want {
			t.Fatalf("%s reason %q came back as %q (text %q)", sub, reason, cmd.Reason, text)
		}
	}
}

func TestCommandTextRefusesWhatWasNotRegistered(t *testing.T) {
	cases := []struct {
		name string
		data discordgo.ApplicationCommandInteractionData
	}{
		{"other command", discordgo.ApplicationCommandInteractionData{Name: "grant"}},
		{"no subcommand", discordgo.ApplicationCommandInteractionData{Name: CommandName}},
		{"unknown subcommand", interactionData("grant", nil)},
		{"unknown option", interactionData("request", map[string]string{"roles": "dba", "sudo": "yes"})},
		{"option not a string", func() discordgo.ApplicationCommandInteractionData {
			d := interactionData("ls", nil)
			d.Options[0].Options = []*discordgo.ApplicationCommandInteractionDataOption{{Name: "state", Type: discordgo.ApplicationCommandOptionInteger, Value: 3.0}}
			return d
		}()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := commandText(tc.data); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

// /access fits Discord's documented limits, and the check can fail.
func TestAccessCommandWithinDiscordLimits(t *testing.T) {
	if err := discordfake.ValidateCommand(AccessCommand()); err != nil {
		t.Fatal(err)
	}
	for _, sub := range AccessCommand().Options {
		if got := string(command.Kind(sub.Name)); !command.Kind(got).Valid() {
			t.Errorf("subcommand %q is not a verb of the grammar", sub.Name)
		}
	}
	broken := []struct {
		name   string
		mutate func(*discordgo.ApplicationCommand)
	}{
		{"upper-case name", func(c *discordgo.ApplicationCommand) { c.Name = "Access" }},
		{"description of 101 characters", func(c *discordgo.ApplicationCommand) { c.Options[0].Description = strings.Repeat("x", 101) }},
		{"required after optional", func(c *discordgo.ApplicationCommand) { c.Options[0].Options[1].Required = true }},
		{"26 choices", func(c *discordgo.ApplicationCommand) {
			for i := range 26 {
				c.Options[1].Options[0].Choices = append(c.Options[1].Options[0].Choices, &discordgo.ApplicationCommandOptionChoice{Name: string(rune('a' + i%26)), Value: "v"})
			}
		}},
		{"space in option name", func(c *discordgo.ApplicationCommand) { c.Options[0].Options[0].Name = "my roles" }},
	}
	for _, b := range broken {
		cmd := AccessCommand()
		b.mutate(cmd)
		if err := discordfake.ValidateCommand(cmd); err == nil {
			t.Errorf("%s: accepted", b.name)
		}
	}
}

func TestRegisterCommands(t *testing.T) {
	f := discordfake.New(t)
	cfg := Config{ApplicationID: f.ApplicationID, BotToken: f.Token, APIURL: f.URL}
	const otherGuild = "900000000000000002"

	got, err := RegisterCommands(t.Context(), cfg, []string{testGuild, otherGuild})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != CommandName || got[0].ID == "" || got[0].GuildID != testGuild {
		t.Fatalf("registered %+v", got)
	}
	stored := f.Commands(testGuild)
	if len(stored) != 1 || len(stored[0].Options) != len(subcommands) {
		t.Fatalf("fake holds %+v", stored)
	}
	// A second run overwrites in place: same command id.
	again, err := RegisterCommands(t.Context(), cfg, []string{testGuild})
	if err != nil || again[0].ID != got[0].ID {
		t.Fatalf("re-register: %v, id %s then %s", err, got[0].ID, again[0].ID)
	}
	if f.Calls(discordfake.RouteGuildCommands) != 3 {
		t.Fatalf("%d guild registrations", f.Calls(discordfake.RouteGuildCommands))
	}

	global, err := RegisterCommands(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(global) != 1 || global[0].Contexts == nil || len(*global[0].Contexts) != 1 || (*global[0].Contexts)[0] != discordgo.InteractionContextGuild {
		t.Fatalf("global registration %+v", global)
	}
	if len(f.Commands("")) != 1 {
		t.Fatal("no global command stored")
	}

	t.Run("errors name what is wrong", func(t *testing.T) {
		_, err := RegisterCommands(t.Context(), Config{BotToken: "x", APIURL: f.URL}, nil)
		if err == nil || !strings.Contains(err.Error(), "application_id") {
			t.Fatalf("err = %v", err)
		}
		_, err = RegisterCommands(t.Context(), Config{ApplicationID: f.ApplicationID, BotToken: "wrong", APIURL: f.URL}, []string{testGuild})
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || !strings.Contains(err.Error(), "bot_token") {
			t.Fatalf("err = %v", err)
		}
		_, err = RegisterCommands(t.Context(), cfg, []string{"guild-one"})
		if err == nil || !strings.Contains(err.Error(), `"guild-one"`) {
			t.Fatalf("err = %v", err)
		}
	})
}
