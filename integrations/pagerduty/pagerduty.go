// Package pagerduty implements access.OnCallDirectory against the PagerDuty
// REST API v2 (through github.com/PagerDuty/go-pagerduty), and creates
// incidents for the notify.pagerduty side effect.
//
// How an on-call answer is built, for one e-mail address:
//
//  1. GET /users?query=EMAIL, every page: PagerDuty's query is a substring
//     match on name and e-mail, so the user is the result whose e-mail equals
//     EMAIL case-insensitively. No such user: the answer is an empty list, not
//     an error (the person is simply not on call).
//  2. GET /oncalls?user_ids[]=ID&earliest=true&include[]=escalation_policies,
//     every page. Without since/until PagerDuty answers the on-calls in force
//     now; earliest=true keeps one entry per escalation policy and level.
//  3. On-calls belong to an escalation policy, not to a service, so services
//     are resolved through the policy: the services that use an escalation
//     policy are listed in the escalation policy object. The object embedded
//     by include[]=escalation_policies is used when PagerDuty sent the full
//     object (type "escalation_policy"); when only a reference came back,
//     GET /escalation_policies/{id} is asked, once per policy and answer.
//     Each (on-call, service) pair is one access.OnCall; a policy that no
//     service uses yields one entry with an empty Service.
//
// Schedule is the schedule's name (empty when the user is on the policy
// directly, not through a schedule). A permanent on-call has null start/end:
// they map to the zero time.
//
// Successful answers are cached per normalised e-mail for Config.CacheTTL in a
// bounded map; concurrent misses for one address share one set of API calls.
// Errors are never cached. Every failure — transport error, timeout, any
// non-2xx status including 429 (no retry inside a policy evaluation), a
// malformed body — is returned wrapping access.ErrUnavailable, so a policy
// fails closed and an outage never reads as "not on call".
package pagerduty

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	pd "github.com/PagerDuty/go-pagerduty"

	"github.com/gatehouse-dev/gatehouse/access"
)

// Defaults of Config.
const (
	DefaultAPIURL   = "https://api.pagerduty.com"
	DefaultCacheTTL = 30 * time.Second
	DefaultTimeout  = 5 * time.Second
)

const (
	pageLimit       = 100      // PagerDuty's maximum page size
	maxPages        = 50       // more than 5,000 results: refuse rather than loop
	maxCacheEntries = 10000    // bound of the per-e-mail cache
	maxBodyBytes    = 16 << 20 // cap on one response body
)

// Config configures the directory (accessd.yaml section `pagerduty`).
type Config struct {
	// APIKey is a REST API key (sent as "Authorization: Token token=KEY").
	APIKey string
	// APIURL is the REST API base URL; default https://api.pagerduty.com.
	APIURL string
	// FromEmail is the PagerDuty user on whose behalf incidents are created
	// (the From header); needed only by CreateIncident.
	FromEmail string
	// CacheTTL is how long a successful on-call answer is reused; default
	// 30s, negative disables the cache.
	CacheTTL time.Duration
	// Timeout bounds each API call; default 5s.
	Timeout time.Duration
}

// Directory answers on-call questions from PagerDuty and creates incidents.
// It is safe for concurrent use.
type Directory struct {
	client    *pd.Client
	fromEmail string
	ttl       time.Duration
	timeout   time.Duration
	now       func() time.Time

	mu       sync.RWMutex
	cache    map[string]cacheEntry
	inflight map[string]*call
}

type cacheEntry struct {
	val     []access.OnCall
	expires time.Time
}

type call struct {
	done chan struct{}
	val  []access.OnCall
	err  error
}

var _ access.OnCallDirectory = (*Directory)(nil)

// New validates cfg and returns a Directory. It does not call PagerDuty.
func New(cfg Config) (*Directory, error) {
	if strings.TrimSpace(cfg.APIKey) == "" {
		return nil, fmt.Errorf("pagerduty: api_key is required: %w", access.ErrInvalid)
	}
	if cfg.APIURL == "" {
		cfg.APIURL = DefaultAPIURL
	}
	u, err := url.Parse(cfg.APIURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("pagerduty: api_url %q must be an absolute http(s) URL: %w", cfg.APIURL, access.ErrInvalid)
	}
	switch {
	case cfg.CacheTTL == 0:
		cfg.CacheTTL = DefaultCacheTTL
	case cfg.CacheTTL < 0:
		cfg.CacheTTL = 0
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("pagerduty: timeout must not be negative: %w", access.ErrInvalid)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	c := pd.NewClient(cfg.APIKey, pd.WithAPIEndpoint(strings.TrimRight(cfg.APIURL, "/")))
	// Our own HTTP client: not the library's shared one, and with a cap on
	// what one response may make us read.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	c.HTTPClient = limitedClient{&http.Client{Transport: tr}}
	return &Directory{
		client:    c,
		fromEmail: strings.TrimSpace(cfg.FromEmail),
		ttl:       cfg.CacheTTL,
		timeout:   cfg.Timeout,
		now:       time.Now,
		cache:     make(map[string]cacheEntry),
		inflight:  make(map[string]*call),
	}, nil
}

// OnCalls returns the current on-call entries of the PagerDuty user with this
// e-mail address; an unknown address has none. See the package comment.
func (d *Directory) OnCalls(ctx context.Context, email string) ([]access.OnCall, error) {
	key := strings.ToLower(strings.TrimSpace(email))
	if key == "" {
		return []access.OnCall{}, nil
	}
	if d.ttl > 0 {
		d.mu.RLock()
		e, ok := d.cache[key]
		d.mu.RUnlock()
		if ok && d.now().Before(e.expires) {
			return slices.Clone(e.val), nil
		}
	}
	d.mu.Lock()
	if e, ok := d.cache[key]; ok && d.now().Before(e.expires) {
		d.mu.Unlock()
		return slices.Clone(e.val), nil
	}
	c, ok := d.inflight[key]
	if !ok {
		c = &call{done: make(chan struct{})}
		d.inflight[key] = c
		// The shared fetch must not die with the first caller's context
		// (the others still wait for it); it keeps the values and is bounded
		// by the per-call timeout.
		go d.fetch(context.WithoutCancel(ctx), key, c)
	}
	d.mu.Unlock()

	select {
	case <-c.done:
		if c.err != nil {
			return nil, c.err
		}
		return slices.Clone(c.val), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("pagerduty: on-calls of %s: %w: %w", key, access.ErrUnavailable, ctx.Err())
	}
}

func (d *Directory) fetch(ctx context.Context, key string, c *call) {
	val, err := d.lookup(ctx, key)
	if err != nil {
		c.err = fmt.Errorf("pagerduty: on-calls of %s: %w: %w", key, access.ErrUnavailable, err)
	} else {
		c.val = val
	}
	d.mu.Lock()
	delete(d.inflight, key)
	if err == nil && d.ttl > 0 {
		d.store(key, val)
	}
	d.mu.Unlock()
	close(c.done)
}

// store caches val; d.mu is held.
func (d *Directory) store(key string, val []access.OnCall) {
	now := d.now()
	if _, ok := d.cache[key]; !ok && len(d.cache) >= maxCacheEntries {
		for k, e := range d.cache {
			if !now.Before(e.expires) {
				delete(d.cache, k)
			}
		}
		for k := range d.cache { // still full: drop arbitrary entries
			if len(d.cache) < maxCacheEntries {
				break
			}
			delete(d.cache, k)
		}
	}
	d.cache[key] = cacheEntry{val: val, expires: now.Add(d.ttl)}
}

// lookup asks PagerDuty; every error it returns is wrapped by the caller.
func (d *Directory) lookup(ctx context.Context, email string) ([]access.OnCall, error) {
	userID, err := d.findUser(ctx, email)
	if err != nil || userID == "" {
		return []access.OnCall{}, err
	}
	oncalls, err := d.listOnCalls(ctx, userID)
	if err != nil {
		return nil, err
	}
	services := make(map[string][]string) // escalation policy id -> service names
	out := []access.OnCall{}
	for _, oc := range oncalls {
		if oc.User.ID != "" && oc.User.ID != userID {
			continue // not asked for; never attribute someone else's on-call
		}
		start, err := parseTime(oc.Start)
		if err != nil {
			return nil, fmt.Errorf("on-call start: %w", err)
		}
		end, err := parseTime(oc.End)
		if err != nil {
			return nil, fmt.Errorf("on-call end: %w", err)
		}
		ep := oc.EscalationPolicy
		names, ok := services[ep.ID]
		if !ok {
			if names, err = d.policyServices(ctx, ep); err != nil {
				return nil, err
			}
			services[ep.ID] = names
		}
		base := access.OnCall{
			EscalationPolicy: firstNonEmpty(ep.Name, ep.Summary),
			EscalationLevel:  int(oc.EscalationLevel),
			Schedule:         firstNonEmpty(oc.Schedule.Name, oc.Schedule.Summary),
			Start:            start,
			End:              end,
		}
		if len(names) == 0 {
			out = append(out, base)
		}
		for _, s := range names {
			e := base
			e.Service = s
			out = append(out, e)
		}
	}
	slices.SortFunc(out, compareOnCall)
	return slices.CompactFunc(out, func(a, b access.OnCall) bool { return compareOnCall(a, b) == 0 }), nil
}

func (d *Directory) findUser(ctx context.Context, email string) (string, error) {
	var offset uint
	for range maxPages {
		cctx, cancel := context.WithTimeout(ctx, d.timeout)
		resp, err := d.client.ListUsersWithContext(cctx, pd.ListUsersOptions{Query: email, Limit: pageLimit, Offset: offset})
		cancel()
		if err != nil {
			return "", fmt.Errorf("list users: %w", err)
		}
		for _, u := range resp.Users {
			if u.ID != "" && strings.EqualFold(strings.TrimSpace(u.Email), email) {
				return u.ID, nil
			}
		}
		if !resp.More {
			return "", nil
		}
		offset = nextOffset(resp.APIListObject, offset, len(resp.Users))
	}
	return "", fmt.Errorf("list users: more than %d pages", maxPages)
}

func (d *Directory) listOnCalls(ctx context.Context, userID string) ([]pd.OnCall, error) {
	var all []pd.OnCall
	var offset uint
	for range maxPages {
		cctx, cancel := context.WithTimeout(ctx, d.timeout)
		resp, err := d.client.ListOnCallsWithContext(cctx, pd.ListOnCallOptions{
			UserIDs:  []string{userID},
			Earliest: true,
			Includes: []string{"escalation_policies"},
			Limit:    pageLimit,
			Offset:   offset,
		})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("list on-calls: %w", err)
		}
		all = append(all, resp.OnCalls...)
		if !resp.More {
			return all, nil
		}
		offset = nextOffset(resp.APIListObject, offset, len(resp.OnCalls))
	}
	return nil, fmt.Errorf("list on-calls: more than %d pages", maxPages)
}

// policyServices returns the names of the services that use ep.
func (d *Directory) policyServices(ctx context.Context, ep pd.EscalationPolicy) ([]string, error) {
	if ep.ID == "" {
		return nil, nil
	}
	if ep.Type != "escalation_policy" { // a reference: ask for the object
		cctx, cancel := context.WithTimeout(ctx, d.timeout)
		full, err := d.client.GetEscalationPolicyWithContext(cctx, ep.ID, &pd.GetEscalationPolicyOptions{})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("get escalation policy %s: %w", ep.ID, err)
		}
		ep = *full
	}
	var names []string
	for _, s := range ep.Services {
		if s.Summary != "" {
			names = append(names, s.Summary)
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// CreateIncident opens an incident on serviceID on behalf of FromEmail and
// returns its id. incident_key is dedupKey, so a retried outbox delivery does
// not open a second incident: when PagerDuty refuses the duplicate (400, an
// open incident with that key exists) the existing incident's id is returned.
// Transport errors, timeouts, 429 and 5xx wrap access.ErrUnavailable (retry
// later); other refusals wrap access.ErrInvalid.
func (d *Directory) CreateIncident(ctx context.Context, serviceID, title, details, dedupKey string) (string, error) {
	if d.fromEmail == "" {
		return "", fmt.Errorf("pagerduty: from_email is required to create incidents: %w", access.ErrInvalid)
	}
	if strings.TrimSpace(serviceID) == "" || strings.TrimSpace(title) == "" {
		return "", fmt.Errorf("pagerduty: incident needs a service and a title: %w", access.ErrInvalid)
	}
	opts := &pd.CreateIncidentOptions{
		Title:       title,
		Service:     &pd.APIReference{ID: serviceID, Type: "service_reference"},
		IncidentKey: dedupKey,
	}
	if details != "" {
		opts.Body = &pd.APIDetails{Type: "incident_body", Details: details}
	}
	cctx, cancel := context.WithTimeout(ctx, d.timeout)
	inc, err := d.client.CreateIncidentWithContext(cctx, d.fromEmail, opts)
	cancel()
	if err == nil {
		if inc.ID == "" {
			return "", fmt.Errorf("pagerduty: create incident: no id in the answer: %w", access.ErrUnavailable)
		}
		return inc.ID, nil
	}
	var apiErr pd.APIError
	if dedupKey != "" && errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusBadRequest {
		if id, lerr := d.openIncident(ctx, serviceID, dedupKey); lerr == nil && id != "" {
			return id, nil
		}
	}
	return "", fmt.Errorf("pagerduty: create incident: %w: %w", classify(err), err)
}

// openIncident finds the open incident with this key on the service.
func (d *Directory) openIncident(ctx context.Context, serviceID, key string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	resp, err := d.client.ListIncidentsWithContext(cctx, pd.ListIncidentsOptions{
		IncidentKey: key,
		ServiceIDs:  []string{serviceID},
		Statuses:    []string{"triggered", "acknowledged"},
		Limit:       1,
	})
	if err != nil {
		return "", err
	}
	for _, inc := range resp.Incidents {
		if inc.ID != "" {
			return inc.ID, nil
		}
	}
	return "", nil
}

func classify(err error) error {
	var apiErr pd.APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode >= 400 && apiErr.StatusCode < 500 &&
		apiErr.StatusCode != http.StatusTooManyRequests && apiErr.StatusCode != http.StatusRequestTimeout {
		return access.ErrInvalid
	}
	return access.ErrUnavailable
}

func nextOffset(page pd.APIListObject, cur uint, n int) uint {
	step := page.Limit
	if step == 0 {
		step = uint(n)
	}
	if step == 0 {
		step = pageLimit
	}
	return max(page.Offset, cur) + step
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339, s)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func compareOnCall(a, b access.OnCall) int {
	if c := strings.Compare(a.Service, b.Service); c != 0 {
		return c
	}
	if c := strings.Compare(a.EscalationPolicy, b.EscalationPolicy); c != 0 {
		return c
	}
	if a.EscalationLevel != b.EscalationLevel {
		return a.EscalationLevel - b.EscalationLevel
	}
	if c := strings.Compare(a.Schedule, b.Schedule); c != 0 {
		return c
	}
	if c := a.Start.Compare(b.Start); c != 0 {
		return c
	}
	return a.End.Compare(b.End)
}

// limitedClient caps the bytes read from one response body.
type limitedClient struct{ c *http.Client }

func (l limitedClient) Do(r *http.Request) (*http.Response, error) {
	resp, err := l.c.Do(r)
	if err != nil {
		return nil, err
	}
	resp.Body = limitedBody{io.LimitReader(resp.Body, maxBodyBytes), resp.Body}
	return resp, nil
}

type limitedBody struct {
	io.Reader
	io.Closer
}
