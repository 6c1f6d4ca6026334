package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Leader identifies a won election: the leader key and its create
// revision, which changes whenever leadership changes hands.
type Leader struct {
	Name string
	Key  string
	Rev  int64
}

// Cmp is the transaction compare that holds only while this leadership
// lasts. Store writes made with a RunElected context include it already;
// code writing with Client() directly adds it to its own transactions.
func (l Leader) Cmp() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(l.Key), "=", l.Rev)
}

type leaderKey struct{}

// LeaderFrom returns the leadership carried by a RunElected context.
func LeaderFrom(ctx context.Context) (Leader, bool) {
	l, ok := ctx.Value(leaderKey{}).(Leader)
	return l, ok
}

// RunElected campaigns for leadership of name and runs fn while leader.
// fn's context ends when leadership is lost (session expired, leader key
// deleted) or ctx ends, and every Store write made with it is guarded by
// the leader key's revision, failing with ErrNotLeader once another
// replica took over. When fn returns, leadership is resigned and the
// campaign starts again. RunElected returns nil when ctx ends.
func (s *Store) RunElected(ctx context.Context, name string, fn func(ctx context.Context)) error {
	if err := checkName("election", name); err != nil {
		return err
	}
	log := s.log.With("election", name)
	wait := time.Second
	for ctx.Err() == nil {
		started := time.Now()
		err := s.leadOnce(ctx, name, fn)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			log.Warn("election round failed; retrying", "err", err, "in", wait)
		} else if time.Since(started) > time.Minute {
			wait = time.Second
		}
		// Also pace rounds where fn returned at once, so a failing fn
		// does not churn the election.
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		wait = min(2*wait, 30*time.Second)
	}
	return nil
}

func (s *Store) leadOnce(ctx context.Context, name string, fn func(context.Context)) error {
	ttl := int64(s.cfg.ElectionTTL / time.Second)
	gctx, cancel := s.opCtx(ctx)
	grant, err := s.client.Grant(gctx, ttl)
	cancel()
	if err != nil {
		return s.wrap(ctx, "election "+name+": grant lease", err)
	}
	// The session outlives ctx so that we can still revoke the lease (and
	// hand leadership over at once) after ctx ended.
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	sess, err := concurrency.NewSession(s.client, concurrency.WithLease(grant.ID),
		concurrency.WithTTL(int(ttl)), concurrency.WithContext(sctx))
	if err != nil {
		s.revoke(ctx, grant.ID)
		return s.wrap(ctx, "election "+name+": session", err)
	}
	defer func() {
		sess.Orphan()
		s.revoke(ctx, grant.ID)
	}()

	// Campaign does not notice an expired session by itself.
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	go func() {
		select {
		case <-sess.Done():
			ccancel()
		case <-cctx.Done():
		}
	}()
	host, _ := os.Hostname()
	e := concurrency.NewElection(sess, s.key(keyElection, name))
	if err := e.Campaign(cctx, fmt.Sprintf("%s/%d", host, os.Getpid())); err != nil {
		if ctx.Err() == nil && errors.Is(err, context.Canceled) {
			return fmt.Errorf("election %s: session lost while campaigning", name)
		}
		return s.wrap(ctx, "election "+name+": campaign", err)
	}
	l := Leader{Name: name, Key: e.Key(), Rev: e.Rev()}
	s.log.Info("elected", "election", name, "key", l.Key, "rev", l.Rev)

	lctx, lcancel := context.WithCancel(context.WithValue(ctx, leaderKey{}, l))
	defer lcancel()
	go func() {
		// Leadership also ends if someone deletes the key by hand.
		wch := s.client.Watch(lctx, l.Key, clientv3.WithRev(l.Rev+1), clientv3.WithFilterPut())
		select {
		case <-sess.Done():
			s.log.Warn("leadership lost: session ended", "election", name)
		case _, ok := <-wch:
			if ok {
				s.log.Warn("leadership lost: leader key deleted", "election", name)
			}
		case <-lctx.Done():
		}
		lcancel()
	}()
	fn(lctx)
	lcancel()

	rctx, rcancel := s.opCtx(context.WithoutCancel(ctx))
	defer rcancel()
	if err := e.Resign(rctx); err != nil {
		s.log.Warn("resign failed; leadership ends with the lease", "election", name, "err", err)
	}
	return nil
}

func (s *Store) revoke(ctx context.Context, id clientv3.LeaseID) {
	rctx, cancel := s.opCtx(context.WithoutCancel(ctx))
	defer cancel()
	if _, err := s.client.Revoke(rctx, id); err != nil {
		s.log.Debug("revoke election lease", "err", err)
	}
}
