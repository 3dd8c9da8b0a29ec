package httpx

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/clock"
	"github.com/defenderharvester/defenderharvester/internal/httpx/httpxtest"
)

func TestNewClientNeverFollowsRedirects(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, "https://evil.example/collect", http.StatusFound)
	}))
	defer srv.Close()
	resp, err := NewClient(srv.Client().Transport, time.Minute).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || hits.Load() != 1 {
		t.Fatalf("status %d after %d requests; want the 302 itself and no second request", resp.StatusCode, hits.Load())
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
		wantOK bool
	}{
		{"absent", http.Header{}, 0, false},
		{"seconds", http.Header{"Retry-After": {"7"}}, 7 * time.Second, true},
		{"zero", http.Header{"Retry-After": {"0"}}, 0, true},
		{"negative", http.Header{"Retry-After": {"-3"}}, 0, false},
		{"garbage", http.Header{"Retry-After": {"soon"}}, 0, false},
		{"more than a day is a day", http.Header{"Retry-After": {"999999"}}, MaxRetryAfter, true},
		{"http date", http.Header{"Retry-After": {now.Add(30 * time.Second).Format(http.TimeFormat)}}, 30 * time.Second, true},
		{"past http date", http.Header{"Retry-After": {now.Add(-time.Minute).Format(http.TimeFormat)}}, 0, true},
		{"far http date", http.Header{"Retry-After": {now.Add(72 * time.Hour).Format(http.TimeFormat)}}, MaxRetryAfter, true},
		{"azure milliseconds win", http.Header{"Retry-After-Ms": {"1500"}, "Retry-After": {"9"}}, 1500 * time.Millisecond, true},
		{"x-ms milliseconds", http.Header{"X-Ms-Retry-After-Ms": {"250"}}, 250 * time.Millisecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := RetryAfter(tt.header, now)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("RetryAfter = %s, %v; want %s, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestBackoffIsExponentialWithFullJitter(t *testing.T) {
	base, max := time.Second, 10*time.Second
	for attempt, ceil := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: max, 40: max} {
		if got := BackoffCeil(attempt, base, max); got != ceil {
			t.Errorf("BackoffCeil(%d) = %s, want %s", attempt, got, ceil)
		}
		for i := 0; i < 50; i++ {
			if d := Backoff(attempt, base, max); d < 0 || d > ceil {
				t.Fatalf("Backoff(%d) = %s, outside [0, %s]", attempt, d, ceil)
			}
		}
	}
	if d := Backoff(3, 0, max); d != 0 {
		t.Errorf("no base backoff must mean no wait, got %s", d)
	}
}

// waits records the waits Do asked for, without waiting.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	return ctx.Err()
}

type answer struct {
	status     int
	retryAfter string
	reset      bool
}

func sequence(t *testing.T, answers []answer, hits *atomic.Int32) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(hits.Add(1)) - 1
		a := answers[min(n, len(answers)-1)]
		if a.reset {
			c, _, _ := w.(http.Hijacker).Hijack()
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
			return
		}
		if a.retryAfter != "" {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		w.WriteHeader(a.status)
		io.WriteString(w, "body")
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestPolicyDoRetries(t *testing.T) {
	tests := []struct {
		name      string
		answers   []answer
		wantHits  int32
		wantCode  int
		wantErr   string
		wantWaits []time.Duration // nil: not checked
	}{
		{"503 then success", []answer{{status: 503}, {status: 200}}, 2, 200, "", nil},
		{"429 honours Retry-After", []answer{{status: 429, retryAfter: "7"}, {status: 200}}, 2, 200, "", []time.Duration{7 * time.Second}},
		{"connection reset is retried", []answer{{reset: true}, {status: 200}}, 2, 200, "", nil},
		{"404 is an answer, not retried", []answer{{status: 404}}, 1, 404, "", []time.Duration{}},
		{"302 is returned, not followed", []answer{{status: 302}}, 1, 302, "", []time.Duration{}},
		{"gives up after max attempts", []answer{{status: 502}}, 3, 502, "giving up after 3 attempts: HTTP 502", nil},
		{"Retry-After beyond max wait fails at once", []answer{{status: 429, retryAfter: "3600"}}, 1, 429, "more than the configured maximum", []time.Duration{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int32
			srv := sequence(t, tt.answers, &hits)
			w := &waits{}
			p := Policy{Timeout: 5 * time.Second, MaxAttempts: 3, Backoff: time.Second, MaxWait: time.Minute, Sleep: w.sleep}
			resp, body, err := p.Do(context.Background(), NewClient(srv.Client().Transport, 0), "test request", func(ctx context.Context) (*http.Request, error) {
				return http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/x?secret=QUERYSECRET", nil)
			})
			if tt.wantErr == "" && err != nil {
				t.Fatalf("err = %v", err)
			}
			if tt.wantErr != "" {
				var se *StatusError
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &se) {
					t.Fatalf("err = %v, want %q wrapping *StatusError", err, tt.wantErr)
				}
			}
			if err != nil && strings.Contains(err.Error(), "QUERYSECRET") {
				t.Errorf("error leaks the query: %v", err)
			}
			if resp == nil || resp.StatusCode != tt.wantCode || string(body) != "body" {
				t.Fatalf("answer = %v %q, want HTTP %d with its body", resp, body, tt.wantCode)
			}
			if hits.Load() != tt.wantHits {
				t.Errorf("server hit %d times, want %d", hits.Load(), tt.wantHits)
			}
			if tt.wantWaits != nil && len(w.d) != len(tt.wantWaits) {
				t.Fatalf("waits %v, want %v", w.d, tt.wantWaits)
			}
			for i := range tt.wantWaits {
				if w.d[i] != tt.wantWaits[i] {
					t.Errorf("wait %d = %s, want %s", i, w.d[i], tt.wantWaits[i])
				}
			}
		})
	}
}

// TestPolicyDoStalledEndpoint: an endpoint that accepts the connection and
// never answers, or sends headers and then stalls the body, ends each
// attempt at the timeout; the error names the host and the timeout.
func TestPolicyDoStalledEndpoint(t *testing.T) {
	for _, tt := range []struct {
		name string
		mode httpxtest.Stall
		want string
	}{
		{"no answer", httpxtest.NoAnswer, "no answer from"},
		{"body stalls after the headers", httpxtest.StallBody, "stopped arriving"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr, requests := httpxtest.StallServer(t, tt.mode)
			p := Policy{Timeout: 200 * time.Millisecond, MaxAttempts: 2, Sleep: (&waits{}).sleep}
			_, _, err := p.Do(context.Background(), NewClient(http.DefaultTransport, 0), "portal root "+addr, func(ctx context.Context) (*http.Request, error) {
				return http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
			})
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("err = %v, want ErrTimeout", err)
			}
			for _, w := range []string{tt.want, addr, "200ms", "giving up after 2 attempts"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if n := requests(); n != 2 {
				t.Errorf("%d attempts reached the server, want 2", n)
			}
		})
	}
}

func TestPolicyDoStopsWithTheContext(t *testing.T) {
	addr, _ := httpxtest.StallServer(t, httpxtest.NoAnswer)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, _, err := Policy{Timeout: time.Hour}.Do(ctx, NewClient(http.DefaultTransport, 0), "x", func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestPolicyDoFeedsTheSkewMeter(t *testing.T) {
	ahead := time.Now().Add(10 * time.Minute).UTC().Format(http.TimeFormat)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", ahead)
	}))
	defer srv.Close()
	m := clock.NewSkewMeter()
	p := Policy{Skew: m}
	for i := 0; i < 3; i++ {
		if _, _, err := p.Do(context.Background(), NewClient(srv.Client().Transport, 0), "x", func(ctx context.Context) (*http.Request, error) {
			return http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		}); err != nil {
			t.Fatal(err)
		}
	}
	if s, ok := m.Skew(); !ok || s < 9*time.Minute || s > 11*time.Minute {
		t.Fatalf("skew = %s, %v; want about 10m", s, ok)
	}
}

// TestPolicyDoObserve: the hook hears every retry decision once, with the
// policy's label, the status class and throttling, and the final give-up.
func TestPolicyDoObserve(t *testing.T) {
	tests := []struct {
		name    string
		answers []answer
		want    []Attempt
	}{
		{"success at once: nothing to report", []answer{{status: 200}}, nil},
		{"404 is an answer: nothing to report", []answer{{status: 404}}, nil},
		{"503 then success", []answer{{status: 503}, {status: 200}},
			[]Attempt{{Label: "entra", N: 1, Status: 503, Class: "5xx", Retry: true}}},
		{"503 with Retry-After is throttling", []answer{{status: 503, retryAfter: "7"}, {status: 200}},
			[]Attempt{{Label: "entra", N: 1, Status: 503, Class: "5xx", Throttled: true, Retry: true, Wait: 7 * time.Second}}},
		{"429 is throttling", []answer{{status: 429, retryAfter: "2"}, {status: 200}},
			[]Attempt{{Label: "entra", N: 1, Status: 429, Class: "4xx", Throttled: true, Retry: true, Wait: 2 * time.Second}}},
		{"connection reset", []answer{{reset: true}, {status: 200}},
			[]Attempt{{Label: "entra", N: 1, Class: "network", Retry: true}}},
		{"gives up after max attempts", []answer{{status: 502}},
			[]Attempt{
				{Label: "entra", N: 1, Status: 502, Class: "5xx", Retry: true},
				{Label: "entra", N: 2, Status: 502, Class: "5xx", Retry: true},
				{Label: "entra", N: 3, Status: 502, Class: "5xx"},
			}},
		{"Retry-After beyond max wait gives up", []answer{{status: 429, retryAfter: "3600"}},
			[]Attempt{{Label: "entra", N: 1, Status: 429, Class: "4xx", Throttled: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int32
			srv := sequence(t, tt.answers, &hits)
			var got []Attempt
			p := Policy{Timeout: 5 * time.Second, MaxAttempts: 3, MaxWait: time.Minute, Sleep: (&waits{}).sleep,
				Label: "entra", Observe: func(a Attempt) { got = append(got, a) }}
			p.Do(context.Background(), NewClient(srv.Client().Transport, 0), "x", func(ctx context.Context) (*http.Request, error) {
				return http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
			})
			if len(got) != len(tt.want) {
				t.Fatalf("reports %+v, want %+v", got, tt.want)
			}
			for i := range got {
				w := tt.want[i]
				if w.Wait == 0 && got[i].Retry {
					w.Wait = got[i].Wait // jittered backoff: only its presence is checked
					if w.Wait <= 0 {
						t.Errorf("report %d: a retry without a wait", i)
					}
				}
				if got[i] != w {
					t.Errorf("report %d = %+v, want %+v", i, got[i], w)
				}
			}
		})
	}
}

func TestRetryClassification(t *testing.T) {
	for _, tt := range []struct {
		code      int
		header    string
		class     string
		throttled bool
	}{
		{429, "", "4xx", true},
		{503, "5", "5xx", true},
		{503, "", "5xx", false},
		{500, "", "5xx", false},
		{404, "5", "4xx", false}, // not retryable: a Retry-After there is no throttling
		{0, "", "", false},
	} {
		h := http.Header{}
		if tt.header != "" {
			h.Set("Retry-After", tt.header)
		}
		if c := StatusClass(tt.code); c != tt.class {
			t.Errorf("StatusClass(%d) = %q, want %q", tt.code, c, tt.class)
		}
		if th := Throttling(tt.code, h); th != tt.throttled {
			t.Errorf("Throttling(%d, Retry-After %q) = %v, want %v", tt.code, tt.header, th, tt.throttled)
		}
	}
	if c := failureClass(AttemptError(nil, errors.New("i/o timeout"), "h", time.Second, false)); c != "network" {
		t.Errorf("a plain failure is %q, want network", c)
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.Unix(1, 0))
	defer cancel()
	if c := failureClass(AttemptError(ctx, context.DeadlineExceeded, "h", time.Second, false)); c != "timeout" {
		t.Errorf("an attempt past its deadline is %q, want timeout", c)
	}
}

// TestConnectionFailureIsErrNetwork: a reset on every attempt ends in an
// error callers can tell apart with errors.Is, worded as before.
func TestConnectionFailureIsErrNetwork(t *testing.T) {
	var hits atomic.Int32
	srv := sequence(t, []answer{{reset: true}}, &hits)
	p := Policy{Timeout: 5 * time.Second, MaxAttempts: 2, Sleep: (&waits{}).sleep}
	_, _, err := p.Do(context.Background(), NewClient(srv.Client().Transport, 0), "x", func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	})
	if !errors.Is(err, ErrNetwork) || errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrNetwork only", err)
	}
	if !strings.Contains(err.Error(), "failed") || strings.Contains(err.Error(), ErrNetwork.Error()) {
		t.Errorf("err = %q: want the old wording, without %q", err, ErrNetwork)
	}
}
