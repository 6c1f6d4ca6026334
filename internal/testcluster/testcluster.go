// Package testcluster runs accessd in-process for tests and benchmarks:
// embedded etcd, the services, the resource index and the HTTPS API on a
// loopback port with real TLS, plus helpers to add users and log them in
// through invite tokens as the CLI does.
package testcluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/inventory"
	"github.com/gatehouse-dev/gatehouse/manifest"
	"github.com/gatehouse-dev/gatehouse/metrics"
	"github.com/gatehouse-dev/gatehouse/pki"
	"github.com/gatehouse-dev/gatehouse/policies"
	"github.com/gatehouse-dev/gatehouse/server"
	"github.com/gatehouse-dev/gatehouse/service"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/gatehouse-dev/gatehouse/store/embedded"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

// Name is the cluster name used in resource IDs.
const Name = "test.local"

// Cluster is a running in-process accessd.
type Cluster struct {
	t     testing.TB
	URL   string
	Svc   *service.Service
	Store *store.Store
	Index *inventory.Index
	// Server is the API server, for tests that mount more routes on it
	// (server.Mount) or serve its handler elsewhere.
	Server *server.Server
	Admin  *api.Client
	Pin    string
	Pool   *x509.CertPool
}

// Start runs a cluster until the test ends. Its etcd skips fsync, which
// is fine for tests.
func Start(t testing.TB) *Cluster {
	t.Helper()
	return start(t, storetest.Embedded(t))
}

// StartOnStore runs a cluster on st with a policy engine, for tests that
// also wire something else to the same store.
func StartOnStore(t testing.TB, st *store.Store, engine access.PolicyEngine, check func(access.PolicyBundle) error) *Cluster {
	t.Helper()
	return start(t, st, service.WithPolicy(engine, check))
}

// StartWithPolicy runs a cluster whose requests are decided by the policy
// engine, and which accepts bundles that check passes.
func StartWithPolicy(t testing.TB, engine access.PolicyEngine, check func(access.PolicyBundle) error) *Cluster {
	t.Helper()
	return start(t, storetest.Embedded(t), service.WithPolicy(engine, check))
}

// StartDurable runs a cluster whose embedded etcd fsyncs as in production,
// for benchmarks.
func StartDurable(t testing.TB) *Cluster {
	t.Helper()
	m, err := embedded.Start(context.Background(), embedded.Config{DataDir: storetest.ShortTempDir(t), Logger: storetest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	st, err := store.Dial(context.Background(), store.Config{Endpoints: m.Endpoints(), Logger: storetest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return start(t, st)
}

// StartWithConfig runs a cluster whose service has cfg (ClusterName is
// always Name), e.g. a CRLBaseURL for desktop credentials.
func StartWithConfig(t testing.TB, cfg service.Config) *Cluster {
	t.Helper()
	return startConfig(t, storetest.Embedded(t), cfg)
}

// StartCustom runs a cluster on st with service configuration cfg and
// options opts (ClusterName is always Name; no options: the built-in
// policy bundle, following pushes).
func StartCustom(t testing.TB, st *store.Store, cfg service.Config, opts ...service.Option) *Cluster {
	t.Helper()
	return startConfig(t, st, cfg, opts...)
}

func start(t testing.TB, st *store.Store, opts ...service.Option) *Cluster {
	t.Helper()
	return startConfig(t, st, service.Config{}, opts...)
}

func startConfig(t testing.TB, st *store.Store, cfg service.Config, opts ...service.Option) *Cluster {
	t.Helper()
	cfg.ClusterName = Name
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	idx := inventory.New()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if len(opts) == 0 {
		// As accessd: the built-in bundle, following pushes to the store.
		engine, err := policies.New(policies.Default())
		if err != nil {
			t.Fatal(err)
		}
		live, err := policies.Follow(ctx, st, engine, log)
		if err != nil {
			t.Fatal(err)
		}
		opts = []service.Option{service.WithPolicy(live, policies.CheckBundle)}
	}
	// As accessd with a key-encryption key set: the cluster CA key sealed,
	// a CA over the key sets kept in memory.
	kek := kekFor(t, st)
	keys, err := st.CacheCAKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts, service.WithIssuer(ca.NewAuthority(ca.NewManager(keys, kek))), service.WithKEK(kek))
	m := metrics.New(prometheus.NewRegistry())
	svc := service.New(cfg, st, idx, append([]service.Option{service.WithLogger(log), service.WithMetrics(m)}, opts...)...)
	if _, err := svc.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	go func() { _ = idx.Run(ctx, st) }()
	ca, err := svc.ClusterAuthority(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := server.TLSConfig(ca, []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(svc, log, m, st.Ping)
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx, ln, tc); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	c := &Cluster{t: t, URL: "https://" + ln.Addr().String(), Svc: svc, Store: st, Index: idx, Server: srv, Pin: ca.Pin(), Pool: ca.Pool()}
	id, err := svc.MintIdentity(ctx, c.URL, service.AdminUser, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c.Admin = c.ClientFor(id.CertPEM, id.KeyPEM)
	<-idx.Ready()
	return c
}

// keks holds one key-encryption key per store, so clusters started on the
// same store (replicas) open each other's sealed keys.
var keks sync.Map // *store.Store -> ca.KEK

func kekFor(t testing.TB, st *store.Store) ca.KEK {
	t.Helper()
	fresh, err := ca.NewKEK()
	if err != nil {
		t.Fatal(err)
	}
	kek, loaded := keks.LoadOrStore(st, fresh)
	if !loaded {
		t.Cleanup(func() { keks.Delete(st) })
	}
	return kek.(ca.KEK)
}

// ClientFor builds a client with a session certificate.
func (c *Cluster) ClientFor(certPEM, keyPEM string) *api.Client {
	c.t.Helper()
	cert, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		c.t.Fatal(err)
	}
	cl, err := api.New(api.Config{Server: c.URL, RootCAs: c.Pool, Certificate: &cert})
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// Anonymous is a client with no identity that trusts the server by pin,
// as a first login does.
func (c *Cluster) Anonymous() *api.Client {
	c.t.Helper()
	cl, err := api.New(api.Config{Server: c.URL, VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
		return pki.VerifyPin(c.Pin, raw)
	}})
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// Apply creates the objects of a YAML manifest as the admin.
func (c *Cluster) Apply(manifestYAML string) {
	c.t.Helper()
	objs, err := manifest.Decode([]byte(manifestYAML))
	if err != nil {
		c.t.Fatal(err)
	}
	for _, o := range objs {
		if _, err := c.Admin.PutObject(context.Background(), o.Kind, o.JSON); err != nil {
			c.t.Fatalf("apply %s %s: %v", o.Kind, o.Name, err)
		}
	}
}

// Login adds a user through an invite token and logs them in with the
// password NAME-password.
func (c *Cluster) Login(name string, roles ...string) *api.Client {
	c.t.Helper()
	ctx := context.Background()
	u := access.User{Kind: access.KindUser, Version: "v1", Metadata: access.Metadata{Name: name},
		Spec: access.UserSpec{Roles: roles, Traits: map[string][]string{"logins": {name}}}}
	res, err := c.Admin.AddUser(ctx, u)
	if err != nil {
		c.t.Fatalf("add user %s: %v", name, err)
	}
	_, pin, err := pki.ParseInvite(res.InviteToken)
	if err != nil || pin != c.Pin {
		c.t.Fatalf("invite token pin = %q, %v; want %q", pin, err, c.Pin)
	}
	keyPEM, csrPEM, err := pki.NewKeyAndCSR(name)
	if err != nil {
		c.t.Fatal(err)
	}
	lr, err := c.Anonymous().Login(ctx, api.LoginRequest{User: name, Password: name + "-password", InviteToken: res.InviteToken, CSR: string(csrPEM)})
	if err != nil {
		c.t.Fatalf("login %s: %v", name, err)
	}
	return c.ClientFor(lr.CertPEM, string(keyPEM))
}

// DemoRoles are the roles most tests start from: alice-style requesters
// may ask for dba or search as access; reviewers review both.
const DemoRoles = `
kind: role
version: v1
metadata: {name: dba}
spec:
  allow:
    db_labels: {env: prod}
    db_users: [dba]
  options: {max_session_ttl: 1h}
---
kind: role
version: v1
metadata: {name: access}
spec:
  allow:
    node_labels: {"*": "*"}
    db_labels: {"*": "*"}
  deny:
    node_labels: {env: secret}
---
kind: role
version: v1
metadata: {name: requester}
spec:
  allow:
    request:
      roles: [dba]
      search_as_roles: [access]
      suggested_reviewers: [bob]
      max_duration: 8h
---
kind: role
version: v1
metadata: {name: reviewer}
spec:
  allow:
    review_requests: {roles: [dba, access]}
`

// Demo applies DemoRoles and logs in alice (requester) and bob (reviewer).
func (c *Cluster) Demo() (alice, bob *api.Client) {
	c.Apply(DemoRoles)
	return c.Login("alice", "requester"), c.Login("bob", "reviewer")
}

// JSON converts a YAML document to JSON.
func JSON(t testing.TB, doc string) json.RawMessage {
	t.Helper()
	b, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
