package splunk

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/sim"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/sink/sinktest"
)

// minimalHEC accepts every event request after reading its body: the
// benchmark measures the sink (envelopes, packing, gzip, TLS), not a
// receiver. It keeps the largest body on the wire.
type minimalHEC struct{ calls, maxWire atomic.Int64 }

func (m *minimalHEC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n, _ := io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	if strings.HasSuffix(r.URL.Path, "/health") {
		_, _ = io.WriteString(w, `{"text":"HEC is healthy","code":17}`)
		return
	}
	if n == 0 {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"text":"No data","code":5}`)
		return
	}
	m.calls.Add(1)
	for {
		c := m.maxWire.Load()
		if n <= c || m.maxWire.CompareAndSwap(c, n) {
			break
		}
	}
	_, _ = io.WriteString(w, `{"text":"Success","code":0}`)
}

// BenchmarkWriteTimeline writes pipeline-sized batches (4 MiB) of ~1 KB
// timeline events to a HEC receiver over TLS on loopback, through the
// sink's own production transport.
//
//	go test -run x -bench WriteTimeline -benchmem ./internal/sink/splunk/
func BenchmarkWriteTimeline(b *testing.B) {
	for _, gz := range []bool{true, false} {
		name := "gzip"
		if !gz {
			name = "plain"
		}
		b.Run(name, func(b *testing.B) {
			recv := &minimalHEC{}
			srv := httptest.NewTLSServer(recv)
			defer srv.Close()
			pool := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
			cfg := *DefaultConfig()
			cfg.URL, cfg.Host, cfg.Gzip = srv.URL, "bench", gz
			rt := newHTTPTransport(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}, DefaultTimeout)
			s, err := New(sink.Deps{Transport: rt, Getenv: func(string) string { return testToken }, DataDir: b.TempDir()}, cfg)
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Start(b.Context()); err != nil {
				b.Fatal(err)
			}
			sinktest.BenchTimelineWrite(b, s, s.Stats, recv.maxWire.Load, 1_000_000)
		})
	}
}

// BenchmarkWriteTimelineEmulator writes the same batches to the emulated
// tenant's strict HEC (in this process: it parses and checks every
// envelope), which shows what a receiver that does the real work costs
// next to the sink's own cost above.
//
//	go test -run x -bench WriteTimelineEmulator ./internal/sink/splunk/
func BenchmarkWriteTimelineEmulator(b *testing.B) {
	ten, err := sim.New(sim.Options{Seed: 3})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := ten.Serve("127.0.0.1:0", true)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	rt, err := mde.NewTransport(mde.TransportOptions{EmulatorAddress: srv.Addr(), EmulatorCAPEM: ten.CACertPEM()})
	if err != nil {
		b.Fatal(err)
	}
	cfg := *DefaultConfig()
	cfg.URL, cfg.Host = "https://hec.splunk.test", "bench"
	token := ten.Credentials().HECToken
	s, err := New(sink.Deps{Transport: rt, Emulated: true, DataDir: b.TempDir(),
		Getenv: func(string) string { return token }}, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	st := sinktest.BenchTimelineWrite(b, s, s.Stats, nil, 1_000_000)
	if got := ten.Received(sim.ReceiverSplunk).Records; int64(got) != st.Records {
		b.Fatalf("emulator received %d records, sink counted %d", got, st.Records)
	}
}
