// Package embedded runs a single-member etcd inside the Gatehouse process.
// It is the only package that imports the etcd server.
//
// Clients reach the member over a unix socket inside the data dir, whose
// mode 0700 is the access control; there is no client TCP port another
// local user could write to, and no peer listener at all (a single member
// never talks to peers, and a peer port would accept raft messages).
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"

	"github.com/gatehouse-dev/gatehouse/store/internal/zapslog"
)

// Defaults of Config.
const (
	DefaultName                    = "gatehouse"
	DefaultQuotaBackendBytes       = 2 << 30
	DefaultAutoCompactionRetention = "1h"
	DefaultStartTimeout            = time.Minute
)

// Config configures the embedded member.
type Config struct {
	// DataDir holds the etcd data (DataDir/etcd) and the client socket
	// (DataDir/etcd.sock). Created, or chmod-ed, to 0700.
	DataDir string
	// Name of the member; default "gatehouse".
	Name   string
	Logger *slog.Logger
	// QuotaBackendBytes is the space quota; default 2 GiB.
	QuotaBackendBytes int64
	// AutoCompactionRetention is the periodic compaction window; default
	// "1h".
	AutoCompactionRetention string
	// StartTimeout bounds the wait for the member to serve; default 1m
	// (replaying a large WAL takes a while).
	StartTimeout time.Duration
	// UnsafeNoFsync skips fsync: a crash may lose or corrupt data. Tests
	// only.
	UnsafeNoFsync bool
}

// Member is a running embedded etcd member.
type Member struct {
	etcd     *embed.Etcd
	endpoint string
	unlock   func()
	once     sync.Once
	closing  atomic.Bool
}

// benign are etcd warnings that do not apply to this setup: the client
// socket is private and etcd auth is not used.
var benign = map[string]bool{
	"Running http and grpc server on single port. This is not recommended for production.": true,
	"simple token is not cryptographically signed":                                         true,
}

// logLevel quiets the benign warnings and the listener errors etcd logs
// while it shuts down.
func (m *Member) logLevel(e zapcore.Entry) zapcore.Level {
	if benign[e.Message] || m.closing.Load() {
		return zapcore.DebugLevel
	}
	return e.Level
}

// SocketName is the client socket's file name inside the data dir.
const SocketName = "etcd.sock"

// maxSocketPath is the portable limit of a unix socket path (sun_path is
// 104 bytes on BSD/macOS, 108 on Linux, including the NUL).
const maxSocketPath = 103

// Start starts the member and waits until it serves clients.
func Start(ctx context.Context, cfg Config) (*Member, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("embedded etcd: no data dir")
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: data dir %s: %w", cfg.DataDir, err)
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.QuotaBackendBytes <= 0 {
		cfg.QuotaBackendBytes = DefaultQuotaBackendBytes
	}
	if cfg.AutoCompactionRetention == "" {
		cfg.AutoCompactionRetention = DefaultAutoCompactionRetention
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	etcdDir := filepath.Join(dir, "etcd")
	for _, d := range []string{dir, etcdDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("embedded etcd: create %s: %w", d, err)
		}
		// MkdirAll leaves an existing directory's mode alone.
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, fmt.Errorf("embedded etcd: chmod %s: %w", d, err)
		}
	}
	sock := filepath.Join(dir, SocketName)
	if len(sock) > maxSocketPath {
		return nil, fmt.Errorf("embedded etcd: socket path %s is %d bytes, the limit is %d: use a shorter data dir", sock, len(sock), maxSocketPath)
	}
	// etcd's unix listener removes an existing socket file, which would
	// steal the socket of a member already running on this dir; the lock
	// makes a second start fail cleanly instead.
	unlock, err := lockDir(filepath.Join(dir, "etcd.lock"))
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: data dir %s: %w", dir, err)
	}

	clientURL := url.URL{Scheme: "unix", Path: sock}
	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = etcdDir
	ec.ListenClientUrls = []url.URL{clientURL}
	ec.AdvertiseClientUrls = []url.URL{clientURL}
	ec.ListenPeerUrls = nil
	// The advertised peer URL only names the member in its own
	// membership record; nothing listens on or dials it.
	peerURL := url.URL{Scheme: "http", Host: "localhost:0"}
	ec.AdvertisePeerUrls = []url.URL{peerURL}
	ec.InitialCluster = ec.InitialClusterFromName(cfg.Name)
	ec.InitialClusterToken = "gatehouse-embedded"
	ec.EnableGRPCGateway = false
	ec.QuotaBackendBytes = cfg.QuotaBackendBytes
	ec.AutoCompactionMode = embed.CompactorModePeriodic
	ec.AutoCompactionRetention = cfg.AutoCompactionRetention
	ec.UnsafeNoFsync = cfg.UnsafeNoFsync
	ec.LogLevel = "warn"
	m := &Member{unlock: unlock, endpoint: clientURL.String()}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(
		zapslog.NewAdjusted(cfg.Logger.With("component", "etcd"), zapcore.WarnLevel, m.logLevel))

	e, err := embed.StartEtcd(ec)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("embedded etcd in %s: start: %w", dir, err)
	}
	m.etcd = e
	t := time.NewTimer(cfg.StartTimeout)
	defer t.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		_ = m.Close()
		return nil, fmt.Errorf("embedded etcd in %s: start: %w", dir, err)
	case <-t.C:
		_ = m.Close()
		return nil, fmt.Errorf("embedded etcd in %s: not ready after %s", dir, cfg.StartTimeout)
	case <-ctx.Done():
		_ = m.Close()
		return nil, fmt.Errorf("embedded etcd in %s: start: %w", dir, ctx.Err())
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		_ = m.Close()
		return nil, fmt.Errorf("embedded etcd: chmod %s: %w", sock, err)
	}
	return m, nil
}

// Endpoints returns the client URLs, for store.Config.Endpoints.
func (m *Member) Endpoints() []string { return []string{m.endpoint} }

// Err reports a fatal error of the running member.
func (m *Member) Err() <-chan error { return m.etcd.Err() }

// Close stops the member and releases the data dir. Safe to call twice.
func (m *Member) Close() error {
	m.once.Do(func() {
		m.closing.Store(true)
		m.etcd.Close()
		m.unlock()
	})
	return nil
}
