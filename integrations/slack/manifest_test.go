package slack

import (
	"net/url"
	"os"
	"slices"
	"testing"
	"unicode/utf8"

	slackgo "github.com/slack-go/slack"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/bot/bottest"
)

// The shipped app manifest parses strictly into slack-go's manifest type
// (an unknown or misspelt key fails), and its slash command, URLs and
// scopes match what the adapter serves and calls.
func TestManifestMatchesRoutes(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/slack/manifest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var m slackgo.Manifest
	if err := yaml.UnmarshalStrict(raw, &m); err != nil {
		t.Fatalf("manifest: %v", err)
	}

	if m.Display.Name == "" || m.Features.BotUser.DisplayName == "" {
		t.Fatal("manifest needs display_information.name and features.bot_user.display_name")
	}
	if n := utf8.RuneCountInString(m.Display.LongDescription); n != 0 && (n < 175 || n > 4000) {
		t.Fatalf("long_description is %d characters; Slack wants 175 to 4000", n)
	}
	if n := utf8.RuneCountInString(m.Display.Description); n > 140 {
		t.Fatalf("description is %d characters; Slack allows 140", n)
	}

	if len(m.Features.SlashCommands) != 1 {
		t.Fatalf("slash commands = %+v, want /access only", m.Features.SlashCommands)
	}
	cmd := m.Features.SlashCommands[0]
	commandURL := mustURL(t, cmd.Url)
	if cmd.Command != "/access" || commandURL.Path != CommandsPath || cmd.UsageHint == "" {
		t.Fatalf("slash command = %+v, want /access at %s with a usage hint", cmd, CommandsPath)
	}

	if m.Settings.Interactivity == nil || !m.Settings.Interactivity.IsEnabled {
		t.Fatal("interactivity must be enabled for the Approve/Deny buttons")
	}
	interactionsURL := mustURL(t, m.Settings.Interactivity.RequestUrl)
	if interactionsURL.Path != InteractionsPath {
		t.Fatalf("interactivity request_url path = %q, want %q", interactionsURL.Path, InteractionsPath)
	}
	for _, u := range []*url.URL{commandURL, interactionsURL} {
		if u.Scheme != "https" || u.Host != "gatehouse.example.com:3025" {
			t.Fatalf("%s: Slack calls https URLs only, and both must name accessd's public address", u)
		}
	}
	if m.Settings.SocketModeEnabled {
		t.Fatal("the shipped manifest is for HTTP; Socket Mode is an opt-in")
	}

	// Routes serves exactly the two URLs.
	a, err := New(Config{BotToken: "xoxb-1", SigningSecret: "s"}, &bottest.Handler{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var routes []string
	for pattern := range a.Routes() {
		routes = append(routes, pattern)
	}
	slices.Sort(routes)
	if want := []string{"POST " + CommandsPath, "POST " + InteractionsPath}; !slices.Equal(routes, want) {
		t.Fatalf("routes = %v, want %v", routes, want)
	}

	// Every Web API method the adapter calls has its scope.
	for _, scope := range []string{
		"commands",                        // slash command
		"chat:write", "chat:write.public", // chat.postMessage, chat.update
		"im:write",                       // conversations.open
		"users:read", "users:read.email", // users.info with e-mail
		"channels:read", "groups:read", // conversations.list
		"channels:history", "groups:history", "im:history", // conversations.history / replies
	} {
		if !slices.Contains(m.OAuthConfig.Scopes.Bot, scope) {
			t.Errorf("bot scopes lack %s", scope)
		}
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil || s == "" {
		t.Fatalf("bad URL %q: %v", s, err)
	}
	return u
}
