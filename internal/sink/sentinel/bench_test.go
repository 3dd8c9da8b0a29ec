package sentinel

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/sim"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/sink/sinktest"
)

// minimalIngest accepts every upload after reading its body: the
// benchmark measures the sink (encoding, packing, gzip, TLS, azlogs), not
// a receiver. It keeps the largest body on the wire.
type minimalIngest struct{ calls, maxWire atomic.Int64 }

func (m *minimalIngest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n, _ := io.Copy(io.Discard, r.Body)
	m.calls.Add(1)
	for {
		c := m.maxWire.Load()
		if n <= c || m.maxWire.CompareAndSwap(c, n) {
			break
		}
	}
	if n > MaxRequestBytes {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// BenchmarkWriteTimeline writes pipeline-sized batches (4 MiB) of ~1 KB
// timeline events to a Logs Ingestion receiver over TLS on loopback, through the sink's own
// production transport.
//
//	go test -run x -bench WriteTimeline -benchmem ./internal/sink/sentinel/
func BenchmarkWriteTimeline(b *testing.B) {
	for _, gz := range []bool{true, false} {
		name := "gzip"
		if !gz {
			name = "plain"
		}
		b.Run(name, func(b *testing.B) {
			recv := &minimalIngest{}
			srv := httptest.NewTLSServer(recv)
			defer srv.Close()
			cfg := testConfig(srv.URL)
			cfg.Gzip = gz
			cfg.DeadLetterDir = b.TempDir()
			if err := cfg.validate(); err != nil {
				b.Fatal(err)
			}
			// The production transport, trusting the test server's CA.
			rt := newHTTPTransport(cfg.Delivery.AttemptTimeout)
			rt.TLSClientConfig.RootCAs = srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
			deps := sink.Deps{Transport: rt}.WithDefaults()
			log := slog.New(slog.DiscardHandler)
			co, err := clientOptions(deps, cfg, log)
			if err != nil {
				b.Fatal(err)
			}
			s, err := newWithCredential(deps, cfg, co, staticCred{}, nil, log)
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Start(b.Context()); err != nil {
				b.Fatal(err)
			}
			sinktest.BenchTimelineWrite(b, s, s.Stats, recv.maxWire.Load, MaxRequestBytes)
		})
	}
}

// BenchmarkWriteTimelineEmulator writes the same batches to the emulated
// tenant's strict Logs Ingestion API (in this process: it decompresses,
// parses and checks every record), which shows what a receiver that does
// the real work costs next to the sink's own cost above.
//
//	go test -run x -bench WriteTimelineEmulator ./internal/sink/sentinel/
func BenchmarkWriteTimelineEmulator(b *testing.B) {
	ten, err := sim.New(sim.Options{Seed: 7})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := ten.Serve("127.0.0.1:0", true)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	info, creds := ten.Info(srv), ten.Credentials()
	cfg := *DefaultConfig()
	cfg.Endpoint, cfg.DCRImmutableID = info.Sentinel.Endpoint, info.Sentinel.DCRImmutableID
	cfg.Auth = AuthConfig{Method: AuthClientSecret, TenantID: creds.TenantID, ClientID: creds.ClientID}
	s, err := New(simDeps(b, ten, srv, creds.ClientSecret), cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	st := sinktest.BenchTimelineWrite(b, s, s.Stats, nil, MaxRequestBytes)
	if got := ten.Received(sim.ReceiverSentinel).Records; int64(got) != st.Records {
		b.Fatalf("emulator received %d records, sink counted %d", got, st.Records)
	}
}
