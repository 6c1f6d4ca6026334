package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/internal/testcluster"
	"github.com/gatehouse-dev/gatehouse/service"
)

var accessBin, accessctlBin string

// TestMain builds the real binaries once; the tests drive them as a
// person or a script would, against an in-process accessd.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gh-cli-")
	if err != nil {
		panic(err)
	}
	accessBin = filepath.Join(dir, "access")
	accessctlBin = filepath.Join(dir, "accessctl")
	for bin, pkg := range map[string]string{accessBin: ".", accessctlBin: "../accessctl"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			panic("build " + pkg + ": " + err.Error() + "\n" + string(out))
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one person at one terminal.
type env struct {
	t      *testing.T
	server string
	home   string
}

func (e env) cmd(ctx context.Context, stdin string, bin string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, bin, args...)
	c.Env = append(os.Environ(), "GATEHOUSE_HOME="+e.home, "GATEHOUSE_SERVER="+e.server)
	c.Stdin = strings.NewReader(stdin)
	return c
}

// run runs a command to the end and returns stdout, stderr and the exit
// code.
func (e env) run(stdin, bin string, args ...string) (string, string, int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := e.cmd(ctx, stdin, bin, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), errb.String(), ee.ExitCode()
	}
	if err != nil {
		e.t.Fatalf("%s %v: %v", bin, args, err)
	}
	return out.String(), errb.String(), 0
}

func (e env) ok(stdin, bin string, args ...string) string {
	e.t.Helper()
	out, errOut, code := e.run(stdin, bin, args...)
	if code != 0 {
		e.t.Fatalf("%s %s: exit %d\n%s%s", filepath.Base(bin), strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func setup(t *testing.T) (c *testcluster.Cluster, admin env, identity string) {
	t.Helper()
	c = testcluster.Start(t)
	c.Apply(testcluster.DemoRoles)
	c.Apply("kind: node\nversion: v1\nmetadata: {name: iot, labels: {env: staging}}\nspec: {hostname: iot}\n")
	id, err := c.Svc.MintIdentity(context.Background(), c.URL, service.AdminUser, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(id)
	identity = filepath.Join(t.TempDir(), "admin.identity")
	if err := os.WriteFile(identity, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return c, env{t: t, server: c.URL, home: t.TempDir()}, identity
}

// invite adds a user with accessctl and logs them in with access through
// the invite token, as the README says.
func invite(t *testing.T, admin env, identity, name, roles string) env {
	t.Helper()
	out := admin.ok("", accessctlBin, "--identity", identity, "users", "add", name, "--roles", roles, "--format", "json")
	var res struct {
		User        string `json:"user"`
		InviteToken string `json:"invite_token"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.InviteToken == "" {
		t.Fatalf("users add output %q: %v", out, err)
	}
	e := env{t: t, server: admin.server, home: t.TempDir()}
	e.ok(name+"-password\n", accessBin, "login", "--user", name, "--invite", res.InviteToken, "--password-stdin")
	return e
}

func decodeRequests(t *testing.T, out string) []access.Request {
	t.Helper()
	var reqs []access.Request
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r access.Request
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("not a request JSON line: %q: %v", line, err)
		}
		reqs = append(reqs, r)
	}
	return reqs
}

// TestReadmeWalkthrough is the README's walk-through: alice requests dba
// and waits, bob approves, the request is APPROVED in `access request ls`
// and in `accessctl audit ls`.
func TestReadmeWalkthrough(t *testing.T) {
	_, admin, identity := setup(t)
	alice := invite(t, admin, identity, "alice", "requester")
	bob := invite(t, admin, identity, "bob", "reviewer")

	// alice waits for the review in the background, bob approves. Twice:
	// as a script sees it (a JSON line per state) and as a person does.
	var id string
	for _, format := range []string{"json", "text"} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		create := alice.cmd(ctx, "", accessBin, "request", "create", "--roles", "dba", "--reason", "ticket #123", "--duration", "1h", "--format", format)
		var createOut, createErr bytes.Buffer
		create.Stdout, create.Stderr = &createOut, &createErr
		if err := create.Start(); err != nil {
			t.Fatal(err)
		}

		var list []access.Request
		for deadline := time.Now().Add(10 * time.Second); len(list) == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if err := json.Unmarshal([]byte(bob.ok("", accessBin, "request", "ls", "--state", "pending", "--format", "json")), &list); err != nil {
				t.Fatal(err)
			}
		}
		if len(list) != 1 {
			t.Fatalf("bob's pending list: %v", list)
		}
		id = list[0].ID
		bob.ok("", accessBin, "request", "review", "--approve", "--reason", "go ahead", id)

		if err := create.Wait(); err != nil {
			t.Fatalf("alice's create: %v\n%s", err, createErr.String())
		}
		if format == "json" {
			lines := decodeRequests(t, createOut.String())
			if len(lines) != 2 || lines[0].State != access.StatePending || lines[1].State != access.StateApproved || lines[1].ID != id {
				t.Fatalf("create printed %d lines: %s", len(lines), createOut.String())
			}
			continue
		}
		// The person is told the outcome and the next command to run.
		for _, want := range []string{"Request " + id + " APPROVED", "Access to dba until", "access login --request-id " + id, "access creds " + id} {
			if !strings.Contains(createOut.String(), want) {
				t.Fatalf("create's output lacks %q:\n%s", want, createOut.String())
			}
		}
	}

	table := alice.ok("", accessBin, "request", "ls")
	if !strings.Contains(table, id) || !strings.Contains(table, "APPROVED") {
		t.Fatalf("alice's ls:\n%s", table)
	}
	audit := admin.ok("", accessctlBin, "--identity", identity, "audit", "ls", "--request", id)
	for _, want := range []string{"request.create", "request.review", "request.approved"} {
		if !strings.Contains(audit, want) {
			t.Fatalf("audit ls lacks %s:\n%s", want, audit)
		}
	}
}

func TestScriptingContract(t *testing.T) {
	c, admin, identity := setup(t)
	alice := invite(t, admin, identity, "alice", "requester")
	bob := invite(t, admin, identity, "bob", "reviewer")

	// A denied request exits 3.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	create := alice.cmd(ctx, "", accessBin, "request", "create", "--roles", "dba", "--reason", "please", "--format", "json")
	stdout, err := create.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := create.Start(); err != nil {
		t.Fatal(err)
	}
	// The first line is the request as created; the command then waits.
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	id := decodeRequests(t, line)[0].ID
	bob.ok("", accessBin, "request", "review", "--deny", "--reason", "not today", id)
	err = create.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("denied request: %v, want exit 3", err)
	}

	tests := []struct {
		name     string
		who      env
		stdin    string
		bin      string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"usage error exits 2", alice, "", accessBin, []string{"request", "review", id}, 2, "--approve or --deny"},
		{"unknown flag exits 2", alice, "", accessBin, []string{"request", "ls", "--bogus"}, 2, "unknown flag"},
		{"unknown role is named", alice, "", accessBin, []string{"request", "create", "--roles", "nope", "--reason", "x", "--nowait"}, 1, `unknown role "nope"`},
		{"login without a pin is refused", env{t: t, server: c.URL, home: t.TempDir()}, "x\n", accessBin, []string{"login", "--user", "alice", "--password-stdin"}, 1, "no CA pin"},
		{"wrong pin is refused", env{t: t, server: c.URL, home: t.TempDir()}, "alice-password\n", accessBin, []string{"login", "--user", "alice", "--password-stdin", "--ca-pin", "sha256:" + strings.Repeat("0", 64)}, 1, "pin"},
		{"bad YAML field is named", admin, "kind: role\nversion: v1\nmetadata: {name: x}\nspec: {allow: {nodelabels: {}}}\n", accessctlBin, []string{"--identity", identity, "create", "-f", "-"}, 1, `unknown field "nodelabels"`},
		{"alice is no admin", alice, "", accessctlBin, []string{"audit", "ls"}, 1, "forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.who.t = t
			_, errOut, code := tt.who.run(tt.stdin, tt.bin, tt.args...)
			if code != tt.wantCode || !strings.Contains(errOut, tt.wantErr) {
				t.Fatalf("exit %d, stderr %q; want exit %d naming %q", code, errOut, tt.wantCode, tt.wantErr)
			}
		})
	}

	// A known pin works for a first login with a password; the profile
	// then remembers the CA.
	fresh := env{t: t, server: c.URL, home: t.TempDir()}
	fresh.ok("alice-password\n", accessBin, "login", "--user", "alice", "--password-stdin", "--ca-pin", c.Pin)
	fresh.ok("alice-password\n", accessBin, "login", "--user", "alice", "--password-stdin")

	// Search prints the line to copy.
	search := alice.ok("", accessBin, "request", "search", "--kind", "node")
	if !strings.Contains(search, "access request create --resource /test.local/node/iot") {
		t.Fatalf("search output:\n%s", search)
	}
	// --nowait prints one line and exits 0.
	created := decodeRequests(t, alice.ok("", accessBin, "request", "create", "--resource", "/test.local/node/iot", "--reason", "debug", "--nowait", "--format", "json"))
	if len(created) != 1 || created[0].State != access.StatePending || strings.Join(created[0].Roles, ",") != "access" {
		t.Fatalf("nowait create: %+v", created)
	}
}

func TestPolicyAuthoringCommands(t *testing.T) {
	_, admin, identity := setup(t)
	admin.ok("", accessctlBin, "policy", "test", "../../policies/bundle")
	admin.ok("", accessctlBin, "policy", "check", "../../policies/bundle")

	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "bad.rego"), []byte("package gatehouse\n\ndeny contains x if {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := admin.run("", accessctlBin, "policy", "check", bad)
	if code != 1 || !strings.Contains(errOut, "bad.rego:") {
		t.Fatalf("check of a broken bundle: exit %d, %q", code, errOut)
	}
	// The server refuses it too, naming the place, and nothing changes.
	_, errOut, code = admin.run("", accessctlBin, "--identity", identity, "policy", "push", bad)
	if code != 1 || !strings.Contains(errOut, "bad.rego:") {
		t.Fatalf("push of a broken bundle: exit %d, %q", code, errOut)
	}
	_, errOut, code = admin.run("", accessctlBin, "--identity", identity, "policy", "show")
	if code != 1 || !strings.Contains(errOut, "not found") {
		t.Fatalf("show after a refused push: exit %d, %q", code, errOut)
	}
}
