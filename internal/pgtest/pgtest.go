// Package pgtest starts a real PostgreSQL for tests: initdb and postgres in
// a temp dir on a loopback port, TLS on with a server certificate from a
// throwaway server CA, ssl_ca_file set to the client CA a test gives, and
// pg_hba "hostssl all all 127.0.0.1/32 cert" by default (plus local trust
// over the unix socket for setup as the postgres superuser).
//
// Without PostgreSQL the test is skipped, or fails when
// GATEHOUSE_REQUIRE_SERVERS=1 (make test), so a missing package cannot pass
// silently there. GATEHOUSE_PG_BIN names the directory of initdb when it is
// not on the PATH or under /usr/lib/postgresql/*/bin.
package pgtest

import (
	"bytes"
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

	"github.com/gatehouse-dev/gatehouse/internal/proctest"
	"github.com/gatehouse-dev/gatehouse/pki"
)

// DefaultHBA is the pg_hba.conf Start writes unless told otherwise: the
// superuser over the unix socket without a password, every TCP client
// over TLS with a client certificate whose CN is the user name.
const DefaultHBA = "local all all trust\nhostssl all all 127.0.0.1/32 cert\n"

// Options configure a server.
type Options struct {
	// ClientCAPEM is written to ssl_ca_file: the CA (bundle) that client
	// certificates must chain to. Required for "cert" authentication.
	ClientCAPEM []byte
	// HBA replaces DefaultHBA as pg_hba.conf.
	HBA string
}

// Server is a running PostgreSQL.
type Server struct {
	Bin    string // directory of psql, postgres, initdb
	Dir    string // temp dir: config files, socket
	Socket string // unix socket directory (host for psql -h)
	Host   string // 127.0.0.1
	Port   int
	// ServerCAFile is the PEM of the CA that signed the server's
	// certificate (for 127.0.0.1 and localhost): sslrootcert for
	// sslmode=verify-full.
	ServerCAFile string
	// ClientCAFile is ssl_ca_file.
	ClientCAFile string

	data string
	cred *syscall.Credential
}

// Start runs initdb and postgres until the test ends. PostgreSQL refuses
// to run as root, so as root both run as the "postgres" OS user.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if len(bytes.TrimSpace(o.ClientCAPEM)) == 0 {
		t.Fatal("pgtest: Options.ClientCAPEM is required (ssl_ca_file)")
	}
	initdb := proctest.Need(t, os.Getenv("GATEHOUSE_PG_BIN")+"/initdb", "/usr/lib/postgresql/*/bin/initdb", "initdb")
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
	srvCA, srvCert, srvKey, err := pki.ThrowawayServerTLS("pgtest server CA")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Bin: bin, Dir: dir, Socket: dir, Host: "127.0.0.1", Port: proctest.FreePort(t), cred: cred, data: filepath.Join(dir, "data")}
	s.ServerCAFile = filepath.Join(dir, "server-ca.crt")
	s.ClientCAFile = filepath.Join(dir, "client-ca.crt")
	s.write(t, s.ServerCAFile, srvCA)
	s.write(t, filepath.Join(dir, "server.crt"), srvCert)
	s.write(t, filepath.Join(dir, "server.key"), srvKey)
	s.write(t, s.ClientCAFile, o.ClientCAPEM)
	s.chown(t, dir)

	if out, err := s.command("initdb", "-D", s.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	conf := fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
ssl = on
ssl_cert_file = '%s/server.crt'
ssl_key_file = '%s/server.key'
ssl_ca_file = '%s'
fsync = off
shared_buffers = 16MB
max_connections = 20
log_connections = on
`, s.Port, dir, dir, dir, s.ClientCAFile)
	f, err := os.OpenFile(filepath.Join(s.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(conf); err != nil {
		t.Fatal(err)
	}
	f.Close()
	hba := o.HBA
	if hba == "" {
		hba = DefaultHBA
	}
	s.write(t, filepath.Join(s.data, "pg_hba.conf"), []byte(hba))

	pg := proctest.Start(t, s.command("postgres", "-D", s.data), proctest.Options{Name: "postgres", Stop: syscall.SIGINT}) // SIGINT: fast shutdown
	if err := pg.Ready(30*time.Second, proctest.Answers(s.PSQLLocal, "select 1", "1")); err != nil {
		t.Fatal(err)
	}
	return s
}

// SetClientCA rewrites ssl_ca_file and reloads the configuration (new
// connections use it; PostgreSQL reloads SSL settings on SIGHUP).
func (s *Server) SetClientCA(t testing.TB, caPEM []byte) {
	t.Helper()
	s.write(t, s.ClientCAFile, caPEM)
	s.reload(t)
}

// SetHBA rewrites pg_hba.conf and reloads the configuration.
func (s *Server) SetHBA(t testing.TB, hba string) {
	t.Helper()
	s.write(t, filepath.Join(s.data, "pg_hba.conf"), []byte(hba))
	s.reload(t)
}

func (s *Server) reload(t testing.TB) {
	t.Helper()
	if out, err := s.PSQLLocal("select pg_reload_conf()"); err != nil || out != "t" {
		t.Fatalf("reload: %v: %s", err, out)
	}
	// The reload is asynchronous: wait until the postmaster has read it.
	time.Sleep(500 * time.Millisecond)
}

// PSQLLocal runs SQL as the postgres superuser over the unix socket and
// returns the unaligned, tuples-only output.
func (s *Server) PSQLLocal(sql string) (string, error) {
	cmd := exec.Command(filepath.Join(s.Bin, "psql"), "-X", "-w", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"-h", s.Socket, "-p", strconv.Itoa(s.Port), "-U", "postgres", "-d", "postgres", "-c", sql)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=5")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// PSQLCert connects over TLS to 127.0.0.1 as user with the client
// certificate and key files, verifying the server (sslmode=verify-full
// against ServerCAFile), runs sql and returns its output; on failure the
// error carries psql's message. libpq refuses a key file readable by
// others: write it 0600.
func (s *Server) PSQLCert(user, certFile, keyFile, sql string) (string, error) {
	conn := fmt.Sprintf("host=%s port=%d dbname=postgres user=%s sslmode=verify-full sslrootcert=%s sslcert=%s sslkey=%s connect_timeout=5",
		s.Host, s.Port, user, s.ServerCAFile, certFile, keyFile)
	return proctest.RunClient(filepath.Join(s.Bin, "psql"), "-X", "-w", "-A", "-t", "-c", sql, conn)
}

// CreateCertUsers creates a login role for each name: under DefaultHBA a
// client certificate whose CN is the name logs in as it.
func (s *Server) CreateCertUsers(t testing.TB, names ...string) {
	t.Helper()
	var sql strings.Builder
	for _, n := range names {
		fmt.Fprintf(&sql, "create role %q login;", n)
	}
	if out, err := s.PSQLLocal(sql.String()); err != nil {
		t.Fatalf("create roles %v: %v: %s", names, err, out)
	}
}

// CurrentUser logs in as user with PSQLCert and returns select
// current_user: the role the certificate opened.
func (s *Server) CurrentUser(user, certFile, keyFile string) (string, error) {
	return s.PSQLCert(user, certFile, keyFile, "select current_user")
}

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.Bin, name), args...)
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "HOME="+s.Dir)
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd
}

// write writes a file the server reads, owned by the server's OS user.
func (s *Server) write(t testing.TB, path string, data []byte) {
	t.Helper()
	s.chown(t, proctest.WriteFile(t, path, data))
}

func (s *Server) chown(t testing.TB, path string) {
	t.Helper()
	if s.cred == nil {
		return
	}
	if err := os.Chown(path, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
		t.Fatal(err)
	}
}
