package service

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/inventory"
)

// WithIssuer sets the CA that signs credentials for grants.
func WithIssuer(i access.CredentialIssuer) Option { return func(s *Service) { s.issuer = i } }

// CredentialInput asks for one credential of an approved grant.
type CredentialInput struct {
	Kind      string
	PublicKey string        // ssh: the client's public key (authorized_keys line)
	CSR       []byte        // db, kube, desktop: PEM certificate request of the client's key
	Resource  string        // db, kube, app, desktop: the resource's name (optional when the grant covers one)
	DBUser    string        // db: the database user, among the granted db_users
	Login     string        // desktop: the Windows login, among the granted windows_desktop_logins
	TTL       time.Duration // 0: as long as the grant and the roles allow
}

// IssueCredential signs a credential for the caller's own approved,
// active grant. Its life is the minimum of what was asked, every granted
// role's max_session_ttl and the access expiry, backdated one minute:
// nothing is minted outside the grant's window. Every attempt is audited,
// refused ones too.
func (s *Service) IssueCredential(ctx context.Context, c Caller, id string, in CredentialInput) (access.IssuedCredential, error) {
	cred, err := s.issueCredential(ctx, c, id, in)
	s.metrics.CredentialRequested(in.Kind, err)
	outcome, fields := OutcomeSuccess, map[string]any{"kind": in.Kind}
	if in.Resource != "" {
		fields["resource"] = in.Resource
	}
	if in.DBUser != "" {
		fields["db_user"] = in.DBUser
	}
	if in.Login != "" {
		fields["login"] = in.Login
	}
	if err != nil {
		outcome, fields["error"] = OutcomeDenied, err.Error()
	} else {
		fields["serial"], fields["key_id"] = cred.Serial, cred.KeyID
		if len(cred.Principals) > 0 {
			fields["principals"] = cred.Principals
		}
		if cred.Resource != "" {
			fields["resource"] = cred.Resource
		}
		if cred.Subject != "" {
			fields["subject"] = cred.Subject
		}
		if len(cred.Groups) > 0 {
			fields["groups"] = cred.Groups
		}
		fields["not_after"] = cred.NotAfter.Format(time.RFC3339)
	}
	if aerr := s.store.AppendAudit(ctx, s.audit(c, "credential.issue", id, outcome, "", fields)); aerr != nil && err == nil {
		return access.IssuedCredential{}, fmt.Errorf("audit credential: %w", aerr)
	}
	return cred, err
}

func (s *Service) issueCredential(ctx context.Context, c Caller, id string, in CredentialInput) (access.IssuedCredential, error) {
	if s.issuer == nil {
		return access.IssuedCredential{}, fmt.Errorf("%w: this server has no certificate authority configured", access.ErrInvalid)
	}
	r, err := s.GetRequest(ctx, c, id)
	if err != nil {
		return access.IssuedCredential{}, err
	}
	if r.User != c.Name() {
		return access.IssuedCredential{}, fmt.Errorf("%w: credentials are for the requester %s only", access.ErrForbidden, r.User)
	}
	now := s.now().UTC()
	if r.State != access.StateApproved {
		return access.IssuedCredential{}, fmt.Errorf("%w: request %s is %s: credentials need an approved grant", access.ErrConflict, r.ID, r.State)
	}
	if !r.Active(now) {
		if r.Start != nil && now.Before(*r.Start) {
			return access.IssuedCredential{}, fmt.Errorf("%w: request %s starts at %s", access.ErrConflict, r.ID, r.Start.Format(time.RFC3339))
		}
		return access.IssuedCredential{}, fmt.Errorf("%w: request %s: the access window ended", access.ErrExpired, r.ID)
	}
	granted := access.NewRoleSet(c.User, s.pick(c.all, r.GrantedRoles))
	ttl, notBefore, err := access.CredentialTTL(in.TTL, *r.AccessExpires, now, access.MaxSessionTTL(granted.Roles))
	if err != nil {
		return access.IssuedCredential{}, err
	}
	notAfter := now.Add(ttl)
	switch in.Kind {
	case access.CredentialSSH:
		return s.issueSSH(ctx, c, r, granted, notBefore, notAfter, in)
	case access.CredentialDB:
		return s.issueDB(ctx, r, granted, notBefore, notAfter, in)
	case access.CredentialKube:
		return s.issueKube(ctx, c, r, granted, notBefore, notAfter, in)
	case access.CredentialApp:
		return s.issueApp(ctx, c, r, granted, notBefore, notAfter, in)
	case access.CredentialDesktop:
		return s.issueDesktop(ctx, c, r, granted, notBefore, notAfter, in)
	}
	return access.IssuedCredential{}, fmt.Errorf("%w: kind %q: want ssh, db, kube, desktop or app", access.ErrInvalid, in.Kind)
}

func (s *Service) issueSSH(ctx context.Context, c Caller, r access.Request, granted access.RoleSet, nb, na time.Time, in CredentialInput) (access.IssuedCredential, error) {
	if strings.TrimSpace(in.PublicKey) == "" {
		return access.IssuedCredential{}, fmt.Errorf("%w: public_key is required for ssh", access.ErrInvalid)
	}
	nodes, err := s.grantedNodes(ctx, r, granted)
	if err != nil {
		return access.IssuedCredential{}, err
	}
	logins, hosts, wildcard := access.SSHGrant(granted, nodes, len(r.Resources) == 0)
	if len(logins) == 0 {
		return access.IssuedCredential{}, fmt.Errorf("%w: the granted roles %s allow no SSH login", access.ErrForbidden, strings.Join(r.GrantedRoles, ", "))
	}
	if len(hosts) == 0 && !wildcard {
		return access.IssuedCredential{}, fmt.Errorf("%w: the grant covers no SSH node", access.ErrForbidden)
	}
	principals, err := access.SSHPrincipals(logins, hosts, wildcard)
	if err != nil {
		return access.IssuedCredential{}, err
	}
	pty, port, agent := sshOptions(granted)
	return s.issuer.IssueSSH(ctx, access.SSHCertSpec{
		PublicKey: in.PublicKey, KeyID: c.Name() + "/" + r.ID, Principals: principals,
		NotBefore: nb, NotAfter: na, PermitPTY: pty, PortForwarding: port, AgentForwarding: agent,
	})
}

// grantedNodes are the nodes a grant reaches: the requested ones for a
// resource request, else every node of the inventory the roles allow.
func (s *Service) grantedNodes(ctx context.Context, r access.Request, granted access.RoleSet) ([]access.Resource, error) {
	if len(r.Resources) > 0 {
		var out []access.Resource
		for _, raw := range r.Resources {
			id, err := access.ParseResourceID(raw)
			if err != nil || id.Kind != access.KindNode {
				continue
			}
			res, err := s.store.GetResource(ctx, access.KindNode, id.Name)
			if errors.Is(err, access.ErrNotFound) {
				continue // deleted since: grants nothing
			}
			if err != nil {
				return nil, err
			}
			out = append(out, res)
		}
		return out, nil
	}
	select {
	case <-s.index.Ready():
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.index.Search(inventory.Query{Kind: access.KindNode, Allow: granted.CanAccess, Limit: access.MaxSSHPrincipals + 1}), nil
}

// sshOptions reads the certificate extensions from role options: a PTY
// unless a role turns it off; forwarding only when a role turns it on and
// none turns it off.
func sshOptions(granted access.RoleSet) (pty, port, agent bool) {
	pty = true
	for _, r := range granted.Roles {
		o := r.Spec.Options
		if o.PermitPTY != nil && !*o.PermitPTY {
			pty = false
		}
	}
	port, agent = optionOn(granted, func(o access.RoleOptions) *bool { return o.PortForwarding }), optionOn(granted, func(o access.RoleOptions) *bool { return o.ForwardAgent })
	return pty, port, agent
}

func optionOn(granted access.RoleSet, get func(access.RoleOptions) *bool) bool {
	on := false
	for _, r := range granted.Roles {
		if v := get(r.Spec.Options); v != nil {
			if !*v {
				return false
			}
			on = true
		}
	}
	return on
}

// grantedResource picks the resource of kind a credential is for: the one
// named, or the only one the grant covers. It must exist, and the grant
// must reach it: for a resource request it is among the requested
// resources (and the granted roles still reach it); for a role request
// the granted roles reach it.
func (s *Service) grantedResource(ctx context.Context, r access.Request, granted access.RoleSet, kind, name string) (access.Resource, error) {
	what := map[string]string{access.KindDB: "database", access.KindKubeCluster: "Kubernetes cluster", access.KindApp: "app", access.KindWindowsDesktop: "Windows desktop"}[kind]
	flag := map[string]string{access.KindDB: "--db", access.KindKubeCluster: "--kube", access.KindApp: "--app", access.KindWindowsDesktop: "--desktop"}[kind]
	var candidates []access.Resource
	if len(r.Resources) > 0 {
		for _, raw := range r.Resources {
			id, err := access.ParseResourceID(raw)
			if err != nil || id.Kind != kind || id.Cluster != s.cfg.ClusterName || (name != "" && id.Name != name) {
				continue
			}
			res, err := s.store.GetResource(ctx, kind, id.Name)
			if errors.Is(err, access.ErrNotFound) {
				continue // deleted since: grants nothing
			}
			if err != nil {
				return access.Resource{}, err
			}
			if granted.CanAccess(res) {
				candidates = append(candidates, res)
			}
		}
	} else if name != "" {
		res, err := s.store.GetResource(ctx, kind, name)
		if err != nil && !errors.Is(err, access.ErrNotFound) {
			return access.Resource{}, err
		}
		if err == nil && granted.CanAccess(res) {
			candidates = append(candidates, res)
		}
	} else {
		select {
		case <-s.index.Ready():
		case <-ctx.Done():
			return access.Resource{}, ctx.Err()
		}
		candidates = s.index.Search(inventory.Query{Kind: kind, Allow: granted.CanAccess, Limit: 2})
	}
	switch {
	case len(candidates) == 1:
		return candidates[0], nil
	case len(candidates) == 0 && name != "":
		return access.Resource{}, fmt.Errorf("%w: the grant of request %s does not cover the %s %q", access.ErrForbidden, r.ID, what, name)
	case len(candidates) == 0:
		return access.Resource{}, fmt.Errorf("%w: the grant of request %s covers no %s", access.ErrForbidden, r.ID, what)
	}
	return access.Resource{}, fmt.Errorf("%w: the grant covers several %ss: name one (%s NAME)", access.ErrInvalid, what, flag)
}

func (s *Service) issueDB(ctx context.Context, r access.Request, granted access.RoleSet, nb, na time.Time, in CredentialInput) (access.IssuedCredential, error) {
	if len(in.CSR) == 0 {
		return access.IssuedCredential{}, fmt.Errorf("%w: csr is required for db", access.ErrInvalid)
	}
	if in.DBUser == "" {
		return access.IssuedCredential{}, fmt.Errorf("%w: db_user is required for db (--db-user)", access.ErrInvalid)
	}
	res, err := s.grantedResource(ctx, r, granted, access.KindDB, in.Resource)
	if err != nil {
		return access.IssuedCredential{}, err
	}
	if ok, allowed := access.DBUserAllowed(granted, in.DBUser); !ok {
		return access.IssuedCredential{}, notGranted("database user", "db_users", in.DBUser, r, allowed)
	}
	return s.issuer.IssueDB(ctx, res.Metadata.Name, in.CSR, in.DBUser, nb, na)
}

func (s *Service) issueKube(ctx context.Context, c Caller, r access.Request, granted access.RoleSet, nb, na time.Time, in CredentialInput) (access.IssuedCredential, error) {
	if len(in.CSR) == 0 {
		return access.IssuedCredential{}, fmt.Errorf("%w: csr is required for kube", access.ErrInvalid)
	}
	res, err := s.grantedResource(ctx, r, granted, access.KindKubeCluster, in.Resource)
	if err != nil {
		return access.IssuedCredential{}, err
	}
	cred, err := s.issuer.IssueKube(ctx, res.Metadata.Name, in.CSR, c.Name(), access.KubeGroups(granted), nb, na)
	if err != nil {
		return access.IssuedCredential{}, err
	}
	cred.Server, cred.ServerCAPEM = res.Spec.Server, res.Spec.CAPEM
	return cred, nil
}

func (s *Service) issueApp(ctx context.Context, c Caller, r access.Request, granted access.RoleSet, nb, na time.Time, in CredentialInput) (access.IssuedCredential, error) {
	res, err := s.grantedResource(ctx, r, granted, access.KindApp, in.Resource)
	if err != nil {
		return access.IssuedCredential{}, err
	}
	return s.issuer.IssueApp(ctx, res.Metadata.Name, s.cfg.ClusterName, c.Name(), granted.Names(), c.User.Spec.Traits, nb, na)
}

// WindowsSIDTrait is the user trait holding the user's Windows SID
// (S-1-5-21-...); when set, desktop certificates carry it in the
// KB5014754 strong-mapping extension.
const WindowsSIDTrait = "windows_sid"

// CRLPath is the path, under CRLBaseURL, of the CRL of a CA type and
// resource (for desktop: the Windows domain) signed by its active key.
// Certificates issued before CRLs were per key version name it.
func CRLPath(typ, resource string) string { return "/crl/" + typ + "/" + resource + ".crl" }

// CRLVersionPath is the path, under CRLBaseURL, of the CRL signed by key
// version of a CA type and resource: /crl/desktop/DOMAIN/v2.crl. Desktop
// certificates name the one of the key that signed them, since Windows
// takes only a CRL with their issuer's name and key identifier.
func CRLVersionPath(typ, resource string, version int) string {
	return "/crl/" + typ + "/" + resource + "/v" + strconv.Itoa(version) + ".crl"
}

func (s *Service) issueDesktop(ctx context.Context, c Caller, r access.Request, granted access.RoleSet, nb, na time.Time, in CredentialInput) (access.IssuedCredential, error) {
	if s.cfg.CRLBaseURL == "" {
		return access.IssuedCredential{}, fmt.Errorf("%w: desktop credentials need a CRL that Windows can fetch over plain HTTP, and this server serves none: set crl_listen in the accessd config", access.ErrInvalid)
	}
	if len(in.CSR) == 0 {
		return access.IssuedCredential{}, fmt.Errorf("%w: csr is required for desktop", access.ErrInvalid)
	}
	if in.Login == "" {
		return access.IssuedCredential{}, fmt.Errorf("%w: login is required for desktop (--login)", access.ErrInvalid)
	}
	res, err := s.grantedResource(ctx, r, granted, access.KindWindowsDesktop, in.Resource)
	if err != nil {
		return access.IssuedCredential{}, err
	}
	if res.Spec.Domain == "" {
		return access.IssuedCredential{}, fmt.Errorf("%w: windows_desktop %s has no spec.domain: ask an admin to set it; the certificate names login@domain", access.ErrInvalid, res.Metadata.Name)
	}
	if ok, allowed := access.DesktopLoginAllowed(granted, in.Login); !ok {
		return access.IssuedCredential{}, notGranted("Windows login", "windows_desktop_logins", in.Login, r, allowed)
	}
	var sid string
	if v := c.User.Spec.Traits[WindowsSIDTrait]; len(v) > 0 {
		sid = v[0]
	}
	base, domain := strings.TrimRight(s.cfg.CRLBaseURL, "/"), res.Spec.Domain
	crlURL := func(version int) string { return base + CRLVersionPath(access.CATypeDesktop, domain, version) }
	return s.issuer.IssueDesktop(ctx, domain, in.CSR, in.Login, sid, crlURL, nb, na)
}

// CRL returns the signed (empty) CRL, DER, of a Windows domain's desktop
// CA, signed by its key of version (0: the active key); a version no
// longer in the CA's key set is ErrNotFound. Only domains some
// windows_desktop resource is in have one, so anonymous callers cannot
// make the server create CAs for names of their choosing.
func (s *Service) CRL(ctx context.Context, typ, resource string, version int) ([]byte, error) {
	if s.issuer == nil {
		return nil, fmt.Errorf("%w: this server has no certificate authority configured", access.ErrNotFound)
	}
	if typ != access.CATypeDesktop {
		return nil, fmt.Errorf("%w: CRLs are served for desktop CAs only, not %q", access.ErrNotFound, typ)
	}
	if resource == "" {
		return nil, fmt.Errorf("%w: a desktop CRL belongs to one Windows domain", access.ErrInvalid)
	}
	if err := s.requireDesktopDomain(ctx, resource); err != nil {
		return nil, err
	}
	return s.issuer.CRL(ctx, typ, resource, version)
}

// ExportCA returns what targets must trust for a CA type (public):
// TrustedUserCAKeys lines (ssh), the PEM bundle of one database, cluster
// or Windows domain (db, kube, desktop), the JWKS (app). A per-resource
// CA is exported only for a resource that exists, so anonymous callers
// cannot make the server create CAs for names of their choosing.
func (s *Service) ExportCA(ctx context.Context, typ, resource string) (string, error) {
	if s.issuer == nil {
		return "", fmt.Errorf("%w: this server has no certificate authority configured", access.ErrInvalid)
	}
	switch typ {
	case access.CATypeSSH, access.CATypeApp:
		if resource != "" {
			return "", fmt.Errorf("%w: the %s CA is not per resource; drop resource=%q", access.ErrInvalid, typ, resource)
		}
	case access.CATypeDB, access.CATypeKube:
		if resource == "" {
			return "", fmt.Errorf("%w: a %s CA belongs to one resource; name it (--resource NAME)", access.ErrInvalid, typ)
		}
		kind := access.KindDB
		if typ == access.CATypeKube {
			kind = access.KindKubeCluster
		}
		if _, err := s.store.GetResource(ctx, kind, resource); err != nil {
			if errors.Is(err, access.ErrNotFound) {
				return "", fmt.Errorf("%w: no %s resource %q", access.ErrNotFound, kind, resource)
			}
			return "", err
		}
	case access.CATypeDesktop:
		if resource == "" {
			return "", fmt.Errorf("%w: a desktop CA belongs to one Windows domain; name it (--resource DOMAIN)", access.ErrInvalid)
		}
		if err := s.requireDesktopDomain(ctx, resource); err != nil {
			return "", err
		}
	default:
		return "", fmt.Errorf("%w: CA type %q: want ssh, db, kube, desktop or app", access.ErrInvalid, typ)
	}
	return s.issuer.ExportCA(ctx, typ, resource)
}

// requireDesktopDomain checks some windows_desktop resource is in domain.
// The anonymous CRL endpoint calls it on every fetch, so it asks the
// in-memory index (no etcd read) once the index is loaded.
func (s *Service) requireDesktopDomain(ctx context.Context, domain string) error {
	if s.index != nil {
		select {
		case <-s.index.Ready():
			found, err := s.indexedDesktopDomain(ctx, domain)
			if err != nil || found {
				return err
			}
			return fmt.Errorf("%w: no windows_desktop resource in domain %q", access.ErrNotFound, domain)
		default: // still loading: ask etcd
		}
	}
	all, _, err := s.store.ListResources(ctx)
	if err != nil {
		return err
	}
	for _, r := range all {
		if r.Kind == access.KindWindowsDesktop && r.Spec.Domain == domain {
			return nil
		}
	}
	return fmt.Errorf("%w: no windows_desktop resource in domain %q", access.ErrNotFound, domain)
}

// indexLagWait is how long a miss waits for the index to catch up with a
// desktop written a moment ago (the watch usually takes a millisecond).
const indexLagWait = 2 * time.Second

// indexedDesktopDomain looks the domain up in the index. The index follows
// etcd through a watch and may not have seen a desktop created a moment
// ago, so a miss is trusted only once the index has applied the newest
// desktop write. That check is one keys-only etcd read: the CRL endpoint
// is anonymous, and a miss must not cost a decode of every resource.
func (s *Service) indexedDesktopDomain(ctx context.Context, domain string) (bool, error) {
	has := func() bool {
		return len(s.index.SearchShared(inventory.Query{Kind: access.KindWindowsDesktop, Limit: 1,
			Allow: func(r access.Resource) bool { return r.Spec.Domain == domain }})) > 0
	}
	if has() {
		return true, nil
	}
	last, err := s.store.LastResourceChange(ctx, access.KindWindowsDesktop)
	if err != nil {
		return false, err
	}
	deadline := time.Now().Add(indexLagWait)
	for s.index.Revision() < last {
		if time.Now().After(deadline) {
			return false, fmt.Errorf("%w: the resource index is behind etcd; try again", access.ErrUnavailable)
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return has(), nil
}

// notGranted is the refusal of a value (a database user, a Windows login)
// that the grant's roles do not allow: it lists what they do allow and says
// when a deny entry is what refuses it.
func notGranted(what, field, value string, r access.Request, allowed []string) error {
	list := "none"
	if len(allowed) > 0 {
		list = strings.Join(allowed, ", ")
	}
	if access.MatchAnyValue(allowed, value) {
		list += "; a deny." + field + " entry refuses it"
	}
	return fmt.Errorf("%w: %s %q is not granted (the granted roles %s allow: %s)",
		access.ErrForbidden, what, value, strings.Join(r.GrantedRoles, ", "), list)
}
