package sinktest

import (
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/delivery"
	"github.com/defenderharvester/defenderharvester/internal/sink"
)

// BenchTimelineWrite is the body of a network output's write benchmark:
// started sink s writes one pipeline-sized batch of timeline records
// (TimelineBatch) per iteration; it reports events/s, CPU per event and
// call sizes (stats: the sink's counters, maxWire: the largest body the
// receiver got on the wire, nil when unknown) and fails when a call
// carried more than limit bytes, compressed or not. It returns the
// sink's counters after the loop.
func BenchTimelineWrite(b *testing.B, s sink.Sink, stats func() delivery.Stats, maxWire func() int64, limit int64) delivery.Stats {
	b.Helper()
	recs := TimelineRecords(TimelineBatch, 1, 10*time.Minute)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := CPUTime()
	for b.Loop() {
		if err := s.Write(b.Context(), "MdeTimeline", recs); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	st := stats()
	b.SetBytes(st.BytesSent / int64(b.N))
	b.ReportMetric(float64(st.Records)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(CPUTime()-cpu0)/float64(max(st.Records, 1)), "cpu-ns/event")
	b.ReportMetric(float64(st.BytesSent)/float64(max(st.Requests, 1)), "bytes/call")
	b.ReportMetric(float64(st.MaxRequestBytes), "max-bytes/call")
	wire := int64(0)
	if maxWire != nil {
		wire = maxWire()
		b.ReportMetric(float64(wire), "max-wire-bytes/call")
	}
	if st.MaxRequestBytes > limit || wire > limit {
		b.Fatalf("a call carried more than %d bytes (%d plain, %d on the wire)", limit, st.MaxRequestBytes, wire)
	}
	return st
}
