package ca_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/internal/pgtest"
)

// pgServer is internal/pgtest's PostgreSQL: ssl_ca_file = the database
// CA, pg_hba "hostssl all all 127.0.0.1/32 cert".
type pgServer struct{ *pgtest.Server }

func pgStart(t *testing.T, dbCAPEM []byte) *pgServer {
	t.Helper()
	return &pgServer{pgtest.Start(t, pgtest.Options{ClientCAPEM: dbCAPEM})}
}

// psqlLocal runs SQL as the postgres superuser over the unix socket.
func (s *pgServer) psqlLocal(sql string) (string, error) { return s.PSQLLocal(sql) }

// psqlCert connects over TLS to 127.0.0.1 as user with a client
// certificate and key, verifying the server (sslmode=verify-full), and
// returns select current_user.
func (s *pgServer) psqlCert(t *testing.T, user string, certPEM, keyPEM []byte) (string, error) {
	t.Helper()
	d := t.TempDir()
	crt := x5Write(t, filepath.Join(d, "client.crt"), certPEM)
	key := x5Write(t, filepath.Join(d, "client.key"), keyPEM)
	return s.PSQLCert(user, crt, key, "select current_user")
}

func TestPostgresDBCert(t *testing.T) {
	orders := x5NewCA(t, "gatehouse db orders")
	billing := x5NewCA(t, "gatehouse db billing")
	s := pgStart(t, orders.pem)
	if out, err := s.psqlLocal("create role alice login; create role bob login"); err != nil {
		t.Fatalf("create roles: %v: %s", err, out)
	}

	// Every supported client key type logs in as the granted user.
	for _, kind := range []string{"p256", "p384", "ed25519", "rsa2048"} {
		t.Run(kind, func(t *testing.T) {
			k := x5Key(t, kind)
			certPEM, err := ca.IssueDBCert(orders.signer, orders.cert, k.Public(), "alice", x5Window(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			out, err := s.psqlCert(t, "alice", certPEM, x5KeyPEM(t, k))
			if err != nil || out != "alice" {
				t.Fatalf("alice with her certificate: %v: %s", err, out)
			}
		})
	}

	k := x5Key(t, "p256")
	keyPEM := x5KeyPEM(t, k)
	alice, err := ca.IssueDBCert(orders.signer, orders.cert, k.Public(), "alice", x5Window(time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	// Another user name with alice's certificate: the CN does not match.
	out, err := s.psqlCert(t, "bob", alice, keyPEM)
	if err == nil || !strings.Contains(err.Error(), `certificate authentication failed for user "bob"`) {
		t.Errorf("bob with alice's certificate: %v: %s", err, out)
	}

	// A certificate issued by another database's CA.
	foreign, err := ca.IssueDBCert(billing.signer, billing.cert, k.Public(), "alice", x5Window(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	out, err = s.psqlCert(t, "alice", foreign, keyPEM)
	if err == nil || !strings.Contains(err.Error(), "unknown ca") {
		t.Errorf("certificate of another database's CA: %v: %s", err, out)
	} else {
		t.Logf("other database's CA refused: %v", err)
	}

	// An expired certificate.
	now := time.Now()
	expired, err := ca.IssueDBCert(orders.signer, orders.cert, k.Public(), "alice", ca.Validity{NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	out, err = s.psqlCert(t, "alice", expired, keyPEM)
	if err == nil || !strings.Contains(err.Error(), "certificate expired") {
		t.Errorf("expired certificate: %v: %s", err, out)
	} else {
		t.Logf("expired certificate refused: %v", err)
	}

}
