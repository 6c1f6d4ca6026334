package slack

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	slackgo "github.com/slack-go/slack"
)

// sign computes X-Slack-Signature the way Slack documents it:
// "v0=" + hex(HMAC-SHA256(secret, "v0:" + timestamp + ":" + body)).
func sign(secret, timestamp, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	io.WriteString(mac, "v0:"+timestamp+":"+body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

func request(body, timestamp, signature string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/slack/commands", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if timestamp != "" {
		r.Header.Set("X-Slack-Request-Timestamp", timestamp)
	}
	if signature != "" {
		r.Header.Set("X-Slack-Signature", signature)
	}
	return r
}

// The worked example from Slack's "Verifying requests from Slack" page.
func TestSlackDocumentedExample(t *testing.T) {
	const (
		secret = "8f742231b10e8888abcd99yyyzzz85a5"
		ts     = "1531420618"
		body   = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
		want   = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
	)
	if got := sign(secret, ts, body); got != want {
		t.Fatalf("test signer disagrees with Slack's example: %s", got)
	}
	got, err := VerifyRequest(request(body, ts, want), secret, time.Unix(1531420618+30, 0))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != body {
		t.Fatalf("body = %q", got)
	}
}

func TestVerifyRequest(t *testing.T) {
	const secret = "s3cr3t-signing-secret"
	now := time.Unix(1_760_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := "command=%2Faccess&text=request+dba+for+1h+because+ticket+%2342&team_id=T1&user_id=U1"

	// A well-formed signature that differs from the real one in one bit.
	raw, _ := hex.DecodeString(strings.TrimPrefix(sign(secret, ts, body), "v0="))
	raw[len(raw)-1] ^= 1
	forged := "v0=" + hex.EncodeToString(raw)

	cases := []struct {
		name    string
		req     *http.Request
		now     time.Time
		wantErr error
	}{
		{"valid", request(body, ts, sign(secret, ts, body)), now, nil},
		{"valid at +5m edge", request(body, ts, sign(secret, ts, body)), now.Add(5 * time.Minute), nil},
		{"valid from a clock 4m ahead", request(body, ts, sign(secret, ts, body)), now.Add(-4 * time.Minute), nil},
		{"forged signature", request(body, ts, forged), now, ErrBadSignature},
		{"wrong secret", request(body, ts, sign("another-secret", ts, body)), now, ErrBadSignature},
		{"stale timestamp", request(body, ts, sign(secret, ts, body)), now.Add(5*time.Minute + time.Second), ErrStale},
		{"timestamp from the future", request(body, ts, sign(secret, ts, body)), now.Add(-6 * time.Minute), ErrStale},
		{"re-signed stale timestamp still stale", request(body, "1531420618", sign(secret, "1531420618", body)), now, ErrStale},
		{"missing signature", request(body, ts, ""), now, ErrBadSignature},
		{"missing timestamp", request(body, "", sign(secret, ts, body)), now, ErrBadSignature},
		{"missing both", request(body, "", ""), now, ErrBadSignature},
		{"body tampered", request(strings.Replace(body, "U1", "U2", 1), ts, sign(secret, ts, body)), now, ErrBadSignature},
		{"body truncated", request(body[:len(body)-1], ts, sign(secret, ts, body)), now, ErrBadSignature},
		{"timestamp swapped", request(body, strconv.FormatInt(now.Unix()+1, 10), sign(secret, ts, body)), now, ErrBadSignature},
		{"timestamp re-formatted", request(body, "0"+ts, sign(secret, ts, body)), now, ErrBadSignature},
		{"other scheme", request(body, ts, strings.Replace(sign(secret, ts, body), "v0=", "v1=", 1)), now, ErrBadSignature},
		{"not hex", request(body, ts, "v0=zz"), now, ErrBadSignature},
		{"short signature", request(body, ts, sign(secret, ts, body)[:20]), now, ErrBadSignature},
		{"garbage timestamp", request(body, "soon", sign(secret, "soon", body)), now, ErrBadSignature},
		{"too large", request(strings.Repeat("a", MaxBodyBytes+1), ts, sign(secret, ts, strings.Repeat("a", MaxBodyBytes+1))), now, ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := VerifyRequest(tc.req, secret, tc.now)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if string(got) != body {
					t.Fatalf("body = %q, want %q", got, body)
				}
				// The body is put back for ParseForm.
				if err := tc.req.ParseForm(); err != nil || tc.req.PostForm.Get("user_id") != "U1" {
					t.Fatalf("ParseForm after verify: %v %v", err, tc.req.PostForm)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if got != nil {
				t.Fatalf("body returned on failure: %q", got)
			}
			if StatusCode(err) == http.StatusOK {
				t.Fatal("failure mapped to 200")
			}
		})
	}
}

func TestEmptySecretRefused(t *testing.T) {
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	if _, err := VerifyRequest(request("x", ts, sign("", ts, "x")), "", now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("err = %v", err)
	}
}

func TestStatusCode(t *testing.T) {
	for err, want := range map[error]int{
		ErrBadSignature: 401, ErrStale: 401, ErrTooLarge: 413, io.ErrUnexpectedEOF: 400,
	} {
		if got := StatusCode(err); got != want {
			t.Errorf("StatusCode(%v) = %d, want %d", err, got, want)
		}
	}
}

// slack-go's own verifier must agree with VerifyRequest on what is authentic.
// slack.NewSecretsVerifier reads the wall clock, so this uses time.Now.
func TestAgreesWithSlackGo(t *testing.T) {
	const secret = "s3cr3t"
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	body := "text=approve+R-1&user_id=U9"
	for _, sig := range []string{sign(secret, ts, body), sign("nope", ts, body), sign(secret, ts, body+"x")} {
		r := request(body, ts, sig)
		_, ours := VerifyRequest(r, secret, now)

		sv, err := slackgo.NewSecretsVerifier(r.Header, secret)
		if err != nil {
			t.Fatal(err)
		}
		sv.Write([]byte(body))
		theirs := sv.Ensure()
		if (ours == nil) != (theirs == nil) {
			t.Fatalf("disagreement on %s: ours=%v slack-go=%v", sig, ours, theirs)
		}
	}
}
