package access

import (
	"fmt"
	"strings"
	"time"
)

// ClockSkew is how far credentials are backdated, so that a target whose
// clock runs a little behind still accepts them.
const ClockSkew = time.Minute

// DurationCap is a named upper bound on an access window, named so that an
// error can say which setting refused the request, e.g.
// "requests.max_duration" or "role contractor max_duration".
type DurationCap struct {
	Name string
	Max  time.Duration
}

// AccessWindow returns how long a grant lasts. asked == 0 means "as long as
// allowed": the smallest of def and the non-zero caps. A positive asked
// longer than some cap is refused with an error naming that cap rather than
// silently shortened, so the requester knows what they will get.
func AccessWindow(asked time.Duration, def time.Duration, caps ...DurationCap) (time.Duration, error) {
	if asked < 0 {
		return 0, fmt.Errorf("%w: duration %s: must not be negative", ErrInvalid, FormatDuration(asked))
	}
	if asked > 0 {
		for _, c := range caps {
			if c.Max > 0 && asked > c.Max {
				return 0, fmt.Errorf("%w: duration %s exceeds %s (%s)", ErrInvalid, FormatDuration(asked), c.Name, FormatDuration(c.Max))
			}
		}
		return asked, nil
	}
	window := def
	if window < 0 {
		window = 0
	}
	for _, c := range caps {
		if c.Max > 0 && (window == 0 || c.Max < window) {
			window = c.Max
		}
	}
	if window == 0 {
		return 0, fmt.Errorf("%w: no duration asked and neither a default nor a cap to take one from", ErrInvalid)
	}
	return window, nil
}

// CredentialTTL returns the lifetime of a credential minted at now for a
// grant that ends at accessExpires: the smallest of asked (or the rest of
// the window when asked is 0), every non-zero session TTL and the time left.
// notBefore is backdated by ClockSkew. Nothing is minted once the window is
// over (ErrExpired).
func CredentialTTL(asked time.Duration, accessExpires time.Time, now time.Time, sessionTTLs ...time.Duration) (ttl time.Duration, notBefore time.Time, err error) {
	if asked < 0 {
		return 0, time.Time{}, fmt.Errorf("%w: credential TTL %s: must not be negative", ErrInvalid, FormatDuration(asked))
	}
	if !now.Before(accessExpires) {
		return 0, time.Time{}, fmt.Errorf("%w: access ended at %s", ErrExpired, accessExpires.UTC().Format(time.RFC3339))
	}
	ttl = accessExpires.Sub(now)
	if asked > 0 && asked < ttl {
		ttl = asked
	}
	for _, s := range sessionTTLs {
		if s > 0 && s < ttl {
			ttl = s
		}
	}
	return ttl, now.Add(-ClockSkew), nil
}

// MaxSessionTTL returns the smallest non-zero options.max_session_ttl of
// roles, or 0 when none sets one.
func MaxSessionTTL(roles []Role) time.Duration {
	var best time.Duration
	for _, r := range roles {
		d := r.Spec.Options.MaxSessionTTL.Std()
		if d > 0 && (best == 0 || d < best) {
			best = d
		}
	}
	return best
}

// FormatDuration writes a duration the way people write it in config files:
// "8h" and "1h30m" rather than "8h0m0s" and "1h30m0s".
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
