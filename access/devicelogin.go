package access

import (
	"context"
	"time"
)

// DeviceLoginTTL is how long a device login code can be confirmed and
// redeemed.
const DeviceLoginTTL = 5 * time.Minute

// DeviceLogin is a login started by `access login --user NAME --chat`: the
// CLI sent the CSR of the key it wants certified; the user confirms the
// code from a chat identity mapped to the same user; the CLI then redeems
// the code, once, for a session certificate of that key.
type DeviceLogin struct {
	Code string `json:"code"`
	User string `json:"user"`
	// KeyHash is "SHA256:<base64>" of the CSR's public key (as ssh-keygen
	// prints fingerprints); the certificate is issued for that key only.
	KeyHash string `json:"key_hash"`
	CSR     []byte `json:"csr"`
	// Address is the device's address as accessd saw it.
	Address string    `json:"address"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// ConfirmedBy is "PLATFORM:ID" of the chat identity that confirmed it.
	ConfirmedBy string     `json:"confirmed_by,omitempty"`
	Confirmed   *time.Time `json:"confirmed,omitempty"`
	Revision    int64      `json:"revision,omitempty"`
}

// DeviceLoginStore keeps pending device logins.
type DeviceLoginStore interface {
	// CreateDeviceLogin stores d (ErrAlreadyExists if the code is taken).
	CreateDeviceLogin(ctx context.Context, d DeviceLogin, events ...AuditEvent) error
	// GetDeviceLogin returns the login of code (ErrNotFound).
	GetDeviceLogin(ctx context.Context, code string) (DeviceLogin, error)
	// ListDeviceLogins returns every stored login, expired ones not yet
	// cleaned up included (to bound the pending codes per user).
	ListDeviceLogins(ctx context.Context) ([]DeviceLogin, error)
	// UpdateDeviceLogin writes d if unchanged since d.Revision
	// (ErrConflict otherwise).
	UpdateDeviceLogin(ctx context.Context, d DeviceLogin, events ...AuditEvent) (DeviceLogin, error)
	// DeleteDeviceLogin removes d if unchanged since d.Revision
	// (ErrConflict otherwise), so a code is redeemed once.
	DeleteDeviceLogin(ctx context.Context, d DeviceLogin, events ...AuditEvent) error
}
