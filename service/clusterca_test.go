package service_test

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/internal/proctest"
	"github.com/gatehouse-dev/gatehouse/inventory"
	"github.com/gatehouse-dev/gatehouse/pki"
	"github.com/gatehouse-dev/gatehouse/service"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

// replica is a service as accessd starts it: kek may be zero (none set).
func replica(st *store.Store, kek ca.KEK, log *proctest.LogBuffer) *service.Service {
	if log == nil {
		log = &proctest.LogBuffer{}
	}
	return service.New(service.Config{ClusterName: "test.local"}, st, inventory.New(),
		service.WithKEK(kek), service.WithLogger(slog.New(slog.NewTextHandler(log, nil))))
}

func newKEK(t *testing.T) ca.KEK {
	t.Helper()
	k, err := ca.NewKEK()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rawClusterState is the cluster state as etcd holds it, with its mod
// revision.
func rawClusterState(t *testing.T, st *store.Store) ([]byte, int64) {
	t.Helper()
	resp, err := st.Client().Get(context.Background(), st.Prefix()+"cluster/state")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("read cluster state from etcd: %v", err)
	}
	return resp.Kvs[0].Value, resp.Kvs[0].ModRevision
}

// checkSessions: the service signs session certificates that its own CA
// (pin) verifies.
func checkSessions(t *testing.T, svc *service.Service, wantPin string) {
	t.Helper()
	ctx := context.Background()
	certPEM, pin, err := svc.ClusterCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pin != wantPin {
		t.Fatalf("CA pin %s, want %s", pin, wantPin)
	}
	id, err := svc.MintIdentity(ctx, "https://127.0.0.1:3025", service.AdminUser, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCertificate([]byte(id.CertPEM))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("session certificate does not verify with the cluster CA: %v", err)
	}
}

func bootstrap(t *testing.T, svc *service.Service) {
	t.Helper()
	if _, err := svc.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func pinOf(t *testing.T, svc *service.Service) string {
	t.Helper()
	_, pin, err := svc.ClusterCA(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return pin
}

// A new cluster started with a key-encryption key stores its CA key
// sealed: etcd holds no private key in the clear.
func TestNewClusterSealsItsCAKey(t *testing.T) {
	st := storetest.Embedded(t)
	var log proctest.LogBuffer
	svc := replica(st, newKEK(t), &log)
	bootstrap(t, svc)
	raw, _ := rawClusterState(t, st)
	if bytes.Contains(raw, []byte("PRIVATE KEY")) || !bytes.Contains(raw, []byte(`"ca_key_sealed"`)) {
		t.Fatalf("etcd holds the cluster state %s", raw)
	}
	checkSessions(t, svc, pinOf(t, svc))
	if strings.Contains(log.String(), "unencrypted") {
		t.Fatalf("warned about a clear key: %s", log.String())
	}
}

// Without a key-encryption key the key stays in the clear, as before, and
// every start says so and how to fix it.
func TestClusterWithoutKEKWarns(t *testing.T) {
	st := storetest.Embedded(t)
	var log proctest.LogBuffer
	svc := replica(st, ca.KEK{}, &log)
	bootstrap(t, svc)
	raw, _ := rawClusterState(t, st)
	if !bytes.Contains(raw, []byte("PRIVATE KEY")) || bytes.Contains(raw, []byte(`"ca_key_sealed"`)) {
		t.Fatalf("etcd holds %s, want the key in the clear", raw)
	}
	if l := log.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "cluster CA key is stored unencrypted") || !strings.Contains(l, "ca.kek_file") {
		t.Fatalf("log: %s", l)
	}
	checkSessions(t, svc, pinOf(t, svc))
}

// A cluster whose key is in the clear is sealed at the first start with a
// KEK: the same CA (pin, and keys derived from its key) keeps working, an
// audit event records it, and later starts write nothing.
func TestClearClusterKeyIsSealedOnStart(t *testing.T) {
	st := storetest.Embedded(t)
	ctx := context.Background()
	before := replica(st, ca.KEK{}, nil)
	bootstrap(t, before)
	pin := pinOf(t, before)
	clearState, err := st.GetCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Mattermost buttons are signed with a key derived from the CA key;
	// what chatops derived before sealing must not change.
	wantDerived, err := hkdf.Key(sha256.New, []byte(clearState.CAKeyPEM), nil, "gatehouse/mattermost/button-key/v1", 32)
	if err != nil {
		t.Fatal(err)
	}

	kek := newKEK(t)
	var log proctest.LogBuffer
	after := replica(st, kek, &log)
	bootstrap(t, after)
	raw, rev := rawClusterState(t, st)
	if bytes.Contains(raw, []byte("PRIVATE KEY")) || !bytes.Contains(raw, []byte(`"ca_key_sealed"`)) {
		t.Fatalf("after sealing etcd holds %s", raw)
	}
	if !strings.Contains(log.String(), "sealed the cluster CA key") {
		t.Fatalf("log: %s", log.String())
	}
	checkSessions(t, after, pin)
	derived, err := after.DeriveClusterKey(ctx, "gatehouse/mattermost/button-key/v1", 32)
	if err != nil || !bytes.Equal(derived, wantDerived) {
		t.Fatalf("derived key changed by sealing: %v", err)
	}
	events, err := st.ListAudit(ctx, access.AuditFilter{Type: "cluster.ca_key_sealed"})
	if err != nil || len(events) != 1 {
		t.Fatalf("audit: %+v, %v", events, err)
	}

	bootstrap(t, replica(st, kek, nil))
	if _, again := rawClusterState(t, st); again != rev {
		t.Fatalf("a start with the key already sealed wrote the cluster state (revision %d -> %d)", rev, again)
	}
}

// A sealed key that the KEK given does not open (another KEK, or none)
// stops the start with a clear error and rewrites nothing.
func TestSealedClusterKeyThatDoesNotOpenStopsTheStart(t *testing.T) {
	st := storetest.Embedded(t)
	kek := newKEK(t)
	bootstrap(t, replica(st, kek, nil))
	raw, rev := rawClusterState(t, st)
	tests := []struct {
		name    string
		kek     ca.KEK
		wantIs  error
		wantMsg string
	}{
		{"another KEK", newKEK(t), ca.ErrKEKMismatch, "key-encryption key does not open"},
		{"no KEK", ca.KEK{}, ca.ErrClusterKeySealed, "give the one it was sealed with (ca.kek_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log proctest.LogBuffer
			svc := replica(st, tt.kek, &log)
			_, err := svc.Bootstrap(context.Background())
			if !errors.Is(err, tt.wantIs) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Bootstrap = %v, want %v", err, tt.wantIs)
			}
			if after, afterRev := rawClusterState(t, st); afterRev != rev || !bytes.Equal(after, raw) {
				t.Fatal("a refused start rewrote the cluster state")
			}
			if _, err := svc.MintIdentity(context.Background(), "https://x", service.AdminUser, time.Hour); !errors.Is(err, tt.wantIs) {
				t.Fatalf("MintIdentity = %v, want %v", err, tt.wantIs)
			}
		})
	}
}

// Replicas starting together on a cluster whose key is in the clear: one
// seals it, the others find it sealed; the key is sealed once and opens.
// A replica with another KEK loses with a clear error instead of sealing
// over it.
func TestConcurrentSealing(t *testing.T) {
	st := storetest.Embedded(t)
	ctx := context.Background()
	first := replica(st, ca.KEK{}, nil)
	bootstrap(t, first)
	pin := pinOf(t, first)

	kek := newKEK(t)
	const n = 6
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = replica(st, kek, nil).Bootstrap(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	events, err := st.ListAudit(ctx, access.AuditFilter{Type: "cluster.ca_key_sealed"})
	if err != nil || len(events) != 1 {
		t.Fatalf("sealed %d times (%v), want once", len(events), err)
	}
	raw, _ := rawClusterState(t, st)
	if bytes.Contains(raw, []byte("PRIVATE KEY")) {
		t.Fatalf("etcd holds %s", raw)
	}
	checkSessions(t, replica(st, kek, nil), pin)

	// Two KEKs racing on a clear key: exactly one seals, the other is told
	// its KEK does not open the key.
	st2 := storetest.Embedded(t)
	bootstrap(t, replica(st2, ca.KEK{}, nil))
	keks := []ca.KEK{newKEK(t), newKEK(t)}
	for i := range keks {
		wg.Go(func() { _, errs[i] = replica(st2, keks[i], nil).Bootstrap(ctx) })
	}
	wg.Wait()
	won := -1
	for i := range keks {
		switch {
		case errs[i] == nil:
			won = i
		case !errors.Is(errs[i], ca.ErrKEKMismatch):
			t.Fatalf("replica %d: %v", i, errs[i])
		}
	}
	if won < 0 || errs[1-won] == nil {
		t.Fatalf("two KEKs: %v", fmt.Sprint(errs[:2]))
	}
	checkSessions(t, replica(st2, keks[won], nil), pinOf(t, replica(st2, keks[won], nil)))
}

// TestClusterKeyAcrossKEKRotation: through a KEK rotation the cluster CA
// keeps signing sessions with the same pin, and the keys derived from it
// (which replicas share) stay the same: running replicas with the new KEK
// and the old one as previous work before and after the re-seal, ones with
// the new KEK alone after it; one left with only the old KEK stops with an
// error naming both KEKs and writes nothing.
func TestClusterKeyAcrossKEKRotation(t *testing.T) {
	st := storetest.Embedded(t)
	ctx := context.Background()
	oldK, newK := newKEK(t), newKEK(t)
	first := replica(st, oldK, nil)
	bootstrap(t, first)
	pin := pinOf(t, first)
	derived, err := first.DeriveClusterKey(ctx, "test", 32)
	if err != nil {
		t.Fatal(err)
	}
	both, err := newK.WithPrevious(oldK)
	if err != nil {
		t.Fatal(err)
	}
	during := replica(st, both, nil)
	bootstrap(t, during)
	checkSessions(t, during, pin)

	if _, err := ca.RotateKEK(ctx, st, oldK, newK, "system"); err != nil {
		t.Fatal(err)
	}
	for name, svc := range map[string]*service.Service{"new and previous KEK": during, "new KEK only": replica(st, newK, nil)} {
		bootstrap(t, svc)
		checkSessions(t, svc, pin)
		if again, err := svc.DeriveClusterKey(ctx, "test", 32); err != nil || !bytes.Equal(again, derived) {
			t.Fatalf("%s: derived key changed with the KEK (%v)", name, err)
		}
	}
	_, rev := rawClusterState(t, st)
	_, err = replica(st, oldK, nil).Bootstrap(ctx)
	want := fmt.Sprintf("sealed under KEK %s, this process has KEK %s", newK.ID(), oldK.ID())
	if !errors.Is(err, ca.ErrKEKMismatch) || !strings.Contains(err.Error(), want) {
		t.Fatalf("start with the old KEK after the rotation: %v, want %q", err, want)
	}
	if _, after := rawClusterState(t, st); after != rev {
		t.Fatal("a refused start wrote the cluster state")
	}
}
