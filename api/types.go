// Package api is the public Go client of Gatehouse's HTTP API and its wire
// types. A custom approval bot imports only this package: watch events,
// then review. It never imports the server.
package api

import (
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
)

// Wire types shared with the domain; the domain package is pure Go with no
// dependencies, so re-using its types costs a client nothing.
type (
	Request    = access.Request
	Review     = access.Review
	Threshold  = access.Threshold
	Role       = access.Role
	User       = access.User
	Resource   = access.Resource
	Lock       = access.Lock
	AuditEvent = access.AuditEvent
	State      = access.State
	Verdict    = access.Verdict
	// PolicyBundle is GET and PUT /v1/policy: the .rego files (and
	// data.json) by name.
	PolicyBundle = access.PolicyBundle
	// Credential is the answer of POST /v1/requests/{id}/credentials.
	Credential = access.IssuedCredential
	// SearchResult is one entry of GET /v1/search.
	SearchResult = access.SearchResult
)

// CreateRequest is the body of POST /v1/requests.
type CreateRequest struct {
	Roles     []string   `json:"roles,omitempty"`
	Resources []string   `json:"resources,omitempty"`
	Reason    string     `json:"reason"`
	Reviewers []string   `json:"reviewers,omitempty"`
	Duration  string     `json:"duration,omitempty"` // Go duration, e.g. "2h"
	Start     *time.Time `json:"start,omitempty"`
}

// ReviewRequest is the body of POST /v1/requests/{id}/reviews.
type ReviewRequest struct {
	Verdict Verdict  `json:"verdict"`
	Reason  string   `json:"reason,omitempty"`
	Roles   []string `json:"roles,omitempty"`
}

// ReasonBody is the body of revoke (and optional elsewhere).
type ReasonBody struct {
	Reason string `json:"reason,omitempty"`
}

// LoginRequest is the body of POST /v1/login.
type LoginRequest struct {
	User        string `json:"user"`
	Password    string `json:"password"`
	InviteToken string `json:"invite_token,omitempty"`
	CSR         string `json:"csr"` // PEM
}

// LoginResponse carries a session certificate.
type LoginResponse struct {
	User    string    `json:"user"`
	CertPEM string    `json:"cert_pem"`
	CAPEM   string    `json:"ca_pem"`
	Expires time.Time `json:"expires"`
}

// AddUserResponse is the answer to POST /v1/users.
type AddUserResponse struct {
	User        string `json:"user"`
	InviteToken string `json:"invite_token"`
}

// AddTokenRequest is the body of POST /v1/tokens.
type AddTokenRequest struct {
	User string `json:"user"`
	TTL  string `json:"ttl"`
}

// AddTokenResponse carries a machine token, shown once.
type AddTokenResponse struct {
	User    string    `json:"user"`
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

// LockRequest is the body of POST /v1/locks.
type LockRequest struct {
	User   string `json:"user"`
	Reason string `json:"reason,omitempty"`
}

// Status is GET /v1/status.
type Status struct {
	ClusterName string   `json:"cluster_name"`
	Version     string   `json:"version"`
	CAPin       string   `json:"ca_pin"`
	User        string   `json:"user,omitempty"`
	Roles       []string `json:"roles,omitempty"`
}

// ClusterCA is GET /v1/ca/tls: the public TLS CA and its pin.
type ClusterCA struct {
	CertPEM string `json:"cert_pem"`
	Pin     string `json:"pin"`
}

// Event is one Server-Sent Event of GET /v1/events: "request" with
// Request set, or "reset" with Snapshot.
type Event struct {
	Type     string    `json:"type"`
	Revision int64     `json:"revision"`
	Request  *Request  `json:"request,omitempty"`
	Snapshot []Request `json:"snapshot,omitempty"`
}

// ErrorBody is every error answer: {"error": {"code", "message"}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the error object.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// CredentialRequest is the body of POST /v1/requests/{id}/credentials. Only
// public material travels: the private key stays with the client.
type CredentialRequest struct {
	Kind      string `json:"kind"`                 // ssh | db | kube | desktop | app
	PublicKey string `json:"public_key,omitempty"` // ssh: authorized_keys line
	CSR       string `json:"csr,omitempty"`        // x509 kinds: PEM CSR
	Resource  string `json:"resource,omitempty"`   // db, kube cluster, app, desktop
	Login     string `json:"login,omitempty"`      // desktop login
	DBUser    string `json:"db_user,omitempty"`
	TTL       string `json:"ttl,omitempty"`
}
