package e2e

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/sim"
)

// Issue 7, item 1: "delivered" means accepted. An output that refuses
// every record for a reason that is not about the record (a role removed
// from the DCR, a disabled HEC token, an index the token may not use)
// must fail the run, dead-letter nothing, keep the checkpoints (or the
// spool), and the next run after the fix must deliver every record.

// deadLetterFiles lists every dead-letter file under dir, wherever an
// output keeps them.
func deadLetterFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.Contains(d.Name(), "deadletter") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// reference harvests the same tenant at the same moment into files only,
// with its own state: what an unrefused run delivers. sources "" means
// every source.
func reference(t *testing.T, f *fixture, sources string) map[string]int {
	t.Helper()
	cfg := f.writeConfig("reference", "")
	args := []string{"run", "--config", cfg, "--outputs", "files"}
	if sources != "" {
		args = append(args, "--sources", sources)
	}
	if code, out, errs := f.runCLI(args...); code != 0 {
		t.Fatalf("reference run exit %d\n%s\n%s", code, out, errs)
	}
	want := idsIn(t, filepath.Join(f.dir, "reference-out"))
	if len(want) == 0 || (sources == "" && len(want) < 100) {
		t.Fatalf("the reference harvest holds only %d records; the test needs more", len(want))
	}
	return want
}

// refusal is one way an output refuses every request, and its fix.
type refusal struct {
	name     string
	output   string // "sentinel" or "splunk"
	receiver string
	refuse   func(*testing.T, *sim.Tenant)
	fix      func(*testing.T, *sim.Tenant)
	says     string // in the run's output when refused
}

var refusals = []refusal{
	{"sentinel role removed (403)", "sentinel", sim.ReceiverSentinel,
		func(_ *testing.T, ten *sim.Tenant) { ten.SetIngestionRole(false) },
		func(_ *testing.T, ten *sim.Tenant) { ten.SetIngestionRole(true) }, "OperationFailed"},
	{"splunk token disabled", "splunk", sim.ReceiverSplunk,
		func(t *testing.T, ten *sim.Tenant) {
			must(t, ten.SetHECTokenDisabled(ten.Credentials().HECToken, true))
		},
		func(t *testing.T, ten *sim.Tenant) {
			must(t, ten.SetHECTokenDisabled(ten.Credentials().HECToken, false))
		}, "token is disabled"},
	{"splunk index not allowed", "splunk", sim.ReceiverSplunk,
		func(t *testing.T, ten *sim.Tenant) { must(t, ten.SetHECIndexAllowed("defender", false)) },
		func(t *testing.T, ten *sim.Tenant) { must(t, ten.SetHECIndexAllowed("defender", true)) }, `index "defender" is not allowed`},
}

// oneAtATime sends one request at a time per Write. A refused request
// cancels the other requests of its Write; a server may still finish one
// of those after the test lifts the refusal — a real at-least-once
// duplicate, but one that would make the duplicate count depend on timing.
const oneAtATime = fastRetries + "      concurrency: 1\n"

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRefusingOnlyOutputFailsTheRunAndLosesNothing: the only output
// refuses every request. The run exits non-zero, nothing is accepted or
// dead-lettered, and the next run (refusal lifted) delivers exactly what
// an unrefused harvest delivers, each record once.
func TestRefusingOnlyOutputFailsTheRunAndLosesNothing(t *testing.T) {
	for i, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			f := newFixture(t, sim.Options{Seed: int64(41 + i)})
			cfg := patchOutputs(t, f.writeConfig("refused", ""), oneAtATime)
			r.refuse(t, f.tenant)
			code, out, errs := f.runCLI("run", "--config", cfg, "--outputs", r.output)
			if code == 0 {
				t.Fatalf("the run exited 0 although %s refused every record\n%s\n%s", r.output, out, errs)
			}
			if !strings.Contains(out+errs, r.says) {
				t.Errorf("the run does not say why (%q):\n%s\n%s", r.says, out, errs)
			}
			if st := f.tenant.Received(r.receiver); st.Records != 0 {
				t.Fatalf("%s accepted %d records while refusing", r.output, st.Records)
			}
			if dl := deadLetterFiles(t, f.dir); len(dl) != 0 {
				t.Fatalf("records were dead-lettered for a refusal of the request: %v\n%s", dl, out)
			}

			r.fix(t, f.tenant)
			if code, out, errs := f.runCLI("run", "--config", cfg, "--outputs", r.output); code != 0 {
				t.Fatalf("the run after the fix exited %d\n%s\n%s", code, out, errs)
			}
			want := reference(t, f, "")
			if d := assertReceived(t, f, r.receiver, want); d != 0 {
				t.Errorf("%s received %d duplicates; it accepted nothing before the fix", r.output, d)
			}
			if dl := deadLetterFiles(t, f.dir); len(dl) != 0 {
				t.Errorf("dead letters after the fix: %v", dl)
			}
			t.Logf("%s refusing (%s): run 1 exit %d, 0 accepted, 0 dead-lettered; after the fix all %d records delivered, 0 duplicates",
				r.output, r.name, code, len(want))
		})
	}
}

// TestRefusingOutputBesideFilesIsSpooled: files and a refusing output
// together. Files get everything in the first run; the refused output's
// records wait in its spool (the run exits non-zero naming it), nothing
// is dead-lettered, and the run after the fix delivers the spool: the
// output then holds exactly what the files hold. The one-record tables
// are the case the old rule turned into dead letters and a zero exit.
func TestRefusingOutputBesideFilesIsSpooled(t *testing.T) {
	selections := []struct{ name, sources string }{
		{"every source", ""},
		{"one-record tables", "alertservicesettings,dataexportsettings"},
	}
	n := 0
	for _, r := range []refusal{refusals[0], refusals[2]} {
		for _, sel := range selections {
			n++
			t.Run(r.name+"/"+sel.name, func(t *testing.T) {
				f := newFixture(t, sim.Options{Seed: int64(50 + n)})
				cfg := patchOutputs(t, f.writeConfig("beside", ""), oneAtATime)
				r.refuse(t, f.tenant)
				args := []string{"run", "--config", cfg, "--outputs", "files," + r.output}
				if sel.sources != "" {
					args = append(args, "--sources", sel.sources)
				}
				code, out, errs := f.runCLI(args...)
				if code == 0 || !strings.Contains(out, "output "+r.output) || !strings.Contains(out+errs, "spool") {
					t.Fatalf("want a non-zero exit naming %s and its spool; got %d\n%s\n%s", r.output, code, out, errs)
				}
				files := idsIn(t, filepath.Join(f.dir, "beside-out"))
				want := reference(t, f, sel.sources)
				if len(files) != len(want) {
					t.Fatalf("files got %d records in the refused run, an unrefused harvest %d", len(files), len(want))
				}
				for id := range want {
					if files[id] == 0 {
						t.Fatalf("files lack record %s although only %s refused", id, r.output)
					}
				}
				if st := f.tenant.Received(r.receiver); st.Records != 0 {
					t.Fatalf("%s accepted %d records while refusing", r.output, st.Records)
				}
				if dl := deadLetterFiles(t, f.dir); len(dl) != 0 {
					t.Fatalf("records were dead-lettered for a refusal of the request: %v", dl)
				}

				r.fix(t, f.tenant)
				code, out, errs = f.runCLI(args...)
				if code != 0 || !strings.Contains(out, "delivered from spool") {
					t.Fatalf("the run after the fix: exit %d, want 0 and the spool delivered\n%s\n%s", code, out, errs)
				}
				if d := assertReceived(t, f, r.receiver, files); d != 0 {
					t.Errorf("%s received %d duplicates", r.output, d)
				}
				if again := idsIn(t, filepath.Join(f.dir, "beside-out")); len(again) != len(files) {
					t.Errorf("files grew from %d to %d records in the second run", len(files), len(again))
				}
			})
		}
	}
}
