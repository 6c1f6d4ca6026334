package pagerduty

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/integrations/pagerduty/pagerdutytest"
)

// seed: alice is on call at level 1 of "Checkout" (schedule Primary; services
// checkout and payments), level 2 of "Search" (schedule Secondary) and
// permanently on "Infra" (no schedule, no services). Users that merely
// contain her address come first, so her own record is on the second page.
func seed(f *pagerdutytest.Server) {
	f.AddEscalationPolicy("PEP1", "Checkout", "payments", "checkout")
	f.AddEscalationPolicy("PEP2", "Search", "search")
	f.AddEscalationPolicy("PEP3", "Infra")
	f.AddUser("PU0", "Malice", "malice@example.com")
	f.AddUser("PU9", "Alice Impostor", "alice@example.com.evil.test")
	f.AddUser("PU1", "Alice", "Alice@Example.com")
	f.AddUser("PU2", "Bob", "bob@example.com")
	f.AddOnCall("PU1", "Alice", "PEP1", 1, "PS1", "Primary", "2026-11-21T08:00:00Z", "2026-11-22T08:00:00Z")
	f.AddOnCall("PU2", "Bob", "PEP1", 1, "PS1", "Primary", "2026-11-20T08:00:00Z", "2026-11-21T08:00:00Z")
	f.AddOnCall("PU1", "Alice", "PEP2", 2, "PS2", "Secondary", "2026-11-21T00:00:00Z", "2026-11-28T00:00:00Z")
	f.AddOnCall("PU1", "Alice", "PEP3", 1, "", "", "", "")
}

func newDir(t testing.TB, srv *pagerdutytest.Server, mod func(*Config)) *Directory {
	cfg := Config{APIKey: srv.Key, APIURL: srv.URL + "/", FromEmail: "gatehouse@example.com", Timeout: 300 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func ts(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }

var aliceWant = []access.OnCall{
	{Service: "", EscalationPolicy: "Infra", EscalationLevel: 1},
	{Service: "checkout", EscalationPolicy: "Checkout", EscalationLevel: 1, Schedule: "Primary", Start: ts("2026-11-21T08:00:00Z"), End: ts("2026-11-22T08:00:00Z")},
	{Service: "payments", EscalationPolicy: "Checkout", EscalationLevel: 1, Schedule: "Primary", Start: ts("2026-11-21T08:00:00Z"), End: ts("2026-11-22T08:00:00Z")},
	{Service: "search", EscalationPolicy: "Search", EscalationLevel: 2, Schedule: "Secondary", Start: ts("2026-11-21T00:00:00Z"), End: ts("2026-11-28T00:00:00Z")},
}

func TestOnCallsLevelsAndSchedules(t *testing.T) {
	for _, embed := range []bool{false, true} {
		t.Run(fmt.Sprintf("embedded_policies=%v", embed), func(t *testing.T) {
			f := pagerdutytest.New(t)
			seed(f)
			f.EmbedEscalationPolicies(embed)
			d := newDir(t, f, nil)
			got, err := d.OnCalls(context.Background(), "alice@example.COM")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, aliceWant) {
				t.Fatalf("OnCalls =\n%+v\nwant\n%+v", got, aliceWant)
			}
			log := f.Calls()
			// users: page 1 (malice, impostor), page 2 (alice); on-calls: 2 pages.
			if f.Count("GET /users?") != 2 || f.Count("GET /oncalls?") != 2 {
				t.Fatalf("calls: %q", log)
			}
			for _, c := range log {
				if strings.HasPrefix(c, "GET /oncalls?") {
					for _, p := range []string{"user_ids%5B%5D=PU1", "earliest=true", "include%5B%5D=escalation_policies"} {
						if !strings.Contains(c, p) {
							t.Errorf("%s lacks %s", c, p)
						}
					}
				}
			}
			if !slices.ContainsFunc(log, func(c string) bool { return strings.HasPrefix(c, "GET /users?") && strings.Contains(c, "offset=2") }) {
				t.Errorf("no second page of users: %q", log)
			}
			wantEP := 3 // one per policy, when only references come back
			if embed {
				wantEP = 0
			}
			if n := f.Count("GET /escalation_policies/"); n != wantEP {
				t.Errorf("escalation policy lookups = %d, want %d: %q", n, wantEP, log)
			}
			b, _ := json.Marshal(got[0])
			if !strings.Contains(string(b), `"schedule":""`) || !strings.Contains(string(b), `"end":"0001-01-01T00:00:00Z"`) {
				t.Errorf("permanent on-call JSON: %s", b)
			}
		})
	}
}

func TestUserNotFoundIsEmpty(t *testing.T) {
	f := pagerdutytest.New(t)
	seed(f)
	d := newDir(t, f, nil)
	for _, email := range []string{"carol@example.com", "alice@example", "  "} {
		got, err := d.OnCalls(context.Background(), email)
		if err != nil {
			t.Fatalf("%q: %v", email, err)
		}
		if got == nil || len(got) != 0 {
			t.Fatalf("%q: got %#v, want empty non-nil", email, got)
		}
	}
	if n := f.Count("GET /oncalls"); n != 0 {
		t.Fatalf("on-calls asked %d times for unknown users", n)
	}
	// Bob's answer holds his own on-call only, never Alice's.
	got, err := d.OnCalls(context.Background(), "bob@example.com")
	if err != nil || len(got) != 2 || got[0].Start != ts("2026-11-20T08:00:00Z") {
		t.Fatalf("bob: %+v, %v", got, err)
	}
}

func TestUnavailableFailsClosedAndIsNotCached(t *testing.T) {
	for _, mode := range []string{"500", "429", "hang", "badkey", "down"} {
		t.Run(mode, func(t *testing.T) {
			f := pagerdutytest.New(t)
			seed(f)
			d := newDir(t, f, func(c *Config) {
				c.Timeout = 100 * time.Millisecond
				if mode == "badkey" {
					c.APIKey = "wrong"
				}
			})
			switch mode {
			case "down": // nothing listens there
				d = newDir(t, f, func(c *Config) { c.APIURL = "http://127.0.0.1:1" })
			case "badkey": // the fake answers 401; its own header check must not fail the test
				f.AllowBadAuth()
			default:
				f.Set(mode)
			}
			start := time.Now()
			got, err := d.OnCalls(context.Background(), "alice@example.com")
			if err == nil || !errors.Is(err, access.ErrUnavailable) || got != nil {
				t.Fatalf("got %v, %v; want an error wrapping ErrUnavailable", got, err)
			}
			if el := time.Since(start); el > 2*time.Second {
				t.Fatalf("took %v", el)
			}
			if mode == "down" || mode == "badkey" {
				return
			}
			// Not cached: once PagerDuty is back, the next call asks again.
			f.Set("")
			before := f.Count("GET /users")
			got, err = d.OnCalls(context.Background(), "alice@example.com")
			if err != nil || !slices.Equal(got, aliceWant) {
				t.Fatalf("after recovery: %v, %v", got, err)
			}
			if f.Count("GET /users") == before {
				t.Fatal("error was cached")
			}
		})
	}
}

func TestCallerCancelFailsClosed(t *testing.T) {
	f := pagerdutytest.New(t)
	seed(f)
	f.Set("hang")
	d := newDir(t, f, func(c *Config) { c.Timeout = time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := d.OnCalls(ctx, "alice@example.com")
	if !errors.Is(err, access.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestCacheHitAndExpiry(t *testing.T) {
	f := pagerdutytest.New(t)
	seed(f)
	d := newDir(t, f, func(c *Config) { c.CacheTTL = time.Minute })
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	var clock sync.Mutex
	d.now = func() time.Time { clock.Lock(); defer clock.Unlock(); return now }

	ctx := context.Background()
	if _, err := d.OnCalls(ctx, "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	calls := len(f.Calls())
	got, err := d.OnCalls(ctx, " ALICE@example.com ")
	if err != nil || !slices.Equal(got, aliceWant) {
		t.Fatalf("cached: %v, %v", got, err)
	}
	if n := len(f.Calls()); n != calls {
		t.Fatalf("cache hit made %d API calls", n-calls)
	}
	got[0].Service = "mutated" // callers cannot change the cache
	if again, _ := d.OnCalls(ctx, "alice@example.com"); again[0].Service != "" {
		t.Fatal("cache shared with caller")
	}

	clock.Lock()
	now = now.Add(time.Minute + time.Second)
	clock.Unlock()
	if _, err := d.OnCalls(ctx, "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.Calls()); n == calls {
		t.Fatal("expired entry was not re-asked")
	}
}

func TestCacheDisabled(t *testing.T) {
	f := pagerdutytest.New(t)
	seed(f)
	d := newDir(t, f, func(c *Config) { c.CacheTTL = -1 })
	for range 2 {
		if _, err := d.OnCalls(context.Background(), "alice@example.com"); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.Count("GET /oncalls"); n != 4 {
		t.Fatalf("on-call pages asked %d times, want 4", n)
	}
}

func TestConcurrentCallersShareOneLookup(t *testing.T) {
	f := pagerdutytest.New(t)
	seed(f)
	f.Set("slow")
	d := newDir(t, f, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			email := "alice@example.com"
			if i%4 == 0 {
				email = "bob@example.com"
			}
			got, err := d.OnCalls(context.Background(), email)
			if err == nil && len(got) == 0 {
				err = fmt.Errorf("%s: empty", email)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// One lookup per address: two user pages each (alice is on page 2; bob
	// is the only match for his query, page 1).
	if n := f.Count("GET /users"); n != 3 {
		t.Fatalf("users asked %d times: %q", n, f.Calls())
	}
}

func TestCreateIncident(t *testing.T) {
	f := pagerdutytest.New(t)
	d := newDir(t, f, nil)
	ctx := context.Background()
	id, err := d.CreateIncident(ctx, "PSVC1", "Break-glass: alice → dba", "request 42 by alice", "gatehouse-outbox-42")
	if err != nil || id == "" {
		t.Fatalf("create: %q, %v", id, err)
	}
	inc := f.Incidents()[0]
	if inc["from"] != "gatehouse@example.com" || inc["incident_key"] != "gatehouse-outbox-42" ||
		inc["title"] != "Break-glass: alice → dba" || inc["body"].(map[string]any)["details"] != "request 42 by alice" ||
		inc["service"].(map[string]any)["id"] != "PSVC1" {
		t.Fatalf("incident as received: %v", inc)
	}
	// A retried outbox delivery finds the same incident instead of a second one.
	id2, err := d.CreateIncident(ctx, "PSVC1", "Break-glass: alice → dba", "request 42 by alice", "gatehouse-outbox-42")
	if err != nil || id2 != id {
		t.Fatalf("retry: %q, %v; want %q", id2, err, id)
	}
	n := len(f.Incidents())
	if n != 1 {
		t.Fatalf("%d incidents", n)
	}

	f.Set("500")
	if _, err := d.CreateIncident(ctx, "PSVC1", "t", "", "k2"); !errors.Is(err, access.ErrUnavailable) {
		t.Fatalf("5xx: %v", err)
	}
	f.Set("")
	d.fromEmail = ""
	if _, err := d.CreateIncident(ctx, "PSVC1", "t", "", "k3"); !errors.Is(err, access.ErrInvalid) {
		t.Fatalf("no from_email: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{APIKey: "k", APIURL: "api.pagerduty.com"},
		{APIKey: "k", APIURL: "ftp://x"},
		{APIKey: "k", Timeout: -1},
	} {
		if _, err := New(cfg); !errors.Is(err, access.ErrInvalid) {
			t.Errorf("New(%+v) = %v", cfg, err)
		}
	}
	d, err := New(Config{APIKey: "k"})
	if err != nil || d.ttl != DefaultCacheTTL || d.timeout != DefaultTimeout {
		t.Fatalf("defaults: %+v, %v", d, err)
	}
}

func BenchmarkOnCallsCached(b *testing.B) {
	f := pagerdutytest.New(b)
	seed(f)
	d := newDir(b, f, func(c *Config) { c.CacheTTL = time.Hour })
	ctx := context.Background()
	if _, err := d.OnCalls(ctx, "alice@example.com"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := d.OnCalls(ctx, "alice@example.com"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestCacheIsBounded(t *testing.T) {
	f := pagerdutytest.New(t)
	d := newDir(t, f, nil)
	d.mu.Lock()
	for i := range maxCacheEntries + 50 {
		d.store(fmt.Sprintf("u%d@example.com", i), []access.OnCall{})
	}
	n := len(d.cache)
	d.mu.Unlock()
	if n > maxCacheEntries {
		t.Fatalf("cache holds %d entries, bound %d", n, maxCacheEntries)
	}
}
