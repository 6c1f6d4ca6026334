package api

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// DeviceLoginRequest is the body of POST /v1/login/device: the user the
// device claims to be and the CSR of the key to certify.
type DeviceLoginRequest struct {
	User string `json:"user"`
	CSR  string `json:"csr"` // PEM
}

// DeviceLoginResponse is the answer of POST /v1/login/device: the code to
// confirm in chat (`/access login CODE`) before Expires.
type DeviceLoginResponse struct {
	Code    string    `json:"code"` // XXXX-XXXX
	Expires time.Time `json:"expires"`
	// KeyHash is "SHA256:<base64>" of the CSR's public key, as the chat
	// prompt shows it.
	KeyHash string `json:"key_hash"`
}

// DeviceLoginRedeemRequest is the body of POST /v1/login/device/redeem.
// The CSR must be of the key the login was started with.
type DeviceLoginRedeemRequest struct {
	Code string `json:"code"`
	CSR  string `json:"csr"` // PEM
}

// DeviceLoginPending is the 202 answer of POST /v1/login/device/redeem
// while the code is not confirmed: {"status": "pending"}.
type DeviceLoginPending struct {
	Status string `json:"status"`
}

// StatusPending is DeviceLoginPending.Status.
const StatusPending = "pending"

// ErrDeviceLoginPending is returned by RedeemDeviceLogin while the code
// waits for its confirmation in chat; ask again.
var ErrDeviceLoginPending = errors.New("login code not confirmed yet")

// StartDeviceLogin starts a chat-confirmed device login (unauthenticated).
func (c *Client) StartDeviceLogin(ctx context.Context, in DeviceLoginRequest) (DeviceLoginResponse, error) {
	var out DeviceLoginResponse
	return out, c.do(ctx, http.MethodPost, "/v1/login/device", in, &out)
}

// RedeemDeviceLogin trades a confirmed code for a session certificate
// (unauthenticated). The server holds the call up to about 20 seconds
// while the code is unconfirmed, answering as soon as it is confirmed;
// still unconfirmed, the error is ErrDeviceLoginPending. An expired or
// used code is an *Error with Code "expired" (410).
func (c *Client) RedeemDeviceLogin(ctx context.Context, in DeviceLoginRedeemRequest) (LoginResponse, error) {
	// 200 carries a LoginResponse, 202 {"status":"pending"}: one decode
	// reads either.
	var out struct {
		LoginResponse
		DeviceLoginPending
	}
	if err := c.do(ctx, http.MethodPost, "/v1/login/device/redeem", in, &out); err != nil {
		return LoginResponse{}, err
	}
	if out.Status == StatusPending {
		return LoginResponse{}, ErrDeviceLoginPending
	}
	return out.LoginResponse, nil
}
