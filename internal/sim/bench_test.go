package sim

import (
	"net/http/httptest"
	"testing"
	"time"
)

func BenchmarkTimelinePage(b *testing.B) {
	ten, err := New(Options{Seed: 1, Start: testStart, Now: func() time.Time { return testStart }, TimelineEventsPerMachineHour: 100})
	if err != nil {
		b.Fatal(err)
	}
	c := ten.Credentials()
	h := ten.Handler()
	id := ten.MachineIDs()[0]
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest("GET", "http://security.microsoft.com/apiproxy/mtp/mdeTimelineExperience/machines/"+id+"/events/?fromDate=2026-03-03T12:00:00Z&toDate=2026-03-10T12:00:00Z&pageSize=1000", nil)
		req.Header.Set("Cookie", "sccauth="+c.SccAuth)
		req.Header.Set("X-XSRF-TOKEN", c.XSRFToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}

func BenchmarkMachineActionsList(b *testing.B) {
	ten, err := New(Options{Seed: 1, Start: testStart, Now: func() time.Time { return testStart }})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ten.Events("machineactions", testStart.Add(-30*24*time.Hour), testStart); err != nil {
			b.Fatal(err)
		}
	}
}
