package discord

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/bot/webhook"
)

// DefaultAPIURL is Discord's REST API base URL (API v10).
const DefaultAPIURL = "https://discord.com/api/v10/"

// Config is the accessd.yaml section `discord`. Error messages name the YAML
// keys (application_id, public_key, ...), since that is where a person
// fixes them.
type Config struct {
	// ApplicationID is the application's id (a snowflake), from the
	// Developer Portal's General Information page.
	ApplicationID string
	// PublicKey is the application's Ed25519 public key, 64 hex characters;
	// it verifies every inbound interaction.
	PublicKey string
	// BotToken is the bot user's token; requests carry "Authorization: Bot
	// TOKEN".
	BotToken string
	// APIURL is the REST API base URL; default DefaultAPIURL. Tests point
	// it at discordfake.
	APIURL string
	// GuildIDs are the configured guilds. The core maps only these guilds'
	// members to Gatehouse users; `accessctl bots discord register` registers
	// the /access command in them.
	GuildIDs []string
	// Now is the clock for signature timestamps; default time.Now.
	Now func() time.Time
	// Replays, when set, records every interaction id where all accessd
	// replicas see it (the etcd store), so a replay sent to another
	// replica is refused too; nil: this process only.
	Replays webhook.SharedReplays
}

// withDefaults validates everything New needs and fills defaults.
func (c Config) withDefaults() (Config, error) {
	c, restErr := c.restDefaults()
	var problems []error
	if restErr != nil {
		problems = append(problems, restErr)
	}
	if _, err := parsePublicKey(c.PublicKey); err != nil {
		problems = append(problems, err)
	}
	for _, g := range c.GuildIDs {
		if !isSnowflake(g) {
			problems = append(problems, fmt.Errorf("discord: guild_ids: %q is not a guild id (want a snowflake such as 999999999999999999)", g))
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, errors.Join(problems...)
}

// restDefaults validates what REST calls need (application_id, bot_token,
// api_url), which is all RegisterCommands uses.
func (c Config) restDefaults() (Config, error) {
	var problems []error
	c.ApplicationID = strings.TrimSpace(c.ApplicationID)
	if c.ApplicationID == "" {
		problems = append(problems, errors.New("discord: application_id is required (Developer Portal, General Information)"))
	} else if !isSnowflake(c.ApplicationID) {
		problems = append(problems, fmt.Errorf("discord: application_id %q is not an application id (want a snowflake such as 123456789012345678)", c.ApplicationID))
	}
	// People paste the header value; the client adds "Bot " itself.
	c.BotToken = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(c.BotToken), "Bot "))
	if c.BotToken == "" {
		problems = append(problems, errors.New("discord: bot_token is required (or bot_token_file, DISCORD_BOT_TOKEN)"))
	} else if strings.ContainsAny(c.BotToken, " \t\r\n") {
		problems = append(problems, errors.New("discord: bot_token contains white space"))
	}
	if c.APIURL == "" {
		c.APIURL = DefaultAPIURL
	}
	if u, err := url.Parse(c.APIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
		problems = append(problems, fmt.Errorf("discord: api_url %q is not an http(s) base URL like %s", c.APIURL, DefaultAPIURL))
	}
	if !strings.HasSuffix(c.APIURL, "/") {
		c.APIURL += "/"
	}
	return c, errors.Join(problems...)
}

func parsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("discord: public_key is required (Developer Portal, General Information; or DISCORD_PUBLIC_KEY)")
	}
	if len(s) != 2*ed25519.PublicKeySize {
		return nil, fmt.Errorf("discord: public_key is %d characters, want 64 hex characters (the application's Ed25519 public key)", len(s))
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, errors.New("discord: public_key is not hex: want 64 hex characters (the application's Ed25519 public key)")
	}
	return ed25519.PublicKey(b), nil
}

// isSnowflake reports whether s looks like a Discord id: a decimal uint64
// of 17 to 20 digits (ids of 2015 onwards).
func isSnowflake(s string) bool {
	if len(s) < 17 || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}
