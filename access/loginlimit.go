package access

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Throttling of password guessing and of anonymous login traffic.

// ErrRateLimited: too many attempts in too short a time. Nothing was done;
// the same call may succeed later (a *RetryError says when). The HTTP API
// answers 429 with Retry-After.
var ErrRateLimited = errors.New("rate limited")

// CodeRateLimited is the API code of ErrRateLimited.
const CodeRateLimited Code = "rate_limited"

// RetryError is an ErrRateLimited that knows when to come back.
type RetryError struct {
	// Wait is how long from now the caller should wait (Retry-After).
	Wait time.Duration
	// Msg is the whole message shown to the user.
	Msg string
}

func (e *RetryError) Error() string { return e.Msg }

// Unwrap makes errors.Is(err, ErrRateLimited) hold.
func (e *RetryError) Unwrap() error { return ErrRateLimited }

// RetryAfter returns how long err asks the caller to wait, if it is or
// wraps a *RetryError.
func RetryAfter(err error) (time.Duration, bool) {
	var re *RetryError
	if errors.As(err, &re) {
		return max(re.Wait, 0), true
	}
	return 0, false
}

// Defaults of LoginLimit, as Teleport's: five failures lock an account out.
const (
	DefaultLoginAttempts = 5
	DefaultLoginWindow   = 15 * time.Minute
	DefaultLoginLockout  = 15 * time.Minute
	// MaxLoginLockout bounds login_lockout: a longer lockout only helps
	// whoever wants to keep a user out.
	MaxLoginLockout = 24 * time.Hour
	// MaxLoginAttempts bounds login_attempts: beyond it a lockout protects
	// no password worth having.
	MaxLoginAttempts = 100
)

// LoginLimit locks password logins of a user name for Lockout once
// Attempts failures came within Window of the first of them.
type LoginLimit struct {
	Attempts int
	Window   time.Duration
	Lockout  time.Duration
}

// WithDefaults fills zero fields with the defaults.
func (l LoginLimit) WithDefaults() LoginLimit {
	if l.Attempts == 0 {
		l.Attempts = DefaultLoginAttempts
	}
	if l.Window == 0 {
		l.Window = DefaultLoginWindow
	}
	if l.Lockout == 0 {
		l.Lockout = DefaultLoginLockout
	}
	return l
}

// Validate checks the limits; errors name the accessd.yaml keys.
func (l LoginLimit) Validate() error {
	if l.Attempts < 1 || l.Attempts > MaxLoginAttempts {
		return fmt.Errorf("%w: identity.login_attempts %d: want 1 to %d", ErrInvalid, l.Attempts, MaxLoginAttempts)
	}
	if l.Lockout < time.Minute || l.Lockout > MaxLoginLockout {
		return fmt.Errorf("%w: identity.login_lockout %s: want 1m to %s", ErrInvalid, l.Lockout, MaxLoginLockout)
	}
	if l.Window < time.Second {
		return fmt.Errorf("%w: login window %s: want at least 1s", ErrInvalid, l.Window)
	}
	return nil
}

// LoginAttempts is the failed password logins of one user name as it was
// tried: a name nobody has is counted like any other, so the answers tell
// nothing about which users exist.
type LoginAttempts struct {
	User string `json:"user"`
	// Failures counts the failures since First, lockout or not.
	Failures int `json:"failures"`
	// First is the first failure of the current window.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	// LockedUntil: password logins are refused before it; zero when the
	// name was never locked in this window.
	LockedUntil time.Time `json:"locked_until,omitzero"`
	// Revision is the etcd mod revision (not stored).
	Revision int64 `json:"-"`
}

// Locked reports whether password logins are refused at now.
func (a LoginAttempts) Locked(now time.Time) bool { return now.Before(a.LockedUntil) }

// Fail records a failure at now and reports whether it started a lockout.
// A failure after the window or after a lockout ended starts a new window;
// failures during a lockout are counted but do not extend it, so the
// lockout ends when it said it would.
func (l LoginLimit) Fail(a *LoginAttempts, now time.Time) (lockoutStarted bool) {
	switch {
	case a.Locked(now):
	case a.Failures == 0, !a.LockedUntil.IsZero(), !now.Before(a.First.Add(l.Window)):
		a.Failures, a.First, a.LockedUntil = 0, now, time.Time{}
	}
	a.Failures++
	a.Last = now
	if !a.Locked(now) && a.Failures >= l.Attempts {
		a.LockedUntil = now.Add(l.Lockout)
		return true
	}
	return false
}

// Keep is how long after now the record still matters: until its window
// closes or its lockout ends, whichever is later.
func (l LoginLimit) Keep(a LoginAttempts, now time.Time) time.Duration {
	end := a.First.Add(l.Window)
	if a.LockedUntil.After(end) {
		end = a.LockedUntil
	}
	return max(end.Sub(now), 0)
}

// LockoutError is the answer to a password login of a locked name; the
// same for users that exist and names that do not.
func LockoutError(user string, until, now time.Time) *RetryError {
	// Rounded up to the minute, so "after HH:MM" is never too early.
	shown := until.UTC().Truncate(time.Minute)
	if shown.Before(until) {
		shown = shown.Add(time.Minute)
	}
	return &RetryError{
		Wait: until.Sub(now),
		Msg: fmt.Sprintf("too many failed logins for this user; try again after %s UTC, or ask an admin to unlock: accessctl unlock %s",
			shown.Format("15:04"), user),
	}
}

// LoginAttemptStore keeps LoginAttempts cluster-wide, so that a lockout
// holds on every replica. Records are cleaned up by etcd leases once they
// no longer matter; whether a name is locked is decided by LockedUntil,
// never by the lease.
type LoginAttemptStore interface {
	// GetLoginAttempts returns the record of user with its Revision, or
	// ErrNotFound when there is none.
	GetLoginAttempts(ctx context.Context, user string) (LoginAttempts, error)
	// UpdateLoginAttempts reads the record of user (a zero one with
	// User set when there is none), calls fn on it and writes the result
	// with fn's audit events in one transaction that compares the
	// record's mod revision (or its absence). When another writer got
	// there first it reads again and calls fn again, so fn must be a pure
	// function of the record; concurrent updates are therefore all
	// applied. fn returns how long etcd must keep the record at least. An
	// error from fn aborts without writing and is returned as is.
	UpdateLoginAttempts(ctx context.Context, user string, fn func(*LoginAttempts) (keep time.Duration, events []AuditEvent, err error)) (LoginAttempts, error)
	// DeleteLoginAttempts removes the record of user with the audit
	// events; ErrNotFound when there is none.
	DeleteLoginAttempts(ctx context.Context, user string, events ...AuditEvent) error
}

// ClientNetwork is the key under which anonymous traffic of addr (a host,
// or host:port) is counted: an IPv4 address as it is, an IPv6 address by
// its /64, since one host usually holds a whole /64. Anything else is
// returned as given.
func ClientNetwork(addr string) string {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		addr = ap.Addr().String()
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.WithZone("").Prefix(64)
	if err != nil {
		return ip.String()
	}
	return p.String()
}
