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
