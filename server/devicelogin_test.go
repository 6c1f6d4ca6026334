package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/internal/testcluster"
	"github.com/gatehouse-dev/gatehouse/pki"
)

// post sends a JSON body with no client certificate, as a device logging
// in does, and returns the status and the body.
func post(t *testing.T, c *testcluster.Cluster, path string, body any, header ...string) (int, []byte) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, c.URL+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.Pool}}, Timeout: 30 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func newDeviceCSR(t *testing.T, user string) (keyPEM, csrPEM string) {
	t.Helper()
	k, c, err := pki.NewKeyAndCSR(user)
	if err != nil {
		t.Fatal(err)
	}
	return string(k), string(c)
}

// startOverHTTP starts a device login for user and returns its code.
func startOverHTTP(t *testing.T, c *testcluster.Cluster, user, csrPEM string) api.DeviceLoginResponse {
	t.Helper()
	status, body := post(t, c, "/v1/login/device", api.DeviceLoginRequest{User: user, CSR: csrPEM}, "X-Forwarded-For", "203.0.113.9")
	var started api.DeviceLoginResponse
	if status != http.StatusCreated || json.Unmarshal(body, &started) != nil || started.Code == "" {
		t.Fatalf("start: %d %s", status, body)
	}
	return started
}

func confirmInChat(t *testing.T, c *testcluster.Cluster, user, code string) {
	t.Helper()
	ctx := context.Background()
	caller, err := c.Svc.Caller(ctx, user, access.SourceSlack)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Svc.ConfirmDeviceLogin(ctx, caller, code, "slack:U0"+user); err != nil {
		t.Fatal(err)
	}
}

// TestDeviceLoginStatusCodes: each outcome of the two device login routes
// has its documented status.
func TestDeviceLoginStatusCodes(t *testing.T) {
	c := startCluster(t)
	demo(c)
	_, aliceCSR := newDeviceCSR(t, "alice")
	_, otherCSR := newDeviceCSR(t, "alice")
	_, bobCSR := newDeviceCSR(t, "bob")
	pending := startOverHTTP(t, c, "alice", aliceCSR)
	confirmed := startOverHTTP(t, c, "alice", aliceCSR)
	confirmInChat(t, c, "alice", confirmed.Code)
	locked := startOverHTTP(t, c, "bob", bobCSR)
	confirmInChat(t, c, "bob", locked.Code)
	if err := c.Admin.Lock(context.Background(), api.LockRequest{User: "bob", Reason: "laptop stolen"}); err != nil {
		t.Fatal(err)
	}

	redeem := "/v1/login/device/redeem?wait=0s"
	tests := []struct {
		name   string
		path   string
		body   any
		status int
		code   string
	}{
		{"start with a bad user name", "/v1/login/device", api.DeviceLoginRequest{User: "a/b", CSR: aliceCSR}, 400, "invalid"},
		{"start without a CSR", "/v1/login/device", api.DeviceLoginRequest{User: "alice"}, 400, "invalid"},
		{"start with an unknown field", "/v1/login/device", map[string]string{"user": "alice", "csr": aliceCSR, "password": "x"}, 400, "invalid"},
		{"start for nobody looks like any start", "/v1/login/device", api.DeviceLoginRequest{User: "ghost", CSR: aliceCSR}, 201, ""},
		{"redeem before the confirmation", redeem, api.DeviceLoginRedeemRequest{Code: pending.Code, CSR: aliceCSR}, 202, ""},
		{"redeem with another key", redeem, api.DeviceLoginRedeemRequest{Code: confirmed.Code, CSR: otherCSR}, 403, "forbidden"},
		{"redeem a malformed code", redeem, api.DeviceLoginRedeemRequest{Code: "nope", CSR: aliceCSR}, 400, "invalid"},
		{"redeem an unknown code", redeem, api.DeviceLoginRedeemRequest{Code: "2345-6789", CSR: aliceCSR}, 410, "expired"},
		{"redeem for a locked user", redeem, api.DeviceLoginRedeemRequest{Code: locked.Code, CSR: bobCSR}, 401, "unauthorized"},
		{"redeem with a bad wait", "/v1/login/device/redeem?wait=soon", api.DeviceLoginRedeemRequest{Code: pending.Code, CSR: aliceCSR}, 400, "invalid"},
		{"redeem the confirmed code", redeem, api.DeviceLoginRedeemRequest{Code: confirmed.Code, CSR: aliceCSR}, 200, ""},
		{"redeem it again", redeem, api.DeviceLoginRedeemRequest{Code: confirmed.Code, CSR: aliceCSR}, 410, "expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, c, tt.path, tt.body)
			var eb api.ErrorBody
			_ = json.Unmarshal(body, &eb)
			if status != tt.status || eb.Error.Code != tt.code {
				t.Fatalf("%d %s, want %d with code %q", status, body, tt.status, tt.code)
			}
			if status == http.StatusAccepted && string(bytes.TrimSpace(body)) != `{"status":"pending"}` {
				t.Fatalf("pending body %s", body)
			}
		})
	}

	// The chat prompt shows the address of the socket, not the header
	// the device chose to send.
	alice, err := c.Svc.Caller(context.Background(), "alice", access.SourceSlack)
	if err != nil {
		t.Fatal(err)
	}
	prompt, err := c.Svc.DeviceLoginPrompt(context.Background(), alice, pending.Code)
	if err != nil || prompt.Address != "127.0.0.1" {
		t.Fatalf("prompt address = %q (%v), want 127.0.0.1", prompt.Address, err)
	}
}

// TestDeviceLoginLongPollAnswersOnConfirmation: the CLI's redeem is held
// while the code waits, and answered with a working session certificate
// promptly after the click.
func TestDeviceLoginLongPollAnswersOnConfirmation(t *testing.T) {
	c := startCluster(t)
	demo(c)
	ctx := context.Background()
	keyPEM, csrPEM := newDeviceCSR(t, "alice")
	device := c.Anonymous()
	started, err := device.StartDeviceLogin(ctx, api.DeviceLoginRequest{User: "alice", CSR: csrPEM})
	if err != nil {
		t.Fatal(err)
	}

	type answer struct {
		res api.LoginResponse
		err error
		at  time.Time
	}
	answered := make(chan answer, 1)
	go func() {
		res, err := device.RedeemDeviceLogin(ctx, api.DeviceLoginRedeemRequest{Code: started.Code, CSR: csrPEM})
		answered <- answer{res, err, time.Now()}
	}()
	time.Sleep(time.Second) // the redeem is waiting on the server by now
	select {
	case a := <-answered:
		t.Fatalf("redeem answered before the confirmation: %+v", a)
	default:
	}
	confirmInChat(t, c, "alice", started.Code)
	confirmedAt := time.Now()

	var a answer
	select {
	case a = <-answered:
	case <-time.After(10 * time.Second):
		t.Fatal("redeem still waiting 10 s after the confirmation")
	}
	if a.err != nil {
		t.Fatal(a.err)
	}
	if lag := a.at.Sub(confirmedAt); lag > time.Second {
		t.Fatalf("redeem answered %s after the confirmation, want under 1 s", lag)
	}
	st, err := c.ClientFor(a.res.CertPEM, keyPEM).Status(ctx)
	if err != nil || st.User != "alice" {
		t.Fatalf("status with the new session certificate: %+v, %v", st, err)
	}
	evs, err := c.Admin.Audit(ctx, api.AuditQuery{Type: "login.device.*"})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	if got := mustJSON(t, types); got != `["login.device.start","login.device.confirm","login.device.redeem"]` {
		t.Fatalf("audit = %s", got)
	}
}
