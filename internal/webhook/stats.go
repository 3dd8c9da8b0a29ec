package webhook

import "sync/atomic"

// Stats are the listener's counters since New (Listener.Stats), for a
// metrics collector to read. Counts of requests unless named items.
type Stats struct {
	Requests       uint64 // every request
	Validations    uint64 // validation handshakes answered 200
	Notifications  uint64 // notification requests answered 200
	AuthMissing    uint64 // no Webhook-AuthID (401)
	AuthWrong      uint64 // a wrong Webhook-AuthID (403)
	NotFound       uint64 // another path (404)
	BadMethod      uint64 // not POST (405)
	BadContentType uint64 // not application/json (415)
	Malformed      uint64 // not a JSON array, nor a validation (400)
	TooLarge       uint64 // body over MaxBodyBytes (413)
	TooManyItems   uint64 // more than MaxItems notifications (413)
	Busy           uint64 // over MaxConcurrent (503)
	Overflow       uint64 // the queue had no room for the request's notifications (503)
	Closed         uint64 // arrived during Shutdown (503)

	Accepted      uint64 // items queued
	Duplicates    uint64 // items already queued within the dedup window (answered 200, not queued)
	OverflowItems uint64 // items of the requests refused for Overflow
	// Rejected counts items refused by reason (answered 200: see README).
	Rejected map[Reason]uint64

	Queued     int // items waiting in the queue now
	Remembered int // contentIds in the dedup window now
}

type counters struct {
	requests, validations, notifications, authMissing, authWrong, notFound, badMethod,
	badContentType, malformed, tooLarge, tooManyItems, busy, overflow, closed,
	accepted, duplicates, overflowItems atomic.Uint64
	rejected [numReasons]atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (l *Listener) Stats() Stats {
	c := &l.stats
	s := Stats{
		Requests: c.requests.Load(), Validations: c.validations.Load(), Notifications: c.notifications.Load(),
		AuthMissing: c.authMissing.Load(), AuthWrong: c.authWrong.Load(), NotFound: c.notFound.Load(),
		BadMethod: c.badMethod.Load(), BadContentType: c.badContentType.Load(), Malformed: c.malformed.Load(),
		TooLarge: c.tooLarge.Load(), TooManyItems: c.tooManyItems.Load(), Busy: c.busy.Load(),
		Overflow: c.overflow.Load(), Closed: c.closed.Load(), Accepted: c.accepted.Load(),
		Duplicates: c.duplicates.Load(), OverflowItems: c.overflowItems.Load(),
		Rejected: map[Reason]uint64{},
	}
	for i := range c.rejected {
		s.Rejected[Reason(i)] = c.rejected[i].Load()
	}
	s.Queued = len(l.queue)
	l.mu.Lock()
	s.Remembered = l.seen.len()
	l.mu.Unlock()
	return s
}
