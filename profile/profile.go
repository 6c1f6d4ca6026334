// Package profile keeps a CLI identity on disk: the server URL, the CA
// that verifies it, and a session certificate with its key. `access` keeps
// one in $GATEHOUSE_HOME (default ~/.gatehouse); the admin identity file
// that accessd writes has the same shape.
package profile

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gatehouse-dev/gatehouse/api"
)

// ErrNoProfile means nobody has logged in with this home yet.
var ErrNoProfile = errors.New("not logged in: run access login")

// Profile is a client identity.
type Profile struct {
	Server  string    `json:"server"`
	User    string    `json:"user"`
	CAPEM   string    `json:"ca_pem"`
	CertPEM string    `json:"cert_pem,omitempty"`
	KeyPEM  string    `json:"key_pem,omitempty"`
	Expires time.Time `json:"expires"`

	// ActiveRequest is the approved request `access login --request-id`
	// switched to; empty means standing access. Its SSH credentials live
	// in KeysDir(home, ActiveRequest). Rights still come from the standing
	// roles: the grant only shapes the credentials minted for it.
	ActiveRequest string    `json:"active_request,omitempty"`
	ActiveRoles   []string  `json:"active_roles,omitempty"`
	ActiveUntil   time.Time `json:"active_until,omitzero"`
}

// Active reports whether an elevated grant is set and not yet expired.
func (p Profile) Active() bool {
	return p.ActiveRequest != "" && (p.ActiveUntil.IsZero() || time.Now().Before(p.ActiveUntil))
}

// KeysDir is where the credentials of request id are kept in home.
func KeysDir(home, id string) string {
	return filepath.Join(home, "keys", id)
}

const fileName = "profile.json"

// Home returns $GATEHOUSE_HOME or ~/.gatehouse.
func Home() string {
	if h := os.Getenv("GATEHOUSE_HOME"); h != "" {
		return h
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".gatehouse")
	}
	return ".gatehouse"
}

// Load reads the profile in home.
func Load(home string) (Profile, error) {
	p, err := ReadFile(filepath.Join(home, fileName))
	if errors.Is(err, os.ErrNotExist) {
		return Profile{}, ErrNoProfile
	}
	return p, err
}

// ReadFile reads a profile or identity file.
func ReadFile(path string) (Profile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Profile{}, err
	}
	var p Profile
	if err := json.Unmarshal(b, &p); err != nil {
		return Profile{}, fmt.Errorf("identity %s: %w", path, err)
	}
	if p.Server == "" || p.CAPEM == "" {
		return Profile{}, fmt.Errorf("identity %s: missing server or CA", path)
	}
	return p, nil
}

// Save writes the profile to home, readable by its owner only.
func Save(home string, p Profile) error {
	if err := os.MkdirAll(home, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", home, err)
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(home, fileName)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write profile: %w", err)
	}
	return os.Rename(tmp, path)
}

// Remove deletes the profile (logout).
func Remove(home string) error {
	err := os.Remove(filepath.Join(home, fileName))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Pool returns the CA pool of the profile.
func (p Profile) Pool() (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(p.CAPEM)) {
		return nil, errors.New("profile: CA is not PEM")
	}
	return pool, nil
}

// Client returns an API client authenticated with the session certificate.
// server overrides the profile's server when set.
func (p Profile) Client(server string) (*api.Client, error) {
	if p.CertPEM == "" {
		return nil, ErrNoProfile
	}
	if !p.Expires.IsZero() && time.Now().After(p.Expires) {
		return nil, fmt.Errorf("session of %s expired at %s: run access login again", p.User, p.Expires.Local().Format(time.RFC3339))
	}
	cert, err := tls.X509KeyPair([]byte(p.CertPEM), []byte(p.KeyPEM))
	if err != nil {
		return nil, fmt.Errorf("profile: session certificate: %w", err)
	}
	pool, err := p.Pool()
	if err != nil {
		return nil, err
	}
	if server == "" {
		server = p.Server
	}
	return api.New(api.Config{Server: server, RootCAs: pool, Certificate: &cert})
}
