// Package store is Gatehouse's etcd persistence: it implements access.Store
// on an etcd v3 cluster, embedded (store/embedded) or external.
//
// Every value is JSON in an envelope carrying the schema version, every write
// is one transaction that also carries its audit events, and conditional
// writes compare mod revisions, so concurrent writers never lose an update.
package store

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/store/internal/zapslog"
)

// Defaults of Config.
const (
	DefaultPrefix      = "/gatehouse/"
	DefaultDialTimeout = 5 * time.Second
	DefaultOpTimeout   = 5 * time.Second
	DefaultElectionTTL = 15 * time.Second
)

// Config configures the connection to etcd.
type Config struct {
	// Endpoints: "unix:///path/etcd.sock" or "https://host:2379".
	Endpoints []string
	// Prefix of every key; default "/gatehouse/". A missing trailing "/" is
	// added.
	Prefix string
	// TLS for external clusters (client certificate and CA).
	TLS *tls.Config
	// DialTimeout bounds Dial's connectivity check; default 5s.
	DialTimeout time.Duration
	// OpTimeout is the deadline of each operation; default 5s. An operation
	// that hits it fails with access.ErrUnavailable.
	OpTimeout time.Duration
	// ElectionTTL is the session lease of RunElected: how long a crashed
	// leader keeps leadership; default 15s.
	ElectionTTL time.Duration
	Logger      *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = DefaultOpTimeout
	}
	if c.ElectionTTL < time.Second {
		c.ElectionTTL = DefaultElectionTTL
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Store implements access.Store on etcd.
type Store struct {
	client *clientv3.Client
	cfg    Config
	log    *slog.Logger
	roles  roleCache
	seen   seenLeases
}

var _ access.Store = (*Store)(nil)

// Dial connects to etcd and checks it with a read round trip, so that an
// unreachable or misconfigured etcd is reported at start instead of hanging
// the first request.
func Dial(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	eps := strings.Join(cfg.Endpoints, ",")
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints configured")
	}
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		TLS:         cfg.TLS,
		DialTimeout: cfg.DialTimeout,
		// Keepalives notice a half-dead connection (peer vanished without
		// a FIN), so watches and sessions move to a live endpoint.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		PermitWithoutStream:  true,
		Logger:               zapslog.New(cfg.Logger.With("component", "etcd-client"), zapcore.WarnLevel),
		DialOptions: []grpc.DialOption{
			// gRPC's default reconnect backoff grows to 2 minutes; cap it
			// so service resumes soon after etcd is back.
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff: backoff.Config{
					BaseDelay:  250 * time.Millisecond,
					Multiplier: 1.6,
					Jitter:     0.2,
					MaxDelay:   3 * time.Second,
				},
				MinConnectTimeout: cfg.DialTimeout,
			}),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("etcd at %s: %w", eps, err)
	}
	s := New(client, cfg)

	cctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	start := time.Now()
	_, err = client.Get(cctx, s.key(keyCluster), clientv3.WithCountOnly())
	if err != nil {
		_ = client.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("etcd at %s: %w", eps, ctx.Err())
		}
		if isUnavailable(err) {
			// The gRPC error after a wait-for-ready timeout says nothing
			// about why; a plain dial of each endpoint usually does.
			return nil, fmt.Errorf("etcd at %s: unreachable after %s: %w: %w%s",
				eps, time.Since(start).Round(100*time.Millisecond), access.ErrUnavailable, err, probe(cfg))
		}
		return nil, fmt.Errorf("etcd at %s: %w", eps, err)
	}
	return s, nil
}

// probe dials each endpoint once, with TLS for https, and describes what
// failed; it runs only after Dial's check failed.
func probe(cfg Config) string {
	var notes []string
	for _, ep := range cfg.Endpoints {
		u, err := url.Parse(ep)
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: %v", ep, err))
			continue
		}
		network, addr := "tcp", u.Host
		switch u.Scheme {
		case "unix", "unixs":
			network, addr = "unix", u.Host+u.Path
		case "", "http", "https":
		default:
			notes = append(notes, fmt.Sprintf("%s: unknown scheme %q", ep, u.Scheme))
			continue
		}
		d := net.Dialer{Timeout: time.Second}
		conn, err := d.Dial(network, addr)
		if err != nil {
			notes = append(notes, err.Error())
			continue
		}
		if u.Scheme == "https" || u.Scheme == "unixs" {
			tc := &tls.Config{}
			if cfg.TLS != nil {
				tc = cfg.TLS.Clone()
			}
			if tc.ServerName == "" && network == "tcp" {
				tc.ServerName = u.Hostname()
			}
			tconn := tls.Client(conn, tc)
			_ = tconn.SetDeadline(time.Now().Add(time.Second))
			if err := tconn.Handshake(); err != nil {
				notes = append(notes, fmt.Sprintf("%s: TLS handshake: %v", ep, err))
			} else {
				notes = append(notes, fmt.Sprintf("%s: TCP and TLS work, etcd did not answer", ep))
			}
			_ = tconn.Close()
			continue
		}
		notes = append(notes, fmt.Sprintf("%s: connects, etcd did not answer (TLS needed?)", ep))
		_ = conn.Close()
	}
	if len(notes) == 0 {
		return ""
	}
	return " (" + strings.Join(notes, "; ") + ")"
}

// New wraps an existing client. The Store owns it: Close closes it.
func New(client *clientv3.Client, cfg Config) *Store {
	cfg = cfg.withDefaults()
	return &Store{client: client, cfg: cfg, log: cfg.Logger.With("component", "store")}
}

// Client returns the etcd client, for components that keep their own keys
// (outbox, policy bundles) under Prefix.
func (s *Store) Client() *clientv3.Client { return s.client }

// Prefix returns the key prefix, always ending in "/".
func (s *Store) Prefix() string { return s.cfg.Prefix }

// Close closes the etcd client.
func (s *Store) Close() error {
	if err := s.client.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("close etcd client: %w", err)
	}
	return nil
}

// Ping does a linearizable read, which needs an etcd quorum: what /readyz
// should report.
func (s *Store) Ping(ctx context.Context) error {
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	_, err := s.client.Get(octx, s.key(keyCluster), clientv3.WithCountOnly())
	return s.wrap(ctx, "ping etcd", err)
}

// Key layout under the prefix.
const (
	keyRoles     = "roles/"
	keyUsers     = "users/"
	keyPasswords = "passwords/"
	keyTokens    = "tokens/"
	keyLocks     = "locks/"
	keyResources = "resources/"
	keyRequests  = "requests/"
	keyAudit     = "audit/"
	keyCluster   = "cluster/state"
	keyPolicy    = "policy/bundle"
	keyElection  = "election/"
)

func (s *Store) key(parts ...string) string {
	return s.cfg.Prefix + strings.Join(parts, "")
}

// checkName refuses names that would escape their place in the key layout.
func checkName(what, name string) error {
	if name == "" {
		return fmt.Errorf("%s: empty name: %w", what, access.ErrInvalid)
	}
	if strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%s %q: name must not contain \"/\": %w", what, name, access.ErrInvalid)
	}
	return nil
}

func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.OpTimeout)
}

// wrap adds context to an etcd error and classifies it: the caller's own
// cancellation stays ctx.Err(); everything that means "etcd cannot be
// reached right now", including our OpTimeout, becomes ErrUnavailable.
func (s *Store) wrap(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%s: %w", what, cerr)
	}
	if isUnavailable(err) {
		return fmt.Errorf("%s: etcd %w: %w", what, access.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: etcd: %w", what, err)
}

func isUnavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, clientv3.ErrNoAvailableEndpoints) ||
		errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code() == codes.Unavailable
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return strings.Contains(err.Error(), "connection refused")
}

// envelope is the stored form of every value.
type envelope struct {
	Schema int             `json:"schema"`
	Data   json.RawMessage `json:"data"`
}

func encode(v any) (string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode: %w", err)
	}
	b, err := json.Marshal(envelope{Schema: access.SchemaVersion, Data: data})
	if err != nil {
		return "", fmt.Errorf("encode envelope: %w", err)
	}
	return string(b), nil
}

func decode(kv *mvccpb.KeyValue, v any) error {
	var env envelope
	if err := json.Unmarshal(kv.Value, &env); err != nil {
		return fmt.Errorf("decode %s: %w", kv.Key, err)
	}
	if env.Schema < 1 || env.Schema > access.SchemaVersion {
		return fmt.Errorf("decode %s: schema version %d not supported (this release knows %d)", kv.Key, env.Schema, access.SchemaVersion)
	}
	if err := json.Unmarshal(env.Data, v); err != nil {
		return fmt.Errorf("decode %s: %w", kv.Key, err)
	}
	return nil
}

// ErrNotLeader is returned by writes made with a RunElected context after
// leadership moved elsewhere; nothing was written. It wraps
// access.ErrConflict.
var ErrNotLeader = fmt.Errorf("leadership lost: %w", access.ErrConflict)

// txn commits one transaction under OpTimeout. When ctx carries a leader
// (RunElected), the leader key's create revision is added to the compares
// and a lost leadership is reported as ErrNotLeader instead of a plain
// compare failure. Without compares the Then branch always runs.
func (s *Store) txn(ctx context.Context, what string, cmps []clientv3.Cmp, then []clientv3.Op, els ...clientv3.Op) (*clientv3.TxnResponse, error) {
	l, guarded := LeaderFrom(ctx)
	if guarded {
		cmps = append(cmps, l.Cmp())
		els = append(els, clientv3.OpGet(l.Key))
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	resp, err := s.client.Txn(octx).If(cmps...).Then(then...).Else(els...).Commit()
	if err != nil {
		return nil, s.wrap(ctx, what, err)
	}
	if guarded && !resp.Succeeded {
		kvs := resp.Responses[len(resp.Responses)-1].GetResponseRange().GetKvs()
		if len(kvs) == 0 || kvs[0].CreateRevision != l.Rev {
			return nil, fmt.Errorf("%s: %w", what, ErrNotLeader)
		}
		resp.Responses = resp.Responses[:len(resp.Responses)-1]
	}
	return resp, nil
}

// get reads one key or, with opts, a range, under OpTimeout.
func (s *Store) get(ctx context.Context, what, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	resp, err := s.client.Get(octx, key, opts...)
	if err != nil {
		return nil, s.wrap(ctx, what, err)
	}
	return resp, nil
}

func absent(key string) clientv3.Cmp  { return clientv3.Compare(clientv3.CreateRevision(key), "=", 0) }
func present(key string) clientv3.Cmp { return clientv3.Compare(clientv3.CreateRevision(key), ">", 0) }
func unchanged(key string, rev int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(key), "=", rev)
}
