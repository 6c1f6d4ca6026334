package discord

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/gatehouse-dev/gatehouse/bot/webhook"
)

type signer struct {
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
}

func newSigner(t *testing.T) signer {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signer{pub, priv}
}

// request builds an interaction POST signed as Discord signs it:
// hex(Ed25519(timestamp + body)).
func (s signer) request(body string, at time.Time) *http.Request {
	ts := strconv.FormatInt(at.Unix(), 10)
	r := httptest.NewRequest(http.MethodPost, "/discord/interactions", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Signature-Timestamp", ts)
	r.Header.Set("X-Signature-Ed25519", hex.EncodeToString(ed25519.Sign(s.priv, []byte(ts+body))))
	return r
}

const click = `{"type":3,"id":"1234567890123456789","application_id":"42","token":"tok","data":{"custom_id":"approve:R-1","component_type":2}}`

func TestVerifyInteraction(t *testing.T) {
	s := newSigner(t)
	other := newSigner(t)
	now := time.Unix(1_760_000_000, 0)

	tamper := func(r *http.Request, f func(h http.Header)) *http.Request { f(r.Header); return r }
	flipSig := func(h http.Header) {
		raw, _ := hex.DecodeString(h.Get("X-Signature-Ed25519"))
		raw[5] ^= 0x80
		h.Set("X-Signature-Ed25519", hex.EncodeToString(raw))
	}

	cases := []struct {
		name    string
		req     *http.Request
		now     time.Time
		wantErr error
	}{
		{"valid", s.request(click, now), now, nil},
		{"PING", s.request(`{"type":1,"id":"999","application_id":"42","token":"t","version":1}`, now), now, nil},
		{"minimal PING", s.request(`{"type":1,"id":"1000"}`, now), now, nil},
		{"clock 4m ahead", s.request(`{"type":3,"id":"1001"}`, now.Add(4*time.Minute)), now, nil},
		{"forged signature", tamper(s.request(`{"type":3,"id":"1002"}`, now), flipSig), now, ErrBadSignature},
		{"signed by another key", other.request(`{"type":3,"id":"1003"}`, now), now, ErrBadSignature},
		{"body tampered", func() *http.Request {
			r := s.request(`{"type":3,"id":"1004","data":{"custom_id":"deny:R-1"}}`, now)
			good := s.request(`{"type":3,"id":"1004","data":{"custom_id":"approve:R-1"}}`, now)
			r.Header = good.Header
			return r
		}(), now, ErrBadSignature},
		{"timestamp header changed", tamper(s.request(`{"type":3,"id":"1005"}`, now), func(h http.Header) {
			h.Set("X-Signature-Timestamp", strconv.FormatInt(now.Unix()+1, 10))
		}), now, ErrBadSignature},
		{"stale", s.request(`{"type":3,"id":"1006"}`, now.Add(-5*time.Minute-time.Second)), now, ErrStale},
		{"from the future", s.request(`{"type":3,"id":"1007"}`, now.Add(6*time.Minute)), now, ErrStale},
		{"missing signature", tamper(s.request(`{"type":1,"id":"1008"}`, now), func(h http.Header) { h.Del("X-Signature-Ed25519") }), now, ErrBadSignature},
		{"missing timestamp", tamper(s.request(`{"type":1,"id":"1009"}`, now), func(h http.Header) { h.Del("X-Signature-Timestamp") }), now, ErrBadSignature},
		{"signature not hex", tamper(s.request(`{"type":1,"id":"1010"}`, now), func(h http.Header) { h.Set("X-Signature-Ed25519", "nothex") }), now, ErrBadSignature},
		{"signed but no id", s.request(`{"type":1}`, now), now, ErrMalformed},
		{"signed but not JSON", s.request(`type=1`, now), now, ErrMalformed},
		{"too large", s.request(`{"type":3,"id":"1011","pad":"`+strings.Repeat("a", MaxBodyBytes)+`"}`, now), now, ErrTooLarge},
	}
	seen := webhook.NewReplayCache(0)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, err := VerifyInteraction(tc.req, s.pub, tc.now, seen)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if len(body) == 0 {
					t.Fatal("no body returned")
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if body != nil {
				t.Fatalf("body returned on failure: %q", body)
			}
		})
	}
	// Only the verified ids were remembered: forged and stale ones were not.
	if n := seen.Len(now); n != 4 {
		t.Fatalf("replay cache holds %d ids, want 4", n)
	}
}

func TestReplayedInteractionRefused(t *testing.T) {
	s := newSigner(t)
	now := time.Unix(1_760_000_000, 0)
	seen := webhook.NewReplayCache(0)

	if _, err := VerifyInteraction(s.request(click, now), s.pub, now, seen); err != nil {
		t.Fatal(err)
	}
	// The captured request, byte for byte, a little later.
	_, err := VerifyInteraction(s.request(click, now), s.pub, now.Add(2*time.Minute), seen)
	if !errors.Is(err, ErrReplay) || StatusCode(err) != http.StatusConflict {
		t.Fatalf("replay: err = %v (status %d)", err, StatusCode(err))
	}
	// Once the timestamp is stale the cache may forget, because staleness refuses it.
	_, err = VerifyInteraction(s.request(click, now), s.pub, now.Add(5*time.Minute+time.Second), seen)
	if !errors.Is(err, ErrStale) {
		t.Fatalf("late replay: err = %v", err)
	}
}

// A timestamp up to MaxSkew in the future must stay remembered until it is
// itself stale, or it could be replayed between now+MaxSkew and ts+MaxSkew.
func TestReplayOfFutureTimestampRefused(t *testing.T) {
	s := newSigner(t)
	now := time.Unix(1_760_000_000, 0)
	seen := webhook.NewReplayCache(0)
	at := now.Add(4 * time.Minute)
	if _, err := VerifyInteraction(s.request(click, at), s.pub, now, seen); err != nil {
		t.Fatal(err)
	}
	later := now.Add(7 * time.Minute) // past now+5m, before at+5m: timestamp still fresh
	if _, err := VerifyInteraction(s.request(click, at), s.pub, later, seen); !errors.Is(err, ErrReplay) {
		t.Fatalf("err = %v, want ErrReplay", err)
	}
}

func TestBadSignatureIs401(t *testing.T) {
	for _, err := range []error{ErrBadSignature, fmt.Errorf("x: %w", ErrBadSignature), ErrStale} {
		if got := StatusCode(err); got != http.StatusUnauthorized {
			t.Fatalf("StatusCode(%v) = %d, want 401", err, got)
		}
	}
	for err, want := range map[error]int{ErrReplay: 409, ErrMalformed: 400, ErrTooLarge: 413, ErrReplayCacheFull: 503} {
		if got := StatusCode(err); got != want {
			t.Errorf("StatusCode(%v) = %d, want %d", err, got, want)
		}
	}
}

func TestMisconfigurationRefused(t *testing.T) {
	s := newSigner(t)
	now := time.Now()
	if _, err := VerifyInteraction(s.request(click, now), nil, now, webhook.NewReplayCache(1)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("nil key: %v", err)
	}
	if _, err := VerifyInteraction(s.request(click, now), s.pub, now, nil); err == nil {
		t.Fatal("nil replay cache accepted")
	}
}

// Of 64 concurrent deliveries of one authentic interaction exactly one is
// accepted; the others are replays.
func TestConcurrentReplaysAcceptOne(t *testing.T) {
	s := newSigner(t)
	now := time.Unix(1_760_000_000, 0)
	seen := webhook.NewReplayCache(0)
	body := `{"type":3,"id":"777"}`
	var ok, replay atomic.Int32
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := VerifyInteraction(s.request(body, now), s.pub, now, seen)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrReplay):
				replay.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || replay.Load() != 63 {
		t.Fatalf("accepted %d, replays %d; want exactly one accepted", ok.Load(), replay.Load())
	}
}

// discordgo's verifier must agree with ours on what is authentic.
func TestAgreesWithDiscordgo(t *testing.T) {
	s := newSigner(t)
	other := newSigner(t)
	now := time.Now()
	for i, r := range []func() *http.Request{
		func() *http.Request { return s.request(click, now) },
		func() *http.Request { return other.request(click, now) },
	} {
		_, ours := VerifyInteraction(r(), s.pub, now, webhook.NewReplayCache(1))
		theirs := discordgo.VerifyInteraction(r(), s.pub)
		if (ours == nil) != theirs {
			t.Fatalf("case %d: ours=%v discordgo=%v", i, ours, theirs)
		}
	}
}
