package sim

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"testing"
	"time"
)

// TestTimelineMillionEventsBoundedMemory pages through one device's
// timeline of more than a million events, 1000 a page, the way the harvester
// does, and checks that the emulator's heap stays bounded (it keeps at
// most tlCacheEvents generated events, never the whole timeline), that
// the Prev chain serves every event of the ground truth exactly once in
// order, and that a page read again is the same.
func TestTimelineMillionEventsBoundedMemory(t *testing.T) {
	if testing.Short() || os.Getenv("DH_SCALE_TESTS") == "" {
		t.Skip("pages through a million events (about a minute, much longer under -race): run with DH_SCALE_TESTS=1")
	}
	now := testStart
	ten, err := New(Options{Seed: 7, Start: testStart, Now: func() time.Time { return now }, Machines: 1, TimelineHistory: 9 * 24 * time.Hour, TimelineEvents: 1_200_000})
	if err != nil {
		t.Fatal(err)
	}
	if got := ten.opts.TimelineEventsPerMachineHour; got != 5556 {
		t.Fatalf("TimelineEventsPerMachineHour = %d, want 1.2e6/216 rounded up = 5556", got)
	}
	c := ten.Credentials()
	h := ten.Handler()
	id := ten.MachineIDs()[0]
	get := func(link string) tlPage {
		t.Helper()
		r := httptest.NewRequest("GET", "http://security.microsoft.com/apiproxy/mtp/mdeTimelineExperience"+link, nil)
		r.Header.Set("Cookie", "sccauth="+c.SccAuth+"; XSRF-TOKEN="+url.QueryEscape(c.XSRFToken))
		r.Header.Set("X-XSRF-TOKEN", c.XSRFToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", link, rec.Code, truncate(rec.Body.Bytes()))
		}
		var p tlPage
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	from, to := testStart.Add(-9*24*time.Hour), testStart
	base := heap()
	var peak uint64
	served := sha256.New()
	n := 0
	lastRID := int64(-1)
	lastAt := ""
	reread := map[string][32]byte{} // link → digest of its page
	link := "/machines/" + id + "/events/?machineId=" + id + "&pageSize=1000&fromDate=" + url.QueryEscape(fmt7Z(from)) + "&toDate=" + url.QueryEscape(fmt7Z(to))
	for pages := 0; link != ""; pages++ {
		p := get(link)
		for _, raw := range p.Items {
			var it tlItem
			json.Unmarshal(raw, &it)
			// Strictly newest first by (time, ReportId): no duplicates.
			if lastRID >= 0 && (it.ActionTimeIsoString > lastAt || it.ActionTimeIsoString == lastAt && it.ReportID >= lastRID) {
				t.Fatalf("page %d: event %d (%s) is not older than the one before (%d, %s)", pages, it.ReportID, it.ActionTimeIsoString, lastRID, lastAt)
			}
			lastRID, lastAt = it.ReportID, it.ActionTimeIsoString
			served.Write(raw)
			served.Write([]byte{'\n'})
		}
		n += len(p.Items)
		if pages%97 == 5 {
			b, _ := json.Marshal(p)
			reread[link] = sha256.Sum256(b)
		}
		if pages%50 == 0 {
			peak = max(peak, heap())
		}
		link = p.Prev
	}
	peak = max(peak, heap())
	if n < 1_000_000 {
		t.Fatalf("served %d events, want at least a million", n)
	}
	// No gaps: the chain equals the ground truth, hour by hour newest first.
	truth := sha256.New()
	m := 0
	for hs := to.Add(-time.Hour); !hs.Before(from); hs = hs.Add(-time.Hour) {
		evs, err := ten.Events("timeline:"+id, hs, hs.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for i := len(evs) - 1; i >= 0; i-- {
			truth.Write(evs[i])
			truth.Write([]byte{'\n'})
		}
		m += len(evs)
	}
	if m != n || !bytes.Equal(served.Sum(nil), truth.Sum(nil)) {
		t.Fatalf("the Prev chain served %d events, the ground truth has %d (or they differ)", n, m)
	}
	// The same link gives the same page again (after the cache moved on).
	for l, want := range reread {
		p := get(l)
		b, _ := json.Marshal(p)
		if sha256.Sum256(b) != want {
			t.Fatalf("page %s differs when read again", l)
		}
	}
	grow := int64(peak) - int64(base)
	t.Logf("%d events in the chain; heap in use %d MB before, peak %d MB; timeline cache holds %d events", n, base>>20, peak>>20, ten.tlCache.weightHeld())
	// A million events are about 800 MB of JSON; the cache keeps 65,536.
	if grow > 200<<20 {
		t.Fatalf("heap grew by %d MB while paging: the timeline is being held", grow>>20)
	}
	if w := ten.tlCache.weightHeld(); w > tlCacheEvents {
		t.Fatalf("timeline cache holds %d events, more than its budget %d", w, tlCacheEvents)
	}
}

func TestTimelineEventsKnob(t *testing.T) {
	for _, tc := range []struct {
		o  Options
		ok bool
	}{
		{Options{Seed: 1, TimelineEvents: 1_000_000}, true},
		{Options{Seed: 1, TimelineEvents: 1_008_001}, false}, // over 6000 an hour for 7 days
		{Options{Seed: 1, TimelineEvents: 2_000_000, TimelineHistory: 14 * 24 * time.Hour}, true},
		{Options{Seed: 1, TimelineEvents: 100, TimelineEventsPerMachineHour: 5}, false},
		{Options{Seed: 1, TimelineEvents: -1}, false},
	} {
		_, err := New(tc.o)
		if (err == nil) != tc.ok {
			t.Errorf("TimelineEvents %d (history %s, per hour %d): err %v", tc.o.TimelineEvents, tc.o.TimelineHistory, tc.o.TimelineEventsPerMachineHour, err)
		}
	}
}
