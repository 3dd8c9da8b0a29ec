package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/delivery"
	"github.com/defenderharvester/defenderharvester/internal/harvester"
	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/state"
)

const (
	idContoso  = "11111111-1111-4111-8111-111111111111"
	idFabrikam = "22222222-2222-4222-8222-222222222222"
)

// toolsFixture is a two-tenant config whose state files hold cursors,
// parts, a snapshot, spools and dead letters, written through the state
// and delivery APIs (no emulator).
type toolsFixture struct {
	dir, cfg     string
	stateA       string // contoso's state file
	stateB       string // fabrikam's
	dlA, dlB     string // their dead-letter folders
	outA, outB   string // their files outputs' folders
	now          time.Time
	listen       string
	deadLettered []record.Record
}

func newToolsFixture(t *testing.T, listen string) *toolsFixture {
	t.Helper()
	old := toolLockTimeout
	toolLockTimeout = 50 * time.Millisecond
	t.Cleanup(func() { toolLockTimeout = old })
	dir := t.TempDir()
	f := &toolsFixture{dir: dir, cfg: filepath.Join(dir, "config.yaml"), now: time.Now().UTC().Truncate(time.Second), listen: listen}
	if listen == "" {
		f.listen = "127.0.0.1:1" // nothing answers there
	}
	yaml := fmt.Sprintf(`state_file: state/main.db
serve:
  listen: %q
outputs:
  files: {dir: out-a}
sources:
  timeline: {machines: [dev1, dev2]}
tenants:
  - name: contoso
    tenant_id: %s
  - name: fabrikam
    tenant_id: %s
    outputs:
      - {name: files-b, type: files, dir: out-b}
`, f.listen, idContoso, idFabrikam)
	if err := os.WriteFile(f.cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	f.stateA = filepath.Join(dir, "state", "tenants", "contoso", "defenderharvester.db")
	f.stateB = filepath.Join(dir, "state", "tenants", "fabrikam", "defenderharvester.db")
	f.dlA, f.dlB = filepath.Join(filepath.Dir(f.stateA), "deadletter"), filepath.Join(filepath.Dir(f.stateB), "deadletter")
	// A files output of a config with tenants writes into <dir>/<tenant>/.
	f.outA, f.outB = filepath.Join(dir, "out-a", "contoso"), filepath.Join(dir, "out-b", "fabrikam")

	now := f.now
	a := openTestStore(t, f.stateA)
	must(t, a.Commit(idContoso, "actioncenter", state.Commit{Cursor: now.Add(-90 * time.Minute), Seen: []state.SeenID{{ID: "x", Time: now.Add(-2 * time.Hour)}},
		Cover: state.Range{From: now.Add(-24 * time.Hour), To: now.Add(-90 * time.Minute)}}))
	if _, err := a.RecordOutcome(idContoso, "actioncenter", now.Add(-time.Hour), ""); err != nil {
		t.Fatal(err)
	}
	must(t, a.Commit(idContoso, "timeline/dev1", state.Commit{Cursor: now.Add(-3 * time.Hour), Cover: state.Range{From: now.Add(-5 * time.Hour), To: now.Add(-3 * time.Hour)}}))
	must(t, a.Commit(idContoso, "timeline/dev2", state.Commit{Cursor: now.Add(-2 * time.Hour)}))
	if _, err := a.RecordFailure(idContoso, "timeline/dev2", "device dev2: 404 machine not found", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RecordOutcome(idContoso, "timeline", now.Add(-time.Hour), "source timeline: 1 of 2 parts not harvested"); err != nil {
		t.Fatal(err)
	}
	must(t, a.SpoolPut("files", "MdeMachineActions", testRecords(3, "MdeMachineActions", "spooled"), 0))
	a.Close()

	b := openTestStore(t, f.stateB)
	must(t, b.ReplaceSnapshot(idFabrikam, "suppressionrules", now.Add(-10*time.Minute), map[string]state.SnapshotEntry{
		"r1": {Hash: "h1", Raw: json.RawMessage(`{"Id":"r1"}`)}, "r2": {Hash: "h2", Raw: json.RawMessage(`{"Id":"r2"}`)}}))
	b.Close()

	f.deadLettered = testRecords(2, "MdeCustomDetectionState", "dead")
	dl := delivery.NewFileDeadLetter(f.dlB, func() time.Time { return now.Add(-24 * time.Hour) })
	for i := range f.deadLettered {
		must(t, dl.Put(context.Background(), "files-b", "MdeCustomDetectionState", &f.deadLettered[i], errors.New("400 record refused: field too long")))
	}
	return f
}

func openTestStore(t *testing.T, path string) *state.Store {
	t.Helper()
	s, err := state.Open(path, state.Options{LockTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testRecords(n int, table, prefix string) []record.Record {
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	out := make([]record.Record, n)
	for i := range out {
		out[i] = record.Record{Tenant: idContoso, Source: "actioncenter", Table: table, ID: fmt.Sprintf("%s-%d", prefix, i),
			Time: at.Add(time.Duration(i) * time.Minute), HarvestedAt: at.Add(time.Hour),
			Raw: json.RawMessage(fmt.Sprintf(`{"Id":"%s-%d","Note":"a<b"}`, prefix, i))}
	}
	return out
}

func (f *toolsFixture) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	env, out, errb := testEnv(nil)
	env.Now = func() time.Time { return f.now }
	args = append(args, "--config", f.cfg)
	code := Main(context.Background(), env, args)
	return code, out.String(), errb.String()
}

// ids reads the RecordIds written to the files output in dir.
func outputIDs(t *testing.T, dir string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	var ids []string
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if line == "" {
				continue
			}
			var r struct{ RecordId string }
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			ids = append(ids, r.RecordId)
		}
	}
	return ids
}

func wantAll(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%s does not mention %q:\n%s", what, w, text)
		}
	}
}

func TestStateShowListsBothTenants(t *testing.T) {
	f := newToolsFixture(t, "")
	code, out, errb := f.run(t, "state", "show")
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errb)
	}
	cursor := f.now.Add(-90 * time.Minute).Format("2006-01-02 15:04:05")
	wantAll(t, "state show", out,
		"tenant contoso ("+idContoso+")", "tenant fabrikam ("+idFabrikam+")",
		"actioncenter", cursor, "1h30m", // cursor and lag
		"2, 1 failing, least advanced dev1", // timeline parts
		"suppressionrules", "(2 items)",
		"3 records in 1 batches",          // contoso's spool
		"files-b", "2 lines in 1 file(s)", // fabrikam's dead letters
		"device dev2: 404")
	for _, s := range []string{f.stateA, f.stateB} {
		if _, err := os.Stat(s); err != nil {
			t.Errorf("state file gone: %v", err)
		}
	}

	code, out, _ = f.run(t, "state", "show", "--json", "--tenant", "contoso")
	if code != exitOK {
		t.Fatalf("--json exit %d", code)
	}
	var doc harvester.StateDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("--json is not a state document: %v\n%s", err, out)
	}
	if len(doc.Tenants) != 1 || doc.Tenants[0].Tenant != "contoso" {
		t.Fatalf("--tenant contoso: %+v", doc.Tenants)
	}
	srcs := map[string]harvester.SourceState{}
	for _, s := range doc.Tenants[0].Sources {
		srcs[s.Source] = s
	}
	ac, tl := srcs["actioncenter"], srcs["timeline"]
	if ac.Cursor == nil || !ac.Cursor.Equal(f.now.Add(-90*time.Minute)) || ac.LagSeconds == nil || *ac.LagSeconds != 5400 ||
		ac.Covered.Ranges != 1 || ac.SeenIDs != 1 || ac.LastSuccess == nil || ac.Kind != "event" || !ac.Enabled {
		t.Errorf("actioncenter = %+v", ac)
	}
	if tl.Parts == nil || tl.Parts.Count != 2 || tl.Parts.Failing != 1 || tl.Parts.LeastAdvanced != "dev1" || tl.Failures != 1 ||
		len(tl.Parts.FailingParts) != 1 || tl.Parts.FailingParts[0].Part != "dev2" || tl.Cursor == nil || !tl.Cursor.Equal(f.now.Add(-3*time.Hour)) {
		t.Errorf("timeline = %+v (parts %+v)", tl, tl.Parts)
	}
	if _, ok := srcs["machineactions"]; !ok {
		t.Error("an enabled source that never ran is not listed")
	}
	outs := doc.Tenants[0].Outputs
	if len(outs) != 1 || outs[0].Output != "files" || outs[0].Spool.Records != 3 || outs[0].Spool.Batches != 1 || !outs[0].Configured {
		t.Errorf("outputs = %+v", outs)
	}
	// Field names are part of the interface.
	for _, k := range []string{`"tenants"`, `"sources"`, `"lag_seconds"`, `"covered"`, `"parts"`, `"failing_parts"`, `"spool"`, `"dead_letters"`} {
		if !strings.Contains(out, k) {
			t.Errorf("--json has no %s", k)
		}
	}
}

func TestStateResetNeedsYesAndRemovesOnlyTheSource(t *testing.T) {
	f := newToolsFixture(t, "")
	code, out, errb := f.run(t, "state", "reset", "timeline", "--tenant", "contoso")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errb)
	}
	wantAll(t, "reset without --yes", out, "would remove", "timeline/dev1", "timeline/dev2", "--yes", "initial_lookback")
	s := openTestStore(t, f.stateA)
	before, _ := s.Sources()
	s.Close()
	if len(before) != 4 {
		t.Fatalf("reset without --yes changed the state: %d entries", len(before))
	}

	code, out, errb = f.run(t, "state", "reset", "timeline", "--tenant", "contoso", "--yes")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errb)
	}
	wantAll(t, "reset --yes", out, "removed the state of timeline", "timeline/dev1", "timeline/dev2")
	s = openTestStore(t, f.stateA)
	after, _ := s.Sources()
	infos, _ := s.Spools()
	s.Close()
	if len(after) != 1 || after[0].Source != "actioncenter" || !after[0].HasCursor {
		t.Errorf("after reset: %+v (only actioncenter should be left, untouched)", after)
	}
	if len(infos) != 1 || infos[0].Records != 3 {
		t.Errorf("reset touched the spool: %+v", infos)
	}

	// A snapshot source says what its next run sends.
	_, out, _ = f.run(t, "state", "reset", "suppressionrules", "--tenant", "fabrikam")
	wantAll(t, "reset of a snapshot source", out, "ChangeType Initial")
}

func TestStateToolUsageErrors(t *testing.T) {
	f := newToolsFixture(t, "")
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"no subcommand", []string{"state"}, []string{"state show"}},
		{"unknown subcommand", []string{"state", "fix"}, []string{`unknown subcommand "fix"`}},
		{"unknown source", []string{"state", "reset", "nosuch", "--tenant", "contoso"}, []string{`"nosuch" is not a source`, "actioncenter", "timeline"}},
		{"no source", []string{"state", "reset", "--tenant", "contoso"}, []string{"name the source"}},
		{"tenant needed", []string{"state", "reset", "timeline"}, []string{"--tenant", "contoso, fabrikam"}},
		{"unknown tenant", []string{"state", "show", "--tenant", "nope"}, []string{"no such tenant", "contoso, fabrikam"}},
		{"unknown output to purge", []string{"state", "spool", "purge", "splunk", "--tenant", "contoso"}, []string{`output "splunk"`, "files"}},
		{"unknown output to retry", []string{"state", "spool", "retry", "splunk", "--tenant", "contoso"}, []string{`output "splunk"`, "configured outputs: files"}},
		{"unknown output in every tenant", []string{"state", "spool", "retry", "nope"}, []string{"any tenant", "files, files-b"}},
		{"deadletters unknown output", []string{"deadletters", "retry", "--output", "nope"}, []string{"no such output", "files, files-b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errb := f.run(t, tc.args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d\n%s%s", code, exitUsage, out, errb)
			}
			wantAll(t, "stderr", errb, tc.want...)
		})
	}
}

func TestStateSpoolPurge(t *testing.T) {
	f := newToolsFixture(t, "")
	code, out, _ := f.run(t, "state", "spool", "purge", "files", "--tenant", "contoso")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	wantAll(t, "purge without --yes", out, "would drop 3 record(s)", "--yes")
	code, out, _ = f.run(t, "state", "spool", "purge", "files", "--tenant", "contoso", "--yes")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	wantAll(t, "purge", out, "dropped 3 record(s) in 1 batch(es)")
	s := openTestStore(t, f.stateA)
	infos, _ := s.Spools()
	s.Close()
	if len(infos) != 0 {
		t.Errorf("spool after purge: %+v", infos)
	}
}

func TestStateSpoolRetryDeliversToTheFilesOutput(t *testing.T) {
	f := newToolsFixture(t, "")
	code, out, errb := f.run(t, "state", "spool", "retry", "files")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errb)
	}
	wantAll(t, "spool retry", out, "tenant contoso: output files: sent 3 record(s), 0 still spooled")
	if ids := outputIDs(t, f.outA); strings.Join(ids, ",") != "spooled-0,spooled-1,spooled-2" {
		t.Errorf("files output got %v", ids)
	}
	s := openTestStore(t, f.stateA)
	infos, _ := s.Spools()
	s.Close()
	if len(infos) != 0 {
		t.Errorf("spool after retry: %+v", infos)
	}
	if strings.Contains(out, "fabrikam") {
		t.Errorf("fabrikam has no output named files but was reported:\n%s", out)
	}
}

func TestDeadLettersRetryResendsAndMovesTheFile(t *testing.T) {
	f := newToolsFixture(t, "")
	// A record kept as text (its payload was not JSON) cannot be sent.
	bad := record.Record{ID: "bad", Raw: json.RawMessage(`{"a":`)}
	dl := delivery.NewFileDeadLetter(f.dlB, func() time.Time { return f.now.Add(-48 * time.Hour) })
	must(t, dl.Put(context.Background(), "files-b", "MdeCustomDetectionState", &bad, errors.New("cannot be encoded")))
	before, _ := filepath.Glob(filepath.Join(f.dlB, "*.jsonl"))
	if len(before) != 2 {
		t.Fatalf("fixture: %v", before)
	}

	code, out, _ := f.run(t, "deadletters", "list", "--tenant", "fabrikam")
	if code != exitOK {
		t.Fatalf("list exit %d", code)
	}
	wantAll(t, "deadletters list", out, "files-b", "field too long", "cannot be encoded")

	code, out, _ = f.run(t, "deadletters", "retry", "--tenant", "fabrikam")
	if code != exitOK || len(outputIDs(t, f.outB)) != 0 {
		t.Fatalf("retry without --yes: exit %d, sent %v", code, outputIDs(t, f.outB))
	}
	wantAll(t, "retry without --yes", out, "would send again", "--yes")

	code, out, errb := f.run(t, "deadletters", "retry", "--tenant", "fabrikam", "--yes")
	if code != exitDeadLetters {
		t.Fatalf("exit %d, want %d (one line cannot be sent)\n%s%s", code, exitDeadLetters, out, errb)
	}
	if ids := outputIDs(t, f.outB); strings.Join(ids, ",") != "dead-0,dead-1" {
		t.Errorf("files-b got %v", ids)
	}
	wantAll(t, "retry", out, "2 record(s) sent again, 2 accepted, 0 refused again", "1 line(s) cannot be sent", "moved to")
	retried, _ := filepath.Glob(filepath.Join(f.dlB, "retried", "*.jsonl"))
	if len(retried) != 2 {
		t.Fatalf("retried files %v", retried)
	}
	for _, p := range append(retried, filepath.Dir(retried[0])) {
		st, _ := os.Stat(p)
		want := os.FileMode(0o600)
		if st.IsDir() {
			want = 0o700
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", p, st.Mode().Perm(), want)
		}
	}
	left, _ := filepath.Glob(filepath.Join(f.dlB, "*.jsonl"))
	if len(left) != 1 {
		t.Fatalf("dead letters left %v, want the unsendable line's file", left)
	}
	if b, _ := os.ReadFile(left[0]); strings.Count(string(b), "\n") != 1 || !strings.Contains(string(b), "RawText") {
		t.Errorf("kept line: %s", b)
	}
	if rest, _ := filepath.Glob(filepath.Join(f.dlB, "retrying", "*")); len(rest) != 0 {
		t.Errorf("left in retrying/: %v", rest)
	}
	// A second retry sends nothing again (no double delivery).
	f.run(t, "deadletters", "retry", "--tenant", "fabrikam", "--yes")
	if ids := outputIDs(t, f.outB); len(ids) != 2 {
		t.Errorf("after a second retry the output has %v", ids)
	}
}

// TestDeadLettersRetryResumesWhereItStopped: a retry that was killed
// part-way left its file in retrying/ with the position reached; the next
// retry sends only the rest.
func TestDeadLettersRetryResumesWhereItStopped(t *testing.T) {
	f := newToolsFixture(t, "")
	files, _ := filepath.Glob(filepath.Join(f.dlB, "*.jsonl"))
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	first := strings.Index(string(b), "\n") + 1
	claimed := filepath.Join(f.dlB, "retrying", filepath.Base(files[0]))
	must(t, os.MkdirAll(filepath.Dir(claimed), 0o700))
	must(t, os.Rename(files[0], claimed))
	must(t, os.WriteFile(claimed+".offset", fmt.Appendf(nil, "%d\n", first), 0o600))

	_, out, _ := f.run(t, "state", "show", "--tenant", "fabrikam")
	wantAll(t, "state show", out, "part-way through a retry")

	code, out, errb := f.run(t, "deadletters", "retry", "--output", "files-b", "--yes")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errb)
	}
	if ids := outputIDs(t, f.outB); strings.Join(ids, ",") != "dead-1" {
		t.Errorf("resumed retry sent %v, want only the line after the saved position", ids)
	}
	if _, err := os.Stat(claimed + ".offset"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the saved position was not removed: %v", err)
	}
}

// TestToolsRefuseALockedStateFile: while a harvester holds the state
// file the tools say so and what to do, and exit 1.
func TestToolsRefuseALockedStateFile(t *testing.T) {
	f := newToolsFixture(t, "")
	held := openTestStore(t, f.stateA)
	defer held.Close()
	cases := [][]string{
		{"state", "show", "--tenant", "contoso"},
		{"state", "reset", "actioncenter", "--tenant", "contoso", "--yes"},
		{"state", "spool", "purge", "files", "--tenant", "contoso", "--yes"},
		{"state", "spool", "retry", "files", "--tenant", "contoso"},
		{"deadletters", "retry", "--tenant", "contoso", "--yes"},
	}
	for _, args := range cases {
		t.Run(strings.Join(args[:2], " "), func(t *testing.T) {
			code, out, errb := f.run(t, args...)
			if code != exitFailed {
				t.Fatalf("exit %d, want %d\n%s%s", code, exitFailed, out, errb)
			}
			wantAll(t, "stderr", errb, "state file of tenant contoso", "in use by a running defenderharvester (serve or run)", "stop it first",
				"http://127.0.0.1:1/state")
		})
	}
	if c, _, _ := held.Cursor(idContoso, "actioncenter"); c.IsZero() {
		t.Error("the held state changed")
	}
}

// TestStateShowAsksTheRunningService: a held state file is read from the
// service's /state endpoint instead.
func TestStateShowAsksTheRunningService(t *testing.T) {
	var hits int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		if r.URL.Path != "/state" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(harvester.StateDoc{Tenants: []harvester.TenantState{
			{Tenant: "contoso", TenantID: idContoso, StateFile: "served", Sources: []harvester.SourceState{{Source: "served-by-the-service", Kind: "event", Enabled: true}}},
		}})
	}))
	defer srv.Close()
	f := newToolsFixture(t, strings.TrimPrefix(srv.URL, "http://"))
	held := openTestStore(t, f.stateA)
	defer held.Close()

	code, out, errb := f.run(t, "state", "show")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errb)
	}
	wantAll(t, "state show", out, "served-by-the-service", "tenant fabrikam", "suppressionrules")
	wantAll(t, "stderr", errb, "read from the running service at "+srv.URL+"/state")
	if hits != 1 {
		t.Errorf("the service was asked %d times", hits)
	}

	// Listening on ":port" means this machine's loopback.
	if u, ok := serviceStateTarget(":9464"); u != "http://127.0.0.1:9464/state" || !ok {
		t.Errorf(":9464 → %s %v", u, ok)
	}
	if _, ok := serviceStateTarget("10.1.2.3:9464"); ok {
		t.Error("a non-loopback address would be asked")
	}
}

// flakySink is an output whose writes fail while flakyFail says so; it
// keeps what it accepted.
type flakySink struct{ name string }

var flaky struct {
	sync.Mutex
	fail bool
	got  []string // RecordIds accepted
}

func init() {
	sink.Register(sink.Factory{Name: "flaky-test", Description: "test output",
		New: func(d sink.Deps, _ any) (sink.Sink, error) { return &flakySink{name: d.NameOr("flaky-test")}, nil }})
}

func (s *flakySink) Name() string                   { return s.name }
func (s *flakySink) Start(context.Context) error    { return nil }
func (s *flakySink) Shutdown(context.Context) error { return nil }
func (s *flakySink) Write(_ context.Context, table string, recs []record.Record) error {
	flaky.Lock()
	defer flaky.Unlock()
	if flaky.fail {
		return fmt.Errorf("503 busy (table %s)", table)
	}
	for _, r := range recs {
		flaky.got = append(flaky.got, r.ID)
	}
	if len(recs) > 0 && recs[0].Table == "T1" {
		flaky.fail = true // the next write fails
	}
	return nil
}

// TestDeadLettersRetryThatFailsLosesNothing: when the output fails in the
// middle of a file, the file stays in retrying/ with the position after
// the last accepted batch; the next retry sends only the rest, so every
// record arrives once.
func TestDeadLettersRetryThatFailsLosesNothing(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	must(t, os.WriteFile(cfg, []byte("tenant_id: "+idContoso+"\nstate_file: state/h.db\noutputs:\n  - {name: siem, type: flaky-test}\n"), 0o600))
	dlDir := filepath.Join(dir, "state", "deadletter")
	dl := delivery.NewFileDeadLetter(dlDir, nil)
	for _, r := range append(testRecords(2, "T1", "a"), testRecords(1, "T2", "b")...) {
		must(t, dl.Put(context.Background(), "siem", r.Table, &r, errors.New("refused")))
	}
	flaky.Lock()
	flaky.fail, flaky.got = false, nil
	flaky.Unlock()
	run := func() (int, string, string) {
		env, out, errb := testEnv(nil)
		code := Main(context.Background(), env, []string{"deadletters", "retry", "--config", cfg, "--yes"})
		return code, out.String(), errb.String()
	}
	code, out, errb := run()
	if code != exitFailed {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitFailed, out, errb)
	}
	wantAll(t, "failed retry", out, "2 record(s) sent again", "stopped, the rest is sent by the next retry")
	wantAll(t, "failed retry", errb, "503 busy")
	claimed, _ := filepath.Glob(filepath.Join(dlDir, "retrying", "*.jsonl"))
	if len(claimed) != 1 {
		t.Fatalf("after a failed retry, retrying/ holds %v", claimed)
	}
	if b, _ := os.ReadFile(claimed[0]); strings.Count(string(b), "\n") != 3 {
		t.Fatalf("the claimed file lost lines: %s", b)
	}
	flaky.Lock()
	flaky.fail = false
	flaky.Unlock()
	code, out, errb = run()
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errb)
	}
	flaky.Lock()
	got := strings.Join(flaky.got, ",")
	flaky.Unlock()
	if got != "a-0,a-1,b-0" {
		t.Errorf("the output received %s, want every record once", got)
	}
	if rest, _ := filepath.Glob(filepath.Join(dlDir, "retrying", "*")); len(rest) != 0 {
		t.Errorf("left in retrying/: %v", rest)
	}
}
