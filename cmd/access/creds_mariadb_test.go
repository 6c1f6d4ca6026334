package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/mariadbtest"
)

const mariadbRoles = `
kind: role
version: v1
metadata: {name: analyst}
spec:
  allow:
    db_labels: {engine: mariadb}
    db_users: [alice, report]
  options: {max_session_ttl: 1h}
---
kind: role
version: v1
metadata: {name: analyst-requester}
spec:
  allow:
    request: {roles: [analyst]}
---
kind: role
version: v1
metadata: {name: analyst-reviewer}
spec:
  allow:
    review_requests: {roles: [analyst]}
---
kind: db
version: v1
metadata: {name: analytics, labels: {engine: mariadb}}
spec: {protocol: mysql, uri: "127.0.0.1:3306"}
`

// TestDBCredsAgainstMariaDB is the whole path with the real binaries and a
// real MariaDB: alice's role request is approved, `access creds --db
// analytics --db-user alice` writes db.crt/db.key/db-ca.pem, the DBA sets
// ssl-ca from `accessctl ca export --type db --resource analytics` and
// creates alice REQUIRE SUBJECT '/CN=alice', and the mariadb client with
// the written files logs in as alice. A certificate is refused for any
// other database user, including one issued for another granted db user.
func TestDBCredsAgainstMariaDB(t *testing.T) {
	c, admin, identity := setup(t)
	c.Apply(mariadbRoles)
	alice := invite(t, admin, identity, "alice", "analyst-requester")
	bob := invite(t, admin, identity, "bob", "analyst-reviewer")

	id := decodeRequests(t, alice.ok("", accessBin, "request", "create", "--roles", "analyst", "--reason", "quarterly report", "--nowait", "--format", "json"))[0].ID
	bob.ok("", accessBin, "request", "review", "--approve", "--reason", "ok", id)

	dir := t.TempDir()
	alice.ok("", accessBin, "creds", id, "--db", "analytics", "--db-user", "alice", "--out", dir)
	crt, key := filepath.Join(dir, "db.crt"), filepath.Join(dir, "db.key")

	caPEM := admin.ok("", accessctlBin, "--identity", identity, "ca", "export", "--type", "db", "--resource", "analytics")
	if ca, _ := os.ReadFile(filepath.Join(dir, "db-ca.pem")); string(ca) != caPEM {
		t.Fatalf("db-ca.pem differs from accessctl ca export:\n%s\n%s", ca, caPEM)
	}
	db := mariadbtest.Start(t, mariadbtest.Options{ClientCAPEM: []byte(caPEM)})
	if out, err := db.Root(`CREATE USER 'alice'@'%' REQUIRE SUBJECT '/CN=alice';
CREATE USER 'bob'@'%' REQUIRE SUBJECT '/CN=bob';
CREATE USER 'report'@'%' REQUIRE SUBJECT '/CN=report';`); err != nil {
		t.Fatalf("create users: %v: %s", err, out)
	}

	if got, err := db.Cert("alice", crt, key, "select current_user()"); err != nil || got != "alice@%" {
		t.Fatalf("mariadb as alice with the issued certificate: %v: %q", err, got)
	}
	if got, err := db.Cert("bob", crt, key, "select current_user()"); err == nil || !strings.Contains(err.Error(), "Access denied") {
		t.Fatalf("mariadb as bob with alice's certificate: %v: %q", err, got)
	}

	// A certificate for the other granted db user opens that user only.
	other := t.TempDir()
	alice.ok("", accessBin, "creds", id, "--db", "analytics", "--db-user", "report", "--out", other)
	rcrt, rkey := filepath.Join(other, "db.crt"), filepath.Join(other, "db.key")
	if got, err := db.Cert("alice", rcrt, rkey, "select current_user()"); err == nil || !strings.Contains(err.Error(), "Access denied") {
		t.Fatalf("mariadb as alice with the certificate for report: %v: %q", err, got)
	}
	if got, err := db.Cert("report", rcrt, rkey, "select current_user()"); err != nil || got != "report@%" {
		t.Fatalf("mariadb as report with its certificate: %v: %q", err, got)
	}
}
