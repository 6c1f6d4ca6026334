// Package sshdtest runs a stock OpenSSH sshd on loopback for tests: it
// trusts given CA keys for user certificates and, optionally, takes
// host-scoped principals from an AuthorizedPrincipalsFile per local user.
package sshdtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/internal/proctest"
)

// InstallHint says how to get OpenSSH.
const InstallHint = "install OpenSSH: scripts/test-deps.sh (or apt-get install -y openssh-server openssh-client)"

// Binary finds sshd; sshd re-executes itself, so the path is absolute.
// Without sshd the test is skipped, or fails when
// GATEHOUSE_REQUIRE_SERVERS=1 (make test), so a missing package cannot
// pass silently there.
func Binary(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("sshd")
	if err != nil {
		p = "/usr/sbin/sshd"
		if _, err := os.Stat(p); err != nil {
			proctest.Missing(t, "sshd not found in PATH or at /usr/sbin/sshd: "+InstallHint)
		}
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// Logins returns a local account the certificates grant (the current
// user: root in CI) and another existing account they do not.
func Logins(t testing.TB) (granted, other string) {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"nobody", "daemon", "root"} {
		if name == u.Username {
			continue
		}
		if _, err := user.Lookup(name); err == nil {
			return u.Username, name
		}
	}
	t.Fatalf("no second local account (nobody, daemon or root) to test a refused login")
	return "", ""
}

// Server is a running sshd.
type Server struct {
	// Addr is 127.0.0.1:PORT.
	Addr string
	// HostKey is the server's ed25519 host key.
	HostKey ssh.PublicKey
	sshd    *proctest.Process
}

// Logs returns what sshd logged so far (LogLevel VERBOSE).
func (s *Server) Logs() string { return s.sshd.Logs() }

// Start runs a stock sshd on loopback that trusts caPubs for user
// certificates, stopped when the test ends. With principals (local user ->
// file content) it also sets AuthorizedPrincipalsFile DIR/principals/%u,
// as a host taking host-scoped principals does; nil means no such file.
func Start(t testing.TB, caPubs []ssh.PublicKey, principals map[string]string) *Server {
	t.Helper()
	bin := Binary(t)
	if os.Geteuid() == 0 {
		// Privilege separation directory, missing in containers.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()

	hostPub, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, err := ssh.NewPublicKey(hostPub)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(hostPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	hostKeyPath := filepath.Join(dir, "ssh_host_ed25519_key")
	if err := os.WriteFile(hostKeyPath, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	var cas []byte
	for _, k := range caPubs {
		cas = append(cas, ssh.MarshalAuthorizedKey(k)...)
	}
	caPath := filepath.Join(dir, "trusted_user_ca_keys")
	if err := os.WriteFile(caPath, cas, 0o644); err != nil {
		t.Fatal(err)
	}
	var principalsLine string
	if principals != nil {
		pdir := filepath.Join(dir, "principals")
		if err := os.Mkdir(pdir, 0o755); err != nil {
			t.Fatal(err)
		}
		for u, content := range principals {
			if err := os.WriteFile(filepath.Join(pdir, u), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		principalsLine = "AuthorizedPrincipalsFile " + filepath.Join(pdir, "%u") + "\n"
	}

	for attempt := 1; ; attempt++ {
		port := proctest.FreePort(t)
		cfg := fmt.Sprintf(`ListenAddress 127.0.0.1:%d
HostKey %s
PidFile %s
TrustedUserCAKeys %s
%sAuthorizedKeysFile none
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthenticationMethods publickey
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
LogLevel VERBOSE
`, port, hostKeyPath, filepath.Join(dir, "sshd.pid"), caPath, principalsLine)
		cfgPath := filepath.Join(dir, "sshd_config")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		// OpenSSH 9.8+ penalises sources with failed logins; the refusals
		// tests provoke must not lock out the next case.
		if exec.Command(bin, "-t", "-f", cfgPath, "-o", "PerSourcePenalties=no").Run() == nil {
			if err := os.WriteFile(cfgPath, []byte(cfg+"PerSourcePenalties no\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if out, err := exec.Command(bin, "-t", "-f", cfgPath).CombinedOutput(); err != nil {
			t.Fatalf("sshd -t: %v\n%s", err, out)
		}

		sshd := proctest.Start(t, exec.Command(bin, "-D", "-e", "-f", cfgPath), proctest.Options{Name: "sshd on port " + strconv.Itoa(port), Stop: os.Interrupt})
		if err := sshd.Ready(10*time.Second, sshd.LogSays("Server listening on")); err != nil {
			sshd.Stop()
			if attempt < 3 && strings.Contains(sshd.Logs(), "Bind to port") {
				continue // port taken meanwhile: try another
			}
			t.Fatal(err)
		}
		return &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), HostKey: hostKey, sshd: sshd}
	}
}
