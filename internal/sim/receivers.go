package sim

import (
	"bytes"
	"encoding/json"
	"sort"
	"sync"
)

// Receivers: the destinations the harvester delivers to.
const (
	ReceiverSentinel = "sentinel" // Azure Monitor Logs Ingestion API
	ReceiverSplunk   = "splunk"   // Splunk HTTP Event Collector
)

// ReceiverStats is what a receiver has seen, for loss and duplicate tests.
type ReceiverStats struct {
	Records    int            // accepted records, duplicates included
	Unique     int            // distinct RecordIds accepted
	Duplicates int            // accepted records whose RecordId was already accepted
	NoID       int            // accepted records without a string RecordId (not in IDs)
	ByTable    map[string]int // accepted records per stream (sentinel) or sourcetype (splunk)
	Requests   int            // every request that reached the receiver, rejected ones too
	// MaxRequestBytes is the largest request body as received on the wire
	// (compressed when the client compressed).
	MaxRequestBytes int
	// Rejected counts non-2xx answers by status; 0 means the connection was
	// dropped (outage or reset fault).
	Rejected map[int]int
	ids      map[string]int
}

// IDs maps each accepted RecordId to the number of times it was accepted.
func (s ReceiverStats) IDs() map[string]int {
	out := make(map[string]int, len(s.ids))
	for k, v := range s.ids {
		out[k] = v
	}
	return out
}

// receiverState is one receiver's accounting, outage and busy switches.
type receiverState struct {
	mu       sync.Mutex
	keep     bool
	down     bool
	busy     bool
	noRole   bool // Logs Ingestion: the app lost its role on every DCR
	records  int
	dups     int
	noID     int
	byTable  map[string]int
	ids      map[string]int
	requests int
	maxBytes int
	rejected map[int]int
	stored   map[string][]json.RawMessage
}

func newReceiverState(keep bool) *receiverState {
	return &receiverState{keep: keep, byTable: map[string]int{}, ids: map[string]int{}, rejected: map[int]int{}, stored: map[string][]json.RawMessage{}}
}

func (s *receiverState) isDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down
}

func (s *receiverState) isBusy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.busy
}

// observe counts one request and its outcome (status 0: dropped).
func (s *receiverState) observe(status, bodyBytes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if bodyBytes > s.maxBytes {
		s.maxBytes = bodyBytes
	}
	if status < 200 || status > 299 {
		s.rejected[status]++
	}
}

// accept records accepted records of one table. Each raw is a JSON value;
// its top-level "RecordId" string keys the duplicate accounting.
func (s *receiverState) accept(table string, raws []json.RawMessage) {
	ids := make([]string, len(raws))
	for i, r := range raws {
		ids[i] = recordID(r)
	}
	s.acceptIDs(table, raws, ids)
}

// acceptIDs is accept with each record's recordID already known. The
// records are copied when kept, so they may point into a reused buffer.
func (s *receiverState) acceptIDs(table string, raws []json.RawMessage, ids []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range raws {
		s.records++
		s.byTable[table]++
		if ids[i] == "" {
			s.noID++
		} else {
			if s.ids[ids[i]] > 0 {
				s.dups++
			}
			s.ids[ids[i]]++
		}
		if s.keep {
			s.stored[table] = append(s.stored[table], append(json.RawMessage(nil), r...))
		}
	}
}

// recordID extracts a top-level "RecordId" string, "" when there is none.
func recordID(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return ""
	}
	var v struct {
		RecordID json.RawMessage `json:"RecordId"`
	}
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	var id string
	if json.Unmarshal(v.RecordID, &id) != nil {
		return ""
	}
	return id
}

func (s *receiverState) stats() ReceiverStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := ReceiverStats{
		Records: s.records, Unique: len(s.ids), Duplicates: s.dups, NoID: s.noID,
		ByTable: map[string]int{}, Requests: s.requests, MaxRequestBytes: s.maxBytes,
		Rejected: map[int]int{}, ids: make(map[string]int, len(s.ids)),
	}
	for k, v := range s.byTable {
		st.ByTable[k] = v
	}
	for k, v := range s.rejected {
		st.Rejected[k] = v
	}
	for k, v := range s.ids {
		st.ids[k] = v
	}
	return st
}

func (t *Tenant) initReceivers() error {
	t.receivers = map[string]*receiverState{
		ReceiverSentinel: newReceiverState(t.opts.KeepReceived),
		ReceiverSplunk:   newReceiverState(t.opts.KeepReceived),
	}
	if err := t.initDCRs(); err != nil {
		return err
	}
	return t.initHEC()
}

// Received returns the accounting of receiver "sentinel" or "splunk" (an
// unknown name gives empty stats).
func (t *Tenant) Received(receiver string) ReceiverStats {
	s, ok := t.receivers[receiver]
	if !ok {
		return ReceiverStats{ByTable: map[string]int{}, Rejected: map[int]int{}}
	}
	return s.stats()
}

// Stored returns the accepted records of one table in arrival order (the
// Logs Ingestion array elements, or the HEC "event" values). It is empty
// unless Options.KeepReceived is set.
func (t *Tenant) Stored(receiver, table string) []json.RawMessage {
	s, ok := t.receivers[receiver]
	if !ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]json.RawMessage(nil), s.stored[table]...)
}

// ReceiverTables lists the tables a receiver has accepted records for.
func (t *Tenant) ReceiverTables(receiver string) []string {
	st := t.Received(receiver)
	out := make([]string, 0, len(st.ByTable))
	for k := range st.ByTable {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// SetReceiverDown starts (true) or ends an outage of a receiver: every
// request's connection is reset before any response, like a refused
// connection, until it is set back.
func (t *Tenant) SetReceiverDown(receiver string, down bool) {
	s, ok := t.receivers[receiver]
	if !ok {
		t.log.Warn("ignoring an outage for an unknown receiver", "receiver", receiver, "known", ReceiverSentinel+", "+ReceiverSplunk)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// SetReceiverBusy makes a receiver overloaded (true) or healthy again:
// Logs Ingestion answers 503 with Retry-After; HEC answers posts with 503
// code 9 and its health endpoint with 503 code 18.
func (t *Tenant) SetReceiverBusy(receiver string, busy bool) {
	s, ok := t.receivers[receiver]
	if !ok {
		t.log.Warn("ignoring busy for an unknown receiver", "receiver", receiver, "known", ReceiverSentinel+", "+ReceiverSplunk)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.busy = busy
}
