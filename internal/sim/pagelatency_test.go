package sim

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

func timelineReq(ctx context.Context, ten *Tenant, id string) *http.Request {
	c := ten.Credentials()
	r := httptest.NewRequestWithContext(ctx, "GET", "http://security.microsoft.com/apiproxy/mtp/mdeTimelineExperience/machines/"+id+
		"/events/?fromDate=2026-03-10T00:00:00Z&toDate=2026-03-10T06:00:00Z&pageSize=50", nil)
	r.Header.Set("Cookie", "sccauth="+c.SccAuth+"; XSRF-TOKEN="+url.QueryEscape(c.XSRFToken))
	r.Header.Set("X-XSRF-TOKEN", c.XSRFToken)
	return r
}

// Every timeline page takes at least PageLatency; other routes do not.
func TestPageLatencyDelaysTimelinePages(t *testing.T) {
	const lat = 150 * time.Millisecond
	e := newEnv(t, func(o *Options) { o.PageLatency = lat })
	id := e.ten.MachineIDs()[0]
	for i := 0; i < 2; i++ {
		start := time.Now()
		r := e.portal("GET", "/apiproxy/mtp/mdeTimelineExperience/machines/"+id+"/events/?fromDate=2026-03-10T00:00:00Z&toDate=2026-03-10T06:00:00Z&pageSize=5", nil)
		if r.status != 200 {
			t.Fatalf("status %d %s", r.status, truncate(r.body))
		}
		if d := time.Since(start); d < lat {
			t.Fatalf("page %d answered after %s, want at least %s", i, d, lat)
		}
	}
	start := time.Now()
	if r := e.portal("GET", "/apiproxy/mtp/ndr/machines?pageSize=100", nil); r.status != 200 {
		t.Fatalf("machines: %d", r.status)
	}
	if d := time.Since(start); d >= lat {
		t.Fatalf("the device list took %s: PageLatency is for timeline pages", d)
	}
}

// A client that gives up ends the wait: the handler returns long before
// the page latency has passed.
func TestPageLatencyCancelled(t *testing.T) {
	ten, err := New(Options{Seed: 42, Start: testStart, Now: func() time.Time { return testStart.Add(12 * time.Hour) }, PageLatency: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	rec := httptest.NewRecorder()
	start := time.Now()
	go func() {
		ten.Handler().ServeHTTP(rec, timelineReq(ctx, ten, ten.MachineIDs()[0]))
		close(done)
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the cancelled request still waits for its page latency")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancelled request took %s", d)
	}
	if rec.Body.Len() != 0 {
		t.Fatalf("a cancelled request was answered: %q", truncate(rec.Body.Bytes()))
	}
}

func TestPageLatencyNegativeRefused(t *testing.T) {
	if _, err := New(Options{Seed: 1, PageLatency: -time.Second}); err == nil {
		t.Fatal("negative PageLatency accepted")
	}
}
