package access_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
)

// TestLoginLimitFail walks one name through failures: counted in a window
// from the first, locked at the limit, counted but not extended while
// locked, and starting over once the window or the lockout is past.
func TestLoginLimitFail(t *testing.T) {
	l := access.LoginLimit{Attempts: 3, Window: 10 * time.Minute, Lockout: 30 * time.Minute}
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	var a access.LoginAttempts
	steps := []struct {
		name       string
		at         time.Duration // after t0
		locks      bool
		failures   int
		lockedTill time.Duration // after t0; 0: not locked
		keep       time.Duration
	}{
		{"first failure opens the window", 0, false, 1, 0, 10 * time.Minute},
		{"second within it", 4 * time.Minute, false, 2, 0, 6 * time.Minute},
		{"the window closed: start over", 10 * time.Minute, false, 1, 0, 10 * time.Minute},
		{"second of the new window", 11 * time.Minute, false, 2, 0, 9 * time.Minute},
		{"third locks", 12 * time.Minute, true, 3, 42 * time.Minute, 30 * time.Minute},
		{"while locked: counted, not extended", 20 * time.Minute, false, 4, 42 * time.Minute, 22 * time.Minute},
		{"after the lockout: a new window", 42 * time.Minute, false, 1, 0, 10 * time.Minute},
	}
	for _, s := range steps {
		now := t0.Add(s.at)
		locks := l.Fail(&a, now)
		var until time.Time
		if s.lockedTill != 0 {
			until = t0.Add(s.lockedTill)
		}
		if locks != s.locks || a.Failures != s.failures || !a.LockedUntil.Equal(until) || l.Keep(a, now) != s.keep {
			t.Fatalf("%s: locks %v, %+v, keep %s; want locks %v, %d failures, locked until %v, keep %s",
				s.name, locks, a, l.Keep(a, now), s.locks, s.failures, until, s.keep)
		}
	}
}

func TestLockoutErrorAndRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		until time.Time
		shown string
	}{
		{now.Add(15 * time.Minute), "10:15"},
		{now.Add(15*time.Minute + time.Second), "10:16"}, // rounded up: never too early
		{time.Date(2026, 11, 21, 23, 59, 30, 0, time.FixedZone("CET", 3600)), "23:00"},
	} {
		err := fmt.Errorf("login: %w", access.LockoutError("ghost", tt.until, now))
		want := "login: too many failed logins for this user; try again after " + tt.shown + " UTC, or ask an admin to unlock: accessctl unlock ghost"
		wait, ok := access.RetryAfter(err)
		if err.Error() != want || !ok || wait != tt.until.Sub(now) || !errors.Is(err, access.ErrRateLimited) || access.CodeOf(err) != access.CodeRateLimited {
			t.Errorf("until %s: %q (wait %s, code %s), want %q", tt.until, err, wait, access.CodeOf(err), want)
		}
	}
	if _, ok := access.RetryAfter(access.ErrUnauthorized); ok {
		t.Error("RetryAfter of a plain error: ok, want none")
	}
}

func TestLoginLimitValidate(t *testing.T) {
	for _, tt := range []struct {
		limit access.LoginLimit
		want  string // "" valid
	}{
		{access.LoginLimit{}.WithDefaults(), ""},
		{access.LoginLimit{Attempts: 1, Window: time.Minute, Lockout: 24 * time.Hour}, ""},
		{access.LoginLimit{Attempts: -1, Window: time.Minute, Lockout: time.Hour}, "invalid: identity.login_attempts -1: want 1 to 100"},
		{access.LoginLimit{Attempts: 5, Window: time.Minute, Lockout: time.Second}, "invalid: identity.login_lockout 1s: want 1m to 24h0m0s"},
		{access.LoginLimit{Attempts: 5, Window: 0, Lockout: time.Hour}, "invalid: login window 0s: want at least 1s"},
	} {
		err := tt.limit.Validate()
		if (err == nil) != (tt.want == "") || (err != nil && err.Error() != tt.want) {
			t.Errorf("%+v: %v, want %q", tt.limit, err, tt.want)
		}
	}
}

func TestClientNetwork(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":                  "192.0.2.7",
		"192.0.2.7:50000":            "192.0.2.7",
		"[::ffff:192.0.2.7]:443":     "192.0.2.7",
		"2001:db8::1":                "2001:db8::/64",
		"[2001:db8:0:0:ffff::1]:443": "2001:db8::/64",
		"[fe80::1%eth0]:22":          "fe80::/64",
		"2001:db8:0:1::1":            "2001:db8:0:1::/64",
		"pipe":                       "pipe",
	} {
		if got := access.ClientNetwork(in); got != want {
			t.Errorf("ClientNetwork(%q) = %q, want %q", in, got, want)
		}
	}
}
