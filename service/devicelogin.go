package service

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
	"unicode"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/pki"
)

// Device login: `access login --user NAME --chat` sends a CSR and gets a
// code; the user confirms the code in chat from an identity mapped to NAME;
// the CLI redeems the code, once, for a session certificate of that CSR's
// key.

// Limits of device logins. Starting one needs no authentication, so the
// work an anonymous caller can cause is bounded per claimed user and in
// all.
const (
	// maxPendingDeviceLoginsPerUser bounds the unexpired codes of one
	// claimed user name.
	maxPendingDeviceLoginsPerUser = 5
	// maxPendingDeviceLogins bounds the unexpired codes of everyone, so a
	// caller cycling through user names cannot fill etcd.
	maxPendingDeviceLogins = 500
	// maxCodeAttempts: a fresh code collides with a pending one about once
	// in 10^9 starts; a few attempts are plenty.
	maxCodeAttempts = 5
	// maxConfirmAttempts: a confirm loses its compare only to another
	// confirm or a redeem of the same code, after which a read says which.
	maxConfirmAttempts = 3
)

// Device login codes: 8 characters of an alphabet without the look-alikes
// 0/O, 1/I/L, shown as XXXX-XXXX. 31^8 is about 2^39.6; with at most a few
// hundred codes alive for 5 minutes, and every wrong guess made by a
// mapped chat user and audited, guessing one is hopeless.
const (
	loginCodeAlphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
	loginCodeLen      = 8
)

// ErrDeviceLoginPending is returned by RedeemDeviceLogin while the code has
// not been confirmed in chat; the CLI asks again. It wraps
// access.ErrConflict.
var ErrDeviceLoginPending = fmt.Errorf("%w: login code not confirmed yet", access.ErrConflict)

// errNoLoginCode is the one answer, in chat, for an unknown or malformed
// code and for a code another user started: a phished code certifies
// nobody else and tells the one who tries it nothing.
var errNoLoginCode = fmt.Errorf("%w: no such login code for you", access.ErrNotFound)

// errLoginCodeGone answers a redeem of a code that no longer exists: it
// expired and was cleaned up, or it was redeemed already.
var errLoginCodeGone = fmt.Errorf("%w: login code unknown, expired or already used; start again with access login --chat", access.ErrExpired)

// StartDeviceLogin starts a device login for the claimed user with the CSR
// of the key to certify; address is the device's address as accessd saw
// it. The answer is the same whether user exists or not: the chat
// confirmation is what checks. Errors: ErrInvalid for a bad name or CSR,
// ErrRateLimited when address has too many pending codes, ErrConflict
// when user has, ErrUnavailable when everyone has.
func (s *Service) StartDeviceLogin(ctx context.Context, user, csrPEM, address string) (access.DeviceLogin, error) {
	if err := access.ValidName(user); err != nil {
		return access.DeviceLogin{}, fmt.Errorf("user: %w", err)
	}
	csr, err := pki.ParseCSR([]byte(csrPEM))
	if err != nil {
		return access.DeviceLogin{}, fmt.Errorf("%w: %v", access.ErrInvalid, err)
	}
	keyHash, err := sessionKeyHash(csr)
	if err != nil {
		return access.DeviceLogin{}, err
	}
	now := s.now().UTC()
	if err := s.checkPendingDeviceLogins(ctx, user, address, now); err != nil {
		return access.DeviceLogin{}, err
	}
	d := access.DeviceLogin{
		User: user, KeyHash: keyHash, CSR: []byte(csrPEM), Address: address,
		Created: now, Expires: now.Add(access.DeviceLoginTTL),
	}
	device := Caller{User: access.User{Metadata: access.Metadata{Name: user}}, Source: access.SourceCLI}
	for range maxCodeAttempts {
		d.Code = newLoginCode()
		ev := s.audit(device, "login.device.start", "", OutcomeSuccess, "", map[string]any{
			"address": address, "key_hash": keyHash, "expires": d.Expires.Format(time.RFC3339),
		})
		err := s.store.CreateDeviceLogin(ctx, d, ev)
		if errors.Is(err, access.ErrAlreadyExists) {
			continue
		}
		if err != nil {
			return access.DeviceLogin{}, fmt.Errorf("store device login: %w", err)
		}
		return d, nil
	}
	return access.DeviceLogin{}, fmt.Errorf("%w: no free login code after %d attempts", access.ErrUnavailable, maxCodeAttempts)
}

// checkPendingDeviceLogins refuses a start beyond the limits. It counts by
// listing, so starts racing each other may pass a limit by the number of
// racers; the bound holds all the same.
func (s *Service) checkPendingDeviceLogins(ctx context.Context, user, address string, now time.Time) error {
	all, err := s.store.ListDeviceLogins(ctx)
	if err != nil {
		return fmt.Errorf("count pending device logins: %w", err)
	}
	if err := checkDeviceLoginsFrom(all, address, now); err != nil { // loginlimit.go
		return err
	}
	mine, pending := 0, 0
	for _, d := range all {
		if !now.Before(d.Expires) {
			continue // its lease has not cleaned it up yet
		}
		pending++
		if d.User == user {
			mine++
		}
	}
	if mine >= maxPendingDeviceLoginsPerUser {
		return fmt.Errorf("%w: %q has %d login codes waiting for confirmation; confirm one or wait until they expire (%s)",
			access.ErrConflict, user, mine, access.DeviceLoginTTL)
	}
	if pending >= maxPendingDeviceLogins {
		return fmt.Errorf("%w: too many login codes waiting for confirmation; try again in a few minutes", access.ErrUnavailable)
	}
	return nil
}

// DeviceLoginPrompt returns the device login of code for the bot to show
// before its Confirm button: it exists, was started for c and is neither
// expired nor confirmed. An unknown code and another user's code get the
// same ErrNotFound "no such login code for you", and are audited as
// login.device.refused. The code may be typed in any case, with or
// without its dash and with spaces.
func (s *Service) DeviceLoginPrompt(ctx context.Context, c Caller, code string) (access.DeviceLogin, error) {
	d, err := s.deviceLoginFor(ctx, c, code)
	if err != nil {
		return access.DeviceLogin{}, err
	}
	if d.Confirmed != nil {
		return access.DeviceLogin{}, fmt.Errorf("%w: login code %s is confirmed already", access.ErrConflict, d.Code)
	}
	return d, nil
}

// ConfirmDeviceLogin confirms the device login of code for c, who sent it
// from chatIdentity ("PLATFORM:ID"), with the checks of DeviceLoginPrompt.
// The write compares the login's revision, so it races nothing. A second
// confirmation of the same login by the same chat identity (a double
// click) returns the login as it is.
func (s *Service) ConfirmDeviceLogin(ctx context.Context, c Caller, code, chatIdentity string) (access.DeviceLogin, error) {
	if chatIdentity == "" {
		return access.DeviceLogin{}, fmt.Errorf("%w: confirming a device login needs the chat identity", access.ErrInvalid)
	}
	for range maxConfirmAttempts {
		d, err := s.deviceLoginFor(ctx, c, code)
		if err != nil {
			return access.DeviceLogin{}, err
		}
		if d.Confirmed != nil {
			if d.ConfirmedBy == chatIdentity {
				return d, nil
			}
			return access.DeviceLogin{}, fmt.Errorf("%w: login code %s is confirmed already", access.ErrConflict, d.Code)
		}
		now := s.now().UTC()
		d.Confirmed, d.ConfirmedBy = &now, chatIdentity
		ev := s.audit(c, "login.device.confirm", "", OutcomeSuccess, "", map[string]any{
			"user": d.User, "confirmed_by": chatIdentity, "address": d.Address, "key_hash": d.KeyHash,
		})
		d, err = s.store.UpdateDeviceLogin(ctx, d, ev)
		if errors.Is(err, access.ErrConflict) {
			continue // redeemed or confirmed meanwhile: read again and say which
		}
		if err != nil {
			return access.DeviceLogin{}, fmt.Errorf("confirm device login: %w", err)
		}
		return d, nil
	}
	return access.DeviceLogin{}, fmt.Errorf("%w: login code kept changing; try again", access.ErrConflict)
}

// deviceLoginFor reads the unexpired login of code if c started it; every
// refusal that could reveal someone else's login is errNoLoginCode.
func (s *Service) deviceLoginFor(ctx context.Context, c Caller, code string) (access.DeviceLogin, error) {
	refuse := func(why string, fields map[string]any) (access.DeviceLogin, error) {
		ev := s.audit(c, "login.device.refused", "", OutcomeDenied, why, fields)
		if err := s.store.AppendAudit(ctx, ev); err != nil {
			s.log.Error("audit refused device login", "err", err)
		}
		return access.DeviceLogin{}, errNoLoginCode
	}
	norm, ok := normalizeLoginCode(code)
	if !ok {
		return refuse("malformed code", nil)
	}
	d, err := s.store.GetDeviceLogin(ctx, norm)
	if errors.Is(err, access.ErrNotFound) {
		return refuse("unknown code", nil)
	}
	if err != nil {
		return access.DeviceLogin{}, fmt.Errorf("read device login: %w", err)
	}
	if d.User != c.Name() {
		return refuse("code of another user", map[string]any{"claimed_user": d.User, "address": d.Address, "key_hash": d.KeyHash})
	}
	if !s.now().Before(d.Expires) {
		return access.DeviceLogin{}, fmt.Errorf("%w: login code %s expired at %s; start again with access login --chat",
			access.ErrExpired, d.Code, d.Expires.UTC().Format(time.RFC3339))
	}
	return d, nil
}

// RedeemDeviceLogin trades a confirmed code and a CSR of the key it was
// started with for a session certificate, once. Errors:
// ErrDeviceLoginPending while unconfirmed; ErrExpired when the code
// expired, is unknown or was redeemed already; ErrForbidden for a CSR of
// another key; ErrUnauthorized when the user is locked or gone; ErrInvalid
// for bad input. Of concurrent redeems of one code exactly one gets a
// certificate.
func (s *Service) RedeemDeviceLogin(ctx context.Context, code, csrPEM string) (LoginResult, error) {
	res, err := s.redeemDeviceLogin(ctx, code, csrPEM)
	// A code still waiting for its confirmation is not an outcome yet: the
	// CLI asks again.
	if !errors.Is(err, ErrDeviceLoginPending) {
		s.metrics.LoggedIn("device", err)
	}
	return res, err
}

func (s *Service) redeemDeviceLogin(ctx context.Context, code, csrPEM string) (LoginResult, error) {
	norm, ok := normalizeLoginCode(code)
	if !ok {
		return LoginResult{}, fmt.Errorf("%w: login code %q: want 8 letters and digits as XXXX-XXXX", access.ErrInvalid, code)
	}
	csr, err := pki.ParseCSR([]byte(csrPEM))
	if err != nil {
		return LoginResult{}, fmt.Errorf("%w: %v", access.ErrInvalid, err)
	}
	keyHash, err := sessionKeyHash(csr)
	if err != nil {
		return LoginResult{}, err
	}
	d, err := s.store.GetDeviceLogin(ctx, norm)
	if errors.Is(err, access.ErrNotFound) {
		return LoginResult{}, errLoginCodeGone
	}
	if err != nil {
		return LoginResult{}, fmt.Errorf("read device login: %w", err)
	}
	device := Caller{User: access.User{Metadata: access.Metadata{Name: d.User}}, Source: access.SourceCLI}
	fail := func(err error, outcome, why string) (LoginResult, error) {
		ev := s.audit(device, "login.device.redeem", "", outcome, why, map[string]any{"method": "device", "remote_addr": d.Address, "key_hash": keyHash})
		if aerr := s.store.AppendAudit(ctx, ev); aerr != nil {
			s.log.Error("audit failed device login", "err", aerr)
		}
		return LoginResult{}, err
	}
	// The key comes first: whoever holds only the code learns nothing of
	// its state.
	if keyHash != d.KeyHash {
		return fail(fmt.Errorf("%w: this login code was started for another key", access.ErrForbidden), OutcomeDenied, "key mismatch")
	}
	if !s.now().Before(d.Expires) {
		return LoginResult{}, fmt.Errorf("%w: login code %s expired at %s; start again with access login --chat",
			access.ErrExpired, d.Code, d.Expires.UTC().Format(time.RFC3339))
	}
	if d.Confirmed == nil {
		return LoginResult{}, ErrDeviceLoginPending
	}
	c, err := s.Caller(ctx, d.User, access.SourceCLI)
	if err != nil {
		return fail(err, OutcomeFailure, err.Error())
	}
	res, err := s.sessionCertificate(ctx, d.User, csr.PublicKey)
	if err != nil {
		return LoginResult{}, err
	}
	ev := s.audit(c, "login.device.redeem", "", OutcomeSuccess, "", map[string]any{
		"method": "device", "remote_addr": d.Address, "key_hash": d.KeyHash,
		"confirmed_by": d.ConfirmedBy, "expires": res.Expires.Format(time.RFC3339),
	})
	// Deleting on the revision read above is what makes the code single
	// use: a concurrent redeem signed a certificate too, but only one
	// delete succeeds, and the loser's certificate is never returned.
	if err := s.store.DeleteDeviceLogin(ctx, d, ev); errors.Is(err, access.ErrConflict) {
		return LoginResult{}, errLoginCodeGone
	} else if err != nil {
		return LoginResult{}, fmt.Errorf("redeem device login: %w", err)
	}
	return res, nil
}

// sessionKeyHash checks that the CSR's key is one a session certificate
// can be issued for and returns its hash "SHA256:<base64>" over the
// PKIX DER, unpadded, as ssh-keygen prints fingerprints.
func sessionKeyHash(csr *x509.CertificateRequest) (string, error) {
	switch csr.PublicKey.(type) {
	case *ecdsa.PublicKey, *rsa.PublicKey, ed25519.PublicKey:
	default:
		return "", fmt.Errorf("%w: csr: unsupported key type %T", access.ErrInvalid, csr.PublicKey)
	}
	fp, err := pki.KeyFingerprint(csr.PublicKey)
	if err != nil {
		return "", fmt.Errorf("%w: csr: %v", access.ErrInvalid, err)
	}
	return fp, nil
}

// newLoginCode returns a random code as XXXX-XXXX.
func newLoginCode() string {
	b := make([]byte, 0, loginCodeLen+1)
	size := big.NewInt(int64(len(loginCodeAlphabet)))
	for i := range loginCodeLen {
		n, err := rand.Int(rand.Reader, size)
		if err != nil {
			panic(fmt.Sprintf("crypto/rand failed: %v", err))
		}
		if i == loginCodeLen/2 {
			b = append(b, '-')
		}
		b = append(b, loginCodeAlphabet[n.Int64()])
	}
	return string(b)
}

// normalizeLoginCode reads a code as people type it ("abcd efgh",
// "ABCDEFGH", " ABCD-EFGH ") and returns it as XXXX-XXXX.
func normalizeLoginCode(s string) (string, bool) {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '-' || unicode.IsSpace(r):
			continue
		case r < unicode.MaxASCII && strings.ContainsRune(loginCodeAlphabet, unicode.ToUpper(r)):
			b.WriteRune(unicode.ToUpper(r))
		default:
			return "", false
		}
	}
	code := b.String()
	if len(code) != loginCodeLen {
		return "", false
	}
	return code[:loginCodeLen/2] + "-" + code[loginCodeLen/2:], true
}
