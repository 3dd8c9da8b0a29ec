package sentinel

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/monitor/ingestion/azlogs"
	"go.yaml.in/yaml/v3"

	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/delivery"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/sink/sinktest"
)

// twoEndpoints starts two TLS fakes, each standing for one DCR's
// logs-ingestion endpoint, and returns deps trusting both.
func twoEndpoints(t *testing.T, dcrsA, dcrsB []string) (a, b *fakeIngest, urlA, urlB string, deps sink.Deps) {
	t.Helper()
	pool := x509.NewCertPool()
	var urls [2]string
	var fakes [2]*fakeIngest
	for i, dcrs := range [][]string{dcrsA, dcrsB} {
		fakes[i] = &fakeIngest{t: t, stored: map[string][][]byte{}, dcrs: dcrs, byDCR: map[string]int{}}
		srv := httptest.NewTLSServer(fakes[i])
		t.Cleanup(srv.Close)
		pool.AddCert(srv.Certificate())
		urls[i] = srv.URL
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	return fakes[0], fakes[1], urls[0], urls[1], sink.Deps{Transport: tr, DataDir: t.TempDir()}.WithDefaults()
}

// newRoutedSink builds a started sink on cfg and counts the Logs
// Ingestion clients it creates.
func newRoutedSink(t *testing.T, deps sink.Deps, cfg Config) (*Sink, *int) {
	t.Helper()
	cfg.DeadLetterDir = t.TempDir()
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	co, err := clientOptions(deps, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	clients := 0
	s, err := newSink(deps, cfg, func(endpoint string) (uploader, error) {
		clients++
		return azlogs.NewClient(endpoint, staticCred{}, &azlogs.ClientOptions{ClientOptions: co})
	}, []string{testSecret}, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s, &clients
}

func TestRulesRouteEachTableToItsDCR(t *testing.T) {
	written := []string{"MdeMachineActions", "MdeTimeline", "MdeLibraryFiles", "MdeSchemaReference"}
	tests := []struct {
		name         string
		dcrsA, dcrsB []string
		cfg          func(c *Config, a, b string)
		// table -> "A|B dcr" where its records must land
		want    map[string]string
		clients int
	}{
		{
			name: "top-level DCR plus one rule", dcrsA: []string{testDCR}, dcrsB: []string{testDCR2},
			cfg: func(c *Config, a, b string) {
				c.Endpoint, c.DCRImmutableID = a, testDCR
				c.Rules = []Rule{{Endpoint: b, DCRImmutableID: testDCR2, Tables: []string{"MdeTimeline", "MdeLibraryFiles"}}}
			},
			want: map[string]string{"MdeMachineActions": "A " + testDCR, "MdeSchemaReference": "A " + testDCR,
				"MdeTimeline": "B " + testDCR2, "MdeLibraryFiles": "B " + testDCR2},
			clients: 2,
		},
		{
			name: "rules only", dcrsA: []string{testDCR}, dcrsB: []string{testDCR2},
			cfg: func(c *Config, a, b string) {
				c.Endpoint, c.DCRImmutableID = "", ""
				c.Rules = []Rule{
					{Endpoint: a, DCRImmutableID: testDCR, Tables: []string{"MdeMachineActions", "MdeSchemaReference"}},
					{Endpoint: b, DCRImmutableID: testDCR2, Tables: []string{"MdeTimeline", "MdeLibraryFiles"}},
				}
			},
			want: map[string]string{"MdeMachineActions": "A " + testDCR, "MdeSchemaReference": "A " + testDCR,
				"MdeTimeline": "B " + testDCR2, "MdeLibraryFiles": "B " + testDCR2},
			clients: 2,
		},
		{
			name: "two DCRs behind one endpoint share a client", dcrsA: []string{testDCR, testDCR2}, dcrsB: []string{testDCR2},
			cfg: func(c *Config, a, _ string) {
				c.Endpoint, c.DCRImmutableID = a, testDCR
				c.Rules = []Rule{{Endpoint: a + "/", DCRImmutableID: testDCR2, Tables: []string{"MdeTimeline", "MdeLibraryFiles"}}}
			},
			want: map[string]string{"MdeMachineActions": "A " + testDCR, "MdeSchemaReference": "A " + testDCR,
				"MdeTimeline": "A " + testDCR2, "MdeLibraryFiles": "A " + testDCR2},
			clients: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fa, fb, a, b, deps := twoEndpoints(t, tt.dcrsA, tt.dcrsB)
			cfg := testConfig(a)
			tt.cfg(&cfg, a, b)
			s, clients := newRoutedSink(t, deps, cfg)
			const perTable = 7
			for _, table := range written {
				if err := s.Write(t.Context(), table, sinktest.Records(table, 0, perTable)); err != nil {
					t.Fatalf("Write %s: %v", table, err)
				}
			}
			want := map[string]map[string]int{"A": {}, "B": {}}
			for table, at := range tt.want {
				side, dcr, _ := strings.Cut(at, " ")
				want[side][dcr+"/Custom-"+table] = perTable
			}
			for side, f := range map[string]*fakeIngest{"A": fa, "B": fb} {
				f.mu.Lock()
				got, bad := maps.Clone(f.byDCR), f.bad
				f.mu.Unlock()
				if len(bad) > 0 {
					t.Errorf("endpoint %s: protocol violations %v", side, bad)
				}
				if !maps.Equal(got, want[side]) {
					t.Errorf("endpoint %s received %v (dcr/stream -> records), want %v", side, got, want[side])
				}
			}
			if *clients != tt.clients {
				t.Errorf("%d Logs Ingestion clients, want one per distinct endpoint (%d)", *clients, tt.clients)
			}
			if st := s.Stats(); st.Records != int64(perTable*len(written)) {
				t.Errorf("stats count %d records, want %d for the whole output", st.Records, perTable*len(written))
			}
		})
	}
}

func TestTableWithoutRuleFailsNamingTheFix(t *testing.T) {
	fa, fb, a, b, deps := twoEndpoints(t, []string{testDCR}, []string{testDCR2})
	cfg := testConfig(a)
	cfg.Endpoint, cfg.DCRImmutableID = "", ""
	cfg.Rules = []Rule{
		{Endpoint: a, DCRImmutableID: testDCR, Tables: []string{"MdeMachineActions"}},
		{Endpoint: b, DCRImmutableID: testDCR2, Tables: []string{"MdeTimeline"}},
	}
	s, _ := newRoutedSink(t, deps, cfg)
	err := s.Write(t.Context(), "MdeCustomDetectionState", sinktest.Records("MdeCustomDetectionState", 0, 3))
	if err == nil {
		t.Fatal("Write of a table no rule lists succeeded")
	}
	for _, w := range []string{"MdeCustomDetectionState", "outputs.sentinel.rules", "Custom-MdeCustomDetectionState", "dcr_immutable_id"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if !delivery.IsPermanent(err) {
		t.Errorf("a missing rule is a config error, not worth retrying: %v", err)
	}
	for side, f := range map[string]*fakeIngest{"A": fa, "B": fb} {
		f.mu.Lock()
		if f.calls != 0 {
			t.Errorf("endpoint %s got %d calls for an unrouted table", side, f.calls)
		}
		f.mu.Unlock()
	}
	if err := s.Write(t.Context(), "MdeTimeline", sinktest.Records("MdeTimeline", 0, 3)); err != nil {
		t.Errorf("a routed table fails after an unrouted one: %v", err)
	}
}

func TestRuleErrorsNameTheRulesDCR(t *testing.T) {
	_, fb, a, b, deps := twoEndpoints(t, []string{testDCR}, []string{testDCR2})
	fb.respond = func(int, *http.Request) (int, map[string]string, string) {
		return http.StatusNotFound, nil, `{"error":{"code":"InvalidStream","message":"no such stream"}}`
	}
	cfg := testConfig(a)
	cfg.Rules = []Rule{{Endpoint: b, DCRImmutableID: testDCR2, Tables: []string{"MdeTimeline"}}}
	s, _ := newRoutedSink(t, deps, cfg)
	err := s.Write(t.Context(), "MdeTimeline", sinktest.Records("MdeTimeline", 0, 2))
	if err == nil {
		t.Fatal("Write succeeded against a 404")
	}
	for _, w := range []string{"HTTP 404", testDCR2, "outputs.sentinel.rules[0]"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if strings.Contains(err.Error(), testDCR) {
		t.Errorf("error names the top-level DCR instead of the rule's: %v", err)
	}
}

func TestRulesYAML(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string
		want    []Rule
	}{
		{
			name: "rules beside the top-level DCR",
			yaml: `
endpoint: https://dcr-a.westeurope-1.ingest.monitor.azure.com
dcr_immutable_id: ` + testDCR + `
rules:
  - endpoint: https://dcr-b.westeurope-1.ingest.monitor.azure.com
    dcr_immutable_id: ` + testDCR2 + `
    tables: [MdeTimeline, MdeLibraryFiles]
`,
			want: []Rule{{Endpoint: "https://dcr-b.westeurope-1.ingest.monitor.azure.com", DCRImmutableID: testDCR2, Tables: []string{"MdeTimeline", "MdeLibraryFiles"}}},
		},
		{
			name: "misspelt key in a rule",
			yaml: `
rules:
  - endpoint: https://dcr-b.westeurope-1.ingest.monitor.azure.com
    dcr_immutable_id: ` + testDCR2 + `
    table: [MdeTimeline]
`,
			wantErr: `unknown key "table"`,
		},
		{name: "rule is not a map", yaml: "rules: [MdeTimeline]\n", wantErr: "a rule is a map"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n yaml.Node
			if err := yaml.Unmarshal([]byte(tt.yaml), &n); err != nil {
				t.Fatal(err)
			}
			cfg := DefaultConfig()
			err := config.DecodePlugin(n.Content[0], "outputs.sentinel", cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("decode = %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cfg.Auth = testConfig("").Auth
			if err := cfg.validate(); err != nil {
				t.Fatalf("validate: %v", err)
			}
			if len(cfg.Rules) != len(tt.want) {
				t.Fatalf("rules %+v, want %+v", cfg.Rules, tt.want)
			}
			for i := range tt.want {
				g, w := cfg.Rules[i], tt.want[i]
				if g.Endpoint != w.Endpoint || g.DCRImmutableID != w.DCRImmutableID || !slices.Equal(g.Tables, w.Tables) {
					t.Errorf("rule %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}
