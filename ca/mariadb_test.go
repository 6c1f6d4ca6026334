package ca_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/internal/mariadbtest"
)

// mariadbConnect logs in over TLS to 127.0.0.1 as user with a client
// certificate, verifying the server, and returns select current_user().
func mariadbConnect(t *testing.T, s *mariadbtest.Server, user string, certPEM, keyPEM []byte) (string, error) {
	t.Helper()
	d := t.TempDir()
	crt := x5Write(t, filepath.Join(d, "client.crt"), certPEM)
	key := x5Write(t, filepath.Join(d, "client.key"), keyPEM)
	return s.Cert(user, crt, key, "select current_user()")
}

func TestMariaDBDBCert(t *testing.T) {
	orders := x5NewCA(t, "gatehouse db orders")
	billing := x5NewCA(t, "gatehouse db billing")
	s := mariadbtest.Start(t, mariadbtest.Options{ClientCAPEM: orders.pem})
	setup := `CREATE USER 'alice'@'%' REQUIRE SUBJECT '/CN=alice';
CREATE USER 'bob'@'%' REQUIRE SUBJECT '/CN=bob';
CREATE USER 'carol'@'%' REQUIRE X509;
CREATE USER 'dave'@'%' REQUIRE ISSUER '/CN=gatehouse db orders' AND SUBJECT '/CN=dave';`
	if out, err := s.Root(setup); err != nil {
		t.Fatalf("create users: %v: %s", err, out)
	}

	for _, kind := range []string{"p256", "rsa2048", "ed25519"} {
		t.Run(kind, func(t *testing.T) {
			k := x5Key(t, kind)
			for _, u := range []string{"alice", "carol", "dave"} {
				certPEM, err := ca.IssueDBCert(orders.signer, orders.cert, k.Public(), u, x5Window(time.Hour))
				if err != nil {
					t.Fatal(err)
				}
				out, err := mariadbConnect(t, s, u, certPEM, x5KeyPEM(t, k))
				if err != nil || out != u+"@%" {
					t.Errorf("%s with the issued certificate: %v: %q", u, err, out)
				}
			}
		})
	}

	k := x5Key(t, "p256")
	keyPEM := x5KeyPEM(t, k)
	alice, err := ca.IssueDBCert(orders.signer, orders.cert, k.Public(), "alice", x5Window(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// REQUIRE SUBJECT '/CN=bob' with alice's certificate.
	if out, err := mariadbConnect(t, s, "bob", alice, keyPEM); err == nil || !strings.Contains(err.Error(), "Access denied") {
		t.Errorf("bob with alice's certificate: %v: %q", err, out)
	} else {
		t.Logf("wrong subject refused: %v", err)
	}
	// A certificate of another database's CA, even for a REQUIRE X509 user.
	foreign, err := ca.IssueDBCert(billing.signer, billing.cert, k.Public(), "carol", x5Window(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := mariadbConnect(t, s, "carol", foreign, keyPEM); err == nil {
		t.Errorf("certificate of another database's CA accepted: %q", out)
	} else {
		t.Logf("other database's CA refused: %v", err)
	}
	// An expired certificate.
	now := time.Now()
	expired, err := ca.IssueDBCert(orders.signer, orders.cert, k.Public(), "alice", ca.Validity{NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := mariadbConnect(t, s, "alice", expired, keyPEM); err == nil {
		t.Errorf("expired certificate accepted: %q", out)
	} else {
		t.Logf("expired certificate refused: %v", err)
	}
}
