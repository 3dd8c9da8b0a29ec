package sim

import (
	"container/list"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Time layouts the emulated services use on the wire.
const (
	// layoutAC is Action Center's: 7 fractional digits, no offset (UTC).
	layoutAC = "2006-01-02T15:04:05.0000000"
	// layout7Z is the public API's and the timeline's: 7 digits and Z.
	layout7Z = "2006-01-02T15:04:05.0000000Z"
	// layoutMsZ is what portal settings and rules use: milliseconds and Z.
	layoutMsZ = "2006-01-02T15:04:05.000Z"
)

func fmtAC(t time.Time) string  { return t.UTC().Format(layoutAC) }
func fmt7Z(t time.Time) string  { return t.UTC().Format(layout7Z) }
func fmtMsZ(t time.Time) string { return t.UTC().Format(layoutMsZ) }

// parseTimeParam accepts the ISO-8601 forms clients send in query strings
// and bodies: RFC 3339 with any fraction and offset, or no offset (UTC).
func parseTimeParam(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, fmt.Errorf("empty time")
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	for _, l := range []string{"2006-01-02T15:04:05.9999999", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO-8601 date-time", s)
}

// mix is splitmix64: it spreads seeds so that nearby inputs give unrelated
// streams.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// rngFor returns a generator seeded only by the tenant seed and the given
// labels, so every bucket of data is reproducible on its own.
func rngFor(seed int64, labels ...uint64) *rand.Rand {
	a := mix(uint64(seed))
	b := mix(a ^ 0x5851f42d4c957f2d)
	for _, l := range labels {
		a = mix(a ^ l)
		b = mix(b + l*0x2545f4914f6cdd1d)
	}
	return rand.New(rand.NewPCG(a, b))
}

// strLabel turns a string into a seed label.
func strLabel(s string) uint64 {
	var h uint64 = 1469598103934665603
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// Seed labels for the independent data streams.
const (
	lblTenant uint64 = iota + 1
	lblOps
	lblQueries
	lblTimeline
	lblStats
	lblMachines
	lblTarget
)

func guid(r *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func hexN(r *rand.Rand, n int) string {
	b := make([]byte, (n+1)/2)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return hex.EncodeToString(b)[:n]
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// tick100ns returns a random offset in [0, d) at the 100 ns resolution the
// services print (7 fractional digits), so times survive a round trip.
func tick100ns(r *rand.Rand, d time.Duration) time.Duration {
	n := int64(d / 100)
	if n <= 0 {
		return 0
	}
	return time.Duration(r.Int64N(n)) * 100
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own fixed types are marshalled here; failing is a bug.
		panic(fmt.Sprintf("sim: marshal %T: %v", v, err))
	}
	return b
}

// lru is a small bounded cache so generated buckets stay in memory only
// while they are hot, however long the emulator runs.
type lru[K comparable, V any] struct {
	mu     sync.Mutex
	cap    int // most weight held (entries, unless weight is set)
	weight func(V) int
	total  int
	ll     *list.List
	items  map[K]*list.Element
}

type lruEntry[K comparable, V any] struct {
	k K
	v V
	w int
}

func newLRU[K comparable, V any](capacity int) *lru[K, V] {
	return &lru[K, V]{cap: capacity, ll: list.New(), items: make(map[K]*list.Element)}
}

// newWeightedLRU holds values up to a total weight (each value weighs at
// least 1), evicting the least recently used; the newest value is kept
// even when it alone weighs more.
func newWeightedLRU[K comparable, V any](capacity int, weight func(V) int) *lru[K, V] {
	c := newLRU[K, V](capacity)
	c.weight = weight
	return c
}

// get returns the cached value or builds, stores and returns it. build runs
// outside the lock; two racing builders produce identical values.
func (c *lru[K, V]) get(k K, build func() V) V {
	c.mu.Lock()
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		v := e.Value.(*lruEntry[K, V]).v
		c.mu.Unlock()
		return v
	}
	c.mu.Unlock()
	v := build()
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*lruEntry[K, V]).v
	}
	w := 1
	if c.weight != nil {
		w = max(1, c.weight(v))
	}
	c.items[k] = c.ll.PushFront(&lruEntry[K, V]{k, v, w})
	c.total += w
	for c.total > c.cap && c.ll.Len() > 1 {
		old := c.ll.Back()
		c.ll.Remove(old)
		oe := old.Value.(*lruEntry[K, V])
		delete(c.items, oe.k)
		c.total -= oe.w
	}
	return v
}

// weightHeld is the total weight of the values held.
func (c *lru[K, V]) weightHeld() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

func (c *lru[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// hourOf is the bucket index of t: whole hours since the Unix epoch.
func hourOf(t time.Time) int64 {
	u := t.Unix()
	h := u / 3600
	if u < 0 && u%3600 != 0 {
		h--
	}
	return h
}

func hourStart(h int64) time.Time { return time.Unix(h*3600, 0).UTC() }
