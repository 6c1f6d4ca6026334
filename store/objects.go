package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse-dev/gatehouse/access"
)

// getObj reads key into v and returns its mod revision.
func (s *Store) getObj(ctx context.Context, what, key string, v any) (int64, error) {
	resp, err := s.get(ctx, "get "+what, key)
	if err != nil {
		return 0, err
	}
	if len(resp.Kvs) == 0 {
		return 0, fmt.Errorf("%s: %w", what, access.ErrNotFound)
	}
	if err := decode(resp.Kvs[0], v); err != nil {
		return 0, fmt.Errorf("get %s: %w", what, err)
	}
	return resp.Kvs[0].ModRevision, nil
}

// listObjs decodes every value under prefix with add, which is given the
// key's mod revision. A value that does not decode fails the whole list:
// silently missing a role could change access decisions.
func (s *Store) listObjs(ctx context.Context, what, prefix string, add func(rev int64, decode func(any) error) error) (int64, error) {
	resp, err := s.get(ctx, "list "+what, prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	for _, kv := range resp.Kvs {
		if err := add(kv.ModRevision, func(v any) error { return decode(kv, v) }); err != nil {
			return 0, fmt.Errorf("list %s: %w", what, err)
		}
	}
	return resp.Header.Revision, nil
}

// putObj upserts v at key with the audit events. A non-zero rev makes the
// write conditional on the key still having that mod revision.
func (s *Store) putObj(ctx context.Context, what, key string, v any, rev int64, events []access.AuditEvent) (int64, error) {
	val, err := encode(v)
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", what, err)
	}
	ops, err := s.auditOps(events)
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", what, err)
	}
	var cmps []clientv3.Cmp
	if rev != 0 {
		cmps = append(cmps, unchanged(key, rev))
	}
	resp, err := s.txn(ctx, "put "+what, cmps, append([]clientv3.Op{clientv3.OpPut(key, val)}, ops...))
	if err != nil {
		return 0, err
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("put %s: changed since revision %d: %w", what, rev, access.ErrConflict)
	}
	return resp.Header.Revision, nil
}

// createObj writes v at key unless the key exists.
func (s *Store) createObj(ctx context.Context, what, key string, v any, guard []clientv3.Cmp, events []access.AuditEvent) (int64, error) {
	return s.createObjFx(ctx, what, key, v, guard, access.Effects{Audit: events})
}

// createObjFx is createObj with outbox messages too.
func (s *Store) createObjFx(ctx context.Context, what, key string, v any, guard []clientv3.Cmp, fx access.Effects) (int64, error) {
	val, err := encode(v)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", what, err)
	}
	ops, err := s.effectOps(fx)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", what, err)
	}
	cmps := append([]clientv3.Cmp{absent(key)}, guard...)
	resp, err := s.txn(ctx, "create "+what, cmps, append([]clientv3.Op{clientv3.OpPut(key, val)}, ops...),
		clientv3.OpGet(key, clientv3.WithCountOnly()))
	if err != nil {
		return 0, err
	}
	if !resp.Succeeded {
		if resp.Responses[0].GetResponseRange().GetCount() > 0 {
			return 0, fmt.Errorf("%s: %w", what, access.ErrAlreadyExists)
		}
		return 0, nil // a guard failed; the caller knows which
	}
	return resp.Header.Revision, nil
}

// deleteObj deletes key with the audit events; ErrNotFound if it is absent.
func (s *Store) deleteObj(ctx context.Context, what, key string, events []access.AuditEvent) error {
	ops, err := s.auditOps(events)
	if err != nil {
		return fmt.Errorf("delete %s: %w", what, err)
	}
	resp, err := s.txn(ctx, "delete "+what, []clientv3.Cmp{present(key)}, append([]clientv3.Op{clientv3.OpDelete(key)}, ops...))
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return fmt.Errorf("delete %s: %w", what, access.ErrNotFound)
	}
	return nil
}

// Roles.

func roleWhat(name string) string { return fmt.Sprintf("role %q", name) }

// GetRole implements access.ObjectStore.
func (s *Store) GetRole(ctx context.Context, name string) (access.Role, error) {
	var r access.Role
	if err := checkName("role", name); err != nil {
		return r, err
	}
	rev, err := s.getObj(ctx, roleWhat(name), s.key(keyRoles, name), &r)
	r.Metadata.Revision = rev
	return r, err
}

// ListRoles implements access.ObjectStore; sorted by name.
func (s *Store) ListRoles(ctx context.Context) ([]access.Role, error) {
	var out []access.Role
	_, err := s.listObjs(ctx, "roles", s.key(keyRoles), func(rev int64, dec func(any) error) error {
		var r access.Role
		if err := dec(&r); err != nil {
			return err
		}
		r.Metadata.Revision = rev
		out = append(out, r)
		return nil
	})
	return out, err
}

// PutRole implements access.ObjectStore. A non-zero Metadata.Revision makes
// it compare-and-swap: ErrConflict if the role changed since that read.
func (s *Store) PutRole(ctx context.Context, r access.Role, events ...access.AuditEvent) (access.Role, error) {
	name := r.Metadata.Name
	if err := checkName("role", name); err != nil {
		return r, err
	}
	rev := r.Metadata.Revision
	r.Metadata.Revision = 0
	newRev, err := s.putObj(ctx, roleWhat(name), s.key(keyRoles, name), r, rev, events)
	if err != nil {
		r.Metadata.Revision = rev
		return r, err
	}
	r.Metadata.Revision = newRev
	return r, nil
}

// DeleteRole implements access.ObjectStore.
func (s *Store) DeleteRole(ctx context.Context, name string, events ...access.AuditEvent) error {
	if err := checkName("role", name); err != nil {
		return err
	}
	return s.deleteObj(ctx, roleWhat(name), s.key(keyRoles, name), events)
}

// Users.

func userWhat(name string) string { return fmt.Sprintf("user %q", name) }

// GetUser implements access.ObjectStore.
func (s *Store) GetUser(ctx context.Context, name string) (access.User, error) {
	var u access.User
	if err := checkName("user", name); err != nil {
		return u, err
	}
	rev, err := s.getObj(ctx, userWhat(name), s.key(keyUsers, name), &u)
	u.Metadata.Revision = rev
	return u, err
}

// ListUsers implements access.ObjectStore; sorted by name.
func (s *Store) ListUsers(ctx context.Context) ([]access.User, error) {
	var out []access.User
	_, err := s.listObjs(ctx, "users", s.key(keyUsers), func(rev int64, dec func(any) error) error {
		var u access.User
		if err := dec(&u); err != nil {
			return err
		}
		u.Metadata.Revision = rev
		out = append(out, u)
		return nil
	})
	return out, err
}

// CreateUser implements access.ObjectStore. The user's chat ids are
// claimed in the same transaction (see writeUser).
func (s *Store) CreateUser(ctx context.Context, u access.User, events ...access.AuditEvent) (access.User, error) {
	u.Metadata.Revision = 0
	rev, err := s.writeUser(ctx, u, writeCreate, events)
	u.Metadata.Revision = rev
	return u, err
}

// PutUser implements access.ObjectStore; a non-zero Metadata.Revision makes
// it compare-and-swap as in PutRole. Chat ids are claimed and released in
// the same transaction (see writeUser).
func (s *Store) PutUser(ctx context.Context, u access.User, events ...access.AuditEvent) (access.User, error) {
	rev := u.Metadata.Revision
	newRev, err := s.writeUser(ctx, u, writePut, events)
	if err != nil {
		u.Metadata.Revision = rev
		return u, err
	}
	u.Metadata.Revision = newRev
	return u, nil
}

// maxAttempts bounds the optimistic retry loops; each failed attempt means
// another writer succeeded, so reaching it means heavy contention.
const maxAttempts = 64

// DeleteUser implements access.ObjectStore. The user's tokens are found by
// a read of tokens/; the transaction compares that nothing under tokens/
// changed since, and retries otherwise, so a token created concurrently is
// never left behind.
func (s *Store) DeleteUser(ctx context.Context, name string, lock access.Lock, events ...access.AuditEvent) error {
	what := userWhat(name)
	if err := checkName("user", name); err != nil {
		return err
	}
	lock.User = name
	if lock.Created.IsZero() {
		lock.Created = time.Now().UTC()
	}
	lockVal, err := encode(lock)
	if err != nil {
		return fmt.Errorf("delete %s: %w", what, err)
	}
	auditOps, err := s.auditOps(events)
	if err != nil {
		return fmt.Errorf("delete %s: %w", what, err)
	}
	userKey, tokPrefix := s.key(keyUsers, name), s.key(keyTokens)
	for range maxAttempts {
		resp, err := s.get(ctx, "delete "+what+": list tokens", tokPrefix, clientv3.WithPrefix())
		if err != nil {
			return err
		}
		uresp, err := s.get(ctx, "delete "+what, userKey)
		if err != nil {
			return err
		}
		if len(uresp.Kvs) == 0 {
			return fmt.Errorf("delete %s: %w", what, access.ErrNotFound)
		}
		var old access.User
		if err := decode(uresp.Kvs[0], &old); err != nil {
			return fmt.Errorf("delete %s: %w", what, err)
		}
		ops := []clientv3.Op{
			clientv3.OpDelete(userKey),
			clientv3.OpDelete(s.key(keyPasswords, name)),
			clientv3.OpPut(s.key(keyLocks, name), lockVal),
		}
		for _, kv := range resp.Kvs {
			var t access.Token
			if err := decode(kv, &t); err != nil {
				return fmt.Errorf("delete %s: %w", what, err)
			}
			if t.User == name {
				ops = append(ops, clientv3.OpDelete(string(kv.Key)))
			}
		}
		for k := range s.chatIDKeys(&old) {
			ops = append(ops, clientv3.OpDelete(k)) // release the chat ids
		}
		ops = append(ops, auditOps...)
		cmps := []clientv3.Cmp{
			unchanged(userKey, uresp.Kvs[0].ModRevision),
			clientv3.Compare(clientv3.ModRevision(tokPrefix), "<", resp.Header.Revision+1).WithPrefix(),
		}
		tresp, err := s.txn(ctx, "delete "+what, cmps, ops, clientv3.OpGet(userKey, clientv3.WithCountOnly()))
		if err != nil {
			return err
		}
		if tresp.Succeeded {
			return nil
		}
		if tresp.Responses[0].GetResponseRange().GetCount() == 0 {
			return fmt.Errorf("delete %s: %w", what, access.ErrNotFound)
		}
		// tokens/ or the user changed between the read and the write: read again.
	}
	return fmt.Errorf("delete %s: tokens kept changing, gave up after %d attempts: %w", what, maxAttempts, access.ErrConflict)
}

// Resources.

func resourceWhat(kind, name string) string { return fmt.Sprintf("resource %s/%s", kind, name) }

// GetResource implements access.ObjectStore.
func (s *Store) GetResource(ctx context.Context, kind, name string) (access.Resource, error) {
	var r access.Resource
	if err := checkName("resource kind", kind); err != nil {
		return r, err
	}
	if err := checkName("resource", name); err != nil {
		return r, err
	}
	rev, err := s.getObj(ctx, resourceWhat(kind, name), s.key(keyResources, kind, "/", name), &r)
	r.Metadata.Revision = rev
	return r, err
}

// ListResources implements access.ObjectStore; sorted by kind, then name.
func (s *Store) ListResources(ctx context.Context) ([]access.Resource, int64, error) {
	var out []access.Resource
	rev, err := s.listObjs(ctx, "resources", s.key(keyResources), func(rev int64, dec func(any) error) error {
		var r access.Resource
		if err := dec(&r); err != nil {
			return err
		}
		r.Metadata.Revision = rev
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, rev, nil
}

// LastResourceChange implements access.ObjectStore: one keys-only read of
// the kind's newest key by mod revision.
func (s *Store) LastResourceChange(ctx context.Context, kind string) (int64, error) {
	if err := checkName("resource kind", kind); err != nil {
		return 0, err
	}
	resp, err := s.get(ctx, "latest "+kind+" change", s.key(keyResources, kind, "/"), clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend), clientv3.WithLimit(1))
	if err != nil {
		return 0, err
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	return resp.Kvs[0].ModRevision, nil
}

// PutResource implements access.ObjectStore; a non-zero Metadata.Revision
// makes it compare-and-swap as in PutRole.
func (s *Store) PutResource(ctx context.Context, r access.Resource, events ...access.AuditEvent) (access.Resource, error) {
	kind, name := r.Kind, r.Metadata.Name
	if err := checkName("resource kind", kind); err != nil {
		return r, err
	}
	if err := checkName("resource", name); err != nil {
		return r, err
	}
	rev := r.Metadata.Revision
	r.Metadata.Revision = 0
	newRev, err := s.putObj(ctx, resourceWhat(kind, name), s.key(keyResources, kind, "/", name), r, rev, events)
	if err != nil {
		r.Metadata.Revision = rev
		return r, err
	}
	r.Metadata.Revision = newRev
	return r, nil
}

// DeleteResource implements access.ObjectStore.
func (s *Store) DeleteResource(ctx context.Context, kind, name string, events ...access.AuditEvent) error {
	if err := checkName("resource kind", kind); err != nil {
		return err
	}
	if err := checkName("resource", name); err != nil {
		return err
	}
	return s.deleteObj(ctx, resourceWhat(kind, name), s.key(keyResources, kind, "/", name), events)
}

// Cluster state.

// InitCluster implements access.IdentityStore as one create-if-absent
// transaction that returns the existing state when it loses.
func (s *Store) InitCluster(ctx context.Context, cs access.ClusterState) (access.ClusterState, bool, error) {
	key := s.key(keyCluster)
	val, err := encode(cs)
	if err != nil {
		return cs, false, fmt.Errorf("init cluster state: %w", err)
	}
	resp, err := s.txn(ctx, "init cluster state", []clientv3.Cmp{absent(key)},
		[]clientv3.Op{clientv3.OpPut(key, val)}, clientv3.OpGet(key))
	if err != nil {
		return cs, false, err
	}
	if resp.Succeeded {
		cs.Revision = resp.Header.Revision
		return cs, true, nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 { // only when a leader guard failed, handled in txn
		return cs, false, fmt.Errorf("init cluster state: %w", access.ErrConflict)
	}
	var cur access.ClusterState
	if err := decode(kvs[0], &cur); err != nil {
		return cs, false, fmt.Errorf("init cluster state: %w", err)
	}
	cur.Revision = kvs[0].ModRevision
	return cur, false, nil
}

// GetCluster implements access.IdentityStore.
func (s *Store) GetCluster(ctx context.Context) (access.ClusterState, error) {
	var cs access.ClusterState
	rev, err := s.getObj(ctx, "cluster state", s.key(keyCluster), &cs)
	cs.Revision = rev
	return cs, err
}

// UpdateCluster implements access.IdentityStore: a compare-and-swap on
// cs.Revision, which must be set (the state is created by InitCluster).
func (s *Store) UpdateCluster(ctx context.Context, cs access.ClusterState, events ...access.AuditEvent) (access.ClusterState, error) {
	rev := cs.Revision
	if rev == 0 {
		return cs, fmt.Errorf("%w: update cluster state: no revision to compare with", access.ErrInvalid)
	}
	cs.Revision = 0
	newRev, err := s.putObj(ctx, "cluster state", s.key(keyCluster), cs, rev, events)
	if err != nil {
		cs.Revision = rev
		return cs, err
	}
	cs.Revision = newRev
	return cs, nil
}

// Passwords.

type passwordRecord struct {
	Hash []byte `json:"hash"`
}

// GetPasswordHash implements access.IdentityStore.
func (s *Store) GetPasswordHash(ctx context.Context, user string) ([]byte, error) {
	if err := checkName("user", user); err != nil {
		return nil, err
	}
	var p passwordRecord
	if _, err := s.getObj(ctx, fmt.Sprintf("password of user %q", user), s.key(keyPasswords, user), &p); err != nil {
		return nil, err
	}
	return p.Hash, nil
}

// SetPasswordHash implements access.IdentityStore. The user must exist, in
// the same transaction, so a password cannot outlive a concurrent
// DeleteUser.
func (s *Store) SetPasswordHash(ctx context.Context, user string, hash []byte, events ...access.AuditEvent) error {
	what := fmt.Sprintf("password of user %q", user)
	if err := checkName("user", user); err != nil {
		return err
	}
	val, err := encode(passwordRecord{Hash: hash})
	if err != nil {
		return fmt.Errorf("set %s: %w", what, err)
	}
	ops, err := s.auditOps(events)
	if err != nil {
		return fmt.Errorf("set %s: %w", what, err)
	}
	resp, err := s.txn(ctx, "set "+what, []clientv3.Cmp{present(s.key(keyUsers, user))},
		append([]clientv3.Op{clientv3.OpPut(s.key(keyPasswords, user), val)}, ops...))
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return fmt.Errorf("set %s: %s: %w", what, userWhat(user), access.ErrNotFound)
	}
	return nil
}

// Tokens.

func tokenWhat(hash string) string {
	if len(hash) > 8 { // enough to identify it in logs without the full hash
		hash = hash[:8] + "…"
	}
	return fmt.Sprintf("token %s", hash)
}

// CreateToken implements access.IdentityStore: create-if-absent by hash,
// and only while the token's user exists.
func (s *Store) CreateToken(ctx context.Context, t access.Token, events ...access.AuditEvent) error {
	if err := checkName("token", t.Hash); err != nil {
		return err
	}
	if err := checkName("token user", t.User); err != nil {
		return err
	}
	what := tokenWhat(t.Hash)
	rev, err := s.createObj(ctx, what, s.key(keyTokens, t.Hash), t,
		[]clientv3.Cmp{present(s.key(keyUsers, t.User))}, events)
	if err != nil {
		return err
	}
	if rev == 0 {
		return fmt.Errorf("create %s: %s: %w", what, userWhat(t.User), access.ErrNotFound)
	}
	return nil
}

// GetToken implements access.IdentityStore.
func (s *Store) GetToken(ctx context.Context, hash string) (access.Token, error) {
	var t access.Token
	if err := checkName("token", hash); err != nil {
		return t, err
	}
	_, err := s.getObj(ctx, tokenWhat(hash), s.key(keyTokens, hash), &t)
	return t, err
}

// ConsumeToken implements access.IdentityStore with a single delete that
// returns the previous value: of concurrent callers exactly one sees it.
func (s *Store) ConsumeToken(ctx context.Context, hash string) (access.Token, error) {
	var t access.Token
	if err := checkName("token", hash); err != nil {
		return t, err
	}
	what := tokenWhat(hash)
	resp, err := s.txn(ctx, "consume "+what, nil,
		[]clientv3.Op{clientv3.OpDelete(s.key(keyTokens, hash), clientv3.WithPrevKV())})
	if err != nil {
		return t, err
	}
	if !resp.Succeeded {
		return t, fmt.Errorf("consume %s: %w", what, access.ErrConflict)
	}
	del := resp.Responses[0].GetResponseDeleteRange()
	if del.GetDeleted() == 0 || len(del.GetPrevKvs()) == 0 {
		return t, fmt.Errorf("%s: %w", what, access.ErrNotFound)
	}
	if err := decode(del.PrevKvs[0], &t); err != nil {
		return t, fmt.Errorf("consume %s: %w", what, err)
	}
	return t, nil
}

// Locks.

func lockWhat(user string) string { return fmt.Sprintf("lock of user %q", user) }

// GetLock implements access.IdentityStore.
func (s *Store) GetLock(ctx context.Context, user string) (access.Lock, error) {
	var l access.Lock
	if err := checkName("lock", user); err != nil {
		return l, err
	}
	_, err := s.getObj(ctx, lockWhat(user), s.key(keyLocks, user), &l)
	return l, err
}

// ListLocks implements access.IdentityStore; sorted by user.
func (s *Store) ListLocks(ctx context.Context) ([]access.Lock, error) {
	var out []access.Lock
	_, err := s.listObjs(ctx, "locks", s.key(keyLocks), func(_ int64, dec func(any) error) error {
		var l access.Lock
		if err := dec(&l); err != nil {
			return err
		}
		out = append(out, l)
		return nil
	})
	return out, err
}

// PutLock implements access.IdentityStore (upsert).
func (s *Store) PutLock(ctx context.Context, l access.Lock, events ...access.AuditEvent) error {
	if err := checkName("lock", l.User); err != nil {
		return err
	}
	if l.Created.IsZero() {
		l.Created = time.Now().UTC()
	}
	_, err := s.putObj(ctx, lockWhat(l.User), s.key(keyLocks, l.User), l, 0, events)
	return err
}

// DeleteLock implements access.IdentityStore.
func (s *Store) DeleteLock(ctx context.Context, user string, events ...access.AuditEvent) error {
	if err := checkName("lock", user); err != nil {
		return err
	}
	return s.deleteObj(ctx, lockWhat(user), s.key(keyLocks, user), events)
}

// splitResourceKey parses "KIND/NAME" after the resources/ prefix.
func splitResourceKey(rest string) (kind, name string, ok bool) {
	return strings.Cut(rest, "/")
}
