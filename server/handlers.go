package server

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/api"
	"github.com/gatehouse-dev/gatehouse/service"
)

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var in api.LoginRequest
	if err := decode(r, &in); err != nil {
		writeError(w, err)
		return
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	res, err := s.svc.Login(r.Context(), service.LoginInput{
		User: in.User, Password: in.Password, InviteToken: in.InviteToken, CSRPEM: []byte(in.CSR), RemoteAddr: host,
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.LoginResponse(res))
}

func (s *Server) handleClusterCA(w http.ResponseWriter, r *http.Request) {
	certPEM, pin, err := s.svc.ClusterCA(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.ClusterCA{CertPEM: string(certPEM), Pin: pin})
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request, c service.Caller) {
	_, pin, err := s.svc.ClusterCA(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.Status{
		ClusterName: s.svc.Config().ClusterName, Version: Version, CAPin: pin,
		User: c.Name(), Roles: c.User.Spec.Roles,
	})
}

func (s *Server) handleCreateRequest(w http.ResponseWriter, r *http.Request, c service.Caller) {
	var in api.CreateRequest
	if err := decode(r, &in); err != nil {
		writeError(w, err)
		return
	}
	var d time.Duration
	if in.Duration != "" {
		var err error
		if d, err = time.ParseDuration(in.Duration); err != nil || d < 0 {
			writeError(w, fmt.Errorf("%w: duration %q: want a positive Go duration such as 2h", access.ErrInvalid, in.Duration))
			return
		}
	}
	req, err := s.svc.CreateRequest(r.Context(), c, service.CreateRequestInput{
		Roles: in.Roles, Resources: in.Resources, Reason: in.Reason, Reviewers: in.Reviewers, Duration: d, Start: in.Start,
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, req)
}

func (s *Server) handleListRequests(w http.ResponseWriter, r *http.Request, c service.Caller) {
	q := r.URL.Query()
	state := access.State(strings.ToUpper(q.Get("state")))
	switch state {
	case "", access.StatePending, access.StateApproved, access.StateDenied, access.StateExpired, access.StateCancelled, access.StateDropped, access.StateRevoked:
	default:
		writeError(w, fmt.Errorf("%w: state %q: want pending, approved, denied, expired, cancelled, dropped or revoked", access.ErrInvalid, q.Get("state")))
		return
	}
	list, err := s.svc.ListRequests(r.Context(), c, service.RequestFilter{State: state, User: q.Get("user")})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) handleGetRequest(w http.ResponseWriter, r *http.Request, c service.Caller) {
	req, err := s.svc.GetRequest(r.Context(), c, r.PathValue("id"))
	s.answerRequest(w, req, err)
}

// answerRequest writes a request or the error.
func (s *Server) answerRequest(w http.ResponseWriter, req access.Request, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

func (s *Server) handleReview(w http.ResponseWriter, r *http.Request, c service.Caller) {
	var in api.ReviewRequest
	if err := decode(r, &in); err != nil {
		writeError(w, err)
		return
	}
	in.Verdict = access.Verdict(strings.ToUpper(string(in.Verdict)))
	req, err := s.svc.Review(r.Context(), c, r.PathValue("id"), service.ReviewInput{Verdict: in.Verdict, Reason: in.Reason, Roles: in.Roles})
	s.answerRequest(w, req, err)
}

func (s *Server) handleDecide(w http.ResponseWriter, r *http.Request, c service.Caller) {
	var in api.ReviewRequest
	if err := decode(r, &in); err != nil {
		writeError(w, err)
		return
	}
	in.Verdict = access.Verdict(strings.ToUpper(string(in.Verdict)))
	req, err := s.svc.AdminDecide(r.Context(), c, r.PathValue("id"), service.ReviewInput{Verdict: in.Verdict, Reason: in.Reason, Roles: in.Roles})
	s.answerRequest(w, req, err)
}

// decodeOptional reads an optional JSON body.
func decodeOptional(r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	return decode(r, v)
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request, c service.Caller) {
	var in api.ReasonBody
	if err := decodeOptional(r, &in); err != nil {
		writeError(w, err)
		return
	}
	req, err := s.svc.Cancel(r.Context(), c, r.PathValue("id"))
	s.answerRequest(w, req, err)
}

func (s *Server) handleDrop(w http.ResponseWriter, r *http.Request, c service.Caller) {
	var in api.ReasonBody
	if err := decodeOptional(r, &in); err != nil {
		writeError(w, err)
		return
	}
	req, err := s.svc.Drop(r.Context(), c, r.PathValue("id"))
	s.answerRequest(w, req, err)
}

func (s *Server) handleDropAll(w http.ResponseWriter, r *http.Request, c service.Caller) {
	dropped, err := s.svc.DropAll(r.Context(), c)
	if err != nil {
		writeError(w, err)
		return
	}
	if dropped == nil {
		dropped = []access.Request{}
	}
	writeJSON(w, http.StatusOK, dropped)
}

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request, c service.Caller) {
	var in api.ReasonBody
	if err := decode(r, &in); err != nil {
		writeError(w, err)
		return
	}
	req, err := s.svc.Revoke(r.Context(), c, r.PathValue("id"), in.Reason)
	s.answerRequest(w, req, err)
}

func (s *Server) handleSearch(w http.ResponseWriter, r *http.Request, c service.Caller) {
	q := r.URL.Query()
	labels, err := parseLabels(q.Get("labels"))
	if err != nil {
		writeError(w, err)
		return
	}
	limit := 0
	if l := q.Get("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit < 0 {
			writeError(w, fmt.Errorf("%w: limit %q: want a positive number", access.ErrInvalid, l))
			return
		}
	}
	found, err := s.svc.Search(r.Context(), c, service.SearchInput{Kind: q.Get("kind"), Query: q.Get("q"), Labels: labels, Limit: limit})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, found)
}

// parseLabels reads "k=v,k2=v2".
func parseLabels(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%w: label %q: want key=value", access.ErrInvalid, part)
		}
		out[k] = v
	}
	return out, nil
}

func (s *Server) handleListRoles(w http.ResponseWriter, r *http.Request, c service.Caller) {
	list, err := s.svc.ListRoles(r.Context(), c)
	answer(w, list, err)
}

func (s *Server) handlePutRole(w http.ResponseWriter, r *http.Request, c service.Caller) {
	var role access.Role
	if err := decode(r, &role); err != nil {
		writeError(w, err)
		return
	}
	out, err := s.svc.PutRole(r.Context(), c, role)
	answer(w, out, err)
}

func (s *Server) handleGetRole(w http.ResponseWriter, r *http.Request, c service.Caller) {
	out, err := s.svc.GetRole(r.Context(), c, r.PathValue("name"))
	answer(w, out, err)
}

func (s *Server) handleDeleteRole(w http.ResponseWriter, r *http.Request, c service.Caller) {
	answerEmpty(w, s.svc.DeleteRole(r.Context(), c, r.PathValue("name")))
}

func (s *Server) handleListUsers(w http.ResponseWriter, r *http.Request, c service.Caller) {
	list, err := s.svc.ListUsers(r.Context(), c)
	answer(w, list, err)
}

func (s *Server) handleAddUser(w http.ResponseWriter, r *http.Request, c service.Caller) {
	var u access.User
	if err := decode(r, &u); err != nil {
		writeError(w, err)
		return
	}
	created, token, err := s.svc.AddUser(r.Context(), c, u)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, api.AddUserResponse{User: created.Metadata.Name, InviteToken: token})
}

func (s *Server) handlePutUser(w http.ResponseWriter, r *http.Request, c service.Caller) {
	var u access.User
	if err := decode(r, &u); err != nil {
		writeError(w, err)
		return
	}
	out, err := s.svc.PutUser(r.Context(), c, u)
	answer(w, out, err)
}

func (s *Server) handleGetUser(w http.ResponseWriter, r *http.Request, c service.Caller) {
	out, err := s.svc.GetUser(r.Context(), c, r.PathValue("name"))
	answer(w, out, err)
}

func (s *Server) handleDeleteUser(w http.ResponseWriter, r *http.Request, c service.Caller) {
	answerEmpty(w, s.svc.DeleteUser(r.Context(), c, r.PathValue("name")))
}

func (s *Server) handleListResources(w http.ResponseWriter, r *http.Request, c service.Caller) {
	list, err := s.svc.ListResources(r.Context(), c)
	answer(w, list, err)
}

func (s *Server) handlePutResource(w http.ResponseWriter, r *http.Request, c service.Caller) {
	var res access.Resource
	if err := decode(r, &res); err != nil {
		writeError(w, err)
		return
	}
	out, err := s.svc.PutResource(r.Context(), c, res)
	answer(w, out, err)
}

func (s *Server) handleGetResource(w http.ResponseWriter, r *http.Request, c service.Caller) {
	out, err := s.svc.GetResource(r.Context(), c, r.PathValue("kind"), r.PathValue("name"))
	answer(w, out, err)
}

func (s *Server) handleDeleteResource(w http.ResponseWriter, r *http.Request, c service.Caller) {
	answerEmpty(w, s.svc.DeleteResource(r.Context(), c, r.PathValue("kind"), r.PathValue("name")))
}

func (s *Server) handleAddToken(w http.ResponseWriter, r *http.Request, c service.Caller) {
	var in api.AddTokenRequest
	if err := decode(r, &in); err != nil {
		writeError(w, err)
		return
	}
	ttl, err := time.ParseDuration(in.TTL)
	if err != nil {
		writeError(w, fmt.Errorf("%w: ttl %q: want a Go duration such as 1h", access.ErrInvalid, in.TTL))
		return
	}
	tok, exp, err := s.svc.AddToken(r.Context(), c, service.AddTokenInput{User: in.User, TTL: ttl})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, api.AddTokenResponse{User: in.User, Token: tok, Expires: exp})
}

func (s *Server) handleListLocks(w http.ResponseWriter, r *http.Request, c service.Caller) {
	list, err := s.svc.ListLocks(r.Context(), c)
	answer(w, list, err)
}

func (s *Server) handleLock(w http.ResponseWriter, r *http.Request, c service.Caller) {
	var in api.LockRequest
	if err := decode(r, &in); err != nil {
		writeError(w, err)
		return
	}
	answerEmpty(w, s.svc.Lock(r.Context(), c, in.User, in.Reason))
}

func (s *Server) handleUnlock(w http.ResponseWriter, r *http.Request, c service.Caller) {
	answerEmpty(w, s.svc.Unlock(r.Context(), c, r.PathValue("user")))
}

func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request, c service.Caller) {
	q := r.URL.Query()
	f := access.AuditFilter{Type: q.Get("type"), RequestID: q.Get("request"), Actor: q.Get("actor")}
	if v := q.Get("since"); v != "" {
		t, err := parseSince(v, time.Now())
		if err != nil {
			writeError(w, err)
			return
		}
		f.Since = t
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, fmt.Errorf("%w: limit %q: want a positive number", access.ErrInvalid, v))
			return
		}
		f.Limit = n
	}
	list, err := s.svc.ListAudit(r.Context(), c, f)
	answer(w, list, err)
}

// parseSince accepts RFC 3339 or a duration back from now ("1h").
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%w: since %q: want RFC 3339 time or a duration such as 1h", access.ErrInvalid, v)
}

func answer[T any](w http.ResponseWriter, v T, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	b, _ := json.Marshal(v)
	if string(b) == "null" {
		b = []byte("[]")
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

func answerEmpty(w http.ResponseWriter, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleGetPolicy(w http.ResponseWriter, r *http.Request, c service.Caller) {
	b, err := s.svc.GetPolicy(r.Context(), c)
	answer(w, b, err)
}

func (s *Server) handlePushPolicy(w http.ResponseWriter, r *http.Request, c service.Caller) {
	var in api.PolicyBundle
	if err := decode(r, &in); err != nil {
		writeError(w, err)
		return
	}
	b, err := s.svc.PushPolicy(r.Context(), c, access.PolicyBundle{Files: in.Files})
	answer(w, b, err)
}

func (s *Server) handleExportCA(w http.ResponseWriter, r *http.Request) {
	typ := r.PathValue("type")
	out, err := s.svc.ExportCA(r.Context(), typ, r.URL.Query().Get("resource"))
	if err != nil {
		writeError(w, err)
		return
	}
	if typ == access.CATypeApp {
		w.Header().Set("Content-Type", "application/json")
	} else {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	_, _ = w.Write([]byte(out))
}

// handleJWKS serves the app CA's public keys as a JWKS (RFC 7517).
func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	out, err := s.svc.ExportCA(r.Context(), access.CATypeApp, "")
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write([]byte(out))
}

func (s *Server) handleCredentials(w http.ResponseWriter, r *http.Request, c service.Caller) {
	var in api.CredentialRequest
	if err := decode(r, &in); err != nil {
		writeError(w, err)
		return
	}
	var ttl time.Duration
	if in.TTL != "" {
		var err error
		if ttl, err = time.ParseDuration(in.TTL); err != nil || ttl < 0 {
			writeError(w, fmt.Errorf("%w: ttl %q: want a Go duration such as 1h", access.ErrInvalid, in.TTL))
			return
		}
	}
	cred, err := s.svc.IssueCredential(r.Context(), c, r.PathValue("id"), service.CredentialInput{
		Kind: in.Kind, PublicKey: in.PublicKey, CSR: []byte(in.CSR), Resource: in.Resource, DBUser: in.DBUser, Login: in.Login, TTL: ttl,
	})
	answer(w, cred, err)
}
