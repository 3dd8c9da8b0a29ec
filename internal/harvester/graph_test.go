package harvester

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/sim"
	"github.com/defenderharvester/defenderharvester/internal/sim/simtest"
)

// A run with the public API's app credential builds the Graph client (a
// token for the Graph scope through the same credential and cache) and
// reaches the emulated graph.microsoft.com: detectionrules delivers every
// rule. The app without CustomDetection.Read.All fails the source with
// the permission to grant.
func TestDetectionRulesRunAgainstTheEmulator(t *testing.T) {
	now := time.Date(2026, 6, 10, 15, 30, 0, 0, time.UTC)
	ten, srv, ca := simtest.Start(t, sim.Options{Seed: 9, Machines: 2, Start: now.Add(-12 * time.Hour), Now: func() time.Time { return now }}, "")
	dir := t.TempDir()
	run := func(clientID, secret string) Report {
		t.Helper()
		cfg := emulatedAppConfig(t, ten, srv, ca, filepath.Join(dir, clientID+"-session.json"))
		cfg.PublicAPI.Auth.ClientID, cfg.Secrets.ClientSecret = clientID, secret
		cfg.StateFile = filepath.Join(dir, clientID+"-state.db")
		rep, err := Run(context.Background(), Request{Config: cfg, Sources: []string{"detectionrules"}, Outputs: []string{"files"}, OutDir: filepath.Join(dir, clientID)})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Results) != 1 || rep.Results[0].Table != "MdeDetectionRules" {
			t.Fatalf("results %+v", rep.Results)
		}
		return rep
	}
	c := ten.Credentials()
	before := ten.RequestCount(sim.FamilyGraph)
	res := run(c.ClientID, c.ClientSecret).Results[0]
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if res.Fetched < sim.GraphPageCap+1 || res.Changes["Initial"] != res.Fetched {
		t.Errorf("fetched %d, changes %v", res.Fetched, res.Changes)
	}
	if n := ten.RequestCount(sim.FamilyGraph) - before; n < 2 {
		t.Errorf("%d Graph requests: the list was not paged", n)
	}

	res = run(c.RestrictedClientID, c.RestrictedClientSecret).Results[0]
	if res.Err == nil || !strings.Contains(res.Err.Error(), "CustomDetection.Read.All") || !strings.Contains(res.Err.Error(), "HTTP 403") {
		t.Errorf("without the permission: err = %v", res.Err)
	}
}
