// Package server is the HTTPS API of accessd over service/: routing,
// authentication (mTLS session certificates or bearer tokens), JSON
// encoding, the event stream, health and metrics.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/metrics"
	"github.com/gatehouse-dev/gatehouse/pki"
	"github.com/gatehouse-dev/gatehouse/service"
)

// Limits and timeouts of the HTTP layer.
const (
	maxBodyBytes      = 1 << 20
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 120 * time.Second
	// heartbeatInterval keeps idle event streams open through proxies.
	heartbeatInterval = 15 * time.Second
	serverCertTTL     = 365 * 24 * time.Hour
)

// Version is the server version reported by /v1/status.
var Version = "dev"

// Readiness reports whether a dependency is ready to serve.
type Readiness func(ctx context.Context) error

// Server is the HTTP API.
type Server struct {
	svc     *service.Service
	log     *slog.Logger
	ready   []Readiness
	mux     *http.ServeMux
	metrics *metrics.Metrics
	// throttle bounds the anonymous login routes per address (throttle.go).
	throttle loginThrottles
}

// New builds the API handler over svc; m records its calls, and /metrics
// serves m's registry (the service's metrics should go to the same m).
// ready checks run on /readyz.
func New(svc *service.Service, log *slog.Logger, m *metrics.Metrics, ready ...Readiness) *Server {
	s := &Server{svc: svc, log: log, ready: ready, mux: http.NewServeMux(), metrics: m, throttle: newLoginThrottles(time.Now)}
	s.routes()
	return s
}

// Handler returns the root handler.
func (s *Server) Handler() http.Handler { return s.mux }

// TLSConfig returns the TLS configuration: the server certificate for hosts
// signed by the cluster CA, and optional client certificates verified
// against the same CA.
func TLSConfig(ca *pki.CA, hosts []string, now time.Time) (*tls.Config, error) {
	cert, err := ca.ServerCertificate(hosts, now, serverCertTTL)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    ca.Pool(),
		// Logins and health checks come without a certificate; the
		// authentication middleware refuses everything else.
		ClientAuth: tls.VerifyClientCertIfGiven,
		MinVersion: tls.VersionTLS12,
	}, nil
}

// Serve serves HTTPS on ln until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener, tc *tls.Config) error {
	hs := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(tls.NewListener(ln, tc)) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(shut)
		return nil
	}
}

func (s *Server) routes() {
	open := func(pattern string, h http.HandlerFunc) { s.mux.Handle(pattern, s.instrument(pattern, h)) }
	authed := func(pattern string, h func(http.ResponseWriter, *http.Request, service.Caller)) {
		s.mux.Handle(pattern, s.instrument(pattern, s.authenticate(h)))
	}
	open("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	open("GET /readyz", s.handleReady)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.Gatherer(), promhttp.HandlerOpts{}))
	open("GET /v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(api.OpenAPI)
	})
	open("POST /v1/login", s.throttle.password.wrap(s.handleLogin))
	open("POST /v1/login/device", s.throttle.deviceStart.wrap(s.handleStartDeviceLogin))
	open("POST /v1/login/device/redeem", s.throttle.deviceRedeem.wrap(s.handleRedeemDeviceLogin))
	open("GET /v1/ca/tls", s.handleClusterCA)
	open("GET /v1/ca/{type}", s.handleExportCA)
	open("GET /.well-known/jwks.json", s.handleJWKS)

	authed("GET /v1/status", s.handleStatus)
	authed("POST /v1/requests", s.handleCreateRequest)
	authed("GET /v1/requests", s.handleListRequests)
	authed("GET /v1/requests/{id}", s.handleGetRequest)
	authed("POST /v1/requests/{id}/reviews", s.handleReview)
	authed("POST /v1/requests/{id}/decide", s.handleDecide)
	authed("POST /v1/requests/{id}/cancel", s.handleCancel)
	authed("POST /v1/requests/{id}/drop", s.handleDrop)
	authed("POST /v1/requests/drop", s.handleDropAll)
	authed("POST /v1/requests/{id}/revoke", s.handleRevoke)
	authed("POST /v1/requests/{id}/credentials", s.handleCredentials)
	authed("GET /v1/events", s.handleEvents)
	authed("GET /v1/search", s.handleSearch)

	authed("GET /v1/roles", s.handleListRoles)
	authed("PUT /v1/roles", s.handlePutRole)
	authed("GET /v1/roles/{name}", s.handleGetRole)
	authed("DELETE /v1/roles/{name}", s.handleDeleteRole)
	authed("GET /v1/users", s.handleListUsers)
	authed("POST /v1/users", s.handleAddUser)
	authed("PUT /v1/users", s.handlePutUser)
	authed("GET /v1/users/{name}", s.handleGetUser)
	authed("DELETE /v1/users/{name}", s.handleDeleteUser)
	authed("GET /v1/resources", s.handleListResources)
	authed("PUT /v1/resources", s.handlePutResource)
	authed("GET /v1/resources/{kind}/{name}", s.handleGetResource)
	authed("DELETE /v1/resources/{kind}/{name}", s.handleDeleteResource)
	authed("POST /v1/tokens", s.handleAddToken)
	authed("GET /v1/locks", s.handleListLocks)
	authed("POST /v1/locks", s.handleLock)
	authed("DELETE /v1/locks/{user}", s.handleUnlock)
	authed("GET /v1/audit", s.handleAudit)
	authed("GET /v1/audit/export", s.handleAuditExport)
	authed("GET /v1/policy", s.handleGetPolicy)
	authed("PUT /v1/policy", s.handlePushPolicy)
	authed("POST /v1/ca/{type}/rotate", s.handleRotateCA)
}

// authenticate resolves the caller from the verified client certificate or
// a bearer token; no identity is 401, a locked or unknown user too.
func (s *Server) authenticate(h func(http.ResponseWriter, *http.Request, service.Caller)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, source, err := s.identify(r)
		if err != nil {
			writeError(w, err)
			return
		}
		c, err := s.svc.Caller(r.Context(), name, source)
		if err != nil {
			writeError(w, err)
			return
		}
		h(w, r, c)
	})
}

func (s *Server) identify(r *http.Request) (name, source string, err error) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || tok == "" {
			return "", "", fmt.Errorf("%w: Authorization header: want Bearer TOKEN", access.ErrUnauthorized)
		}
		user, err := s.svc.BearerUser(r.Context(), tok)
		return user, access.SourceAPI, err
	}
	// The TLS layer has verified the chain against the cluster CA and
	// the client-auth usage; only a verified chain counts.
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return r.TLS.VerifiedChains[0][0].Subject.CommonName, access.SourceCLI, nil
	}
	return "", "", fmt.Errorf("%w: log in first (access login) or send a bearer token", access.ErrUnauthorized)
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	for _, check := range s.ready {
		if err := check(ctx); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// decode reads a JSON body strictly: unknown fields and trailing data are
// errors naming the problem.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: empty request body", access.ErrInvalid)
		}
		return fmt.Errorf("%w: request body: %v", access.ErrInvalid, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: request body: trailing data after the JSON object", access.ErrInvalid)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// statusOf maps an error code to its HTTP status.
func statusOf(code access.Code) int {
	switch code {
	case access.CodeNotFound:
		return http.StatusNotFound
	case access.CodeConflict:
		return http.StatusConflict
	case access.CodeInvalid:
		return http.StatusBadRequest
	case access.CodeUnauthorized:
		return http.StatusUnauthorized
	case access.CodeForbidden:
		return http.StatusForbidden
	case access.CodeExpired:
		return http.StatusGone
	case access.CodePolicyError:
		return http.StatusUnprocessableEntity
	case access.CodeUnavailable:
		return http.StatusServiceUnavailable
	case access.CodeRateLimited:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, err error) {
	code := access.CodeOf(err)
	msg := err.Error()
	if errors.Is(err, context.DeadlineExceeded) {
		code = access.CodeUnavailable
	}
	if code == access.CodeInternal {
		slog.Error("internal error", "err", err)
		msg = "internal error; see the server log"
	}
	setRetryAfter(w, err) // throttle.go
	writeJSON(w, statusOf(code), api.ErrorBody{Error: api.ErrorDetail{Code: string(code), Message: msg}})
}
