// Package splunk is the sink that sends records to a Splunk HTTP Event
// Collector (HEC) as concatenated JSON envelopes, optionally waiting for
// indexer acknowledgement before a batch counts as delivered.
package splunk

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"github.com/defenderharvester/defenderharvester/internal/clock"
	"github.com/defenderharvester/defenderharvester/internal/delivery"
	"github.com/defenderharvester/defenderharvester/internal/httpx"
	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/sink"
)

// Name is the output's config key.
const Name = "splunk"

// EnvToken is the environment variable holding the HEC token when
// token_file is not set.
const EnvToken = "DH_SPLUNK_TOKEN"

// Defaults of Config.
const (
	DefaultSource       = "defenderharvester"
	DefaultTimeout      = 30 * time.Second
	DefaultPollInterval = 10 * time.Second
	DefaultAckTimeout   = 5 * time.Minute
	// defaultDeadLetterDir is under the data directory, shared with the
	// sentinel output (each writes its own <sink>-deadletter-*.jsonl).
	defaultDeadLetterDir = "deadletter"
)

const (
	eventPath  = "/services/collector/event"
	ackPath    = "/services/collector/ack"
	healthPath = "/services/collector/health"
	// maxReplyBytes bounds how much of a HEC answer is read: replies are
	// tiny JSON objects, anything larger is not HEC.
	maxReplyBytes = 64 << 10
)

func init() {
	sink.Register(sink.NewFactory(Name,
		"Splunk HTTP Event Collector (/services/collector/event), gzip, optional indexer acknowledgement",
		DefaultConfig, New))
}

// Sink is the Splunk HEC output.
type Sink struct {
	name        string // instance name
	log         *slog.Logger
	client      *http.Client
	ownsRT      bool
	token       string
	channel     string
	base        string // scheme://host[:port][/prefix], no trailing slash
	eventURL    string
	ackURL      string
	healthURL   string
	index       string
	host        string
	source      string
	sourcetype  string
	sourcetypes map[string]string
	gzip        bool
	ack         bool
	pollEvery   time.Duration
	ackTimeout  time.Duration
	timeout     time.Duration
	insecure    bool
	exp         *delivery.Exporter

	// Test seams for the ack loop: now is the clock, sleep waits.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	acks      *acker
	warnNoAck sync.Once
	gzPool    sync.Pool
	envelopes sync.Map // table -> envelope fields (see envelope)

	mu       sync.Mutex
	started  bool
	closed   bool
	inflight sync.WaitGroup
}

// New builds the sink; nothing is sent before Start.
func New(deps sink.Deps, cfg Config) (*Sink, error) {
	deps = deps.WithDefaults()
	log := deps.Logger.With("output", deps.NameOr(Name))
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base, _ := parseBase(cfg.URL) // checked by Validate
	token, err := loadToken(cfg.TokenFile, deps.Getenv)
	if err != nil {
		return nil, err
	}
	host := cfg.Host
	if host == "" {
		if host, err = os.Hostname(); err != nil || host == "" {
			return nil, fmt.Errorf("cannot determine this machine's host name (%v): set outputs.splunk.host", err)
		}
	}
	source := cfg.Source
	if source == "" {
		source = DefaultSource
	}
	timeout, poll, ackTimeout := cfg.durations()
	rt, owns, err := transport(cfg, timeout, deps.Transport, log)
	if err != nil {
		return nil, err
	}
	channel, err := newGUID()
	if err != nil {
		return nil, fmt.Errorf("splunk: cannot create the HEC channel id: %w", err)
	}
	s := &Sink{
		name: deps.NameOr(Name),
		log:  log, token: token, channel: channel, base: base,
		eventURL: base + eventPath, ackURL: base + ackPath + "?channel=" + url.QueryEscape(channel), healthURL: base + healthPath,
		index: cfg.Index, host: host, source: source, sourcetype: cfg.Sourcetype, sourcetypes: cfg.Sourcetypes,
		gzip: cfg.Gzip, ack: cfg.Ack.Enabled, pollEvery: poll, ackTimeout: ackTimeout, timeout: timeout,
		now: deps.Now, sleep: clock.Sleep, ownsRT: owns, insecure: cfg.InsecureSkipVerify,
		// Authenticated requests never follow redirects: the token would
		// go wherever the redirect points.
		client: httpx.NewClient(rt, 0),
	}
	s.acks = &acker{s: s, pending: map[int64]bool{}}
	dcfg := cfg.Delivery
	if dcfg.MaxBytes == 0 {
		dcfg.MaxBytes = delivery.DefaultMaxBytes
	}
	dcfg.AttemptTimeout = cfg.attemptTimeout()
	dir := cfg.DeadLetterDir
	if dir == "" {
		dir = filepath.Join(deps.DataDir, defaultDeadLetterDir)
	}
	s.exp, err = delivery.New(deps.NameOr(Name), dcfg, delivery.Concatenated, s.encode, s.send, delivery.NewFileDeadLetter(dir, deps.Now), log)
	if err != nil {
		return nil, fmt.Errorf("splunk: %w", err)
	}
	return s, nil
}

// loadToken reads the HEC token from the file or the environment and
// checks its shape; errors never contain it.
func loadToken(file string, getenv func(string) string) (string, error) {
	var tok, from string
	if file != "" {
		v, err := auth.ReadSecretFile(file)
		if err != nil {
			return "", fmt.Errorf("splunk: token_file: %w", err)
		}
		tok, from = v, "token_file "+file
	} else {
		tok, from = strings.TrimSpace(getenv(EnvToken)), EnvToken
	}
	if tok == "" {
		return "", fmt.Errorf("splunk: no HEC token: set %s or outputs.splunk.token_file (a file readable only by you)", EnvToken)
	}
	for _, c := range tok {
		if c <= ' ' || c == 0x7f {
			return "", fmt.Errorf("splunk: the HEC token in %s contains spaces or control characters; it should be a GUID like 01234567-89ab-cdef-0123-456789abcdef", from)
		}
	}
	return tok, nil
}

// transport picks the round tripper: the injected one (emulator) unless
// ca_file or insecure_skip_verify ask for a TLS setup of their own. Its
// own transports bound dialling, the TLS handshake and the wait for
// response headers, so a stalled HEC cannot hang a call.
func transport(cfg Config, timeout time.Duration, injected http.RoundTripper, log *slog.Logger) (http.RoundTripper, bool, error) {
	if cfg.CAFile == "" && !cfg.InsecureSkipVerify {
		if injected != nil {
			return injected, false, nil
		}
		return newHTTPTransport(&tls.Config{MinVersion: tls.VersionTLS12}, timeout), true, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, false, fmt.Errorf("splunk: ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, false, fmt.Errorf("splunk: ca_file %s holds no PEM certificate; export the CA that signed the HEC certificate in PEM form", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.InsecureSkipVerify {
		log.Warn("TLS certificate verification of the Splunk HEC is OFF (insecure_skip_verify): anyone on the path can read the token and the events; use ca_file instead")
		tc.InsecureSkipVerify = true
	}
	return newHTTPTransport(tc, timeout), true, nil
}

// Dial and TLS handshake bounds of the sink's own transports.
const (
	dialTimeout      = 15 * time.Second
	handshakeTimeout = 15 * time.Second
)

func newHTTPTransport(tc *tls.Config, responseHeader time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          32,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   handshakeTimeout,
		ResponseHeaderTimeout: responseHeader,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       tc,
	}
}

// newGUID returns a random (version 4) GUID, the HEC channel id.
func newGUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hx = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hx[c>>4], hx[c&0x0f])
	}
	return string(out), nil
}

// Name implements sink.Sink.
func (s *Sink) Name() string { return s.name }

// Channel is the HEC channel GUID this sink sends on (one per process).
func (s *Sink) Channel() string { return s.channel }

// Stats returns the delivery counters.
func (s *Sink) Stats() delivery.Stats { return s.exp.Stats() }

// Warnings implements sink.Warner.
func (s *Sink) Warnings() []string {
	if s.insecure {
		return []string{"TLS certificate verification is off (insecure_skip_verify: true): anyone on the path can read the HEC token and the events; use ca_file instead"}
	}
	return nil
}

// Start checks that HEC is up and that it accepts the token, so a wrong
// URL or token fails the run before anything is harvested.
func (s *Sink) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("splunk output is shut down and cannot be restarted; build a new one")
	}
	if s.started {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	if err := s.checkHealth(ctx); err != nil {
		return err
	}
	if err := s.checkToken(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	s.log.Info("splunk HEC ready", "url", s.eventURL, "channel", s.channel, "ack", s.ack, "gzip", s.gzip)
	return nil
}

func (s *Sink) checkHealth(ctx context.Context) error {
	status, rep, _, err := s.call(ctx, http.MethodGet, s.healthURL, nil, false)
	if err != nil {
		return fmt.Errorf("splunk: health check of %s failed: %w; check url, DNS, firewall and that HEC is enabled", s.healthURL, err)
	}
	switch {
	case status == http.StatusOK && (rep.Code == nil || *rep.Code == 17):
		return nil
	case status == http.StatusServiceUnavailable:
		// Busy or ack service down: Write retries, so only warn.
		s.log.Warn("splunk HEC reports itself unhealthy; events will be retried until it recovers", "status", status, "code", codeOf(rep), "text", s.clean(rep.Text))
		return nil
	case status == http.StatusNotFound:
		return fmt.Errorf("splunk: %s answered 404: no HTTP Event Collector there; check url (the HEC base, e.g. https://splunk.example.com:8088) and that HEC is enabled (Settings → Data inputs → HTTP Event Collector → Global Settings)", s.healthURL)
	default:
		return fmt.Errorf("splunk: health check of %s answered HTTP %d (code %s, %q); check url and the HEC input", s.healthURL, status, codeOf(rep), s.clean(rep.Text))
	}
}

// checkToken posts an empty batch: HEC answers "No data" (code 5) for a
// good token and a token error otherwise, indexing nothing.
func (s *Sink) checkToken(ctx context.Context) error {
	status, rep, hdr, err := s.call(ctx, http.MethodPost, s.eventURL, nil, true)
	if err != nil {
		return fmt.Errorf("splunk: token check against %s failed: %w", s.eventURL, err)
	}
	if status == http.StatusOK || (rep.Code != nil && *rep.Code == 5) {
		return nil
	}
	cerr := s.classify(status, rep, hdr, "")
	if delivery.IsPermanent(cerr) {
		return fmt.Errorf("splunk: HEC refused the token check: %w", cerr)
	}
	s.log.Warn("splunk HEC could not check the token now; events will be retried", "error", cerr)
	return nil
}

// Write sends recs (one table) and returns nil once HEC accepted all of
// them (and, with ack, the indexers acknowledged them). A batch holding a
// record that is not valid JSON is rejected whole before anything is sent.
func (s *Sink) Write(ctx context.Context, table string, recs []record.Record) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("splunk output is shut down: %d records of %s not sent", len(recs), table)
	}
	s.inflight.Add(1)
	s.mu.Unlock()
	defer s.inflight.Done()
	if len(recs) == 0 {
		return nil
	}
	copied := false
	for i := range recs {
		r := &recs[i]
		if err := validate(r); err != nil {
			return fmt.Errorf("splunk: table %s: batch not sent: %w", table, err)
		}
		if r.Table != table { // the envelope's sourcetype follows the Write's table
			if !copied {
				recs = append([]record.Record(nil), recs...)
				copied = true
			}
			recs[i].Table = table
		}
	}
	return s.exp.Write(ctx, table, recs)
}

// validate refuses a record that would give a broken event; a payload
// the pipeline already checked (RawValid) is not scanned again.
func validate(r *record.Record) error {
	if !r.RawValid && !json.Valid(r.Raw) {
		return fmt.Errorf("record %s: payload is not valid JSON: %w", r.ID, record.ErrInvalidJSON)
	}
	for _, f := range r.Extra {
		if !json.Valid(f.Value) {
			return fmt.Errorf("record %s: field %q is not valid JSON: %w", r.ID, f.Key, record.ErrInvalidJSON)
		}
	}
	return nil
}

// Shutdown waits for Writes in flight (bounded by ctx) and releases
// connections. Idempotent.
func (s *Sink) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	already := s.closed
	s.closed = true
	s.mu.Unlock()
	if already {
		return nil
	}
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("splunk: shutdown stopped while writes were in flight: %w", ctx.Err())
	}
	if s.ownsRT {
		s.client.CloseIdleConnections()
	}
	return nil
}

// sourcetypeFor is the envelope's sourcetype for table.
func (s *Sink) sourcetypeFor(table string) string {
	if st, ok := s.sourcetypes[table]; ok {
		return st
	}
	if s.sourcetype != "" {
		return s.sourcetype
	}
	return table
}

// encode appends one HEC envelope; the event is the standard output line.
func (s *Sink) encode(dst []byte, r *record.Record) ([]byte, error) {
	start := len(dst)
	dst = append(dst, '{')
	if sec := r.Time.Unix(); sec > 0 {
		dst = append(dst, `"time":`...)
		dst = appendEpoch(dst, r.Time)
		dst = append(dst, ',')
	}
	dst = append(dst, s.envelope(r.Table)...)
	out, err := r.AppendJSON(dst)
	if err != nil {
		return dst[:start], err
	}
	return append(out, '}'), nil
}

// envelope returns the fields of a table's envelopes after "time", up to
// the event: `"host":…,"source":…,"sourcetype":…[,"index":…],"event":`.
// They are the same for every record of a table, so they are encoded
// once per table.
func (s *Sink) envelope(table string) []byte {
	if v, ok := s.envelopes.Load(table); ok {
		return v.([]byte)
	}
	var b []byte
	b = append(b, `"host":`...)
	b = appendJSONString(b, s.host)
	b = append(b, `,"source":`...)
	b = appendJSONString(b, s.source)
	b = append(b, `,"sourcetype":`...)
	b = appendJSONString(b, s.sourcetypeFor(table))
	if s.index != "" {
		b = append(b, `,"index":`...)
		b = appendJSONString(b, s.index)
	}
	b = append(b, `,"event":`...)
	v, _ := s.envelopes.LoadOrStore(table, b)
	return v.([]byte)
}

// appendEpoch writes t as epoch seconds with a microsecond fraction
// (trailing zeros trimmed to milliseconds), the form HEC's "time" takes.
func appendEpoch(dst []byte, t time.Time) []byte {
	us := t.UnixMicro()
	dst = strconv.AppendInt(dst, us/1_000_000, 10)
	frac := us % 1_000_000
	var digits [6]byte
	for i := 5; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	n := 6
	for n > 3 && digits[n-1] == '0' {
		n--
	}
	dst = append(dst, '.')
	return append(dst, digits[:n]...)
}

func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return append(dst, b...)
}

// gzipBody compresses body with a pooled writer.
func (s *Sink) gzipBody(body []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(body)/4 + 64)
	zw, _ := s.gzPool.Get().(*gzip.Writer)
	if zw == nil {
		zw, _ = gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	} else {
		zw.Reset(&buf)
	}
	defer s.gzPool.Put(zw)
	if _, err := zw.Write(body); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// send is the delivery.SendFunc: one POST, then (with ack) the wait for
// the indexers.
func (s *Sink) send(ctx context.Context, req *delivery.Request) error {
	status, rep, hdr, err := s.call(ctx, http.MethodPost, s.eventURL, req.Body, true)
	if err != nil {
		return fmt.Errorf("cannot reach Splunk HEC at %s: %w", s.base, err)
	}
	if status != http.StatusOK {
		return s.classify(status, rep, hdr, req.Table)
	}
	if rep.Code == nil || *rep.Code != 0 {
		// A 200 that is not HEC's "Success" (a proxy or maintenance page)
		// proves nothing was indexed: retry rather than count it delivered.
		return fmt.Errorf("Splunk HEC at %s answered 200 without HEC's success reply (code 0); a proxy or load balancer in front of HEC may be answering instead", s.base)
	}
	if !s.ack {
		return nil
	}
	if rep.AckID == nil {
		s.warnNoAck.Do(func() {
			s.log.Warn("ack.enabled is true but HEC returned no ackId: the token does not use indexer acknowledgement, so events count as delivered when HEC accepts them; enable \"indexer acknowledgement\" on the token or set ack.enabled: false")
		})
		return nil
	}
	return s.acks.wait(ctx, *rep.AckID, len(req.Records))
}

// reply is HEC's answer body.
type reply struct {
	Text       string `json:"text"`
	Code       *int   `json:"code"`
	AckID      *int64 `json:"ackId"`
	InvalidNum *int   `json:"invalid-event-number"`
}

// parseReply decodes a HEC answer; a body that is not HEC JSON gives an
// empty reply (proxies answer HTML).
func parseReply(b []byte) reply {
	var r reply
	if json.Unmarshal(b, &r) != nil {
		return reply{}
	}
	if r.AckID != nil && *r.AckID < 0 {
		r.AckID = nil
	}
	return r
}

func codeOf(r reply) string {
	if r.Code == nil {
		return "none"
	}
	return strconv.Itoa(*r.Code)
}

// call performs one HEC request and decodes the answer.
func (s *Sink) call(ctx context.Context, method, u string, body []byte, auth bool) (int, reply, http.Header, error) {
	status, raw, hdr, err := s.do(ctx, method, u, body, auth)
	if err != nil {
		return 0, reply{}, nil, err
	}
	if status >= 300 && status < 400 {
		loc := hdr.Get("Location")
		if u, err := url.Parse(loc); err == nil {
			u.RawQuery, u.User = "", nil // a query or user info may carry credentials
			loc = u.String()
		}
		return status, reply{Text: "redirect to " + loc}, hdr, nil
	}
	return status, parseReply(raw), hdr, nil
}

// callRaw performs one authenticated HEC request, returning the raw answer.
func (s *Sink) callRaw(ctx context.Context, method, u string, body []byte) (int, []byte, http.Header, error) {
	return s.do(ctx, method, u, body, true)
}

// do sends one request (gzip'd when configured). Errors never hold the
// token.
func (s *Sink) do(parent context.Context, method, u string, body []byte, auth bool) (int, []byte, http.Header, error) {
	ctx, cancel := context.WithTimeout(parent, s.timeout)
	defer cancel()
	var rd io.Reader
	gz := false
	if body != nil {
		if s.gzip && len(body) > 0 {
			zb, err := s.gzipBody(body)
			if err != nil {
				return 0, nil, nil, fmt.Errorf("gzip request: %w", err)
			}
			body, gz = zb, true
		}
		rd = bytes.NewReader(body)
	} else if method == http.MethodPost {
		rd = http.NoBody
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("build request: %w", err)
	}
	if auth {
		req.Header.Set("Authorization", "Splunk "+s.token)
	}
	req.Header.Set("X-Splunk-Request-Channel", s.channel)
	req.Header.Set("User-Agent", "defenderharvester")
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() != nil && parent.Err() == nil {
			return 0, nil, nil, fmt.Errorf("no answer within %s (outputs.splunk.timeout): %w", s.timeout, s.scrub(err))
		}
		return 0, nil, nil, s.scrub(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // keep the connection reusable
	if err != nil && resp.StatusCode == http.StatusOK {
		return 0, nil, nil, fmt.Errorf("reading HEC answer: %w", s.scrub(err))
	}
	return resp.StatusCode, b, resp.Header, nil
}

// scrub removes the token from an error's text, in case a transport or
// proxy echoed it.
func (s *Sink) scrub(err error) error {
	if err == nil || s.token == "" || !strings.Contains(err.Error(), s.token) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), s.token, "[REDACTED]"))
}

// clean makes server text safe and short for messages.
func (s *Sink) clean(t string) string {
	if s.token != "" {
		t = strings.ReplaceAll(t, s.token, "[REDACTED]")
	}
	if len(t) > 200 {
		t = t[:200] + "…"
	}
	return t
}
