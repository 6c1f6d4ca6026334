package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse-dev/gatehouse/access"
)

// CA key sets live at prefix + "ca/" + type, and for the CAs kept per
// target (db, kube, desktop) prefix + "ca/" + type + "/" + resource. The
// private keys in them are sealed by ca/ and bound to this key, so the
// layout must not change without re-sealing.
const keyCA = "ca/"

var _ access.CAKeyStore = (*Store)(nil)

func caWhat(typ, resource string) string {
	if resource == "" {
		return fmt.Sprintf("CA keys %s", typ)
	}
	return fmt.Sprintf("CA keys %s/%s", typ, resource)
}

func checkCA(typ, resource string) error {
	if err := checkName("CA type", typ); err != nil {
		return err
	}
	if resource != "" {
		if err := checkName("CA resource", resource); err != nil {
			return err
		}
	}
	return nil
}

// CAKeyPath implements access.CAKeyStore: the full etcd key of the set.
func (s *Store) CAKeyPath(typ, resource string) string {
	if resource == "" {
		return s.key(keyCA, typ)
	}
	return s.key(keyCA, typ, "/", resource)
}

// GetCAKeys implements access.CAKeyStore; Revision is the set's mod
// revision, to pass back to PutCAKeys.
func (s *Store) GetCAKeys(ctx context.Context, typ, resource string) (access.CAKeySet, error) {
	var set access.CAKeySet
	if err := checkCA(typ, resource); err != nil {
		return set, err
	}
	rev, err := s.getObj(ctx, caWhat(typ, resource), s.CAKeyPath(typ, resource), &set)
	if err != nil {
		return access.CAKeySet{}, err
	}
	if set.Type != typ || set.Resource != resource {
		// The record names what it was written for; a mismatch means it
		// was copied here by hand.
		return access.CAKeySet{}, fmt.Errorf("get %s: record is for %s", caWhat(typ, resource), caWhat(set.Type, set.Resource))
	}
	set.Revision = rev
	return set, nil
}

// PutCAKeys implements access.CAKeyStore: Revision 0 creates the set
// (ErrAlreadyExists if another writer got there first), otherwise the write
// compares the mod revision (ErrConflict if it changed).
func (s *Store) PutCAKeys(ctx context.Context, set access.CAKeySet, events ...access.AuditEvent) (access.CAKeySet, error) {
	if err := checkCA(set.Type, set.Resource); err != nil {
		return set, err
	}
	what, key := caWhat(set.Type, set.Resource), s.CAKeyPath(set.Type, set.Resource)
	rev := set.Revision
	set.Revision = 0
	var newRev int64
	var err error
	if rev == 0 {
		newRev, err = s.createObj(ctx, what, key, set, nil, events)
		if err == nil && newRev == 0 { // only a leader guard can fail here, and txn reports that
			err = fmt.Errorf("create %s: %w", what, access.ErrConflict)
		}
	} else {
		newRev, err = s.putObj(ctx, what, key, set, rev, events)
	}
	if err != nil {
		set.Revision = rev
		return set, err
	}
	set.Revision = newRev
	return set, nil
}

// ListCAKeys returns every CA key set, each with its mod revision for
// PutCAKeys, in etcd key order, all read at one revision: what a KEK
// rotation re-seals. A set that does not decode, or names another key
// than the one it is stored at, fails the list: passing over it would
// leave it sealed under the old key.
func (s *Store) ListCAKeys(ctx context.Context) ([]access.CAKeySet, error) {
	resp, err := s.get(ctx, "list CA keys", s.key(keyCA), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	sets := make([]access.CAKeySet, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var set access.CAKeySet
		if err := decode(kv, &set); err != nil {
			return nil, fmt.Errorf("list CA keys: %s: %w", kv.Key, err)
		}
		if s.CAKeyPath(set.Type, set.Resource) != string(kv.Key) {
			return nil, fmt.Errorf("list CA keys: %s: record is for %s", kv.Key, caWhat(set.Type, set.Resource))
		}
		set.Revision = kv.ModRevision
		sets = append(sets, set)
	}
	return sets, nil
}

// CAKeyCache is an access.CAKeyStore that keeps the CA key sets in
// memory, current through a watch on the ca/ prefix, so issuing a
// credential reads no etcd. Writes go to etcd as with Store.PutCAKeys and
// update the cache from their result before returning: a rotation is seen
// by the next issuance on this replica, and by other replicas within the
// watch latency. A write that loses its compare reloads its set from etcd,
// so the caller's retry works on what won; a set the cache does not hold
// is read from etcd.
//
// A replica whose view lags cannot sign past what etcd records: raising a
// key's SignedUntil is a compare-and-swap against etcd, so without a write
// it can only sign credentials ending before the SignedUntil etcd already
// holds, which a retire waits for.
type CAKeyCache struct {
	st     *Store
	prefix string

	mu   sync.RWMutex
	sets map[string]cachedCAKeys // by etcd key
}

var _ access.CAKeyStore = (*CAKeyCache)(nil)

// cachedCAKeys is one set as last seen; rev orders what the watch, the
// writes and the fallback reads deliver, so an older view never replaces
// a newer one.
type cachedCAKeys struct {
	set access.CAKeySet
	rev int64 // mod revision of the set, or revision it was deleted at
	// gone: deleted, or not decodable, at rev; reads go to etcd.
	gone bool
}

// CacheCAKeys loads every CA key set and follows the ca/ prefix until ctx
// ends (after that the cache no longer follows other replicas' writes).
func (s *Store) CacheCAKeys(ctx context.Context) (*CAKeyCache, error) {
	c := &CAKeyCache{st: s, prefix: s.key(keyCA), sets: map[string]cachedCAKeys{}}
	resp, err := s.get(ctx, "load CA keys", c.prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	c.onReset(resp.Kvs, resp.Header.Revision)
	go s.watchPrefix(ctx, "CA keys", c.prefix, resp.Header.Revision, c.onEvent, c.onReset)
	return c, nil
}

// CAKeyPath implements access.CAKeyStore.
func (c *CAKeyCache) CAKeyPath(typ, resource string) string { return c.st.CAKeyPath(typ, resource) }

// GetCAKeys implements access.CAKeyStore from memory; a set the cache
// does not hold is read from etcd (and kept).
func (c *CAKeyCache) GetCAKeys(ctx context.Context, typ, resource string) (access.CAKeySet, error) {
	if err := checkCA(typ, resource); err != nil {
		return access.CAKeySet{}, err
	}
	key := c.st.CAKeyPath(typ, resource)
	c.mu.RLock()
	e, ok := c.sets[key]
	c.mu.RUnlock()
	if ok && !e.gone {
		return cloneCAKeys(e.set), nil
	}
	set, err := c.st.GetCAKeys(ctx, typ, resource)
	if err != nil {
		return set, err
	}
	c.keep(key, cachedCAKeys{set: cloneCAKeys(set), rev: set.Revision})
	return set, nil
}

// PutCAKeys implements access.CAKeyStore: the write of Store.PutCAKeys,
// then the cache takes its result; after a lost compare (ErrConflict,
// ErrAlreadyExists) it reloads the set from etcd.
func (c *CAKeyCache) PutCAKeys(ctx context.Context, set access.CAKeySet, events ...access.AuditEvent) (access.CAKeySet, error) {
	out, err := c.st.PutCAKeys(ctx, set, events...)
	if err == nil {
		c.keep(c.st.CAKeyPath(out.Type, out.Resource), cachedCAKeys{set: cloneCAKeys(out), rev: out.Revision})
		return out, nil
	}
	if errors.Is(err, access.ErrConflict) || errors.Is(err, access.ErrAlreadyExists) {
		if cur, gerr := c.st.GetCAKeys(ctx, set.Type, set.Resource); gerr == nil {
			c.keep(c.st.CAKeyPath(cur.Type, cur.Resource), cachedCAKeys{set: cur, rev: cur.Revision})
		}
	}
	return out, err
}

// keep stores e unless the cache already holds a view at least as new.
func (c *CAKeyCache) keep(key string, e cachedCAKeys) {
	c.mu.Lock()
	if cur, ok := c.sets[key]; !ok || cur.rev < e.rev {
		c.sets[key] = e
	}
	c.mu.Unlock()
}

// decode reads a set from the watch or a load; the record must name the
// key it is stored at, as GetCAKeys checks.
func (c *CAKeyCache) decode(kv *mvccpb.KeyValue) cachedCAKeys {
	var set access.CAKeySet
	err := decode(kv, &set)
	if err == nil && c.st.CAKeyPath(set.Type, set.Resource) != string(kv.Key) {
		err = fmt.Errorf("record is for %s", caWhat(set.Type, set.Resource))
	}
	if err != nil {
		// GetCAKeys reports it when the set is asked for.
		c.st.log.Warn("CA key cache: set not cached", "key", string(kv.Key), "err", err)
		return cachedCAKeys{rev: kv.ModRevision, gone: true}
	}
	set.Revision = kv.ModRevision
	return cachedCAKeys{set: set, rev: kv.ModRevision}
}

func (c *CAKeyCache) onEvent(ev *clientv3.Event) bool {
	if ev.Type == mvccpb.DELETE {
		c.keep(string(ev.Kv.Key), cachedCAKeys{rev: ev.Kv.ModRevision, gone: true})
		return true
	}
	c.keep(string(ev.Kv.Key), c.decode(ev.Kv))
	return true
}

// onReset replaces the cache with the sets read at rev (the first load, or
// a re-read after the watch fell behind a compaction); views newer than
// rev, from this replica's writes, stay.
func (c *CAKeyCache) onReset(kvs []*mvccpb.KeyValue, rev int64) bool {
	fresh := make(map[string]cachedCAKeys, len(kvs))
	for _, kv := range kvs {
		fresh[string(kv.Key)] = c.decode(kv)
	}
	c.mu.Lock()
	for key, e := range c.sets {
		if e.rev > rev {
			fresh[key] = e
		}
	}
	c.sets = fresh
	c.mu.Unlock()
	return true
}

// cloneCAKeys copies the key list, so callers may change what they got
// without changing the cache (the sealed bytes are shared: nothing
// writes to them).
func cloneCAKeys(set access.CAKeySet) access.CAKeySet {
	set.Keys = slices.Clone(set.Keys)
	return set
}
