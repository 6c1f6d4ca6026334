package access

import (
	"container/heap"
	"time"
)

// ExpiryDue returns when r can next be moved to EXPIRED: its pending
// expiry while PENDING, its access expiry while APPROVED. A request in any
// other state (or approved without an access expiry) has nothing due, and
// ok is false. It mirrors Expire: r.Expire(now) changes r exactly when ok
// and !now.Before(due).
func (r *Request) ExpiryDue() (due time.Time, ok bool) {
	switch {
	case r.State == StatePending:
		return r.PendingExpires, true
	case r.State == StateApproved && r.AccessExpires != nil:
		return *r.AccessExpires, true
	}
	return time.Time{}, false
}

// Schedule holds one due time per id and finds the earliest in O(1);
// setting, moving and removing an id cost O(log n). Ids due at the same
// time come out in id order, so a schedule reads the same every run. The
// zero value is empty and ready to use; a Schedule is not safe for
// concurrent use.
type Schedule struct {
	h dueHeap
}

// Set schedules id at due, moving it if it is already scheduled.
func (s *Schedule) Set(id string, due time.Time) {
	if i, ok := s.h.index[id]; ok {
		s.h.items[i].due = due
		heap.Fix(&s.h, i)
		return
	}
	if s.h.index == nil {
		s.h.index = map[string]int{}
	}
	heap.Push(&s.h, dueItem{id: id, due: due})
}

// Remove unschedules id; it reports whether id was scheduled.
func (s *Schedule) Remove(id string) bool {
	i, ok := s.h.index[id]
	if !ok {
		return false
	}
	heap.Remove(&s.h, i)
	return true
}

// Due returns the time id is scheduled at.
func (s *Schedule) Due(id string) (time.Time, bool) {
	i, ok := s.h.index[id]
	if !ok {
		return time.Time{}, false
	}
	return s.h.items[i].due, true
}

// Next returns the earliest scheduled id and its due time, without
// removing it; ok is false when the schedule is empty.
func (s *Schedule) Next() (id string, due time.Time, ok bool) {
	if len(s.h.items) == 0 {
		return "", time.Time{}, false
	}
	return s.h.items[0].id, s.h.items[0].due, true
}

// Len is the number of scheduled ids.
func (s *Schedule) Len() int { return len(s.h.items) }

// Clear empties the schedule.
func (s *Schedule) Clear() { s.h = dueHeap{} }

type dueItem struct {
	id  string
	due time.Time
}

// dueHeap is a min-heap on (due, id) that tracks each id's position, so
// an id can be moved or removed without a search.
type dueHeap struct {
	items []dueItem
	index map[string]int
}

func (h *dueHeap) Len() int { return len(h.items) }

func (h *dueHeap) Less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	if !a.due.Equal(b.due) {
		return a.due.Before(b.due)
	}
	return a.id < b.id
}

func (h *dueHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.index[h.items[i].id] = i
	h.index[h.items[j].id] = j
}

func (h *dueHeap) Push(x any) {
	it := x.(dueItem)
	h.index[it.id] = len(h.items)
	h.items = append(h.items, it)
}

func (h *dueHeap) Pop() any {
	last := len(h.items) - 1
	it := h.items[last]
	h.items = h.items[:last]
	delete(h.index, it.id)
	return it
}
