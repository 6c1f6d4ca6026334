package proctest_test

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/proctest"
)

func TestReadyOnceTheLogSaysSo(t *testing.T) {
	log := filepath.Join(t.TempDir(), "server.log")
	p := proctest.Start(t, exec.Command("sh", "-c", "echo starting >"+log+"; sleep 0.2; echo listening; exec sleep 30"),
		proctest.Options{Name: "server", Stop: syscall.SIGTERM, LogFile: log})
	start := time.Now()
	if err := p.Ready(5*time.Second, p.LogSays("listening")); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond || waited > 2*time.Second {
		t.Errorf("ready after %s; the server said so after 200ms", waited)
	}
	if logs := p.Logs(); logs != "listening\nstarting\n" {
		t.Errorf("logs %q: want the output, then the log file", logs)
	}
	start = time.Now()
	p.Stop()
	p.Stop()
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("stopping took %s", took)
	}
}

func TestReadyWhenTheServerExits(t *testing.T) {
	p := proctest.Start(t, exec.Command("sh", "-c", "echo bad config; exit 3"), proctest.Options{Name: "server", Stop: syscall.SIGTERM})
	err := p.Ready(5*time.Second, func() error { return errors.New("no answer") })
	if err == nil || !strings.Contains(err.Error(), "server exited before it was ready: exit status 3") {
		t.Fatalf("Ready = %v", err)
	}
	if !strings.Contains(p.Logs(), "bad config") {
		t.Errorf("logs %q", p.Logs())
	}
}

func TestReadyGivesUp(t *testing.T) {
	p := proctest.Start(t, exec.Command("sleep", "30"), proctest.Options{Name: "server", Stop: syscall.SIGTERM})
	err := p.Ready(300*time.Millisecond, proctest.Answers(func(string) (string, error) { return "0", nil }, "select 1", "1"))
	if err == nil || !strings.Contains(err.Error(), "server not ready after 300ms: select 1: <nil>: 0") {
		t.Fatalf("Ready = %v", err)
	}
}

func TestRunClient(t *testing.T) {
	if out, err := proctest.RunClient("sh", "-c", "echo ' alice '"); err != nil || out != "alice" {
		t.Errorf("RunClient = %q, %v", out, err)
	}
	if _, err := proctest.RunClient("sh", "-c", "echo 'access denied' >&2; exit 1"); err == nil || !strings.Contains(err.Error(), "exit status 1: access denied") {
		t.Errorf("RunClient of a failing client = %v", err)
	}
}
