package service

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/pki"
)

// Password rules: long enough to resist guessing, short enough for bcrypt
// (which reads at most 72 bytes).
const (
	minPasswordLen = 8
	maxPasswordLen = 72
	// AdminIdentityTTL is the lifetime of the admin identity file.
	AdminIdentityTTL = time.Hour
	// AdminUser is the first user, created on first start.
	AdminUser = "admin"
	// AdminRole is the built-in role with every right.
	AdminRole = "admin"
)

// errBadLogin is the one message for every failed password login, so a
// caller cannot tell unknown users from wrong passwords.
var errBadLogin = fmt.Errorf("%w: invalid user name or password", access.ErrUnauthorized)

// LoginInput is a password or invite login with the CSR to certify.
type LoginInput struct {
	User        string
	Password    string
	InviteToken string
	CSRPEM      []byte
	RemoteAddr  string
}

// LoginResult is a session certificate.
type LoginResult struct {
	User    string    `json:"user"`
	CertPEM string    `json:"cert_pem"`
	CAPEM   string    `json:"ca_pem"`
	Expires time.Time `json:"expires"`
}

// Login checks a password (or consumes an invite token and sets the
// password) and signs a session certificate for the CSR's key.
func (s *Service) Login(ctx context.Context, in LoginInput) (LoginResult, error) {
	res, err := s.login(ctx, in)
	method := "password"
	if in.InviteToken != "" {
		method = "invite"
	}
	s.metrics.LoggedIn(method, err)
	return res, err
}

func (s *Service) login(ctx context.Context, in LoginInput) (LoginResult, error) {
	if err := access.ValidName(in.User); err != nil {
		return LoginResult{}, errBadLogin
	}
	csr, err := pki.ParseCSR(in.CSRPEM)
	if err != nil {
		return LoginResult{}, fmt.Errorf("%w: %v", access.ErrInvalid, err)
	}
	actor := Caller{User: access.User{Metadata: access.Metadata{Name: in.User}}, Source: access.SourceCLI}
	fail := func(err error, why string) (LoginResult, error) {
		ev := s.audit(actor, "user.login", "", OutcomeFailure, why, map[string]any{"remote_addr": in.RemoteAddr})
		if aerr := s.store.AppendAudit(ctx, ev); aerr != nil {
			s.log.Error("audit failed login", "err", aerr)
		}
		return LoginResult{}, err
	}
	method := "password"
	var gate passwordLoginGate // loginlimit.go
	if in.InviteToken != "" {
		method = "invite"
		if err := checkPassword(in.Password); err != nil {
			return LoginResult{}, err
		}
		secret, _, err := pki.ParseInvite(in.InviteToken)
		if err != nil {
			return LoginResult{}, fmt.Errorf("%w: %v", access.ErrInvalid, err)
		}
		// Look before consuming, so a token sent with the wrong user name is
		// not burnt by a typo.
		tok, err := s.store.GetToken(ctx, hashSecret(secret))
		if err != nil || tok.Kind != access.TokenInvite || tok.User != in.User {
			return fail(fmt.Errorf("%w: invite token is not valid for %q", access.ErrUnauthorized, in.User), "bad invite token")
		}
		if !s.now().Before(tok.Expires) {
			return fail(fmt.Errorf("%w: invite token expired at %s", access.ErrUnauthorized, tok.Expires.Format(time.RFC3339)), "expired invite token")
		}
		if _, err := s.store.ConsumeToken(ctx, tok.Hash); err != nil {
			return fail(fmt.Errorf("%w: invite token already used", access.ErrUnauthorized), "invite token reused")
		}
		hash, err := bcrypt.GenerateFromPassword([]byte(in.Password), bcrypt.DefaultCost)
		if err != nil {
			return LoginResult{}, fmt.Errorf("hash password: %w", err)
		}
		if err := s.store.SetPasswordHash(ctx, in.User, hash, s.audit(actor, "user.password_set", "", OutcomeSuccess, "via invite", nil)); err != nil {
			return LoginResult{}, fmt.Errorf("store password: %w", err)
		}
	} else {
		if gate, err = s.checkPasswordLogin(ctx, in.User, in.RemoteAddr); err != nil {
			return LoginResult{}, err
		}
		hash, err := s.store.GetPasswordHash(ctx, in.User)
		if errors.Is(err, access.ErrNotFound) {
			// Spend the same time as a real comparison.
			_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(in.Password))
			return LoginResult{}, s.passwordLoginFailed(ctx, in.User, in.RemoteAddr, "unknown user or no password")
		}
		if err != nil {
			return LoginResult{}, fmt.Errorf("load password: %w", err)
		}
		if bcrypt.CompareHashAndPassword(hash, []byte(in.Password)) != nil {
			return LoginResult{}, s.passwordLoginFailed(ctx, in.User, in.RemoteAddr, "wrong password")
		}
		s.passwordLoginSucceeded(ctx, in.User, gate)
	}
	c, err := s.Caller(ctx, in.User, access.SourceCLI)
	if err != nil {
		return fail(err, err.Error())
	}
	res, err := s.sessionCertificate(ctx, in.User, csr.PublicKey)
	if err != nil {
		return LoginResult{}, err
	}
	ev := s.audit(c, "user.login", "", OutcomeSuccess, "", map[string]any{"method": method, "remote_addr": in.RemoteAddr, "expires": res.Expires.Format(time.RFC3339)})
	if err := s.store.AppendAudit(ctx, ev); err != nil {
		return LoginResult{}, fmt.Errorf("audit login: %w", err)
	}
	return res, nil
}

// sessionCertificate signs a session certificate for user over pub; every
// way of logging in ends here.
func (s *Service) sessionCertificate(ctx context.Context, user string, pub crypto.PublicKey) (LoginResult, error) {
	ca, err := s.authority(ctx)
	if err != nil {
		return LoginResult{}, err
	}
	certPEM, expires, err := ca.ClientCertificate(pub, user, s.now(), s.cfg.SessionTTL)
	if err != nil {
		return LoginResult{}, err
	}
	return LoginResult{User: user, CertPEM: string(certPEM), CAPEM: string(ca.CertPEM), Expires: expires.UTC()}, nil
}

var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("gatehouse-dummy-password"), bcrypt.DefaultCost)

func checkPassword(p string) error {
	if len(p) < minPasswordLen {
		return fmt.Errorf("%w: password must have at least %d characters", access.ErrInvalid, minPasswordLen)
	}
	if len(p) > maxPasswordLen {
		return fmt.Errorf("%w: password must have at most %d bytes", access.ErrInvalid, maxPasswordLen)
	}
	return nil
}

// BearerUser returns the user a machine token belongs to.
func (s *Service) BearerUser(ctx context.Context, secret string) (string, error) {
	tok, err := s.store.GetToken(ctx, hashSecret(secret))
	if errors.Is(err, access.ErrNotFound) {
		return "", fmt.Errorf("%w: unknown token", access.ErrUnauthorized)
	}
	if err != nil {
		return "", err
	}
	if tok.Kind != access.TokenBot {
		return "", fmt.Errorf("%w: not a machine token", access.ErrUnauthorized)
	}
	if !s.now().Before(tok.Expires) {
		return "", fmt.Errorf("%w: token expired at %s", access.ErrUnauthorized, tok.Expires.Format(time.RFC3339))
	}
	return tok.User, nil
}

// NewInvite creates a single-use invite token for user; the returned token
// carries the server CA's pin so the first login needs no trust on first
// use.
func (s *Service) newInvite(ctx context.Context, user string) (string, access.Token, error) {
	ca, err := s.authority(ctx)
	if err != nil {
		return "", access.Token{}, err
	}
	secret := randomSecret()
	now := s.now().UTC()
	tok := access.Token{Hash: hashSecret(secret), Kind: access.TokenInvite, User: user, Created: now, Expires: now.Add(s.cfg.InviteTTL)}
	return pki.FormatInvite(secret, ca.Pin()), tok, nil
}

// AddTokenInput asks for a machine token.
type AddTokenInput struct {
	User string
	TTL  time.Duration
}

// maxTokenTTL bounds machine tokens; automation re-mints them.
const maxTokenTTL = 30 * 24 * time.Hour

// AddToken creates a bearer token for an existing user (rule token:create).
func (s *Service) AddToken(ctx context.Context, c Caller, in AddTokenInput) (string, time.Time, error) {
	if err := require(c, access.RuleToken, access.VerbCreate); err != nil {
		return "", time.Time{}, err
	}
	if in.TTL <= 0 || in.TTL > maxTokenTTL {
		return "", time.Time{}, fmt.Errorf("%w: --ttl must be between 1s and %s", access.ErrInvalid, maxTokenTTL)
	}
	if _, err := s.store.GetUser(ctx, in.User); errors.Is(err, access.ErrNotFound) {
		return "", time.Time{}, fmt.Errorf("%w: user %q does not exist", access.ErrInvalid, in.User)
	} else if err != nil {
		return "", time.Time{}, err
	}
	secret := randomSecret()
	now := s.now().UTC()
	tok := access.Token{Hash: hashSecret(secret), Kind: access.TokenBot, User: in.User, Created: now, Expires: now.Add(in.TTL)}
	ev := s.audit(c, "token.create", "", OutcomeSuccess, "", map[string]any{"user": in.User, "expires": tok.Expires.Format(time.RFC3339)})
	if err := s.store.CreateToken(ctx, tok, ev); err != nil {
		return "", time.Time{}, fmt.Errorf("store token: %w", err)
	}
	return secret, tok.Expires, nil
}

// Lock refuses every call of user from now on (rule lock:create).
func (s *Service) Lock(ctx context.Context, c Caller, user, reason string) error {
	if err := require(c, access.RuleLock, access.VerbCreate); err != nil {
		return err
	}
	if err := access.ValidName(user); err != nil {
		return err
	}
	if user == c.Name() {
		return fmt.Errorf("%w: you cannot lock yourself out", access.ErrInvalid)
	}
	l := access.Lock{User: user, Reason: reason, Created: s.now().UTC(), CreatedBy: c.Name()}
	return s.store.PutLock(ctx, l, s.audit(c, "lock.create", "", OutcomeSuccess, reason, map[string]any{"user": user}))
}

// Unlock lifts a lock and a failed-login lockout (rule lock:delete);
// ErrNotFound only when there was neither.
func (s *Service) Unlock(ctx context.Context, c Caller, user string) error {
	if err := require(c, access.RuleLock, access.VerbDelete); err != nil {
		return err
	}
	err := s.store.DeleteLock(ctx, user, s.audit(c, "lock.delete", "", OutcomeSuccess, "", map[string]any{"user": user}))
	if err != nil && !errors.Is(err, access.ErrNotFound) {
		return err
	}
	if cleared, cerr := s.clearLoginLockout(ctx, c, user); cerr != nil || cleared { // loginlimit.go
		return cerr
	}
	return err
}

// ListLocks lists locks (rule lock:list).
func (s *Service) ListLocks(ctx context.Context, c Caller) ([]access.Lock, error) {
	if err := require(c, access.RuleLock, access.VerbList); err != nil {
		return nil, err
	}
	return s.store.ListLocks(ctx)
}

// Bootstrap prepares empty storage: the cluster CA (its key sealed under
// the KEK when one is set, see bootstrapClusterCA) and the built-in admin
// role and user, each create-if-absent so that replicas starting together
// agree. It reports whether this call created the admin user (and so should
// write the admin identity file).
func (s *Service) Bootstrap(ctx context.Context) (bool, error) {
	if err := s.bootstrapClusterCA(ctx); err != nil {
		return false, err
	}
	if _, err := s.store.GetRole(ctx, AdminRole); errors.Is(err, access.ErrNotFound) {
		if _, err := s.store.PutRole(ctx, BuiltinAdminRole()); err != nil {
			return false, fmt.Errorf("create admin role: %w", err)
		}
	} else if err != nil {
		return false, fmt.Errorf("read admin role: %w", err)
	}
	admin := access.User{Kind: access.KindUser, Version: "v1", Metadata: access.Metadata{Name: AdminUser}, Spec: access.UserSpec{Roles: []string{AdminRole}}}
	system := Caller{User: access.User{Metadata: access.Metadata{Name: "system"}}, Source: "bootstrap"}
	_, err := s.store.CreateUser(ctx, admin, s.audit(system, "user.create", "", OutcomeSuccess, "first admin", map[string]any{"user": AdminUser}))
	if errors.Is(err, access.ErrAlreadyExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create admin user: %w", err)
	}
	return true, nil
}

// BuiltinAdminRole has every administrative right.
func BuiltinAdminRole() access.Role {
	return access.Role{
		Kind: access.KindRole, Version: "v1",
		Metadata: access.Metadata{Name: AdminRole, Description: "built-in: every administrative right"},
		Spec: access.RoleSpec{Allow: access.RoleConditions{
			Rules:          []access.Rule{{Resources: []string{"*"}, Verbs: []string{"*"}}},
			ReviewRequests: &access.ReviewConditions{Roles: []string{"*"}},
		}},
	}
}

// Identity is a client identity: a session certificate with its key and the
// CA that verifies the server. It is what `accessctl --identity` reads.
type Identity struct {
	Server  string    `json:"server"`
	User    string    `json:"user"`
	CAPEM   string    `json:"ca_pem"`
	CertPEM string    `json:"cert_pem"`
	KeyPEM  string    `json:"key_pem"`
	Expires time.Time `json:"expires"`
}

// MintIdentity signs a certificate for user, for the host-side
// `accessd admin-identity` and the first start; only someone who can reach
// the store (the data dir) can call it.
func (s *Service) MintIdentity(ctx context.Context, server, user string, ttl time.Duration) (Identity, error) {
	ca, err := s.authority(ctx)
	if err != nil {
		return Identity{}, err
	}
	keyPEM, csrPEM, err := pki.NewKeyAndCSR(user)
	if err != nil {
		return Identity{}, err
	}
	csr, err := pki.ParseCSR(csrPEM)
	if err != nil {
		return Identity{}, err
	}
	certPEM, expires, err := ca.ClientCertificate(csr.PublicKey, user, s.now(), ttl)
	if err != nil {
		return Identity{}, err
	}
	system := Caller{User: access.User{Metadata: access.Metadata{Name: "system"}}, Source: "host"}
	if err := s.store.AppendAudit(ctx, s.audit(system, "identity.mint", "", OutcomeSuccess, "", map[string]any{"user": user, "expires": expires.UTC().Format(time.RFC3339)})); err != nil {
		return Identity{}, err
	}
	return Identity{Server: server, User: user, CAPEM: string(ca.CertPEM), CertPEM: string(certPEM), KeyPEM: string(keyPEM), Expires: expires.UTC()}, nil
}

// ClusterCA returns the public TLS CA certificate and its pin.
func (s *Service) ClusterCA(ctx context.Context) (certPEM []byte, pin string, err error) {
	ca, err := s.authority(ctx)
	if err != nil {
		return nil, "", err
	}
	return ca.CertPEM, ca.Pin(), nil
}

func randomSecret() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return hex.EncodeToString(b)
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// SeedPassword sets user's password unless one is set already. It is for
// the host-side demo loader only; it is not reachable through the API.
func (s *Service) SeedPassword(ctx context.Context, user, password string) error {
	if err := checkPassword(password); err != nil {
		return err
	}
	if _, err := s.store.GetPasswordHash(ctx, user); err == nil {
		return nil
	} else if !errors.Is(err, access.ErrNotFound) {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	system := Caller{User: access.User{Metadata: access.Metadata{Name: "system"}}, Source: "demo"}
	return s.store.SetPasswordHash(ctx, user, hash, s.audit(system, "user.password_set", "", OutcomeSuccess, "demo seed", map[string]any{"user": user}))
}
