// Package mariadbtest starts a real MariaDB for tests: mariadb-install-db
// and mariadbd in a temp dir on a loopback port, TLS on with a server
// certificate from a throwaway server CA, and ssl-ca set to the client CA a
// test gives (the CA that client certificates must chain to). Setup runs as
// root over the unix socket.
//
// Without MariaDB the test is skipped, or fails when
// GATEHOUSE_REQUIRE_SERVERS=1 (make test), so a missing package cannot pass
// silently there.
package mariadbtest

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

// Options configure a server.
type Options struct {
	// ClientCAPEM is written to ssl-ca: the CA (bundle) that client
	// certificates must chain to. Required.
	ClientCAPEM []byte
}

// Server is a running MariaDB.
type Server struct {
	Client string // the mariadb client binary
	Dir    string // temp dir: config files, data, socket
	Socket string // unix socket (root logs in over it)
	Host   string // 127.0.0.1
	Port   int
	// ServerCAFile is the PEM of the CA that signed the server's
	// certificate (for 127.0.0.1 and localhost): --ssl-ca for
	// --ssl-verify-server-cert.
	ServerCAFile string
	// ClientCAFile is the server's ssl-ca.
	ClientCAFile string
}

// Start runs mariadb-install-db and mariadbd until the test ends. As root,
// mariadbd is told to run as root (--user).
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if len(bytes.TrimSpace(o.ClientCAPEM)) == 0 {
		t.Fatal("mariadbtest: Options.ClientCAPEM is required (ssl-ca)")
	}
	mariadbd := proctest.Need(t, "mariadbd", "/usr/sbin/mariadbd")
	installDB := proctest.Need(t, "mariadb-install-db")
	client := proctest.Need(t, "mariadb")

	dir, err := os.MkdirTemp("", "gatehouse-mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	srvCA, srvCert, srvKey, err := pki.ThrowawayServerTLS("mariadbtest server CA")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Client: client, Dir: dir, Socket: filepath.Join(dir, "mysqld.sock"), Host: "127.0.0.1", Port: proctest.FreePort(t)}
	s.ServerCAFile = proctest.WriteFile(t, filepath.Join(dir, "server-ca.crt"), srvCA)
	crt := proctest.WriteFile(t, filepath.Join(dir, "server.crt"), srvCert)
	key := proctest.WriteFile(t, filepath.Join(dir, "server.key"), srvKey)
	s.ClientCAFile = proctest.WriteFile(t, filepath.Join(dir, "client-ca.crt"), o.ClientCAPEM)
	data := filepath.Join(dir, "data")

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
		"--socket="+s.Socket, "--port="+strconv.Itoa(s.Port), "--bind-address="+s.Host,
		"--pid-file="+filepath.Join(dir, "mariadbd.pid"), "--log-error="+errLog,
		"--skip-name-resolve", "--skip-log-bin", "--innodb-buffer-pool-size=16M",
		"--ssl-ca="+s.ClientCAFile, "--ssl-cert="+crt, "--ssl-key="+key)
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := proctest.Start(t, srv, proctest.Options{Name: "mariadbd", Stop: syscall.SIGTERM, LogFile: errLog})
	if err := p.Ready(60*time.Second, proctest.Answers(s.Root, "select 1", "1")); err != nil {
		t.Fatal(err)
	}
	return s
}

// Root runs SQL as root over the unix socket and returns the tab-separated
// output without column names (combined with stderr on failure).
func (s *Server) Root(sql string) (string, error) {
	out, err := exec.Command(s.Client, "--no-defaults", "--protocol=SOCKET", "-S", s.Socket, "-u", "root",
		"--connect-timeout=5", "-N", "-B", "-e", sql).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Cert connects over TLS to 127.0.0.1 as user with the client certificate
// and key files (--ssl-cert, --ssl-key), verifying the server
// (--ssl-verify-server-cert against ServerCAFile), runs sql and returns
// its output; on failure the error carries the client's message.
func (s *Server) Cert(user, certFile, keyFile, sql string) (string, error) {
	return proctest.RunClient(s.Client, "--no-defaults", "--protocol=TCP", "-h", s.Host, "-P", strconv.Itoa(s.Port),
		"-u", user, "--ssl", "--ssl-verify-server-cert", "--ssl-ca="+s.ServerCAFile, "--ssl-cert="+certFile, "--ssl-key="+keyFile,
		"--connect-timeout=5", "-N", "-B", "-e", sql)
}

// CreateCertUsers creates an account name@'%' for each name that requires
// a client certificate with subject /CN=name.
func (s *Server) CreateCertUsers(t testing.TB, names ...string) {
	t.Helper()
	var sql strings.Builder
	for _, n := range names {
		fmt.Fprintf(&sql, "CREATE USER '%s'@'%%' REQUIRE SUBJECT '/CN=%s';\n", n, n)
	}
	if out, err := s.Root(sql.String()); err != nil {
		t.Fatalf("create users %v: %v: %s", names, err, out)
	}
}

// CurrentUser logs in as user with Cert and returns select
// current_user(): the account the certificate opened, user@%.
func (s *Server) CurrentUser(user, certFile, keyFile string) (string, error) {
	return s.Cert(user, certFile, keyFile, "select current_user()")
}
