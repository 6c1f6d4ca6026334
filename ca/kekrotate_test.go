package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

// kekCAs are the CAs of the rotation tests; db/orders has two keys (a
// rotation published v2), so 4 credential CA keys in all.
var kekCAs = []struct{ typ, resource string }{
	{access.CATypeSSH, ""}, {access.CATypeDB, "orders"}, {access.CATypeApp, ""},
}

// sealedRecords is what RotateKEK counts on kekStore's store: 4 CA keys
// and the cluster CA key.
const sealedRecords = 5

// kekStore is a store whose ssh, db/orders (two keys) and app CA keys and
// cluster CA key are sealed under kek. With legacy, the ssh keys and the
// cluster key are sealed as before KEK ids (what every cluster holds
// before its first rotation).
func kekStore(t *testing.T, kek KEK, legacy bool) *store.Store {
	t.Helper()
	st := storetest.Embedded(t)
	ctx := keysCtx(t)
	m := NewManager(st, kek)
	for _, c := range kekCAs {
		_, err := m.Ensure(ctx, c.typ, c.resource)
		keysNoErr(t, err)
	}
	_, err := m.Rotate(ctx, access.CATypeDB, "orders", PhasePublish)
	keysNoErr(t, err)
	cs, err := NewClusterState("test.local", time.Now(), kek)
	keysNoErr(t, err)
	if legacy {
		sealed, _ := base64.StdEncoding.DecodeString(cs.CAKeySealed)
		plain, err := kek.Open(sealed, clusterKeyAAD())
		keysNoErr(t, err)
		cs.CAKeySealed = base64.StdEncoding.EncodeToString(sealLegacy(t, kek, plain, clusterKeyAAD(), nil))

		set, err := st.GetCAKeys(ctx, access.CATypeSSH, "")
		keysNoErr(t, err)
		aad := keyAAD(st.CAKeyPath(access.CATypeSSH, ""), access.CATypeSSH, 1)
		plain, err = kek.Open(set.Keys[0].Sealed, aad)
		keysNoErr(t, err)
		set.Keys[0].Sealed = sealLegacy(t, kek, plain, aad, nil)
		_, err = st.PutCAKeys(ctx, set)
		keysNoErr(t, err)
	}
	_, _, err = st.InitCluster(ctx, cs)
	keysNoErr(t, err)
	return st
}

// etcdRevisions is every key under the store's prefix with its mod
// revision: equal before and after means nothing was written.
func etcdRevisions(t *testing.T, st *store.Store) map[string]int64 {
	t.Helper()
	resp, err := st.Client().Get(keysCtx(t), st.Prefix(), clientv3.WithPrefix())
	keysNoErr(t, err)
	revs := map[string]int64{}
	for _, kv := range resp.Kvs {
		revs[string(kv.Key)] = kv.ModRevision
	}
	return revs
}

func sameRevisions(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// sealedUnder checks that every sealed record names kek and opens under it
// alone, and that none opens under not.
func sealedUnder(t *testing.T, st *store.Store, kek, not KEK) {
	t.Helper()
	ctx := keysCtx(t)
	for _, c := range kekCAs {
		set, err := st.GetCAKeys(ctx, c.typ, c.resource)
		keysNoErr(t, err)
		for _, k := range set.Keys {
			if id := SealedKEKID(k.Sealed); id != kek.ID() {
				t.Fatalf("%s key v%d names KEK %q, want %s", caName(c.typ, c.resource), k.Version, id, kek.ID())
			}
		}
		if err := NewManager(st, kek).Verify(ctx, c.typ, c.resource); err != nil {
			t.Fatalf("%s under KEK %s: %v", caName(c.typ, c.resource), kek.ID(), err)
		}
		err = NewManager(st, not).Verify(ctx, c.typ, c.resource)
		if !errors.Is(err, ErrKEKMismatch) || !strings.Contains(err.Error(), "sealed under KEK "+kek.ID()) {
			t.Fatalf("%s opened under KEK %s: %v", caName(c.typ, c.resource), not.ID(), err)
		}
	}
	cs, err := st.GetCluster(ctx)
	keysNoErr(t, err)
	if ClusterKeyKEKID(cs) != kek.ID() {
		t.Fatalf("cluster CA key names KEK %q, want %s", ClusterKeyKEKID(cs), kek.ID())
	}
	if _, err := LoadClusterCA(cs, kek); err != nil {
		t.Fatalf("cluster CA under KEK %s: %v", kek.ID(), err)
	}
	if _, err := LoadClusterCA(cs, not); !errors.Is(err, ErrKEKMismatch) {
		t.Fatalf("cluster CA opened under KEK %s: %v", not.ID(), err)
	}
}

func kekRotatedEvents(t *testing.T, st *store.Store) []access.AuditEvent {
	t.Helper()
	evs, err := st.ListAudit(keysCtx(t), access.AuditFilter{Type: EventKEKRotated})
	keysNoErr(t, err)
	return evs
}

// publics is each CA key's public key and certificate, and the cluster CA
// certificate: a KEK rotation must not change any of them.
func publics(t *testing.T, st *store.Store) string {
	t.Helper()
	ctx := keysCtx(t)
	var b strings.Builder
	for _, c := range kekCAs {
		set, err := st.GetCAKeys(ctx, c.typ, c.resource)
		keysNoErr(t, err)
		for _, k := range set.Keys {
			fmt.Fprintf(&b, "%s v%d %s %s %s\n", caName(c.typ, c.resource), k.Version, k.State, k.Public, k.CertPEM)
		}
	}
	cs, err := st.GetCluster(ctx)
	keysNoErr(t, err)
	b.WriteString(cs.CACertPEM)
	return b.String()
}

// TestRotateKEK: every CA key and the cluster CA key, including ones
// sealed before KEK ids, move to the new KEK: they open under it and not
// under the old one, their public keys unchanged; one ca.kek_rotated event
// says so. A second run writes nothing.
func TestRotateKEK(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("sealed before KEK ids %v", legacy), func(t *testing.T) {
			oldK, newK := kekForTest(t), kekForTest(t)
			st := kekStore(t, oldK, legacy)
			ctx := keysCtx(t)
			before := publics(t, st)

			r, err := RotateKEK(ctx, st, oldK, newK, "system")
			keysNoErr(t, err)
			want := KEKRotation{OldKEK: oldK.ID(), NewKEK: newK.ID(), Resealed: sealedRecords, ClusterKey: "resealed"}
			if r != want {
				t.Fatalf("RotateKEK = %+v, want %+v", r, want)
			}
			sealedUnder(t, st, newK, oldK)
			if after := publics(t, st); after != before {
				t.Fatalf("public keys changed:\n%s\n%s", before, after)
			}
			evs := kekRotatedEvents(t, st)
			if len(evs) != 1 || evs[0].Outcome != "success" || evs[0].Actor != "system" ||
				evs[0].Fields["old_kek"] != oldK.ID() || evs[0].Fields["new_kek"] != newK.ID() || evs[0].Fields["resealed"] != float64(sealedRecords) {
				t.Fatalf("audit: %+v", evs)
			}

			revs := etcdRevisions(t, st)
			again, err := RotateKEK(ctx, st, oldK, newK, "system")
			keysNoErr(t, err)
			if again.Resealed != 0 || again.AlreadyNew != sealedRecords || again.ClusterKey != "already" {
				t.Fatalf("second run = %+v", again)
			}
			if !sameRevisions(revs, etcdRevisions(t, st)) {
				t.Fatal("the second run wrote to etcd")
			}
		})
	}
}

// TestRotateKEKResumes: a rotation interrupted after some records (here
// ssh and db/orders re-sealed, app and the cluster key not) is finished by
// the next run, which re-seals only the rest. Meanwhile a replica with the
// new KEK and the old one as previous opens every record.
func TestRotateKEKResumes(t *testing.T) {
	oldK, newK := kekForTest(t), kekForTest(t)
	st := kekStore(t, oldK, true)
	ctx := keysCtx(t)
	for _, c := range kekCAs[:2] {
		_, _, err := ResealCAKeys(ctx, st, c.typ, c.resource, oldK, newK)
		keysNoErr(t, err)
	}
	both, err := newK.WithPrevious(oldK)
	keysNoErr(t, err)
	for _, c := range kekCAs {
		keysNoErr(t, NewManager(st, both).Verify(ctx, c.typ, c.resource))
	}
	if err := NewManager(st, oldK).Verify(ctx, access.CATypeSSH, ""); !errors.Is(err, ErrKEKMismatch) {
		t.Fatalf("ssh re-sealed, but opens under the old KEK: %v", err)
	}

	r, err := RotateKEK(ctx, st, oldK, newK, "system")
	keysNoErr(t, err)
	if r.Resealed != 2 || r.AlreadyNew != 3 || r.ClusterKey != "resealed" {
		t.Fatalf("resumed run = %+v, want 2 re-sealed (app, cluster key), 3 already", r)
	}
	sealedUnder(t, st, newK, oldK)
}

// TestRotateKEKRefuses: a rotation that cannot finish changes nothing and
// says why: a wrong old KEK names the KEK the record is under and the two
// given.
func TestRotateKEKRefuses(t *testing.T) {
	oldK, newK, wrong, third := kekForTest(t), kekForTest(t), kekForTest(t), kekForTest(t)
	interrupted := func(t *testing.T, st *store.Store) { // ssh already re-sealed
		_, _, err := ResealCAKeys(keysCtx(t), st, access.CATypeSSH, "", oldK, newK)
		keysNoErr(t, err)
	}
	tests := []struct {
		name     string
		setup    func(*testing.T, *store.Store)
		from, to KEK
		wantIs   error
		want     []string
	}{
		{"a wrong old KEK", nil, wrong, newK, ErrKEKMismatch,
			[]string{"CA app key v1", "sealed under KEK " + oldK.ID(), "neither the old KEK " + wrong.ID() + " nor the new KEK " + newK.ID(), "nothing was changed"}},
		{"a wrong old KEK after an interrupted run", interrupted, wrong, newK, ErrKEKMismatch,
			[]string{"sealed under KEK " + oldK.ID(), "nothing was changed"}},
		{"a CA sealed under a third KEK", func(t *testing.T, st *store.Store) {
			_, err := NewManager(st, third).Ensure(keysCtx(t), access.CATypeKube, "prod")
			keysNoErr(t, err)
		}, oldK, newK, ErrKEKMismatch,
			[]string{"CA kube/prod key v1", "sealed under KEK " + third.ID(), "nothing was changed"}},
		{"the same KEK twice", nil, oldK, oldK, access.ErrInvalid, []string{"the same"}},
		{"no old KEK", nil, KEK{}, newK, access.ErrInvalid, []string{"old and the new"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := kekStore(t, oldK, false)
			ctx := keysCtx(t)
			if tt.setup != nil {
				tt.setup(t, st)
			}
			revs := etcdRevisions(t, st)
			_, err := RotateKEK(ctx, st, tt.from, tt.to, "system")
			if !errors.Is(err, tt.wantIs) {
				t.Fatalf("RotateKEK = %v, want %v", err, tt.wantIs)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not say %q", err, w)
				}
			}
			if !sameRevisions(revs, etcdRevisions(t, st)) {
				t.Fatal("a refused rotation wrote to etcd")
			}
			if evs := kekRotatedEvents(t, st); len(evs) != 0 {
				t.Fatalf("a refused rotation was audited as one: %+v", evs)
			}
		})
	}
}

// kekReplica is accessd's CA as it runs with one KEK configuration: the
// key sets followed in memory, an Authority over them, and the cluster
// CA read as service.authority reads it.
type kekReplica struct {
	st   *store.Store
	kek  KEK
	auth *Authority
}

func startKEKReplica(t *testing.T, st *store.Store, kek KEK) *kekReplica {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	keys, err := st.CacheCAKeys(ctx)
	keysNoErr(t, err)
	return &kekReplica{st: st, kek: kek, auth: NewAuthority(NewManager(keys, kek))}
}

func sshPublicKeyLine(t testing.TB) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	keysNoErr(t, err)
	sp, err := ssh.NewPublicKey(pub)
	keysNoErr(t, err)
	return string(ssh.MarshalAuthorizedKey(sp))
}

func csrPEM(t testing.TB) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keysNoErr(t, err)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	keysNoErr(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// issue issues an ssh, a db (for database) and an app credential ending
// at notAfter, and opens the cluster CA, as a login does.
func (r *kekReplica) issue(ctx context.Context, database string, notAfter time.Time, sshKey string, csr []byte) error {
	nb := time.Now().Add(-time.Minute)
	if _, err := r.auth.IssueSSH(ctx, access.SSHCertSpec{PublicKey: sshKey, KeyID: "alice", Principals: []string{"ubuntu@iot"}, NotBefore: nb, NotAfter: notAfter}); err != nil {
		return fmt.Errorf("ssh: %w", err)
	}
	if _, err := r.auth.IssueDB(ctx, database, csr, "alice", nb, notAfter); err != nil {
		return fmt.Errorf("db %s: %w", database, err)
	}
	if _, err := r.auth.IssueApp(ctx, "grafana", "gatehouse", "alice", []string{"dba"}, nil, nb, notAfter); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	cs, err := r.st.GetCluster(ctx)
	if err != nil {
		return err
	}
	if _, err := LoadClusterCA(cs, r.kek); err != nil {
		return fmt.Errorf("cluster CA: %w", err)
	}
	return nil
}

// TestKEKRotationKeepsIssuance walks the documented procedure with two
// replicas A and B, issuing all along:
//  1. both run with the old KEK;
//  2. restarted one at a time with kek_file NEW and previous_kek_file OLD;
//     meanwhile a CA created by the restarted A (under NEW) fails closed on
//     the not yet restarted B, with an error naming both KEKs, and B
//     writes nothing;
//  3. accessd kek-rotate runs while both issue (their SignedUntil writes
//     contend with the re-seals; none is lost);
//  4. restarted with NEW only: everything opens; a replica still on OLD
//     alone opens nothing it had not opened before.
func TestKEKRotationKeepsIssuance(t *testing.T) {
	oldK, newK := kekForTest(t), kekForTest(t)
	st := kekStore(t, oldK, true)
	ctx := keysCtx(t)
	sshKey, csr := sshPublicKeyLine(t), csrPEM(t)
	hour := time.Now().Add(time.Hour)
	mustIssue := func(r *kekReplica, step, database string) {
		t.Helper()
		if err := r.issue(ctx, database, hour, sshKey, csr); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}

	// 1.
	a, b := startKEKReplica(t, st, oldK), startKEKReplica(t, st, oldK)
	mustIssue(a, "A with the old KEK", "orders")
	mustIssue(b, "B with the old KEK", "orders")

	// 2. A restarts first.
	both, err := newK.WithPrevious(oldK)
	keysNoErr(t, err)
	a = startKEKReplica(t, st, both)
	mustIssue(a, "A with new+previous", "orders")
	mustIssue(a, "A creates the billing CA", "billing") // sealed under NEW
	billing, err := st.GetCAKeys(ctx, access.CATypeDB, "billing")
	keysNoErr(t, err)
	if SealedKEKID(billing.Keys[0].Sealed) != newK.ID() {
		t.Fatal("A sealed a new CA key under its previous KEK")
	}
	err = b.issue(ctx, "billing", hour, sshKey, csr)
	want := fmt.Sprintf("sealed under KEK %s, this process has KEK %s", newK.ID(), oldK.ID())
	if !errors.Is(err, ErrKEKMismatch) || !strings.Contains(err.Error(), want) {
		t.Fatalf("B (old KEK only) on a CA sealed under the new KEK: %v, want %q", err, want)
	}
	if again, _ := st.GetCAKeys(ctx, access.CATypeDB, "billing"); again.Revision != billing.Revision {
		t.Fatal("B wrote to a CA it cannot open")
	}
	mustIssue(b, "B (old KEK only) on CAs it had opened", "orders")
	b = startKEKReplica(t, st, both)
	mustIssue(b, "B with new+previous", "billing")

	// 3. Rotate while both issue credentials that end later and later, so
	// every issuance raises SignedUntil (a compare-and-swap on the sets
	// being re-sealed).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var issued atomic.Int64
	var lastEnd [2]time.Time
	errs := make([]error, 2)
	for i, r := range []*kekReplica{a, b} {
		wg.Go(func() {
			for n := 1; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				end := hour.Add(time.Duration(n) * time.Minute)
				if err := r.issue(ctx, "orders", end, sshKey, csr); err != nil {
					errs[i] = err
					return
				}
				lastEnd[i] = end
				issued.Add(1)
			}
		})
	}
	for issued.Load() < 4 {
		time.Sleep(time.Millisecond)
	}
	r, err := RotateKEK(ctx, st, oldK, newK, "system")
	close(stop)
	wg.Wait()
	keysNoErr(t, err)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d issuing during the rotation: %v", i, err)
		}
	}
	if r.Resealed != sealedRecords {
		t.Fatalf("rotation = %+v, want %d re-sealed (billing was already under the new KEK)", r, sealedRecords)
	}
	t.Logf("%d issuances ran during the rotation", issued.Load())
	ordersSet, err := st.GetCAKeys(ctx, access.CATypeDB, "orders")
	keysNoErr(t, err)
	active := ordersSet.Keys[keyIndex(ordersSet, func(k access.CAKey) bool { return k.State == access.CAKeyActive })]
	if active.SignedUntil.Before(lastEnd[0]) || active.SignedUntil.Before(lastEnd[1]) {
		t.Fatalf("db/orders SignedUntil %s is before the last issuances (%s, %s): a write was lost", active.SignedUntil, lastEnd[0], lastEnd[1])
	}
	mustIssue(a, "A after the rotation", "billing")

	// 4.
	a, b = startKEKReplica(t, st, newK), startKEKReplica(t, st, newK)
	mustIssue(a, "A with the new KEK only", "orders")
	mustIssue(b, "B with the new KEK only", "billing")
	sealedUnder(t, st, newK, oldK)
	stale := startKEKReplica(t, st, oldK)
	if err := stale.issue(ctx, "orders", hour, sshKey, csr); !errors.Is(err, ErrKEKMismatch) {
		t.Fatalf("a replica with only the old KEK after the rotation: %v", err)
	}
}

// racingStore lets another writer in between a rotation's read of a
// record and its compare-and-swap write: before the first write of each
// record, race runs (and writes), so that write must lose and be redone.
type racingStore struct {
	*store.Store
	race      func(what string)
	raced     map[string]bool
	conflicts int
}

func (s *racingStore) once(what string) {
	if !s.raced[what] {
		s.raced[what] = true
		s.race(what)
	}
}

func (s *racingStore) PutCAKeys(ctx context.Context, set access.CAKeySet, events ...access.AuditEvent) (access.CAKeySet, error) {
	s.once(caName(set.Type, set.Resource))
	out, err := s.Store.PutCAKeys(ctx, set, events...)
	if errors.Is(err, access.ErrConflict) {
		s.conflicts++
	}
	return out, err
}

func (s *racingStore) UpdateCluster(ctx context.Context, cs access.ClusterState, events ...access.AuditEvent) (access.ClusterState, error) {
	s.once("cluster")
	out, err := s.Store.UpdateCluster(ctx, cs, events...)
	if errors.Is(err, access.ErrConflict) {
		s.conflicts++
	}
	return out, err
}

// TestRotateKEKLosesNoConcurrentWrite: when an issuance (raising a key's
// SignedUntil) or another rotation writes a record between the rotation's
// read and write, the rotation's write loses its compare, reads again and
// re-seals what won: the issuance's SignedUntil stays, and everything ends
// under the new KEK.
func TestRotateKEKLosesNoConcurrentWrite(t *testing.T) {
	oldK, newK := kekForTest(t), kekForTest(t)
	base := kekStore(t, oldK, false)
	ctx := keysCtx(t)
	replica := NewManager(base, oldK) // an issuing replica, on etcd directly
	want := map[string]time.Time{}
	end := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Minute)
	st := &racingStore{Store: base, raced: map[string]bool{}}
	st.race = func(what string) {
		if what == "cluster" { // another kek-rotate run got there first
			cs, err := base.GetCluster(ctx)
			keysNoErr(t, err)
			next, _, err := ResealClusterKey(cs, oldK, newK)
			keysNoErr(t, err)
			_, err = base.UpdateCluster(ctx, next)
			keysNoErr(t, err)
			return
		}
		for _, c := range kekCAs {
			if caName(c.typ, c.resource) == what {
				end = end.Add(time.Hour)
				keysNoErr(t, replica.NoteSigned(ctx, c.typ, c.resource, 1, end))
				want[what] = end
			}
		}
	}

	r, err := RotateKEK(ctx, st, oldK, newK, "system")
	keysNoErr(t, err)
	if st.conflicts != len(kekCAs)+1 {
		t.Fatalf("%d writes lost their compare, want %d: the race did not happen", st.conflicts, len(kekCAs)+1)
	}
	if r.Resealed != sealedRecords-1 || r.ClusterKey != "already" {
		t.Fatalf("rotation = %+v, want the cluster key found re-sealed by the other run", r)
	}
	sealedUnder(t, base, newK, oldK)
	for _, c := range kekCAs {
		set, err := base.GetCAKeys(ctx, c.typ, c.resource)
		keysNoErr(t, err)
		if got := set.Keys[0].SignedUntil; !got.Equal(want[caName(c.typ, c.resource)]) {
			t.Fatalf("%s v1 SignedUntil %s, want %s: the issuance's write was lost", caName(c.typ, c.resource), got, want[caName(c.typ, c.resource)])
		}
	}
}

// BenchmarkRotateKEK re-seals 100 db CAs and the cluster key per
// operation (alternating between two KEKs), on embedded etcd: the check
// pass, one compare-and-swap write per record, the verifying pass.
func BenchmarkRotateKEK(b *testing.B) {
	const cas = 100
	st := storetest.Embedded(b)
	ctx := keysCtx(b)
	from, to := kekForTest(b), kekForTest(b)
	m := NewManager(st, from)
	for i := range cas {
		_, err := m.Ensure(ctx, access.CATypeDB, fmt.Sprintf("db-%03d", i))
		keysNoErr(b, err)
	}
	cs, err := NewClusterState("test.local", time.Now(), from)
	keysNoErr(b, err)
	_, _, err = st.InitCluster(ctx, cs)
	keysNoErr(b, err)
	for b.Loop() {
		r, err := RotateKEK(ctx, st, from, to, "system")
		if err != nil || r.Resealed != cas+1 {
			b.Fatalf("%+v %v", r, err)
		}
		from, to = to, from
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/(cas+1), "µs/record")
}
