package mattermost

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/gatehouse-dev/gatehouse/bot"
)

// defaultRateLimitWait is the wait after a 429 that named none.
const defaultRateLimitWait = time.Second

// APIError is a failed call to Mattermost's REST API. It wraps
// bot.ErrPermanent when retrying the same call cannot help (400, 403, 404,
// 413: a bad post, a channel the bot is not in, a deleted post or user),
// and carries Mattermost's wait for 429 (outbox.RetryAfter). Network
// errors, 401 (a token being rotated), 429 and 5xx are retried.
type APIError struct {
	Op string
	// StatusCode is 0 when no HTTP answer came back.
	StatusCode int
	// ID is Mattermost's error id (api.context.permissions.app_error, …).
	ID   string
	Wait time.Duration
	Err  error
}

func (e *APIError) Error() string {
	switch {
	case e.StatusCode == 0:
		return fmt.Sprintf("mattermost %s: %v", e.Op, e.Err)
	case e.ID != "":
		return fmt.Sprintf("mattermost %s: HTTP %d %s: %v", e.Op, e.StatusCode, e.ID, e.Err)
	default:
		return fmt.Sprintf("mattermost %s: HTTP %d: %v", e.Op, e.StatusCode, e.Err)
	}
}

// Permanent reports whether retrying cannot fix the call.
func (e *APIError) Permanent() bool {
	switch e.StatusCode {
	case http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusRequestEntityTooLarge:
		return true
	}
	return false
}

// RetryAfter is Mattermost's wait after a 429 (0 otherwise).
func (e *APIError) RetryAfter() time.Duration { return e.Wait }

// Unwrap exposes the cause and, when permanent, bot.ErrPermanent.
func (e *APIError) Unwrap() []error {
	if e.Permanent() {
		return []error{e.Err, bot.ErrPermanent}
	}
	return []error{e.Err}
}

// apiError turns Client4's (response, error) pair into an *APIError.
func apiError(op string, resp *model.Response, err error) error {
	if err == nil {
		err = errors.New("no error detail")
	}
	e := &APIError{Op: op, Err: err}
	var appErr *model.AppError
	if errors.As(err, &appErr) {
		e.ID = appErr.Id
	}
	if resp == nil {
		return e
	}
	e.StatusCode = resp.StatusCode
	if resp.StatusCode == http.StatusTooManyRequests {
		e.Wait = rateLimitWait(resp.Header)
	}
	return e
}

// rateLimitWait reads Retry-After (seconds) or, failing that,
// X-Ratelimit-Reset (seconds until the window resets), as Mattermost's
// rate limiter sets both.
func rateLimitWait(h http.Header) time.Duration {
	for _, name := range []string{"Retry-After", "X-Ratelimit-Reset"} {
		v := h.Get(name)
		if v == "" {
			continue
		}
		if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 {
			return max(time.Duration(secs*float64(time.Second)), time.Second)
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(time.Until(t), time.Second)
		}
	}
	return defaultRateLimitWait
}
