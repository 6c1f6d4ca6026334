package main_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/integrations/discord/discordfake"
	"github.com/gatehouse-dev/gatehouse/integrations/mattermost/mattermostfake"
	"github.com/gatehouse-dev/gatehouse/integrations/slack/slackfake"
	"github.com/gatehouse-dev/gatehouse/internal/testcluster"
	"github.com/gatehouse-dev/gatehouse/manifest"
)

// TestChatPlatformsFromConfig starts the real accessd with the three chat
// sections of accessd.yaml pointing at the platforms' test servers: a
// signed Slack command makes a request whose card reaches all three
// channels; a forged one is refused with 401.
func TestChatPlatformsFromConfig(t *testing.T) {
	sl := slackfake.New(t, slackfake.Options{TeamID: "T0GATE"})
	slackChannel := sl.AddChannel(slackfake.Channel{Name: "access-requests"})
	dc := discordfake.New(t)
	const guild = "900000000000000001"
	discordChannel := dc.AddChannel(guild)
	mm := mattermostfake.New(mattermostfake.Options{})
	t.Cleanup(mm.Close)
	mmChannel := mm.AddChannel(mm.Team(), "access-requests")

	dataDir := tempDataDir(t)
	secrets := t.TempDir()
	tokenFile := filepath.Join(secrets, "slack-bot-token")
	if err := os.WriteFile(tokenFile, []byte(sl.BotToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cfg := filepath.Join(secrets, "accessd.yaml")
	yaml := fmt.Sprintf(`public_url: https://%[1]s
slack:
  bot_token_file: %[2]s
  signing_secret: %[3]s
  api_url: %[4]s
  team_id: T0GATE
  channels: ["#access-requests"]
discord:
  application_id: "%[5]s"
  public_key: %[6]s
  bot_token: %[7]s
  api_url: %[8]s
  guild_ids: ["%[9]s"]
  channels: ["%[10]s"]
mattermost:
  url: %[11]s
  bot_token: %[12]s
  command_token: %[13]s
  team: %[14]s
  channels: ["%[14]s/access-requests"]
`, addr, tokenFile, sl.SigningSecret, sl.APIURL, dc.ApplicationID, dc.PublicKeyHex(), dc.Token, dc.URL, guild, discordChannel,
		mm.URL, mm.BotToken(), mm.CommandToken(), mm.Team())
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, dataDir, addr, "--config", cfg)
	p := waitReady(t, dataDir)
	admin, _ := p.Client("")
	ctx := context.Background()
	objs, err := manifest.Decode([]byte(testcluster.DemoRoles + `
---
kind: user
version: v1
metadata: {name: alice}
spec: {roles: [requester], traits: {slack_id: [UALICE]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if _, err := admin.PutObject(ctx, o.Kind, o.JSON); err != nil {
			t.Fatal(err)
		}
	}

	// Slack's side, over accessd's real TLS listener (its certificate is
	// the cluster CA's; the test trusts it blindly on loopback).
	responses := make(chan string, 4)
	respURL := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		responses <- string(b)
	}))
	t.Cleanup(respURL.Close)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	command := func(secret string) int {
		body := url.Values{"team_id": {"T0GATE"}, "user_id": {"UALICE"}, "user_name": {"alice"}, "command": {"/access"},
			"text": {"request dba for 1h because ticket #42"}, "response_url": {respURL.URL}, "trigger_id": {"1.2.3"},
			"channel_id": {"D0APPHOME"}}.Encode()
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req, _ := http.NewRequest(http.MethodPost, "https://"+addr+"/v1/hooks/slack/commands", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Slack-Request-Timestamp", ts)
		req.Header.Set("X-Slack-Signature", slackfake.Sign(secret, ts, []byte(body)))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if status := command("forged"); status != http.StatusUnauthorized {
		t.Fatalf("forged Slack command: %d, want 401", status)
	}
	if status := command(sl.SigningSecret); status != http.StatusOK {
		t.Fatalf("Slack command: %d", status)
	}
	select {
	case r := <-responses:
		if !strings.Contains(r, "created") {
			t.Fatalf("reply to alice: %s", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reply to the slash command")
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(sl.Messages(slackChannel)) == 0 || len(dc.Messages(discordChannel)) == 0 || len(mm.Messages(mmChannel)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("cards: slack %d, discord %d, mattermost %d", len(sl.Messages(slackChannel)), len(dc.Messages(discordChannel)), len(mm.Messages(mmChannel)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A chat section with a missing secret is named at start.
func TestChatConfigErrorsAreNamed(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"slack:\n  team_id: T1\n", "slack.bot_token"},
		{"slack:\n  bot_token: x\n  signing_secret: y\n", "slack.team_id"},
		{"discord:\n  bot_token: x\n  public_key: y\n", "discord.guild_ids"},
		{"mattermost:\n  bot_token: x\n  command_token: y\n", "public_url"},
		{"slack:\n  bot_tokn: x\n", "bot_tokn"},
	} {
		cfg := filepath.Join(t.TempDir(), "accessd.yaml")
		if err := os.WriteFile(cfg, []byte("listen: 127.0.0.1:0\n"+tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(accessdBin, "start", "--config", cfg, "--data-dir", t.TempDir()).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%q: want an error naming %s, got %v\n%s", tc.yaml, tc.want, err, out)
		}
	}
}
