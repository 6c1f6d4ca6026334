package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/inventory"
)

// PutRole creates or replaces a role (rules role:create / role:update).
func (s *Service) PutRole(ctx context.Context, c Caller, r access.Role) (access.Role, error) {
	r.SetDefaults()
	if err := r.Validate(); err != nil {
		return access.Role{}, err
	}
	verb := access.VerbCreate
	if _, err := s.store.GetRole(ctx, r.Metadata.Name); err == nil {
		verb = access.VerbUpdate
	} else if !errors.Is(err, access.ErrNotFound) {
		return access.Role{}, err
	}
	if err := require(c, access.RuleRole, verb); err != nil {
		return access.Role{}, err
	}
	r.Metadata.Revision = 0
	return s.store.PutRole(ctx, r, s.audit(c, "role."+verb, "", OutcomeSuccess, "", map[string]any{"role": r.Metadata.Name}))
}

// GetRole reads a role (rule role:read).
func (s *Service) GetRole(ctx context.Context, c Caller, name string) (access.Role, error) {
	if err := require(c, access.RuleRole, access.VerbRead); err != nil {
		return access.Role{}, err
	}
	return s.store.GetRole(ctx, name)
}

// ListRoles lists roles (rule role:list).
func (s *Service) ListRoles(ctx context.Context, c Caller) ([]access.Role, error) {
	if err := require(c, access.RuleRole, access.VerbList); err != nil {
		return nil, err
	}
	return s.store.ListRoles(ctx)
}

// DeleteRole removes a role that no user holds (rule role:delete).
func (s *Service) DeleteRole(ctx context.Context, c Caller, name string) error {
	if err := require(c, access.RuleRole, access.VerbDelete); err != nil {
		return err
	}
	if name == AdminRole {
		return fmt.Errorf("%w: the built-in admin role cannot be deleted", access.ErrInvalid)
	}
	if _, err := s.store.GetRole(ctx, name); err != nil {
		return err
	}
	users, err := s.store.ListUsers(ctx)
	if err != nil {
		return err
	}
	var holders []string
	for _, u := range users {
		if slices.Contains(u.Spec.Roles, name) {
			holders = append(holders, u.Metadata.Name)
		}
	}
	if len(holders) > 0 {
		return fmt.Errorf("%w: role %q is held by %s; remove it from them first", access.ErrConflict, name, strings.Join(holders, ", "))
	}
	return s.store.DeleteRole(ctx, name, s.audit(c, "role.delete", "", OutcomeSuccess, "", map[string]any{"role": name}))
}

// checkRolesExist refuses a user whose roles do not exist.
func (s *Service) checkRolesExist(ctx context.Context, names []string) error {
	for _, n := range names {
		if _, err := s.store.GetRole(ctx, n); errors.Is(err, access.ErrNotFound) {
			return fmt.Errorf("%w: spec.roles: unknown role %q", access.ErrInvalid, n)
		} else if err != nil {
			return err
		}
	}
	return nil
}

// AddUser creates a user and returns a single-use invite token (rule
// user:create).
func (s *Service) AddUser(ctx context.Context, c Caller, u access.User) (access.User, string, error) {
	if err := require(c, access.RuleUser, access.VerbCreate); err != nil {
		return access.User{}, "", err
	}
	u.SetDefaults()
	if err := u.Validate(); err != nil {
		return access.User{}, "", err
	}
	if err := s.checkRolesExist(ctx, u.Spec.Roles); err != nil {
		return access.User{}, "", err
	}
	token, tok, err := s.newInvite(ctx, u.Metadata.Name)
	if err != nil {
		return access.User{}, "", err
	}
	u.Metadata.Revision = 0
	created, err := s.store.CreateUser(ctx, u, s.audit(c, "user.create", "", OutcomeSuccess, "", map[string]any{"user": u.Metadata.Name, "roles": u.Spec.Roles}))
	if err != nil {
		return access.User{}, "", err
	}
	if err := s.store.CreateToken(ctx, tok); err != nil {
		return access.User{}, "", fmt.Errorf("store invite token: %w", err)
	}
	return created, token, nil
}

// PutUser creates or replaces a user from a manifest (rules user:create /
// user:update). It never touches the password.
func (s *Service) PutUser(ctx context.Context, c Caller, u access.User) (access.User, error) {
	u.SetDefaults()
	if err := u.Validate(); err != nil {
		return access.User{}, err
	}
	if err := s.checkRolesExist(ctx, u.Spec.Roles); err != nil {
		return access.User{}, err
	}
	verb := access.VerbCreate
	if _, err := s.store.GetUser(ctx, u.Metadata.Name); err == nil {
		verb = access.VerbUpdate
	} else if !errors.Is(err, access.ErrNotFound) {
		return access.User{}, err
	}
	if err := require(c, access.RuleUser, verb); err != nil {
		return access.User{}, err
	}
	if u.Metadata.Name == c.Name() && !slices.Contains(u.Spec.Roles, AdminRole) && c.Roles.HasRole(AdminRole) {
		return access.User{}, fmt.Errorf("%w: you would remove your own admin role", access.ErrInvalid)
	}
	u.Metadata.Revision = 0
	return s.store.PutUser(ctx, u, s.audit(c, "user."+verb, "", OutcomeSuccess, "", map[string]any{"user": u.Metadata.Name, "roles": u.Spec.Roles}))
}

// GetUser reads a user (rule user:read, or the caller themself).
func (s *Service) GetUser(ctx context.Context, c Caller, name string) (access.User, error) {
	if name != c.Name() {
		if err := require(c, access.RuleUser, access.VerbRead); err != nil {
			return access.User{}, err
		}
	}
	return s.store.GetUser(ctx, name)
}

// ListUsers lists users (rule user:list).
func (s *Service) ListUsers(ctx context.Context, c Caller) ([]access.User, error) {
	if err := require(c, access.RuleUser, access.VerbList); err != nil {
		return nil, err
	}
	return s.store.ListUsers(ctx)
}

// DeleteUser removes a user and locks the name (rule user:delete).
func (s *Service) DeleteUser(ctx context.Context, c Caller, name string) error {
	if err := require(c, access.RuleUser, access.VerbDelete); err != nil {
		return err
	}
	if name == c.Name() {
		return fmt.Errorf("%w: you cannot delete yourself", access.ErrInvalid)
	}
	if _, err := s.store.GetUser(ctx, name); err != nil {
		return err
	}
	l := access.Lock{User: name, Reason: "user deleted", Created: s.now().UTC(), CreatedBy: c.Name()}
	return s.store.DeleteUser(ctx, name, l, s.audit(c, "user.delete", "", OutcomeSuccess, "", map[string]any{"user": name}))
}

// PutResource creates or replaces an inventory resource (rules
// resource:create / resource:update).
func (s *Service) PutResource(ctx context.Context, c Caller, r access.Resource) (access.Resource, error) {
	r.SetDefaults()
	if err := r.Validate(); err != nil {
		return access.Resource{}, err
	}
	verb := access.VerbCreate
	if _, err := s.store.GetResource(ctx, r.Kind, r.Metadata.Name); err == nil {
		verb = access.VerbUpdate
	} else if !errors.Is(err, access.ErrNotFound) {
		return access.Resource{}, err
	}
	if err := require(c, access.RuleResource, verb); err != nil {
		return access.Resource{}, err
	}
	r.Metadata.Revision = 0
	return s.store.PutResource(ctx, r, s.audit(c, "resource."+verb, "", OutcomeSuccess, "", map[string]any{"kind": r.Kind, "name": r.Metadata.Name}))
}

// GetResource reads a resource (rule resource:read).
func (s *Service) GetResource(ctx context.Context, c Caller, kind, name string) (access.Resource, error) {
	if err := require(c, access.RuleResource, access.VerbRead); err != nil {
		return access.Resource{}, err
	}
	return s.store.GetResource(ctx, kind, name)
}

// ListResources lists resources (rule resource:list).
func (s *Service) ListResources(ctx context.Context, c Caller) ([]access.Resource, error) {
	if err := require(c, access.RuleResource, access.VerbList); err != nil {
		return nil, err
	}
	all, _, err := s.store.ListResources(ctx)
	return all, err
}

// DeleteResource removes a resource (rule resource:delete).
func (s *Service) DeleteResource(ctx context.Context, c Caller, kind, name string) error {
	if err := require(c, access.RuleResource, access.VerbDelete); err != nil {
		return err
	}
	if _, err := s.store.GetResource(ctx, kind, name); err != nil {
		return err
	}
	return s.store.DeleteResource(ctx, kind, name, s.audit(c, "resource.delete", "", OutcomeSuccess, "", map[string]any{"kind": kind, "name": name}))
}

// SearchInput is a resource search.
type SearchInput struct {
	Kind   string
	Query  string
	Labels map[string]string
	Limit  int
}

// maxSearchResults bounds one search answer.
const maxSearchResults = 1000

// Search finds resources of one kind that the caller's search_as_roles
// grant, in the in-memory index (never a scan of etcd). The results' Labels
// maps are the index's own (copying them was most of the cost of a large
// answer): callers read them and must never modify them.
func (s *Service) Search(ctx context.Context, c Caller, in SearchInput) ([]access.SearchResult, error) {
	switch in.Kind {
	case access.KindNode, access.KindDB, access.KindApp, access.KindKubeCluster, access.KindWindowsDesktop:
	default:
		return nil, fmt.Errorf("%w: --kind %q: want node, db, app, kube_cluster or windows_desktop", access.ErrInvalid, in.Kind)
	}
	sets := s.searchAsRoleSets(c)
	if len(sets) == 0 {
		return nil, fmt.Errorf("%w: %s has no search_as_roles", access.ErrForbidden, c.Name())
	}
	select {
	case <-s.index.Ready():
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(5 * time.Second):
		return nil, fmt.Errorf("%w: the resource index is still loading", access.ErrUnavailable)
	}
	limit := in.Limit
	if limit <= 0 || limit > maxSearchResults {
		limit = maxSearchResults
	}
	found := s.index.SearchShared(inventory.Query{
		Kind:   in.Kind,
		Words:  strings.Fields(in.Query),
		Labels: in.Labels,
		Limit:  limit,
		Allow: func(r access.Resource) bool {
			for _, rs := range sets {
				if rs.set.CanAccess(r) {
					return true
				}
			}
			return false
		},
	})
	// The index answers in name order already.
	out := make([]access.SearchResult, 0, len(found))
	for _, r := range found {
		id := access.ResourceID{Cluster: s.cfg.ClusterName, Kind: r.Kind, Name: r.Metadata.Name}
		out = append(out, access.SearchResult{ID: id.String(), Kind: r.Kind, Name: r.Metadata.Name,
			Description: r.Metadata.Description, Labels: r.Metadata.Labels, ResourceSpec: r.Spec})
	}
	return out, nil
}

// ListAudit returns audit events (rule audit:list).
func (s *Service) ListAudit(ctx context.Context, c Caller, f access.AuditFilter) ([]access.AuditEvent, error) {
	if err := require(c, access.RuleAudit, access.VerbList); err != nil {
		return nil, err
	}
	return s.store.ListAudit(ctx, f)
}
