package mde

import (
	"context"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"github.com/defenderharvester/defenderharvester/internal/sim"
)

// TestPoolAgainstTheEmulatorsThrottle: eight workers read device
// timelines through one portal client from an emulator that serves at
// most 3 timeline requests at once (stricter than the pool) and answers
// the rest 429 with Retry-After. Every request succeeds; whenever the
// emulator refused some, the client lowered its limit, and it never
// went above its maximum.
func TestPoolAgainstTheEmulatorsThrottle(t *testing.T) {
	const workers, perWorker = 8, 5
	now := time.Date(2026, 3, 10, 12, 30, 0, 0, time.UTC)
	ten, err := sim.New(sim.Options{Seed: 7, Machines: workers, Now: func() time.Time { return now },
		ThrottleConcurrency: 3, PageLatency: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ten.Handler())
	t.Cleanup(srv.Close)
	rt, err := NewTransport(TransportOptions{EmulatorAddress: srv.Listener.Addr().String(), Plaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	cr := ten.Credentials()
	sess, err := auth.NewStaticCookies(cr.SccAuth, url.QueryEscape(cr.XSRFToken))
	if err != nil {
		t.Fatal(err)
	}
	vc := newVClock()
	c, err := NewPortalClient(PortalOptions{Session: sess, ClientOptions: ClientOptions{
		Transport: rt, Limiter: Limiters{}, Sleep: vc.Sleep, Now: vc.Now, MaxAttempts: 20,
	}})
	if err != nil {
		t.Fatal(err)
	}
	to, from := now, now.Add(-time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for _, id := range ten.MachineIDs()[:workers] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				q := url.Values{"machineId": {id}, "fromDate": {FormatTimelineTime(from)}, "toDate": {FormatTimelineTime(to)}, "pageSize": {"10"}}
				_, err := c.Get(context.Background(), "/apiproxy/mtp/mdeTimelineExperience/machines/"+id+"/events/", q)
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a request failed: %v", err)
		}
	}
	st := c.Pacer().State()
	refused := ten.FaultsFired()[sim.Fault429]
	t.Logf("emulator refused %d requests; pacer %+v", refused, st)
	if refused > 0 && st.Decreases == 0 {
		t.Errorf("the emulator refused %d requests and the client never lowered its limit: %+v", refused, st)
	}
	if st.Limit < 1 || st.Limit > DefaultMaxInFlight || st.InFlight != 0 {
		t.Errorf("pacer %+v", st)
	}
}
