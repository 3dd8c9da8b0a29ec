package splunk

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/sink"
)

// noopHEC accepts every request in memory: the benchmark measures the
// sink (envelopes, gzip, delivery), not a network.
type noopHEC struct{ maxBody, calls atomic.Int64 }

func (n *noopHEC) RoundTrip(r *http.Request) (*http.Response, error) {
	var size int64
	if r.Body != nil {
		var rd io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				return nil, err
			}
			rd = zr
		}
		size, _ = io.Copy(io.Discard, rd)
		r.Body.Close()
	}
	n.calls.Add(1)
	for {
		m := n.maxBody.Load()
		if size <= m || n.maxBody.CompareAndSwap(m, size) {
			break
		}
	}
	body := `{"text":"Success","code":0}`
	if strings.HasSuffix(r.URL.Path, "/health") {
		body = `{"text":"HEC is healthy","code":17}`
	}
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
}

func benchRecords(n int) []record.Record {
	pad := strings.Repeat("x", 800)
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	out := make([]record.Record, n)
	for i := range out {
		raw, _ := json.Marshal(map[string]any{"Id": fmt.Sprintf("act-%d", i), "Type": "Isolate", "Status": "Succeeded", "Comment": pad})
		out[i] = record.Record{Tenant: "00000000-0000-0000-0000-00000000000a", Source: "machineactions", Table: "MdeMachineActions",
			ID: fmt.Sprintf("%032d", i), Time: base.Add(time.Duration(i) * time.Millisecond), HarvestedAt: base, Raw: raw}
	}
	return out
}

func BenchmarkWrite1KB(b *testing.B) {
	for _, gz := range []bool{true, false} {
		b.Run(fmt.Sprintf("gzip=%v", gz), func(b *testing.B) {
			rt := &noopHEC{}
			cfg := *DefaultConfig()
			cfg.URL, cfg.Host, cfg.Gzip = "https://hec.splunk.test:8088", "bench", gz
			s, err := New(sink.Deps{Transport: rt, Getenv: func(string) string { return testToken }, DataDir: b.TempDir()}, cfg)
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			recs := benchRecords(5000)
			enc, _ := recs[0].AppendJSON(nil)
			b.SetBytes(int64(len(enc)) * int64(len(recs)))
			b.ResetTimer()
			for b.Loop() {
				if err := s.Write(context.Background(), "MdeMachineActions", recs); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			st := s.Stats()
			b.ReportMetric(float64(st.Records)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(st.BytesSent)/float64(max(st.Requests, 1)), "bytes/request")
			if m := rt.maxBody.Load(); m > 1_000_000 {
				b.Fatalf("a request carried %d bytes > 1 MB", m)
			}
		})
	}
}
