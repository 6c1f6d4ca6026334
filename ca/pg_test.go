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

// pgServer is a PostgreSQL started by a test on loopback: ssl on with a
// server certificate from a test server CA, ssl_ca_file = the database CA,
// and pg_hba "hostssl all all 127.0.0.1/32 cert" (local trust for setup).
type pgServer struct {
	bin, dir, sock, srvCA string
	port                  int
}

// pgStart runs initdb and postgres in a temp dir. PostgreSQL refuses to run
// as root, so as root both run as the "postgres" OS user (the package's).
func pgStart(t *testing.T, dbCAPEM []byte) *pgServer {
	t.Helper()
	initdb := x5Need(t, os.Getenv("GATEHOUSE_PG_BIN")+"/initdb", "/usr/lib/postgresql/*/bin/initdb", "initdb")
	bin := filepath.Dir(initdb)

	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the postgres OS user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// Not t.TempDir: its parent is 0700 root, which the postgres user
	// cannot traverse.
	dir, err := os.MkdirTemp("", "gatehouse-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	srvCA, srvCert, srvKey := x5ServerTLS(t)
	s := &pgServer{bin: bin, dir: dir, sock: dir, port: x5FreePort(t)}
	s.srvCA = x5Write(t, filepath.Join(dir, "server-ca.crt"), srvCA)
	files := map[string][]byte{"server.crt": srvCert, "server.key": srvKey, "db-ca.crt": dbCAPEM}
	for name, data := range files {
		x5Write(t, filepath.Join(dir, name), data)
	}
	if cred != nil {
		for _, p := range []string{dir, filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), filepath.Join(dir, "db-ca.crt")} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				t.Fatal(err)
			}
		}
	}
	run := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "LC_ALL=C", "HOME="+dir)
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		return cmd
	}
	data := filepath.Join(dir, "data")
	if out, err := run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	conf := fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
ssl = on
ssl_cert_file = '%s/server.crt'
ssl_key_file = '%s/server.key'
ssl_ca_file = '%s/db-ca.crt'
fsync = off
shared_buffers = 16MB
max_connections = 20
log_connections = on
`, s.port, dir, dir, dir, dir)
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(conf); err != nil {
		t.Fatal(err)
	}
	f.Close()
	hba := "local all all trust\nhostssl all all 127.0.0.1/32 cert\n"
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		os.Chown(filepath.Join(data, "pg_hba.conf"), int(cred.Uid), int(cred.Gid))
	}

	var log bytes.Buffer
	srv := run("postgres", "-D", data)
	srv.Stdout, srv.Stderr = &log, &log
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	t.Cleanup(func() {
		_ = srv.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = srv.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("postgres log:\n%s", log.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := s.psqlLocal("select 1")
		if err == nil && out == "1" {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("postgres exited: %v\n%s", err, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("postgres not ready: %v %s\n%s", err, out, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

// psqlLocal runs SQL as the postgres superuser over the unix socket.
func (s *pgServer) psqlLocal(sql string) (string, error) {
	cmd := exec.Command(filepath.Join(s.bin, "psql"), "-X", "-w", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"-h", s.sock, "-p", strconv.Itoa(s.port), "-U", "postgres", "-d", "postgres", "-c", sql)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=5")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// psqlCert connects over TLS to 127.0.0.1 as user with a client
// certificate and key, verifying the server (sslmode=verify-full), and
// returns select current_user.
func (s *pgServer) psqlCert(t *testing.T, user string, certPEM, keyPEM []byte) (string, error) {
	t.Helper()
	d := t.TempDir()
	crt := x5Write(t, filepath.Join(d, "client.crt"), certPEM)
	key := x5Write(t, filepath.Join(d, "client.key"), keyPEM)
	conn := fmt.Sprintf("host=127.0.0.1 port=%d dbname=postgres user=%s sslmode=verify-full sslrootcert=%s sslcert=%s sslkey=%s connect_timeout=5",
		s.port, user, s.srvCA, crt, key)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "psql"), "-X", "-w", "-A", "-t", "-c", "select current_user", conn)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), err
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
