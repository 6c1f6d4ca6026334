// Package pagerdutytest provides an in-process fake of the PagerDuty REST
// API v2 endpoints that pagerduty.Directory calls (users, oncalls,
// escalation_policies, incidents), in their documented wire format.
//
// Every request must carry "Authorization: Token token=<Server.Key>" and
// "Accept: application/vnd.pagerduty+json;version=2"; anything else fails the
// test (via t.Errorf) and is answered with a PagerDuty error body. List
// endpoints honour limit/offset with a small server-side page cap (2 by
// default) so that clients are forced to paginate.
package pagerdutytest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// DefaultKey is the API key a new Server accepts.
const DefaultKey = "test-key"

// DefaultPageCap is the server's default page size cap.
const DefaultPageCap = 2

// Server is a fake PagerDuty REST API v2. Point a client at URL (with or
// without a trailing slash) using Key as the API key.
type Server struct {
	URL string // base URL of the fake, e.g. "http://127.0.0.1:1234"
	Key string // the API key the server accepts; set before the first request

	t       testing.TB
	release chan struct{}

	mu        sync.Mutex
	badAuthOK bool          // wrong credentials are answered 401 without failing the test
	pageCap   int           // the server's page size cap, to force pagination
	mode      string        // "", "500", "429", "hang", "slow"
	embedEP   bool          // include[]=escalation_policies returns full objects
	calls     []string      // "METHOD /path?query"
	users     []jsonObj     // user objects
	oncalls   []jsonObj     // on-call objects (escalation_policy as a reference)
	policies  map[string]ep // escalation policy id -> policy
	incidents []jsonObj
}

type jsonObj = map[string]any

type ep struct {
	name     string
	services []string // service names
}

// New starts a fake PagerDuty server; it is closed via t.Cleanup (which also
// releases requests held by the "hang" mode).
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{Key: DefaultKey, t: t, pageCap: DefaultPageCap, policies: map[string]ep{}, release: make(chan struct{})}
	srv := httptest.NewServer(s)
	s.URL = srv.URL
	t.Cleanup(func() { close(s.release); srv.Close() })
	return s
}

func ref(typ, id, summary string) jsonObj {
	return jsonObj{"id": id, "type": typ + "_reference", "summary": summary,
		"self": "https://api.pagerduty.com/" + typ + "s/" + id, "html_url": "https://acme.pagerduty.com/" + typ + "s/" + id}
}

// AddUser adds a user. GET /users?query=Q matches users whose name or email
// contains Q, case-insensitively (like PagerDuty, it is a substring search).
func (s *Server) AddUser(id, name, email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users = append(s.users, jsonObj{"id": id, "type": "user", "summary": name, "name": name, "email": email,
		"time_zone": "Europe/Berlin", "role": "user", "self": "https://api.pagerduty.com/users/" + id})
}

// AddEscalationPolicy adds (or replaces) escalation policy id with the given
// name and services. GET /escalation_policies/{id}, and on-calls fetched with
// include[]=escalation_policies when embedding is on, list one service
// reference per name, in the order given, with summary = the name and
// id = ServiceID(id, i). Add policies before the on-calls that use them: an
// on-call's escalation_policy reference takes its summary from the policy
// name at AddOnCall time.
func (s *Server) AddEscalationPolicy(id, name string, serviceNames ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policies[id] = ep{name, slices.Clone(serviceNames)}
}

// ServiceID is the id the fake gives the i-th service (0-based) of
// escalation policy policyID.
func ServiceID(policyID string, i int) string { return fmt.Sprintf("S%s%d", policyID, i) }

// AddOnCall adds an on-call entry for userID at the given level of
// escalation policy escalationPolicyID. An empty scheduleID means no schedule
// (a direct, permanent assignment); empty start/end are sent as null.
func (s *Server) AddOnCall(userID, userName, escalationPolicyID string, level int, scheduleID, scheduleName, start, end string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	oc := jsonObj{
		"user":              ref("user", userID, userName),
		"escalation_policy": ref("escalation_policy", escalationPolicyID, s.policies[escalationPolicyID].name),
		"escalation_level":  level,
		"schedule":          nil,
		"start":             nil,
		"end":               nil,
	}
	if scheduleID != "" {
		oc["schedule"] = ref("schedule", scheduleID, scheduleName)
	}
	if start != "" {
		oc["start"] = start
	}
	if end != "" {
		oc["end"] = end
	}
	s.oncalls = append(s.oncalls, oc)
}

// Set selects how the server answers subsequent requests (after the header
// checks): "" normally, "500" with an internal error, "429" rate limited
// (Retry-After: 1), "hang" never (until the client gives up or the test
// ends), "slow" normally after 50ms.
func (s *Server) Set(mode string) { s.mu.Lock(); s.mode = mode; s.mu.Unlock() }

// EmbedEscalationPolicies makes GET /oncalls with include[]=escalation_policies
// return full escalation policy objects (with services) instead of references.
// Off by default, so clients must look policies up one by one.
func (s *Server) EmbedEscalationPolicies(on bool) { s.mu.Lock(); s.embedEP = on; s.mu.Unlock() }

// SetPageCap sets the server's page size cap (DefaultPageCap by default).
func (s *Server) SetPageCap(n int) { s.mu.Lock(); s.pageCap = n; s.mu.Unlock() }

// AllowBadAuth makes requests with a wrong Authorization header get their
// 401 answer without failing the test, for tests of bad credentials.
func (s *Server) AllowBadAuth() { s.mu.Lock(); s.badAuthOK = true; s.mu.Unlock() }

// Count reports how many requests so far start with pathPrefix, matched
// against "METHOD /path?rawquery", e.g. Count("GET /oncalls").
func (s *Server) Count(pathPrefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if strings.HasPrefix(c, pathPrefix) {
			n++
		}
	}
	return n
}

// Calls returns every request so far as "METHOD /path?rawquery", in order.
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Incidents returns the incidents created so far, as the server stored them
// (keys id, type, title, incident_key, status, service (a reference whose id
// is the service id sent), body {type, details}, from (the From header)).
func (s *Server) Incidents() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.incidents)
}

func pdError(w http.ResponseWriter, status, code int, msg string, errs ...string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(jsonObj{"error": jsonObj{"message": msg, "code": code, "errors": errs}})
}

func reply(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// page applies limit/offset the way PagerDuty does (limit capped by the server).
func (s *Server) page(r *http.Request, items []jsonObj, name string) jsonObj {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 || limit > s.pageCap {
		limit = s.pageCap
	}
	offset, _ := strconv.Atoi(q.Get("offset"))
	offset = min(offset, len(items))
	end := min(offset+limit, len(items))
	return jsonObj{name: items[offset:end], "limit": limit, "offset": offset, "more": end < len(items), "total": nil}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.calls = append(s.calls, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
	mode, badAuthOK := s.mode, s.badAuthOK
	s.mu.Unlock()

	if got := r.Header.Get("Authorization"); got != "Token token="+s.Key {
		if !badAuthOK {
			s.t.Errorf("pagerdutytest: Authorization = %q", got)
		}
		pdError(w, http.StatusUnauthorized, 2006, "Unauthorized")
		return
	}
	if got := r.Header.Get("Accept"); got != "application/vnd.pagerduty+json;version=2" {
		s.t.Errorf("pagerdutytest: Accept = %q", got)
		pdError(w, http.StatusNotAcceptable, 2000, "Not Acceptable")
		return
	}
	switch mode {
	case "500":
		pdError(w, http.StatusInternalServerError, 2000, "Internal Server Error")
		return
	case "429":
		w.Header().Set("Retry-After", "1")
		pdError(w, http.StatusTooManyRequests, 2020, "Rate Limit Exceeded")
		return
	case "hang":
		select {
		case <-r.Context().Done():
		case <-s.release:
		}
		return
	case "slow":
		time.Sleep(50 * time.Millisecond)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/users":
		needle := strings.ToLower(q.Get("query"))
		var hits []jsonObj
		for _, u := range s.users {
			if strings.Contains(strings.ToLower(u["name"].(string)), needle) || strings.Contains(strings.ToLower(u["email"].(string)), needle) {
				hits = append(hits, u)
			}
		}
		reply(w, http.StatusOK, s.page(r, hits, "users"))
	case r.Method == http.MethodGet && r.URL.Path == "/oncalls":
		ids := q["user_ids[]"]
		embed := s.embedEP && slices.Contains(q["include[]"], "escalation_policies")
		var hits []jsonObj
		for _, oc := range s.oncalls {
			if len(ids) > 0 && !slices.Contains(ids, oc["user"].(jsonObj)["id"].(string)) {
				continue
			}
			if embed {
				c := make(jsonObj, len(oc))
				for k, v := range oc {
					c[k] = v
				}
				c["escalation_policy"] = s.policyObject(oc["escalation_policy"].(jsonObj)["id"].(string))
				oc = c
			}
			hits = append(hits, oc)
		}
		reply(w, http.StatusOK, s.page(r, hits, "oncalls"))
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/escalation_policies/"):
		id := strings.TrimPrefix(r.URL.Path, "/escalation_policies/")
		if _, ok := s.policies[id]; !ok {
			pdError(w, http.StatusNotFound, 2100, "Not Found")
			return
		}
		reply(w, http.StatusOK, jsonObj{"escalation_policy": s.policyObject(id)})
	case r.Method == http.MethodPost && r.URL.Path == "/incidents":
		s.createIncident(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/incidents":
		var hits []jsonObj
		for _, inc := range s.incidents {
			if inc["incident_key"] == q.Get("incident_key") && slices.Contains(q["service_ids[]"], inc["service"].(jsonObj)["id"].(string)) {
				hits = append(hits, inc)
			}
		}
		reply(w, http.StatusOK, s.page(r, hits, "incidents"))
	default:
		pdError(w, http.StatusNotFound, 2100, "Not Found")
	}
}

func (s *Server) policyObject(id string) jsonObj {
	p := s.policies[id]
	svcs := []jsonObj{}
	for i, name := range p.services {
		svcs = append(svcs, ref("service", ServiceID(id, i), name))
	}
	return jsonObj{"id": id, "type": "escalation_policy", "summary": p.name, "name": p.name,
		"self": "https://api.pagerduty.com/escalation_policies/" + id, "num_loops": 0,
		"escalation_rules": []jsonObj{}, "services": svcs, "teams": []jsonObj{}}
}

func (s *Server) createIncident(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("From") == "" {
		pdError(w, http.StatusBadRequest, 2001, "Invalid Input Provided", "From header is required")
		return
	}
	var body struct {
		Incident struct {
			Type        string `json:"type"`
			Title       string `json:"title"`
			IncidentKey string `json:"incident_key"`
			Service     struct{ ID, Type string }
			Body        struct{ Type, Details string }
		} `json:"incident"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Incident.Type != "incident" ||
		body.Incident.Service.Type != "service_reference" || body.Incident.Title == "" {
		pdError(w, http.StatusBadRequest, 2001, "Invalid Input Provided", fmt.Sprint(err))
		return
	}
	in := body.Incident
	for _, inc := range s.incidents {
		if in.IncidentKey != "" && inc["incident_key"] == in.IncidentKey && inc["service"].(jsonObj)["id"] == in.Service.ID {
			pdError(w, http.StatusBadRequest, 2001, "Invalid Input Provided", "Open incident with matching dedup key already exists on this service")
			return
		}
	}
	inc := jsonObj{"id": fmt.Sprintf("PINC%d", len(s.incidents)+1), "type": "incident", "title": in.Title,
		"incident_key": in.IncidentKey, "status": "triggered", "service": ref("service", in.Service.ID, "svc"),
		"body": jsonObj{"type": in.Body.Type, "details": in.Body.Details}, "from": r.Header.Get("From")}
	s.incidents = append(s.incidents, inc)
	reply(w, http.StatusCreated, jsonObj{"incident": inc})
}
