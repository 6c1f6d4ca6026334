package discord

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/bot"
)

// REST limits and timeouts.
const (
	// requestTimeout bounds one REST call when the caller's context has no
	// earlier deadline.
	requestTimeout = 15 * time.Second
	// maxResponseBytes bounds a REST response body read.
	maxResponseBytes = 4 << 20
	// userAgent is what Discord requires: "DiscordBot ($url, $versionNumber)".
	userAgent = "DiscordBot (https://github.com/gatehouse-dev/gatehouse, 1)"
)

// restClient is a small Discord REST client over net/http.
//
// discordgo's Session is not used for REST: its endpoint URLs are
// package-level variables (one base URL per process, racy in parallel
// tests), its rate limiter sleeps without a context, it retries 429s
// in-process (the outbox should own the wait), and MessageSend has no nonce
// or enforce_nonce. discordgo's types are still the wire format.
type restClient struct {
	base   string // with a trailing slash
	token  string
	client *http.Client

	mu sync.Mutex
	// emptyUntil holds, per rate-limit key, when a bucket that Discord
	// reported empty (X-RateLimit-Remaining: 0) refills; requests before
	// then fail at once with a RetryAfter error instead of earning a 429.
	emptyUntil  map[string]time.Time
	globalUntil time.Time
}

func newRESTClient(cfg Config) *restClient {
	return &restClient{
		base:       cfg.APIURL,
		token:      cfg.BotToken,
		client:     &http.Client{Timeout: requestTimeout},
		emptyUntil: map[string]time.Time{},
	}
}

// APIError is an error answer from Discord's REST API (or a request held
// back because Discord said its rate-limit bucket is empty).
//
// It implements outbox.RetryAfter: RetryAfter is Discord's wait for 429s
// and zero otherwise. errors.Is(err, bot.ErrPermanent) holds for answers no
// retry can fix (400, 403 Missing Access, 404 Unknown Channel, 50007
// Cannot send messages to this user ...); 401, 429 and 5xx are retried.
type APIError struct {
	// Method and Route name the call, as in Discord's documentation:
	// "POST /channels/{channel.id}/messages".
	Method, Route string
	// Status is the HTTP status; 429 for a bucket held back locally.
	Status int
	// Code is Discord's JSON error code (50001 Missing Access), 0 if none.
	Code int
	// Message is Discord's message.
	Message string
	// Wait is how long Discord asked to wait (429), zero otherwise.
	Wait time.Duration
	// Global is true for Discord's global rate limit.
	Global bool
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "discord: %s %s: %d", e.Method, e.Route, e.Status)
	if e.Message != "" {
		b.WriteString(" " + e.Message)
	}
	if e.Code != 0 {
		fmt.Fprintf(&b, " (code %d)", e.Code)
	}
	if e.Wait > 0 {
		fmt.Fprintf(&b, "; retry after %s", e.Wait)
	}
	if e.Status == http.StatusUnauthorized {
		b.WriteString("; check discord.bot_token")
	}
	return b.String()
}

// RetryAfter is Discord's wait for a rate-limited call.
func (e *APIError) RetryAfter() time.Duration { return e.Wait }

// Permanent reports whether retrying the same call cannot succeed.
func (e *APIError) Permanent() bool {
	switch {
	case e.Status == http.StatusUnauthorized, // a token fix makes it work: keep the messages
		e.Status == http.StatusRequestTimeout,
		e.Status == http.StatusTooManyRequests:
		return false
	case e.Status >= 400 && e.Status < 500:
		return true
	}
	return false
}

// Is makes errors.Is(err, bot.ErrPermanent) true for permanent errors.
func (e *APIError) Is(target error) bool {
	return target == bot.ErrPermanent && e.Permanent()
}

// Discord JSON error codes the adapter looks at.
const (
	codeUnknownChannel     = 10003
	codeUnknownMessage     = 10008
	codeUnknownWebhook     = 10015
	codeUnknownInteraction = 10062
)

// do sends one REST call. route is the documented route ("POST
// /channels/{channel.id}/messages" without the method), path the filled-in
// path relative to the base URL. in (if not nil) is sent as JSON; out (if
// not nil) receives the JSON answer.
func (c *restClient) do(ctx context.Context, method, route, path string, in, out any) error {
	key := rateKey(method, route, path)
	if wait, global := c.held(key, time.Now()); wait > 0 {
		return &APIError{Method: method, Route: route, Status: http.StatusTooManyRequests,
			Message: "rate limit bucket empty (held back before sending)", Wait: wait, Global: global}
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("discord: %s %s: encoding request: %w", method, route, err)
		}
		body = bytes.NewReader(b)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, requestTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("discord: %s %s: %w", method, route, err)
	}
	req.Header.Set("Authorization", "Bot "+c.token)
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("discord: %s %s: %w", method, route, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("discord: %s %s: reading response: %w", method, route, err)
	}
	c.note(key, resp.Header, time.Now())
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out == nil || len(raw) == 0 {
			return nil
		}
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("discord: %s %s: decoding response: %w", method, route, err)
		}
		return nil
	}
	return c.apiError(key, method, route, resp, raw)
}

// apiError reads Discord's error body: {"code":50001,"message":"Missing
// Access"}, or for 429 {"message":"You are being rate limited.",
// "retry_after":1.5,"global":false} with a Retry-After header.
func (c *restClient) apiError(key, method, route string, resp *http.Response, raw []byte) error {
	e := &APIError{Method: method, Route: route, Status: resp.StatusCode}
	var body struct {
		Code       int      `json:"code"`
		Message    string   `json:"message"`
		RetryAfter *float64 `json:"retry_after"`
		Global     bool     `json:"global"`
	}
	if json.Unmarshal(raw, &body) == nil {
		e.Code, e.Message, e.Global = body.Code, body.Message, body.Global
	} else {
		e.Message = http.StatusText(resp.StatusCode)
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		// Wait the longer of the header (whole seconds) and the body
		// (fractional seconds); X-RateLimit-Reset-After if neither came.
		wait := seconds(resp.Header.Get("Retry-After"))
		if body.RetryAfter != nil {
			wait = max(wait, secondsFloat(*body.RetryAfter))
		}
		if wait == 0 {
			wait = seconds(resp.Header.Get("X-RateLimit-Reset-After"))
		}
		if wait == 0 {
			wait = time.Second // a 429 always means wait
		}
		e.Wait = wait
		e.Global = e.Global || resp.Header.Get("X-RateLimit-Global") == "true"
		c.hold(key, e.Global, time.Now().Add(wait))
	}
	return e
}

// rateKey names a rate-limit bucket: Discord buckets per route and major
// parameter (the channel, guild or application in the path; a webhook's id
// and token).
func rateKey(method, route, path string) string {
	parts := strings.Split(path, "/")
	n := 2
	if parts[0] == "webhooks" {
		n = 3
	}
	return method + " " + route + " " + strings.Join(parts[:min(n, len(parts))], "/")
}

func (c *restClient) held(key string, now time.Time) (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Before(c.globalUntil) {
		return c.globalUntil.Sub(now), true
	}
	if t, ok := c.emptyUntil[key]; ok {
		if now.Before(t) {
			return t.Sub(now), false
		}
		delete(c.emptyUntil, key)
	}
	return 0, false
}

// note records an emptied bucket from the X-RateLimit-* headers.
func (c *restClient) note(key string, h http.Header, now time.Time) {
	if h.Get("X-RateLimit-Remaining") != "0" {
		return
	}
	if d := seconds(h.Get("X-RateLimit-Reset-After")); d > 0 {
		c.hold(key, false, now.Add(d))
	}
}

func (c *restClient) hold(key string, global bool, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if global {
		c.globalUntil = until
		return
	}
	if key != "" {
		c.emptyUntil[key] = until
	}
}

// seconds parses a header of (possibly fractional) seconds; 0 if absent
// or malformed.
func seconds(s string) time.Duration {
	if s == "" {
		return 0
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0
	}
	return secondsFloat(f)
}

func secondsFloat(f float64) time.Duration {
	if f <= 0 || math.IsNaN(f) || f > 24*3600 {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}

// isRetryable reports whether err may succeed when sent again soon.
func isRetryable(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status == http.StatusTooManyRequests || ae.Status >= 500
	}
	return err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}
