package main_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/profile"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/gatehouse-dev/gatehouse/store/embedded"
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

// tempDataDir is a data directory with a short path (the etcd member's
// unix socket lives in it), removed when the test ends.
func tempDataDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gh-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// newKEK makes a key-encryption key file with accessd kek-generate.
func newKEK(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "gatehouse.kek")
	if out, err := exec.Command(accessdBin, "kek-generate", f).CombinedOutput(); err != nil {
		t.Fatalf("kek-generate: %v %s", err, out)
	}
	return f
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
	dataDir := tempDataDir(t)
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
	dataDir := tempDataDir(t)
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
	dataDir := tempDataDir(t)
	right, wrong := newKEK(t), newKEK(t)
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

// storedClusterState is the cluster state as etcd holds it in the data
// dir of a stopped accessd.
func storedClusterState(t *testing.T, dataDir string) []byte {
	t.Helper()
	ctx := context.Background()
	m, err := embedded.Start(ctx, embedded.Config{DataDir: dataDir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	st, err := store.Dial(ctx, store.Config{Endpoints: m.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	resp, err := st.Client().Get(ctx, st.Prefix()+"cluster/state")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("read the cluster state: %v", err)
	}
	return resp.Kvs[0].Value
}

// TestClusterCAKeySealedUnderKEK: a cluster started without a KEK keeps
// its TLS CA key in the clear and says so; the first start with a KEK
// seals it, and the same CA keeps serving; admin-identity takes the KEK
// as start does; a start without the KEK, or with another, is refused and
// rewrites nothing.
func TestClusterCAKeySealedUnderKEK(t *testing.T) {
	dataDir := tempDataDir(t)
	right, wrong := newKEK(t), newKEK(t)
	addr := freeAddr(t)
	ctx := context.Background()

	d := startDaemon(t, dataDir, addr)
	p := waitReady(t, dataDir)
	c, _ := p.Client("")
	before, err := c.ClusterCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d.stop(t)
	if !strings.Contains(d.stderr.String(), "cluster CA key is stored unencrypted") || !strings.Contains(d.stderr.String(), "ca.kek_file") {
		t.Fatalf("no warning about the clear key:\n%s", d.stderr)
	}
	if !bytes.Contains(storedClusterState(t, dataDir), []byte("PRIVATE KEY")) {
		t.Fatal("test broken: without a KEK the key should be in the clear")
	}

	d = startDaemon(t, dataDir, addr, "--kek-file", right)
	p = waitReady(t, dataDir) // the first start's identity: the same CA
	c, _ = p.Client("")
	after, err := c.ClusterCA(ctx)
	if err != nil || after.Pin != before.Pin {
		t.Fatalf("CA pin after sealing %q (%v), want %q", after.Pin, err, before.Pin)
	}
	idFile := filepath.Join(dataDir, "minted.identity")
	out, err := exec.Command(accessdBin, "admin-identity", "--data-dir", dataDir, "--out", idFile, "--server", "https://"+addr).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "kek_file") {
		t.Fatalf("admin-identity without the KEK: %v\n%s", err, out)
	}
	out, err = exec.Command(accessdBin, "admin-identity", "--data-dir", dataDir, "--out", idFile, "--server", "https://"+addr, "--kek-file", right).CombinedOutput()
	if err != nil {
		t.Fatalf("admin-identity with the KEK: %v\n%s", err, out)
	}
	minted, err := profile.ReadFile(idFile)
	if err != nil {
		t.Fatal(err)
	}
	mc, _ := minted.Client("")
	if st, err := mc.Status(ctx); err != nil || st.User != "admin" {
		t.Fatalf("minted identity: %+v %v", st, err)
	}
	d.stop(t)
	if !strings.Contains(d.stderr.String(), "sealed the cluster CA key") {
		t.Fatalf("no word of sealing:\n%s", d.stderr)
	}
	sealed := storedClusterState(t, dataDir)
	if bytes.Contains(sealed, []byte("PRIVATE KEY")) || !bytes.Contains(sealed, []byte("ca_key_sealed")) {
		t.Fatalf("etcd holds %s", sealed)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no KEK", nil, "cluster CA key is sealed"},
		{"another KEK", []string{"--kek-file", wrong}, "key-encryption key does not open"},
	} {
		args := append([]string{"start", "--data-dir", dataDir, "--listen", addr, "--cluster-name", "test.local"}, tc.args...)
		out, err := exec.Command(accessdBin, args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Fatalf("start with %s: %v\n%s", tc.name, err, out)
		}
	}
	if again := storedClusterState(t, dataDir); !bytes.Equal(again, sealed) {
		t.Fatalf("a refused start rewrote the cluster state:\n%s\n%s", sealed, again)
	}
}
