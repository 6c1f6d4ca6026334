package access

import (
	"context"
	"slices"
	"sort"
	"time"
)

// Credential kinds of POST /v1/requests/{id}/credentials.
const (
	CredentialSSH     = "ssh"
	CredentialDB      = "db"
	CredentialKube    = "kube"
	CredentialDesktop = "desktop"
	CredentialApp     = "app"
)

// SSHCertSpec is what an SSH certificate for a grant says.
type SSHCertSpec struct {
	PublicKey       string // authorized_keys line of the client's key
	KeyID           string
	Principals      []string
	NotBefore       time.Time
	NotAfter        time.Time
	PermitPTY       bool
	PortForwarding  bool
	AgentForwarding bool
}

// IssuedCredential is a signed credential as the API returns it.
type IssuedCredential struct {
	Kind        string    `json:"kind"`
	Certificate string    `json:"certificate"` // OpenSSH cert line, PEM, or JWT
	CAPEM       string    `json:"ca_pem,omitempty"`
	Serial      string    `json:"serial"`
	KeyID       string    `json:"key_id,omitempty"`
	Principals  []string  `json:"principals,omitempty"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
}

// CredentialIssuer signs credentials with the CA keys (ca/).
type CredentialIssuer interface {
	IssueSSH(ctx context.Context, spec SSHCertSpec) (IssuedCredential, error)
	// ExportSSH returns the TrustedUserCAKeys lines targets need.
	ExportSSH(ctx context.Context) (string, error)
}

// SSHGrant works out what an SSH certificate for a grant may say: the
// logins of the granted roles (deny wins), the hosts of the granted nodes,
// and whether a bare login is allowed (a role request whose role has the
// '*': '*' node wildcard).
func SSHGrant(granted RoleSet, nodes []Resource, roleRequest bool) (logins, hosts []string, wildcard bool) {
	denied := map[string]bool{}
	for _, r := range granted.Roles {
		for _, l := range r.Spec.Deny.Logins {
			denied[l] = true
		}
	}
	for _, r := range granted.Roles {
		for _, l := range r.Spec.Allow.Logins {
			if l != "" && !denied[l] && !slices.Contains(logins, l) {
				logins = append(logins, l)
			}
		}
		if roleRequest && r.Spec.Allow.NodeLabels.IsWildcard() {
			wildcard = true
		}
	}
	for _, n := range nodes {
		if n.Kind != KindNode || !granted.CanAccess(n) {
			continue
		}
		h := n.Spec.Hostname
		if h == "" {
			h = n.Metadata.Name
		}
		if !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	sort.Strings(logins)
	sort.Strings(hosts)
	return logins, hosts, wildcard
}
