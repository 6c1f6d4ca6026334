package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/service"
)

// Long poll of POST /v1/login/device/redeem: an unconfirmed code is held
// up to redeemHold (below the client's 30 s request timeout; ?wait=
// shortens it), and looked at again every redeemPoll, so the CLI gets its
// certificate within a quarter second of the click and asks only every
// 20 s meanwhile.
const (
	redeemHold = 20 * time.Second
	redeemPoll = 250 * time.Millisecond
)

// handleStartDeviceLogin: POST /v1/login/device {user, csr} → 201 {code,
// expires, key_hash}.
func (s *Server) handleStartDeviceLogin(w http.ResponseWriter, r *http.Request) {
	var in api.DeviceLoginRequest
	if err := decode(r, &in); err != nil {
		writeError(w, err)
		return
	}
	d, err := s.svc.StartDeviceLogin(r.Context(), in.User, in.CSR, remoteHost(r))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, api.DeviceLoginResponse{Code: d.Code, Expires: d.Expires, KeyHash: d.KeyHash})
}

// handleRedeemDeviceLogin: POST /v1/login/device/redeem[?wait=DURATION]
// {code, csr} → 200 with the session certificate as /v1/login answers, or
// 202 {"status":"pending"} when the code is still unconfirmed after the
// wait (default and at most redeemHold); errors as everywhere (410
// expired or used, 403 another key, 401 locked user, 400 bad input).
func (s *Server) handleRedeemDeviceLogin(w http.ResponseWriter, r *http.Request) {
	var in api.DeviceLoginRedeemRequest
	if err := decode(r, &in); err != nil {
		writeError(w, err)
		return
	}
	wait := redeemHold
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			writeError(w, fmt.Errorf("%w: wait %q: want a Go duration such as 5s", access.ErrInvalid, v))
			return
		}
		wait = min(d, redeemHold)
	}
	hold, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	tick := time.NewTicker(redeemPoll)
	defer tick.Stop()
	for {
		// The service call runs on the request's context: the end of the
		// hold must not cut a redeem short halfway.
		res, err := s.svc.RedeemDeviceLogin(r.Context(), in.Code, in.CSR)
		switch {
		case err == nil:
			writeJSON(w, http.StatusOK, api.LoginResponse(res))
			return
		case !errors.Is(err, service.ErrDeviceLoginPending):
			writeError(w, err)
			return
		}
		select {
		case <-hold.Done():
			// Also when the client went away or the server shuts down.
			writeJSON(w, http.StatusAccepted, api.DeviceLoginPending{Status: api.StatusPending})
			return
		case <-tick.C:
		}
	}
}

// remoteHost is the client's address as this server's socket sees it.
// X-Forwarded-For is not read: anyone can send it, and the address is
// shown to the user as evidence of which device asks.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
