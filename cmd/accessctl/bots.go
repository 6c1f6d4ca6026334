package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/cmd/internal/cliui"
	"github.com/gatehouse-dev/gatehouse/integrations/discord"
)

// botsCmd sets up the chat platforms' side of the bots. It talks to the
// platforms directly, not to accessd.
func botsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "bots", Short: "Set up the chat bots on their platforms"}
	dc := &cobra.Command{Use: "discord", Short: "Discord application setup"}
	dc.AddCommand(discordRegisterCmd(g))
	cmd.AddCommand(dc)
	return cmd
}

func discordRegisterCmd(g *globals) *cobra.Command {
	var appID, tokenFile, apiURL string
	var guilds []string
	cmd := &cobra.Command{
		Use:   "register --application-id ID [--bot-token-file F] [--guild ID ...]",
		Short: "Register the /access slash command with Discord (in each --guild, or globally)",
		Long: `Registers /access by bulk overwrite, which replaces the application's other
commands in that scope. The bot token comes from --bot-token-file or DISCORD_BOT_TOKEN.
Guild commands appear at once; without --guild the command is global.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := g.checkFormat("text", "json"); err != nil {
				return err
			}
			if appID == "" {
				return cliui.UsageError("--application-id is required (Discord Developer Portal, General Information)")
			}
			token := os.Getenv("DISCORD_BOT_TOKEN")
			if tokenFile != "" {
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return fmt.Errorf("--bot-token-file: %w", err)
				}
				token = strings.TrimSpace(string(b))
			}
			if token == "" {
				return cliui.UsageError("--bot-token-file (or DISCORD_BOT_TOKEN) is required")
			}
			cfg := discord.Config{ApplicationID: appID, BotToken: token, APIURL: apiURL}
			registered, err := discord.RegisterCommands(cmd.Context(), cfg, guilds)
			if err != nil {
				return err
			}
			if g.format == "json" {
				return cliui.JSON(os.Stdout, registered)
			}
			for _, c := range registered {
				var subs []string
				for _, o := range c.Options {
					subs = append(subs, o.Name)
				}
				scope := "globally"
				if c.GuildID != "" {
					scope = "in guild " + c.GuildID
				}
				fmt.Printf("/%s registered %s (command id %s): %s\n", c.Name, scope, c.ID, strings.Join(subs, ", "))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&appID, "application-id", "", "the Discord application's id")
	f.StringVar(&tokenFile, "bot-token-file", "", "file holding the bot token (default: env DISCORD_BOT_TOKEN)")
	f.StringVar(&apiURL, "api-url", discord.DefaultAPIURL, "Discord REST API base URL")
	f.StringArrayVar(&guilds, "guild", nil, "guild id to register in (repeatable; none: global)")
	return cmd
}
