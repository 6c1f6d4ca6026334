package store

import (
	"context"
	"fmt"

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
