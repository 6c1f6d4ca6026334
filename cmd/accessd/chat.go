package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/bot"
	"github.com/gatehouse-dev/gatehouse/chatops"
	"github.com/gatehouse-dev/gatehouse/integrations/discord"
	"github.com/gatehouse-dev/gatehouse/integrations/mattermost"
	"github.com/gatehouse-dev/gatehouse/integrations/slack"
	"github.com/gatehouse-dev/gatehouse/service"
)

// IdentityConfig is identity.
type IdentityConfig struct {
	// ChatEmailMapping maps chat users by e-mail when no user carries
	// their platform id.
	ChatEmailMapping bool `json:"chat_email_mapping"`
	// LoginAttempts failed password logins of a name within 15 minutes
	// lock its password logins out for LoginLockout (service/loginlimit.go).
	// Absent: 5.
	LoginAttempts *int `json:"login_attempts"`
	// LoginLockout is a Go duration, 1m to 24h; empty: 15m.
	LoginLockout string `json:"login_lockout"`
}

// loginLimit reads identity.login_attempts and identity.login_lockout.
func (c IdentityConfig) loginLimit() (access.LoginLimit, error) {
	l := access.LoginLimit{}.WithDefaults()
	if c.LoginAttempts != nil {
		l.Attempts = *c.LoginAttempts
	}
	if c.LoginLockout != "" {
		d, err := time.ParseDuration(c.LoginLockout)
		if err != nil {
			return l, fmt.Errorf("identity.login_lockout %q: want a Go duration such as 15m", c.LoginLockout)
		}
		l.Lockout = d
	}
	return l, l.Validate()
}

// SlackConfig is slack; absent disables Slack.
type SlackConfig struct {
	BotToken          string   `json:"bot_token"`
	BotTokenFile      string   `json:"bot_token_file"`
	SigningSecret     string   `json:"signing_secret"`
	SigningSecretFile string   `json:"signing_secret_file"`
	AppToken          string   `json:"app_token"`
	AppTokenFile      string   `json:"app_token_file"`
	SocketMode        bool     `json:"socket_mode"`
	APIURL            string   `json:"api_url"`
	TeamID            string   `json:"team_id"`
	Channels          []string `json:"channels"`
}

// DiscordConfig is discord; absent disables Discord.
type DiscordConfig struct {
	ApplicationID string   `json:"application_id"`
	PublicKey     string   `json:"public_key"`
	PublicKeyFile string   `json:"public_key_file"`
	BotToken      string   `json:"bot_token"`
	BotTokenFile  string   `json:"bot_token_file"`
	APIURL        string   `json:"api_url"`
	GuildIDs      []string `json:"guild_ids"`
	Channels      []string `json:"channels"`
}

// MattermostConfig is mattermost; absent disables Mattermost.
type MattermostConfig struct {
	URL              string   `json:"url"`
	BotToken         string   `json:"bot_token"`
	BotTokenFile     string   `json:"bot_token_file"`
	CommandToken     string   `json:"command_token"`
	CommandTokenFile string   `json:"command_token_file"`
	Team             string   `json:"team"`
	AllowedAddresses []string `json:"allowed_addresses"`
	Channels         []string `json:"channels"`
}

// secretValue resolves a secret key X: inline, X_file, or the environment
// variable; key is the config path for messages.
func secretValue(key, inline, file, env string) (string, error) {
	switch {
	case inline != "":
		return inline, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s_file: %w", key, err)
		}
		return strings.TrimSpace(string(b)), nil
	case env != "" && os.Getenv(env) != "":
		return os.Getenv(env), nil
	}
	return "", fmt.Errorf("%s: set %s, %s_file or %s", key, key, key, env)
}

// chatChannels is the service's routing: the platforms configured and
// their default channels.
func chatChannels(cfg Config) service.ChatConfig {
	c := service.ChatConfig{Channels: map[string][]string{}}
	if cfg.Slack != nil {
		c.Channels[bot.Slack] = cfg.Slack.Channels
		c.Threads = append(c.Threads, bot.Slack)
	}
	if cfg.Discord != nil {
		c.Channels[bot.Discord] = cfg.Discord.Channels
	}
	if cfg.Mattermost != nil {
		c.Channels[bot.Mattermost] = cfg.Mattermost.Channels
		c.Threads = append(c.Threads, bot.Mattermost)
	}
	return c
}

// chatConfig resolves the platform sections and their secrets into the
// adapters' configuration; a missing key is named.
func chatConfig(cfg Config) (chatops.Config, error) {
	out := chatops.Config{PublicURL: cfg.PublicURL, EmailMapping: cfg.Identity.ChatEmailMapping}
	if c := cfg.Slack; c != nil {
		token, err := secretValue("slack.bot_token", c.BotToken, c.BotTokenFile, "SLACK_BOT_TOKEN")
		if err != nil {
			return out, err
		}
		var signing, appToken string
		if c.SocketMode {
			if appToken, err = secretValue("slack.app_token", c.AppToken, c.AppTokenFile, "SLACK_APP_TOKEN"); err != nil {
				return out, err
			}
		} else if signing, err = secretValue("slack.signing_secret", c.SigningSecret, c.SigningSecretFile, "SLACK_SIGNING_SECRET"); err != nil {
			return out, err
		}
		if c.TeamID == "" {
			return out, errors.New("slack.team_id: set the workspace id (T…) whose users may use Gatehouse")
		}
		out.Slack = &slack.Config{BotToken: token, SigningSecret: signing, AppToken: appToken, SocketMode: c.SocketMode, APIURL: c.APIURL, TeamID: c.TeamID}
	}
	if c := cfg.Discord; c != nil {
		token, err := secretValue("discord.bot_token", c.BotToken, c.BotTokenFile, "DISCORD_BOT_TOKEN")
		if err != nil {
			return out, err
		}
		pub, err := secretValue("discord.public_key", c.PublicKey, c.PublicKeyFile, "DISCORD_PUBLIC_KEY")
		if err != nil {
			return out, err
		}
		if len(c.GuildIDs) == 0 {
			return out, errors.New("discord.guild_ids: list the guilds whose members may use Gatehouse")
		}
		out.Discord = &discord.Config{ApplicationID: c.ApplicationID, PublicKey: pub, BotToken: token, APIURL: c.APIURL, GuildIDs: c.GuildIDs}
	}
	if c := cfg.Mattermost; c != nil {
		token, err := secretValue("mattermost.bot_token", c.BotToken, c.BotTokenFile, "MATTERMOST_BOT_TOKEN")
		if err != nil {
			return out, err
		}
		cmdToken, err := secretValue("mattermost.command_token", c.CommandToken, c.CommandTokenFile, "MATTERMOST_COMMAND_TOKEN")
		if err != nil {
			return out, err
		}
		if cfg.PublicURL == "" {
			return out, errors.New("mattermost: public_url must be set: Mattermost's buttons call accessd back at it")
		}
		out.Mattermost = &mattermost.Config{URL: c.URL, BotToken: token, CommandToken: cmdToken, Team: c.Team,
			AllowedAddresses: c.AllowedAddresses, PublicURL: cfg.PublicURL}
	}
	return out, nil
}
