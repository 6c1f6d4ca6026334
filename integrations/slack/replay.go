package slack

import (
	"errors"
	"net/http"

	"github.com/gatehouse-dev/gatehouse/bot/webhook"
)

// Replays of authentic requests are refused through one webhook.ReplayCache
// shared by the HTTP routes and Socket Mode, keyed "sig:" + X-Slack-Signature
// or "envelope:" + the Socket Mode envelope id.
//
// A repeated signature is answered 409 Conflict: Slack never resends an
// interaction or a slash command with the same signature (its retries carry
// a new timestamp, hence a new signature), so a repeat is a replay by
// someone else and deserves a refusal, not a silent 200. A full cache is
// answered 503: refusing is safer than evicting a live entry, which would
// reopen its replay window.

// replayStatus is the HTTP status for an error of the replay cache.
func replayStatus(err error) int {
	if errors.Is(err, webhook.ErrReplayCacheFull) || errors.Is(err, webhook.ErrReplayUnchecked) {
		return http.StatusServiceUnavailable
	}
	return http.StatusConflict
}
