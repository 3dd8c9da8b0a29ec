package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/detections"
	"github.com/defenderharvester/defenderharvester/internal/sim"
)

// TestDetectFiresOnAbuseAndNotOnAQuietDay harvests an emulated tenant
// twice, twelve hours apart, in the "abuse" scenario (an attacker with a
// stolen admin session an hour after the first harvest) and in the
// "quiet" one (the same day without the attack), with the emulator's
// regular operators on the allow-lists — the tuning a real tenant gets.
// Both ways of running the pack must agree: detect over the files output
// fires every rule on the abuse and none on the quiet day, and so do the
// in-process detections of the second harvest (detect.enabled), whose
// findings land in DefenderHarvesterFindings.
func TestDetectFiresOnAbuseAndNotOnAQuietDay(t *testing.T) {
	rules, err := detections.Rules()
	if err != nil {
		t.Fatal(err)
	}
	every := make([]string, len(rules))
	for i, r := range rules {
		every[i] = r.ID
	}
	for _, scenario := range []string{sim.ScenarioAbuse, sim.ScenarioQuiet} {
		t.Run(scenario, func(t *testing.T) {
			start := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
			clk := &clock{t: start}
			opts := sim.Options{Seed: 5, Now: clk.Now, Machines: 10, Scenario: scenario, History: 48 * time.Hour, TimelineHistory: time.Hour}
			if scenario == sim.ScenarioAbuse {
				opts.AbuseAt = start.Add(time.Hour)
			}
			f := newFixture(t, opts)
			f.clock = clk
			lists := filepath.Join(f.dir, "allow-lists")
			if err := os.MkdirAll(lists, 0o700); err != nil {
				t.Fatal(err)
			}
			ops := "SearchKey\n" + strings.Join(f.tenant.RegularOperators(), "\n") + "\n"
			for _, r := range rules {
				for _, l := range r.Lookups() {
					mustWrite(t, filepath.Join(lists, l+".csv"), []byte(ops), 0o600)
				}
			}
			extra := "  auditlog:\n    enabled: true\n  detectionrules:\n    enabled: true\n"
			cfg := f.writeConfig("detect", extra)
			// Pass 2 also runs the pack in process.
			cfg2 := f.writeConfig("detect2", extra+fmt.Sprintf("detect:\n  enabled: true\n  lookups: %q\n", lists))
			mustWrite(t, cfg2, []byte(strings.ReplaceAll(readFile(t, cfg2), "detect2", "detect")), 0o600) // same state and output
			if code, out, errs := f.runCLI("run", "--config", cfg, "--outputs", "files"); code != 0 {
				t.Fatalf("pass 1 exit %d\n%s\n%s", code, out, errs)
			}
			clk.Set(start.Add(12 * time.Hour))
			code, out, errs := f.runCLI("run", "--config", cfg2, "--outputs", "files")
			if code != 0 {
				t.Fatalf("pass 2 exit %d\n%s\n%s", code, out, errs)
			}
			if got := strings.Contains(out, "detections: "); got != (scenario == sim.ScenarioAbuse) {
				t.Errorf("pass 2's summary reports findings: %v, want %v\n%s", got, scenario == sim.ScenarioAbuse, out)
			}
			outDir := filepath.Join(f.dir, "detect-out")

			code, out, errs = f.runCLI("detect", "--in", outDir, "--lookups", lists, "--json")
			if code != 0 {
				t.Fatalf("detect exit %d\n%s", code, errs)
			}
			fromFiles := firedRules(t, out)
			var inProcess []string
			for _, l := range readOutput(t, outDir) {
				if l.Table == "DefenderHarvesterFindings" {
					id, _ := l.raw["RuleId"].(string)
					inProcess = appendOnce(inProcess, id)
				}
			}
			sort.Strings(inProcess)
			want := every
			if scenario == sim.ScenarioQuiet {
				want = nil
			}
			if strings.Join(fromFiles, ",") != strings.Join(want, ",") {
				t.Errorf("detect over the files fired %v, want %v\n%s", fromFiles, want, out)
			}
			if strings.Join(inProcess, ",") != strings.Join(want, ",") {
				t.Errorf("the in-process detections fired %v, want %v", inProcess, want)
			}
			if scenario == sim.ScenarioAbuse {
				user, _ := f.tenant.AbuseActors()
				if !strings.Contains(out, user) {
					t.Errorf("no finding names the attacker %s", user)
				}
			}
		})
	}
}

// firedRules reads detect --json: one finding per line, each naming its
// rule; it returns the rule ids, sorted, once each.
func firedRules(t *testing.T, out string) []string {
	t.Helper()
	var ids []string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var f struct{ RuleId string }
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil || f.RuleId == "" {
			t.Fatalf("detect --json line is not a finding naming its rule: %q", sc.Text())
		}
		ids = appendOnce(ids, f.RuleId)
	}
	sort.Strings(ids)
	return ids
}

func appendOnce(xs []string, x string) []string {
	for _, v := range xs {
		if v == x {
			return xs
		}
	}
	return append(xs, x)
}
