package slack

import (
	"errors"
	"fmt"
	"time"

	slackgo "github.com/slack-go/slack"

	"github.com/gatehouse-dev/gatehouse/bot"
)

// permanentErrors are Slack error codes that no retry can fix: the message
// is dropped (and audited as failed) rather than retried forever. Any other
// code (internal_error, fatal_error, request_timeout, service_unavailable,
// ...) is retried.
var permanentErrors = map[string]bool{
	"channel_not_found":              true,
	"not_in_channel":                 true,
	"is_archived":                    true,
	"invalid_auth":                   true,
	"not_authed":                     true,
	"account_inactive":               true,
	"token_revoked":                  true,
	"token_expired":                  true,
	"no_permission":                  true,
	"missing_scope":                  true,
	"not_allowed_token_type":         true,
	"ekm_access_denied":              true,
	"team_access_not_granted":        true,
	"restricted_action":              true,
	"user_not_found":                 true,
	"user_disabled":                  true,
	"user_not_visible":               true,
	"cannot_dm_bot":                  true,
	"message_not_found":              true,
	"cant_update_message":            true,
	"edit_window_closed":             true,
	"msg_too_long":                   true,
	"no_text":                        true,
	"invalid_blocks":                 true,
	"invalid_blocks_format":          true,
	"invalid_metadata_format":        true,
	"invalid_metadata_schema":        true,
	"metadata_too_large":             true,
	"metadata_must_be_sent_from_app": true,
	"invalid_arguments":              true,
	"invalid_arg_name":               true,
	"invalid_thread_ts":              true,
}

// RateLimitedError is Slack's 429: the outbox waits RetryAfter before the
// next attempt (outbox.RetryAfter).
type RateLimitedError struct {
	Method string
	After  time.Duration
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("slack %s: rate limited, retry after %s", e.Method, e.After)
}

// RetryAfter is Slack's Retry-After.
func (e *RateLimitedError) RetryAfter() time.Duration { return e.After }

// apiError classifies an error from a Web API call: 429 becomes a
// *RateLimitedError, the codes in permanentErrors wrap bot.ErrPermanent,
// everything else (5xx, network, timeouts, other codes) stays a plain error
// that the outbox retries with backoff.
func apiError(method string, err error) error {
	if err == nil {
		return nil
	}
	if rl, ok := errors.AsType[*slackgo.RateLimitedError](err); ok {
		return &RateLimitedError{Method: method, After: rl.RetryAfter}
	}
	if se, ok := errors.AsType[slackgo.SlackErrorResponse](err); ok {
		if permanentErrors[se.Err] {
			detail := se.Err
			if se.Needed != "" {
				detail += " (needs scope " + se.Needed + ")"
			}
			return fmt.Errorf("%w: slack %s: %s", bot.ErrPermanent, method, detail)
		}
		return fmt.Errorf("slack %s: %s", method, se.Err)
	}
	return fmt.Errorf("slack %s: %w", method, err)
}

// slackCode is the Slack error code in err ("" when it is not one).
func slackCode(err error) string {
	if se, ok := errors.AsType[slackgo.SlackErrorResponse](err); ok {
		return se.Err
	}
	return ""
}
