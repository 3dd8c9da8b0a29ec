package webhook

import "time"

// dedup remembers contentIds for a window, at most max of them. Entries
// are added in time order, so the oldest is always at the head of order.
type dedup struct {
	window time.Duration
	max    int
	seen   map[string]time.Time
	order  []dedupEntry // FIFO: order[head:] are live
	head   int
}

type dedupEntry struct {
	id string
	at time.Time
}

func newDedup(window time.Duration, max int) *dedup {
	return &dedup{window: window, max: max, seen: map[string]time.Time{}}
}

func (d *dedup) has(id string, now time.Time) bool {
	at, ok := d.seen[id]
	return ok && now.Sub(at) < d.window
}

func (d *dedup) add(id string, now time.Time) {
	d.seen[id] = now
	d.order = append(d.order, dedupEntry{id, now})
	for len(d.seen) > d.max {
		d.pop()
	}
}

// prune forgets what is older than the window.
func (d *dedup) prune(now time.Time) {
	for d.head < len(d.order) && now.Sub(d.order[d.head].at) >= d.window {
		d.pop()
	}
}

func (d *dedup) pop() {
	e := d.order[d.head]
	d.order[d.head] = dedupEntry{}
	d.head++
	if at, ok := d.seen[e.id]; ok && at.Equal(e.at) {
		delete(d.seen, e.id)
	}
	// Compact once half the slice is dead, so memory follows the live
	// entries.
	if d.head > 1024 && d.head*2 >= len(d.order) {
		d.order = append([]dedupEntry(nil), d.order[d.head:]...)
		d.head = 0
	}
	if d.head == len(d.order) {
		d.order, d.head = d.order[:0], 0
	}
}

func (d *dedup) len() int { return len(d.seen) }
