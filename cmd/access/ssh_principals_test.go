package main_test

import (
	"strings"
	"testing"
)

func TestSSHPrincipalsForAHost(t *testing.T) {
	c, admin, identity := setup(t)
	c.Apply("kind: node\nversion: v1\nmetadata: {name: web-1}\nspec: {hostname: web-1.internal}\n")
	if got := admin.ok("", accessctlBin, "--identity", identity, "ssh", "principals", "web-1", "--login", "deploy"); got != "deploy@web-1.internal\n" {
		t.Fatalf("principals file = %q", got)
	}
	out := admin.ok("", accessctlBin, "--identity", identity, "ssh", "principals", "web-1", "--login", "deploy,root")
	if !strings.Contains(out, "# /etc/ssh/gatehouse_principals/root\nroot@web-1.internal\n") {
		t.Fatalf("principals files = %q", out)
	}
	if _, errOut, code := admin.run("", accessctlBin, "--identity", identity, "ssh", "principals", "nope", "--login", "x"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Fatalf("unknown node: exit %d %q", code, errOut)
	}
	trusted := admin.ok("", accessctlBin, "--identity", identity, "ca", "export", "--type", "ssh")
	if !strings.HasPrefix(trusted, "ssh-ed25519 ") {
		t.Fatalf("ca export = %q", trusted)
	}
}
