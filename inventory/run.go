package inventory

import (
	"context"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
)

// Source is what feeds the index; the etcd store implements both methods
// (see access.ObjectStore for their contracts).
type Source interface {
	// ListResources returns every resource and the revision of the read.
	ListResources(ctx context.Context) ([]access.Resource, int64, error)
	// WatchResources streams changes after fromRev; the channel closes when
	// ctx ends or the watch breaks.
	WatchResources(ctx context.Context, fromRev int64) <-chan access.ResourceEvent
}

// Run loads the full list, marks the index ready, then applies watch events
// until ctx ends. When the watch channel closes while ctx is alive (etcd
// restarted, the member lost quorum) it lists and watches again: the fresh
// list is applied as a reset, so whatever the broken watch missed, deletes
// included, is corrected. Failed lists and short-lived watches are retried
// with exponential backoff so a flapping store is not hammered. It returns
// ctx.Err().
//
// Until the first list succeeds the index stays empty and Ready stays open;
// list errors are not returned because the only useful reaction, retrying,
// is what Run does.
func (ix *Index) Run(ctx context.Context, src Source) error {
	delay := ix.retryMin
	backoff := func() bool {
		t := time.NewTimer(delay)
		defer t.Stop()
		delay = min(2*delay, ix.retryMax)
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for ctx.Err() == nil {
		list, rev, err := src.ListResources(ctx)
		if err != nil {
			if !backoff() {
				break
			}
			continue
		}
		// Applying the list as a reset also marks the index ready.
		ix.Apply(access.ResourceEvent{Type: access.EventReset, Snapshot: list, Revision: rev})

		started := time.Now()
		if !ix.follow(ctx, src, rev) {
			break
		}
		if time.Since(started) >= ix.stableAfter {
			delay = ix.retryMin
		}
		if !backoff() {
			break
		}
	}
	return ctx.Err()
}

// follow applies events of one watch from rev until its channel closes
// (true) or ctx ends (false). The watch gets its own context so that it is
// released even when we return before the source closes the channel.
func (ix *Index) follow(ctx context.Context, src Source, rev int64) bool {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := src.WatchResources(wctx, rev)
	for {
		select {
		case <-ctx.Done():
			return false
		case ev, ok := <-events:
			if !ok {
				return ctx.Err() == nil
			}
			ix.Apply(ev)
		}
	}
}
