package ca

import (
	"context"
	"errors"
	"fmt"

	"github.com/gatehouse-dev/gatehouse/access"
)

// A KEK rotation re-seals every sealed private key (each credential CA key,
// and the cluster TLS CA key) under a new key-encryption key. It runs on
// the host (accessd kek-rotate) while accessd serves: the replicas already
// run with the new KEK as ca.kek_file and the old one as
// ca.previous_kek_file, so they open records under either KEK throughout
// and seal new ones under the new KEK (README: "Rotating the
// key-encryption key").

// EventKEKRotated is the audit event of a KEK rotation run that re-sealed
// something (outcome failure when it stopped part way).
const EventKEKRotated = "ca.kek_rotated"

// kekRotatePasses bounds the passes over the store: the first re-seals,
// the next ones find records written meanwhile under the old KEK (by a
// replica that has not yet been restarted with the new one).
const kekRotatePasses = 3

// KEKRotationStore is what a KEK rotation reads and writes: every CA key
// set, the cluster state, the audit log.
type KEKRotationStore interface {
	access.CAKeyStore
	// ListCAKeys returns every CA key set with its revision.
	ListCAKeys(ctx context.Context) ([]access.CAKeySet, error)
	GetCluster(ctx context.Context) (access.ClusterState, error)
	UpdateCluster(ctx context.Context, cs access.ClusterState, events ...access.AuditEvent) (access.ClusterState, error)
	AppendAudit(ctx context.Context, events ...access.AuditEvent) error
}

// KEKRotation is what a rotation run did.
type KEKRotation struct {
	OldKEK, NewKEK string // KEK ids
	// Resealed counts the records (CA private keys, the cluster CA key)
	// this run moved from the old KEK to the new one; AlreadyNew those
	// that were under the new KEK when it came (an earlier run, or a
	// replica's new key).
	Resealed, AlreadyNew int
	// ClusterKey is what became of the cluster CA key: "resealed",
	// "already" (under the new KEK), "clear" (not sealed, left alone) or
	// "absent" (no cluster yet).
	ClusterKey string
}

// RotateKEK re-seals every sealed private key in st from the KEK from to
// the KEK to, one record per compare-and-swap write (retried on a
// concurrent change, so no issuance or rotation write is lost). Records
// already under to are checked to open and left as they are, so a run that
// was interrupted resumes, and a second run changes nothing.
//
// It first checks that every record opens under from or to and writes
// nothing when one does not (a wrong old KEK: ErrKEKMismatch naming the
// record, the KEK it names and the two given). After re-sealing it reads
// everything again, re-sealing what a replica still running with only the
// old KEK wrote meanwhile; when such records keep coming it stops with
// ErrConflict.
//
// A run that re-sealed something appends one ca.kek_rotated event with
// the counts and KEK ids (outcome failure when it stopped part way).
func RotateKEK(ctx context.Context, st KEKRotationStore, from, to KEK, actor string) (KEKRotation, error) {
	from, to = from.current(), to.current()
	r := KEKRotation{OldKEK: from.ID(), NewKEK: to.ID()}
	switch {
	case from.IsZero() || to.IsZero():
		return r, fmt.Errorf("%w: KEK rotation needs the old and the new key-encryption key", access.ErrInvalid)
	case r.OldKEK == r.NewKEK:
		return r, fmt.Errorf("%w: the old and the new key-encryption key are the same (KEK %s)", access.ErrInvalid, r.OldKEK)
	}
	if err := checkKEKRotation(ctx, st, from, to); err != nil {
		return r, fmt.Errorf("%w; nothing was changed", err)
	}
	var err error
	for pass := range kekRotatePasses {
		var moved int
		if moved, err = rotateKEKPass(ctx, st, from, to, &r, pass == 0); err != nil || moved == 0 {
			break
		}
		if pass == kekRotatePasses-1 {
			err = fmt.Errorf("records sealed under the old KEK %s keep appearing: a replica still runs with it as ca.kek_file; restart every replica with the new KEK as ca.kek_file and the old one as ca.previous_kek_file, then run this again: %w", r.OldKEK, access.ErrConflict)
		}
	}
	if r.Resealed > 0 {
		outcome, msg := "success", fmt.Sprintf("re-sealed %d private keys under KEK %s (were under KEK %s)", r.Resealed, r.NewKEK, r.OldKEK)
		if err != nil {
			outcome, msg = "failure", fmt.Sprintf("stopped after re-sealing %d private keys under KEK %s: %v", r.Resealed, r.NewKEK, err)
		}
		ev := access.AuditEvent{Type: EventKEKRotated, Actor: actor, Outcome: outcome, Source: "kek-rotate", Message: msg,
			Fields: map[string]any{"old_kek": r.OldKEK, "new_kek": r.NewKEK, "resealed": r.Resealed, "already_new": r.AlreadyNew, "cluster_key": r.ClusterKey}}
		if aerr := st.AppendAudit(ctx, ev); aerr != nil && err == nil {
			err = fmt.Errorf("every key is re-sealed, but the audit event was not written: %w", aerr)
		}
	}
	if err != nil && r.Resealed > 0 {
		err = fmt.Errorf("%w (%d re-sealed so far; run it again to finish)", err, r.Resealed)
	}
	return r, err
}

// checkKEKRotation opens every record under from or to, writing nothing.
func checkKEKRotation(ctx context.Context, st KEKRotationStore, from, to KEK) error {
	sets, err := st.ListCAKeys(ctx)
	if err != nil {
		return err
	}
	for _, set := range sets {
		if _, _, _, err := resealSet(st.CAKeyPath(set.Type, set.Resource), set, from, to); err != nil {
			return err
		}
	}
	cs, err := st.GetCluster(ctx)
	if errors.Is(err, access.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if ClusterKeySealed(cs) {
		if _, _, err := ResealClusterKey(cs, from, to); err != nil {
			return err
		}
	}
	return nil
}

// rotateKEKPass re-seals what is not yet under to and returns how many
// records it moved. The first pass counts what it finds under to in r;
// later ones only add what they move.
func rotateKEKPass(ctx context.Context, st KEKRotationStore, from, to KEK, r *KEKRotation, first bool) (int, error) {
	sets, err := st.ListCAKeys(ctx)
	if err != nil {
		return 0, err
	}
	moved := 0
	for _, set := range sets {
		n, already, err := resealCAKeys(ctx, st, set, from, to)
		if errors.Is(err, access.ErrNotFound) { // deleted since the list
			continue
		}
		moved += n
		r.Resealed += n
		if first {
			r.AlreadyNew += already
		}
		if err != nil {
			return moved, err
		}
	}
	n, err := resealClusterKeyCAS(ctx, st, from, to, r, first)
	moved += n
	return moved, err
}

// resealClusterKeyCAS re-seals the cluster CA key in a compare-and-swap on
// the cluster state, reading it again when it changed meanwhile.
func resealClusterKeyCAS(ctx context.Context, st KEKRotationStore, from, to KEK, r *KEKRotation, first bool) (int, error) {
	for range resealAttempts {
		cs, err := st.GetCluster(ctx)
		if errors.Is(err, access.ErrNotFound) {
			r.ClusterKey = "absent"
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		if !ClusterKeySealed(cs) {
			r.ClusterKey = "clear"
			return 0, nil
		}
		next, changed, err := ResealClusterKey(cs, from, to)
		if err != nil {
			return 0, err
		}
		if !changed {
			if first {
				r.ClusterKey = "already"
				r.AlreadyNew++
			}
			return 0, nil
		}
		_, err = st.UpdateCluster(ctx, next)
		if errors.Is(err, access.ErrConflict) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("cluster CA key: re-seal: %w", err)
		}
		r.ClusterKey = "resealed"
		r.Resealed++
		return 1, nil
	}
	return 0, fmt.Errorf("cluster CA key: re-seal: the cluster state kept changing: %w", access.ErrConflict)
}
