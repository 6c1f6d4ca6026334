package ca

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/store"
)

// cachedKeys is a store.CAKeyCache over st; following=false stops its
// watch at once, so only its own writes and reloads change it (a replica
// whose view lags, or one that shows its reads come from its writes).
func cachedKeys(t *testing.T, st *store.Store, following bool) *store.CAKeyCache {
	t.Helper()
	ctx, cancel := context.WithCancel(keysCtx(t))
	t.Cleanup(cancel)
	c, err := st.CacheCAKeys(ctx)
	keysNoErr(t, err)
	if !following {
		cancel()
	}
	return c
}

func signingVersion(t *testing.T, m *Manager, notAfter time.Time) int {
	t.Helper()
	_, k, err := m.SignerUntil(keysCtx(t), access.CATypeSSH, "", notAfter)
	keysNoErr(t, err)
	return k.Version
}

// TestRotationThroughTheKeyCache: issuance reads the CA keys from memory.
// The replica that rotates signs with the new key from its next issuance
// and never again with a retired one; another replica follows within the
// watch latency; a replica whose view lags can only sign, without a
// write, credentials that end before what etcd records for the old key,
// and moves to the new key as soon as it must record more.
func TestRotationThroughTheKeyCache(t *testing.T) {
	st, kek, clk, _ := keysEnv(t)
	ctx := keysCtx(t)
	// a rotates and issues; its watch is stopped, so what it sees after a
	// rotation comes from its own writes.
	a := NewManager(cachedKeys(t, st, false), kek, WithClock(clk.Now))
	b := NewManager(cachedKeys(t, st, true), kek, WithClock(clk.Now))
	_, err := a.Ensure(ctx, access.CATypeSSH, "")
	keysNoErr(t, err)
	lagging := NewManager(cachedKeys(t, st, false), kek, WithClock(clk.Now))

	hour := clk.Now().Add(time.Hour)
	for name, m := range map[string]*Manager{"a": a, "b": b, "lagging": lagging} {
		if v := signingVersion(t, m, hour); v != 1 {
			t.Fatalf("replica %s signs with v%d before the rotation", name, v)
		}
	}
	set, err := st.GetCAKeys(ctx, access.CATypeSSH, "")
	keysNoErr(t, err)
	if set.Keys[0].SignedUntil.Before(hour) {
		t.Fatalf("etcd records v1 signed until %s, want >= %s", set.Keys[0].SignedUntil, hour)
	}
	v1Until := set.Keys[0].SignedUntil

	_, err = a.Rotate(ctx, access.CATypeSSH, "", PhasePublish)
	keysNoErr(t, err)
	_, err = a.Rotate(ctx, access.CATypeSSH, "", PhaseSwitch)
	keysNoErr(t, err)
	if v := signingVersion(t, a, hour); v != 2 {
		t.Fatalf("right after switch the rotating replica signs with v%d, want v2", v)
	}

	start := time.Now()
	for signingVersion(t, b, hour) != 2 {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the other replica still signs with v1 5s after the switch")
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("the other replica signed with v2 %s after the switch", time.Since(start))

	// The lagging replica still sees v1 active. A credential ending within
	// what etcd records for v1 needs no write, and v1 stays trusted (and
	// cannot be retired) until then.
	half := clk.Now().Add(30 * time.Minute)
	if v := signingVersion(t, lagging, half); v != 1 {
		t.Fatalf("lagging replica: v%d (test broken: it should still see v1)", v)
	}
	// One ending later must raise v1's SignedUntil: that compare-and-swap
	// meets the switch, and the replica moves to v2 without recording
	// anything on v1.
	if v := signingVersion(t, lagging, clk.Now().Add(3*time.Hour)); v != 2 {
		t.Fatalf("lagging replica signs a longer credential with v%d, want v2", v)
	}
	set, err = st.GetCAKeys(ctx, access.CATypeSSH, "")
	keysNoErr(t, err)
	if !set.Keys[0].SignedUntil.Equal(v1Until) || set.Keys[0].State != access.CAKeyRetiring {
		t.Fatalf("v1 after the lagging replica's issuances: %s until %s, want retiring until %s", set.Keys[0].State, set.Keys[0].SignedUntil, v1Until)
	}

	// Past v1's credentials: retire, and from its return the rotating
	// replica neither exports nor signs with v1.
	clk.Add(time.Hour + 2*time.Minute)
	_, err = a.Rotate(ctx, access.CATypeSSH, "", PhaseRetire)
	keysNoErr(t, err)
	trusted, err := a.Trusted(ctx, access.CATypeSSH, "")
	keysNoErr(t, err)
	if len(trusted) != 1 || trusted[0].Version != 2 {
		t.Fatalf("trusted right after retire: %+v", trusted)
	}
	if v := signingVersion(t, a, clk.Now().Add(time.Hour)); v != 2 {
		t.Fatalf("after retire: signs with v%d", v)
	}
}

// BenchmarkSignerCachedSet is BenchmarkSignerCached with the key set read
// from memory (store.CAKeyCache), as accessd does.
func BenchmarkSignerCachedSet(b *testing.B) {
	st, kek, _, _ := keysEnv(b)
	ctx := keysCtx(b)
	keys, err := st.CacheCAKeys(ctx)
	keysNoErr(b, err)
	m := NewManager(keys, kek)
	if _, err := m.Ensure(ctx, access.CATypeSSH, ""); err != nil {
		b.Fatal(err)
	}
	if _, _, err := m.Signer(ctx, access.CATypeSSH, ""); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := m.Signer(ctx, access.CATypeSSH, ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignerCachedIssuance is what an issuance asks of the keys
// (Ensure, then SignerUntil, which records SignedUntil when it must grow),
// reading the key sets from etcd or from memory.
func BenchmarkSignerCachedIssuance(b *testing.B) {
	for _, tc := range []struct {
		name  string
		cache bool
	}{{"etcd", false}, {"memory", true}} {
		b.Run(tc.name, func(b *testing.B) {
			st, kek, _, _ := keysEnv(b)
			ctx := keysCtx(b)
			var keys access.CAKeyStore = st
			if tc.cache {
				c, err := st.CacheCAKeys(ctx)
				keysNoErr(b, err)
				keys = c
			}
			m := NewManager(keys, kek)
			notAfter := time.Now().Add(time.Hour)
			for b.Loop() {
				if _, err := m.Ensure(ctx, access.CATypeSSH, ""); err != nil {
					b.Fatal(err)
				}
				if _, _, err := m.SignerUntil(ctx, access.CATypeSSH, "", notAfter); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
