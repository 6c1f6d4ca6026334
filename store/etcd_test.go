package store_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/gatehouse-dev/gatehouse/store/embedded"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

func embeddedStart(ctx context.Context, t testing.TB, dir string) (*embedded.Member, error) {
	return embedded.Start(ctx, embedded.Config{DataDir: dir, Logger: storetest.Logger(t), UnsafeNoFsync: true})
}

func TestEmbeddedDataDir(t *testing.T) {
	ctx := ctxT(t)
	dir := filepath.Join(storetest.ShortTempDir(t), "d")
	noErr(t, os.Mkdir(dir, 0o755)) // too open: Start must fix it
	m, err := embeddedStart(ctx, t, dir)
	noErr(t, err)
	defer m.Close()
	for _, d := range []string{dir, filepath.Join(dir, "etcd")} {
		fi, err := os.Stat(d)
		noErr(t, err)
		if fi.Mode().Perm() != 0o700 {
			t.Fatalf("%s mode %v, want 0700", d, fi.Mode().Perm())
		}
	}
	eps := m.Endpoints()
	if len(eps) != 1 || eps[0] != "unix://"+filepath.Join(dir, embedded.SocketName) {
		t.Fatalf("endpoints = %v, want the unix socket in the data dir", eps)
	}
	_, err = embeddedStart(ctx, t, dir)
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Start on the same dir: err = %v, want 'in use'", err)
	}
	// The first member still serves after the refused second start.
	s, err := store.Dial(ctx, store.Config{Endpoints: eps, Logger: storetest.Logger(t)})
	noErr(t, err)
	defer s.Close()
	noErr(t, s.Ping(ctx))
	noErr(t, m.Close())
	noErr(t, m.Close()) // idempotent
}

func TestDialDeadEndpoint(t *testing.T) {
	start := time.Now()
	_, err := store.Dial(context.Background(), store.Config{
		Endpoints: []string{"http://127.0.0.1:1"}, DialTimeout: time.Second, Logger: storetest.Logger(t)})
	took := time.Since(start)
	if err == nil {
		t.Fatal("Dial to a dead endpoint succeeded")
	}
	t.Logf("after %s: %v", took.Round(time.Millisecond), err)
	wantErr(t, err, access.ErrUnavailable, "etcd at http://127.0.0.1:1: unreachable after 1s")
	if !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error does not say why: %v", err)
	}
	if took > 3*time.Second {
		t.Fatalf("Dial took %s with DialTimeout 1s", took)
	}

	// A cancelled caller context is reported as such.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = store.Dial(ctx, store.Config{Endpoints: []string{"http://127.0.0.1:1"}})
	wantErr(t, err, context.Canceled, "")
}

func TestCallerCancellation(t *testing.T) {
	s := storetest.Embedded(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.GetRole(ctx, "dba")
	if !errors.Is(err, context.Canceled) || errors.Is(err, access.ErrUnavailable) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	noErr(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// externalEtcd runs the etcd binary as its own process.
type externalEtcd struct {
	t       testing.TB
	bin     string
	dir     string
	client  string
	peer    string
	cmd     *exec.Cmd
	exited  chan struct{}
	logFile string
}

func newExternalEtcd(t testing.TB) *externalEtcd {
	dir := t.TempDir()
	e := &externalEtcd{
		t: t, bin: storetest.EtcdBinary(t), dir: dir,
		client:  fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		peer:    fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		logFile: filepath.Join(dir, "etcd.log"),
	}
	t.Cleanup(e.kill)
	return e
}

func (e *externalEtcd) start() {
	e.t.Helper()
	log, err := os.OpenFile(e.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	noErr(e.t, err)
	e.cmd = exec.Command(e.bin,
		"--name", "ext", "--data-dir", filepath.Join(e.dir, "data"),
		"--listen-client-urls", e.client, "--advertise-client-urls", e.client,
		"--listen-peer-urls", e.peer, "--initial-advertise-peer-urls", e.peer,
		"--initial-cluster", "ext="+e.peer, "--log-level", "warn",
		"--unsafe-no-fsync")
	e.cmd.Stdout, e.cmd.Stderr = log, log
	noErr(e.t, e.cmd.Start())
	e.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		_ = log.Close()
		close(done)
	}(e.cmd, e.exited)
}

func (e *externalEtcd) kill() {
	if e.cmd == nil || e.cmd.Process == nil {
		return
	}
	_ = e.cmd.Process.Kill()
	<-e.exited
	e.cmd = nil
}

func (e *externalEtcd) logTail() string {
	b, _ := os.ReadFile(e.logFile)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// TestExternalEtcd runs against a separate etcd process: dial, round trip,
// kill mid-run (clean ErrUnavailable within OpTimeout, no hang), restart on
// the same data dir (the same Store recovers, a running watch resumes).
func TestExternalEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an etcd process")
	}
	e := newExternalEtcd(t)
	e.start()
	ctx := ctxT(t)

	const opTimeout = 1500 * time.Millisecond
	var s *store.Store
	deadline := time.Now().Add(20 * time.Second)
	for {
		var err error
		s, err = store.Dial(ctx, store.Config{Endpoints: []string{e.client}, DialTimeout: time.Second,
			OpTimeout: opTimeout, Logger: storetest.Logger(t), Prefix: "/gh-test"})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd did not come up: %v\n%s", err, e.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
	defer s.Close()
	if s.Prefix() != "/gh-test/" {
		t.Fatalf("prefix = %q", s.Prefix())
	}

	r := must[access.Request](t)(s.CreateRequest(ctx, pendingRequest("r1", 1), ev("request.create", "alice")))
	must[access.Request](t)(s.GetRequest(ctx, "r1"))
	watch := s.WatchRequests(ctx, r.Revision)

	e.kill()
	ops := []struct {
		name string
		do   func() error
	}{
		{"get", func() error { _, err := s.GetRequest(ctx, "r1"); return err }},
		{"update", func() error {
			_, err := s.UpdateRequest(ctx, "r1", setState(access.StateApproved))
			return err
		}},
		{"create", func() error { _, err := s.CreateRequest(ctx, pendingRequest("r2", 1)); return err }},
		{"append audit", func() error { return s.AppendAudit(ctx, ev("x", "y")) }},
		{"ping", func() error { return s.Ping(ctx) }},
	}
	var wg sync.WaitGroup
	for _, op := range ops {
		wg.Go(func() {
			start := time.Now()
			err := op.do()
			took := time.Since(start)
			if !errors.Is(err, access.ErrUnavailable) {
				t.Errorf("%s with etcd killed: err = %v, want ErrUnavailable", op.name, err)
			}
			if took > opTimeout+time.Second {
				t.Errorf("%s took %s, OpTimeout is %s", op.name, took, opTimeout)
			}
			t.Logf("%s: %s after %s", op.name, err, took.Round(time.Millisecond))
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	e.start()
	start := time.Now()
	for {
		_, err := s.UpdateRequest(ctx, "r1", setState(access.StateApproved))
		if err == nil {
			break
		}
		if !errors.Is(err, access.ErrUnavailable) {
			t.Fatalf("after restart: %v", err)
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("store did not recover after etcd restart: %v\n%s", err, e.logTail())
		}
	}
	t.Logf("recovered %s after restart", time.Since(start).Round(time.Millisecond))
	if got := must[access.Request](t)(s.GetRequest(ctx, "r1")); got.State != access.StateApproved {
		t.Fatalf("state = %s", got.State)
	}
	select {
	case ev := <-watch:
		if ev.Type != access.EventPut || ev.Request.State != access.StateApproved {
			t.Fatalf("watch after restart: %+v", ev)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("watch did not resume after etcd restart")
	}
	// Raw keys sit under the configured prefix.
	resp := must[*clientv3.GetResponse](t)(s.Client().Get(ctx, "/gh-test/requests/r1", clientv3.WithCountOnly()))
	if resp.Count != 1 {
		t.Fatal("request not under the prefix")
	}
}

func benchStore(b *testing.B) *store.Store {
	// fsync on, as in production: the numbers are write latencies.
	dir := storetest.ShortTempDir(b)
	m, err := embedded.Start(context.Background(), embedded.Config{DataDir: dir, Logger: storetest.Logger(b)})
	noErr(b, err)
	b.Cleanup(func() { _ = m.Close() })
	s, err := store.Dial(context.Background(), store.Config{Endpoints: m.Endpoints(), Logger: storetest.Logger(b)})
	noErr(b, err)
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// BenchmarkTxn is the floor: one bare etcd transaction with one put of a
// request-sized value.
func BenchmarkTxn(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	val := strings.Repeat("x", 900)
	for b.Loop() {
		_, err := s.Client().Txn(ctx).Then(clientv3.OpPut("/bench/k", val)).Commit()
		noErr(b, err)
	}
}

// BenchmarkUpdateRequest is a review as the service does it: read,
// decode, fn, one compare-and-put transaction with one audit event.
func BenchmarkUpdateRequest(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	must[access.Request](b)(s.CreateRequest(ctx, pendingRequest("r1", 1)))
	i := 0
	for b.Loop() {
		i++
		_, err := s.UpdateRequest(ctx, "r1", func(r *access.Request) ([]access.AuditEvent, error) {
			r.Thresholds[0].Approvals = i
			return []access.AuditEvent{{Type: "request.review", Actor: "bob", RequestID: r.ID}}, nil
		})
		noErr(b, err)
	}
}

// TestEmbeddedNoTCPListener: the embedded member must not listen on any
// TCP port (clients use the private unix socket, and there is no peer
// listener). Linux only: it matches this process's socket inodes against
// the kernel's table of listening TCP sockets.
func TestEmbeddedNoTCPListener(t *testing.T) {
	if _, err := os.Stat("/proc/self/net/tcp"); err != nil {
		t.Skip("needs Linux /proc")
	}
	storetest.Embedded(t)
	inodes := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	noErr(t, err)
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	for _, table := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// st 0A is LISTEN; field 9 is the inode.
			if len(f) > 9 && f[3] == "0A" && inodes[f[9]] {
				t.Errorf("process listens on TCP %s", f[1])
			}
		}
	}
}
