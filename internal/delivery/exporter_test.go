package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/defenderharvester/defenderharvester/internal/clock"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"
)

// fakeClock is a clock whose Sleep records the wait and moves time on at
// once, so no test waits for real.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.t = c.t.Add(d)
	return nil
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// testConfig wires the fake clock and a jitter that always picks the
// maximum, so backoff waits are exact.
func testConfig(c *fakeClock, cfg Config) Config {
	cfg.Now, cfg.Sleep = c.Now, c.Sleep
	cfg.Jitter = func(max time.Duration) time.Duration { return max }
	return cfg
}

func encJSON(dst []byte, r *record.Record) ([]byte, error) { return r.AppendJSON(dst) }

// recs builds n records whose payload pads to roughly size bytes each.
func recs(n, size int) []record.Record {
	out := make([]record.Record, n)
	t := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	for i := range out {
		pad := strings.Repeat("x", size)
		out[i] = record.Record{
			Tenant: "tenant", Source: "actioncenter", Table: "MdeActions",
			ID: fmt.Sprintf("r%04d", i), Time: t, HarvestedAt: t,
			Raw: json.RawMessage(fmt.Sprintf(`{"n":%d,"pad":%q}`, i, pad)),
		}
	}
	return out
}

// memDL is an in-memory dead letter.
type memDL struct {
	mu      sync.Mutex
	ids     []string
	reasons []string
}

func (m *memDL) Put(_ context.Context, _, _ string, r *record.Record, reason error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ids = append(m.ids, r.ID)
	m.reasons = append(m.reasons, reason.Error())
	return nil
}

// recorder is a SendFunc that keeps a copy of every request it accepts.
type recorder struct {
	mu     sync.Mutex
	bodies [][]byte
	ids    [][]string
}

func (r *recorder) accept(req *Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bodies = append(r.bodies, append([]byte(nil), req.Body...))
	ids := make([]string, len(req.Records))
	for i := range req.Records {
		ids[i] = req.Records[i].ID
	}
	r.ids = append(r.ids, ids)
}

func (r *recorder) allIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ids := range r.ids {
		out = append(out, ids...)
	}
	return out
}

// decodeIDs reads the RecordIds out of a body as the destination would.
func decodeIDs(t *testing.T, f Framing, body []byte) []string {
	t.Helper()
	var objs []map[string]any
	if bytes.Equal(f.Open, JSONArray.Open) {
		if err := json.Unmarshal(body, &objs); err != nil {
			t.Fatalf("body is not a JSON array: %v", err)
		}
	} else {
		dec := json.NewDecoder(bytes.NewReader(body))
		for {
			var o map[string]any
			if err := dec.Decode(&o); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("body is not concatenated objects: %v", err)
			}
			objs = append(objs, o)
		}
	}
	ids := make([]string, len(objs))
	for i, o := range objs {
		ids[i], _ = o["RecordId"].(string)
	}
	return ids
}

func idsOf(rs []record.Record) []string {
	out := make([]string, len(rs))
	for i := range rs {
		out[i] = rs[i].ID
	}
	return out
}

func TestPacking(t *testing.T) {
	tests := []struct {
		name       string
		framing    Framing
		n, size    int
		maxBytes   int
		maxRecords int
		wantReqs   int // 0 = do not check
	}{
		{"json array, byte-bound", JSONArray, 200, 1000, 20_000, 0, 0},
		{"concatenated, byte-bound", Concatenated, 200, 1000, 20_000, 0, 0},
		{"json array, record-bound", JSONArray, 95, 10, 1_000_000, 10, 10},
		{"concatenated, record-bound", Concatenated, 95, 10, 1_000_000, 10, 10},
		{"one request", JSONArray, 50, 100, 0, 0, 1},
		{"exactly one record per request", Concatenated, 7, 300, 500, 0, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			rec := &recorder{}
			send := func(_ context.Context, req *Request) error {
				rec.accept(req)
				return nil
			}
			e, err := New("splunk", testConfig(c, Config{MaxBytes: tc.maxBytes, MaxRecords: tc.maxRecords, Concurrency: 1}),
				tc.framing, encJSON, send, &memDL{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			in := recs(tc.n, tc.size)
			if err := e.Write(context.Background(), "MdeActions", in); err != nil {
				t.Fatalf("Write: %v", err)
			}
			limit := tc.maxBytes
			if limit == 0 {
				limit = DefaultMaxBytes
			}
			for i, body := range rec.bodies {
				if len(body) > limit {
					t.Errorf("request %d is %d bytes, over max_bytes %d", i, len(body), limit)
				}
				if tc.maxRecords > 0 && len(rec.ids[i]) > tc.maxRecords {
					t.Errorf("request %d has %d records, over max_records %d", i, len(rec.ids[i]), tc.maxRecords)
				}
				if got := decodeIDs(t, tc.framing, body); !equal(got, rec.ids[i]) {
					t.Errorf("request %d: body holds %v, Records say %v", i, got, rec.ids[i])
				}
			}
			if got := rec.allIDs(); !equal(got, idsOf(in)) {
				t.Errorf("delivered order %v, want %v", got, idsOf(in))
			}
			if tc.wantReqs > 0 && len(rec.bodies) != tc.wantReqs {
				t.Errorf("%d requests, want %d", len(rec.bodies), tc.wantReqs)
			}
			st := e.Stats()
			if st.Records != int64(tc.n) || st.Requests != int64(len(rec.bodies)) || st.MaxRequestBytes > int64(limit) {
				t.Errorf("stats %+v do not match %d records in %d requests", st, tc.n, len(rec.bodies))
			}
		})
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

var errBoom = errors.New("destination said 503 Server is busy")

func TestRetry(t *testing.T) {
	tests := []struct {
		name       string
		cfg        Config
		replies    []error // per call; past the end: success
		always     error   // when set, every call fails with it
		wantErr    bool
		wantPerm   bool
		wantSleeps []time.Duration
		wantCalls  int
		wantDead   int
		records    int
	}{
		{name: "transient then success, exponential backoff", replies: []error{errBoom, errBoom, errBoom},
			wantSleeps: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}, wantCalls: 4, records: 3},
		{name: "Retry-After 90s honoured, not given up", replies: []error{RetryAfter(errBoom, 90*time.Second)},
			wantSleeps: []time.Duration{90 * time.Second}, wantCalls: 2, records: 3},
		{name: "Retry-After of 10 minutes honoured", replies: []error{RetryAfter(errBoom, 10*time.Minute), errBoom},
			wantSleeps: []time.Duration{10 * time.Minute, 2 * time.Second}, wantCalls: 3, records: 3},
		{name: "backoff capped at MaxBackoff", cfg: Config{MaxBackoff: 3 * time.Second},
			replies:    []error{errBoom, errBoom, errBoom, errBoom},
			wantSleeps: []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}, wantCalls: 5, records: 3},
		{name: "MaxElapsed exhausted", cfg: Config{MaxElapsed: 10 * time.Second, MaxAttempts: -1}, always: errBoom,
			wantErr: true, wantSleeps: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}, wantCalls: 4, records: 3},
		{name: "MaxAttempts exhausted", cfg: Config{MaxAttempts: 3}, always: errBoom,
			wantErr: true, wantSleeps: []time.Duration{time.Second, 2 * time.Second}, wantCalls: 3, records: 3},
		{name: "permanent, several records: no retry, Write fails", always: Permanent(errors.New("403 Invalid token")),
			wantErr: true, wantPerm: true, wantCalls: 1, records: 3},
		{name: "request refused, one record: Write fails, nothing dead-lettered", always: Permanent(errors.New("403 Token disabled")),
			wantErr: true, wantPerm: true, wantCalls: 1, records: 1},
		{name: "record refused, one record: dead-lettered", always: Rejected(errors.New("400 Invalid data format")),
			wantCalls: 1, wantDead: 1, records: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			var calls atomic.Int32
			send := func(_ context.Context, req *Request) error {
				i := int(calls.Add(1)) - 1
				if tc.always != nil {
					return tc.always
				}
				if i < len(tc.replies) {
					return tc.replies[i]
				}
				return nil
			}
			dl := &memDL{}
			e, err := New("sentinel", testConfig(c, tc.cfg), JSONArray, encJSON, send, dl, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = e.Write(context.Background(), "T", recs(tc.records, 10))
			if (err != nil) != tc.wantErr {
				t.Fatalf("Write error %v, want error %v", err, tc.wantErr)
			}
			if err != nil && IsPermanent(err) != tc.wantPerm {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, IsPermanent(err), tc.wantPerm)
			}
			if got := c.Sleeps(); fmt.Sprint(got) != fmt.Sprint(tc.wantSleeps) && !(len(got) == 0 && len(tc.wantSleeps) == 0) {
				t.Errorf("waits %v, want %v", got, tc.wantSleeps)
			}
			if int(calls.Load()) != tc.wantCalls {
				t.Errorf("%d calls, want %d", calls.Load(), tc.wantCalls)
			}
			st := e.Stats()
			if len(dl.ids) != tc.wantDead || st.DeadLettered != int64(tc.wantDead) {
				t.Errorf("dead-lettered %v (stats %d), want %d", dl.ids, st.DeadLettered, tc.wantDead)
			}
			if st.Retries != int64(tc.wantCalls-1) {
				t.Errorf("stats retries %d, want %d", st.Retries, tc.wantCalls-1)
			}
		})
	}
}

// A full-jitter wait is random but never above the exponential cap.
func TestBackoffJitterBounds(t *testing.T) {
	e, err := New("s", Config{InitialBackoff: time.Second, MaxBackoff: 8 * time.Second}, JSONArray, encJSON,
		func(context.Context, *Request) error { return nil }, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 10; attempt++ {
		cap := min(time.Second<<(attempt-1), 8*time.Second)
		for range 50 {
			if d := e.backoff(attempt); d < 0 || d > cap {
				t.Fatalf("attempt %d: wait %s outside [0, %s]", attempt, d, cap)
			}
		}
	}
}

// TestTooLarge runs against an HTTP server that answers 413 to bodies
// over a limit smaller than the client's MaxBytes, as a misconfigured or
// stricter destination would.
func TestTooLarge(t *testing.T) {
	tests := []struct {
		name      string
		serverMax int
		sizes     []int // payload pad per record
		wantDead  []string
	}{
		{"split until it fits", 2500, repeat(40, 200), nil},
		{"single record still too large is dead-lettered", 2500, append(repeat(10, 200), 3000), []string{"r0010"}},
		{"odd counts split cleanly", 700, repeat(13, 150), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				if len(b) > tc.serverMax {
					http.Error(w, `{"error":{"code":"ContentLengthLimitExceeded"}}`, http.StatusRequestEntityTooLarge)
					return
				}
				w.WriteHeader(http.StatusNoContent)
			}))
			defer srv.Close()
			send := func(ctx context.Context, req *Request) error {
				hr, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, bytes.NewReader(req.Body))
				if err != nil {
					return Permanent(err)
				}
				resp, err := srv.Client().Do(hr)
				if err != nil {
					return err
				}
				resp.Body.Close()
				switch {
				case resp.StatusCode == http.StatusRequestEntityTooLarge:
					return TooLarge(fmt.Errorf("HTTP %d", resp.StatusCode))
				case resp.StatusCode != http.StatusNoContent:
					return fmt.Errorf("HTTP %d", resp.StatusCode)
				}
				rec.accept(req)
				return nil
			}
			in := make([]record.Record, 0, len(tc.sizes))
			for i, s := range tc.sizes {
				r := recs(1, s)[0]
				r.ID = fmt.Sprintf("r%04d", i)
				in = append(in, r)
			}
			dl := &memDL{}
			e, err := New("sentinel", testConfig(newClock(), Config{Concurrency: 2}), JSONArray, encJSON, send, dl, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Write(context.Background(), "T", in); err != nil {
				t.Fatalf("Write: %v", err)
			}
			for i, b := range rec.bodies {
				if len(b) > tc.serverMax {
					t.Errorf("accepted body %d is %d bytes, over the server's %d", i, len(b), tc.serverMax)
				}
			}
			delivered := map[string]bool{}
			for _, id := range rec.allIDs() {
				if delivered[id] {
					t.Errorf("record %s delivered twice", id)
				}
				delivered[id] = true
			}
			for _, id := range dl.ids {
				delivered[id] = true
			}
			if len(delivered) != len(in) {
				t.Errorf("%d of %d records delivered or dead-lettered", len(delivered), len(in))
			}
			if !equal(dl.ids, tc.wantDead) && !(len(dl.ids) == 0 && len(tc.wantDead) == 0) {
				t.Errorf("dead-lettered %v, want %v", dl.ids, tc.wantDead)
			}
			if e.Stats().TooLargeSplits == 0 {
				t.Error("no split counted")
			}
		})
	}
}

func repeat(n, v int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestUnsendableRecordsDeadLettered(t *testing.T) {
	tests := []struct {
		name       string
		mutate     func([]record.Record)
		wantReason string
	}{
		{"record larger than max_bytes", func(rs []record.Record) {
			rs[2].Raw = json.RawMessage(`{"pad":"` + strings.Repeat("y", 5000) + `"}`)
		}, "more than the 2000 bytes"},
		{"record that cannot be encoded", func(rs []record.Record) {
			rs[2].Raw = json.RawMessage(`{"broken":`)
		}, "cannot be encoded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			send := func(_ context.Context, req *Request) error { rec.accept(req); return nil }
			dl := &memDL{}
			e, err := New("splunk", testConfig(newClock(), Config{MaxBytes: 2000, Concurrency: 1}), Concatenated, encJSON, send, dl, nil)
			if err != nil {
				t.Fatal(err)
			}
			in := recs(6, 100)
			tc.mutate(in)
			if err := e.Write(context.Background(), "T", in); err != nil {
				t.Fatalf("Write: %v", err)
			}
			want := []string{"r0000", "r0001", "r0003", "r0004", "r0005"}
			if got := rec.allIDs(); !equal(got, want) {
				t.Errorf("delivered %v, want %v", got, want)
			}
			if len(dl.ids) != 1 || dl.ids[0] != "r0002" || !strings.Contains(dl.reasons[0], tc.wantReason) {
				t.Errorf("dead letters %v %q, want r0002 with reason containing %q", dl.ids, dl.reasons, tc.wantReason)
			}
		})
	}
}

// Without a dead-letter store the record is still logged by id, never
// dropped silently.
func TestDeadLetterWithoutStoreIsLogged(t *testing.T) {
	var logs bytes.Buffer
	log := slogJSON(&logs)
	e, err := New("splunk", testConfig(newClock(), Config{}), Concatenated, encJSON,
		func(context.Context, *Request) error { return Rejected(errors.New("400 Invalid data format")) }, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Write(context.Background(), "MdeActions", recs(1, 10)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	for _, want := range []string{`"sink":"splunk"`, `"table":"MdeActions"`, `"record_id":"r0000"`, "Invalid data format"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log %s lacks %s", logs.String(), want)
		}
	}
}

func TestConcurrencyCap(t *testing.T) {
	for _, limit := range []int{1, 3, 4, 8} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			var inflight, peak atomic.Int32
			release := make(chan struct{})
			var once sync.Once
			send := func(ctx context.Context, req *Request) error {
				n := inflight.Add(1)
				defer inflight.Add(-1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				if int(n) == limit {
					once.Do(func() { close(release) }) // the cap was reached: let everyone finish
				}
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
				return nil
			}
			e, err := New("s", testConfig(newClock(), Config{MaxRecords: 1, Concurrency: limit}), JSONArray, encJSON, send, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Write(context.Background(), "T", recs(25, 10)); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if got := int(peak.Load()); got != limit {
				t.Errorf("peak in flight %d, want exactly %d", got, limit)
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	tests := []struct {
		rate     float64
		burst    int
		requests int
		want     time.Duration // total time waited on the fake clock
	}{
		{2, 1, 5, 2 * time.Second},
		{10, 5, 15, time.Second},
		{0.5, 1, 3, 4 * time.Second},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%v/s burst %d", tc.rate, tc.burst), func(t *testing.T) {
			c := newClock()
			e, err := New("s", testConfig(c, Config{MaxRecords: 1, Concurrency: 1, RatePerSecond: tc.rate, Burst: tc.burst}),
				JSONArray, encJSON, func(context.Context, *Request) error { return nil }, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Write(context.Background(), "T", recs(tc.requests, 10)); err != nil {
				t.Fatal(err)
			}
			var total time.Duration
			for _, d := range c.Sleeps() {
				total += d
			}
			if total != tc.want {
				t.Errorf("waited %s for %d requests, want %s", total, tc.requests, tc.want)
			}
		})
	}
}

func TestCancelStopsPromptly(t *testing.T) {
	tests := []struct {
		name string
		// cancelIn decides where the cancellation happens.
		cancelInSend bool
	}{
		{"cancelled during a request", true},
		{"cancelled during a long Retry-After wait", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var calls atomic.Int32
			send := func(ctx context.Context, req *Request) error {
				calls.Add(1)
				if tc.cancelInSend {
					cancel()
					return ctx.Err()
				}
				return RetryAfter(errBoom, 10*time.Minute)
			}
			cfg := Config{MaxRecords: 1, Concurrency: 2}
			if !tc.cancelInSend {
				cfg.Sleep = func(ctx context.Context, d time.Duration) error {
					cancel()
					return clock.Sleep(ctx, d) // the real timer: must return at once
				}
			}
			e, err := New("s", cfg, JSONArray, encJSON, send, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = e.Write(ctx, "T", recs(50, 10))
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Write error %v, want context.Canceled", err)
			}
			if n := calls.Load(); n > 2 {
				t.Errorf("%d requests sent after cancellation, want at most the 2 in flight", n)
			}
		})
	}
}

// A permanent failure of one request stops the other requests of the
// Write instead of hammering a destination that rejects the token.
func TestPermanentStopsWrite(t *testing.T) {
	var calls atomic.Int32
	send := func(ctx context.Context, req *Request) error {
		calls.Add(1)
		return Permanent(errors.New("401 Token is required"))
	}
	e, err := New("splunk", testConfig(newClock(), Config{MaxRecords: 2, Concurrency: 1}), Concatenated, encJSON, send, &memDL{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = e.Write(context.Background(), "T", recs(20, 10))
	if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "Token is required") {
		t.Fatalf("Write error %v, want the permanent 401", err)
	}
	if calls.Load() != 1 {
		t.Errorf("%d requests, want 1", calls.Load())
	}
}

func TestConcurrentWrites(t *testing.T) {
	rec := &recorder{}
	e, err := New("s", Config{MaxRecords: 7}, JSONArray, encJSON,
		func(_ context.Context, req *Request) error { rec.accept(req); return nil }, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := e.Write(context.Background(), "T", recs(50, 20)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if st := e.Stats(); st.Records != 400 || len(rec.allIDs()) != 400 {
		t.Errorf("stats %+v, %d delivered; want 400", st, len(rec.allIDs()))
	}
}

func TestNewRejectsBadSettings(t *testing.T) {
	ok := func(context.Context, *Request) error { return nil }
	tests := []struct {
		name string
		sink string
		cfg  Config
		enc  Encoder
		send SendFunc
		want string
	}{
		{"no name", "", Config{}, encJSON, ok, "name is empty"},
		{"no encoder", "s", Config{}, nil, ok, "required"},
		{"no sender", "s", Config{}, encJSON, nil, "required"},
		{"negative bytes", "s", Config{MaxBytes: -1}, encJSON, ok, "negative"},
		{"negative rate", "s", Config{RatePerSecond: -1}, encJSON, ok, "negative"},
		{"max_bytes too small", "s", Config{MaxBytes: 2}, encJSON, ok, "cannot hold"},
		{"backoffs inverted", "s", Config{InitialBackoff: time.Hour, MaxBackoff: time.Minute}, encJSON, ok, "initial_backoff"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.sink, tc.cfg, JSONArray, tc.enc, tc.send, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestClassification(t *testing.T) {
	base := errors.New("x")
	tests := []struct {
		name      string
		err       error
		permanent bool
		after     time.Duration
		hasAfter  bool
		tooLarge  bool
	}{
		{"plain is transient", base, false, 0, false, false},
		{"permanent", Permanent(base), true, 0, false, false},
		{"wrapped permanent", fmt.Errorf("sink: %w", Permanent(base)), true, 0, false, false},
		{"retry after", RetryAfter(base, 90*time.Second), false, 90 * time.Second, true, false},
		{"negative retry after is zero", RetryAfter(base, -time.Second), false, 0, true, false},
		{"too large", TooLarge(base), false, 0, false, true},
		{"rejected is not permanent", Rejected(base), false, 0, false, false},
		{"rejected at is not permanent", RejectedAt(base, 3), false, 0, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if IsPermanent(tc.err) != tc.permanent {
				t.Errorf("IsPermanent = %v", !tc.permanent)
			}
			if d, ok := retryAfterOf(tc.err); ok != tc.hasAfter || d != tc.after {
				t.Errorf("retryAfter = %s %v", d, ok)
			}
			if (kindOf(tc.err) == kindTooLarge) != tc.tooLarge {
				t.Errorf("too large = %v", !tc.tooLarge)
			}
			if !errors.Is(tc.err, base) {
				t.Error("classification hides the original error")
			}
		})
	}
	if !IsRejected(Rejected(base)) || !IsRejected(fmt.Errorf("w: %w", RejectedAt(base, 2))) || IsRejected(Permanent(base)) {
		t.Error("IsRejected misreads the classification")
	}
	if rejectedAt(RejectedAt(base, 2)) != 2 || rejectedAt(Rejected(base)) != -1 || rejectedAt(RejectedAt(base, -5)) != -1 {
		t.Error("RejectedAt does not carry the record's index")
	}
	if Permanent(nil) != nil || TooLarge(nil) != nil || RetryAfter(nil, time.Second) != nil || Rejected(nil) != nil || RejectedAt(nil, 1) != nil {
		t.Error("classifying nil must stay nil")
	}
}
