package all

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/defenderharvester/defenderharvester/internal/source"
)

// The table names are what users query; they must not drift.
var want = map[string]struct {
	table string
	kind  source.Kind
	api   string
}{
	"actioncenter":         {"MdeMachineActions", source.Event, "portal"},
	"machineactions":       {"MdeMachineActionsApi", source.Event, "public"},
	"executedqueries":      {"MdeExecutedQueries", source.Event, "portal"},
	"timeline":             {"MdeTimeline", source.Event, "portal"},
	"customdetections":     {"MdeCustomDetectionState", source.Snapshot, "portal"},
	"featuresettings":      {"MdeAdvancedFeatureSettings", source.Snapshot, "portal"},
	"suppressionrules":     {"MdeSuppressionRules", source.Snapshot, "portal"},
	"machinegroups":        {"MdeMachineGroups", source.Snapshot, "portal"},
	"connectedapps":        {"MdeConnectedAppStats", source.Snapshot, "portal"},
	"alertservicesettings": {"M365AlertServiceSettings", source.Snapshot, "portal"},
	"dataexportsettings":   {"M365DataExportSettings", source.Snapshot, "portal"},
	"schema":               {"MdeSchemaReference", source.Snapshot, "portal"},
	"libraryfiles":         {"MdeLibraryFiles", source.Snapshot, "public"},
	"auditlog":             {"O365AuditGeneral", source.Event, "public"},
	"detectionrules":       {"MdeDetectionRules", source.Snapshot, "public"},
}

func TestRegistry(t *testing.T) {
	all := source.All()
	if len(all) != len(want) {
		t.Errorf("%d sources registered, want %d", len(all), len(want))
	}
	for _, f := range all {
		w, ok := want[f.Name]
		if !ok {
			t.Errorf("unexpected source %q", f.Name)
			continue
		}
		if f.Table != w.table || f.Kind != w.kind || f.API != w.api || f.Description == "" || f.New == nil {
			t.Errorf("%s: table %s kind %v api %s, want %s %v %s", f.Name, f.Table, f.Kind, f.API, w.table, w.kind, w.api)
		}
	}
}

// Every config decodes from YAML with unknown keys refused, as the config
// loader does.
func TestConfigsDecodeStrictly(t *testing.T) {
	for _, f := range source.All() {
		if f.NewConfig == nil {
			continue
		}
		cfg := f.NewConfig()
		n := yaml.Node{}
		if err := yaml.Unmarshal([]byte("overlap: 20m\n"), &n); err != nil {
			t.Fatal(err)
		}
		if f.Kind == source.Event {
			if err := n.Decode(cfg); err != nil {
				t.Errorf("%s: overlap not accepted: %v", f.Name, err)
			}
			src, ok := cfg.(interface{ Rules() source.Windowing })
			if ok && src.Rules().Overlap.Minutes() != 20 {
				t.Errorf("%s: overlap not applied", f.Name)
			}
		}
		dec := yaml.NewDecoder(strings.NewReader("bogus_key: 1\n"))
		dec.KnownFields(true)
		if err := dec.Decode(f.NewConfig()); err == nil {
			t.Errorf("%s: unknown key accepted", f.Name)
		}
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Errorf("%s: marshal: %v", f.Name, err)
		}
		back := f.NewConfig()
		if err := yaml.Unmarshal(out, back); err != nil {
			t.Errorf("%s: round trip: %v\n%s", f.Name, err, out)
		}
	}
}

// TestConfigsValidateAtLoad: every source with settings checks them in
// Validate (config.Validator), which the loader runs before any work, and
// its defaults pass it — except where a setting has no sensible default
// (the timeline's devices), which Validate must then ask for.
func TestConfigsValidateAtLoad(t *testing.T) {
	needsSetting := map[string]string{"timeline": "machines"}
	for _, f := range source.All() {
		if f.NewConfig == nil {
			continue
		}
		v, ok := f.NewConfig().(interface{ Validate() error })
		if !ok {
			t.Errorf("%s: config has no Validate method", f.Name)
			continue
		}
		err := v.Validate()
		switch key, required := needsSetting[f.Name]; {
		case required && (err == nil || !strings.Contains(err.Error(), key)):
			t.Errorf("%s: defaults without %s: Validate = %v, want it to ask for %s", f.Name, key, err, key)
		case !required && err != nil:
			t.Errorf("%s: defaults fail Validate: %v", f.Name, err)
		}
	}
}
