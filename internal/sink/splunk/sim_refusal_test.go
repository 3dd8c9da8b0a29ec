package splunk

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/sim"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/sink/sinktest"
)

// simSink builds a sink on the emulated HEC with the plain token, index
// "defender" and a fake clock for retries.
func simSink(t *testing.T, ten *sim.Tenant, srv *sim.Server) *Sink {
	t.Helper()
	rt, err := mde.NewTransport(mde.TransportOptions{EmulatorAddress: srv.Addr(), EmulatorCAPEM: ten.CACertPEM()})
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Now()}
	cfg := *DefaultConfig()
	cfg.URL, cfg.Host, cfg.Index = "https://hec.splunk.test", "harvester-01", "defender"
	cfg.Delivery.MaxBytes = 20_000
	cfg.Delivery.Sleep, cfg.Delivery.Now = clk.Sleep, clk.Now
	token := ten.Credentials().HECToken
	s, err := New(sink.Deps{Transport: rt, Emulated: true, DataDir: t.TempDir(),
		Getenv: func(k string) string { return map[string]string{EnvToken: token}[k] }}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s
}

func newSim(t *testing.T) (*sim.Tenant, *sim.Server) {
	t.Helper()
	ten, err := sim.New(sim.Options{Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ten.Serve("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return ten, srv
}

// Refusals of the request by the emulated HEC — a disabled token, an
// index the token may not use — fail Start or the Write, one record or
// many, and never produce a dead letter; fixed, the same records go in.
func TestRequestRefusalsAgainstEmulator(t *testing.T) {
	tests := []struct {
		name      string
		refuse    func(*sim.Tenant) error
		allow     func(*sim.Tenant) error
		atStart   bool
		wantError string
	}{
		{"token disabled before the run", func(ten *sim.Tenant) error { return ten.SetHECTokenDisabled(ten.Credentials().HECToken, true) },
			func(ten *sim.Tenant) error { return ten.SetHECTokenDisabled(ten.Credentials().HECToken, false) }, true, "token is disabled"},
		{"token disabled during the run", func(ten *sim.Tenant) error { return ten.SetHECTokenDisabled(ten.Credentials().HECToken, true) },
			func(ten *sim.Tenant) error { return ten.SetHECTokenDisabled(ten.Credentials().HECToken, false) }, false, "token is disabled"},
		{"index not allowed", func(ten *sim.Tenant) error { return ten.SetHECIndexAllowed("defender", false) },
			func(ten *sim.Tenant) error { return ten.SetHECIndexAllowed("defender", true) }, false, `index "defender" is not allowed`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ten, srv := newSim(t)
			s := simSink(t, ten, srv)
			if tc.atStart {
				if err := tc.refuse(ten); err != nil {
					t.Fatal(err)
				}
				err := s.Start(t.Context())
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("Start = %v; want an error containing %q", err, tc.wantError)
				}
				if err := tc.allow(ten); err != nil {
					t.Fatal(err)
				}
				s = simSink(t, ten, srv) // the next run
			}
			if err := s.Start(t.Context()); err != nil {
				t.Fatalf("Start: %v", err)
			}
			if !tc.atStart {
				if err := tc.refuse(ten); err != nil {
					t.Fatal(err)
				}
				for _, n := range []int{1, 40} {
					err := s.Write(t.Context(), "MdeMachineActions", sinktest.Records("MdeMachineActions", 0, n))
					if err == nil || !strings.Contains(err.Error(), tc.wantError) {
						t.Fatalf("Write of %d records = %v; want an error containing %q", n, err, tc.wantError)
					}
				}
				if st := s.Stats(); st.DeadLettered != 0 || len(deadLetters(t, s)) != 0 {
					t.Fatalf("%d records dead-lettered after a refusal of the request", st.DeadLettered)
				}
				if err := tc.allow(ten); err != nil {
					t.Fatal(err)
				}
			}
			recs := sinktest.Records("MdeMachineActions", 0, 40)
			if err := s.Write(t.Context(), "MdeMachineActions", recs); err != nil {
				t.Fatalf("Write after the fix: %v", err)
			}
			ids := ten.Received(sim.ReceiverSplunk).IDs()
			for _, r := range recs {
				if ids[r.ID] == 0 {
					t.Errorf("record %s missing after the fix", r.ID)
				}
			}
		})
	}
}

// Events the emulated HEC cannot parse are dead-lettered one by one; the
// others arrive exactly once, although HEC indexed the events before each
// refused one.
func TestRecordRefusalsAgainstEmulator(t *testing.T) {
	ten, srv := newSim(t)
	s := simSink(t, ten, srv)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	recs := sinktest.Records("MdeActionCenter", 0, 120)
	bad := map[string]bool{recs[0].ID: true, recs[57].ID: true, recs[58].ID: true, recs[119].ID: true}
	var ids []string
	for id := range bad {
		ids = append(ids, id)
	}
	ten.SetHECInvalidEvents(ids...)
	if err := s.Write(t.Context(), "MdeActionCenter", recs); err != nil {
		t.Fatalf("Write: %v", err)
	}
	st := ten.Received(sim.ReceiverSplunk)
	got := st.IDs()
	for _, r := range recs {
		want := 1
		if bad[r.ID] {
			want = 0
		}
		if got[r.ID] != want {
			t.Errorf("record %s received %d times, want %d", r.ID, got[r.ID], want)
		}
	}
	dead := deadLetters(t, s)
	if len(dead) != len(bad) || s.Stats().DeadLettered != int64(len(bad)) {
		t.Fatalf("%d dead letters, want %d", len(dead), len(bad))
	}
	for _, line := range dead {
		found := false
		for id := range bad {
			found = found || strings.Contains(line, `"RecordId":"`+id+`"`)
		}
		if !found {
			t.Errorf("dead letter of an event HEC accepted: %.200s", line)
		}
	}
}
