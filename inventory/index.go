// Package inventory is the in-memory search index of resources behind
// `access request search` and GET /v1/search. It is fed by the store's
// resource watch (see Run) and answers searches without touching etcd, so a
// search costs one scan of one kind and never a round trip.
//
// Concurrency: searches never take a lock. The index publishes immutable
// snapshots through an atomic pointer and each Apply builds the next snapshot
// copy-on-write. That keeps a slow permission callback (Query.Allow) or a
// large result from ever delaying the watch, and keeps a burst of watch
// events from ever delaying a search.
package inventory

import (
	"cmp"
	"maps"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
)

// Chunk sizes. Each kind keeps its entries sorted by name in a list of
// chunks rather than one slice, so that copy-on-write of a single put or
// delete copies one chunk and the chunk list (some 20 KB at 100,000
// resources) instead of the whole kind (8 MB of pointers and signatures),
// while a search still walks contiguous, name-ordered arrays.
const (
	// maxChunk is the size past which a chunk splits in two. A chunk holds
	// 80 bytes per entry (pointer and signatures): 256 keeps the copy a put
	// makes near 15 KB.
	maxChunk = 256
	// fillChunk is how full Reset and splits leave chunks, so that the next
	// inserts do not split at once.
	fillChunk = maxChunk / 2
	// mergeBelow: a chunk that shrinks below this after a delete merges with
	// a neighbour, so deletes cannot leave a long list of tiny chunks.
	mergeBelow = maxChunk / 4
)

// sep separates the fields of a haystack, so that a word never matches
// across the end of one field and the start of the next.
const sep = '\x00'

// entry is one indexed resource. Entries are immutable once published: a put
// makes a new entry, which is what lets searches run without locks.
type entry struct {
	// hay is the lowercased searchable text (name, hostname, addr, uri,
	// public_addr, description, label keys and values), computed once here so
	// that a search does no per-resource lowercasing or allocation.
	hay string
	res access.Resource // private copy; its Labels map is never written
}

// sig is what the prefilters know of an entry (see filter.go).
type sig struct {
	labels uint64 // label pairs
	grams  grams  // byte pairs of hay
}

// sign computes e's prefilter signatures from its hay and labels.
func (e *entry) sign() sig {
	s := sig{labels: labelSig(e.res.Metadata.Labels)}
	s.grams.add(e.hay)
	return s
}

func (e *entry) name() string { return e.res.Metadata.Name }

// chunk is a run of entries in name order with their signatures beside them
// in flat arrays: labels[i] is the label signature of entries[i], and
// grams[w][i] is word w of its bigram signature. A search reads signatures
// of every entry but the entries themselves only of the few that pass, so
// keeping the signatures contiguous makes the scan a sequential read rather
// than a cache miss per resource. Storing the bigram words by column lets a
// words search read the one or two columns that reject most entries (8 or
// 16 bytes per resource) instead of all 64 bytes of every signature; the
// scan is bound by memory bandwidth, so that is what it costs.
type chunk struct {
	entries []*entry
	labels  []uint64
	grams   [gramWords][]uint64
}

// len is nil-safe: a missing neighbour has no entries.
func (c *chunk) len() int {
	if c == nil {
		return 0
	}
	return len(c.entries)
}

// makeChunk returns an empty chunk with room for n entries. The gram
// columns share one array.
func makeChunk(n int) *chunk {
	c := &chunk{entries: make([]*entry, 0, n), labels: make([]uint64, 0, n)}
	cols := make([]uint64, gramWords*n)
	for w := range c.grams {
		c.grams[w] = cols[w*n : w*n : (w+1)*n]
	}
	return c
}

// appendRange appends src's entries [lo:hi) and their signatures.
func (c *chunk) appendRange(src *chunk, lo, hi int) {
	c.entries = append(c.entries, src.entries[lo:hi]...)
	c.labels = append(c.labels, src.labels[lo:hi]...)
	for w := range c.grams {
		c.grams[w] = append(c.grams[w], src.grams[w][lo:hi]...)
	}
}

func (c *chunk) appendEntry(e *entry, s *sig) {
	c.entries = append(c.entries, e)
	c.labels = append(c.labels, s.labels)
	for w := range c.grams {
		c.grams[w] = append(c.grams[w], s.grams[w])
	}
}

// set replaces entry i and its signatures.
func (c *chunk) set(i int, e *entry, s *sig) {
	c.entries[i], c.labels[i] = e, s.labels
	for w := range c.grams {
		c.grams[w][i] = s.grams[w]
	}
}

// slice returns c[lo:hi] with full slice expressions, so that appending to
// one part can never write into another.
func (c *chunk) slice(lo, hi int) *chunk {
	out := &chunk{entries: c.entries[lo:hi:hi], labels: c.labels[lo:hi:hi]}
	for w := range c.grams {
		out.grams[w] = c.grams[w][lo:hi:hi]
	}
	return out
}

// gramsOf returns the bigram signature of entry i.
func (c *chunk) gramsOf(i int) grams {
	var g grams
	for w := range g {
		g[w] = c.grams[w][i]
	}
	return g
}

// kindSet holds the resources of one kind. It is immutable once published.
type kindSet struct {
	// chunks are non-empty and sorted by name, and every name in chunks[i]
	// sorts before every name in chunks[i+1].
	chunks []*chunk
	n      int
}

// snapshot is one published version of the whole index.
type snapshot struct {
	kinds map[string]*kindSet // never written after publication
	rev   int64
	n     int
}

// Index is the resource search index. It is safe for concurrent use by many
// searchers and one writer (Apply calls are serialized as well, so more
// writers are merely pointless, not unsafe).
type Index struct {
	cur atomic.Pointer[snapshot]
	mu  sync.Mutex // serializes writers; searches never take it

	ready     chan struct{}
	readyOnce sync.Once

	// Retry delays of Run; fields rather than constants so tests can make
	// them short.
	retryMin, retryMax time.Duration
	// stableAfter: a watch that lived at least this long counts as healthy,
	// so its end starts the backoff over from retryMin.
	stableAfter time.Duration
}

// New returns an empty index that is not ready yet.
func New() *Index {
	ix := &Index{
		ready:       make(chan struct{}),
		retryMin:    100 * time.Millisecond,
		retryMax:    5 * time.Second,
		stableAfter: 10 * time.Second,
	}
	ix.cur.Store(&snapshot{kinds: map[string]*kindSet{}})
	return ix
}

// Ready is closed after the first full load: the first list Run applies, or
// any EventReset given to Apply (which is also a full load, and lets code
// that feeds the index by hand, tests mostly, do without Run). Search works
// before that but sees an empty or partial index, so servers should wait
// for it before answering searches.
func (ix *Index) Ready() <-chan struct{} { return ix.ready }

func (ix *Index) markReady() { ix.readyOnce.Do(func() { close(ix.ready) }) }

// Revision is the store revision of the last applied event.
func (ix *Index) Revision() int64 { return ix.cur.Load().rev }

// Len is the number of indexed resources of all kinds.
func (ix *Index) Len() int { return ix.cur.Load().n }

// Apply applies one watch event. EventPut inserts or replaces the resource
// with the same kind and name, EventDelete removes it (a missing one is not
// an error: the event may repeat what a reset already showed), EventReset
// replaces everything with ev.Snapshot. Every event records ev.Revision.
//
// Resources with an empty kind or name cannot be searched for and are
// skipped; events of an unknown type are ignored entirely, so that a newer
// store cannot corrupt an older index.
func (ix *Index) Apply(ev access.ResourceEvent) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	old := ix.cur.Load()
	var next *snapshot
	switch ev.Type {
	case access.EventPut:
		r := ev.Resource
		if r.Kind == "" || r.Metadata.Name == "" {
			next = old.withRev(ev.Revision)
			break
		}
		ks, delta := old.kinds[r.Kind].put(newEntry(r))
		next = old.with(r.Kind, ks, delta, ev.Revision)
	case access.EventDelete:
		r := ev.Resource
		ks, removed := old.kinds[r.Kind].del(r.Metadata.Name)
		if !removed {
			next = old.withRev(ev.Revision)
			break
		}
		next = old.with(r.Kind, ks, -1, ev.Revision)
	case access.EventReset:
		next = buildSnapshot(ev.Snapshot, ev.Revision)
		defer ix.markReady() // after the Store below
	default:
		return
	}
	ix.cur.Store(next)
}

// withRev returns s with another revision and the same contents.
func (s *snapshot) withRev(rev int64) *snapshot {
	return &snapshot{kinds: s.kinds, rev: rev, n: s.n}
}

// with returns s with kind replaced by ks (nil removes the kind). Copying
// the map of (at most five) kinds is what keeps published snapshots
// immutable.
func (s *snapshot) with(kind string, ks *kindSet, delta int, rev int64) *snapshot {
	kinds := maps.Clone(s.kinds)
	if ks == nil {
		delete(kinds, kind)
	} else {
		kinds[kind] = ks
	}
	return &snapshot{kinds: kinds, rev: rev, n: s.n + delta}
}

// find locates name: the chunk it is in or belongs in, its position there,
// and whether it is present. ks must have at least one chunk.
func (ks *kindSet) find(name string) (ci, pos int, found bool) {
	// The first chunk whose last name is >= name; past the end, the name
	// sorts after everything and belongs at the end of the last chunk.
	ci, _ = slices.BinarySearchFunc(ks.chunks, name, func(c *chunk, name string) int {
		return strings.Compare(c.entries[len(c.entries)-1].name(), name)
	})
	if ci == len(ks.chunks) {
		ci--
		return ci, ks.chunks[ci].len(), false
	}
	pos, found = slices.BinarySearchFunc(ks.chunks[ci].entries, name, func(e *entry, name string) int {
		return strings.Compare(e.name(), name)
	})
	return ci, pos, found
}

// put returns a new kindSet with e inserted or replacing the entry of the
// same name, and how much the count grew (0 or 1). ks may be nil.
func (ks *kindSet) put(e *entry) (*kindSet, int) {
	sg := e.sign()
	if ks == nil || len(ks.chunks) == 0 {
		c := makeChunk(1)
		c.appendEntry(e, &sg)
		return &kindSet{chunks: []*chunk{c}, n: 1}, 1
	}
	ci, pos, found := ks.find(e.name())
	old := ks.chunks[ci]
	if found {
		c := makeChunk(old.len())
		c.appendRange(old, 0, old.len())
		c.set(pos, e, &sg)
		return &kindSet{chunks: replaceChunks(ks.chunks, ci, ci+1, c), n: ks.n}, 0
	}
	c := makeChunk(old.len() + 1)
	c.appendRange(old, 0, pos)
	c.appendEntry(e, &sg)
	c.appendRange(old, pos, old.len())
	if c.len() <= maxChunk {
		return &kindSet{chunks: replaceChunks(ks.chunks, ci, ci+1, c), n: ks.n + 1}, 1
	}
	// Split into two chunks of their own rather than two halves of c: the
	// half not written next would otherwise keep all of c alive.
	half := c.len() / 2
	left, right := makeChunk(half), makeChunk(c.len()-half)
	left.appendRange(c, 0, half)
	right.appendRange(c, half, c.len())
	return &kindSet{chunks: replaceChunks(ks.chunks, ci, ci+1, left, right), n: ks.n + 1}, 1
}

// del returns a new kindSet without name (nil once the kind is empty), and
// whether name was there; when it was not, ks itself is returned.
func (ks *kindSet) del(name string) (*kindSet, bool) {
	if ks == nil || len(ks.chunks) == 0 {
		return ks, false
	}
	ci, pos, found := ks.find(name)
	if !found {
		return ks, false
	}
	if ks.n == 1 {
		return nil, true
	}
	old := ks.chunks[ci]
	if old.len() == 1 {
		return &kindSet{chunks: replaceChunks(ks.chunks, ci, ci+1), n: ks.n - 1}, true
	}
	lo, hi := ci, ci+1
	// Merge with the smaller neighbour if the result still fits.
	var left, right *chunk
	if ci > 0 {
		left = ks.chunks[ci-1]
	}
	if ci+1 < len(ks.chunks) {
		right = ks.chunks[ci+1]
	}
	size := old.len() - 1
	mergeRight, mergeLeft := false, false
	if size < mergeBelow {
		switch {
		case right.len() > 0 && (left.len() == 0 || right.len() <= left.len()) && size+right.len() <= maxChunk:
			mergeRight = true
		case left.len() > 0 && size+left.len() <= maxChunk:
			mergeLeft = true
		}
	}
	n := size
	if mergeRight {
		n += right.len()
	}
	if mergeLeft {
		n += left.len()
	}
	c := makeChunk(n)
	if mergeLeft {
		c.appendRange(left, 0, left.len())
		lo--
	}
	c.appendRange(old, 0, pos)
	c.appendRange(old, pos+1, old.len())
	if mergeRight {
		c.appendRange(right, 0, right.len())
		hi++
	}
	return &kindSet{chunks: replaceChunks(ks.chunks, lo, hi, c), n: ks.n - 1}, true
}

// replaceChunks returns a new chunk list: chunks with [lo:hi) replaced by
// repl. It never writes to chunks, which a published snapshot may share.
func replaceChunks(chunks []*chunk, lo, hi int, repl ...*chunk) []*chunk {
	out := make([]*chunk, 0, len(chunks)-(hi-lo)+len(repl))
	out = append(out, chunks[:lo]...)
	out = append(out, repl...)
	return append(out, chunks[hi:]...)
}

// newEntry copies r (including its labels, which the caller may go on
// changing) and computes its haystack.
func newEntry(r access.Resource) *entry {
	r.Metadata.Labels = maps.Clone(r.Metadata.Labels)
	return &entry{res: r, hay: string(appendHay(nil, &r))}
}

// buildSnapshot builds a whole index from a full list.
//
// It is laid out for the scan and for the garbage collector rather than
// built by repeated puts: the entries of one kind live in one slab, in name
// order, and their strings (fields and haystacks) are slices of one string
// per kind, so a search walks memory mostly sequentially and the collector
// marks a few large objects instead of half a dozen small ones per resource.
// (A slab stays alive until its last entry is replaced; at worst that
// doubles the index's memory until the next reset.)
func buildSnapshot(list []access.Resource, rev int64) *snapshot {
	byKind := map[string][]int{}
	for i := range list {
		r := &list[i]
		if r.Kind == "" || r.Metadata.Name == "" {
			continue
		}
		byKind[r.Kind] = append(byKind[r.Kind], i)
	}
	s := &snapshot{kinds: make(map[string]*kindSet, len(byKind)), rev: rev}
	// Label keys and most values repeat across thousands of resources
	// ("env", "prod"), as do kinds, versions and protocols. Interning them
	// shares one copy, which saves memory and keeps the strings that label
	// filters and Allow callbacks compare in cache.
	interned := map[string]string{}
	intern := func(s string) string {
		if c, ok := interned[s]; ok {
			return c
		}
		c := strings.Clone(s)
		interned[c] = c
		return c
	}
	var a arena
	for kind, idx := range byKind {
		// Stable sort, then keep the last of equal names: a list that names a
		// resource twice ends as the same puts in order would.
		slices.SortStableFunc(idx, func(a, b int) int {
			return strings.Compare(list[a].Metadata.Name, list[b].Metadata.Name)
		})
		w := 0
		for i, j := range idx {
			if i+1 < len(idx) && list[idx[i+1]].Metadata.Name == list[j].Metadata.Name {
				continue
			}
			idx[w] = j
			w++
		}
		idx = idx[:w]

		slab := make([]entry, len(idx))
		a.reset()
		for i, j := range idx {
			e := &slab[i]
			e.res = list[j]
			r := &e.res
			r.Kind, r.Version, r.Spec.Protocol = intern(r.Kind), intern(r.Version), intern(r.Spec.Protocol)
			if src := r.Metadata.Labels; src != nil {
				m := make(map[string]string, len(src))
				for k, v := range src {
					m[intern(k)] = intern(v)
				}
				r.Metadata.Labels = m
			}
			for _, f := range [...]*string{
				&r.Metadata.Name, &r.Metadata.Description,
				&r.Spec.Hostname, &r.Spec.Addr, &r.Spec.URI, &r.Spec.PublicAddr,
				&r.Spec.Server, &r.Spec.CAPEM, &r.Spec.Domain,
			} {
				a.addString(f)
			}
			a.buf = appendHay(a.buf, r)
			a.add(&e.hay)
		}
		a.flush()

		// One array each for the kind's entry pointers and signatures,
		// cut into chunks. (Like the slab, they stay alive until the last
		// chunk cut from them is replaced.)
		all := makeChunk(len(slab))
		for i := range slab {
			sg := slab[i].sign()
			all.appendEntry(&slab[i], &sg)
		}
		ks := &kindSet{n: len(slab), chunks: make([]*chunk, 0, (len(slab)+fillChunk-1)/fillChunk)}
		for lo := 0; lo < len(slab); lo += fillChunk {
			ks.chunks = append(ks.chunks, all.slice(lo, min(lo+fillChunk, len(slab))))
		}
		s.kinds[kind] = ks
		s.n += ks.n
	}
	return s
}

// arena packs many strings into one allocation: pieces are appended to buf
// and each is registered with the string variable that should end up
// pointing at it; flush makes one string of buf and points them all into
// it. The variables must stay put until flush (they live in a slab).
type arena struct {
	buf  []byte
	dst  []*string
	ends []int
}

func (a *arena) reset() {
	a.buf, a.dst, a.ends = a.buf[:0], a.dst[:0], a.ends[:0]
}

// add registers the bytes appended to buf since the previous piece.
func (a *arena) add(dst *string) {
	a.dst = append(a.dst, dst)
	a.ends = append(a.ends, len(a.buf))
}

// addString moves *p into the arena; empty strings stay as they are.
func (a *arena) addString(p *string) {
	if *p == "" {
		return
	}
	a.buf = append(a.buf, *p...)
	a.add(p)
}

func (a *arena) flush() {
	all := string(a.buf)
	start := 0
	for i, p := range a.dst {
		*p = all[start:a.ends[i]]
		start = a.ends[i]
	}
	// Do not keep pointers into the slab alive from a reused arena.
	clear(a.dst)
}

// appendHay appends r's lowercased searchable fields to buf, each preceded
// by sep.
func appendHay(buf []byte, r *access.Resource) []byte {
	field := func(s string) {
		if s != "" {
			buf = append(buf, sep)
			buf = appendLower(buf, s)
		}
	}
	field(r.Metadata.Name)
	field(r.Spec.Hostname)
	field(r.Spec.Addr)
	field(r.Spec.URI)
	field(r.Spec.PublicAddr)
	field(r.Metadata.Description)
	for k, v := range r.Metadata.Labels {
		field(k)
		field(v)
	}
	return buf
}

// appendLower appends s lowercased, without allocating for ASCII text.
func appendLower(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return append(buf, strings.ToLower(s)...)
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf = append(buf, c)
	}
	return buf
}

// Query is a resource search.
type Query struct {
	// Kind is required: one of the five resource kinds. Searches never mix
	// kinds, so an empty kind finds nothing.
	Kind string
	// Words must each appear, as a case-insensitive substring, in the name,
	// hostname, addr, uri, public_addr, description or a label key or value.
	// A word may contain spaces ("iot gateway") but matches within a single
	// field. Empty words are ignored.
	Words []string
	// Labels must all match exactly (key and value, case-sensitive).
	Labels map[string]string
	// Allow is the permission filter (the caller's search_as_roles); nil
	// allows everything. It runs last, after the cheap filters, with no lock
	// held, and sees the index's own copy: it must not modify Labels.
	Allow func(access.Resource) bool
	// Limit caps the number of results; 0 means no limit. Because the index
	// is kept in name order, a limited search stops at the Limit-th match.
	Limit int
}

type label struct{ k, v string }

// Search returns the resources of q.Kind that match q, sorted by name. The
// results are deep copies the caller may keep and modify. It returns an
// empty, non-nil slice when nothing matches, so that JSON encodes [].
func (ix *Index) Search(q Query) []access.Resource {
	hits := ix.match(q)
	out := make([]access.Resource, len(hits))
	for i, e := range hits {
		out[i] = e.res
		out[i].Metadata.Labels = maps.Clone(e.res.Metadata.Labels)
	}
	return out
}

// SearchShared is Search without the copies: it returns the index's own
// resources, labels maps included. They never change (a put replaces an
// entry rather than writing to it), so the caller may keep them, but it must
// never modify them, and every later search would see the change if it
// did. It is for answers that are only read, such as the JSON of GET
// /v1/search, where copying 1,000 labels maps cost more than finding them.
func (ix *Index) SearchShared(q Query) []*access.Resource {
	hits := ix.match(q)
	out := make([]*access.Resource, len(hits))
	for i, e := range hits {
		out[i] = &e.res
	}
	return out
}

// match returns the entries that match q, in name order.
func (ix *Index) match(q Query) []*entry {
	ks := ix.cur.Load().kinds[q.Kind]
	if ks == nil {
		return nil
	}
	// Everything per query is prepared here so the loop below does no
	// allocation, no lowercasing and no map iteration per resource.
	words := make([]string, 0, len(q.Words))
	for _, w := range q.Words {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		if strings.IndexByte(w, sep) >= 0 {
			// The separator marks field boundaries in the haystack, so such
			// a word could match across two fields. No sensible search
			// contains a NUL byte: it matches nothing.
			return nil
		}
		words = append(words, strings.ToLower(w))
	}
	var wantGrams grams
	for _, w := range words {
		wantGrams.add(w)
	}
	// The words of the signature to check, fullest first: the more bits a
	// word needs, the likelier it rejects an entry without the others
	// being read.
	type gramWord struct {
		w    int
		bits uint64
	}
	var checks [gramWords]gramWord
	nchecks := 0
	for w, word := range wantGrams {
		if word != 0 {
			checks[nchecks] = gramWord{w, word}
			nchecks++
		}
	}
	slices.SortFunc(checks[:nchecks], func(a, b gramWord) int {
		return cmp.Compare(bits.OnesCount64(b.bits), bits.OnesCount64(a.bits))
	})
	labels := make([]label, 0, len(q.Labels))
	var wantLabels uint64
	for k, v := range q.Labels {
		labels = append(labels, label{k, v})
		wantLabels |= labelBits(k, v)
	}
	// Longer words first: they are the likelier to fail, which ends the
	// check for that resource sooner.
	slices.SortFunc(words, func(a, b string) int { return cmp.Compare(len(b), len(a)) })

	// Collect matches as pointers: growing a slice of 8-byte pointers is far
	// cheaper than growing one of whole resources, and Search then allocates
	// its copies once at their exact size.
	var hits []*entry
scan:
	for _, c := range ks.chunks {
		labelSigs := c.labels
		entries := c.entries[:len(labelSigs)]
	entry:
		for i, ls := range labelSigs {
			if ls&wantLabels != wantLabels {
				continue
			}
			for _, g := range checks[:nchecks] {
				if c.grams[g.w][i]&g.bits != g.bits {
					continue entry
				}
			}
			e := entries[i]
			if !hasLabels(e.res.Metadata.Labels, labels) || !hasWords(e.hay, words) {
				continue
			}
			if q.Allow != nil && !q.Allow(e.res) {
				continue
			}
			hits = append(hits, e)
			if q.Limit > 0 && len(hits) >= q.Limit {
				break scan
			}
		}
	}
	return hits
}

func hasLabels(have map[string]string, want []label) bool {
	for _, l := range want {
		if v, ok := have[l.k]; !ok || v != l.v {
			return false
		}
	}
	return true
}

func hasWords(hay string, words []string) bool {
	for _, w := range words {
		if !strings.Contains(hay, w) {
			return false
		}
	}
	return true
}
