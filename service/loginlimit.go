package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
)

// Failed-password lockout (as Teleport's): after Config.LoginLimit.Attempts
// failed password logins of one user name within its Window, password
// logins of that name are refused for its Lockout, on every replica (the
// count lives in etcd). Names are counted as tried, so a name nobody has
// gets the same answers as a real user's. Only password logins count and
// are refused: invite tokens, device logins confirmed in chat, session
// certificates and machine tokens are not guessable passwords and go on
// working, so a lockout someone causes on purpose keeps nobody out of
// what they already hold.

// maxPendingDeviceLoginsPerAddress bounds the unexpired, unconfirmed
// device login codes started from one address (an IPv6 /64), so one host
// cannot take all of a user's maxPendingDeviceLoginsPerUser slots. A
// confirmed code is not counted: only its user could confirm it.
const maxPendingDeviceLoginsPerAddress = 3

// passwordLoginGate is what checkPasswordLogin read: whether the name has
// failures on record, which a success then clears.
type passwordLoginGate struct {
	failures bool
}

// checkPasswordLogin refuses a password login of user while the name is
// locked out, before any password is compared (a right password is
// refused too, or the lockout would confirm guesses). The refusal is
// audited as a failed user.login.
func (s *Service) checkPasswordLogin(ctx context.Context, user, addr string) (passwordLoginGate, error) {
	a, err := s.store.GetLoginAttempts(ctx, user)
	if errors.Is(err, access.ErrNotFound) {
		return passwordLoginGate{}, nil
	}
	if err != nil {
		return passwordLoginGate{}, fmt.Errorf("read failed logins: %w", err)
	}
	now := s.now()
	if !a.Locked(now) {
		return passwordLoginGate{failures: true}, nil
	}
	actor := Caller{User: access.User{Metadata: access.Metadata{Name: user}}, Source: access.SourceCLI}
	ev := s.audit(actor, "user.login", "", OutcomeDenied, "locked out after failed logins", map[string]any{
		"remote_addr": addr, "locked_until": a.LockedUntil.UTC().Format(time.RFC3339),
	})
	if err := s.store.AppendAudit(ctx, ev); err != nil {
		s.log.Error("audit refused login", "err", err)
	}
	return passwordLoginGate{}, access.LockoutError(user, a.LockedUntil, now)
}

// passwordLoginFailed counts a failed password login of user and returns
// the answer: errBadLogin, or the lockout error when this failure started
// a lockout (or one started meanwhile). The failure's audit event, and
// login.lockout when it locks, are written with the count. A count that
// cannot be written is logged; the login has failed anyway.
func (s *Service) passwordLoginFailed(ctx context.Context, user, addr, why string) error {
	limit := s.cfg.LoginLimit
	actor := Caller{User: access.User{Metadata: access.Metadata{Name: user}}, Source: access.SourceCLI}
	now := s.now()
	a, err := s.store.UpdateLoginAttempts(ctx, user, func(a *access.LoginAttempts) (time.Duration, []access.AuditEvent, error) {
		events := []access.AuditEvent{s.audit(actor, "user.login", "", OutcomeFailure, why, map[string]any{"remote_addr": addr})}
		if limit.Fail(a, now) {
			events = append(events, s.audit(actor, "login.lockout", "", OutcomeDenied,
				fmt.Sprintf("%d failed password logins since %s", a.Failures, a.First.UTC().Format(time.RFC3339)),
				map[string]any{"remote_addr": addr, "failures": a.Failures, "locked_until": a.LockedUntil.UTC().Format(time.RFC3339)}))
		}
		return limit.Keep(*a, now), events, nil
	})
	if err != nil {
		s.log.Error("count failed login", "user", user, "err", err)
		return errBadLogin
	}
	if a.Locked(now) {
		return access.LockoutError(user, a.LockedUntil, now)
	}
	return errBadLogin
}

// passwordLoginSucceeded clears the failures of user after a right
// password. A failure counted between the check and here is cleared too:
// the password was right all the same.
func (s *Service) passwordLoginSucceeded(ctx context.Context, user string, gate passwordLoginGate) {
	if !gate.failures {
		return // the common case: no write
	}
	if err := s.store.DeleteLoginAttempts(ctx, user); err != nil && !errors.Is(err, access.ErrNotFound) {
		s.log.Error("reset failed logins", "user", user, "err", err)
	}
}

// clearLoginLockout ends the lockout and forgets the failures of user, for
// Unlock (accessctl unlock), with a login.unlock audit event. It reports
// whether there was anything to clear.
func (s *Service) clearLoginLockout(ctx context.Context, c Caller, user string) (bool, error) {
	a, err := s.store.GetLoginAttempts(ctx, user)
	if errors.Is(err, access.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read failed logins: %w", err)
	}
	fields := map[string]any{"user": user, "failures": a.Failures}
	if a.Locked(s.now()) {
		fields["locked_until"] = a.LockedUntil.UTC().Format(time.RFC3339)
	}
	err = s.store.DeleteLoginAttempts(ctx, user, s.audit(c, "login.unlock", "", OutcomeSuccess, "", fields))
	if errors.Is(err, access.ErrNotFound) {
		return false, nil // cleared meanwhile (a right password, or another admin)
	}
	if err != nil {
		return false, fmt.Errorf("clear failed logins: %w", err)
	}
	return true, nil
}

// checkDeviceLoginsFrom refuses a device login start from address while
// it has maxPendingDeviceLoginsPerAddress unexpired, unconfirmed codes,
// telling when the first of them expires. An empty address (no HTTP caller) is not
// limited.
func checkDeviceLoginsFrom(all []access.DeviceLogin, address string, now time.Time) error {
	if address == "" {
		return nil
	}
	network := access.ClientNetwork(address)
	n, next := 0, time.Time{}
	for _, d := range all {
		if !now.Before(d.Expires) || d.Confirmed != nil || access.ClientNetwork(d.Address) != network {
			continue
		}
		n++
		if next.IsZero() || d.Expires.Before(next) {
			next = d.Expires
		}
	}
	if n < maxPendingDeviceLoginsPerAddress {
		return nil
	}
	return &access.RetryError{
		Wait: next.Sub(now),
		Msg: fmt.Sprintf("%d login codes started from your address are waiting for confirmation; confirm one in chat or try again after %s UTC",
			n, next.UTC().Format("15:04:05")),
	}
}
