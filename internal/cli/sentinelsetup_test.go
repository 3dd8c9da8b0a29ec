package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/sink/sentinel"
	"github.com/defenderharvester/defenderharvester/internal/tables"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata golden files")

func runSetup(t *testing.T, args ...string) (map[string]any, string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	code := Main(context.Background(), env, append([]string{"sentinel-setup"}, args...))
	var tpl map[string]any
	if code == exitOK {
		if err := json.Unmarshal(out.Bytes(), &tpl); err != nil {
			t.Fatalf("stdout is not valid JSON: %v", err)
		}
	}
	return tpl, out.String(), errb.String(), code
}

func TestSentinelSetupTemplate(t *testing.T) {
	tpl, _, stderr, code := runSetup(t)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	all := tables.All()
	colRe := regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,44}$`)
	tablesSeen := map[string]bool{}
	var dcrs []map[string]any
	for _, r := range tpl["resources"].([]any) {
		res := r.(map[string]any)
		switch res["type"] {
		case "Microsoft.OperationalInsights/workspaces/tables":
			if res["apiVersion"] != "2022-10-01" {
				t.Errorf("table api-version %v", res["apiVersion"])
			}
			schema := res["properties"].(map[string]any)["schema"].(map[string]any)
			name := schema["name"].(string)
			want, ok := tables.Lookup(strings.TrimSuffix(name, "_CL"))
			if !ok || !strings.HasSuffix(name, "_CL") {
				t.Errorf("unexpected table %s", name)
				continue
			}
			tablesSeen[want.Name] = true
			cols := schema["columns"].([]any)
			if len(cols) != len(want.Columns) {
				t.Errorf("%s: %d columns, want %d", name, len(cols), len(want.Columns))
				continue
			}
			for i, c := range cols {
				cm := c.(map[string]any)
				wt := want.Columns[i].Type
				if wt == "datetime" {
					wt = "dateTime"
				}
				if cm["name"] != want.Columns[i].Name || cm["type"] != wt {
					t.Errorf("%s column %d = %v %v, want %s %s", name, i, cm["name"], cm["type"], want.Columns[i].Name, wt)
				}
				if !colRe.MatchString(cm["name"].(string)) || tables.IsReserved(cm["name"].(string)) {
					t.Errorf("%s: column %v breaks Log Analytics rules", name, cm["name"])
				}
			}
		case "Microsoft.Insights/dataCollectionRules":
			if res["apiVersion"] != "2023-03-11" || res["kind"] != "Direct" {
				t.Errorf("DCR api-version %v kind %v", res["apiVersion"], res["kind"])
			}
			dcrs = append(dcrs, res)
		default:
			t.Errorf("unexpected resource %v", res["type"])
		}
	}
	if len(tablesSeen) != len(all) {
		t.Errorf("%d tables in the template, want %d", len(tablesSeen), len(all))
	}
	wantDCRs := (len(all) + maxStreamsPerDCR - 1) / maxStreamsPerDCR
	if len(dcrs) != wantDCRs {
		t.Fatalf("%d DCRs, want %d", len(dcrs), wantDCRs)
	}
	flows := 0
	for _, d := range dcrs {
		p := d["properties"].(map[string]any)
		streams := p["streamDeclarations"].(map[string]any)
		df := p["dataFlows"].([]any)
		if len(streams) > maxStreamsPerDCR || len(df) > maxStreamsPerDCR {
			t.Errorf("DCR with %d streams, %d flows: limit %d", len(streams), len(df), maxStreamsPerDCR)
		}
		for _, f := range df {
			fm := f.(map[string]any)
			stream := fm["streams"].([]any)[0].(string)
			tb, ok := tables.Lookup(strings.TrimPrefix(stream, "Custom-"))
			if !ok {
				t.Fatalf("flow for unknown stream %s", stream)
			}
			if fm["outputStream"] != "Custom-"+tb.Name+"_CL" || fm["transformKql"] != tb.TransformKQL() {
				t.Errorf("flow %s: %v / %v", stream, fm["outputStream"], fm["transformKql"])
			}
			if len(fm["transformKql"].(string)) > 15360 {
				t.Errorf("flow %s: transform too long", stream)
			}
			decl := streams[stream].(map[string]any)["columns"].([]any)
			if decl[0].(map[string]any)["name"] != "TenantId" {
				t.Errorf("stream %s must declare the harvester's field names (TenantId first), got %v", stream, decl[0])
			}
			flows++
		}
	}
	if flows != len(all) {
		t.Errorf("%d data flows, want %d", flows, len(all))
	}
	for _, w := range []string{"Monitoring Metrics Publisher", "az deployment group create", "data collection rules"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("instructions lack %q:\n%s", w, stderr)
		}
	}
}

func TestSentinelSetupGolden(t *testing.T) {
	_, stdout, stderr, code := runSetup(t, "--tables", "MdeMachineActionsApi,M365DataExportSettings", "--location", "westeurope",
		"--workspace-resource-id", "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-sec/providers/Microsoft.OperationalInsights/workspaces/law-sec")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	path := filepath.Join("testdata", "sentinel-setup.golden.json")
	if *updateGolden {
		if err := os.WriteFile(path, []byte(stdout), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/cli -run Golden -update-golden)", err)
	}
	if stdout != string(want) {
		t.Errorf("template differs from %s (run with -update-golden after checking the change)\n%s", path, stdout)
	}
}

func TestSentinelSetupBadFlags(t *testing.T) {
	tests := [][]string{
		{"--tables", "NoSuchTable"},
		{"--stream-prefix", "Mde-"},
		{"--location", "West Europe"},
		{"--workspace-resource-id", "law-sec"},
	}
	for _, args := range tests {
		_, _, stderr, code := runSetup(t, args...)
		if code != exitUsage || stderr == "" {
			t.Errorf("%v: exit %d, stderr %q; want usage error", args, code, stderr)
		}
	}
}

// TestSentinelSetupConfigSnippet pastes fake deployment outputs into the
// printed snippet and checks the result is a sentinel output config that
// sends every table to the DCR the template put it in.
func TestSentinelSetupConfigSnippet(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantPrefix string
		wantRules  int
	}{
		{name: "all tables need a rule for every DCR after the first", wantPrefix: "Custom-", wantRules: (len(tables.All())+maxStreamsPerDCR-1)/maxStreamsPerDCR - 1},
		{name: "one DCR, custom prefix", args: []string{"--tables", "MdeTimeline,MdeLibraryFiles", "--stream-prefix", "Custom-Dh"}, wantPrefix: "Custom-Dh", wantRules: 0},
	}
	const secret = "snippet-test-secret"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl, stdout, stderr, code := runSetup(t, tt.args...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if strings.Contains(stdout, "outputs:\n  sentinel") {
				t.Error("the config snippet leaked into stdout, which must stay the template")
			}
			if !strings.Contains(stderr, "az deployment group show -g <resource-group> -n "+deploymentName+" --query properties.outputs") ||
				!strings.Contains(stderr, "-n "+deploymentName+" --template-file") {
				t.Errorf("instructions do not name the deployment consistently:\n%s", stderr)
			}
			i := strings.Index(stderr, "\noutputs:\n")
			if i < 0 {
				t.Fatalf("no outputs.sentinel snippet in:\n%s", stderr)
			}
			snippet := stderr[i+1:]
			armOut := tpl["outputs"].(map[string]any)

			// Paste a distinct fake value over every ARM output name.
			fake := map[string]string{"tenant-id": "11111111-2222-3333-4444-555555555555", "app-client-id": "66666666-7777-8888-9999-000000000000"}
			for name := range armOut {
				n := strings.TrimLeft(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
				switch {
				case strings.HasPrefix(name, "dcrImmutableId"):
					fake[name] = "dcr-" + strings.Repeat("0", 31) + orDefault(n, "1")
				case strings.HasPrefix(name, "logsIngestionEndpoint"):
					fake[name] = "https://dcr-" + orDefault(n, "1") + ".westeurope-1.ingest.monitor.azure.com"
				}
			}
			pasted := regexp.MustCompile(`<([A-Za-z0-9-]+)>`).ReplaceAllStringFunc(snippet, func(m string) string {
				v, ok := fake[strings.Trim(m, "<>")]
				if !ok {
					t.Errorf("snippet placeholder %s is neither a template output nor an app id", m)
				}
				return v
			})
			for name, v := range fake {
				if _, isOut := armOut[name]; isOut && !strings.Contains(snippet, "<"+name+">") {
					t.Errorf("template output %s (%s) has no place in the snippet", name, v)
				}
			}

			cfg := config.Default()
			if err := config.Decode([]byte(pasted), cfg); err != nil {
				t.Fatalf("snippet is not a valid config: %v\n%s", err, pasted)
			}
			sc := sentinel.DefaultConfig()
			if err := config.DecodePlugin(cfg.Outputs[sentinel.Name], "outputs.sentinel", sc); err != nil {
				t.Fatalf("outputs.sentinel: %v", err)
			}
			sc.Auth.ClientSecretFile = "" // the secret comes from the environment here
			getenv := func(k string) string {
				if k == sentinel.SecretEnv {
					return secret
				}
				return ""
			}
			if _, err := sentinel.New(sink.Deps{Getenv: getenv, DataDir: t.TempDir()}, *sc); err != nil {
				t.Fatalf("the sentinel output rejects the snippet: %v", err)
			}
			if sc.StreamPrefix != tt.wantPrefix {
				t.Errorf("stream_prefix %q, want %q (the template's streams)", sc.StreamPrefix, tt.wantPrefix)
			}
			if sc.Endpoint != fake["logsIngestionEndpoint"] || sc.DCRImmutableID != fake["dcrImmutableId"] {
				t.Errorf("top level = %s %s, want the first DCR's outputs", sc.Endpoint, sc.DCRImmutableID)
			}
			if len(sc.Rules) != tt.wantRules {
				t.Fatalf("%d rules, want %d", len(sc.Rules), tt.wantRules)
			}
			// Each table must be routed to the DCR whose tablesN output lists it.
			routed := map[string]string{}
			for _, r := range sc.Rules {
				for _, tb := range r.Tables {
					routed[tb] = r.DCRImmutableID
				}
			}
			for name, o := range armOut {
				if !strings.HasPrefix(name, "tables") {
					continue
				}
				wantDCR := fake["dcrImmutableId"+strings.TrimPrefix(name, "tables")]
				for _, tb := range o.(map[string]any)["value"].([]any) {
					got, ok := routed[tb.(string)]
					if !ok {
						got = sc.DCRImmutableID // no rule: the top-level DCR
					}
					if got != wantDCR {
						t.Errorf("table %s goes to %s, but the template declares its stream in %s", tb, got, wantDCR)
					}
				}
			}
		})
	}
}
