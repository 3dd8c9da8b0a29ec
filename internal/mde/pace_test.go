package mde

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/httpx"
)

// vclock is virtual time: it moves only when someone sleeps, to the end
// of that sleep, so waits of seconds take none and every instant a test
// sees is exact. Sleep returns at once.
type vclock struct {
	mu  sync.Mutex
	now time.Time
}

func newVClock() *vclock { return &vclock{now: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)} }

func (v *vclock) Now() time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.now
}

func (v *vclock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if end := v.now.Add(d); end.After(v.now) {
		v.now = end
	}
	return nil
}

// inflight counts the requests a server is serving at once.
type inflight struct {
	mu       sync.Mutex
	now, max int
}

func (f *inflight) enter() {
	f.mu.Lock()
	f.now++
	f.max = max(f.max, f.now)
	f.mu.Unlock()
}

func (f *inflight) leave() {
	f.mu.Lock()
	f.now--
	f.mu.Unlock()
}

func (f *inflight) peak() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.max
}

// waitFor polls cond; a test that would otherwise hang fails instead.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 10000; i++ {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("gave up waiting for %s", what)
}

type firstWorker struct{}

const timelinePath = "/apiproxy/mtp/mdeTimelineExperience/machines/0123456789abcdef0123456789abcdef01234567/events/"

// TestThrottlingSlowsTheWholePool: one throttled answer to one worker
// slows every worker of the client. The first request is throttled; only
// then do seven more workers start. The server then never sees more
// requests at once than the halved limit, every request succeeds, and —
// for a 429 or 503 with Retry-After — no request at all reaches the
// server before the Retry-After deadline, not even those of workers that
// were never throttled themselves. The 403 "not exposed" lowers the limit
// but pauses nobody.
func TestThrottlingSlowsTheWholePool(t *testing.T) {
	const workers, perWorker, retryAfter = 8, 4, 5 * time.Second
	tests := []struct {
		name      string
		status    int
		header    string // Retry-After
		body      string
		wantPause bool
	}{
		{"429 with Retry-After", 429, "5", `{"error":{"code":"TooManyRequests","message":"Rate limit is exceeded."}}`, true},
		{"503 with Retry-After", 503, "5", `{"Message":"The service is temporarily unavailable."}`, true},
		{"429 without Retry-After (computed backoff)", 429, "", `{}`, true},
		{"403 not exposed on the timeline", 403, "", `"User is not exposed to machine"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vc := newVClock()
			t0 := vc.Now()
			var (
				hits      atomic.Int32
				fl        inflight
				mu        sync.Mutex
				early     []time.Time // successful requests before the deadline
				throttled = make(chan struct{})
				once      sync.Once
			)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fl.enter()
				defer fl.leave()
				if hits.Add(1) == 1 {
					if tt.header != "" {
						w.Header().Set("Retry-After", tt.header)
					}
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(tt.status)
					io.WriteString(w, tt.body)
					return
				}
				if at := vc.Now(); tt.header != "" && at.Before(t0.Add(retryAfter)) {
					mu.Lock()
					early = append(early, at)
					mu.Unlock()
				}
				time.Sleep(time.Millisecond) // let the workers overlap
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"Items":[]}`)
			})
			// The throttled worker's own retry wait lasts until the other
			// workers are done, so they cannot profit from its clock jump:
			// only the shared pause can keep them from sending early.
			othersDone := make(chan struct{})
			var blockOnce sync.Once
			sleep := func(ctx context.Context, d time.Duration) error {
				if ctx.Value(firstWorker{}) != nil {
					blockOnce.Do(func() {
						select {
						case <-othersDone:
						case <-time.After(10 * time.Second):
						}
					})
				}
				return vc.Sleep(ctx, d)
			}
			c, _ := newTestPortal(t, h, func(o *PortalOptions) {
				o.Sleep, o.Now = sleep, vc.Now
				o.RaiseAfter = 1000 // no recovery within this test
				o.Observe = func(a httpx.Attempt) {
					if a.Throttled {
						once.Do(func() { close(throttled) })
					}
				}
			})
			var first, others sync.WaitGroup
			errs := make(chan error, workers*perWorker)
			work := func(ctx context.Context, wg *sync.WaitGroup) {
				defer wg.Done()
				for i := 0; i < perWorker; i++ {
					_, err := c.Get(ctx, timelinePath, nil)
					errs <- err
				}
			}
			first.Add(1)
			go work(context.WithValue(context.Background(), firstWorker{}, true), &first)
			select {
			case <-throttled:
			case <-time.After(10 * time.Second):
				t.Fatal("the first request was never throttled")
			}
			peakBefore := fl.peak()
			for i := 1; i < workers; i++ {
				others.Add(1)
				go work(context.Background(), &others)
			}
			others.Wait()
			close(othersDone)
			first.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatalf("a request failed: %v", err)
				}
			}
			if got, want := int(hits.Load()), workers*perWorker+1; got != want {
				t.Errorf("server saw %d requests, want %d (each once, plus the throttled one again)", got, want)
			}
			if peakBefore != 1 {
				t.Fatalf("setup: %d requests in flight before the others started", peakBefore)
			}
			if peak, limit := fl.peak(), DefaultMaxInFlight/2; peak > limit {
				t.Errorf("after the throttled answer the server saw %d requests at once, want at most the halved limit %d", peak, limit)
			}
			st := c.Pacer().State()
			if st.Limit != DefaultMaxInFlight/2 || st.Decreases != 1 || st.InFlight != 0 || st.Waiting != 0 {
				t.Errorf("pacer %+v, want limit %d after one halving and nothing held", st, DefaultMaxInFlight/2)
			}
			if tt.wantPause != (st.Pauses > 0) {
				t.Errorf("pauses = %d, want a shared pause: %v", st.Pauses, tt.wantPause)
			}
			if len(early) > 0 {
				t.Errorf("%d requests reached the server before the Retry-After deadline %s, the first at %s", len(early), t0.Add(retryAfter), early[0])
			}
		})
	}
}

// TestConcurrentThrottlesHalveOnce: requests in flight together that
// are all throttled are one congestion episode: the limit halves once,
// not once per request. Each round of the server's is answered only once
// all its requests are in flight: 8 at limit 8, then their retries 4 at
// limit 4, then 2 at limit 2.
func TestConcurrentThrottlesHalveOnce(t *testing.T) {
	tests := []struct {
		name      string
		rounds    []int // requests of each throttled round, all in flight together
		wantLimit int
	}{
		{"eight at once", []int{8}, 4},
		{"and their retries", []int{8, 4}, 2},
		{"and theirs", []int{8, 4, 2}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vc := newVClock()
			// round r ends with request ends[r]; its barrier opens when
			// that many have arrived.
			var ends []int
			var barriers []chan struct{}
			total := 0
			for _, n := range tt.rounds {
				total += n
				ends = append(ends, total)
				barriers = append(barriers, make(chan struct{}))
			}
			var (
				mu      sync.Mutex
				arrived int
				fl      []*inflight // per round, then after the last round
			)
			for range len(tt.rounds) + 1 {
				fl = append(fl, &inflight{})
			}
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				arrived++
				n := arrived
				round := len(tt.rounds)
				for i, e := range ends {
					if n <= e {
						round = i
						break
					}
				}
				fl[round].enter()
				defer fl[round].leave()
				if round < len(ends) && n == ends[round] {
					close(barriers[round])
				}
				mu.Unlock()
				if round < len(tt.rounds) {
					select { // the round's requests are in flight together
					case <-barriers[round]:
					case <-time.After(10 * time.Second):
					}
					w.Header().Set("Retry-After", "1")
					w.WriteHeader(429)
					return
				}
				time.Sleep(time.Millisecond)
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{}`)
			})
			c, _ := newTestPublic(t, h, func(o *PublicOptions) {
				o.Sleep, o.Now = vc.Sleep, vc.Now
				o.RaiseAfter = 1000
			})
			var wg sync.WaitGroup
			for i := 0; i < 8; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := c.Get(context.Background(), "/api/machineactions", nil); err != nil {
						t.Errorf("request failed: %v", err)
					}
				}()
			}
			wg.Wait()
			if got := c.Pacer().Limit(); got != tt.wantLimit {
				t.Errorf("limit = %d, want %d", got, tt.wantLimit)
			}
			for i, n := range tt.rounds {
				if p := fl[i].peak(); p != n {
					t.Errorf("round %d: %d requests in flight together, want %d", i+1, p, n)
				}
			}
			if p := fl[len(tt.rounds)].peak(); p > tt.wantLimit {
				t.Errorf("after the throttling %d requests were in flight at once, want at most %d", p, tt.wantLimit)
			}
			if st := c.Pacer().State(); st.Decreases != len(tt.rounds) {
				t.Errorf("pacer %+v, want one decrease per round", st)
			}
		})
	}
}

// TestLimitRecovers: after a throttled answer, RaiseAfter successes in a
// row raise the limit by one, up to the maximum and never beyond.
func TestLimitRecovers(t *testing.T) {
	var hits atomic.Int32
	vc := newVClock()
	c, _ := newTestPublic(t, seqHandler([]step{{status: 429, retryAfter: "1"}, {status: 200, body: `{}`}}, &hits), func(o *PublicOptions) {
		o.Sleep, o.Now = vc.Sleep, vc.Now
		o.RaiseAfter = 3
	})
	var limits []int
	for i := 0; i < 15; i++ {
		if _, err := c.Get(context.Background(), "/api/machineactions", nil); err != nil {
			t.Fatal(err)
		}
		limits = append(limits, c.Pacer().Limit())
	}
	// The first Get: 429 (8 → 4), then its retry succeeds (one success).
	want := []int{4, 4, 5, 5, 5, 6, 6, 6, 7, 7, 7, 8, 8, 8, 8}
	for i := range want {
		if limits[i] != want[i] {
			t.Fatalf("limit after each request %v, want %v", limits, want)
		}
	}
	if st := c.Pacer().State(); st.Increases != 4 || st.Decreases != 1 || st.Max != DefaultMaxInFlight {
		t.Errorf("pacer %+v, want 1 decrease and 4 increases", st)
	}
}

// TestGateHonoursContext: a request waiting at the gate — for a slot, or
// for a shared pause to end — returns with the context's error when the
// context ends, and never reaches the server.
func TestGateHonoursContext(t *testing.T) {
	tests := []struct {
		name string
		// block makes the client hold its one slot (slot) or pause (pause).
		slot bool
	}{
		{"waiting for a slot", true},
		{"waiting out a shared pause", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int32
			hold := make(chan struct{})
			defer close(hold)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := hits.Add(1)
				if tt.slot && n == 1 {
					<-hold
				}
				if !tt.slot && n == 1 {
					w.Header().Set("Retry-After", "60") // a minute: below MaxWait
					w.WriteHeader(429)
					return
				}
				io.WriteString(w, `{}`)
			})
			c, _ := newTestPublic(t, h, func(o *PublicOptions) {
				o.MaxInFlight = 1
				o.MaxAttempts = 1
				o.Sleep = func(ctx context.Context, d time.Duration) error { // real waiting
					tm := time.NewTimer(d)
					defer tm.Stop()
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-tm.C:
						return nil
					}
				}
			})
			first := make(chan error, 1)
			go func() {
				_, err := c.Get(context.Background(), "/api/machineactions", nil)
				first <- err
			}()
			if tt.slot {
				waitFor(t, "the first request to hold the slot", func() bool { return hits.Load() == 1 })
			} else if err := <-first; !errors.Is(err, ErrThrottled) {
				t.Fatalf("first request: %v, want 429", err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			second := make(chan error, 1)
			go func() {
				_, err := c.Get(ctx, "/api/machineactions", nil)
				second <- err
			}()
			waitFor(t, "the second request to wait at the gate", func() bool { return c.Pacer().State().Waiting == 1 })
			cancel()
			select {
			case err := <-second:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("err = %v, want context.Canceled", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the cancelled request is still waiting at the gate")
			}
			if n := hits.Load(); n != 1 {
				t.Errorf("server saw %d requests, want only the first", n)
			}
			if st := c.Pacer().State(); st.Waiting != 0 {
				t.Errorf("pacer %+v: nothing may wait after the cancel", st)
			}
		})
	}
}

// TestPauseBeyondMaxWaitFailsAtOnce: a Retry-After longer than MaxWait
// fails the request that got it (as before) and every request after it
// while the pause lasts, without reaching the server.
func TestPauseBeyondMaxWaitFailsAtOnce(t *testing.T) {
	var hits atomic.Int32
	vc := newVClock()
	c, sl := newTestPublic(t, seqHandler([]step{{status: 429, retryAfter: "3600"}, {status: 200, body: `{}`}}, &hits), func(o *PublicOptions) {
		o.Now = vc.Now
	})
	for i := 0; i < 3; i++ {
		_, err := c.Get(context.Background(), "/api/machineactions", nil)
		if !errors.Is(err, ErrThrottled) {
			t.Fatalf("request %d: err = %v, want ErrThrottled", i, err)
		}
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
	if w := sl.all(); len(w) != 0 {
		t.Errorf("slept %v; a pause beyond MaxWait is an error, not a wait", w)
	}
	vc.Sleep(context.Background(), time.Hour) // the pause is over
	if _, err := c.Get(context.Background(), "/api/machineactions", nil); err != nil {
		t.Fatalf("after the pause: %v", err)
	}
}

// TestNotExposedIsRetriedAsThrottling: the timeline's 403 "User is not
// exposed to machine" is retried (at most 3 attempts) and lowers the
// limit once per request; any other 403, or this text on another route,
// is final at once.
func TestNotExposedIsRetriedAsThrottling(t *testing.T) {
	notExposedBody := `{"Message":"User is not exposed to machine"}`
	tests := []struct {
		name      string
		path      string
		steps     []step
		wantHits  int32
		wantErr   error
		wantLimit int
	}{
		{"timeline 403 not exposed, then data", timelinePath,
			[]step{{status: 403, body: notExposedBody}, {status: 200, body: `{"Items":[]}`}}, 2, nil, DefaultMaxInFlight / 2},
		{"timeline 403 not exposed every time: a scope miss", timelinePath,
			[]step{{status: 403, body: notExposedBody}}, notExposedAttempts, ErrForbidden, DefaultMaxInFlight / 2},
		{"timeline 403 of another kind", timelinePath,
			[]step{{status: 403, body: `{"Message":"Forbidden"}`}}, 1, ErrForbidden, DefaultMaxInFlight},
		{"not exposed on another route", "/apiproxy/mtp/actionCenter/actioncenterui/history-actions",
			[]step{{status: 403, body: notExposedBody}}, 1, ErrForbidden, DefaultMaxInFlight},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int32
			var observed []httpx.Attempt
			c, _ := newTestPortal(t, seqHandler(tt.steps, &hits), func(o *PortalOptions) {
				o.Observe = func(a httpx.Attempt) { observed = append(observed, a) }
			})
			_, err := c.Get(context.Background(), tt.path, nil)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if hits.Load() != tt.wantHits {
				t.Errorf("server hit %d times, want %d", hits.Load(), tt.wantHits)
			}
			if got := c.Pacer().Limit(); got != tt.wantLimit {
				t.Errorf("limit = %d, want %d", got, tt.wantLimit)
			}
			for _, a := range observed {
				if !a.Throttled || a.Status != 403 {
					t.Errorf("observed %+v, want a throttled 403", a)
				}
			}
			if len(observed) != int(tt.wantHits)-1+b2i(tt.wantErr != nil && tt.wantHits > 1) {
				t.Errorf("observed %d decisions: %+v", len(observed), observed)
			}
			if st := c.Pacer().State(); st.Pauses != 0 {
				t.Errorf("a 403 paused the client: %+v", st)
			}
		})
	}
}

// BenchmarkPacerUncontended is the gate's cost on a request when nothing
// throttles.
func BenchmarkPacerUncontended(b *testing.B) {
	p := newPacer(ClientOptions{MaxInFlight: 8, RaiseAfter: 10, MaxWait: time.Minute, Now: time.Now,
		Sleep: func(context.Context, time.Duration) error { return nil }, Logger: slog.New(slog.DiscardHandler)}, "portal", "portal")
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tk, err := p.acquire(ctx, time.Time{})
			if err != nil {
				b.Fatal(err)
			}
			p.release(ctx, &tk, true)
		}
	})
}

// TestPacerLogsEachChangeOnce: a halving, a pause and each raise are
// logged once, and the log holds no secret.
func TestPacerLogsEachChangeOnce(t *testing.T) {
	var hits atomic.Int32
	var buf syncBuffer
	vc := newVClock()
	c, _ := newTestPortal(t, seqHandler([]step{{status: 429, retryAfter: "1"}, {status: 200, body: `{}`}}, &hits), func(o *PortalOptions) {
		o.Sleep, o.Now = vc.Sleep, vc.Now
		o.RaiseAfter = 1
		o.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	for i := 0; i < 6; i++ {
		if _, err := c.Get(context.Background(), "/apiproxy/mtp/x", nil); err != nil {
			t.Fatal(err)
		}
	}
	out := buf.String()
	for msg, want := range map[string]int{
		"lowering the request concurrency": 1,
		"pausing every request":            1,
		"raising the request concurrency":  4, // 4 → 8, then no more
	} {
		if n := strings.Count(out, msg); n != want {
			t.Errorf("%q logged %d times, want %d:\n%s", msg, n, want, out)
		}
	}
	for _, secret := range []string{testSccauth, testXSRF, "XSRF/SECRET"} {
		if strings.Contains(out, secret) {
			t.Errorf("log holds a secret %q", secret)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
