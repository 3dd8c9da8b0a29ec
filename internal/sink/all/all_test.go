package all

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

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
