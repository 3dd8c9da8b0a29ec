package all

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/sink/sinktest"
)

// Every output must build from its defaults alone: that is what a user
// gets when they enable it without settings.
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
	for _, want := range []string{"files", "stdout"} {
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
