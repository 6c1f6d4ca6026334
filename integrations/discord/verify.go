// Package discord is Gatehouse's Discord integration. This file is its
// verification edge: every request to the HTTP interactions endpoint must
// pass VerifyInteraction before anything in it is believed.
//
// Discord signs each interaction with the application's Ed25519 key
// (https://discord.com/developers/docs/interactions/overview#setting-up-an-endpoint-validating-security-request-headers):
//
//	X-Signature-Timestamp: TS                 (unix seconds, as text)
//	X-Signature-Ed25519:   hex(Ed25519(TS + BODY))
//
// Discord requires that a request with a bad signature is answered 401
// Unauthorized: it sends deliberately mis-signed requests when the endpoint
// URL is saved, and periodically afterwards, and refuses (or removes) an
// endpoint that accepts them. Handlers must therefore answer every error from
// VerifyInteraction with StatusCode(err), which is 401 for ErrBadSignature
// (and for ErrStale), and must do so before looking at the body at all.
//
// Ed25519 is checked with crypto/ed25519 directly: discordgo.VerifyInteraction
// does the same computation but reads the body unbounded and has no
// timestamp or replay check. verify_test.go checks that
// discordgo.VerifyInteraction accepts exactly what VerifyInteraction accepts.
package discord

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gatehouse-dev/gatehouse/bot/webhook"
)

const (
	// MaxBodyBytes bounds the body read from Discord.
	MaxBodyBytes = 1 << 20
	// MaxSkew is how far the signed timestamp may be from now, either direction.
	MaxSkew = 5 * time.Minute

	headerSignature = "X-Signature-Ed25519"
	headerTimestamp = "X-Signature-Timestamp"
)

var (
	// ErrBadSignature: headers missing or malformed, or the Ed25519 signature
	// does not verify. Discord requires 401 for this.
	ErrBadSignature = errors.New("discord: bad request signature")
	// ErrStale: the signed timestamp is more than MaxSkew from now. 401.
	ErrStale = errors.New("discord: request timestamp outside the 5-minute window")
	// ErrReplay: an authentic interaction whose id was already seen. 409.
	ErrReplay = webhook.ErrReplay
	// ErrMalformed: an authentic body that is not an interaction with an id. 400.
	ErrMalformed = errors.New("discord: malformed interaction")
	// ErrTooLarge: the body exceeds MaxBodyBytes. 413.
	ErrTooLarge = webhook.ErrTooLarge
	// ErrReplayCacheFull: the replay cache holds its capacity of unexpired
	// ids, so a new one cannot be remembered; the interaction is refused
	// rather than accepted unprotected. 503.
	ErrReplayCacheFull = webhook.ErrReplayCacheFull
)

// VerifyInteraction checks r's Ed25519 signature against publicKey, its
// timestamp against now, and its interaction id against seen, and returns
// the raw body for parsing (a fresh reader over it is also put back in
// r.Body). seen is a webhook.ReplayCache (webhook.NewReplayCache(0) is
// ample); the id is recorded in it only once the signature has verified,
// so forged requests cannot fill the cache. A PING ({"type":1,...}) is
// verified like any other interaction; answering PONG is the caller's job.
//
// seen must not be nil: a missing cache is refused, not skipped.
// Every error wraps one of the Err* sentinels of this package, or is a
// read error; answer it with StatusCode(err).
func VerifyInteraction(r *http.Request, publicKey ed25519.PublicKey, now time.Time, seen *webhook.ReplayCache) ([]byte, error) {
	if len(publicKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: no valid public key configured", ErrBadSignature)
	}
	if seen == nil {
		return nil, fmt.Errorf("%w: no replay cache configured", ErrReplayCacheFull)
	}
	sigHeader := r.Header.Get(headerSignature)
	tsHeader := r.Header.Get(headerTimestamp)
	if sigHeader == "" || tsHeader == "" {
		return nil, fmt.Errorf("%w: missing %s or %s header", ErrBadSignature, headerSignature, headerTimestamp)
	}
	sig, err := hex.DecodeString(sigHeader)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: malformed signature", ErrBadSignature)
	}
	ts, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed timestamp", ErrBadSignature)
	}
	signedAt := time.Unix(ts, 0)

	body, err := webhook.ReadBody(r, MaxBodyBytes)
	if err != nil {
		return nil, err
	}
	msg := make([]byte, 0, len(tsHeader)+len(body))
	msg = append(append(msg, tsHeader...), body...)
	if !ed25519.Verify(publicKey, msg, sig) {
		return nil, fmt.Errorf("%w: Ed25519 verification failed", ErrBadSignature)
	}
	// Staleness after the signature: a mis-signed request always gets
	// ErrBadSignature (Discord's endpoint checks send stale-looking ones too),
	// and either way the status is 401.
	if skew := now.Sub(signedAt).Abs(); skew > MaxSkew {
		return nil, fmt.Errorf("%w: timestamp is %s from now", ErrStale, skew.Round(time.Second))
	}

	var head struct {
		ID   string `json:"id"`
		Type int    `json:"type"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if head.ID == "" {
		return nil, fmt.Errorf("%w: no interaction id", ErrMalformed)
	}
	// Remember the id until the signed timestamp itself goes stale (and at
	// least MaxSkew from now): a replay after that is refused as ErrStale.
	// Expiring at now+MaxSkew alone would leave a gap for a timestamp up to
	// MaxSkew in the future.
	if err := seen.Check(r.Context(), head.ID, now, webhook.ReplayUntil(now, signedAt, MaxSkew)); err != nil {
		return nil, fmt.Errorf("discord: interaction: %w", err)
	}
	return body, nil
}

// StatusCode is the HTTP status to answer an error from VerifyInteraction
// with. ErrBadSignature is 401 Unauthorized, as Discord requires; a stale
// timestamp is 401 too.
func StatusCode(err error) int {
	switch {
	case errors.Is(err, ErrBadSignature), errors.Is(err, ErrStale):
		return http.StatusUnauthorized
	case errors.Is(err, ErrReplay):
		return http.StatusConflict
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrReplayCacheFull), errors.Is(err, webhook.ErrReplayUnchecked):
		return http.StatusServiceUnavailable
	default:
		return http.StatusBadRequest
	}
}
