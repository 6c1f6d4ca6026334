package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// candidateBundle requires a ticket number in the reason, caps ticket
// #123 at 30m, and asks a ticket API about urgent requests: a call the
// recorded decisions never made, so those cannot be replayed.
const candidateBundle = `package gatehouse

deny contains "cite a ticket (#NUMBER) in the reason" if {
	not regex.match(` + "`#[0-9]+`" + `, input.request.reason)
}

max_ttl contains "30m" if input.request.reason == "ticket #123"

auto_approve contains "the ticket API says it is urgent" if {
	startswith(input.request.reason, "urgent")
	http.send({"method": "GET", "url": "http://127.0.0.1:9/tickets/7"}).status_code == 200
}
`

func TestPolicyReplay(t *testing.T) {
	_, admin, identity := setup(t)
	alice := invite(t, admin, identity, "alice", "requester")

	ids := map[string]string{} // reason → request ID
	for _, reason := range []string{"please", "ticket #123", "urgent #7"} {
		created := decodeRequests(t, alice.ok("", accessBin, "request", "create", "--roles", "dba", "--reason", reason, "--nowait", "--format", "json"))
		ids[reason] = created[0].ID
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "candidate.rego"), []byte(candidateBundle), 0o644); err != nil {
		t.Fatal(err)
	}

	out, errOut, code := admin.run("", accessctlBin, "--identity", identity, "policy", "replay", "--since", "1h", dir, "--format", "json")
	if code != 0 {
		t.Fatalf("replay: exit %d\n%s%s", code, out, errOut)
	}
	type decision struct {
		Outcome string   `json:"outcome"`
		Reasons []string `json:"reasons"`
		MaxTTL  string   `json:"max_ttl"`
	}
	type line struct {
		Type      string   `json:"type"`
		RequestID string   `json:"request_id"`
		User      string   `json:"user"`
		Roles     []string `json:"roles"`
		Changed   []string `json:"changed"`
		Recorded  decision `json:"recorded"`
		Candidate decision `json:"candidate"`
	}
	changes := map[string]line{}
	var summary map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var x line
		if err := json.Unmarshal([]byte(l), &x); err != nil {
			// The summary's "changed" is a count, not a list.
			if err := json.Unmarshal([]byte(l), &summary); err != nil || summary["type"] != "summary" {
				t.Fatalf("not a replay JSON line: %q", l)
			}
			continue
		}
		if x.Type != "change" {
			t.Fatalf("unexpected line %q", l)
		}
		changes[x.RequestID] = x
	}
	if summary == nil || summary["replayed"] != 2.0 || summary["changed"] != 2.0 || summary["failed"] != 1.0 {
		t.Fatalf("summary %v; want 2 replayed, 2 changed, 1 failed\n%s", summary, out)
	}
	if len(changes) != 2 {
		t.Fatalf("changes: %v", changes)
	}
	please := changes[ids["please"]]
	if please.User != "alice" || strings.Join(please.Roles, ",") != "dba" || strings.Join(please.Changed, ",") != "outcome" ||
		please.Recorded.Outcome != "review" || please.Candidate.Outcome != "deny" ||
		strings.Join(please.Candidate.Reasons, ";") != "cite a ticket (#NUMBER) in the reason" {
		t.Fatalf("the request without a ticket: %+v", please)
	}
	ticket := changes[ids["ticket #123"]]
	if strings.Join(ticket.Changed, ",") != "max_ttl" || ticket.Candidate.Outcome != "review" || ticket.Candidate.MaxTTL != "30m" {
		t.Fatalf("the request with ticket #123: %+v", ticket)
	}
	// The urgent one would need a call that was never recorded: reported,
	// never made.
	if !strings.Contains(errOut, ids["urgent #7"]) || !strings.Contains(errOut, "replay") {
		t.Fatalf("stderr does not name the unreplayable request %s: %q", ids["urgent #7"], errOut)
	}

	// Text: the changes, then the summary line.
	text := admin.ok("", accessctlBin, "--identity", identity, "policy", "replay", "--since", "7d", dir)
	for _, want := range []string{ids["please"], "review → deny", "max_ttl: none → 30m", "2 decisions replayed, 2 would change, 1 could not be replayed"} {
		if !strings.Contains(text, want) {
			t.Fatalf("replay text lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, ids["urgent #7"]) {
		t.Fatalf("the unreplayable request is on stdout:\n%s", text)
	}
	// A window that is no duration is a usage error.
	if _, errOut, code := admin.run("", accessctlBin, "--identity", identity, "policy", "replay", "--since", "soon", dir); code != 2 || !strings.Contains(errOut, "--since") {
		t.Fatalf("bad --since: exit %d, %q", code, errOut)
	}

	// eval --explain says which rule decided and which expression failed.
	input := filepath.Join(t.TempDir(), "input.json")
	in := `{"request": {"id": "r1", "user": "alice", "roles": ["dba"], "resources": [], "reason": "please", "duration": "1h",
		"suggested_reviewers": [], "annotations": {}},
		"user": {"name": "alice", "roles": ["requester"], "traits": {}}, "now": "2026-11-21T10:00:00Z", "source": "cli"}`
	if err := os.WriteFile(input, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	why := admin.ok("", accessctlBin, "policy", "eval", "--input", input, "--dir", dir, "--explain")
	for _, want := range []string{`"cite a ticket (#NUMBER) in the reason"`, "deny (candidate.rego:3): applies", "max_ttl (candidate.rego:7): does not apply",
		`failed at candidate.rego:7: input.request.reason == "ticket #123"`, "auto_approve (candidate.rego:9): does not apply", `startswith(input.request.reason, "urgent")`} {
		if !strings.Contains(why, want) {
			t.Fatalf("eval --explain lacks %q:\n%s", want, why)
		}
	}
	fails := admin.ok("", accessctlBin, "policy", "eval", "--input", input, "--dir", dir, "--explain=fails")
	if !strings.Contains(fails, "candidate.rego:7") || !strings.Contains(fails, "Fail") {
		t.Fatalf("eval --explain=fails:\n%s", fails)
	}
}
