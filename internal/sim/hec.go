package sim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// hecHost is the emulated on-premises HEC host; "<stack>.splunkcloud.com"
// names are served too.
const hecHost = "hec.splunk.test"

const (
	defaultHECMax        = 1000000 // Splunk Cloud's commonly cited 1 MB
	defaultSourcetype    = "httpevent"
	maxAcksPerChannel    = 1000000 // limits.conf default (docs/REFERENCE.md §6.6)
	maxAckChannels       = 100000
	hecNotFoundText      = "The requested URL was not found on this server."
	hecMethodNotAllowedT = "The requested method is not allowed for this URL."
)

// SplunkInfo tells a client where and how to send events.
type SplunkInfo struct {
	URL           string   `json:"url"` // the /services/collector/event endpoint
	Token         string   `json:"token"`
	AckToken      string   `json:"ack_token"`
	DisabledToken string   `json:"disabled_token"`
	Indexes       []string `json:"indexes"`
}

type hecToken struct{ ack, disabled bool }

type ackChannel struct {
	next    int64
	pending map[int64]time.Time // ackId → when it turns true
}

type hecState struct {
	tokens   map[string]hecToken // fixed at start; runtime switches below
	indexes  []string
	maxLen   int
	ackDelay time.Duration

	mu       sync.Mutex
	channels map[string]*ackChannel
	// Runtime switches (README "Receivers"): tokens disabled, configured
	// indexes no longer allowed, RecordIds refused as "Invalid data format".
	disabled  map[string]bool
	noIndex   map[string]bool
	invalidID map[string]bool
}

// hecRules is what one batch is checked against.
type hecRules struct {
	indexes   []string
	noIndex   map[string]bool
	invalidID map[string]bool
}

func (h *hecState) rules() hecRules {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := hecRules{indexes: h.indexes, noIndex: map[string]bool{}, invalidID: map[string]bool{}}
	for k := range h.noIndex {
		r.noIndex[k] = true
	}
	for k := range h.invalidID {
		r.invalidID[k] = true
	}
	return r
}

func (h *hecState) isDisabled(tok string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.disabled[tok]
}

// SetHECTokenDisabled disables (true) or re-enables one of the tenant's
// HEC tokens at run time: a disabled token is answered 403 code 1 "Token
// disabled" on every request, as Splunk does (docs/REFERENCE.md §6.2).
func (t *Tenant) SetHECTokenDisabled(token string, disabled bool) error {
	key := strings.ToLower(strings.TrimSpace(token))
	if _, ok := t.hec.tokens[key]; !ok {
		return fmt.Errorf("sim: %q is not one of the tenant's HEC tokens (Credentials: HECToken, HECAckToken, HECDisabledToken)", token)
	}
	t.hec.mu.Lock()
	defer t.hec.mu.Unlock()
	if disabled {
		t.hec.disabled[key] = true
	} else {
		delete(t.hec.disabled, key)
	}
	return nil
}

// SetHECIndexAllowed takes a configured index (Options.HECIndexes) off
// the tokens' allowed list (false) or puts it back (true): an event
// naming a refused index is answered 400 code 7 "Incorrect index" with
// its invalid-event-number, the events before it indexed (docs/REFERENCE.md
// §6.3). Info keeps listing the configured indexes.
func (t *Tenant) SetHECIndexAllowed(index string, allowed bool) error {
	if !contains1(t.hec.indexes, index) {
		return fmt.Errorf("sim: index %q is not configured (Options.HECIndexes: %s)", index, strings.Join(t.hec.indexes, ", "))
	}
	t.hec.mu.Lock()
	defer t.hec.mu.Unlock()
	if allowed {
		delete(t.hec.noIndex, index)
	} else {
		t.hec.noIndex[index] = true
	}
	return nil
}

// SetHECInvalidEvents makes HEC refuse the events whose "event" object
// carries one of these RecordIds, as if their envelope could not be
// parsed: 400 code 6 "Invalid data format" with invalid-event-number, the
// events before it indexed (docs/REFERENCE.md §6.3). No ids clears the list.
func (t *Tenant) SetHECInvalidEvents(recordIDs ...string) {
	t.hec.mu.Lock()
	defer t.hec.mu.Unlock()
	t.hec.invalidID = map[string]bool{}
	for _, id := range recordIDs {
		t.hec.invalidID[id] = true
	}
}

func (t *Tenant) initHEC() error {
	o := t.opts
	h := &hecState{tokens: map[string]hecToken{}, indexes: o.HECIndexes, maxLen: o.HECMaxContentLength, ackDelay: o.HECAckDelay, channels: map[string]*ackChannel{},
		disabled: map[string]bool{}, noIndex: map[string]bool{}, invalidID: map[string]bool{}}
	if len(h.indexes) == 0 {
		h.indexes = []string{"main", "defender"}
	}
	if h.maxLen == 0 {
		h.maxLen = defaultHECMax
	}
	switch {
	case h.maxLen < 0 || h.maxLen > 1<<30:
		return fmt.Errorf("sim: HECMaxContentLength %d is out of range: use 1 to %d bytes", h.maxLen, 1<<30)
	case h.ackDelay < 0:
		return fmt.Errorf("sim: HECAckDelay %s is negative", h.ackDelay)
	}
	// Tokens are secrets: from the system RNG, never from the seed.
	seed, err := randomBytes(16)
	if err != nil {
		return err
	}
	var s1, s2 uint64
	for i := 0; i < 8; i++ {
		s1, s2 = s1<<8|uint64(seed[i]), s2<<8|uint64(seed[8+i])
	}
	r := rand.New(rand.NewPCG(s1, s2))
	t.creds.HECToken, t.creds.HECAckToken, t.creds.HECDisabledToken = guid(r), guid(r), guid(r)
	h.tokens[t.creds.HECToken] = hecToken{}
	h.tokens[t.creds.HECAckToken] = hecToken{ack: true}
	h.tokens[t.creds.HECDisabledToken] = hecToken{disabled: true}
	t.hec = h
	return nil
}

func (t *Tenant) hecService() service {
	s := service{family: ReceiverSplunk, receiver: ReceiverSplunk, fail: t.hecFail}
	for _, p := range []string{"/services/collector/event", "/services/collector", "/services/collector/event/1.0"} {
		s.routes.add(http.MethodPost, p, "", t.hecEvent)
	}
	s.routes.add(http.MethodPost, "/services/collector/ack", "", t.hecAck)
	s.routes.add(http.MethodGet, "/services/collector/health", "", t.hecHealth)
	s.routes.add(http.MethodGet, "/services/collector/health/1.0", "", t.hecHealth)
	return s
}

// hecReply writes HEC's {"text","code"} body (plus extra keys).
func hecReply(q *req, status, code int, text string, extra map[string]any) {
	m := map[string]any{"text": text, "code": code}
	for k, v := range extra {
		m[k] = v
	}
	q.json(status, m)
}

// hecFail maps the router's and the fault engine's errors onto HEC codes.
func (t *Tenant) hecFail(q *req, status int, _, _ string) {
	switch status {
	case http.StatusNotFound:
		hecReply(q, status, 404, hecNotFoundText, nil)
	case http.StatusMethodNotAllowed:
		hecReply(q, status, 405, hecMethodNotAllowedT, nil)
	case http.StatusInternalServerError:
		hecReply(q, status, 8, "Internal server error", nil)
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		hecReply(q, status, 9, "Server is busy", nil)
	default:
		hecReply(q, status, 6, "Invalid data format", nil)
	}
}

// hecAuth applies docs/REFERENCE.md §6.2; it writes the failure itself.
func (t *Tenant) hecAuth(q *req) (hecToken, bool) {
	h := q.r.Header.Get("Authorization")
	if h == "" {
		if q.r.URL.Query().Has("token") {
			hecReply(q, http.StatusBadRequest, 16, "Query string authorization is not enabled", nil)
		} else {
			hecReply(q, http.StatusUnauthorized, 2, "Token is required", nil)
		}
		return hecToken{}, false
	}
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	rest = strings.TrimSpace(rest)
	var tok string
	switch {
	case strings.EqualFold(scheme, "Splunk") && rest != "":
		tok = rest
	case strings.EqualFold(scheme, "Basic") && rest != "":
		if dec, err := base64.StdEncoding.DecodeString(rest); err == nil {
			if _, p, ok := strings.Cut(string(dec), ":"); ok {
				tok = p
			}
		}
	}
	if tok == "" {
		hecReply(q, http.StatusUnauthorized, 3, "Invalid authorization", nil)
		return hecToken{}, false
	}
	ht, ok := t.hec.tokens[strings.ToLower(tok)]
	switch {
	case !ok:
		hecReply(q, http.StatusForbidden, 4, "Invalid token", nil)
		return hecToken{}, false
	case ht.disabled, t.hec.isDisabled(strings.ToLower(tok)):
		hecReply(q, http.StatusForbidden, 1, "Token disabled", nil)
		return hecToken{}, false
	}
	return ht, true
}

// hecChannel reads the channel (header, then ?channel=); it writes 10/11
// itself. need says whether a channel is required.
func hecChannel(q *req, need bool) (string, bool) {
	ch := strings.TrimSpace(q.r.Header.Get("X-Splunk-Request-Channel"))
	if ch == "" {
		ch = strings.TrimSpace(q.r.URL.Query().Get("channel"))
	}
	switch {
	case ch == "" && need:
		hecReply(q, http.StatusBadRequest, 10, "Data channel is missing", nil)
		return "", false
	case ch != "" && !isGUID(ch):
		hecReply(q, http.StatusBadRequest, 11, "Invalid data channel", nil)
		return "", false
	}
	return strings.ToLower(ch), true
}

// hecBody reads the body within the limit (as received and decompressed)
// into rb's buffers; it writes the failure itself.
func (t *Tenant) hecBody(q *req, rb *reqBody) ([]byte, bool) {
	enc := strings.ToLower(strings.TrimSpace(q.r.Header.Get("Content-Encoding")))
	if enc != "" && enc != "gzip" && enc != "identity" {
		hecReply(q, http.StatusBadRequest, 6, "Invalid data format", map[string]any{"detail": "Content-Encoding " + strconv.Quote(enc) + " is not supported: use gzip"})
		return nil, false
	}
	max := t.hec.maxLen
	tooLarge := func(n int64) {
		hecReply(q, http.StatusRequestEntityTooLarge, 6, fmt.Sprintf("Content-Length of %d too large (maximum is %d)", n, max), nil)
	}
	if q.r.ContentLength > int64(max) {
		q.bodyBytes = int(min(q.r.ContentLength, 1<<40))
		tooLarge(q.r.ContentLength)
		return nil, false
	}
	raw, err := rb.read(q.r.Body, int64(max), q.r.ContentLength)
	q.bodyBytes = len(raw)
	if err != nil {
		hecReply(q, http.StatusBadRequest, 6, "Invalid data format", nil)
		return nil, false
	}
	if len(raw) > max {
		tooLarge(int64(len(raw)))
		return nil, false
	}
	if enc != "gzip" {
		return raw, true
	}
	body, headerErr, err := rb.gunzip(raw, int64(max))
	if headerErr != nil || err != nil {
		hecReply(q, http.StatusBadRequest, 6, "Invalid data format", nil)
		return nil, false
	}
	if len(body) > max {
		tooLarge(int64(len(body)))
		return nil, false
	}
	return body, true
}

func (t *Tenant) hecEvent(q *req) {
	tok, ok := t.hecAuth(q)
	if !ok {
		return
	}
	rs := t.receivers[ReceiverSplunk]
	if rs.isBusy() {
		hecReply(q, http.StatusServiceUnavailable, 9, "Server is busy", nil)
		return
	}
	ch, ok := hecChannel(q, tok.ack)
	if !ok {
		return
	}
	var rb reqBody
	defer rb.release()
	body, ok := t.hecBody(q, &rb)
	if !ok {
		return
	}
	evs, bad := parseHECEnvelopes(body, t.hec.rules())
	// Splunk indexes the events before a bad one; the client learns which
	// one failed from invalid-event-number.
	acceptHEC(rs, evs)
	if bad != nil {
		extra := map[string]any{}
		if bad.index >= 0 {
			extra["invalid-event-number"] = bad.index
		}
		hecReply(q, http.StatusBadRequest, bad.code, bad.text, extra)
		return
	}
	if !tok.ack {
		hecReply(q, http.StatusOK, 0, "Success", nil)
		return
	}
	id, ok := t.hec.newAck(ch, t.clock())
	if !ok {
		hecReply(q, http.StatusServiceUnavailable, 9, "Server is busy", nil)
		return
	}
	hecReply(q, http.StatusOK, 0, "Success", map[string]any{"ackId": id})
}

func (h *hecState) newAck(ch string, now time.Time) (int64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.channels[ch]
	if c == nil {
		if len(h.channels) >= maxAckChannels {
			return 0, false
		}
		c = &ackChannel{pending: map[int64]time.Time{}}
		h.channels[ch] = c
	}
	if len(c.pending) >= maxAcksPerChannel {
		return 0, false
	}
	id := c.next
	c.next++
	c.pending[id] = now.Add(h.ackDelay)
	return id, true
}

// ackStatus answers an ack query: true once the delay passed, and a true
// status is forgotten (asking again yields false).
func (h *hecState) ackStatus(ch string, ids []int64, now time.Time) map[string]bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]bool, len(ids))
	c := h.channels[ch]
	for _, id := range ids {
		k := strconv.FormatInt(id, 10)
		if c == nil {
			out[k] = false
			continue
		}
		ready, ok := c.pending[id]
		if ok && !now.Before(ready) {
			out[k] = true
			delete(c.pending, id)
		} else if !out[k] {
			out[k] = false
		}
	}
	return out
}

func (t *Tenant) hecAck(q *req) {
	tok, ok := t.hecAuth(q)
	if !ok {
		return
	}
	if !tok.ack {
		hecReply(q, http.StatusBadRequest, 14, "ACK is disabled", nil)
		return
	}
	ch, ok := hecChannel(q, true)
	if !ok {
		return
	}
	var rb reqBody
	defer rb.release()
	body, ok := t.hecBody(q, &rb)
	if !ok {
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		hecReply(q, http.StatusBadRequest, 5, "No data", nil)
		return
	}
	var in struct {
		Acks *[]int64 `json:"acks"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.Acks == nil {
		hecReply(q, http.StatusBadRequest, 6, "Invalid data format", nil)
		return
	}
	q.json(http.StatusOK, map[string]any{"acks": t.hec.ackStatus(ch, *in.Acks, t.clock())})
}

func (t *Tenant) hecHealth(q *req) {
	if t.receivers[ReceiverSplunk].isBusy() {
		hecReply(q, http.StatusServiceUnavailable, 18, "HEC is unhealthy, queues are full", nil)
		return
	}
	hecReply(q, http.StatusOK, 17, "HEC is healthy", nil)
}

type hecEvent struct {
	sourcetype string
	event      json.RawMessage
	id         string // recordID(event)
}

// acceptHEC accounts accepted events per sourcetype, in the order the
// sourcetypes first appear.
func acceptHEC(rs *receiverState, evs []hecEvent) {
	type group struct {
		sourcetype string
		raws       []json.RawMessage
		ids        []string
	}
	var groups []group
	for _, e := range evs {
		g := len(groups) - 1
		for g >= 0 && groups[g].sourcetype != e.sourcetype {
			g--
		}
		if g < 0 {
			groups = append(groups, group{sourcetype: e.sourcetype})
			g = len(groups) - 1
		}
		groups[g].raws = append(groups[g].raws, e.event)
		groups[g].ids = append(groups[g].ids, e.id)
	}
	for _, g := range groups {
		rs.acceptIDs(g.sourcetype, g.raws, g.ids)
	}
}

type hecError struct {
	code  int
	text  string
	index int // -1: not about one event
}

// parseHECBatch decodes concatenated envelopes (docs/REFERENCE.md §6.3). It returns
// the valid events before the first bad one, and the error for that one.
func parseHECBatch(body []byte, indexes []string) ([]hecEvent, *hecError) {
	return parseHECEnvelopes(body, hecRules{indexes: indexes})
}

// parseHECEnvelopes is parseHECBatch with the runtime switches. It reads
// each envelope in one pass (walkJSONObject), the event's RecordId
// included; a batch with anything wrong is read again by
// parseHECEnvelopesStd, whose answer is the reference.
func parseHECEnvelopes(body []byte, rules hecRules) ([]hecEvent, *hecError) {
	if evs, ok := scanHECEnvelopes(body, rules); ok {
		return evs, nil
	}
	return parseHECEnvelopesStd(body, rules)
}

// hecEnv is one envelope's members as map[string]json.RawMessage would
// hold them (nil: absent; the last of repeated keys).
type hecEnv struct {
	event, host, source, sourcetype, time, index, fields json.RawMessage
	eventID                                              string // recordID(event)
}

func scanHECEnvelopes(b []byte, rules hecRules) ([]hecEvent, bool) {
	var env hecEnv
	var rid []byte
	ridVisit := func(key []byte, start, depth int) int {
		end := scanJSONValue(b, start, depth)
		if end >= 0 && len(key) >= len(`"RecordId"`) && foldKey(jsonKey(key), "RecordId") {
			rid = b[start:end]
		}
		return end
	}
	visit := func(key []byte, start, depth int) int {
		k := jsonKey(key)
		if string(k) == "event" {
			end := -1
			env.eventID = ""
			if start < len(b) && b[start] == '{' {
				rid = nil
				if end = walkJSONObject(b, start, depth, ridVisit); end >= 0 && rid != nil {
					env.eventID, _ = jsonString(rid)
				}
			} else {
				end = scanJSONValue(b, start, depth)
			}
			if end >= 0 {
				env.event = b[start:end]
			}
			return end
		}
		end := scanJSONValue(b, start, depth)
		if end < 0 {
			return -1
		}
		v := b[start:end]
		switch string(k) {
		case "host":
			env.host = v
		case "source":
			env.source = v
		case "sourcetype":
			env.sourcetype = v
		case "time":
			env.time = v
		case "index":
			env.index = v
		case "fields":
			env.fields = v
		}
		return end
	}
	var out []hecEvent
	i := skipJSONSpace(b, 0)
	if i == len(b) {
		return nil, false // "No data"
	}
	for i < len(b) {
		if b[i] != '{' {
			return nil, false
		}
		env = hecEnv{}
		end := walkJSONObject(b, i, 1, visit)
		if end < 0 {
			return nil, false
		}
		ev, bad := env.check(rules)
		if bad != nil {
			return nil, false
		}
		out = append(out, ev)
		i = skipJSONSpace(b, end)
	}
	return out, true
}

// parseHECEnvelopesStd is parseHECEnvelopes with encoding/json throughout.
func parseHECEnvelopesStd(body []byte, rules hecRules) ([]hecEvent, *hecError) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, &hecError{5, "No data", -1}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var out []hecEvent
	for i := 0; ; i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			return out, nil
		} else if err != nil {
			return out, &hecError{6, "Invalid data format", i}
		}
		ev, bad := checkEnvelope(raw, rules)
		if bad != nil {
			bad.index = i
			return out, bad
		}
		out = append(out, ev)
	}
}

func checkEnvelope(raw json.RawMessage, rules hecRules) (hecEvent, *hecError) {
	if len(raw) == 0 || raw[0] != '{' {
		return hecEvent{}, &hecError{6, "Invalid data format", 0} // a top-level array or a bare value
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return hecEvent{}, &hecError{6, "Invalid data format", 0}
	}
	env := hecEnv{event: m["event"], host: m["host"], source: m["source"], sourcetype: m["sourcetype"], time: m["time"], index: m["index"], fields: m["fields"]}
	if env.event != nil {
		env.eventID = recordID(env.event)
	}
	return env.check(rules)
}

// check applies docs/REFERENCE.md §6.3 to one envelope.
func (env *hecEnv) check(rules hecRules) (hecEvent, *hecError) {
	invalid := &hecError{6, "Invalid data format", 0}
	ev := env.event
	if ev == nil {
		return hecEvent{}, &hecError{12, "Event field is required", 0}
	}
	if t := bytes.TrimSpace(ev); string(t) == "null" {
		return hecEvent{}, &hecError{13, "Event field cannot be blank", 0}
	} else if t[0] == '"' {
		s, ok := jsonString(t)
		if !ok || strings.TrimSpace(s) == "" {
			return hecEvent{}, &hecError{13, "Event field cannot be blank", 0}
		}
	}
	str := func(v json.RawMessage) (string, bool) {
		if v == nil {
			return "", true
		}
		return jsonString(v)
	}
	for _, v := range []json.RawMessage{env.host, env.source, env.sourcetype} {
		if _, ok := str(v); !ok {
			return hecEvent{}, invalid
		}
	}
	if tv := env.time; tv != nil && (tv[0] == '-' || '0' <= tv[0] && tv[0] <= '9') {
		// A number: json.Unmarshal into a float64 fails only when
		// ParseFloat does, and a number never unmarshals into a string.
		if _, err := strconv.ParseFloat(string(tv), 64); err != nil {
			return hecEvent{}, invalid
		}
	} else if tv != nil {
		var f float64
		var s string
		if json.Unmarshal(tv, &f) != nil {
			if json.Unmarshal(tv, &s) != nil {
				return hecEvent{}, invalid
			}
			if _, err := strconv.ParseFloat(s, 64); err != nil {
				return hecEvent{}, invalid
			}
		}
	}
	idx, ok := str(env.index)
	if !ok {
		return hecEvent{}, &hecError{7, "Incorrect index", 0}
	}
	if idx != "" && (!contains1(rules.indexes, idx) || rules.noIndex[idx]) {
		return hecEvent{}, &hecError{7, "Incorrect index", 0}
	}
	if f := env.fields; f != nil && !flatFields(f) {
		return hecEvent{}, &hecError{15, "Error in handling indexed fields", 0}
	}
	if len(rules.invalidID) > 0 && rules.invalidID[env.eventID] {
		return hecEvent{}, invalid
	}
	st, _ := str(env.sourcetype)
	if st == "" {
		st = defaultSourcetype
	}
	return hecEvent{sourcetype: st, event: ev, id: env.eventID}, nil
}

// flatFields: an object whose values are scalars or arrays of scalars.
func flatFields(raw json.RawMessage) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return false
	}
	for _, v := range m {
		v = bytes.TrimSpace(v)
		switch v[0] {
		case '{':
			return false
		case '[':
			var xs []json.RawMessage
			if json.Unmarshal(v, &xs) != nil {
				return false
			}
			for _, x := range xs {
				if x = bytes.TrimSpace(x); x[0] == '{' || x[0] == '[' {
					return false
				}
			}
		}
	}
	return true
}

func contains1(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
