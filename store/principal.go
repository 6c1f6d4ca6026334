package store

import (
	"context"
	"fmt"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse-dev/gatehouse/access"
)

// Principal implements access.IdentityStore: lock, user and all roles in
// one read-only transaction, so every authenticated call costs a single
// etcd round trip however many roles the user holds.
func (s *Store) Principal(ctx context.Context, user string) (access.Principal, error) {
	var p access.Principal
	if err := checkName("user", user); err != nil {
		return p, err
	}
	resp, err := s.txn(ctx, "get principal "+user, nil, []clientv3.Op{
		clientv3.OpGet(s.key(keyLocks, user)),
		clientv3.OpGet(s.key(keyUsers, user)),
		clientv3.OpGet(s.key(keyRoles), clientv3.WithPrefix()),
	})
	if err != nil {
		return p, err
	}
	p.Revision = resp.Header.Revision
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		var l access.Lock
		if err := decode(kvs[0], &l); err != nil {
			return p, fmt.Errorf("get principal %s: %w", user, err)
		}
		p.Lock = &l
	}
	kvs := resp.Responses[1].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return p, fmt.Errorf("%s: %w", userWhat(user), access.ErrNotFound)
	}
	if err := decode(kvs[0], &p.User); err != nil {
		return p, fmt.Errorf("get principal %s: %w", user, err)
	}
	p.User.Metadata.Revision = kvs[0].ModRevision
	roleKVs := resp.Responses[2].GetResponseRange().GetKvs()
	p.Roles = make(map[string]access.Role, len(roleKVs))
	for _, kv := range roleKVs {
		r, err := s.roles.decode(kv)
		if err != nil {
			return p, fmt.Errorf("get principal %s: %w", user, err)
		}
		p.Roles[r.Metadata.Name] = r
	}
	return p, nil
}

// roleCache keeps decoded roles by key and mod revision: every call reads
// all roles, and decoding them again each time would dominate.
type roleCache struct {
	mu sync.Mutex
	m  map[string]access.Role
}

// maxCachedRoles bounds the cache; past it the cache starts over.
const maxCachedRoles = 10_000

func (c *roleCache) decode(kv *mvccpb.KeyValue) (access.Role, error) {
	c.mu.Lock()
	r, ok := c.m[string(kv.Key)]
	c.mu.Unlock()
	if ok && r.Metadata.Revision == kv.ModRevision {
		return r, nil
	}
	// A fresh value: decoding into the cached one would keep whatever the
	// new version omits (a removed login, label or right) and write into
	// maps earlier callers still hold.
	r = access.Role{}
	if err := decode(kv, &r); err != nil {
		return r, err
	}
	r.Metadata.Revision = kv.ModRevision
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedRoles {
		c.m = map[string]access.Role{}
	}
	c.m[string(kv.Key)] = r
	c.mu.Unlock()
	return r, nil
}
