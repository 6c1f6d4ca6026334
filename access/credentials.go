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
	// Resource is the database, cluster, app or desktop domain the
	// credential is for (x509 and app kinds).
	Resource string `json:"resource,omitempty"`
	// Subject is who the credential names: the db user (CN), the
	// Kubernetes user (CN), the JWT sub.
	Subject string `json:"subject,omitempty"`
	// Groups are the Kubernetes groups (O) of a kube certificate.
	Groups []string `json:"groups,omitempty"`
	// Server and ServerCAPEM are, for kube, the API server URL and the CA
	// that signed its serving certificate (from the kube_cluster
	// resource): what a kubeconfig needs besides the client key, which
	// only the client holds. CAPEM is the cluster's Gatehouse client CA
	// (the apiserver's --client-ca-file).
	Server      string `json:"server,omitempty"`
	ServerCAPEM string `json:"server_ca_pem,omitempty"`
}

// CredentialIssuer signs credentials with the CA keys (ca/).
type CredentialIssuer interface {
	IssueSSH(ctx context.Context, spec SSHCertSpec) (IssuedCredential, error)
	// IssueDB signs a client certificate with subject exactly CN=dbUser
	// for the key of csrPEM, with the database's own CA; CAPEM is that
	// CA's bundle (what ssl_ca_file / ssl_ca hold).
	IssueDB(ctx context.Context, database string, csrPEM []byte, dbUser string, notBefore, notAfter time.Time) (IssuedCredential, error)
	// IssueKube signs a Kubernetes client certificate (CN = user, O =
	// groups) with the cluster's own CA; CAPEM is that CA's bundle.
	// system:masters is always refused.
	IssueKube(ctx context.Context, cluster string, csrPEM []byte, user string, groups []string, notBefore, notAfter time.Time) (IssuedCredential, error)
	// IssueApp signs an ES256 JWT (aud = app); Certificate is the token
	// and KeyID the kid that verifies it in the JWKS.
	IssueApp(ctx context.Context, app, issuer, subject string, roles []string, traits map[string][]string, notBefore, notAfter time.Time) (IssuedCredential, error)
	// IssueDesktop signs a Windows smartcard-logon certificate (CN =
	// login, UPN login@domain, the SID extension when sid is set, the CRL
	// distribution point crlURL(v) for the version v of the key that
	// signs it) for the key of csrPEM with the domain's own CA; CAPEM is
	// that CA's bundle (what the NTAuth store trusts).
	IssueDesktop(ctx context.Context, domain string, csrPEM []byte, login, sid string, crlURL func(version int) string, notBefore, notAfter time.Time) (IssuedCredential, error)
	// CRL returns a signed, empty X.509 CRL (DER) of a per-resource X.509
	// CA (desktop: the Windows domain), signed by its key of version (0:
	// the active key); ErrNotFound for a version no longer in the set.
	CRL(ctx context.Context, typ, resource string, version int) ([]byte, error)
	// ExportCA returns what targets of a CA must trust: TrustedUserCAKeys
	// lines (ssh), a PEM bundle (db, kube, desktop: per resource), a JWKS
	// (app). Public material only.
	ExportCA(ctx context.Context, typ, resource string) (string, error)
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

// DBUserAllowed reports whether the granted roles let the holder connect
// as dbUser: some role's allow.db_users entry matches it and no role's
// deny.db_users entry does (deny wins). Entries match as label values do:
// a name, "*", a glob ("report_*") or ^regex$ ("^ro_.*$"). When it
// refuses, it also returns the allowed entries no deny rules out, sorted,
// for the error message; when it allows, allowed is nil.
func DBUserAllowed(granted RoleSet, dbUser string) (ok bool, allowed []string) {
	return granted.checkValue(dbUsersOf, dbUser)
}

// DesktopLoginAllowed reports whether the granted roles let the holder log
// on to a Windows desktop as login: some role's allow.windows_desktop_logins
// entry matches it and no role's deny entry does (deny wins), matched as
// DBUserAllowed matches db users. Roles of a RoleSet are already
// trait-expanded. When it refuses, it also returns the allowed entries,
// sorted, for the error message.
func DesktopLoginAllowed(granted RoleSet, login string) (ok bool, allowed []string) {
	return granted.checkValue(windowsDesktopLoginsOf, login)
}

// KubeGroups returns the groups of the granted roles' allow
// kubernetes_groups that no deny entry matches (deny wins; deny entries may
// be "*", globs or ^regex$, as label values), sorted. Allow entries go into
// certificates as they are, so a pattern there names no group and is left
// out (Role.Validate refuses one).
func KubeGroups(granted RoleSet) []string {
	return slices.DeleteFunc(granted.allowedValues(kubernetesGroupsOf), isValuePattern)
}
