package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/access"
)

// TestLoginRequestIDAndDrop: `access login --request-id ID` switches the
// profile to an approved grant and writes its SSH credentials; `access
// request drop ID` returns to standing access; a pending request is refused.
func TestLoginRequestIDAndDrop(t *testing.T) {
	c, admin, identity := setup(t)
	c.Apply(fmt.Sprintf(sshE2ERoles, "ops"))
	c.Apply("kind: node\nversion: v1\nmetadata: {name: web1, labels: {env: test}}\nspec: {hostname: web1}\n")
	alice := invite(t, admin, identity, "alice", "ssh-requester")
	bob := invite(t, admin, identity, "bob", "ssh-reviewer")

	create := func() string {
		t.Helper()
		reqs := decodeRequests(t, alice.ok("", accessBin, "request", "create", "--resource", "/test.local/node/web1", "--reason", "deploy", "--nowait", "--format", "json"))
		if len(reqs) != 1 || reqs[0].State != access.StatePending {
			t.Fatalf("create: %+v", reqs)
		}
		return reqs[0].ID
	}
	id := create()
	bob.ok("", accessBin, "request", "review", "--approve", id)

	// The session is valid: no password needed.
	out := alice.ok("", accessBin, "login", "--request-id", id)
	if !strings.Contains(out, "Switched to request "+id) || !strings.Contains(out, "ops@web1") {
		t.Fatalf("login --request-id output:\n%s", out)
	}
	keys := filepath.Join(alice.home, "keys", id)
	for _, name := range []string{"id_ed25519", "id_ed25519-cert.pub"} {
		if _, err := os.Stat(filepath.Join(keys, name)); err != nil {
			t.Fatalf("keys dir: %v", err)
		}
	}
	if fi, err := os.Stat(filepath.Join(keys, "id_ed25519")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode: %v %v", fi.Mode(), err)
	}
	status := alice.ok("", accessBin, "status")
	if !strings.Contains(status, "Grant:    "+id) || !strings.Contains(status, "(ssh-test) until") {
		t.Fatalf("status after login --request-id:\n%s", status)
	}
	var st struct {
		Active *struct {
			ID    string   `json:"id"`
			Roles []string `json:"roles"`
		} `json:"active_request"`
	}
	if err := json.Unmarshal([]byte(alice.ok("", accessBin, "status", "--format", "json")), &st); err != nil || st.Active == nil || st.Active.ID != id {
		t.Fatalf("status --format json: %+v %v", st, err)
	}

	out = alice.ok("", accessBin, "request", "drop", id)
	if !strings.Contains(out, "Back to standing access.") {
		t.Fatalf("drop output:\n%s", out)
	}
	status = alice.ok("", accessBin, "status")
	if strings.Contains(status, id) || !strings.Contains(status, "Grant:    none") {
		t.Fatalf("status after drop:\n%s", status)
	}
	if _, err := os.Stat(keys); !os.IsNotExist(err) {
		t.Fatalf("keys dir after drop: %v", err)
	}

	// A pending request is no grant to switch to.
	pending := create()
	_, errOut, code := alice.run("", accessBin, "login", "--request-id", pending)
	if code != 1 || !strings.Contains(errOut, pending+" is PENDING, not APPROVED") {
		t.Fatalf("login --request-id of a pending request: exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(alice.home, "keys", pending)); !os.IsNotExist(err) {
		t.Fatalf("keys dir of a pending request: %v", err)
	}
	// With a password login first, then the switch.
	bob.ok("", accessBin, "request", "review", "--approve", pending)
	out = alice.ok("alice-password\n", accessBin, "login", "--password-stdin", "--request-id", pending)
	if !strings.Contains(out, "Logged in as alice") || !strings.Contains(out, "Switched to request "+pending) {
		t.Fatalf("password login + --request-id:\n%s", out)
	}
	// drop all leaves it too.
	out = alice.ok("", accessBin, "request", "drop", "all")
	if !strings.Contains(out, "Back to standing access.") {
		t.Fatalf("drop all output:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(alice.home, "keys", pending)); !os.IsNotExist(err) {
		t.Fatalf("keys dir after drop all: %v", err)
	}
}
