package pagerduty

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
)

// fakePD implements the PagerDuty REST API v2 endpoints the directory calls,
// in their documented wire format.
type fakePD struct {
	t       testing.TB
	key     string
	pageCap int // the server's page size cap, to force pagination

	mu        sync.Mutex
	mode      string        // "", "500", "429", "hang", "slow"
	embedEP   bool          // include[]=escalation_policies returns full objects
	calls     []string      // "METHOD /path?query"
	users     []jsonObj     // user objects
	oncalls   []jsonObj     // on-call objects (escalation_policy as a reference)
	policies  map[string]ep // escalation policy id -> policy
	incidents []jsonObj
	release   chan struct{}
}

type jsonObj = map[string]any

type ep struct {
	name     string
	services []string // service names
}

func newFake(t testing.TB) (*fakePD, *httptest.Server) {
	f := &fakePD{t: t, key: "test-key", pageCap: 2, policies: map[string]ep{}, release: make(chan struct{})}
	srv := httptest.NewServer(f)
	t.Cleanup(func() { close(f.release); srv.Close() })
	return f, srv
}

func ref(typ, id, summary string) jsonObj {
	return jsonObj{"id": id, "type": typ + "_reference", "summary": summary,
		"self": "https://api.pagerduty.com/" + typ + "s/" + id, "html_url": "https://acme.pagerduty.com/" + typ + "s/" + id}
}

func (f *fakePD) addUser(id, name, email string) {
	f.users = append(f.users, jsonObj{"id": id, "type": "user", "summary": name, "name": name, "email": email,
		"time_zone": "Europe/Berlin", "role": "user", "self": "https://api.pagerduty.com/users/" + id})
}

func (f *fakePD) addOnCall(userID, userName, epID string, level int, schedID, schedName, start, end string) {
	oc := jsonObj{
		"user":              ref("user", userID, userName),
		"escalation_policy": ref("escalation_policy", epID, f.policies[epID].name),
		"escalation_level":  level,
		"schedule":          nil,
		"start":             nil,
		"end":               nil,
	}
	if schedID != "" {
		oc["schedule"] = ref("schedule", schedID, schedName)
	}
	if start != "" {
		oc["start"] = start
	}
	if end != "" {
		oc["end"] = end
	}
	f.oncalls = append(f.oncalls, oc)
}

func (f *fakePD) set(mode string) { f.mu.Lock(); f.mode = mode; f.mu.Unlock() }

func (f *fakePD) count(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

func (f *fakePD) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func pdError(w http.ResponseWriter, status, code int, msg string, errs ...string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(jsonObj{"error": jsonObj{"message": msg, "code": code, "errors": errs}})
}

func reply(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// page applies limit/offset the way PagerDuty does (limit capped by the server).
func (f *fakePD) page(r *http.Request, items []jsonObj, name string) jsonObj {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 || limit > f.pageCap {
		limit = f.pageCap
	}
	offset, _ := strconv.Atoi(q.Get("offset"))
	offset = min(offset, len(items))
	end := min(offset+limit, len(items))
	return jsonObj{name: items[offset:end], "limit": limit, "offset": offset, "more": end < len(items), "total": nil}
}

func (f *fakePD) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls = append(f.calls, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
	mode := f.mode
	f.mu.Unlock()

	if got := r.Header.Get("Authorization"); got != "Token token="+f.key {
		f.t.Errorf("Authorization = %q", got)
		pdError(w, http.StatusUnauthorized, 2006, "Unauthorized")
		return
	}
	if got := r.Header.Get("Accept"); got != "application/vnd.pagerduty+json;version=2" {
		f.t.Errorf("Accept = %q", got)
		pdError(w, http.StatusNotAcceptable, 2000, "Not Acceptable")
		return
	}
	switch mode {
	case "500":
		pdError(w, http.StatusInternalServerError, 2000, "Internal Server Error")
		return
	case "429":
		w.Header().Set("Retry-After", "1")
		pdError(w, http.StatusTooManyRequests, 2020, "Rate Limit Exceeded")
		return
	case "hang":
		select {
		case <-r.Context().Done():
		case <-f.release:
		}
		return
	case "slow":
		time.Sleep(50 * time.Millisecond)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/users":
		needle := strings.ToLower(q.Get("query"))
		var hits []jsonObj
		for _, u := range f.users {
			if strings.Contains(strings.ToLower(u["name"].(string)), needle) || strings.Contains(strings.ToLower(u["email"].(string)), needle) {
				hits = append(hits, u)
			}
		}
		reply(w, http.StatusOK, f.page(r, hits, "users"))
	case r.Method == http.MethodGet && r.URL.Path == "/oncalls":
		ids := q["user_ids[]"]
		embed := f.embedEP && slices.Contains(q["include[]"], "escalation_policies")
		var hits []jsonObj
		for _, oc := range f.oncalls {
			if len(ids) > 0 && !slices.Contains(ids, oc["user"].(jsonObj)["id"].(string)) {
				continue
			}
			if embed {
				c := make(jsonObj, len(oc))
				for k, v := range oc {
					c[k] = v
				}
				c["escalation_policy"] = f.policyObject(oc["escalation_policy"].(jsonObj)["id"].(string))
				oc = c
			}
			hits = append(hits, oc)
		}
		reply(w, http.StatusOK, f.page(r, hits, "oncalls"))
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/escalation_policies/"):
		id := strings.TrimPrefix(r.URL.Path, "/escalation_policies/")
		if _, ok := f.policies[id]; !ok {
			pdError(w, http.StatusNotFound, 2100, "Not Found")
			return
		}
		reply(w, http.StatusOK, jsonObj{"escalation_policy": f.policyObject(id)})
	case r.Method == http.MethodPost && r.URL.Path == "/incidents":
		f.createIncident(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/incidents":
		var hits []jsonObj
		for _, inc := range f.incidents {
			if inc["incident_key"] == q.Get("incident_key") && slices.Contains(q["service_ids[]"], inc["service"].(jsonObj)["id"].(string)) {
				hits = append(hits, inc)
			}
		}
		reply(w, http.StatusOK, f.page(r, hits, "incidents"))
	default:
		pdError(w, http.StatusNotFound, 2100, "Not Found")
	}
}

func (f *fakePD) policyObject(id string) jsonObj {
	p := f.policies[id]
	svcs := []jsonObj{}
	for i, s := range p.services {
		svcs = append(svcs, ref("service", fmt.Sprintf("S%s%d", id, i), s))
	}
	return jsonObj{"id": id, "type": "escalation_policy", "summary": p.name, "name": p.name,
		"self": "https://api.pagerduty.com/escalation_policies/" + id, "num_loops": 0,
		"escalation_rules": []jsonObj{}, "services": svcs, "teams": []jsonObj{}}
}

func (f *fakePD) createIncident(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("From") == "" {
		pdError(w, http.StatusBadRequest, 2001, "Invalid Input Provided", "From header is required")
		return
	}
	var body struct {
		Incident struct {
			Type        string `json:"type"`
			Title       string `json:"title"`
			IncidentKey string `json:"incident_key"`
			Service     struct{ ID, Type string }
			Body        struct{ Type, Details string }
		} `json:"incident"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Incident.Type != "incident" ||
		body.Incident.Service.Type != "service_reference" || body.Incident.Title == "" {
		pdError(w, http.StatusBadRequest, 2001, "Invalid Input Provided", fmt.Sprint(err))
		return
	}
	in := body.Incident
	for _, inc := range f.incidents {
		if in.IncidentKey != "" && inc["incident_key"] == in.IncidentKey && inc["service"].(jsonObj)["id"] == in.Service.ID {
			pdError(w, http.StatusBadRequest, 2001, "Invalid Input Provided", "Open incident with matching dedup key already exists on this service")
			return
		}
	}
	inc := jsonObj{"id": fmt.Sprintf("PINC%d", len(f.incidents)+1), "type": "incident", "title": in.Title,
		"incident_key": in.IncidentKey, "status": "triggered", "service": ref("service", in.Service.ID, "svc"),
		"body": jsonObj{"type": in.Body.Type, "details": in.Body.Details}, "from": r.Header.Get("From")}
	f.incidents = append(f.incidents, inc)
	reply(w, http.StatusCreated, jsonObj{"incident": inc})
}

// seed: alice is on call at level 1 of "Checkout" (schedule Primary; services
// checkout and payments), level 2 of "Search" (schedule Secondary) and
// permanently on "Infra" (no schedule, no services). Users that merely
// contain her address come first, so her own record is on the second page.
func seed(f *fakePD) {
	f.policies["PEP1"] = ep{"Checkout", []string{"payments", "checkout"}}
	f.policies["PEP2"] = ep{"Search", []string{"search"}}
	f.policies["PEP3"] = ep{"Infra", nil}
	f.addUser("PU0", "Malice", "malice@example.com")
	f.addUser("PU9", "Alice Impostor", "alice@example.com.evil.test")
	f.addUser("PU1", "Alice", "Alice@Example.com")
	f.addUser("PU2", "Bob", "bob@example.com")
	f.addOnCall("PU1", "Alice", "PEP1", 1, "PS1", "Primary", "2026-11-21T08:00:00Z", "2026-11-22T08:00:00Z")
	f.addOnCall("PU2", "Bob", "PEP1", 1, "PS1", "Primary", "2026-11-20T08:00:00Z", "2026-11-21T08:00:00Z")
	f.addOnCall("PU1", "Alice", "PEP2", 2, "PS2", "Secondary", "2026-11-21T00:00:00Z", "2026-11-28T00:00:00Z")
	f.addOnCall("PU1", "Alice", "PEP3", 1, "", "", "", "")
}

func newDir(t testing.TB, srv *httptest.Server, mod func(*Config)) *Directory {
	cfg := Config{APIKey: "test-key", APIURL: srv.URL + "/", FromEmail: "gatehouse@example.com", Timeout: 300 * time.Millisecond}
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
			f, srv := newFake(t)
			seed(f)
			f.embedEP = embed
			d := newDir(t, srv, nil)
			got, err := d.OnCalls(context.Background(), "alice@example.COM")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, aliceWant) {
				t.Fatalf("OnCalls =\n%+v\nwant\n%+v", got, aliceWant)
			}
			log := f.callLog()
			// users: page 1 (malice, impostor), page 2 (alice); on-calls: 2 pages.
			if f.count("GET /users?") != 2 || f.count("GET /oncalls?") != 2 {
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
			if n := f.count("GET /escalation_policies/"); n != wantEP {
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
	f, srv := newFake(t)
	seed(f)
	d := newDir(t, srv, nil)
	for _, email := range []string{"carol@example.com", "alice@example", "  "} {
		got, err := d.OnCalls(context.Background(), email)
		if err != nil {
			t.Fatalf("%q: %v", email, err)
		}
		if got == nil || len(got) != 0 {
			t.Fatalf("%q: got %#v, want empty non-nil", email, got)
		}
	}
	if n := f.count("GET /oncalls"); n != 0 {
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
			f, srv := newFake(t)
			seed(f)
			d := newDir(t, srv, func(c *Config) {
				c.Timeout = 100 * time.Millisecond
				if mode == "badkey" {
					c.APIKey = "wrong"
				}
			})
			switch mode {
			case "down": // nothing listens there
				d = newDir(t, srv, func(c *Config) { c.APIURL = "http://127.0.0.1:1" })
			case "badkey": // the fake answers 401; its own header check must not fail the test
				f.t = noErrorT{t}
			default:
				f.set(mode)
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
			f.set("")
			before := f.count("GET /users")
			got, err = d.OnCalls(context.Background(), "alice@example.com")
			if err != nil || !slices.Equal(got, aliceWant) {
				t.Fatalf("after recovery: %v, %v", got, err)
			}
			if f.count("GET /users") == before {
				t.Fatal("error was cached")
			}
		})
	}
}

type noErrorT struct{ testing.TB }

func (noErrorT) Errorf(string, ...any) {}

func TestCallerCancelFailsClosed(t *testing.T) {
	f, srv := newFake(t)
	seed(f)
	f.set("hang")
	d := newDir(t, srv, func(c *Config) { c.Timeout = time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := d.OnCalls(ctx, "alice@example.com")
	if !errors.Is(err, access.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestCacheHitAndExpiry(t *testing.T) {
	f, srv := newFake(t)
	seed(f)
	d := newDir(t, srv, func(c *Config) { c.CacheTTL = time.Minute })
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	var clock sync.Mutex
	d.now = func() time.Time { clock.Lock(); defer clock.Unlock(); return now }

	ctx := context.Background()
	if _, err := d.OnCalls(ctx, "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	calls := len(f.callLog())
	got, err := d.OnCalls(ctx, " ALICE@example.com ")
	if err != nil || !slices.Equal(got, aliceWant) {
		t.Fatalf("cached: %v, %v", got, err)
	}
	if n := len(f.callLog()); n != calls {
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
	if n := len(f.callLog()); n == calls {
		t.Fatal("expired entry was not re-asked")
	}
}

func TestCacheDisabled(t *testing.T) {
	f, srv := newFake(t)
	seed(f)
	d := newDir(t, srv, func(c *Config) { c.CacheTTL = -1 })
	for range 2 {
		if _, err := d.OnCalls(context.Background(), "alice@example.com"); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.count("GET /oncalls"); n != 4 {
		t.Fatalf("on-call pages asked %d times, want 4", n)
	}
}

func TestConcurrentCallersShareOneLookup(t *testing.T) {
	f, srv := newFake(t)
	seed(f)
	f.set("slow")
	d := newDir(t, srv, nil)
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
	if n := f.count("GET /users"); n != 3 {
		t.Fatalf("users asked %d times: %q", n, f.callLog())
	}
}

func TestCreateIncident(t *testing.T) {
	f, srv := newFake(t)
	d := newDir(t, srv, nil)
	ctx := context.Background()
	id, err := d.CreateIncident(ctx, "PSVC1", "Break-glass: alice → dba", "request 42 by alice", "gatehouse-outbox-42")
	if err != nil || id == "" {
		t.Fatalf("create: %q, %v", id, err)
	}
	f.mu.Lock()
	inc := f.incidents[0]
	f.mu.Unlock()
	if inc["from"] != "gatehouse@example.com" || inc["incident_key"] != "gatehouse-outbox-42" ||
		inc["title"] != "Break-glass: alice → dba" || inc["body"].(jsonObj)["details"] != "request 42 by alice" ||
		inc["service"].(jsonObj)["id"] != "PSVC1" {
		t.Fatalf("incident as received: %v", inc)
	}
	// A retried outbox delivery finds the same incident instead of a second one.
	id2, err := d.CreateIncident(ctx, "PSVC1", "Break-glass: alice → dba", "request 42 by alice", "gatehouse-outbox-42")
	if err != nil || id2 != id {
		t.Fatalf("retry: %q, %v; want %q", id2, err, id)
	}
	f.mu.Lock()
	n := len(f.incidents)
	f.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d incidents", n)
	}

	f.set("500")
	if _, err := d.CreateIncident(ctx, "PSVC1", "t", "", "k2"); !errors.Is(err, access.ErrUnavailable) {
		t.Fatalf("5xx: %v", err)
	}
	f.set("")
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
	f, srv := newFake(b)
	seed(f)
	d := newDir(b, srv, func(c *Config) { c.CacheTTL = time.Hour })
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
	_, srv := newFake(t)
	d := newDir(t, srv, nil)
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
