package splunk

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/sink/sinktest"
)

const testToken = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

var guidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// envelope is one decoded HEC event as the fake received it.
type envelope struct {
	Time       *json.Number    `json:"time"`
	Host       string          `json:"host"`
	Source     string          `json:"source"`
	Sourcetype string          `json:"sourcetype"`
	Index      *string         `json:"index"`
	Event      json.RawMessage `json:"event"`
}

// fakeHEC is a strict HEC receiver (docs/REFERENCE.md §6): token, channel GUID,
// gzip, concatenated envelopes (never an array), optional acks.
type fakeHEC struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	ack      bool
	ackAfter int // queries an ackId must be asked about before it turns true; <0: never
	events   []envelope
	requests []*http.Request
	bodies   [][]byte // decompressed event bodies
	channels map[string]bool
	nextAck  int64
	asked    map[int64]int
	acked    map[int64]bool
	ackQuery [][]int64
	health   func(w http.ResponseWriter)
	// override answers event posts when set (status, body, headers).
	override func(n int) (int, string, http.Header)
	// bad events (by RecordId) are refused like HEC does: code 6 with
	// invalid-event-number, the events before it indexed.
	bad   map[string]bool
	posts int
}

func newFakeHEC(t testing.TB) *fakeHEC {
	f := &fakeHEC{t: t, channels: map[string]bool{}, asked: map[int64]int{}, acked: map[int64]bool{}}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func hecJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeHEC) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path == "/services/collector/health" {
		if f.health != nil {
			f.health(w)
			return
		}
		hecJSON(w, 200, map[string]any{"text": "HEC is healthy", "code": 17})
		return
	}
	if r.Header.Get("Authorization") != "Splunk "+testToken {
		hecJSON(w, 403, map[string]any{"text": "Invalid token", "code": 4})
		return
	}
	ch := r.Header.Get("X-Splunk-Request-Channel")
	if !guidRe.MatchString(ch) {
		hecJSON(w, 400, map[string]any{"text": "Invalid data channel", "code": 11})
		return
	}
	f.channels[ch] = true
	body, err := io.ReadAll(r.Body)
	if err != nil {
		hecJSON(w, 400, map[string]any{"text": "Invalid data format", "code": 6})
		return
	}
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			hecJSON(w, 400, map[string]any{"text": "Invalid data format", "code": 6})
			return
		}
		if body, err = io.ReadAll(zr); err != nil {
			hecJSON(w, 400, map[string]any{"text": "Invalid data format", "code": 6})
			return
		}
	}
	switch r.URL.Path {
	case "/services/collector/ack":
		f.serveAck(w, r, body)
	case "/services/collector/event":
		f.serveEvent(w, r, body)
	default:
		hecJSON(w, 404, map[string]any{"text": "The requested URL was not found on this server.", "code": 404})
	}
}

func (f *fakeHEC) serveEvent(w http.ResponseWriter, r *http.Request, body []byte) {
	if len(bytes.TrimSpace(body)) == 0 {
		hecJSON(w, 400, map[string]any{"text": "No data", "code": 5})
		return
	}
	f.posts++
	f.requests = append(f.requests, r)
	if f.override != nil {
		if st, b, h := f.override(f.posts); st != 0 {
			for k, v := range h {
				w.Header()[k] = v
			}
			w.WriteHeader(st)
			_, _ = io.WriteString(w, b)
			return
		}
	}
	f.bodies = append(f.bodies, body)
	var got []envelope
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	for i := 0; ; i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			break
		} else if err != nil || raw[0] != '{' {
			f.events = append(f.events, got...)
			hecJSON(w, 400, map[string]any{"text": "Invalid data format", "code": 6, "invalid-event-number": i})
			return
		}
		var e envelope
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if err := d.Decode(&e); err != nil || len(e.Event) == 0 {
			f.events = append(f.events, got...)
			hecJSON(w, 400, map[string]any{"text": "Event field is required", "code": 12, "invalid-event-number": i})
			return
		}
		var id struct{ RecordId string }
		if json.Unmarshal(e.Event, &id) == nil && f.bad[id.RecordId] {
			f.events = append(f.events, got...)
			hecJSON(w, 400, map[string]any{"text": "Invalid data format", "code": 6, "invalid-event-number": i})
			return
		}
		got = append(got, e)
	}
	f.events = append(f.events, got...)
	if !f.ack {
		hecJSON(w, 200, map[string]any{"text": "Success", "code": 0})
		return
	}
	id := f.nextAck
	f.nextAck++
	hecJSON(w, 200, map[string]any{"text": "Success", "code": 0, "ackId": id})
}

func (f *fakeHEC) serveAck(w http.ResponseWriter, r *http.Request, body []byte) {
	if !f.ack {
		hecJSON(w, 400, map[string]any{"text": "ACK is disabled", "code": 14})
		return
	}
	if r.URL.Query().Get("channel") != r.Header.Get("X-Splunk-Request-Channel") {
		hecJSON(w, 400, map[string]any{"text": "Invalid data channel", "code": 11})
		return
	}
	var q struct {
		Acks []int64 `json:"acks"`
	}
	if err := json.Unmarshal(body, &q); err != nil || q.Acks == nil {
		hecJSON(w, 400, map[string]any{"text": "Invalid data format", "code": 6})
		return
	}
	f.ackQuery = append(f.ackQuery, q.Acks)
	out := map[string]bool{}
	for _, id := range q.Acks {
		f.asked[id]++
		ok := id < f.nextAck && !f.acked[id] && f.ackAfter >= 0 && f.asked[id] > f.ackAfter
		if ok {
			f.acked[id] = true // a true is reported once, then forgotten
		}
		out[strconv.FormatInt(id, 10)] = ok
	}
	hecJSON(w, 200, map[string]any{"acks": out})
}

// received returns the events as records (table = sourcetype).
func (f *fakeHEC) received(t testing.TB) []record.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []record.Record
	for _, e := range f.events {
		r, err := sinktest.DecodeLine(e.Sourcetype, e.Event)
		if err != nil {
			t.Errorf("event is not a standard record line: %v", err)
			continue
		}
		out = append(out, r)
	}
	return out
}

type testOpts struct {
	mutate func(*Config)
	log    io.Writer
}

// newTestSink builds a sink talking to f with a fake clock whose sleeps
// advance time instantly.
func newTestSink(t testing.TB, f *fakeHEC, o testOpts) (*Sink, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	cfg := *DefaultConfig()
	cfg.URL = f.srv.URL
	cfg.Host = "harvester-01"
	cfg.Delivery.Sleep = clk.Sleep
	cfg.Delivery.Now = clk.Now
	cfg.Delivery.InitialBackoff = time.Millisecond
	cfg.Delivery.MaxBackoff = 10 * time.Millisecond
	if o.mutate != nil {
		o.mutate(&cfg)
	}
	var logger *slog.Logger
	if o.log != nil {
		logger = slog.New(slog.NewTextHandler(o.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	deps := sink.Deps{
		Logger:    logger,
		Now:       clk.Now,
		Transport: f.srv.Client().Transport,
		Getenv:    func(k string) string { return map[string]string{EnvToken: testToken}[k] },
		DataDir:   t.TempDir(),
	}
	s, err := New(deps, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s.sleep = clk.Sleep
	return s, clk
}

// fakeClock advances only when something sleeps on it.
type fakeClock struct {
	mu    sync.Mutex
	t     time.Time
	slept time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.slept += d
	c.mu.Unlock()
	return nil
}

func (c *fakeClock) Slept() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slept
}

func mustStart(t testing.TB, s *Sink) {
	t.Helper()
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
}

func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
