package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/internal/sshdtest"
)

// sshE2ERoles: ssh-test opens env=test nodes as one login; requesters
// reach it through search_as_roles; reviewers review it.
const sshE2ERoles = `
kind: role
version: v1
metadata: {name: ssh-test}
spec:
  allow:
    node_labels: {env: test}
    logins: [%s]
---
kind: role
version: v1
metadata: {name: ssh-requester}
spec:
  allow:
    request:
      search_as_roles: [ssh-test]
---
kind: role
version: v1
metadata: {name: ssh-reviewer}
spec:
  allow:
    review_requests: {roles: [ssh-test]}
`

// pendingRequest waits until the reviewer sees one pending request and
// returns its id.
func pendingRequest(t *testing.T, reviewer env, skip map[string]bool) string {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var list []access.Request
		if err := json.Unmarshal([]byte(reviewer.ok("", accessBin, "request", "ls", "--state", "pending", "--format", "json")), &list); err != nil {
			t.Fatal(err)
		}
		for _, r := range list {
			if !skip[r.ID] {
				return r.ID
			}
		}
	}
	t.Fatal("no pending request appeared")
	return ""
}

// TestSSHRequestApproveConnect is `access ssh` against a stock sshd that
// trusts the cluster's SSH CA and takes host-scoped principals: no grant,
// so it requests access, waits for the review and connects; the second
// time the grant is there and it connects at once.
func TestSSHRequestApproveConnect(t *testing.T) {
	sshdtest.Binary(t)
	granted, other := sshdtest.Logins(t)
	c, admin, identity := setup(t)
	c.Apply(fmt.Sprintf(sshE2ERoles, granted))

	var caPubs []ssh.PublicKey
	rest := []byte(admin.ok("", accessctlBin, "--identity", identity, "ca", "export", "--type", "ssh"))
	for len(bytes.TrimSpace(rest)) > 0 {
		k, _, _, r, err := ssh.ParseAuthorizedKey(rest)
		if err != nil {
			t.Fatalf("ca export: %v", err)
		}
		caPubs, rest = append(caPubs, k), r
	}
	srv := sshdtest.Start(t, caPubs, map[string]string{granted: granted + "@testhost\n"})
	c.Apply(fmt.Sprintf("kind: node\nversion: v1\nmetadata: {name: web-test, labels: {env: test}}\nspec: {hostname: testhost, addr: %q}\n", srv.Addr))

	alice := invite(t, admin, identity, "alice", "ssh-requester")
	bob := invite(t, admin, identity, "bob", "ssh-reviewer")
	kh := filepath.Join(t.TempDir(), "known_hosts")

	// No grant: the request is created, alice waits, bob approves, the
	// command runs.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := alice.cmd(ctx, "", accessBin, "ssh", "--request-reason", "debug #1", "--accept-new-host-key", "--known-hosts", kh, granted+"@testhost", "echo", "ok")
	var out, errOut bytes.Buffer
	run.Stdout, run.Stderr = &out, &errOut
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	id := pendingRequest(t, bob, nil)
	show := bob.ok("", accessBin, "request", "show", id, "--format", "json")
	if !strings.Contains(show, "/test.local/node/web-test") || !strings.Contains(show, "debug #1") {
		t.Fatalf("the request is not for the node: %s", show)
	}
	bob.ok("", accessBin, "request", "review", "--approve", "--reason", "go", id)
	if err := run.Wait(); err != nil {
		t.Fatalf("access ssh: %v\nstdout %q\nstderr:\n%s", err, out.String(), errOut.String())
	}
	if out.String() != "ok\n" {
		t.Fatalf("stdout = %q, want %q\nstderr:\n%s", out.String(), "ok\n", errOut.String())
	}
	if !strings.Contains(errOut.String(), "Request "+id+" APPROVED") {
		t.Fatalf("stderr does not tell the outcome:\n%s", errOut.String())
	}
	t.Logf("first run's stderr:\n%s", errOut.String())
	// The host key was recorded, for the address dialled.
	khData, err := os.ReadFile(kh)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(khData), knownhosts.Line([]string{knownhosts.Normalize(srv.Addr)}, srv.HostKey)) {
		t.Fatalf("known_hosts = %q", khData)
	}

	// The grant exists now: no request, at once, and the remote exit
	// status is the exit code.
	stdout, stderr, code := alice.run("", accessBin, "ssh", "--known-hosts", kh, granted+"@testhost", "echo", "again")
	if code != 0 || stdout != "again\n" || strings.Contains(stderr, "Request") {
		t.Fatalf("second run: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if _, _, code := alice.run("", accessBin, "ssh", "--known-hosts", kh, granted+"@web-test", "sh", "-c", "'exit 7'"); code != 7 {
		t.Fatalf("remote exit 7 (by node name): exit %d", code)
	}
	if stdout, _, code := alice.run("hello from stdin\n", accessBin, "ssh", "--known-hosts", kh, granted+"@testhost", "cat"); code != 0 || stdout != "hello from stdin\n" {
		t.Fatalf("stdin to the remote command: exit %d, %q", code, stdout)
	}

	t.Run("a login the grant lacks is refused", func(t *testing.T) {
		alice.t = t
		stdout, stderr, code := alice.run("", accessBin, "ssh", "--known-hosts", kh, other+"@testhost", "echo", "ok")
		if code != 1 || stdout != "" || !strings.Contains(stderr, "no approved grant of yours covers "+other+"@testhost") ||
			!strings.Contains(stderr, granted+"@testhost") || !strings.Contains(stderr, "--request-reason") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
	t.Run("a host-key problem is refused", func(t *testing.T) {
		alice.t = t
		// Unknown host without --accept-new-host-key.
		fresh := filepath.Join(t.TempDir(), "known_hosts")
		_, stderr, code := alice.run("", accessBin, "ssh", "--known-hosts", fresh, granted+"@testhost", "echo", "ok")
		if code != 1 || !strings.Contains(stderr, "unknown host") || !strings.Contains(stderr, "--accept-new-host-key") {
			t.Fatalf("unknown host: exit %d, %q", code, stderr)
		}
		if _, err := os.Stat(fresh); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("known_hosts written without --accept-new-host-key: %v", err)
		}
		// A changed key (the CA's key stands in for the old host key),
		// even with --accept-new-host-key.
		changed := filepath.Join(t.TempDir(), "known_hosts")
		line := knownhosts.Line([]string{knownhosts.Normalize(srv.Addr)}, caPubs[0]) + "\n"
		if err := os.WriteFile(changed, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		_, stderr, code = alice.run("", accessBin, "ssh", "--accept-new-host-key", "--known-hosts", changed, granted+"@testhost", "echo", "ok")
		if code != 1 || !strings.Contains(stderr, "HOST KEY CHANGED") {
			t.Fatalf("changed host key: exit %d, %q", code, stderr)
		}
	})
	t.Run("an unknown node is named", func(t *testing.T) {
		alice.t = t
		_, stderr, code := alice.run("", accessBin, "ssh", "--known-hosts", kh, granted+"@nope", "true")
		if code != 1 || !strings.Contains(stderr, `no node "nope"`) {
			t.Fatalf("exit %d, %q", code, stderr)
		}
		_, _, code = alice.run("", accessBin, "ssh", "testhost")
		if code != 2 {
			t.Fatalf("no LOGIN@: exit %d, want 2", code)
		}
	})
	t.Run("a host that refuses the certificate", func(t *testing.T) {
		alice.t, bob.t = t, t
		// This host lists no principal of the grant it will get.
		srv2 := sshdtest.Start(t, caPubs, map[string]string{granted: granted + "@elsewhere\n"})
		c.Apply(fmt.Sprintf("kind: node\nversion: v1\nmetadata: {name: web-2, labels: {env: test}}\nspec: {hostname: testhost2, addr: %q}\n", srv2.Addr))
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		run := alice.cmd(ctx, "", accessBin, "ssh", "--request-reason", "debug #2", "--accept-new-host-key", "--known-hosts", kh, granted+"@testhost2", "echo", "ok")
		var errOut bytes.Buffer
		run.Stderr = &errOut
		if err := run.Start(); err != nil {
			t.Fatal(err)
		}
		id2 := pendingRequest(t, bob, map[string]bool{id: true})
		bob.ok("", accessBin, "request", "review", "--approve", "--reason", "go", id2)
		err := run.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(errOut.String(), "refused the certificate of the new grant "+id2) ||
			!strings.Contains(errOut.String(), "AuthorizedPrincipalsFile") {
			t.Fatalf("refused after approval: %v\n%s", err, errOut.String())
		}
		// With the grant in hand, the refusal offers a new request.
		_, stderr, code := alice.run("", accessBin, "ssh", "--known-hosts", kh, granted+"@testhost2", "echo", "ok")
		if code != 1 || !strings.Contains(stderr, "refused the certificate of request "+id2) || !strings.Contains(stderr, "--resource /test.local/node/web-2") {
			t.Fatalf("refused with a grant: exit %d, %q", code, stderr)
		}
	})
	t.Run("a denied request exits 3", func(t *testing.T) {
		alice.t, bob.t = t, t
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		run := alice.cmd(ctx, "", accessBin, "ssh", "--request-reason", "as someone else", "--known-hosts", kh, other+"@testhost", "echo", "ok")
		var errOut bytes.Buffer
		run.Stderr = &errOut
		if err := run.Start(); err != nil {
			t.Fatal(err)
		}
		denied := pendingRequest(t, bob, nil)
		bob.ok("", accessBin, "request", "review", "--deny", "--reason", "no", denied)
		err := run.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(errOut.String(), "DENIED") {
			t.Fatalf("denied: %v\n%s", err, errOut.String())
		}
	})
}
