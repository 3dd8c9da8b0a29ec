package sim

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// heldTimeline sends a timeline request that the emulator's PageLatency
// holds in flight until ctx ends.
func (e *env) heldTimeline(ctx context.Context, id string) {
	c := e.ten.Credentials()
	req, err := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/apiproxy/mtp/mdeTimelineExperience/machines/"+id+"/events/?fromDate=2026-03-10T00:00:00Z&toDate=2026-03-10T06:00:00Z", nil)
	if err != nil {
		e.t.Error(err)
		return
	}
	req.Host = "security.microsoft.com"
	req.Header.Set("Cookie", "sccauth="+c.SccAuth+"; XSRF-TOKEN="+url.QueryEscape(c.XSRFToken))
	req.Header.Set("X-XSRF-TOKEN", c.XSRFToken)
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 10000; i++ {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("gave up waiting for %s", what)
}

// TestThrottleConcurrency: with ThrottleConcurrency K, a timeline request
// that arrives while K are served gets 429 with Retry-After in the
// service's envelope, on the portal and the legacy timeline routes; other
// routes are not throttled; once the K are done, timeline requests are
// served again.
func TestThrottleConcurrency(t *testing.T) {
	const k = 3
	e := newEnv(t, func(o *Options) {
		o.ThrottleConcurrency = k
		o.ThrottleRetryAfter = 2 * time.Second
		o.PageLatency = time.Hour // admitted timeline requests stay in flight until cancelled
	})
	id := e.ten.MachineIDs()[0]
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < k; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); e.heldTimeline(ctx, id) }()
	}
	waitUntil(t, "K timeline requests in flight", func() bool { return e.ten.tlInFlight.Load() == k })

	tl := "/machines/" + id + "/events/?fromDate=2026-03-10T00:00:00Z&toDate=2026-03-10T06:00:00Z"
	tests := []struct {
		name       string
		host, path string
		hdr        map[string]string
		want       int
		wantBody   string
	}{
		{"portal timeline beyond K", "security.microsoft.com", "/apiproxy/mtp/mdeTimelineExperience" + tl, nil, 429, `"Message":"Rate limit is exceeded`},
		{"legacy timeline beyond K", "wdatpprd-weu.securitycenter.windows.com", "/api/detection/experience/timeline" + tl, nil, 429, `"Message"`},
		{"another portal route", "security.microsoft.com", "/apiproxy/mtp/settings/GetAdvancedFeaturesSetting", nil, 200, ""},
	}
	c := e.ten.Credentials()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("GET", tt.host, tt.path, nil, map[string]string{
				"Cookie":       "sccauth=" + c.SccAuth + "; XSRF-TOKEN=" + url.QueryEscape(c.XSRFToken),
				"X-XSRF-TOKEN": c.XSRFToken,
			})
			if r.status != tt.want || !strings.Contains(string(r.body), tt.wantBody) {
				t.Fatalf("%d %s, want %d with %s", r.status, truncate(r.body), tt.want, tt.wantBody)
			}
			if tt.want == 429 && r.header.Get("Retry-After") != "2" {
				t.Errorf("Retry-After %q, want 2", r.header.Get("Retry-After"))
			}
		})
	}
	if n := e.ten.FaultsFired()[Fault429]; n != 2 {
		t.Errorf("FaultsFired 429 = %d, want the 2 refused timeline requests", n)
	}
	if n := e.ten.tlInFlight.Load(); n != k {
		t.Errorf("%d timeline requests in flight, want the %d admitted (a refused one is not in flight)", n, k)
	}
	cancel()
	wg.Wait()
	waitUntil(t, "the held requests to end", func() bool { return e.ten.tlInFlight.Load() == 0 })
	// Room again: a new timeline request is admitted (held by PageLatency).
	ctx2, cancel2 := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.heldTimeline(ctx2, id) }()
	waitUntil(t, "a new timeline request to be admitted", func() bool { return e.ten.tlInFlight.Load() == 1 })
	cancel2()
	<-done
	if n := e.ten.FaultsFired()[Fault429]; n != 2 {
		t.Errorf("FaultsFired 429 = %d after the held requests ended, want still 2", n)
	}
}

// TestThrottleConcurrencyOff: by default any number of timeline requests
// are served at once.
func TestThrottleConcurrencyOff(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.PageLatency = 20 * time.Millisecond })
	id := e.ten.MachineIDs()[0]
	var wg sync.WaitGroup
	statuses := make(chan int, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- e.portal("GET", "/apiproxy/mtp/mdeTimelineExperience/machines/"+id+"/events/?fromDate=2026-03-10T00:00:00Z&toDate=2026-03-10T06:00:00Z", nil).status
		}()
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 200 {
			t.Fatalf("status %d without ThrottleConcurrency", s)
		}
	}
}

func TestThrottleConcurrencyValidation(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"negative K", Options{ThrottleConcurrency: -1}, "ThrottleConcurrency"},
		{"negative Retry-After", Options{ThrottleConcurrency: 3, ThrottleRetryAfter: -time.Second}, "ThrottleRetryAfter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %s", err, tt.want)
			}
		})
	}
}
