package stdout

import (
	"io"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/sink/sinktest"
)

// BenchmarkWriteTimeline writes pipeline-sized batches (4 MiB) of ~1 KB
// timeline events to a writer that discards them.
//
//	go test -run x -bench WriteTimeline -benchmem ./internal/sink/stdout/
func BenchmarkWriteTimeline(b *testing.B) {
	s := New(sink.Deps{Stdout: io.Discard})
	recs := sinktest.TimelineRecords(sinktest.TimelineBatch, 1, 10*time.Minute)
	b.ReportAllocs()
	cpu0 := sinktest.CPUTime()
	for b.Loop() {
		if err := s.Write(b.Context(), "MdeTimeline", recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(sinktest.CPUTime()-cpu0)/float64(max(int64(b.N*len(recs)), 1)), "cpu-ns/event")
}
