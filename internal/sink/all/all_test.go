package all

import (
	"bytes"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/sink/sinktest"
)

// needsSettings are outputs that cannot work without the user's own
// settings (a URL, a token, a data collection rule); for them the defaults
// must be refused with an error that names what is missing.
var needsSettings = map[string][]string{
	"sentinel": {"endpoint"},
	"splunk":   {"url"},
}

// Every other output must build from its defaults alone: that is what a
// user gets when they enable it without settings.
func TestEveryOutputBuildsFromDefaults(t *testing.T) {
	var names []string
	for _, f := range sink.All() {
		names = append(names, f.Name)
		t.Run(f.Name, func(t *testing.T) {
			if f.Description == "" {
				t.Error("no description")
			}
			var cfg any
			if f.NewConfig != nil {
				cfg = f.NewConfig()
				if d, ok := cfg.(interface{ SetDir(string) }); ok {
					d.SetDir(filepath.Join(t.TempDir(), "out"))
				}
			}
			var out bytes.Buffer
			s, err := f.New(sink.Deps{Stdout: &out}, cfg)
			if want, ok := needsSettings[f.Name]; ok {
				if err == nil {
					t.Fatal("defaults accepted although the output needs settings")
				}
				for _, w := range want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not name %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("default config rejected: %v", err)
			}
			if s.Name() != f.Name {
				t.Errorf("sink calls itself %q, registered as %q", s.Name(), f.Name)
			}
			if err := s.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := s.Write(t.Context(), "MdeActionCenter", sinktest.Records("MdeActionCenter", 0, 2)); err != nil {
				t.Fatal(err)
			}
			if err := s.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, want := range []string{"files", "stdout", "sentinel", "splunk"} {
		if _, ok := sink.Lookup(want); !ok {
			t.Errorf("output %q not registered (have %v)", want, names)
		}
	}
}

func TestDuplicateRegistrationPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("registering a name twice did not panic")
		}
	}()
	sink.Register(sink.Factory{Name: "files"})
}

// Loading an output's section the way the config loader does
// (config.LoadPlugin) reports a bad value with the section and the key
// before any work, and makes relative paths relative to the config file.
func TestOutputSectionsValidateAndResolveAtLoad(t *testing.T) {
	const (
		sentinelDCR = "endpoint: https://dce-1.westeurope-1.ingest.monitor.azure.com\ndcr_immutable_id: dcr-0123456789abcdef0123456789abcdef\n"
		sentinelOK  = sentinelDCR + "auth: {tenant_id: 11111111-2222-3333-4444-555555555555, client_id: 66666666-7777-8888-9999-000000000000}\n"
	)
	tests := []struct {
		output  string
		yaml    string
		wantErr []string
		paths   map[string]string // field path (dot-separated Go names) → want
	}{
		{"files", "dir: out\nrotate_bytes: 0\n", []string{"outputs.files: ", "rotate_bytes is 0"}, nil},
		{"files", "dir: out\n", nil, map[string]string{"Dir": "/etc/dh/out"}},
		{"splunk", "url: http://splunk:8088\n", []string{"outputs.splunk: ", "url \"http://splunk:8088\" must start with https://"}, nil},
		{"splunk", "url: https://splunk:8088\ndelivery: {attempt_timeout: -1s}\n", []string{"delivery.attempt_timeout -1s is negative"}, nil},
		{"splunk", "url: https://splunk:8088\ntoken_file: hec.token\nca_file: /etc/ssl/ca.pem\ndead_letter_dir: dl\n", nil,
			map[string]string{"TokenFile": "/etc/dh/hec.token", "CAFile": "/etc/ssl/ca.pem", "DeadLetterDir": "/etc/dh/dl"}},
		{"sentinel", "endpoint: https://x.ingest.monitor.azure.com\ndcr_immutable_id: dcr-1\n", []string{"outputs.sentinel: ", "dcr_immutable_id \"dcr-1\""}, nil},
		{"sentinel", sentinelOK + "dead_letter_dir: dl\n", nil, map[string]string{"DeadLetterDir": "/etc/dh/dl"}},
		{"sentinel", sentinelDCR + "auth: {method: certificate, tenant_id: 11111111-2222-3333-4444-555555555555, client_id: 66666666-7777-8888-9999-000000000000, certificate_file: c.pem}\n", nil,
			map[string]string{"Auth.CertificateFile": "/etc/dh/c.pem"}},
	}
	cfg := &config.Config{Dir: "/etc/dh"}
	for _, tc := range tests {
		t.Run(tc.output+": "+strings.SplitN(tc.yaml, "\n", 2)[0], func(t *testing.T) {
			f, ok := sink.Lookup(tc.output)
			if !ok {
				t.Fatalf("output %s not registered", tc.output)
			}
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(tc.yaml), &doc); err != nil {
				t.Fatal(err)
			}
			settings := f.NewConfig()
			err := cfg.LoadPlugin(doc.Content[0], "outputs."+tc.output, settings)
			if (err != nil) != (tc.wantErr != nil) {
				t.Fatalf("LoadPlugin = %v, want error %v", err, tc.wantErr != nil)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			for field, want := range tc.paths {
				v := reflect.ValueOf(settings).Elem()
				for _, name := range strings.Split(field, ".") {
					v = v.FieldByName(name)
				}
				if got := v.String(); got != want {
					t.Errorf("%s = %q, want %q", field, got, want)
				}
			}
		})
	}
}
