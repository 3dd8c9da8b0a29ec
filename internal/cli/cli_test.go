package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/sim"
	"github.com/defenderharvester/defenderharvester/internal/sim/simtest"
)

func testEnv(vars map[string]string) (*Env, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return &Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return vars[k] }, Now: time.Now}, &out, &errb
}

func TestUsageErrors(t *testing.T) {
	cfgBad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(cfgBad, []byte("portal:\n  rate: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgNoHook := filepath.Join(t.TempDir(), "nohook.yaml")
	if err := os.WriteFile(cfgNoHook, []byte("tenant_id: 4a1b5c2d-1111-4222-8333-123456789abc\nsources:\n  auditlog: {enabled: true}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		vars map[string]string
		code int
		want []string
	}{
		{"no command", nil, nil, exitUsage, []string{"Usage"}},
		{"webhook without an address", []string{"webhook", "--config", cfgNoHook, "--listen", "-"}, nil, exitUsage, []string{"defenderharvester webhook:", "sources.auditlog.webhook.address"}},
		{"unknown command", []string{"harvest"}, nil, exitUsage, []string{`unknown command "harvest"`}},
		{"bad flag", []string{"run", "--nope"}, nil, exitUsage, []string{"nope"}},
		{"stray argument", []string{"run", "extra"}, nil, exitUsage, []string{`unexpected argument "extra"`}},
		{"lookback and since", []string{"run", "--lookback", "2h", "--since", "2026-01-01T00:00:00Z"}, nil, exitUsage, []string{"cannot be used together"}},
		{"bad lookback", []string{"run", "--lookback", "a while"}, nil, exitUsage, []string{"--lookback", "24h"}},
		{"bad since", []string{"run", "--since", "yesterday"}, nil, exitUsage, []string{"RFC 3339"}},
		{"bad config key", []string{"run", "--config", cfgBad}, nil, exitUsage, []string{`unknown key "rate"`, "rate_per_second"}},
		{"config from env", []string{"run"}, map[string]string{"DH_CONFIG": cfgBad}, exitUsage, []string{`unknown key "rate"`}},
		{"unknown source", []string{"run", "--sources", "machineactions,lr"}, nil, exitUsage, []string{`unknown source "lr"`, "actioncenter"}},
		{"compat sentinel", []string{"-machineactions", "-sentinel"}, map[string]string{"SentinelWorkspaceID": "x"}, exitUsage, []string{"2026-09-14", "Logs Ingestion", "SentinelWorkspaceID", "sentinel-setup"}},
		{"compat splunk", []string{"-machineactions", "-splunk"}, nil, exitUsage, []string{"-splunk", "SplunkUri", "SplunkToken"}},
		{"compat nothing chosen", []string{"-files"}, nil, exitUsage, []string{"at least one data set"}},
		{"compat no output", []string{"-schema"}, nil, exitUsage, []string{"-files"}},
		{"compat timeline without device", []string{"-timeline", "-files"}, nil, exitUsage, []string{"-machineid"}},
		{"compat negative lookback", []string{"-schema", "-files", "-lookback", "-3"}, nil, exitUsage, []string{"-lookback"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env, out, errb := testEnv(tc.vars)
			code := Main(context.Background(), env, tc.args)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errb)
			}
			all := out.String() + errb.String()
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output does not mention %q:\n%s", w, all)
				}
			}
		})
	}
}

func TestSourcesListsEveryDataSet(t *testing.T) {
	env, out, _ := testEnv(nil)
	if code := Main(context.Background(), env, []string{"sources"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, name := range []string{"actioncenter", "machineactions", "customdetections", "featuresettings", "suppressionrules",
		"machinegroups", "connectedapps", "executedqueries", "alertservicesettings", "dataexportsettings", "schema", "timeline", "libraryfiles"} {
		if !strings.Contains(out.String(), name) {
			t.Errorf("sources does not list %s", name)
		}
	}
}

func TestWindowStart(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	got, err := windowStart(now, "7d", "")
	if err != nil || !got.Equal(now.Add(-7*24*time.Hour)) {
		t.Fatalf("7d → %v, %v", got, err)
	}
	got, err = windowStart(now, "", "2026-11-01T00:00:00Z")
	if err != nil || !got.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("since → %v, %v", got, err)
	}
	if _, err := windowStart(now, "", "2027-01-01T00:00:00Z"); err == nil {
		t.Fatal("a --since in the future was accepted")
	}
	if got, err := windowStart(now, "", ""); err != nil || !got.IsZero() {
		t.Fatalf("no flags → %v, %v; want zero (resume from checkpoint)", got, err)
	}
}

// TestCompatFlagsHarvestLikeTheOriginal runs the original tool's command
// line against the emulator: the same data sets land in the same tables.
func TestCompatFlagsHarvestLikeTheOriginal(t *testing.T) {
	tenant, dir, cfgPath := emulatorConfig(t, sim.Options{Seed: 2, Machines: 4})
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	device := tenant.MachineIDs()[0]
	env, out, errb := testEnv(map[string]string{"DH_CONFIG": cfgPath})
	code := Main(context.Background(), env, []string{"-machineactions", "-customdetections", "-timeline", "-machineid", device, "-lookback", "2", "-files", "-location", "weu"})
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errb)
	}
	for _, table := range []string{"MdeMachineActions", "MdeMachineActionsApi", "MdeCustomDetectionState", "MdeTimeline"} {
		files, _ := filepath.Glob(filepath.Join(dir, "sim-out", table+"-*.jsonl"))
		if len(files) == 0 {
			t.Errorf("no %s file after the original flags\n%s", table, out)
		}
	}
	if !strings.Contains(errb.String(), "-location is not needed") {
		t.Errorf("no note that -location is obsolete:\n%s", errb)
	}
	if strings.Contains(out.String(), "suppressionrules") {
		t.Error("a data set that was not asked for was harvested")
	}
}

// emulatorConfig serves an emulated tenant on loopback TLS for the test
// and writes the config `simulate --write-config` would, in a temporary
// folder; it returns the tenant, the folder and the config's path.
func emulatorConfig(t *testing.T, opts sim.Options) (*sim.Tenant, string, string) {
	t.Helper()
	dir := t.TempDir()
	tenant, srv, ca := simtest.Start(t, opts, dir)
	cfgPath := filepath.Join(dir, "sim.yaml")
	if err := writeEmulatorConfig(cfgPath, tenant.Info(srv), tenant.Credentials(), srv.Addr(), ca, false); err != nil {
		t.Fatal(err)
	}
	return tenant, dir, cfgPath
}
