package access

import (
	"encoding/pem"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode"
)

// Version is the only object version this release reads and writes.
const Version = "v1"

var nameRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,127}$`)

// ValidName checks a user, role or resource name. Names appear in resource
// IDs, etcd keys and chat messages, so they stay short and plain.
func ValidName(s string) error {
	if s == "" {
		return fmt.Errorf("%w: name is empty", ErrInvalid)
	}
	if !nameRe.MatchString(s) {
		return fmt.Errorf("%w: name %q: want 1 to 128 letters, digits, '.', '_', '@' or '-', starting with a letter or digit", ErrInvalid, s)
	}
	return nil
}

// Administrative rule resources and verbs, with "*" for all.
var (
	ruleResources = toSet([]string{RuleRole, RuleUser, RuleResource, RuleRequest, RulePolicy, RuleCA, RuleAudit, RuleLock, RuleToken, Wildcard})
	ruleVerbs     = toSet([]string{VerbList, VerbRead, VerbCreate, VerbUpdate, VerbDelete, VerbApprove, Wildcard})
)

// SetDefaults fills the envelope fields a role file may leave out. Services
// call it before Validate.
func (r *Role) SetDefaults() {
	if r.Kind == "" {
		r.Kind = KindRole
	}
	if r.Version == "" {
		r.Version = Version
	}
}

// SetDefaults fills the envelope fields a user may leave out.
func (u *User) SetDefaults() {
	if u.Kind == "" {
		u.Kind = KindUser
	}
	if u.Version == "" {
		u.Version = Version
	}
}

// SetDefaults fills the version; the kind of a resource is never guessed.
func (r *Resource) SetDefaults() {
	if r.Version == "" {
		r.Version = Version
	}
}

func checkEnvelope(kind, wantKind, version, name string) error {
	if kind != wantKind {
		return fmt.Errorf("%w: kind %q: want %q", ErrInvalid, kind, wantKind)
	}
	return checkVersionName(version, name)
}

func checkVersionName(version, name string) error {
	if version != Version {
		return fmt.Errorf("%w: version %q: want %q", ErrInvalid, version, Version)
	}
	if err := ValidName(name); err != nil {
		return fmt.Errorf("metadata.name: %w", err)
	}
	return nil
}

// Validate checks a role and names the field of the first problem, e.g.
// "spec.allow.rules[0].verbs[1]".
func (r *Role) Validate() error {
	if err := checkEnvelope(r.Kind, KindRole, r.Version, r.Metadata.Name); err != nil {
		return fmt.Errorf("role %q: %w", r.Metadata.Name, err)
	}
	if err := checkMetadataLabels(r.Metadata.Labels); err != nil {
		return fmt.Errorf("role %q: %w", r.Metadata.Name, err)
	}
	for _, side := range []struct {
		path string
		c    *RoleConditions
	}{{"spec.allow", &r.Spec.Allow}, {"spec.deny", &r.Spec.Deny}} {
		if err := side.c.validate(side.path); err != nil {
			return fmt.Errorf("role %q: %w", r.Metadata.Name, err)
		}
	}
	if r.Spec.Options.MaxSessionTTL < 0 {
		return fmt.Errorf("role %q: %w: spec.options.max_session_ttl: must not be negative", r.Metadata.Name, ErrInvalid)
	}
	return nil
}

func (c *RoleConditions) validate(path string) error {
	if err := checkTemplatedList(path+".logins", c.Logins); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		vals []string
	}{
		{"db_users", c.DBUsers},
		{"db_names", c.DBNames},
		{"kubernetes_groups", c.KubernetesGroups},
		{"windows_desktop_logins", c.WindowsDesktopLogins},
	} {
		if err := checkValuePatterns(path+"."+f.name, f.vals); err != nil {
			return err
		}
	}
	if !strings.HasSuffix(path, ".deny") {
		// An allowed group goes into certificates as it is written.
		for i, g := range c.KubernetesGroups {
			if isValuePattern(g) {
				return fmt.Errorf("%w: %s.kubernetes_groups[%d]: %q is a pattern, but allowed Kubernetes groups go into certificates as they are: name each group (patterns belong in deny)", ErrInvalid, path, i, g)
			}
		}
	}
	for _, f := range []struct {
		name string
		l    Labels
	}{
		{"node_labels", c.NodeLabels},
		{"db_labels", c.DBLabels},
		{"app_labels", c.AppLabels},
		{"kubernetes_labels", c.KubernetesLabels},
		{"windows_desktop_labels", c.WindowsDesktopLabels},
	} {
		if err := f.l.Validate(path + "." + f.name); err != nil {
			return err
		}
	}
	for i, kr := range c.KubernetesResources {
		if err := kr.validate(fmt.Sprintf("%s.kubernetes_resources[%d]", path, i)); err != nil {
			return err
		}
	}
	if rq := c.Request; rq != nil {
		p := path + ".request"
		if err := checkRolePatterns(p+".roles", rq.Roles); err != nil {
			return err
		}
		if strings.HasSuffix(path, ".deny") {
			// A deny entry only has to match; "*" and ^regex$ are fine.
			if err := checkRolePatterns(p+".search_as_roles", rq.SearchAsRoles); err != nil {
				return err
			}
		} else {
			// An allow entry is a role the user will search as: a real name.
			for i, n := range rq.SearchAsRoles {
				if err := ValidName(n); err != nil {
					return fmt.Errorf("%s.search_as_roles[%d]: %w", p, i, err)
				}
			}
		}
		if err := checkTemplatedList(p+".suggested_reviewers", rq.SuggestedReviewers); err != nil {
			return err
		}
		if rq.MaxDuration < 0 {
			return fmt.Errorf("%w: %s.max_duration: must not be negative", ErrInvalid, p)
		}
		for _, k := range sortedKeys(rq.Annotations) {
			if strings.TrimSpace(k) == "" {
				return fmt.Errorf("%w: %s.annotations: empty key", ErrInvalid, p)
			}
		}
	}
	if rr := c.ReviewRequests; rr != nil {
		if err := checkRolePatterns(path+".review_requests.roles", rr.Roles); err != nil {
			return err
		}
	}
	for i, rule := range c.Rules {
		p := fmt.Sprintf("%s.rules[%d]", path, i)
		if len(rule.Resources) == 0 {
			return fmt.Errorf("%w: %s.resources: empty", ErrInvalid, p)
		}
		if len(rule.Verbs) == 0 {
			return fmt.Errorf("%w: %s.verbs: empty", ErrInvalid, p)
		}
		for j, res := range rule.Resources {
			if !ruleResources[res] {
				return fmt.Errorf("%w: %s.resources[%d]: unknown resource %q: want role, user, resource, request, policy, ca, audit, lock, token or *", ErrInvalid, p, j, res)
			}
		}
		for j, v := range rule.Verbs {
			if !ruleVerbs[v] {
				return fmt.Errorf("%w: %s.verbs[%d]: unknown verb %q: want list, read, create, update, delete, approve or *", ErrInvalid, p, j, v)
			}
		}
	}
	return nil
}

func checkTemplatedList(path string, vals []string) error {
	for i, v := range vals {
		p := fmt.Sprintf("%s[%d]", path, i)
		if strings.TrimSpace(v) == "" {
			return fmt.Errorf("%w: %s: empty", ErrInvalid, p)
		}
		if err := checkTemplates(p, v); err != nil {
			return err
		}
	}
	return nil
}

// checkValuePatterns checks a list whose entries match as label values do
// (db_users, windows_desktop_logins, ...): each is non-empty, its templates
// are known and a ^regex$ compiles.
func checkValuePatterns(path string, vals []string) error {
	for i, v := range vals {
		p := fmt.Sprintf("%s[%d]", path, i)
		if strings.TrimSpace(v) == "" {
			return fmt.Errorf("%w: %s: empty", ErrInvalid, p)
		}
		if err := checkValuePattern(p, v); err != nil {
			return err
		}
	}
	return nil
}

// checkValuePattern checks one label value or list entry: its templates
// are known and, when it is a ^regex$, the expression compiles with every
// template standing for a plain word (templates expand later).
func checkValuePattern(path, v string) error {
	if err := checkTemplates(path, v); err != nil {
		return err
	}
	if isRegexPattern(v) {
		if _, err := compileCached(templateRe.ReplaceAllString(v, "x")); err != nil {
			return fmt.Errorf("%w: %s: invalid regular expression %q: %v", ErrInvalid, path, v, err)
		}
	}
	return nil
}

// checkRolePatterns accepts role names, "*" and ^regex$ as used by
// request.roles and review_requests.roles.
func checkRolePatterns(path string, vals []string) error {
	for i, v := range vals {
		p := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case v == Wildcard:
		case isRegexPattern(v):
			if _, err := compileCached(v); err != nil {
				return fmt.Errorf("%w: %s: invalid regular expression %q: %v", ErrInvalid, p, v, err)
			}
		default:
			if err := ValidName(v); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
	}
	return nil
}

func (kr KubernetesResource) validate(path string) error {
	switch {
	case kr.Kind == Wildcard, IsKubernetesNamespacedKind(kr.Kind):
		if kr.Namespace == "" {
			return fmt.Errorf("%w: %s.namespace: required for kind %q (use \"*\" for every namespace)", ErrInvalid, path, kr.Kind)
		}
	case IsKubernetesClusterWideKind(kr.Kind):
		if kr.Namespace != "" {
			return fmt.Errorf("%w: %s.namespace: not allowed for cluster-wide kind %q", ErrInvalid, path, kr.Kind)
		}
	case kr.Kind == "":
		return fmt.Errorf("%w: %s.kind: empty", ErrInvalid, path)
	default:
		return fmt.Errorf("%w: %s.kind: unknown Kubernetes kind %q", ErrInvalid, path, kr.Kind)
	}
	if kr.Name == "" {
		return fmt.Errorf("%w: %s.name: empty (use \"*\" for every name)", ErrInvalid, path)
	}
	for _, f := range []struct{ name, v string }{{"namespace", kr.Namespace}, {"name", kr.Name}} {
		if isRegexPattern(f.v) {
			if _, err := compileCached(f.v); err != nil {
				return fmt.Errorf("%w: %s.%s: invalid regular expression %q: %v", ErrInvalid, path, f.name, f.v, err)
			}
		}
	}
	return nil
}

// Validate checks a user.
func (u *User) Validate() error {
	if err := checkEnvelope(u.Kind, KindUser, u.Version, u.Metadata.Name); err != nil {
		return fmt.Errorf("user %q: %w", u.Metadata.Name, err)
	}
	if len(u.Spec.Roles) == 0 {
		return fmt.Errorf("user %q: %w: spec.roles: a user needs at least one role", u.Metadata.Name, ErrInvalid)
	}
	for i, n := range u.Spec.Roles {
		if err := ValidName(n); err != nil {
			return fmt.Errorf("user %q: spec.roles[%d]: %w", u.Metadata.Name, i, err)
		}
	}
	for _, k := range sortedKeys(u.Spec.Traits) {
		if k == "" || strings.ContainsFunc(k, badLabelRune) {
			return fmt.Errorf("user %q: %w: spec.traits: invalid trait name %q", u.Metadata.Name, ErrInvalid, k)
		}
	}
	return nil
}

// resourceFields says which spec fields each kind may set.
var resourceFields = map[string]map[string]bool{
	KindNode:           {"hostname": true, "addr": true},
	KindDB:             {"protocol": true, "uri": true},
	KindApp:            {"uri": true, "public_addr": true},
	KindKubeCluster:    {"server": true, "ca_pem": true},
	KindWindowsDesktop: {"addr": true, "domain": true},
}

const (
	maxLabelKeyLen   = 256
	maxLabelValueLen = 1024
)

func badLabelRune(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }

func checkMetadataLabels(labels map[string]string) error {
	for _, k := range sortedKeys(labels) {
		v := labels[k]
		switch {
		case k == "":
			return fmt.Errorf("%w: metadata.labels: empty key", ErrInvalid)
		case k == Wildcard:
			return fmt.Errorf("%w: metadata.labels[%q]: \"*\" is reserved for selectors", ErrInvalid, k)
		case len(k) > maxLabelKeyLen:
			return fmt.Errorf("%w: metadata.labels[%q]: key longer than %d bytes", ErrInvalid, k, maxLabelKeyLen)
		case strings.ContainsFunc(k, badLabelRune):
			return fmt.Errorf("%w: metadata.labels[%q]: key contains whitespace or control characters", ErrInvalid, k)
		case len(v) > maxLabelValueLen:
			return fmt.Errorf("%w: metadata.labels[%q]: value longer than %d bytes", ErrInvalid, k, maxLabelValueLen)
		case strings.ContainsFunc(v, unicode.IsControl):
			return fmt.Errorf("%w: metadata.labels[%q]: value %q contains control characters", ErrInvalid, k, v)
		}
	}
	return nil
}

// Validate checks a resource: its kind, name, labels and that it sets only
// the spec fields of its kind, with the required ones present.
func (r *Resource) Validate() error {
	if !IsResourceKind(r.Kind) {
		return fmt.Errorf("resource %q: %w: kind %q: want node, db, app, kube_cluster or windows_desktop", r.Metadata.Name, ErrInvalid, r.Kind)
	}
	wrap := func(err error) error { return fmt.Errorf("%s %q: %w", r.Kind, r.Metadata.Name, err) }
	if err := checkVersionName(r.Version, r.Metadata.Name); err != nil {
		return wrap(err)
	}
	if err := checkMetadataLabels(r.Metadata.Labels); err != nil {
		return wrap(err)
	}
	s := r.Spec
	allowed := resourceFields[r.Kind]
	for _, f := range []struct{ name, v string }{
		{"hostname", s.Hostname}, {"addr", s.Addr}, {"protocol", s.Protocol}, {"uri", s.URI},
		{"public_addr", s.PublicAddr}, {"server", s.Server}, {"ca_pem", s.CAPEM}, {"domain", s.Domain},
	} {
		if f.v == "" {
			continue
		}
		if !allowed[f.name] {
			return wrap(fmt.Errorf("%w: spec.%s: not allowed for kind %s", ErrInvalid, f.name, r.Kind))
		}
		// Everything but the PEM bundle is one token; stray whitespace is
		// a copy-paste error that would only fail later, at connect time.
		if f.name != "ca_pem" && strings.ContainsFunc(f.v, badLabelRune) {
			return wrap(fmt.Errorf("%w: spec.%s: %q contains whitespace or control characters", ErrInvalid, f.name, f.v))
		}
	}
	switch r.Kind {
	case KindDB:
		switch s.Protocol {
		case "postgres", "mysql":
		case "":
			return wrap(fmt.Errorf("%w: spec.protocol: required for kind db (postgres or mysql)", ErrInvalid))
		default:
			return wrap(fmt.Errorf("%w: spec.protocol: %q: want postgres or mysql", ErrInvalid, s.Protocol))
		}
		if s.URI == "" {
			return wrap(fmt.Errorf("%w: spec.uri: required for kind db", ErrInvalid))
		}
	case KindApp:
		if s.URI == "" {
			return wrap(fmt.Errorf("%w: spec.uri: required for kind app", ErrInvalid))
		}
		if u, err := url.Parse(s.URI); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "tcp") {
			return wrap(fmt.Errorf("%w: spec.uri: %q: want an http, https or tcp URL such as http://grafana:3000", ErrInvalid, s.URI))
		}
	case KindKubeCluster:
		if s.Server == "" {
			return wrap(fmt.Errorf("%w: spec.server: required for kind kube_cluster", ErrInvalid))
		}
		if u, err := url.Parse(s.Server); err != nil || u.Scheme != "https" || u.Host == "" {
			return wrap(fmt.Errorf("%w: spec.server: %q: want an https URL such as https://k8s:6443", ErrInvalid, s.Server))
		}
		if s.CAPEM != "" {
			if b, _ := pem.Decode([]byte(s.CAPEM)); b == nil || b.Type != "CERTIFICATE" {
				return wrap(fmt.Errorf("%w: spec.ca_pem: want a PEM CERTIFICATE block", ErrInvalid))
			}
		}
	case KindWindowsDesktop:
		if s.Addr == "" {
			return wrap(fmt.Errorf("%w: spec.addr: required for kind windows_desktop", ErrInvalid))
		}
	}
	return nil
}
