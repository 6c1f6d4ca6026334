package slack

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/bot/webhook"
	slackgo "github.com/slack-go/slack"
)

// DefaultAPIURL is Slack's Web API base URL.
const DefaultAPIURL = slackgo.APIURL

// Config is the accessd.yaml section `slack`. Error messages name the YAML
// keys (bot_token, signing_secret, ...), since that is where a person fixes
// them.
type Config struct {
	// BotToken is the bot user OAuth token (xoxb-...).
	BotToken string
	// SigningSecret verifies HTTP slash commands and interactions. Required
	// unless SocketMode is on (Socket Mode traffic arrives over a websocket
	// the app opened itself, authenticated by AppToken).
	SigningSecret string
	// AppToken is the app-level token (xapp-...) with connections:write;
	// required by SocketMode only.
	AppToken string
	// SocketMode receives commands and clicks over Slack's Socket Mode
	// websocket (RunSocketMode) instead of the HTTP routes, for installs
	// without a public URL.
	SocketMode bool
	// APIURL is the Web API base URL; default https://slack.com/api/. Tests
	// point it at slackfake.
	APIURL string
	// TeamID is the configured workspace. The core maps only this team's
	// users; the adapter also passes it to conversations.list (needed by
	// org-wide installs).
	TeamID string
	// EmailLookup fills ChatUser.Email from users.info (scope
	// users:read.email), for identity.chat_email_mapping.
	EmailLookup bool
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Replays, when set, records every request signature where all
	// accessd replicas see it (the etcd store), so a replay sent to
	// another replica is refused too; nil: this process only.
	Replays webhook.SharedReplays
}

// withDefaults validates c and fills its defaults.
func (c Config) withDefaults() (Config, error) {
	var problems []error
	if strings.TrimSpace(c.BotToken) == "" {
		problems = append(problems, errors.New("slack: bot_token is required (or bot_token_file, SLACK_BOT_TOKEN)"))
	}
	if c.SocketMode {
		if strings.TrimSpace(c.AppToken) == "" {
			problems = append(problems, errors.New("slack: app_token is required when socket_mode is on (or SLACK_APP_TOKEN)"))
		} else if !strings.HasPrefix(c.AppToken, "xapp-") {
			problems = append(problems, errors.New("slack: app_token must be an app-level token (xapp-...), not a bot token"))
		}
	} else if strings.TrimSpace(c.SigningSecret) == "" {
		problems = append(problems, errors.New("slack: signing_secret is required unless socket_mode is on (or SLACK_SIGNING_SECRET)"))
	}
	if c.APIURL == "" {
		c.APIURL = DefaultAPIURL
	}
	if u, err := url.Parse(c.APIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		problems = append(problems, fmt.Errorf("slack: api_url %q is not an http(s) URL", c.APIURL))
	}
	// slack-go appends the method name to the base URL as is.
	if !strings.HasSuffix(c.APIURL, "/") {
		c.APIURL += "/"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, errors.Join(problems...)
}
