package delivery_test

import (
	"context"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/delivery"
	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/sink/sinktest"
)

// BenchmarkWriteTimeline packs pipeline-sized batches (4 MiB) of ~1 KB
// timeline events and hands the requests to a sender that does nothing:
// the helper's own cost per event.
//
//	go test -run x -bench WriteTimeline -benchmem ./internal/delivery/
func BenchmarkWriteTimeline(b *testing.B) {
	in := sinktest.TimelineRecords(sinktest.TimelineBatch, 1, 10*time.Minute)
	enc := func(dst []byte, r *record.Record) ([]byte, error) { return r.AppendJSON(dst) }
	e, err := delivery.New("bench", delivery.Config{}, delivery.JSONArray, enc, func(context.Context, *delivery.Request) error { return nil }, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0 := sinktest.CPUTime()
	for b.Loop() {
		if err := e.Write(context.Background(), "MdeTimeline", in); err != nil {
			b.Fatal(err)
		}
	}
	st := e.Stats()
	b.SetBytes(st.BytesSent / int64(max(b.N, 1)))
	b.ReportMetric(float64(st.Records)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(sinktest.CPUTime()-cpu0)/float64(max(st.Records, 1)), "cpu-ns/event")
	b.ReportMetric(float64(st.BytesSent)/float64(max(st.Requests, 1)), "bytes/call")
	b.ReportMetric(float64(st.MaxRequestBytes), "max-bytes/call")
}
