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
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/pgtest"
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
	mariadbd := pgtest.Need(t, "mariadbd", "/usr/sbin/mariadbd")
	installDB := pgtest.Need(t, "mariadb-install-db")
	client := pgtest.Need(t, "mariadb")

	dir, err := os.MkdirTemp("", "gatehouse-mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	srvCA, srvCert, srvKey, err := pki.ThrowawayServerTLS("mariadbtest server CA")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Client: client, Dir: dir, Socket: filepath.Join(dir, "mysqld.sock"), Host: "127.0.0.1", Port: freePort(t)}
	s.ServerCAFile = write(t, filepath.Join(dir, "server-ca.crt"), srvCA)
	crt := write(t, filepath.Join(dir, "server.crt"), srvCert)
	key := write(t, filepath.Join(dir, "server.key"), srvKey)
	s.ClientCAFile = write(t, filepath.Join(dir, "client-ca.crt"), o.ClientCAPEM)
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
		res, err := s.Root("select 1")
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Client, "--no-defaults", "--protocol=TCP", "-h", s.Host, "-P", strconv.Itoa(s.Port),
		"-u", user, "--ssl", "--ssl-verify-server-cert", "--ssl-ca="+s.ServerCAFile, "--ssl-cert="+certFile, "--ssl-key="+keyFile,
		"--connect-timeout=5", "-N", "-B", "-e", sql)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), err
}

func write(t testing.TB, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
