package main_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/profile"
)

var accessdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gh-d-")
	if err != nil {
		panic(err)
	}
	accessdBin = filepath.Join(dir, "accessd")
	if out, err := exec.Command("go", "build", "-o", accessdBin, ".").CombinedOutput(); err != nil {
		panic("build accessd: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// daemon is a running accessd process.
type daemon struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
}

func startDaemon(t *testing.T, dataDir, addr string, extra ...string) *daemon {
	t.Helper()
	args := append([]string{"start", "--data-dir", dataDir, "--listen", addr, "--cluster-name", "test.local"}, extra...)
	cmd := exec.Command(accessdBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, stderr: &stderr}
	t.Cleanup(func() { d.stop(t) })
	return d
}

func (d *daemon) stop(t *testing.T) {
	if d.cmd.ProcessState != nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = d.cmd.Process.Kill()
		<-done
		t.Errorf("accessd did not stop on SIGTERM")
	}
}

// adminClient waits for the admin identity and a ready server.
func waitReady(t *testing.T, dataDir string) profile.Profile {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		p, err := profile.ReadFile(filepath.Join(dataDir, "admin.identity"))
		if err == nil {
			c, err := p.Client("")
			if err == nil {
				if _, err := c.Status(context.Background()); err == nil {
					return p
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("accessd not ready in 30s")
	return profile.Profile{}
}

func TestFirstStartRestartAndAdminIdentity(t *testing.T) {
	dataDir, err := os.MkdirTemp("", "gh-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dataDir) })
	addr := freeAddr(t)
	d := startDaemon(t, dataDir, addr)
	p := waitReady(t, dataDir)

	st, err := os.Stat(filepath.Join(dataDir, "admin.identity"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin.identity mode = %v, %v; want 0600", st.Mode(), err)
	}
	if dst, _ := os.Stat(dataDir); dst.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode = %v, want 0700", dst.Mode().Perm())
	}
	if time.Until(p.Expires) > time.Hour {
		t.Fatalf("admin identity valid until %v, want at most 1h", p.Expires)
	}
	c, _ := p.Client("")
	ctx := context.Background()
	role := []byte(`{"kind":"role","version":"v1","metadata":{"name":"dba"},"spec":{"allow":{"db_labels":{"env":"prod"}}}}`)
	if _, err := c.PutObject(ctx, "role", role); err != nil {
		t.Fatal(err)
	}

	// The host can mint a new identity while accessd runs (over the
	// member's unix socket).
	out, err := exec.Command(accessdBin, "admin-identity", "--data-dir", dataDir, "--out", filepath.Join(dataDir, "second.identity"), "--server", "https://"+addr).CombinedOutput()
	if err != nil {
		t.Fatalf("admin-identity while running: %v\n%s", err, out)
	}
	p2, err := profile.ReadFile(filepath.Join(dataDir, "second.identity"))
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := p2.Client("")
	if st, err := c2.Status(ctx); err != nil || st.User != "admin" {
		t.Fatalf("second identity: %+v %v", st, err)
	}

	// Restart on the same data dir: nothing lost, no new admin identity.
	d.stop(t)
	before, _ := os.ReadFile(filepath.Join(dataDir, "admin.identity"))
	startDaemon(t, dataDir, addr)
	waitReady(t, dataDir)
	if after, _ := os.ReadFile(filepath.Join(dataDir, "admin.identity")); !bytes.Equal(before, after) {
		t.Fatal("restart rewrote admin.identity; only the first start writes it")
	}
	raw, err := c.GetObjects(ctx, "role", "dba")
	if err != nil || !strings.Contains(string(raw), `"prod"`) {
		t.Fatalf("role after restart: %s, %v", raw, err)
	}
	if _, err := c.GetObjects(ctx, "role", "nope"); !strings.Contains(fmt.Sprint(err), "not found") {
		t.Fatalf("missing role: %v", err)
	}
}

func TestUnreachableEtcdFailsFast(t *testing.T) {
	dataDir := t.TempDir()
	start := time.Now()
	cmd := exec.Command(accessdBin, "start", "--data-dir", dataDir, "--listen", freeAddr(t), "--etcd-endpoints", "http://127.0.0.1:1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("accessd with dead etcd: %v\n%s", err, out)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Fatalf("took %s to fail", took)
	}
	if !strings.Contains(string(out), "127.0.0.1:1") || !strings.Contains(string(out), "unreachable") {
		t.Fatalf("error does not name the etcd endpoint: %s", out)
	}
}

func TestBadConfigIsNamed(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "accessd.yaml")
	if err := os.WriteFile(cfg, []byte("listen: 127.0.0.1:0\nrequests:\n  pending_tll: 1h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(accessdBin, "start", "--config", cfg, "--data-dir", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "pending_tll") {
		t.Fatalf("unknown key not named: %v\n%s", err, out)
	}
}

// TestPolicyDirIsPushedByTheLeader: with policies.dir set, a valid change
// of the folder is in force within 2 seconds; a change that does not
// compile is refused and the bundle in force stays.
func TestPolicyDirIsPushedByTheLeader(t *testing.T) {
	dataDir, err := os.MkdirTemp("", "gh-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dataDir) })
	policyDir := t.TempDir()
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(policyDir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("freeze.rego", "package gatehouse\n\ndeny contains \"change freeze\" if { false }\n")
	cfg := filepath.Join(t.TempDir(), "accessd.yaml")
	if err := os.WriteFile(cfg, []byte("policies:\n  dir: "+policyDir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, dataDir, freeAddr(t), "--config", cfg)
	p := waitReady(t, dataDir)
	c, _ := p.Client("")
	ctx := context.Background()

	inForce := func(want string, within time.Duration) (int64, time.Duration) {
		t.Helper()
		start := time.Now()
		for time.Since(start) < within {
			if b, err := c.GetPolicy(ctx); err == nil && b.Files["freeze.rego"] == want {
				return b.Revision, time.Since(start)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("bundle with %q not in force after %s", want, within)
		return 0, 0
	}
	first, _ := inForce("package gatehouse\n\ndeny contains \"change freeze\" if { false }\n", 10*time.Second)

	changed := "package gatehouse\n\ndeny contains \"change freeze\" if { true }\n"
	write("freeze.rego", changed)
	second, took := inForce(changed, 2*time.Second)
	t.Logf("a change of policies.dir was in force after %s", took)
	if second <= first {
		t.Fatalf("revision %d after %d", second, first)
	}

	write("broken.rego", "package gatehouse\n\ndeny contains x if {\n")
	time.Sleep(1500 * time.Millisecond)
	b, err := c.GetPolicy(ctx)
	if err != nil || b.Revision != second {
		t.Fatalf("a broken change replaced the bundle: revision %d (want %d), %v", b.Revision, second, err)
	}
}

// TestWrongKEKRefusesToStart: a key-encryption key that does not open the
// stored CA keys stops accessd with a clear error and overwrites nothing.
func TestWrongKEKRefusesToStart(t *testing.T) {
	dataDir, err := os.MkdirTemp("", "gh-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dataDir) })
	keys := t.TempDir()
	right, wrong := filepath.Join(keys, "right.kek"), filepath.Join(keys, "wrong.kek")
	for _, f := range []string{right, wrong} {
		if out, err := exec.Command(accessdBin, "kek-generate", f).CombinedOutput(); err != nil {
			t.Fatalf("kek-generate: %v %s", err, out)
		}
	}
	addr := freeAddr(t)
	d := startDaemon(t, dataDir, addr, "--kek-file", right)
	p := waitReady(t, dataDir)
	c, _ := p.Client("")
	ctx := context.Background()
	exported, err := c.ExportCA(ctx, "ssh", "")
	if err != nil {
		t.Fatal(err)
	}
	d.stop(t)

	out, err := exec.Command(accessdBin, "start", "--data-dir", dataDir, "--listen", addr, "--cluster-name", "test.local", "--kek-file", wrong).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "key-encryption key") {
		t.Fatalf("start with the wrong KEK: %v\n%s", err, out)
	}

	startDaemon(t, dataDir, addr, "--kek-file", right)
	p = waitReady(t, dataDir)
	c, _ = p.Client("")
	again, err := c.ExportCA(ctx, "ssh", "")
	if err != nil || again != exported {
		t.Fatalf("CA keys changed after a refused start: %v\n%s\n%s", err, exported, again)
	}
}
