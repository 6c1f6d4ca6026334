package discordfake

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// call sends one REST request as a bot would (auth true) or anonymously.
func call(t *testing.T, f *Fake, method, path, body string, auth bool) (*http.Response, map[string]any, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		req.Header.Set("Authorization", "Bot "+f.Token)
		req.Header.Set("User-Agent", "DiscordBot (https://example.com, 1)")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp, out, string(raw)
}

// The fake answers as Discord documents: bot auth, error JSON, 429 shape,
// limits, nonce dedupe.
func TestFakeSpeaksDiscordsWireFormat(t *testing.T) {
	f := New(t)
	ch := f.AddChannel("900000000000000001")
	msgPath := "channels/" + ch + "/messages"

	resp, body, _ := call(t, f, "POST", msgPath, `{"content":"hi"}`, false)
	if resp.StatusCode != 401 || body["message"] != "401: Unauthorized" {
		t.Errorf("anonymous: %d %v", resp.StatusCode, body)
	}
	resp, body, _ = call(t, f, "POST", msgPath, `{"content":"hi","nonce":"`+strings.Repeat("n", 26)+`"}`, true)
	if resp.StatusCode != 400 || body["code"] != float64(CodeInvalidFormBody) {
		t.Errorf("26-character nonce: %d %v", resp.StatusCode, body)
	}
	resp, body, _ = call(t, f, "POST", msgPath, `{"content":"`+strings.Repeat("x", MaxContent+1)+`"}`, true)
	if resp.StatusCode != 400 {
		t.Errorf("2001 characters: %d %v", resp.StatusCode, body)
	}
	resp, body, _ = call(t, f, "POST", "channels/123456789012345678/messages", `{"content":"hi"}`, true)
	if resp.StatusCode != 404 || body["code"] != float64(CodeUnknownChannel) || body["message"] != "Unknown Channel" {
		t.Errorf("unknown channel: %d %v", resp.StatusCode, body)
	}

	first, b1, _ := call(t, f, "POST", msgPath, `{"content":"hi","nonce":"abc","enforce_nonce":true}`, true)
	_, b2, _ := call(t, f, "POST", msgPath, `{"content":"hi again","nonce":"abc","enforce_nonce":true}`, true)
	if first.StatusCode != 200 || b1["id"] != b2["id"] || b1["nonce"] != "abc" || len(f.Messages(ch)) != 1 {
		t.Errorf("enforce_nonce: %v then %v, %d messages", b1, b2, len(f.Messages(ch)))
	}
	// Fetched messages carry no nonce; the create answer did.
	if _, _, listed := call(t, f, "GET", msgPath+"?limit=10", "", true); !strings.Contains(listed, `"content":"hi"`) || strings.Contains(listed, "nonce") {
		t.Errorf("listed %s", listed)
	}
	if m := f.Messages(ch); m[0].Nonce != "abc" || m[0].Content != "hi" {
		t.Errorf("stored %+v", m[0])
	}

	f.FailNext(RouteCreateMessage, http.StatusTooManyRequests, 1500*time.Millisecond)
	resp, body, _ = call(t, f, "POST", msgPath, `{"content":"hi"}`, true)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" || resp.Header.Get("X-RateLimit-Remaining") != "0" ||
		body["retry_after"] != 1.5 || body["global"] != false || body["message"] != "You are being rate limited." {
		t.Errorf("429: %d %v %v", resp.StatusCode, resp.Header, body)
	}
	if n := f.Calls(RouteCreateMessage); n != 7 {
		t.Errorf("Calls = %d, want 7", n)
	}

	// Interaction webhooks are authenticated by their token, not the bot.
	resp, body, _ = call(t, f, "PATCH", "webhooks/"+f.ApplicationID+"/no-such-token/messages/@original", `{"content":"x"}`, false)
	if resp.StatusCode != 404 || body["code"] != float64(CodeUnknownWebhook) {
		t.Errorf("unknown interaction token: %d %v", resp.StatusCode, body)
	}
}
