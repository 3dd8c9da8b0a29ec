// Package delivery is the one helper every network sink uses to get
// records to its destination: it encodes and packs records into requests
// that respect the destination's size limits, sends them with bounded
// concurrency and a client-side rate limit, retries transient failures
// with backoff (honouring Retry-After however long it is), splits
// requests the server calls too large, and dead-letters the single
// records that can never be sent because of their own content. A refusal
// of the request itself (credentials, permissions, endpoint, index…) is
// never dead-lettered: it fails the Write. A sink implements only "send
// one request" (SendFunc) and classifies its failures.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/defenderharvester/defenderharvester/internal/clock"
	"github.com/defenderharvester/defenderharvester/internal/httpx"
	"github.com/defenderharvester/defenderharvester/internal/record"
)

// Framing tells the helper how records are joined into one request body.
type Framing struct{ Open, Sep, Close []byte }

var (
	// JSONArray frames records as a JSON array (Logs Ingestion API).
	JSONArray = Framing{[]byte("["), []byte(","), []byte("]")}
	// Concatenated frames records as objects one per line (Splunk HEC).
	Concatenated = Framing{nil, []byte("\n"), nil}
)

// Encoder appends one record's encoding to dst (the sink's per-record
// format). On error it should return dst unchanged.
type Encoder func(dst []byte, r *record.Record) ([]byte, error)

// Request is one HTTP call's worth of records.
type Request struct {
	Table   string
	Body    []byte          // framed, uncompressed; len(Body) <= Config.MaxBytes
	Records []record.Record // the records in Body, in order
}

// SendFunc performs one request and returns nil only when the destination
// accepted it. It classifies failures with Permanent (the request is
// refused), Rejected / RejectedAt (records are refused for their own
// content), RetryAfter and TooLarge; an unclassified error is treated as
// transient. ctx carries the attempt timeout. Errors must not contain
// secrets: they are logged and returned to the user.
type SendFunc func(ctx context.Context, req *Request) error

// Defaults for the zero fields of Config.
const (
	DefaultMaxBytes       = 1_000_000 // Logs Ingestion and (cloud) HEC accept 1 MB per call
	DefaultMaxRecords     = 10_000
	DefaultMaxAttempts    = 8
	DefaultInitialBackoff = time.Second
	DefaultMaxBackoff     = 5 * time.Minute
	DefaultMaxElapsed     = 30 * time.Minute
	DefaultConcurrency    = 4
	// DefaultAttemptTimeout bounds one call of the SendFunc: a 1 MB upload
	// takes seconds, so a minute without an answer means a stalled peer.
	DefaultAttemptTimeout = time.Minute
)

// Config holds the delivery knobs. Zero fields take the defaults above.
type Config struct {
	MaxBytes   int `yaml:"max_bytes"`   // per request body, uncompressed
	MaxRecords int `yaml:"max_records"` // per request
	// MaxAttempts per request (first try included). 0 means the default
	// (8); a negative value retries until MaxElapsed.
	MaxAttempts int `yaml:"max_attempts"`
	// Exponential backoff with full jitter between InitialBackoff and
	// MaxBackoff, unless the server said how long to wait (RetryAfter).
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	MaxBackoff     time.Duration `yaml:"max_backoff"`
	// MaxElapsed bounds the time spent on one request, waits included; a
	// wait that would cross it ends the request with an error instead.
	MaxElapsed time.Duration `yaml:"max_elapsed"`
	// AttemptTimeout bounds one attempt (one SendFunc call, waits for an
	// acknowledgement included); an attempt without an answer in time is
	// cancelled and retried like a network error.
	AttemptTimeout time.Duration `yaml:"attempt_timeout"`
	Concurrency    int           `yaml:"concurrency"`     // requests in flight per Write
	RatePerSecond  float64       `yaml:"rate_per_second"` // requests per second per exporter; 0 = unlimited
	Burst          int           `yaml:"burst"`           // rate limiter burst; default 1

	// Test seams. Now defaults to time.Now, Sleep to a context-aware
	// timer, Jitter to a uniform random duration in [0, max].
	// Apart, when set, says that next may not join a request that starts
	// with first (e.g. Logs Ingestion's time-range limit per call); the
	// records of one Write should then come in the order that keeps the
	// requests few (for a time range: sorted by time).
	Apart func(first, next *record.Record) bool `yaml:"-"`

	Now    func() time.Time                                 `yaml:"-"`
	Sleep  func(ctx context.Context, d time.Duration) error `yaml:"-"`
	Jitter func(max time.Duration) time.Duration            `yaml:"-"`
}

// Validate checks the settings as the user wrote them (zero means the
// default). Errors name the keys of the delivery section.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	for _, f := range []struct {
		key string
		bad bool
		v   any
	}{
		{"max_bytes", c.MaxBytes < 0, c.MaxBytes}, {"max_records", c.MaxRecords < 0, c.MaxRecords},
		{"initial_backoff", c.InitialBackoff < 0, c.InitialBackoff}, {"max_backoff", c.MaxBackoff < 0, c.MaxBackoff},
		{"max_elapsed", c.MaxElapsed < 0, c.MaxElapsed}, {"attempt_timeout", c.AttemptTimeout < 0, c.AttemptTimeout},
		{"concurrency", c.Concurrency < 0, c.Concurrency}, {"rate_per_second", c.RatePerSecond < 0, c.RatePerSecond},
		{"burst", c.Burst < 0, c.Burst},
	} {
		if f.bad {
			add("%s %v is negative: use a positive value, or leave it out for the default", f.key, f.v)
		}
	}
	ib, mb := c.InitialBackoff, c.MaxBackoff
	if ib == 0 {
		ib = DefaultInitialBackoff
	}
	if mb == 0 {
		mb = DefaultMaxBackoff
	}
	if ib > 0 && mb > 0 && ib > mb {
		add("initial_backoff %s is longer than max_backoff %s: lower initial_backoff or raise max_backoff", ib, mb)
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() (Config, error) {
	if err := c.Validate(); err != nil {
		return c, err
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxBytes, DefaultMaxBytes)
	def(&c.MaxRecords, DefaultMaxRecords)
	def(&c.MaxAttempts, DefaultMaxAttempts)
	def(&c.Concurrency, DefaultConcurrency)
	defD(&c.InitialBackoff, DefaultInitialBackoff)
	defD(&c.MaxBackoff, DefaultMaxBackoff)
	defD(&c.MaxElapsed, DefaultMaxElapsed)
	defD(&c.AttemptTimeout, DefaultAttemptTimeout)
	if c.RatePerSecond > 0 && c.Burst == 0 {
		c.Burst = 1
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Sleep == nil {
		c.Sleep = clock.Sleep
	}
	if c.Jitter == nil {
		c.Jitter = func(max time.Duration) time.Duration {
			if max <= 0 {
				return 0
			}
			return rand.N(max + 1)
		}
	}
	return c, nil
}

// Stats are an exporter's counters since New.
type Stats struct {
	Requests        int64 // calls to SendFunc, retries included
	Retries         int64 // calls that repeated an earlier failed attempt
	BytesSent       int64 // body bytes over all calls
	MaxRequestBytes int64 // largest body passed to SendFunc
	Records         int64 // records accepted by the destination
	DeadLettered    int64 // records handed to the dead letter (or logged, without one)
	TooLargeSplits  int64 // requests split in two after TooLarge
	// DeadLetters says where this exporter's dead letters are written (a
	// directory and file pattern); "" when there is no dead-letter store.
	DeadLetters string
}

// Exporter delivers records for one sink. Safe for concurrent use.
type Exporter struct {
	name    string
	cfg     Config
	framing Framing
	enc     Encoder
	send    SendFunc
	dl      DeadLetter
	dlWhere string
	log     *slog.Logger
	limiter *rate.Limiter

	requests, retries, bytesSent, maxRequestBytes atomic.Int64
	records, deadLettered, splits                 atomic.Int64
}

// New builds an exporter for the sink called name. dl may be nil: records
// that can never be sent are then only logged (at error level) and
// counted. log may be nil.
func New(name string, cfg Config, framing Framing, enc Encoder, send SendFunc, dl DeadLetter, log *slog.Logger) (*Exporter, error) {
	if name == "" {
		return nil, errors.New("delivery: the sink name is empty")
	}
	if enc == nil || send == nil {
		return nil, fmt.Errorf("delivery for sink %q: encoder and send function are required", name)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("delivery settings of sink %q: %w", name, err)
	}
	if min := len(framing.Open) + len(framing.Close) + 2; cfg.MaxBytes < min {
		return nil, fmt.Errorf("delivery settings of sink %q: max_bytes %d cannot hold even one record; use at least %d", name, cfg.MaxBytes, min)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Exporter{name: name, cfg: cfg, framing: framing, enc: enc, send: send, dl: dl, log: log}
	if l, ok := dl.(Locator); ok {
		e.dlWhere = l.Where(name)
	}
	if cfg.RatePerSecond > 0 {
		e.limiter = rate.NewLimiter(rate.Limit(cfg.RatePerSecond), cfg.Burst)
	}
	return e, nil
}

// Stats returns a snapshot of the counters.
func (e *Exporter) Stats() Stats {
	return Stats{
		Requests:        e.requests.Load(),
		Retries:         e.retries.Load(),
		BytesSent:       e.bytesSent.Load(),
		MaxRequestBytes: e.maxRequestBytes.Load(),
		Records:         e.records.Load(),
		DeadLettered:    e.deadLettered.Load(),
		TooLargeSplits:  e.splits.Load(),
		DeadLetters:     e.dlWhere,
	}
}

// item is one encoded record: recs[idx], encoded at grp.body[start:end].
type item struct {
	idx, start, end int
	grp             *group
}

// group is one request as packed: its records' encodings framed into its
// body, ready to send as it is.
type group struct {
	items []item
	body  []byte
}

// batch is the shared state of one Write.
type batch struct {
	table string
	recs  []record.Record
}

// errStopped ends pack when the Write is stopped (a failed request, or the
// caller's context).
var errStopped = errors.New("delivery stopped")

// Write encodes recs, packs them into requests within MaxBytes and
// MaxRecords (record order kept inside and across request bodies), sends
// them with up to Concurrency in flight and returns nil only when every
// record was accepted or dead-lettered. A request is sent as soon as it
// is packed, while the next ones are. A request-level refusal (Permanent)
// fails the whole Write whatever the number of records: a wrong token or
// index must stop delivery, never dead-letter.
func (e *Exporter) Write(ctx context.Context, table string, recs []record.Record) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sink %s: table %s: not sent: %w", e.name, table, err)
	}
	if len(recs) == 0 {
		return nil
	}
	b := &batch{table: table, recs: recs}

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, e.cfg.Concurrency)
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel() // the Write fails as a whole: stop the other requests
	}
	send := func(g *group) error {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return errStopped
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := e.deliver(ctx, b, g.items); err != nil {
				fail(err)
			}
		}()
		return nil
	}
	err := e.pack(ctx, b, send)
	if err != nil && !errors.Is(err, errStopped) {
		cancel() // a record could not be dead-lettered: the Write fails
	}
	wg.Wait()
	switch {
	case err != nil && !errors.Is(err, errStopped):
		return err
	case firstErr != nil:
		return firstErr
	case err != nil: // cancelled by the caller before everything was sent
		return fmt.Errorf("sink %s: table %s: delivery stopped: %w", e.name, table, parent.Err())
	}
	return nil
}

// encodedGuess is what an encoding adds to a payload's size, for sizing
// request bodies up front (standard fields, a sink's envelope); a wrong
// guess costs one growth of a body, nothing else.
const encodedGuess = 512

// pack encodes every record straight into the body of the request it
// goes to, framed, so a request is sent without copying its records
// again, and hands each request to send once it is complete. Records
// that cannot be encoded, or that alone exceed MaxBytes, are
// dead-lettered here. It stops with send's error.
func (e *Exporter) pack(ctx context.Context, b *batch, send func(*group) error) error {
	open, sep, closing := e.framing.Open, e.framing.Sep, e.framing.Close
	frame := len(open) + len(closing)
	// left guesses the encoded size of the records not packed yet;
	// largest, the largest one's, which a body holds for a moment before
	// the record moves to the next request.
	left, largest := 0, 0
	for i := range b.recs {
		n := len(b.recs[i].Raw) + encodedGuess
		left += n
		largest = max(largest, n)
	}
	newBody := func() []byte {
		if left+frame <= e.cfg.MaxBytes {
			return make([]byte, 0, left+frame)
		}
		return make([]byte, 0, e.cfg.MaxBytes+min(largest, e.cfg.MaxBytes)+len(sep))
	}
	var (
		cur  = &group{}
		body []byte
	)
	flush := func() error {
		cur.body = append(body, closing...)
		g := cur
		cur, body = &group{}, nil
		return send(g)
	}
	for i := range b.recs {
		r := &b.recs[i]
		left -= len(r.Raw) + encodedGuess
		if body == nil {
			body = append(newBody(), open...)
		}
		mark := len(body) // where this record's separator (if any) starts
		if len(cur.items) > 0 {
			body = append(body, sep...)
		}
		start := len(body)
		out, err := e.enc(body, r)
		if err != nil {
			body = body[:mark]
			if err := e.deadLetter(ctx, b.table, r, fmt.Errorf("cannot be encoded for this destination: %w", err)); err != nil {
				return err
			}
			continue
		}
		body = out
		n := len(body) - start
		if n+frame > e.cfg.MaxBytes {
			body = body[:mark]
			reason := fmt.Errorf("encoded record is %d bytes, more than the %d bytes one request may carry (max_bytes); it can never be sent", n+frame, e.cfg.MaxBytes)
			if err := e.deadLetter(ctx, b.table, r, reason); err != nil {
				return err
			}
			continue
		}
		if len(cur.items) > 0 && (len(body)+len(closing) > e.cfg.MaxBytes || len(cur.items) >= e.cfg.MaxRecords ||
			(e.cfg.Apart != nil && e.cfg.Apart(&b.recs[cur.items[0].idx], r))) {
			// The record starts the next request: move its encoding there
			// (the new body is sized for the records left, this one included).
			left += n
			next := append(append(newBody(), open...), body[start:]...)
			left -= n
			body = body[:mark]
			if err := flush(); err != nil {
				return err
			}
			body = next
			start = len(open)
		}
		cur.items = append(cur.items, item{idx: i, grp: cur, start: start, end: len(body)})
	}
	if len(cur.items) > 0 {
		return flush()
	}
	return nil
}

// request returns the request for items g: a whole packed group is sent
// with the body built by pack; a part of one (after a split) gets a body
// of its own. The records are a view of the batch's when they are
// consecutive, as they usually are.
func (e *Exporter) request(b *batch, g []item) *Request {
	grp := g[0].grp
	var recs []record.Record
	if first, last := g[0].idx, g[len(g)-1].idx; last-first == len(g)-1 {
		recs = b.recs[first : last+1 : last+1]
	} else {
		recs = make([]record.Record, len(g))
		for i, it := range g {
			recs[i] = b.recs[it.idx]
		}
	}
	if len(g) == len(grp.items) {
		return &Request{Table: b.table, Body: grp.body, Records: recs}
	}
	n := len(e.framing.Open) + len(e.framing.Close) + len(e.framing.Sep)*(len(g)-1)
	for _, it := range g {
		n += it.end - it.start
	}
	body := make([]byte, 0, n)
	body = append(body, e.framing.Open...)
	for i, it := range g {
		if i > 0 {
			body = append(body, e.framing.Sep...)
		}
		body = append(body, grp.body[it.start:it.end]...)
	}
	body = append(body, e.framing.Close...)
	return &Request{Table: b.table, Body: body, Records: recs}
}

// verdict is how one request ended after its retries.
type verdict int

const (
	accepted       verdict = iota
	refusedRequest         // Permanent: about the request, never the records
	refusedRecords         // Rejected / RejectedAt: about the records' content
	tooLarge               // TooLarge
	failed                 // gave up on transient failures, or stopped
)

// deliver sends one group until it is accepted, dead-lettered, split or
// given up on.
func (e *Exporter) deliver(ctx context.Context, b *batch, g []item) error {
	req, v, err := e.try(ctx, b, g)
	return e.settle(ctx, b, g, req, v, err)
}

// settle acts on the verdict of one request of group g.
func (e *Exporter) settle(ctx context.Context, b *batch, g []item, req *Request, v verdict, err error) error {
	switch v {
	case accepted:
		return nil
	case refusedRequest:
		return fmt.Errorf("sink %s: table %s: the destination refused a request of %d records: %w; this concerns the request (credentials, permissions, endpoint, stream or index), not the records: nothing was dead-lettered and nothing more is sent until it is fixed", e.name, b.table, len(g), err)
	case refusedRecords:
		return e.refused(ctx, b, g, req, err)
	case tooLarge:
		if len(g) == 1 {
			return e.deadLetter(ctx, b.table, &req.Records[0], fmt.Errorf("rejected as too large even alone (%d bytes): %w", len(req.Body), err))
		}
		e.splits.Add(1)
		e.log.Debug("request too large, splitting", "sink", e.name, "table", b.table, "records", len(g), "bytes", len(req.Body))
		half := len(g) / 2
		if err := e.deliver(ctx, b, g[:half]); err != nil {
			return err
		}
		return e.deliver(ctx, b, g[half:])
	}
	return err
}

// refused handles a refusal of records for their own content. When the
// destination named the record (RejectedAt n), the records before it were
// accepted: record n is dead-lettered and only the records after it are
// sent, so none is duplicated. A request of one record is dead-lettered.
// Otherwise the record is looked for by halving (isolate).
func (e *Exporter) refused(ctx context.Context, b *batch, g []item, req *Request, err error) error {
	if n := rejectedAt(err); n >= 0 && n < len(g) {
		e.records.Add(int64(n))
		reason := fmt.Errorf("refused by the destination as record %d of a request of %d (the %d before it were accepted): %w", n, len(g), n, err)
		if err := e.deadLetter(ctx, b.table, &req.Records[n], reason); err != nil {
			return err
		}
		if n+1 == len(g) {
			return nil
		}
		return e.deliver(ctx, b, g[n+1:])
	}
	if len(g) == 1 {
		return e.deadLetter(ctx, b.table, &req.Records[0], fmt.Errorf("refused on its own by the destination: %w", err))
	}
	return e.isolate(ctx, b, g, err)
}

// isolate looks for the one refused record of g (several records, refused
// for their content without naming one) by sending each half. A half that
// is accepted proves the destination takes the others, so the refused
// half is narrowed down until one record is left, which is dead-lettered.
// When both halves are refused, more than one record is, which points at
// the destination's schema or stream rather than at one bad record: the
// Write fails and nothing is dead-lettered. One bad record among n costs
// about 2·log2(n) extra requests.
func (e *Exporter) isolate(ctx context.Context, b *batch, g []item, cause error) error {
	e.log.Warn("request refused for the content of its records without naming one; sending each half to find it",
		"sink", e.name, "table", b.table, "records", len(g), "error", cause)
	half := len(g) / 2
	parts := [2][]item{g[:half], g[half:]}
	var (
		held [2]error
		reqs [2]*Request
	)
	for i, p := range parts {
		req, v, err := e.try(ctx, b, p)
		if v == refusedRecords && (rejectedAt(err) < 0 || rejectedAt(err) >= len(p)) {
			held[i], reqs[i] = err, req
			continue
		}
		if err := e.settle(ctx, b, p, req, v, err); err != nil {
			return err
		}
	}
	switch {
	case held[0] != nil && held[1] != nil:
		return fmt.Errorf("sink %s: table %s: a request of %d records was refused for their content (%w), and so were both of its halves: more than one record is refused, which points at the destination's schema or stream declaration rather than at one bad record; nothing was dead-lettered: compare the destination's declaration with the records", e.name, b.table, len(g), held[1])
	case held[0] != nil:
		return e.narrow(ctx, b, parts[0], reqs[0], held[0])
	case held[1] != nil:
		return e.narrow(ctx, b, parts[1], reqs[1], held[1])
	}
	return nil
}

// narrow continues isolate in the refused half p, whose sibling was accepted.
func (e *Exporter) narrow(ctx context.Context, b *batch, p []item, req *Request, err error) error {
	if len(p) == 1 {
		return e.deadLetter(ctx, b.table, &req.Records[0], fmt.Errorf("refused on its own by the destination, which accepted the other records of its request: %w", err))
	}
	return e.isolate(ctx, b, p, err)
}

// try sends one request, retrying transient failures with backoff (or the
// server's Retry-After), and returns how it ended.
func (e *Exporter) try(ctx context.Context, b *batch, g []item) (*Request, verdict, error) {
	req := e.request(b, g)
	start := e.cfg.Now()
	for attempt := 1; ; attempt++ {
		if err := e.wait(ctx); err != nil {
			return req, failed, fmt.Errorf("sink %s: table %s: delivery stopped: %w", e.name, b.table, err)
		}
		e.count(req, attempt)
		err := e.attempt(ctx, req)
		if err == nil {
			e.records.Add(int64(len(g)))
			return req, accepted, nil
		}
		if ctx.Err() != nil {
			return req, failed, fmt.Errorf("sink %s: table %s: delivery stopped: %w (last error: %v)", e.name, b.table, ctx.Err(), err)
		}
		switch kindOf(err) {
		case kindPermanent:
			return req, refusedRequest, err
		case kindRejected:
			return req, refusedRecords, err
		case kindTooLarge:
			return req, tooLarge, err
		}

		delay, told := retryAfterOf(err)
		if !told {
			delay = e.backoff(attempt)
		}
		if e.cfg.MaxAttempts > 0 && attempt >= e.cfg.MaxAttempts {
			return req, failed, fmt.Errorf("sink %s: table %s: gave up on a request of %d records after %d attempts: %w (the destination keeps failing; raise max_attempts or check its health)", e.name, b.table, len(g), attempt, err)
		}
		if elapsed := e.cfg.Now().Sub(start); elapsed+delay > e.cfg.MaxElapsed {
			return req, failed, fmt.Errorf("sink %s: table %s: gave up on a request of %d records after %d attempts in %s (next wait %s would pass max_elapsed %s): %w", e.name, b.table, len(g), attempt, elapsed.Round(time.Millisecond), delay, e.cfg.MaxElapsed, err)
		}
		e.log.Warn("request failed, retrying", "sink", e.name, "table", b.table, "records", len(g),
			"attempt", attempt, "wait", delay, "server_asked", told, "error", err)
		if err := e.cfg.Sleep(ctx, delay); err != nil {
			return req, failed, fmt.Errorf("sink %s: table %s: delivery stopped while waiting to retry: %w", e.name, b.table, err)
		}
	}
}

// attemptTimeout is an attempt cut by AttemptTimeout. It hides the
// SendFunc's classification on purpose: a request cut short is retried,
// whatever error the cut produced.
type attemptTimeout struct {
	d    time.Duration
	last string
}

func (t *attemptTimeout) Error() string {
	return fmt.Sprintf("no answer within %s (delivery.attempt_timeout): %s", t.d, t.last)
}
func (t *attemptTimeout) Unwrap() error { return context.DeadlineExceeded }

// attempt performs one SendFunc call within AttemptTimeout.
func (e *Exporter) attempt(ctx context.Context, req *Request) error {
	actx, cancel := context.WithTimeout(ctx, e.cfg.AttemptTimeout)
	defer cancel()
	err := e.send(actx, req)
	if err != nil && ctx.Err() == nil && actx.Err() != nil {
		return &attemptTimeout{d: e.cfg.AttemptTimeout, last: err.Error()}
	}
	return err
}

func (e *Exporter) count(req *Request, attempt int) {
	n := int64(len(req.Body))
	e.requests.Add(1)
	if attempt > 1 {
		e.retries.Add(1)
	}
	e.bytesSent.Add(n)
	for {
		m := e.maxRequestBytes.Load()
		if n <= m || e.maxRequestBytes.CompareAndSwap(m, n) {
			return
		}
	}
}

// backoff is full-jitter exponential: a random wait in
// [0, min(MaxBackoff, InitialBackoff·2^(attempt-1))].
func (e *Exporter) backoff(attempt int) time.Duration {
	d := httpx.BackoffCeil(attempt, e.cfg.InitialBackoff, e.cfg.MaxBackoff)
	j := e.cfg.Jitter(d)
	if j < 0 || j > d { // a broken jitter function must not disable backoff
		return d
	}
	return j
}

// wait takes a token from the rate limiter, sleeping through the
// configured Sleep so tests control time.
func (e *Exporter) wait(ctx context.Context) error {
	if e.limiter == nil {
		return ctx.Err()
	}
	now := e.cfg.Now()
	r := e.limiter.ReserveN(now, 1)
	if !r.OK() { // cannot happen: burst is at least 1
		return errors.New("rate limiter refused the request")
	}
	d := r.DelayFrom(now)
	if d <= 0 {
		return ctx.Err()
	}
	if err := e.cfg.Sleep(ctx, d); err != nil {
		r.CancelAt(e.cfg.Now())
		return err
	}
	return nil
}

// deadLetter hands r to the dead-letter store and logs it; a record is
// never dropped silently.
func (e *Exporter) deadLetter(ctx context.Context, table string, r *record.Record, reason error) error {
	e.log.Error("record cannot be delivered, dead-lettering it", "sink", e.name, "table", table,
		"record_id", r.ID, "source", r.Source, "reason", reason.Error(), "kept", e.dl != nil)
	if e.dl != nil {
		if err := e.dl.Put(ctx, e.name, table, r, reason); err != nil {
			return fmt.Errorf("sink %s: table %s: record %s cannot be delivered (%v) and could not be dead-lettered: %w", e.name, table, r.ID, reason, err)
		}
	}
	e.deadLettered.Add(1)
	return nil
}
