package main

import (
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/integrations/discord/discordfake"
)

func TestBotsDiscordRegister(t *testing.T) {
	f := discordfake.New(t)
	const guild = "900000000000000001"
	run := func(env string, args ...string) error {
		t.Setenv("DISCORD_BOT_TOKEN", env)
		cmd := botsCmd(&globals{format: "text"})
		cmd.SetArgs(append([]string{"discord", "register"}, args...))
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		return cmd.Execute()
	}
	if err := run(f.Token, "--api-url", f.URL, "--guild", guild); err == nil || !strings.Contains(err.Error(), "--application-id") {
		t.Fatalf("missing application id: %v", err)
	}
	if err := run("", "--application-id", f.ApplicationID, "--api-url", f.URL); err == nil || !strings.Contains(err.Error(), "DISCORD_BOT_TOKEN") {
		t.Fatalf("missing token: %v", err)
	}
	if err := run(f.Token, "--application-id", f.ApplicationID, "--api-url", f.URL, "--guild", guild); err != nil {
		t.Fatal(err)
	}
	cmds := f.Commands(guild)
	if len(cmds) != 1 || cmds[0].Name != "access" || len(cmds[0].Options) < 8 {
		t.Fatalf("registered = %+v", cmds)
	}
}
