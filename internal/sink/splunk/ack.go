package splunk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"

	"github.com/defenderharvester/defenderharvester/internal/delivery"
)

// Indexer acknowledgement (docs/REFERENCE.md §6.6): a request counts as delivered
// once the ackId HEC gave it is reported true.

// errAckTimeout marks a request the indexers did not acknowledge in time;
// unclassified, so the delivery helper sends it again.
var errAckTimeout = errors.New("not acknowledged by the Splunk indexers in time")

// parseAcks decodes {"acks":{"0":true,...}}: the ids reported true.
func parseAcks(b []byte) (map[int64]bool, error) {
	var v struct {
		Acks map[string]bool `json:"acks"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("ack answer is not HEC JSON: %w", err)
	}
	if v.Acks == nil {
		return nil, errors.New(`ack answer lacks "acks"`)
	}
	out := make(map[int64]bool, len(v.Acks))
	for k, ok := range v.Acks {
		id, err := strconv.ParseInt(k, 10, 64)
		if err != nil || id < 0 {
			continue // not an id we asked about
		}
		out[id] = ok
	}
	return out, nil
}

// acker tracks the ackIds this sink waits for. A status reported true is
// forgotten by HEC, so it is recorded here at once. Waiters share one
// query per poll interval instead of each asking for its own id.
type acker struct {
	s *Sink

	pollMu  sync.Mutex // one ack query at a time
	mu      sync.Mutex // guards pending and gen
	pending map[int64]bool
	gen     uint64 // completed queries
}

// wait returns nil once id is acknowledged, errAckTimeout (transient: the
// request is sent again) after ack.timeout, or a permanent error when HEC
// refuses ack queries.
func (a *acker) wait(ctx context.Context, id int64, records int) error {
	a.mu.Lock()
	a.pending[id] = false
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.pending, id)
		a.mu.Unlock()
	}()
	deadline := a.s.now().Add(a.s.ackTimeout)
	for {
		a.mu.Lock()
		g := a.gen
		a.mu.Unlock()
		if err := a.s.sleep(ctx, a.s.pollEvery); err != nil {
			return fmt.Errorf("stopped waiting for the acknowledgement of ackId %d: %w", id, err)
		}
		if err := a.poll(ctx, g); err != nil {
			if delivery.IsPermanent(err) {
				return err
			}
			a.s.log.Warn("splunk ack query failed; asking again", "error", err)
		}
		a.mu.Lock()
		done := a.pending[id]
		a.mu.Unlock()
		if done {
			return nil
		}
		if !a.s.now().Before(deadline) {
			return fmt.Errorf("request of %d records (ackId %d): %w (ack.timeout %s); sending it again, Splunk may index it twice", records, id, errAckTimeout, a.s.ackTimeout)
		}
	}
}

// poll queries every pending id, unless a query completed since the
// caller's generation g (it already covered the caller's id).
func (a *acker) poll(ctx context.Context, g uint64) error {
	a.pollMu.Lock()
	defer a.pollMu.Unlock()
	a.mu.Lock()
	if a.gen != g {
		a.mu.Unlock()
		return nil
	}
	ids := make([]int64, 0, len(a.pending))
	for id, done := range a.pending {
		if !done {
			ids = append(ids, id)
		}
	}
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.gen++
		a.mu.Unlock()
	}()
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	body, err := json.Marshal(map[string][]int64{"acks": ids})
	if err != nil {
		return fmt.Errorf("encode ack query: %w", err)
	}
	status, raw, hdr, err := a.s.callRaw(ctx, http.MethodPost, a.s.ackURL, body)
	if err != nil {
		return fmt.Errorf("cannot reach Splunk HEC ack endpoint at %s: %w", a.s.base, err)
	}
	if status != http.StatusOK {
		return a.s.classify(status, parseReply(raw), hdr, "")
	}
	acks, err := parseAcks(raw)
	if err != nil {
		return err
	}
	a.mu.Lock()
	for id, ok := range acks {
		if _, waiting := a.pending[id]; waiting && ok {
			a.pending[id] = true
		}
	}
	a.mu.Unlock()
	return nil
}
