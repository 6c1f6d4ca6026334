package store

import (
	"context"
	"errors"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse-dev/gatehouse/access"
)

// watchBuffer decouples a slow consumer from the etcd stream a little.
const watchBuffer = 64

// Watch retry backoff when the stream ends without ctx ending.
const (
	watchBackoffMin = 100 * time.Millisecond
	watchBackoffMax = 5 * time.Second
)

// fromNow turns fromRev 0 ("from now") into the store's revision at the
// call, so that a write made after the Watch call returns is never missed
// while the stream is still being set up. If etcd cannot say, 0 stays and
// the watch starts from whenever its stream is created.
func (s *Store) fromNow(ctx context.Context, prefix string, fromRev int64) int64 {
	if fromRev != 0 {
		return fromRev
	}
	resp, err := s.get(ctx, "watch: read current revision", prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		s.log.Warn("watch from now: starting from the stream's creation instead", "err", err)
		return 0
	}
	return resp.Header.Revision
}

// WatchRequests implements access.RequestStore.
func (s *Store) WatchRequests(ctx context.Context, fromRev int64) <-chan access.RequestEvent {
	out := make(chan access.RequestEvent, watchBuffer)
	send := func(ev access.RequestEvent) bool {
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	prefix := s.key(keyRequests)
	fromRev = s.fromNow(ctx, prefix, fromRev)
	go func() {
		defer close(out)
		s.watchPrefix(ctx, "requests", prefix, fromRev,
			func(ev *clientv3.Event) bool {
				id := strings.TrimPrefix(string(ev.Kv.Key), prefix)
				if ev.Type == mvccpb.DELETE {
					r := access.Request{ID: id}
					if ev.PrevKv != nil {
						if prev, err := decodeRequest(ev.PrevKv); err == nil {
							r = prev
						}
					}
					return send(access.RequestEvent{Type: access.EventDelete, Request: r, Revision: ev.Kv.ModRevision})
				}
				r, err := decodeRequest(ev.Kv)
				if err != nil {
					s.log.Warn("watch requests: skipping undecodable request", "key", string(ev.Kv.Key), "err", err)
					return true
				}
				return send(access.RequestEvent{Type: access.EventPut, Request: r, Revision: ev.Kv.ModRevision})
			},
			func(kvs []*mvccpb.KeyValue, rev int64) bool {
				snap := make([]access.Request, 0, len(kvs))
				for _, kv := range kvs {
					r, err := decodeRequest(kv)
					if err != nil {
						s.log.Warn("watch requests: skipping undecodable request", "key", string(kv.Key), "err", err)
						continue
					}
					snap = append(snap, r)
				}
				return send(access.RequestEvent{Type: access.EventReset, Snapshot: snap, Revision: rev})
			})
	}()
	return out
}

// WatchResources implements access.ObjectStore.
func (s *Store) WatchResources(ctx context.Context, fromRev int64) <-chan access.ResourceEvent {
	out := make(chan access.ResourceEvent, watchBuffer)
	send := func(ev access.ResourceEvent) bool {
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	prefix := s.key(keyResources)
	decodeResource := func(kv *mvccpb.KeyValue) (access.Resource, error) {
		var r access.Resource
		err := decode(kv, &r)
		r.Metadata.Revision = kv.ModRevision
		return r, err
	}
	fromRev = s.fromNow(ctx, prefix, fromRev)
	go func() {
		defer close(out)
		s.watchPrefix(ctx, "resources", prefix, fromRev,
			func(ev *clientv3.Event) bool {
				if ev.Type == mvccpb.DELETE {
					kind, name, _ := splitResourceKey(strings.TrimPrefix(string(ev.Kv.Key), prefix))
					r := access.Resource{Kind: kind, Metadata: access.Metadata{Name: name}}
					if ev.PrevKv != nil {
						if prev, err := decodeResource(ev.PrevKv); err == nil {
							r = prev
						}
					}
					return send(access.ResourceEvent{Type: access.EventDelete, Resource: r, Revision: ev.Kv.ModRevision})
				}
				r, err := decodeResource(ev.Kv)
				if err != nil {
					s.log.Warn("watch resources: skipping undecodable resource", "key", string(ev.Kv.Key), "err", err)
					return true
				}
				return send(access.ResourceEvent{Type: access.EventPut, Resource: r, Revision: ev.Kv.ModRevision})
			},
			func(kvs []*mvccpb.KeyValue, rev int64) bool {
				snap := make([]access.Resource, 0, len(kvs))
				for _, kv := range kvs {
					r, err := decodeResource(kv)
					if err != nil {
						s.log.Warn("watch resources: skipping undecodable resource", "key", string(kv.Key), "err", err)
						continue
					}
					snap = append(snap, r)
				}
				return send(access.ResourceEvent{Type: access.EventReset, Snapshot: snap, Revision: rev})
			})
	}()
	return out
}

// watchPrefix follows prefix from fromRev+1 (fromRev <= 0: from now) until
// ctx ends, calling onEvent for each change in revision order. It survives
// a closed stream by resuming after the last revision it delivered, and a
// compaction by reading the prefix again and handing it to onReset: the
// events in between are gone, so skipping ahead would silently lose them.
// The callbacks return false when ctx ended.
func (s *Store) watchPrefix(ctx context.Context, what, prefix string, fromRev int64,
	onEvent func(*clientv3.Event) bool, onReset func([]*mvccpb.KeyValue, int64) bool) {
	next := int64(0) // next revision to deliver; 0 until known ("from now")
	if fromRev > 0 {
		next = fromRev + 1
	}
	wait := watchBackoffMin
	sleep := func() bool {
		t := time.NewTimer(wait)
		defer t.Stop()
		wait = min(2*wait, watchBackoffMax)
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	log := s.log.With("watch", what)
	for ctx.Err() == nil {
		opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithPrevKV(),
			clientv3.WithCreatedNotify(), clientv3.WithProgressNotify()}
		if next > 0 {
			opts = append(opts, clientv3.WithRev(next))
		}
		// WithRequireLeader ends the stream when this member loses its
		// leader, instead of silently serving nothing from a partition.
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		compacted := false
		var werr error
		for resp := range s.client.Watch(wctx, prefix, opts...) {
			if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
				compacted = true
				break
			}
			if err := resp.Err(); err != nil {
				werr = err
				break
			}
			if resp.Created && next == 0 {
				next = resp.Header.Revision + 1
			}
			if resp.IsProgressNotify() && resp.Header.Revision >= next {
				next = resp.Header.Revision + 1
			}
			for _, ev := range resp.Events {
				if !onEvent(ev) {
					cancel()
					return
				}
				next = ev.Kv.ModRevision + 1
			}
			wait = watchBackoffMin
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		if compacted {
			log.Warn("watch fell behind a compaction; re-reading", "from_rev", next)
			resp, err := s.get(ctx, "watch "+what+": re-read after compaction", prefix, clientv3.WithPrefix())
			if err != nil {
				// next still points into the compacted range, so the next
				// attempt lands here again and retries the read.
				log.Warn("watch re-read failed", "err", err)
				if !sleep() {
					return
				}
				continue
			}
			if !onReset(resp.Kvs, resp.Header.Revision) {
				return
			}
			next = resp.Header.Revision + 1
			continue
		}
		log.Warn("watch stream ended; resuming", "from_rev", next, "err", werr)
		if !sleep() {
			return
		}
	}
}
