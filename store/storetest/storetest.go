// Package storetest gives tests a real etcd: an embedded member in a
// temporary directory, or the etcd binary for tests that need a separate
// process.
package storetest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/gatehouse-dev/gatehouse/store/embedded"
)

// Embedded starts a single-member etcd in a fresh temporary directory and
// returns a Store connected to it. Both are closed by t.Cleanup.
func Embedded(t testing.TB) *store.Store {
	t.Helper()
	s, _ := EmbeddedMember(t)
	return s
}

// EmbeddedMember is Embedded that also returns the member, for tests that
// stop it.
func EmbeddedMember(t testing.TB) (*store.Store, *embedded.Member) {
	t.Helper()
	dir := ShortTempDir(t)
	m, err := embedded.Start(context.Background(), embedded.Config{
		DataDir: dir,
		Logger:  Logger(t),
		// fsync dominates test time on small machines, and a test's data
		// dies with the test anyway.
		UnsafeNoFsync: true,
	})
	if err != nil {
		t.Fatalf("start embedded etcd: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	s, err := store.Dial(context.Background(), store.Config{Endpoints: m.Endpoints(), Logger: Logger(t)})
	if err != nil {
		t.Fatalf("dial embedded etcd: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() }) // runs before the member's Close
	return s, m
}

// ShortTempDir is a temporary directory with a short path, removed at
// cleanup: t.TempDir() embeds the test name, and a unix socket path must
// stay under about 100 bytes.
func ShortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gh-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// Logger writes warnings and errors to the test log, and to stderr once
// the test is over (t.Log would panic then; etcd goroutines may still log
// while shutting down).
func Logger(t testing.TB) *slog.Logger {
	w := &tlogWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tlogWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *tlogWriter) Write(p []byte) (int, error) {
	if w.done.Load() {
		return os.Stderr.Write(p)
	}
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// EtcdBinary returns the path of a real etcd binary of the version in
// go.mod: $GATEHOUSE_ETCD_BIN, or one built with
// `go build go.etcd.io/etcd/server/v3` from the module cache and kept in
// the user cache dir for later runs.
func EtcdBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("GATEHOUSE_ETCD_BIN"); p != "" {
		return p
	}
	binOnce.Do(func() { binPath, binErr = buildEtcd() })
	if binErr != nil {
		t.Fatalf("build etcd: %v", binErr)
	}
	return binPath
}

func buildEtcd() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", "go.etcd.io/etcd/server/v3").Output()
	version := strings.TrimSpace(string(out))
	if err != nil || version == "" {
		return "", fmt.Errorf("etcd server version from go.mod: %w", err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "gatehouse-test")
	path := filepath.Join(dir, "etcd-"+version)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Build beside the target and rename: test processes of several
	// packages may build at the same time.
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	out, err = exec.CommandContext(ctx, "go", "build", "-o", tmp, "go.etcd.io/etcd/server/v3").CombinedOutput()
	if err != nil {
		_ = os.Remove(tmp)
		return "", &buildError{err: err, out: string(out)}
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	return path, nil
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }
