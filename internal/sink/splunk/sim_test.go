package splunk

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/sim"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/sink/sinktest"
)

// TestAgainstEmulator delivers to the emulated tenant's strict HEC over
// TLS with its real tokens: every record arrives exactly once.
func TestAgainstEmulator(t *testing.T) {
	cases := []struct {
		name    string
		ack     bool
		faults  string
		index   string
		wantErr string
	}{
		{name: "plain token", index: "defender"},
		{name: "ack token", ack: true},
		{name: "ack token under busy faults", ack: true, faults: "splunk:503=0.3"},
		{name: "wrong index", index: "nosuchindex", wantErr: `index "nosuchindex"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := sim.Options{Seed: 3}
			if tc.faults != "" {
				f, err := sim.ParseFaults(tc.faults)
				if err != nil {
					t.Fatal(err)
				}
				opts.Faults = f
			}
			ten, err := sim.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			srv, err := ten.Serve("127.0.0.1:0", true)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = srv.Close() })
			rt, err := mde.NewTransport(mde.TransportOptions{EmulatorAddress: srv.Addr(), EmulatorCAPEM: ten.CACertPEM()})
			if err != nil {
				t.Fatal(err)
			}
			creds := ten.Credentials()
			token := creds.HECToken
			if tc.ack {
				token = creds.HECAckToken
			}
			var log bytes.Buffer
			clk := &fakeClock{t: time.Now()}
			cfg := *DefaultConfig()
			cfg.URL, cfg.Host, cfg.Index = "https://hec.splunk.test", "harvester-01", tc.index
			cfg.Ack.Enabled = tc.ack
			cfg.Delivery.MaxBytes = 20_000
			cfg.Delivery.MaxAttempts = 20
			cfg.Delivery.Sleep, cfg.Delivery.Now = clk.Sleep, clk.Now
			s, err := New(sink.Deps{
				Logger: slogTo(&log), Transport: rt, Emulated: true, DataDir: t.TempDir(),
				Getenv: func(k string) string {
					if k == EnvToken {
						return token
					}
					return ""
				},
			}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			s.sleep = clk.Sleep // ack polls without real waiting (HECAckDelay is 0)
			if err := s.Start(t.Context()); err != nil && tc.faults == "" {
				t.Fatalf("Start: %v", err)
			}
			defer s.Shutdown(context.Background())

			var want []record.Record
			for _, table := range []string{"MdeActionCenter", "MdeMachineActions"} {
				recs := sinktest.Records(table, 0, 150)
				err := s.Write(t.Context(), table, recs)
				if tc.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
						t.Fatalf("Write: %v; want an error containing %q", err, tc.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatalf("Write %s: %v", table, err)
				}
				want = append(want, recs...)
			}
			st := ten.Received(sim.ReceiverSplunk)
			got := st.IDs()
			for _, r := range want {
				if got[r.ID] != 1 {
					t.Errorf("record %s received %d times, want exactly once", r.ID, got[r.ID])
				}
			}
			if st.Unique != len(want) || st.Duplicates != 0 {
				t.Errorf("receiver: %d unique, %d duplicates; want %d, 0", st.Unique, st.Duplicates, len(want))
			}
			if st.ByTable["MdeActionCenter"] != 150 || st.ByTable["MdeMachineActions"] != 150 {
				t.Errorf("by sourcetype %v", st.ByTable)
			}
			if tc.faults != "" && st.Rejected[503] == 0 {
				t.Error("no 503 was injected; the fault case tested nothing")
			}
			if strings.Contains(log.String(), token) {
				t.Error("token in the log")
			}
		})
	}
}
