package delivery

import (
	"context"
	"testing"
)

// BenchmarkWrite packs 1 KB records and hands them to a no-op sender:
// the helper's own cost per record and the request sizes it produces.
func BenchmarkWrite(b *testing.B) {
	for _, fr := range []struct {
		name string
		f    Framing
	}{{"jsonarray", JSONArray}, {"concatenated", Concatenated}} {
		b.Run(fr.name, func(b *testing.B) {
			in := recs(5000, 1000)
			e, err := New("bench", Config{}, fr.f, encJSON, func(context.Context, *Request) error { return nil }, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := e.Write(context.Background(), "T", in); err != nil {
					b.Fatal(err)
				}
			}
			st := e.Stats()
			b.ReportMetric(float64(st.Records)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(st.BytesSent)/float64(st.Requests), "bytes/request")
			b.SetBytes(st.BytesSent / int64(max(b.N, 1))) // body bytes per Write
		})
	}
}
