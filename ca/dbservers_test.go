package ca_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/internal/mariadbtest"
	"github.com/gatehouse-dev/gatehouse/internal/pgtest"
)

// dbLogin logs in to a database server over TLS as user with a client
// certificate and key file, verifying the server, and returns the account
// current_user names.
type dbLogin func(user, certFile, keyFile string) (string, error)

// startPostgres runs internal/pgtest's PostgreSQL with ssl_ca_file = caPEM
// and pg_hba "hostssl all all 127.0.0.1/32 cert" (the CN must be the user
// name), with roles alice and bob.
func startPostgres(t *testing.T, caPEM []byte) dbLogin {
	s := pgtest.Start(t, pgtest.Options{ClientCAPEM: caPEM})
	s.CreateCertUsers(t, "alice", "bob")
	return s.CurrentUser
}

// startMariaDB runs internal/mariadbtest's MariaDB with ssl-ca = caPEM and
// an account for each way to require a certificate: alice and bob by
// subject, carol any certificate of the CA, dave by issuer and subject.
func startMariaDB(t *testing.T, caPEM []byte) dbLogin {
	s := mariadbtest.Start(t, mariadbtest.Options{ClientCAPEM: caPEM})
	s.CreateCertUsers(t, "alice", "bob")
	if out, err := s.Root(`CREATE USER 'carol'@'%' REQUIRE X509;
CREATE USER 'dave'@'%' REQUIRE ISSUER '/CN=gatehouse db orders' AND SUBJECT '/CN=dave';`); err != nil {
		t.Fatalf("create users: %v: %s", err, out)
	}
	return s.CurrentUser
}

// TestDBCertAgainstServers: a certificate from ca.IssueDBCert logs in to a
// real PostgreSQL and a real MariaDB that trust the orders database's CA,
// with every supported client key type; the servers refuse a certificate
// for another user, one from another database's CA and an expired one.
func TestDBCertAgainstServers(t *testing.T) {
	for _, db := range []struct {
		name     string
		start    func(t *testing.T, caPEM []byte) dbLogin
		keyKinds []string
		// users log in with a certificate for their own name, as account
		// (a format of the user name).
		users   []string
		account string
		// foreignUser tries a certificate from another database's CA.
		foreignUser string
		// What the client reports for alice's certificate used as bob, the
		// foreign certificate and an expired one; "" where it varies (the
		// mariadb client sometimes only sees the connection reset).
		wrongUser, foreignCA, expired string
	}{{
		name:        "postgres",
		start:       startPostgres,
		keyKinds:    []string{"p256", "p384", "ed25519", "rsa2048"},
		users:       []string{"alice"},
		account:     "%s",
		foreignUser: "alice",
		wrongUser:   `certificate authentication failed for user "bob"`,
		foreignCA:   "unknown ca",
		expired:     "certificate expired",
	}, {
		name:     "mariadb",
		start:    startMariaDB,
		keyKinds: []string{"p256", "rsa2048", "ed25519"},
		users:    []string{"alice", "carol", "dave"},
		account:  "%s@%%",
		// REQUIRE X509 takes any certificate of the CA it trusts, and
		// still not another database's.
		foreignUser: "carol",
		wrongUser:   "Access denied",
	}} {
		t.Run(db.name, func(t *testing.T) {
			orders := x5NewCA(t, "gatehouse db orders")
			billing := x5NewCA(t, "gatehouse db billing")
			login := db.start(t, orders.pem)
			connect := func(t *testing.T, user string, certPEM, keyPEM []byte) (string, error) {
				t.Helper()
				d := t.TempDir()
				return login(user, x5Write(t, filepath.Join(d, "client.crt"), certPEM), x5Write(t, filepath.Join(d, "client.key"), keyPEM))
			}

			for _, kind := range db.keyKinds {
				t.Run(kind, func(t *testing.T) {
					k := x5Key(t, kind)
					for _, u := range db.users {
						certPEM, err := ca.IssueDBCert(orders.signer, orders.cert, k.Public(), u, x5Window(time.Hour))
						if err != nil {
							t.Fatal(err)
						}
						if out, err := connect(t, u, certPEM, x5KeyPEM(t, k)); err != nil || out != fmt.Sprintf(db.account, u) {
							t.Errorf("%s with the issued certificate: %v: %q", u, err, out)
						}
					}
				})
			}

			k := x5Key(t, "p256")
			issue := func(auth x5Authority, user string, v ca.Validity) []byte {
				certPEM, err := ca.IssueDBCert(auth.signer, auth.cert, k.Public(), user, v)
				if err != nil {
					t.Fatal(err)
				}
				return certPEM
			}
			now := time.Now()
			for _, tt := range []struct {
				what, user string
				certPEM    []byte
				says       string
			}{
				{"bob with alice's certificate", "bob", issue(orders, "alice", x5Window(time.Hour)), db.wrongUser},
				{"a certificate of another database's CA", db.foreignUser, issue(billing, db.foreignUser, x5Window(time.Hour)), db.foreignCA},
				{"an expired certificate", "alice", issue(orders, "alice", ca.Validity{NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)}), db.expired},
			} {
				if out, err := connect(t, tt.user, tt.certPEM, x5KeyPEM(t, k)); err == nil || !strings.Contains(err.Error(), tt.says) {
					t.Errorf("%s: %v: %q, want refused saying %q", tt.what, err, out, tt.says)
				} else {
					t.Logf("%s refused: %v", tt.what, err)
				}
			}
		})
	}
}
