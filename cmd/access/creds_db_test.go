package main_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/internal/mariadbtest"
	"github.com/gatehouse-dev/gatehouse/internal/pgtest"
)

// dbRoles: dba reaches the prod databases as alice or report: orders on
// PostgreSQL, analytics on MariaDB, and billing.
const dbRoles = `
kind: role
version: v1
metadata: {name: dba}
spec:
  allow:
    db_labels: {env: prod}
    db_users: [alice, report]
  options: {max_session_ttl: 1h}
---
kind: role
version: v1
metadata: {name: dba-requester}
spec:
  allow:
    request: {roles: [dba]}
---
kind: role
version: v1
metadata: {name: dba-reviewer}
spec:
  allow:
    review_requests: {roles: [dba]}
---
kind: db
version: v1
metadata: {name: orders, labels: {env: prod}}
spec: {protocol: postgres, uri: "127.0.0.1:5432"}
---
kind: db
version: v1
metadata: {name: analytics, labels: {env: prod}}
spec: {protocol: mysql, uri: "127.0.0.1:3306"}
---
kind: db
version: v1
metadata: {name: billing, labels: {env: prod}}
spec: {protocol: postgres, uri: "127.0.0.1:5433"}
`

// dbLogin logs in to a database server over TLS as user with a client
// certificate and key file, verifying the server, and returns the account
// current_user names.
type dbLogin func(user, certFile, keyFile string) (string, error)

// TestDBCredsAgainstServers is the whole path with the real binaries and a
// real PostgreSQL and MariaDB: alice's role request is approved, `access
// creds --db DB --db-user alice` writes db.crt/db.key/db-ca.pem with a key
// made on her machine, the DBA sets the server's client CA (ssl_ca_file,
// ssl-ca) from `accessctl ca export --type db --resource DB` and creates
// accounts that take a certificate of their own name only (pg_hba
// "hostssl ... cert", REQUIRE SUBJECT '/CN=alice'), and the client logs in
// as alice, verifying the server. The same certificate is refused for
// another user, a certificate for the other granted db user opens that
// user only, and a certificate for the billing database is refused.
func TestDBCredsAgainstServers(t *testing.T) {
	for _, db := range []struct {
		name, resource string
		// start runs the server trusting caPEM for client certificates,
		// with accounts alice, bob and report.
		start   func(t *testing.T, caPEM []byte) dbLogin
		account string // current_user of user %s
		// What the client reports for a certificate of another user when
		// logging in as %s, and for one of another database's CA ("": it
		// varies).
		wrongUser, foreignCA string
	}{{
		name:     "postgres",
		resource: "orders",
		start: func(t *testing.T, caPEM []byte) dbLogin {
			pg := pgtest.Start(t, pgtest.Options{ClientCAPEM: caPEM, HBA: pgtest.DefaultHBA})
			pg.CreateCertUsers(t, "alice", "bob", "report")
			return pg.CurrentUser
		},
		account:   "%s",
		wrongUser: `certificate authentication failed for user "%s"`,
		foreignCA: "unknown ca",
	}, {
		name:     "mariadb",
		resource: "analytics",
		start: func(t *testing.T, caPEM []byte) dbLogin {
			m := mariadbtest.Start(t, mariadbtest.Options{ClientCAPEM: caPEM})
			m.CreateCertUsers(t, "alice", "bob", "report")
			return m.CurrentUser
		},
		account:   "%s@%%",
		wrongUser: "Access denied for user '%s'",
	}} {
		t.Run(db.name, func(t *testing.T) {
			c, admin, identity := setup(t)
			c.Apply(dbRoles)
			alice := invite(t, admin, identity, "alice", "dba-requester")
			bob := invite(t, admin, identity, "bob", "dba-reviewer")

			id := decodeRequests(t, alice.ok("", accessBin, "request", "create", "--roles", "dba", "--reason", "migration", "--nowait", "--format", "json"))[0].ID
			bob.ok("", accessBin, "request", "review", "--approve", "--reason", "ok", id)

			dir := t.TempDir()
			out := alice.ok("", accessBin, "creds", id, "--db", db.resource, "--db-user", "alice", "--out", dir, "--format", "json")
			var res struct {
				Files      []string `json:"files"`
				Credential struct {
					Resource string `json:"resource"`
					Subject  string `json:"subject"`
				} `json:"credential"`
			}
			if err := json.Unmarshal([]byte(out), &res); err != nil || res.Credential.Resource != db.resource || res.Credential.Subject != "alice" {
				t.Fatalf("access creds output %q: %v", out, err)
			}
			for name, mode := range map[string]os.FileMode{"db.key": 0o600, "db.crt": 0o644, "db-ca.pem": 0o644} {
				st, err := os.Stat(filepath.Join(dir, name))
				if err != nil || st.Mode().Perm() != mode {
					t.Fatalf("%s: %v, mode %v want %v", name, err, st, mode)
				}
			}
			if _, errOut, code := alice.run("", accessBin, "creds", id, "--db", db.resource, "--db-user", "root", "--out", t.TempDir()); code != 1 || !strings.Contains(errOut, `"root"`) {
				t.Fatalf("db user not granted: exit %d %q", code, errOut)
			}

			caPEM := admin.ok("", accessctlBin, "--identity", identity, "ca", "export", "--type", "db", "--resource", db.resource)
			if ca, _ := os.ReadFile(filepath.Join(dir, "db-ca.pem")); string(ca) != caPEM {
				t.Fatalf("db-ca.pem differs from accessctl ca export:\n%s\n%s", ca, caPEM)
			}
			login := db.start(t, []byte(caPEM))
			// as logs in as user with the certificate and key `access creds`
			// wrote to credsDir.
			as := func(user, credsDir string) (string, error) {
				return login(user, filepath.Join(credsDir, "db.crt"), filepath.Join(credsDir, "db.key"))
			}
			if got, err := as("alice", dir); err != nil || got != fmt.Sprintf(db.account, "alice") {
				t.Fatalf("alice with the issued certificate: %v: %q", err, got)
			}
			if got, err := as("bob", dir); err == nil || !strings.Contains(err.Error(), fmt.Sprintf(db.wrongUser, "bob")) {
				t.Fatalf("bob with alice's certificate: %v: %q", err, got)
			}

			// A certificate for the other granted db user opens that user only.
			report := t.TempDir()
			alice.ok("", accessBin, "creds", id, "--db", db.resource, "--db-user", "report", "--out", report)
			if got, err := as("alice", report); err == nil || !strings.Contains(err.Error(), fmt.Sprintf(db.wrongUser, "alice")) {
				t.Fatalf("alice with the certificate for report: %v: %q", err, got)
			}
			if got, err := as("report", report); err != nil || got != fmt.Sprintf(db.account, "report") {
				t.Fatalf("report with its certificate: %v: %q", err, got)
			}

			billing := t.TempDir()
			alice.ok("", accessBin, "creds", id, "--db", "billing", "--db-user", "alice", "--out", billing)
			if got, err := as("alice", billing); err == nil || !strings.Contains(err.Error(), db.foreignCA) {
				t.Fatalf("%s with a certificate for billing: %v: %q", db.resource, err, got)
			}
		})
	}
}

// TestKubeAndAppCreds: `access creds --kube` writes a complete kubeconfig
// holding the key made here, the issued certificate and the cluster's
// server and CA; `--app` writes the JWT.
func TestKubeAndAppCreds(t *testing.T) {
	c, admin, identity := setup(t)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, srvCA, err := ca.NewCACertificate(srvKey, "apiserver CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	caJSON, _ := json.Marshal(string(srvCA))
	c.Apply(`
kind: role
version: v1
metadata: {name: k8s}
spec:
  allow:
    kubernetes_labels: {env: prod}
    kubernetes_groups: [viewers]
    app_labels: {env: prod}
---
kind: role
version: v1
metadata: {name: k8s-requester}
spec: {allow: {request: {roles: [k8s]}}}
---
kind: role
version: v1
metadata: {name: k8s-reviewer}
spec: {allow: {review_requests: {roles: [k8s]}}}
---
kind: kube_cluster
version: v1
metadata: {name: prod-k8s, labels: {env: prod}}
spec: {server: "https://127.0.0.1:6443", ca_pem: ` + string(caJSON) + `}
---
kind: app
version: v1
metadata: {name: grafana, labels: {env: prod}}
spec: {uri: "http://grafana:3000"}
`)
	alice := invite(t, admin, identity, "alice", "k8s-requester")
	bob := invite(t, admin, identity, "bob", "k8s-reviewer")
	id := decodeRequests(t, alice.ok("", accessBin, "request", "create", "--roles", "k8s", "--reason", "incident", "--nowait", "--format", "json"))[0].ID
	bob.ok("", accessBin, "request", "review", "--approve", id)

	if _, errOut, code := alice.run("", accessBin, "creds", id, "--db", "orders"); code != 2 || !strings.Contains(errOut, "--db-user") {
		t.Fatalf("--db without --db-user: exit %d %q", code, errOut)
	}
	if _, errOut, code := alice.run("", accessBin, "creds", id, "--kube", "prod-k8s", "--app", "grafana"); code != 2 || !strings.Contains(errOut, "one target") {
		t.Fatalf("two targets: exit %d %q", code, errOut)
	}

	dir := t.TempDir()
	alice.ok("", accessBin, "creds", id, "--kube", "prod-k8s", "--out", dir)
	raw, err := os.ReadFile(filepath.Join(dir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	var kc struct {
		Clusters []struct {
			Cluster struct {
				Server string `json:"server"`
				CAData []byte `json:"certificate-authority-data"`
			} `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			User struct {
				Cert []byte `json:"client-certificate-data"`
				Key  []byte `json:"client-key-data"`
			} `json:"user"`
		} `json:"users"`
		CurrentContext string `json:"current-context"`
	}
	if err := yaml.Unmarshal(raw, &kc); err != nil || len(kc.Clusters) != 1 || len(kc.Users) != 1 {
		t.Fatalf("kubeconfig %s: %v", raw, err)
	}
	if kc.Clusters[0].Cluster.Server != "https://127.0.0.1:6443" || string(kc.Clusters[0].Cluster.CAData) != string(srvCA) || kc.CurrentContext != "alice@prod-k8s" {
		t.Fatalf("kubeconfig cluster:\n%s", raw)
	}
	pair, err := tls.X509KeyPair(kc.Users[0].User.Cert, kc.Users[0].User.Key)
	if err != nil {
		t.Fatalf("the kubeconfig's certificate and key do not match: %v", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || leaf.Subject.CommonName != "alice" || strings.Join(leaf.Subject.Organization, ",") != "viewers" {
		t.Fatalf("kube certificate subject %v: %v", leaf.Subject, err)
	}

	alice.ok("", accessBin, "creds", id, "--app", "grafana", "--out", dir)
	tok, err := os.ReadFile(filepath.Join(dir, "app.jwt"))
	if err != nil || strings.Count(strings.TrimSpace(string(tok)), ".") != 2 {
		t.Fatalf("app.jwt %q: %v", tok, err)
	}
	jwks := admin.ok("", accessctlBin, "--identity", identity, "ca", "export", "--type", "app")
	if !strings.Contains(jwks, `"kid":"gatehouse-app-v1"`) {
		t.Fatalf("app export %s", jwks)
	}
}
