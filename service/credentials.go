package service

import (
	"context"
	"errors"
	"fmt"
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
	TTL       time.Duration // 0: as long as the grant and the roles allow
}

// IssueCredential signs a credential for the caller's own approved,
// active grant. Its life is the minimum of what was asked, every granted
// role's max_session_ttl and the access expiry, backdated one minute:
// nothing is minted outside the grant's window. Every attempt is audited,
// refused ones too.
func (s *Service) IssueCredential(ctx context.Context, c Caller, id string, in CredentialInput) (access.IssuedCredential, error) {
	cred, err := s.issueCredential(ctx, c, id, in)
	outcome, fields := OutcomeSuccess, map[string]any{"kind": in.Kind}
	if err != nil {
		outcome, fields["error"] = OutcomeDenied, err.Error()
	} else {
		fields["serial"], fields["key_id"], fields["principals"] = cred.Serial, cred.KeyID, cred.Principals
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
	case access.CredentialDB, access.CredentialKube, access.CredentialDesktop, access.CredentialApp:
		return access.IssuedCredential{}, fmt.Errorf("%w: %s credentials are not issued by this server yet", access.ErrInvalid, in.Kind)
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

// ExportCA returns what targets must trust for a CA type (public).
func (s *Service) ExportCA(ctx context.Context, typ string) (string, error) {
	if s.issuer == nil {
		return "", fmt.Errorf("%w: this server has no certificate authority configured", access.ErrInvalid)
	}
	if typ != access.CATypeSSH {
		return "", fmt.Errorf("%w: CA type %q: only ssh is exported by this server yet", access.ErrInvalid, typ)
	}
	return s.issuer.ExportSSH(ctx)
}
