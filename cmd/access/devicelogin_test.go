package main_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
)

// TestChatLogin: `access login --chat` prints the code and the key's
// fingerprint and waits; dave sends the code in chat (here: the service
// calls the bot makes); the CLI saves the session and dave is logged in.
func TestChatLogin(t *testing.T) {
	c, _, _ := setup(t)
	c.Apply("kind: user\nversion: v1\nmetadata: {name: dave}\nspec: {roles: [requester]}\n")
	dave := env{t: t, server: c.URL, home: t.TempDir()}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	login := dave.cmd(ctx, "", accessBin, "login", "--user", "dave", "--chat", "--ca-pin", c.Pin)
	var stdout bytes.Buffer
	login.Stdout = &stdout
	stderr, err := login.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := login.Start(); err != nil {
		t.Fatal(err)
	}
	var code, fingerprint, printed string
	lines := bufio.NewScanner(stderr)
	for code == "" || fingerprint == "" {
		if !lines.Scan() {
			t.Fatalf("access login --chat ended without a code and a fingerprint:\n%s", printed)
		}
		line := lines.Text()
		printed += line + "\n"
		if c, ok := strings.CutPrefix(line, "    /access login "); ok {
			code = c
		}
		if f, ok := strings.CutPrefix(line, "This device: key "); ok {
			fingerprint, _, _ = strings.Cut(f, " ")
		}
	}
	if !strings.HasPrefix(printed, "To finish logging in as dave, send this in Slack, Discord or Mattermost within 5 minutes:\n") {
		t.Fatalf("instructions:\n%s", printed)
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()

	chatDave, err := c.Svc.Caller(ctx, "dave", access.SourceDiscord)
	if err != nil {
		t.Fatal(err)
	}
	prompt, err := c.Svc.DeviceLoginPrompt(ctx, chatDave, code)
	if err != nil {
		t.Fatal(err)
	}
	if prompt.KeyHash != fingerprint {
		t.Fatalf("chat shows key %s, the terminal %s", prompt.KeyHash, fingerprint)
	}
	if _, err := c.Svc.ConfirmDeviceLogin(ctx, chatDave, code, "discord:1234"); err != nil {
		t.Fatal(err)
	}
	if err := login.Wait(); err != nil {
		t.Fatalf("access login --chat: %v\n%s", err, printed)
	}
	if !strings.HasPrefix(stdout.String(), "Logged in as dave at "+c.URL) {
		t.Fatalf("stdout: %q", stdout.String())
	}
	if status := dave.ok("", accessBin, "status"); !strings.Contains(status, "User:     dave") {
		t.Fatalf("status after the chat login:\n%s", status)
	}

	for _, conflict := range [][]string{{"--password-stdin"}, {"--invite", "v1.x"}} {
		args := append([]string{"login", "--user", "dave", "--chat"}, conflict...)
		_, errOut, exit := dave.run("dave-password\n", accessBin, args...)
		if exit != 2 || !strings.Contains(errOut, "--chat does not go with "+conflict[0]) {
			t.Fatalf("%v: exit %d, %q; want a usage error naming %s", args, exit, errOut, conflict[0])
		}
	}
}
