// Package access is Gatehouse's domain: users, roles, resources, access
// requests, reviews, thresholds and lifetimes. It is pure Go with no I/O; the
// store, the HTTP server, the policy engine and the chat bots are adapters
// around it and implement the interfaces declared in ports.go.
package access

import (
	"encoding/json"
	"fmt"
	"time"
)

// SchemaVersion is written into every stored value so that later releases
// can migrate records they did not write.
const SchemaVersion = 1

// Resource kinds that can be searched and requested.
const (
	KindNode           = "node"
	KindDB             = "db"
	KindApp            = "app"
	KindKubeCluster    = "kube_cluster"
	KindWindowsDesktop = "windows_desktop"
)

// Object kinds of the YAML envelope besides the resource kinds.
const (
	KindRole = "role"
	KindUser = "user"
)

// Metadata is the envelope shared by roles, users and resources.
type Metadata struct {
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	// Revision is the etcd mod revision the object was read at. The store
	// sets it on reads and compares it on conditional writes.
	Revision int64 `json:"revision,omitempty"`
}

// Duration is a time.Duration that reads and writes as Go duration text
// ("90m", "8h").
type Duration time.Duration

// MarshalJSON writes the duration as text ("90m" as "1h30m"); zero is "0s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(FormatDuration(time.Duration(d)))
}

// UnmarshalJSON accepts duration text or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration must be a string such as \"2h\": %s", b)
		}
		*d = Duration(n)
		return nil
	}
	if s == "" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: %w", s, err)
	}
	if v < 0 {
		return fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	*d = Duration(v)
	return nil
}

// Std returns the standard library duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats as time.Duration does, without zero minutes and seconds
// ("2h", not "2h0m0s").
func (d Duration) String() string { return FormatDuration(time.Duration(d)) }

// Strings is a list of strings that also accepts a single string in YAML and
// JSON, as role label values do (`env: prod` or `env: [dev, stage]`).
type Strings []string

// UnmarshalJSON accepts "x" or ["x", "y"].
func (s *Strings) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = Strings{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("must be a string or a list of strings: %s", b)
	}
	*s = many
	return nil
}

// Labels are role label selectors: key to allowed values. A key or value of
// "*" matches anything; a value "^...$" is a regular expression.
type Labels map[string]Strings

// Role is the Teleport-shaped role resource.
type Role struct {
	Kind     string   `json:"kind"`
	Version  string   `json:"version"`
	Metadata Metadata `json:"metadata"`
	Spec     RoleSpec `json:"spec"`
}

// RoleSpec holds allow and deny conditions; deny always wins.
type RoleSpec struct {
	Allow   RoleConditions `json:"allow"`
	Deny    RoleConditions `json:"deny"`
	Options RoleOptions    `json:"options"`
}

// RoleConditions is one side (allow or deny) of a role.
type RoleConditions struct {
	Logins               []string             `json:"logins,omitempty"`
	NodeLabels           Labels               `json:"node_labels,omitempty"`
	DBLabels             Labels               `json:"db_labels,omitempty"`
	DBUsers              []string             `json:"db_users,omitempty"`
	DBNames              []string             `json:"db_names,omitempty"`
	AppLabels            Labels               `json:"app_labels,omitempty"`
	KubernetesLabels     Labels               `json:"kubernetes_labels,omitempty"`
	KubernetesGroups     []string             `json:"kubernetes_groups,omitempty"`
	KubernetesResources  []KubernetesResource `json:"kubernetes_resources,omitempty"`
	WindowsDesktopLabels Labels               `json:"windows_desktop_labels,omitempty"`
	WindowsDesktopLogins []string             `json:"windows_desktop_logins,omitempty"`
	Request              *RequestConditions   `json:"request,omitempty"`
	ReviewRequests       *ReviewConditions    `json:"review_requests,omitempty"`
	Rules                []Rule               `json:"rules,omitempty"`
}

// KubernetesResource selects Kubernetes objects inside a cluster.
type KubernetesResource struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// RequestConditions say what a role's holder may request.
type RequestConditions struct {
	Roles              []string            `json:"roles,omitempty"`
	SearchAsRoles      []string            `json:"search_as_roles,omitempty"`
	SuggestedReviewers []string            `json:"suggested_reviewers,omitempty"`
	MaxDuration        Duration            `json:"max_duration,omitempty"`
	Annotations        map[string][]string `json:"annotations,omitempty"`
}

// ReviewConditions say which requests a role's holder may review.
type ReviewConditions struct {
	Roles []string `json:"roles,omitempty"`
}

// Rule grants administrative verbs on Gatehouse's own objects.
type Rule struct {
	Resources []string `json:"resources"`
	Verbs     []string `json:"verbs"`
}

// Administrative rule resources and verbs.
const (
	RuleRole     = "role"
	RuleUser     = "user"
	RuleResource = "resource"
	RuleRequest  = "request"
	RulePolicy   = "policy"
	RuleCA       = "ca"
	RuleAudit    = "audit"
	RuleLock     = "lock"
	RuleToken    = "token"

	VerbList    = "list"
	VerbRead    = "read"
	VerbCreate  = "create"
	VerbUpdate  = "update"
	VerbDelete  = "delete"
	VerbApprove = "approve"
)

// RoleOptions shape the credentials minted under a role.
type RoleOptions struct {
	MaxSessionTTL  Duration `json:"max_session_ttl,omitempty"`
	PermitPTY      *bool    `json:"permit_pty,omitempty"`
	ForwardAgent   *bool    `json:"forward_agent,omitempty"`
	PortForwarding *bool    `json:"port_forwarding,omitempty"`
}

// User is a Gatehouse user. Passwords live apart from the user object so
// that reading a user never reveals a hash.
type User struct {
	Kind     string   `json:"kind"`
	Version  string   `json:"version"`
	Metadata Metadata `json:"metadata"`
	Spec     UserSpec `json:"spec"`
}

// UserSpec holds a user's standing roles and traits.
type UserSpec struct {
	Roles  []string            `json:"roles"`
	Traits map[string][]string `json:"traits,omitempty"`
}

// Resource is an inventory item: a node, database, app, Kubernetes cluster
// or Windows desktop.
type Resource struct {
	Kind     string       `json:"kind"`
	Version  string       `json:"version"`
	Metadata Metadata     `json:"metadata"`
	Spec     ResourceSpec `json:"spec"`
}

// ResourceSpec is the union of the kind-specific fields; Validate refuses a
// field that does not belong to the resource's kind.
type ResourceSpec struct {
	Hostname   string `json:"hostname,omitempty"`    // node
	Addr       string `json:"addr,omitempty"`        // node, windows_desktop
	Protocol   string `json:"protocol,omitempty"`    // db: postgres | mysql
	URI        string `json:"uri,omitempty"`         // db, app
	PublicAddr string `json:"public_addr,omitempty"` // app
	Server     string `json:"server,omitempty"`      // kube_cluster
	CAPEM      string `json:"ca_pem,omitempty"`      // kube_cluster
	Domain     string `json:"domain,omitempty"`      // windows_desktop
}

// Lock refuses every call of a user while it exists.
type Lock struct {
	User      string    `json:"user"`
	Reason    string    `json:"reason,omitempty"`
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by"`
}

// State is an access request's state.
type State string

// Request states. Final states never change.
const (
	StatePending   State = "PENDING"
	StateApproved  State = "APPROVED"
	StateDenied    State = "DENIED"
	StateExpired   State = "EXPIRED"
	StateCancelled State = "CANCELLED"
	StateDropped   State = "DROPPED"
	StateRevoked   State = "REVOKED"
)

// Verdict is a review's decision.
type Verdict string

// Review verdicts.
const (
	VerdictApprove Verdict = "APPROVE"
	VerdictDeny    Verdict = "DENY"
)

// ReviewKind says who or what produced a review.
type ReviewKind string

// Review kinds.
const (
	ReviewKindReview     ReviewKind = "review"
	ReviewKindAdmin      ReviewKind = "admin"
	ReviewKindPolicy     ReviewKind = "policy"
	ReviewKindBreakGlass ReviewKind = "break_glass"
)

// Sources of a request.
const (
	SourceCLI        = "cli"
	SourceAPI        = "api"
	SourceSlack      = "slack"
	SourceDiscord    = "discord"
	SourceMattermost = "mattermost"
)

// Request is an access request. Its JSON form is the request object of the
// HTTP API, `--format json` and the audit log.
type Request struct {
	ID                 string              `json:"id"`
	User               string              `json:"user"`
	Roles              []string            `json:"roles,omitempty"`
	Resources          []string            `json:"resources,omitempty"`
	Reason             string              `json:"reason"`
	SuggestedReviewers []string            `json:"suggested_reviewers,omitempty"`
	Duration           Duration            `json:"duration"`
	Start              *time.Time          `json:"start,omitempty"`
	State              State               `json:"state"`
	StateReason        string              `json:"state_reason,omitempty"`
	Created            time.Time           `json:"created"`
	PendingExpires     time.Time           `json:"pending_expires"`
	AccessExpires      *time.Time          `json:"access_expires,omitempty"`
	GrantedRoles       []string            `json:"granted_roles,omitempty"`
	Reviews            []Review            `json:"reviews,omitempty"`
	Thresholds         []Threshold         `json:"thresholds"`
	Decision           *Decision           `json:"decision,omitempty"`
	Annotations        map[string][]string `json:"annotations,omitempty"`
	Source             string              `json:"source"`
	// Revision is the etcd mod revision the request was read at.
	Revision int64 `json:"revision,omitempty"`
}

// Review is one reviewer's verdict on a request.
type Review struct {
	Author  string     `json:"author"`
	Verdict Verdict    `json:"verdict"`
	Reason  string     `json:"reason,omitempty"`
	Time    time.Time  `json:"time"`
	Roles   []string   `json:"roles,omitempty"`
	Kind    ReviewKind `json:"kind"`
}

// ReviewerSelector says whose reviews count for a threshold. Empty means
// anyone allowed to review the request.
type ReviewerSelector struct {
	Roles []string `json:"roles,omitempty"`
	Users []string `json:"users,omitempty"`
}

// Threshold is a named approval rule with its progress.
type Threshold struct {
	Name      string           `json:"name"`
	Approve   int              `json:"approve"`
	Deny      int              `json:"deny"`
	Reviewers ReviewerSelector `json:"reviewers"`
	Approvals int              `json:"approvals"`
	Denials   int              `json:"denials"`
}

// Decision is what the policy said at creation.
type Decision struct {
	Outcome        string         `json:"outcome"` // review | approve | deny | policy_error
	Reasons        []string       `json:"reasons,omitempty"`
	BundleRevision int64          `json:"bundle_revision,omitempty"`
	MaxTTL         Duration       `json:"max_ttl,omitempty"`
	Notify         []NotifyTarget `json:"notify,omitempty"`
}

// AuditEvent is one entry of the audit log.
type AuditEvent struct {
	ID        string         `json:"id"`
	Time      time.Time      `json:"time"`
	Type      string         `json:"type"` // request.create, request.review, user.login, role.create, ...
	Actor     string         `json:"actor"`
	RequestID string         `json:"request_id,omitempty"`
	Outcome   string         `json:"outcome"` // success | failure | denied
	Source    string         `json:"source,omitempty"`
	Message   string         `json:"message,omitempty"`
	Fields    map[string]any `json:"fields,omitempty"`
}

// SearchResult is one resource found by a search: its ID to request, its
// names and labels, and its kind-specific fields (hostname, addr, uri, ...).
type SearchResult struct {
	ID          string            `json:"id"`
	Kind        string            `json:"kind"`
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	ResourceSpec
}
