package metrics

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"
)

const (
	dashboardFile = "../../deploy/grafana/defenderharvester.json"
	alertsFile    = "../../deploy/prometheus/alerts.yml"
	alertsTests   = "../../deploy/prometheus/alerts_test.yml"
)

// metricInfo is what the registry says of one metric.
type metricInfo struct {
	typ    string // counter, gauge, histogram
	labels string // its label names, sorted, ", "-separated
}

// exposed maps every metric of the harvester's own collectors to its type
// ("counter", "gauge", "histogram").
func exposed(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, in := range exposedInfo(t) {
		out[name] = in.typ
	}
	return out
}

func exposedInfo(t *testing.T) map[string]metricInfo {
	t.Helper()
	m := populated(newClock())
	described := map[string]bool{}
	ch := make(chan *prometheus.Desc, 100)
	for _, c := range m.own() {
		c.Describe(ch)
	}
	close(ch)
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		described[fq.FindStringSubmatch(d.String())[1]] = true
	}
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]metricInfo{}
	for _, f := range fams {
		if described[f.GetName()] {
			var labels []string
			for _, l := range f.GetMetric()[0].GetLabel() {
				labels = append(labels, l.GetName())
			}
			slices.Sort(labels)
			out[f.GetName()] = metricInfo{strings.ToLower(dto.MetricType_name[int32(f.GetType())]), strings.Join(labels, ", ")}
		}
	}
	// populated must make a series of every metric, or the checks below
	// would miss the ones it does not.
	for name := range described {
		if _, ok := out[name]; !ok {
			t.Errorf("populated() makes no series of %s", name)
		}
	}
	return out
}

// referenced lists the defenderharvester_* names a file mentions, with a
// histogram's _bucket/_sum/_count mapped to the histogram.
func referenced(t *testing.T, text []byte, types map[string]string) []string {
	t.Helper()
	var out []string
	for _, b := range regexp.MustCompile(`\b`+Namespace+`_[a-zA-Z0-9_:]+`).FindAll(text, -1) {
		name := string(b)
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && types[base] == "histogram" {
				name = base
			}
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

func TestDeployFilesNameExposedMetrics(t *testing.T) {
	types := exposed(t)
	for _, file := range []string{dashboardFile, alertsFile, alertsTests} {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		names := referenced(t, text, types)
		if len(names) < 5 {
			t.Errorf("%s names only %d metrics: %v", file, len(names), names)
		}
		for _, name := range names {
			if types[name] == "" {
				t.Errorf("%s uses %s, which the registry does not expose", file, name)
			}
		}
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func TestAlertRules(t *testing.T) {
	text, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	dec := yaml.NewDecoder(bytes.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	duration := regexp.MustCompile(`^([0-9]+[smhd])+$`)
	seen := map[string]bool{}
	for _, g := range rf.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: needs a name and rules", g.Name)
		}
		for _, r := range g.Rules {
			switch {
			case r.Alert == "" || seen[r.Alert]:
				t.Errorf("rule %q: empty or repeated alert name", r.Alert)
			case strings.TrimSpace(r.Expr) == "" || strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")"):
				t.Errorf("%s: empty or unbalanced expression %q", r.Alert, r.Expr)
			case r.For != "" && !duration.MatchString(r.For):
				t.Errorf("%s: for %q is not a duration", r.Alert, r.For)
			case r.Labels["severity"] != "warning" && r.Labels["severity"] != "critical":
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, r.Labels["severity"])
			case r.Annotations["summary"] == "" || r.Annotations["description"] == "":
				t.Errorf("%s: needs a summary and a description", r.Alert)
			}
			seen[r.Alert] = true
		}
	}
	for _, want := range []string{"SessionExpired", "SessionExpiresSoon", "SourceStalled", "SourceFailing", "OutputDown", "SpoolGrowing", "DeadLetters", "WebhookSpoofed"} {
		if !seen["DefenderHarvester"+want] {
			t.Errorf("no alert DefenderHarvester%s", want)
		}
	}
}

// TestAlertRulesWithPromtool runs the rules' unit tests (they prove each
// alert fires on the series it is meant for and not on the others) where
// promtool is installed.
func TestAlertRulesWithPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (apt-get install prometheus); the rules' unit tests did not run")
	}
	for _, args := range [][]string{{"check", "rules", filepath.Base(alertsFile)}, {"test", "rules", filepath.Base(alertsTests)}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = filepath.Dir(alertsFile)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func TestDashboard(t *testing.T) {
	text, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title      string
		UID        string
		Templating struct{ List []struct{ Name string } }
		Panels     []struct {
			ID      int
			Type    string
			Title   string
			Targets []struct{ Expr, RefID string }
		}
	}
	dec := json.NewDecoder(bytes.NewReader(text))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.Title == "" || d.UID == "" {
		t.Error("the dashboard needs a title and a uid")
	}
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
	}
	if !slices.Contains(vars, "datasource") || !slices.Contains(vars, "tenant") {
		t.Errorf("variables %v, want datasource and tenant", vars)
	}
	ids := map[int]bool{}
	var titles []string
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d repeated", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		titles = append(titles, p.Title)
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if q.RefID == "" || !strings.Contains(q.Expr, Namespace+"_") || strings.Count(q.Expr, "(") != strings.Count(q.Expr, ")") {
				t.Errorf("panel %q: query %q (ref %q) is empty, unbalanced or not about the harvester", p.Title, q.Expr, q.RefID)
			}
		}
	}
	// What the issue asks the dashboard to show.
	for _, want := range []string{"Lag", "Records in", "Records out", "errors by kind", "Spool", "Dead letters", "session expires", "Throttled", "Webhook requests", "Webhook notifications"} {
		if !slices.ContainsFunc(titles, func(s string) bool { return strings.Contains(strings.ToLower(s), strings.ToLower(want)) }) {
			t.Errorf("no panel about %q among %q", want, titles)
		}
	}
}

// TestReadmeListsEveryMetric: the README table operators read names every
// metric with its type, and nothing else.
func TestReadmeListsEveryMetric(t *testing.T) {
	info := exposedInfo(t)
	text, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z0-9_]+)` \\| (counter|gauge|histogram) \\| ([a-z, ]+) \\|")
	listed := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(text), -1) {
		name := Namespace + "_" + m[1]
		listed[name] = true
		in, ok := info[name]
		if !ok {
			t.Errorf("README lists %s, which the registry does not expose", name)
			continue
		}
		if in.typ != m[2] {
			t.Errorf("README says %s is a %s; it is a %s", name, m[2], in.typ)
		}
		labels := strings.Split(m[3], ", ")
		slices.Sort(labels)
		if got := strings.Join(labels, ", "); got != in.labels {
			t.Errorf("README gives %s the labels %q; it has %q", name, got, in.labels)
		}
	}
	for name := range info {
		if !listed[name] {
			t.Errorf("README does not list %s", name)
		}
	}
}
