package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
)

// Error is an error answer of the API.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// ErrorCode returns the API error code of err, or "" if it is no API error.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// requestTimeout bounds every call but the event stream.
const requestTimeout = 30 * time.Second

// Client calls the Gatehouse API.
type Client struct {
	base   string
	http   *http.Client
	stream *http.Client // no overall timeout: event streams live long
	bearer string
}

// Config says how to reach and authenticate to the server.
type Config struct {
	Server string // https://host:3025
	// RootCAs verifies the server; required unless InsecureSkipVerify.
	RootCAs *x509.CertPool
	// Certificate is the session certificate (mTLS); optional.
	Certificate *tls.Certificate
	// Token is a machine token sent as a bearer token; optional.
	Token string
	// VerifyPeerCertificate replaces chain verification, for pinned first
	// logins (see pki.VerifyPin); it implies skipping the default checks.
	VerifyPeerCertificate func(rawCerts [][]byte, _ [][]*x509.Certificate) error
}

// New returns a client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.Server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("server %q: want https://HOST:PORT", cfg.Server)
	}
	tc := &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12}
	if cfg.VerifyPeerCertificate != nil {
		tc.InsecureSkipVerify = true // replaced by the pin check below
		tc.VerifyPeerCertificate = cfg.VerifyPeerCertificate
	} else if cfg.RootCAs == nil {
		return nil, errors.New("no CA to verify the server: log in with an invite token or --ca-pin")
	}
	if cfg.Certificate != nil {
		cert := *cfg.Certificate
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	tr := &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second, ForceAttemptHTTP2: true}
	return &Client{
		base:   strings.TrimRight(u.String(), "/"),
		http:   &http.Client{Transport: tr, Timeout: requestTimeout},
		stream: &http.Client{Transport: tr},
		bearer: cfg.Token,
	}, nil
}

// Server returns the server URL.
func (c *Client) Server() string { return c.base }

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer func() {
		// Drain what the decoder left (the final newline), or the
		// connection cannot be reused and every call pays a TLS handshake.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}()
	return decodeResponse(resp, out)
}

func decodeResponse(resp *http.Response, out any) error {
	if resp.StatusCode >= 300 {
		var eb ErrorBody
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &eb) == nil && eb.Error.Message != "" {
			return &Error{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
		}
		return &Error{Status: resp.StatusCode, Code: "internal", Message: fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(b)))}
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// Login trades a password (or invite token) and a CSR for a session
// certificate.
func (c *Client) Login(ctx context.Context, in LoginRequest) (LoginResponse, error) {
	var out LoginResponse
	return out, c.do(ctx, http.MethodPost, "/v1/login", in, &out)
}

// ClusterCA fetches the public TLS CA (unauthenticated).
func (c *Client) ClusterCA(ctx context.Context) (ClusterCA, error) {
	var out ClusterCA
	return out, c.do(ctx, http.MethodGet, "/v1/ca/tls", nil, &out)
}

// Status returns the cluster status and the caller's identity.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var out Status
	return out, c.do(ctx, http.MethodGet, "/v1/status", nil, &out)
}

// CreateRequest creates an access request.
func (c *Client) CreateRequest(ctx context.Context, in CreateRequest) (Request, error) {
	var out Request
	return out, c.do(ctx, http.MethodPost, "/v1/requests", in, &out)
}

// ListRequests lists the requests the caller may see.
func (c *Client) ListRequests(ctx context.Context, state, user string) ([]Request, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if user != "" {
		q.Set("user", user)
	}
	var out []Request
	return out, c.do(ctx, http.MethodGet, "/v1/requests?"+q.Encode(), nil, &out)
}

// GetRequest returns one request.
func (c *Client) GetRequest(ctx context.Context, id string) (Request, error) {
	var out Request
	return out, c.do(ctx, http.MethodGet, "/v1/requests/"+url.PathEscape(id), nil, &out)
}

// Review approves or denies a request.
func (c *Client) Review(ctx context.Context, id string, in ReviewRequest) (Request, error) {
	var out Request
	return out, c.do(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/reviews", in, &out)
}

// AdminDecide approves or denies a request directly (rule request:approve).
func (c *Client) AdminDecide(ctx context.Context, id string, in ReviewRequest) (Request, error) {
	var out Request
	return out, c.do(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/decide", in, &out)
}

// Cancel withdraws a pending request.
func (c *Client) Cancel(ctx context.Context, id string) (Request, error) {
	var out Request
	return out, c.do(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/cancel", ReasonBody{}, &out)
}

// Drop gives an approved grant back.
func (c *Client) Drop(ctx context.Context, id string) (Request, error) {
	var out Request
	return out, c.do(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/drop", ReasonBody{}, &out)
}

// DropAll gives every approved grant of the caller back.
func (c *Client) DropAll(ctx context.Context) ([]Request, error) {
	var out []Request
	return out, c.do(ctx, http.MethodPost, "/v1/requests/drop", ReasonBody{}, &out)
}

// Revoke ends an approved grant (admin).
func (c *Client) Revoke(ctx context.Context, id, reason string) (Request, error) {
	var out Request
	return out, c.do(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/revoke", ReasonBody{Reason: reason}, &out)
}

// Search finds requestable resources.
func (c *Client) Search(ctx context.Context, kind, query string, labels map[string]string) ([]SearchResult, error) {
	q := url.Values{"kind": {kind}}
	if query != "" {
		q.Set("q", query)
	}
	if len(labels) > 0 {
		parts := make([]string, 0, len(labels))
		for k, v := range labels {
			parts = append(parts, k+"="+v)
		}
		q.Set("labels", strings.Join(parts, ","))
	}
	var out []SearchResult
	return out, c.do(ctx, http.MethodGet, "/v1/search?"+q.Encode(), nil, &out)
}

// PutObject creates or replaces a role, user or resource given as JSON
// (the YAML envelope converted). It returns the stored object as JSON and,
// for a new user, the invite token.
func (c *Client) PutObject(ctx context.Context, kind string, obj json.RawMessage) (json.RawMessage, error) {
	var out json.RawMessage
	return out, c.do(ctx, http.MethodPut, "/v1/"+collection(kind), obj, &out)
}

// GetObjects lists roles, users or resources, or one when name is set.
func (c *Client) GetObjects(ctx context.Context, kind, name string) (json.RawMessage, error) {
	path := "/v1/" + collection(kind)
	if name != "" {
		path += "/" + escapeName(name)
	}
	var out json.RawMessage
	return out, c.do(ctx, http.MethodGet, path, nil, &out)
}

// DeleteObject removes a role, user or resource (resource names are
// KIND/NAME).
func (c *Client) DeleteObject(ctx context.Context, kind, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/"+collection(kind)+"/"+escapeName(name), nil, nil)
}

func escapeName(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

func collection(kind string) string {
	switch kind {
	case "role", "roles":
		return "roles"
	case "user", "users":
		return "users"
	case "request", "requests":
		return "requests"
	}
	return "resources"
}

// AddUser creates a user and returns its invite token.
func (c *Client) AddUser(ctx context.Context, u User) (AddUserResponse, error) {
	var out AddUserResponse
	return out, c.do(ctx, http.MethodPost, "/v1/users", u, &out)
}

// AddToken creates a machine token.
func (c *Client) AddToken(ctx context.Context, in AddTokenRequest) (AddTokenResponse, error) {
	var out AddTokenResponse
	return out, c.do(ctx, http.MethodPost, "/v1/tokens", in, &out)
}

// Lock locks a user.
func (c *Client) Lock(ctx context.Context, in LockRequest) error {
	return c.do(ctx, http.MethodPost, "/v1/locks", in, nil)
}

// Unlock removes a user's lock.
func (c *Client) Unlock(ctx context.Context, user string) error {
	return c.do(ctx, http.MethodDelete, "/v1/locks/"+url.PathEscape(user), nil, nil)
}

// ListLocks lists locks.
func (c *Client) ListLocks(ctx context.Context) ([]Lock, error) {
	var out []Lock
	return out, c.do(ctx, http.MethodGet, "/v1/locks", nil, &out)
}

// AuditQuery filters GET /v1/audit.
type AuditQuery struct {
	Since     time.Time
	Type      string
	RequestID string
	Actor     string
	Limit     int
}

// Audit lists audit events, oldest first.
func (c *Client) Audit(ctx context.Context, q AuditQuery) ([]AuditEvent, error) {
	v := url.Values{}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if q.Type != "" {
		v.Set("type", q.Type)
	}
	if q.RequestID != "" {
		v.Set("request", q.RequestID)
	}
	if q.Actor != "" {
		v.Set("actor", q.Actor)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out []AuditEvent
	return out, c.do(ctx, http.MethodGet, "/v1/audit?"+v.Encode(), nil, &out)
}

// Events streams request events the caller may see, from etcd revision
// since on (0: from now). The channel closes when ctx ends or the stream
// breaks; the error function then reports why (nil after ctx ended).
// Resume with the last event's Revision.
func (c *Client) Events(ctx context.Context, since int64) (<-chan Event, func() error, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/events?since="+strconv.FormatInt(since, 10), nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	resp, err := c.stream.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("open event stream: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, nil, decodeResponse(resp, nil)
	}
	out := make(chan Event, 16)
	var streamErr error
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		var data strings.Builder
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "data:"):
				data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
			case line == "":
				if data.Len() == 0 {
					continue
				}
				var ev Event
				if err := json.Unmarshal([]byte(data.String()), &ev); err != nil {
					streamErr = fmt.Errorf("decode event: %w", err)
					return
				}
				data.Reset()
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
		if ctx.Err() == nil {
			streamErr = sc.Err()
			if streamErr == nil {
				streamErr = io.ErrUnexpectedEOF
			}
		}
	}()
	return out, func() error { return streamErr }, nil
}

// IsFinal reports whether a request will not change state any more, or is
// APPROVED (what a waiting requester waits for).
func IsFinal(r Request) bool {
	return r.State != access.StatePending
}

// PushPolicy installs a policy bundle; a bundle that does not compile is
// refused with file:line:col and the one in force stays.
func (c *Client) PushPolicy(ctx context.Context, files map[string]string) (PolicyBundle, error) {
	var out PolicyBundle
	return out, c.do(ctx, http.MethodPut, "/v1/policy", PolicyBundle{Files: files}, &out)
}

// GetPolicy returns the bundle in force (not_found: the built-in default).
func (c *Client) GetPolicy(ctx context.Context) (PolicyBundle, error) {
	var out PolicyBundle
	return out, c.do(ctx, http.MethodGet, "/v1/policy", nil, &out)
}

// IssueCredential asks for a credential of an approved grant.
func (c *Client) IssueCredential(ctx context.Context, id string, in CredentialRequest) (Credential, error) {
	var out Credential
	return out, c.do(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/credentials", in, &out)
}

// ExportCA returns what targets must trust for a CA type: the
// TrustedUserCAKeys lines for ssh, the PEM bundle of one database, cluster
// or Windows domain (resource) for db, kube and desktop, the JWKS for app
// (unauthenticated: public material).
func (c *Client) ExportCA(ctx context.Context, typ, resource string) (string, error) {
	u := c.base + "/v1/ca/" + url.PathEscape(typ)
	if resource != "" {
		u += "?" + url.Values{"resource": {resource}}.Encode()
	}
	return c.getText(ctx, u)
}

// JWKS returns GET /.well-known/jwks.json: the app CA's public keys.
func (c *Client) JWKS(ctx context.Context) (string, error) {
	return c.getText(ctx, c.base+"/.well-known/jwks.json")
}

func (c *Client) getText(ctx context.Context, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return "", decodeResponse(resp, nil)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return string(b), err
}
