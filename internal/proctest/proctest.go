// Package proctest runs a real server binary for a test: it finds the
// binary, picks a free loopback port, starts the process with its output
// captured, waits until the server answers, and stops it when the test ends,
// showing what it logged if the test failed. internal/pgtest,
// internal/mariadbtest and internal/sshdtest configure their servers on top
// of it.
//
// Without the binary the test is skipped, or fails when
// GATEHOUSE_REQUIRE_SERVERS=1 (make test), so a missing package cannot pass
// silently there.
package proctest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// StopGrace is how long a server may take to shut down after its stop
// signal before it is killed.
const StopGrace = 30 * time.Second

// Need finds a binary among candidates (paths, globs or names on the
// PATH); without one the test is skipped, or fails when
// GATEHOUSE_REQUIRE_SERVERS=1. Of several matches of a glob the last in
// lexical order (the newest version) wins.
func Need(t testing.TB, candidates ...string) string {
	t.Helper()
	for _, c := range candidates {
		if strings.ContainsRune(c, '*') {
			m, _ := filepath.Glob(c)
			slices.Sort(m)
			if len(m) > 0 {
				return m[len(m)-1]
			}
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	Missing(t, "needs "+strings.Join(candidates, " or ")+" (make test-deps installs it)")
	return ""
}

// Missing ends a test that lacks a server: skipped, or failed when
// GATEHOUSE_REQUIRE_SERVERS=1.
func Missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("GATEHOUSE_REQUIRE_SERVERS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WriteFile writes a file only its owner can read (a key, a
// configuration) and returns its path.
func WriteFile(t testing.TB, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// ClientTimeout bounds one run of a client binary against a test server.
const ClientTimeout = 30 * time.Second

// RunClient runs a client binary (psql, mariadb) for at most
// ClientTimeout and returns its output, trimmed; on failure the error
// carries what the client said on stderr.
func RunClient(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ClientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), err
}

// Options say how to run a server.
type Options struct {
	// Name names the server in messages ("postgres").
	Name string
	// Stop is the signal that asks the server to shut down when the test
	// ends; it is killed if it has not after StopGrace.
	Stop os.Signal
	// LogFile is a file the server logs to besides its output; Logs shows
	// both.
	LogFile string
}

// Process is a running server.
type Process struct {
	o    Options
	cmd  *exec.Cmd
	out  LogBuffer
	done chan struct{} // closed when the process has exited
	err  error         // how it exited; read after done
}

// Start starts cmd with its stdout and stderr captured and stops it when
// the test ends.
func Start(t testing.TB, cmd *exec.Cmd, o Options) *Process {
	t.Helper()
	p := &Process{o: o, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", o.Name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s log:\n%s", o.Name, p.Logs())
		}
	})
	return p
}

// Stop asks the server to shut down, kills it after StopGrace, and returns
// once it has exited. Stopping a stopped server does nothing.
func (p *Process) Stop() {
	_ = p.cmd.Process.Signal(p.o.Stop)
	select {
	case <-p.done:
	case <-time.After(StopGrace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Ready calls ready, sooner at first and then every 200ms, until it
// returns nil. It returns an error when the process exits first or ready
// still fails after timeout.
func (p *Process) Ready(timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for pause := 10 * time.Millisecond; ; pause = min(2*pause, 200*time.Millisecond) {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready: %v", p.o.Name, p.err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %w", p.o.Name, timeout, err)
		}
		time.Sleep(pause)
	}
}

// Answers is a ready function for Ready: nil once run(query) answers
// want, as a database does once it takes connections.
func Answers(run func(query string) (string, error), query, want string) func() error {
	return func() error {
		if out, err := run(query); err != nil || out != want {
			return fmt.Errorf("%s: %v: %s", query, err, out)
		}
		return nil
	}
}

// Logs returns what the server wrote to its output so far, then its log
// file.
func (p *Process) Logs() string {
	s := p.out.String()
	if p.o.LogFile != "" {
		b, _ := os.ReadFile(p.o.LogFile)
		s += string(b)
	}
	return s
}

// LogSays is a ready function for Ready: nil once the server's output
// holds want.
func (p *Process) LogSays(want string) func() error {
	return func() error {
		if strings.Contains(p.out.String(), want) {
			return nil
		}
		return fmt.Errorf("its log does not say %q", want)
	}
}

// LogBuffer is an output buffer written by one goroutine (a process's
// output copier, a logger) while a test reads it.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
