package ca_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/ca"
)

// mariadbServer is a MariaDB started by a test on loopback with TLS: the
// server certificate from a test server CA, ssl-ca = the database CA that
// client certificates must chain to.
type mariadbServer struct {
	client, sock, srvCA string
	port                int
}

func mariadbStart(t *testing.T, dbCAPEM []byte) *mariadbServer {
	t.Helper()
	mariadbd := x5Need(t, "mariadbd", "/usr/sbin/mariadbd")
	installDB := x5Need(t, "mariadb-install-db")
	client := x5Need(t, "mariadb")

	dir, err := os.MkdirTemp("", "gatehouse-mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	srvCA, srvCert, srvKey := x5ServerTLS(t)
	s := &mariadbServer{client: client, sock: filepath.Join(dir, "mysqld.sock"), port: x5FreePort(t)}
	s.srvCA = x5Write(t, filepath.Join(dir, "server-ca.crt"), srvCA)
	crt := x5Write(t, filepath.Join(dir, "server.crt"), srvCert)
	key := x5Write(t, filepath.Join(dir, "server.key"), srvKey)
	dbCA := x5Write(t, filepath.Join(dir, "db-ca.crt"), dbCAPEM)
	data := filepath.Join(dir, "data")

	// mariadbd runs as the current user; as root it must be told so.
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(installDB, "--no-defaults", "--user="+me.Username, "--datadir="+data,
		"--auth-root-authentication-method=normal", "--skip-test-db").CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	errLog := filepath.Join(dir, "error.log")
	srv := exec.Command(mariadbd, "--no-defaults", "--user="+me.Username, "--datadir="+data,
		"--socket="+s.sock, "--port="+strconv.Itoa(s.port), "--bind-address=127.0.0.1",
		"--pid-file="+filepath.Join(dir, "mariadbd.pid"), "--log-error="+errLog,
		"--skip-name-resolve", "--skip-log-bin", "--innodb-buffer-pool-size=16M",
		"--ssl-ca="+dbCA, "--ssl-cert="+crt, "--ssl-key="+key)
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	srv.Stdout, srv.Stderr = &out, &out
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	logs := func() string {
		b, _ := os.ReadFile(errLog)
		return out.String() + string(b)
	}
	t.Cleanup(func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = srv.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("mariadbd log:\n%s", logs())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := s.root("select 1")
		if err == nil && res == "1" {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("mariadbd exited: %v\n%s", err, logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mariadbd not ready: %v %s\n%s", err, res, logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	return s
}

// root runs SQL as root over the unix socket.
func (s *mariadbServer) root(sql string) (string, error) {
	out, err := exec.Command(s.client, "--no-defaults", "--protocol=SOCKET", "-S", s.sock, "-u", "root",
		"--connect-timeout=5", "-N", "-B", "-e", sql).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// connect logs in over TLS to 127.0.0.1 as user with a client certificate,
// verifying the server, and returns select current_user().
func (s *mariadbServer) connect(t *testing.T, user string, certPEM, keyPEM []byte) (string, error) {
	t.Helper()
	d := t.TempDir()
	crt := x5Write(t, filepath.Join(d, "client.crt"), certPEM)
	key := x5Write(t, filepath.Join(d, "client.key"), keyPEM)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.client, "--no-defaults", "--protocol=TCP", "-h", "127.0.0.1", "-P", strconv.Itoa(s.port),
		"-u", user, "--ssl", "--ssl-verify-server-cert", "--ssl-ca="+s.srvCA, "--ssl-cert="+crt, "--ssl-key="+key,
		"--connect-timeout=5", "-N", "-B", "-e", "select current_user()")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), err
}

func TestMariaDBDBCert(t *testing.T) {
	orders := x5NewCA(t, "gatehouse db orders")
	billing := x5NewCA(t, "gatehouse db billing")
	s := mariadbStart(t, orders.pem)
	setup := `CREATE USER 'alice'@'%' REQUIRE SUBJECT '/CN=alice';
CREATE USER 'bob'@'%' REQUIRE SUBJECT '/CN=bob';
CREATE USER 'carol'@'%' REQUIRE X509;
CREATE USER 'dave'@'%' REQUIRE ISSUER '/CN=gatehouse db orders' AND SUBJECT '/CN=dave';`
	if out, err := s.root(setup); err != nil {
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
				out, err := s.connect(t, u, certPEM, x5KeyPEM(t, k))
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
	if out, err := s.connect(t, "bob", alice, keyPEM); err == nil || !strings.Contains(err.Error(), "Access denied") {
		t.Errorf("bob with alice's certificate: %v: %q", err, out)
	} else {
		t.Logf("wrong subject refused: %v", err)
	}
	// A certificate of another database's CA, even for a REQUIRE X509 user.
	foreign, err := ca.IssueDBCert(billing.signer, billing.cert, k.Public(), "carol", x5Window(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := s.connect(t, "carol", foreign, keyPEM); err == nil {
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
	if out, err := s.connect(t, "alice", expired, keyPEM); err == nil {
		t.Errorf("expired certificate accepted: %q", out)
	} else {
		t.Logf("expired certificate refused: %v", err)
	}
}
