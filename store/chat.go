package store

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse-dev/gatehouse/access"
)

// Key layout of the chat parts:
//
//	chatids/PLATFORM/ID            → the user whose PLATFORM_id trait is ID
//	chatrefs/REQUEST/PLATFORM/CHAN → where the request's card was posted
const (
	keyChatIDs  = "chatids/"
	keyChatRefs = "chatrefs/"
)

// chatIndexEntry is the value of a chat id index key.
type chatIndexEntry struct {
	User string `json:"user"`
}

// chatIDKeys returns the index keys of u's chat id traits, with the trait
// each comes from (for error messages).
func (s *Store) chatIDKeys(u *access.User) map[string]string {
	out := map[string]string{}
	if u == nil {
		return out
	}
	for _, trait := range access.ChatIDTraits {
		platform := strings.TrimSuffix(trait, "_id")
		for _, id := range u.Spec.Traits[trait] {
			out[s.key(keyChatIDs, platform, "/", id)] = trait + " " + id
		}
	}
	return out
}

// checkChatIDs refuses chat ids that would escape their key.
func checkChatIDs(u access.User) error {
	for _, trait := range access.ChatIDTraits {
		for _, id := range u.Spec.Traits[trait] {
			if id == "" || strings.ContainsAny(id, "/\x00") {
				return fmt.Errorf("user %q: trait %s: %q is not a chat user id: %w", u.Metadata.Name, trait, id, access.ErrInvalid)
			}
		}
	}
	return nil
}

// userWrite mode.
const (
	writeCreate = iota // the user must not exist
	writePut           // upsert; compare Metadata.Revision when non-zero
)

// writeUser creates or replaces u together with its chat id index keys,
// in one transaction: ids the user gains are claimed (refused with
// ErrAlreadyExists when another user holds one), ids it loses are
// released. It reads the current user and the claimed keys first and
// compares them in the write, retrying when either moved.
func (s *Store) writeUser(ctx context.Context, u access.User, mode int, events []access.AuditEvent) (int64, error) {
	name := u.Metadata.Name
	what := userWhat(name)
	if err := checkName("user", name); err != nil {
		return 0, err
	}
	if err := checkChatIDs(u); err != nil {
		return 0, err
	}
	wantRev := u.Metadata.Revision
	u.Metadata.Revision = 0
	val, err := encode(u)
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", what, err)
	}
	auditOps, err := s.auditOps(events)
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", what, err)
	}
	userKey := s.key(keyUsers, name)
	newKeys := s.chatIDKeys(&u)
	claim := slices.Sorted(func(yield func(string) bool) {
		for k := range newKeys {
			if !yield(k) {
				return
			}
		}
	})
	for range maxAttempts {
		reads := []clientv3.Op{clientv3.OpGet(userKey)}
		for _, k := range claim {
			reads = append(reads, clientv3.OpGet(k))
		}
		resp, err := s.txn(ctx, "read "+what, nil, reads)
		if err != nil {
			return 0, err
		}
		var old *access.User
		var cmps []clientv3.Cmp
		if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
			if mode == writeCreate {
				return 0, fmt.Errorf("%s: %w", what, access.ErrAlreadyExists)
			}
			if wantRev != 0 && kvs[0].ModRevision != wantRev {
				return 0, fmt.Errorf("put %s: changed since revision %d: %w", what, wantRev, access.ErrConflict)
			}
			old = new(access.User)
			if err := decode(kvs[0], old); err != nil {
				return 0, fmt.Errorf("put %s: %w", what, err)
			}
			cmps = append(cmps, unchanged(userKey, kvs[0].ModRevision))
		} else {
			if mode == writePut && wantRev != 0 {
				return 0, fmt.Errorf("put %s: %w", what, access.ErrNotFound)
			}
			cmps = append(cmps, absent(userKey))
		}
		ops := []clientv3.Op{clientv3.OpPut(userKey, val)}
		for i, k := range claim {
			kvs := resp.Responses[i+1].GetResponseRange().GetKvs()
			if len(kvs) == 0 {
				cmps = append(cmps, absent(k))
			} else {
				var e chatIndexEntry
				if err := decode(kvs[0], &e); err != nil {
					return 0, fmt.Errorf("put %s: %w", what, err)
				}
				if e.User != name {
					return 0, fmt.Errorf("user %q: %s already belongs to user %q: %w", name, newKeys[k], e.User, access.ErrAlreadyExists)
				}
				cmps = append(cmps, unchanged(k, kvs[0].ModRevision))
			}
			ev, err := encode(chatIndexEntry{User: name})
			if err != nil {
				return 0, err
			}
			ops = append(ops, clientv3.OpPut(k, ev))
		}
		for k := range s.chatIDKeys(old) {
			if _, kept := newKeys[k]; !kept {
				ops = append(ops, clientv3.OpDelete(k))
			}
		}
		ops = append(ops, auditOps...)
		tresp, err := s.txn(ctx, "put "+what, cmps, ops)
		if err != nil {
			return 0, err
		}
		if tresp.Succeeded {
			return tresp.Header.Revision, nil
		}
		// The user or a claimed id moved between the read and the write.
	}
	return 0, fmt.Errorf("put %s: kept changing, gave up after %d attempts: %w", what, maxAttempts, access.ErrConflict)
}

// ChatUser implements access.ChatStore.
func (s *Store) ChatUser(ctx context.Context, platform, id string) (string, error) {
	what := fmt.Sprintf("%s user %q", platform, id)
	if platform == "" || id == "" || strings.ContainsAny(platform+id, "/\x00") {
		return "", fmt.Errorf("%s: %w", what, access.ErrNotFound)
	}
	var e chatIndexEntry
	if _, err := s.getObj(ctx, what, s.key(keyChatIDs, platform, "/", id), &e); err != nil {
		return "", err
	}
	return e.User, nil
}

func (s *Store) chatRefKey(requestID, platform, channel string) string {
	return s.key(keyChatRefs, requestID, "/", platform, "/", channel)
}

// PutChatRef implements access.ChatStore: create-if-absent per request,
// platform and channel.
func (s *Store) PutChatRef(ctx context.Context, ref access.ChatRef) (access.ChatRef, error) {
	for _, p := range []string{ref.RequestID, ref.Platform, ref.Channel} {
		if p == "" || strings.ContainsAny(p, "/\x00") {
			return ref, fmt.Errorf("chat reference %s/%s/%s: %w", ref.RequestID, ref.Platform, ref.Channel, access.ErrInvalid)
		}
	}
	key := s.chatRefKey(ref.RequestID, ref.Platform, ref.Channel)
	val, err := encode(ref)
	if err != nil {
		return ref, err
	}
	resp, err := s.txn(ctx, "put chat reference", []clientv3.Cmp{absent(key)}, []clientv3.Op{clientv3.OpPut(key, val)}, clientv3.OpGet(key))
	if err != nil {
		return ref, err
	}
	if resp.Succeeded {
		return ref, nil
	}
	var kept access.ChatRef
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		if err := decode(kvs[0], &kept); err != nil {
			return ref, err
		}
	}
	return kept, nil
}

// ChatRefs implements access.ChatStore; oldest first.
func (s *Store) ChatRefs(ctx context.Context, requestID, platform string) ([]access.ChatRef, error) {
	if strings.ContainsAny(requestID+platform, "/\x00") || requestID == "" || platform == "" {
		return nil, fmt.Errorf("chat references of %q on %q: %w", requestID, platform, access.ErrInvalid)
	}
	var out []access.ChatRef
	_, err := s.listObjs(ctx, "chat references", s.key(keyChatRefs, requestID, "/", platform, "/"), func(_ int64, dec func(any) error) error {
		var r access.ChatRef
		if err := dec(&r); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}
