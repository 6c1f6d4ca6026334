package server_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/internal/testcluster"
	"github.com/gatehouse-dev/gatehouse/pki"
)

// answer is one HTTP answer: status, Retry-After and the error body.
type answer struct {
	status     int
	retryAfter string
	err        api.ErrorDetail
}

func readAnswer(t *testing.T, status int, h http.Header, body []byte) answer {
	t.Helper()
	a := answer{status: status, retryAfter: h.Get("Retry-After")}
	if status >= 300 {
		var eb api.ErrorBody
		if err := json.Unmarshal(body, &eb); err != nil {
			t.Fatalf("error body %q: %v", body, err)
		}
		a.err = eb.Error
	}
	return a
}

// serveFrom sends a request through the API handler as if it came from
// remoteAddr, with the extra headers (name, value, ...).
func serveFrom(t *testing.T, c *testcluster.Cluster, remoteAddr, path, body string, header ...string) answer {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.RemoteAddr = remoteAddr
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	c.Server.Handler().ServeHTTP(rec, req)
	return readAnswer(t, rec.Code, rec.Header(), rec.Body.Bytes())
}

// TestAddressThrottle: each anonymous login route has a token bucket per
// client network, keyed on the socket's address: neither the port nor
// X-Forwarded-For moves a request to another bucket, an IPv6 /64 is one
// network, and an address over its rate gets 429 with Retry-After.
// Empty bodies make each request cheap: the throttle comes before them.
func TestAddressThrottle(t *testing.T) {
	c := testcluster.Start(t)
	const start, login = "/v1/login/device", "/v1/login"

	// Device login starts: 2/s, burst 10.
	for i := range 10 {
		if a := serveFrom(t, c, "192.0.2.1:1000", start, ""); a.status != http.StatusBadRequest {
			t.Fatalf("start %d within the burst: %+v, want 400 (empty body)", i+1, a)
		}
	}
	cases := []struct {
		name, addr string
		header     []string
		want       int
	}{
		{"11th start", "192.0.2.1:1000", nil, http.StatusTooManyRequests},
		{"another port", "192.0.2.1:2000", nil, http.StatusTooManyRequests},
		{"a forged X-Forwarded-For", "192.0.2.1:1000", []string{"X-Forwarded-For", "198.51.100.7"}, http.StatusTooManyRequests},
		{"a forged X-Real-IP", "192.0.2.1:1000", []string{"X-Real-IP", "198.51.100.7"}, http.StatusTooManyRequests},
		{"another address", "192.0.2.2:1000", nil, http.StatusBadRequest},
	}
	for _, tt := range cases {
		a := serveFrom(t, c, tt.addr, start, "", tt.header...)
		if a.status != tt.want {
			t.Errorf("%s: %+v, want %d", tt.name, a, tt.want)
		}
		if a.status == http.StatusTooManyRequests && (a.retryAfter != "1" || a.err.Code != "rate_limited" ||
			!strings.Contains(a.err.Message, "too many requests from your address")) {
			t.Errorf("%s: %+v, want Retry-After 1 and rate_limited", tt.name, a)
		}
	}
	for range 10 {
		serveFrom(t, c, "[2001:db8::1]:1000", start, "")
	}
	if a := serveFrom(t, c, "[2001:db8::ffff]:1000", start, ""); a.status != http.StatusTooManyRequests {
		t.Errorf("another host of the same /64: %+v, want 429", a)
	}
	if a := serveFrom(t, c, "[2001:db8:0:1::1]:1000", start, ""); a.status != http.StatusBadRequest {
		t.Errorf("another /64: %+v, want 400", a)
	}

	// The routes have their own buckets: the address out of starts may
	// still log in with a password, 20 at once (10/s, burst 20).
	for i := range 20 {
		if a := serveFrom(t, c, "192.0.2.1:1000", login, ""); a.status != http.StatusBadRequest {
			t.Fatalf("password login %d within the burst: %+v, want 400 (empty body)", i+1, a)
		}
	}
	if a := serveFrom(t, c, "192.0.2.1:1000", login, ""); a.status != http.StatusTooManyRequests || a.retryAfter != "1" {
		t.Errorf("21st password login: %+v, want 429 with Retry-After 1", a)
	}
}

// postLogin sends a password login over TLS, as access login does.
func postLogin(t *testing.T, c *testcluster.Cluster, user, password string) answer {
	t.Helper()
	_, csr, err := pki.NewKeyAndCSR(user)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(api.LoginRequest{User: user, Password: password, CSR: string(csr)})
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.Pool}}, Timeout: 30 * time.Second}
	resp, err := hc.Post(c.URL+"/v1/login", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return readAnswer(t, resp.StatusCode, resp.Header, body)
}

// TestLoginLockoutOverHTTP: five wrong passwords lock a name out with 429
// and Retry-After of the lockout's 15 minutes, the right password
// included, and alike for a name nobody has; accessctl unlock ends it.
func TestLoginLockoutOverHTTP(t *testing.T) {
	c := testcluster.Start(t)
	c.Demo() // alice, with the password alice-password
	for _, user := range []string{"alice", "mallory"} {
		for i := range 4 {
			if a := postLogin(t, c, user, "guess"); a.status != http.StatusUnauthorized || a.retryAfter != "" {
				t.Fatalf("%s: wrong password %d: %+v, want 401", user, i+1, a)
			}
		}
		for _, password := range []string{"guess", user + "-password"} {
			a := postLogin(t, c, user, password)
			secs, _ := strconv.Atoi(a.retryAfter)
			if a.status != http.StatusTooManyRequests || a.err.Code != "rate_limited" || secs < 890 || secs > 900 ||
				!strings.Contains(a.err.Message, "accessctl unlock "+user) {
				t.Fatalf("%s: %s while locked out: %+v, want 429 with Retry-After about 900", user, password, a)
			}
		}
	}
	if err := c.Admin.Unlock(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	if a := postLogin(t, c, "alice", "alice-password"); a.status != http.StatusOK {
		t.Fatalf("login after unlock: %+v", a)
	}
}
