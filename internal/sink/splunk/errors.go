package splunk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/delivery"
)

// classify turns a failed HEC answer into an actionable, classified
// error (protocols §B.5): 413 splits, 5xx/429 retry, the rest stops.
func (s *Sink) classify(status int, rep reply, hdr http.Header, table string) error {
	code := -1
	if rep.Code != nil {
		code = *rep.Code
	}
	base := fmt.Sprintf("HEC answered HTTP %d code %s (%q)", status, codeOf(rep), s.clean(rep.Text))
	if status == http.StatusRequestEntityTooLarge {
		return delivery.TooLarge(fmt.Errorf("%s: the request is larger than HEC's max_content_length; it is split and resent (lower delivery.max_bytes to avoid this)", base))
	}
	perm := func(format string, a ...any) error {
		return delivery.Permanent(fmt.Errorf("%s: %s", base, fmt.Sprintf(format, a...)))
	}
	switch code {
	case 1, 22:
		return perm("the HEC token is disabled; enable it in Splunk (Settings → Data inputs → HTTP Event Collector) or use another token")
	case 2:
		return perm("the request carried no token; set %s or token_file (a proxy may also strip the Authorization header)", EnvToken)
	case 3:
		return perm("Splunk did not accept the Authorization header; a proxy may be rewriting it, or the token has an unexpected form")
	case 4, 21:
		return perm("Splunk does not know this HEC token; check %s / token_file against Settings → Data inputs → HTTP Event Collector", EnvToken)
	case 5:
		return perm("Splunk received no data; this is a bug in the harvester, please report it")
	case 6:
		return perm("Splunk could not parse %s; events before it may already be indexed (duplicates on resend); this is a bug, please report it with the dead letters", eventNumber(rep))
	case 7:
		if s.index == "" {
			return perm("the token's default index is not writable; set index to one of the token's allowed indexes")
		}
		return perm("index %q is not allowed for this token (or does not exist); create it or add it to the token's allowed indexes, or change outputs.splunk.index", s.index)
	case 10, 11:
		return perm("the data channel header X-Splunk-Request-Channel was missing or rejected; a proxy between here and Splunk may be stripping it")
	case 12, 13:
		return perm("Splunk found an event without content (%s); this is a bug, please report it", eventNumber(rep))
	case 14:
		return perm("indexer acknowledgement is disabled on this token; enable it on the token or set ack.enabled: false")
	case 15:
		return perm("Splunk rejected the indexed fields (%s); indexed fields must be flat", eventNumber(rep))
	case 16:
		return perm("query-string authorization is not enabled; this sink only sends the token in the Authorization header, so a proxy must be rewriting the request")
	}
	switch {
	case status == http.StatusTooManyRequests || status >= 500:
		err := fmt.Errorf("%s: Splunk is busy or failing (table %s); retrying", base, table)
		if d, ok := retryAfter(hdr, s.now()); ok {
			return delivery.RetryAfter(err, d)
		}
		return err
	case status >= 300 && status < 400:
		return perm("HEC redirected the request; the token is never sent to a redirect target, set url to the final address")
	case status == http.StatusNotFound:
		return perm("no HEC endpoint at %s; check url (the HEC base such as https://splunk.example.com:8088) and that HEC is enabled", s.eventURL)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return perm("the token was refused; check %s / token_file", EnvToken)
	case status >= 400:
		return perm("the request was refused; check url, index and token settings")
	}
	return fmt.Errorf("%s: unexpected answer; retrying", base)
}

func eventNumber(r reply) string {
	if r.InvalidNum == nil {
		return "the request"
	}
	return "event " + strconv.Itoa(*r.InvalidNum) + " (0-based) of the request"
}

// retryAfter reads Retry-After (seconds or an HTTP date).
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > 24*3600 {
			n = 24 * 3600
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return min(d, 24*time.Hour), true
	}
	return 0, false
}

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
