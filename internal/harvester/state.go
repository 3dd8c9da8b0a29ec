package harvester

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/delivery"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/state"
)

// StateDoc is what the service's /state endpoint serves and `state show
// --json` prints: one entry per tenant. Field names are stable; times
// are RFC 3339 UTC; a field left out means "none" (no cursor, never ran…).
type StateDoc struct {
	Tenants []TenantState `json:"tenants"`
}

// TenantState is what one tenant's state file holds, as StateReport reads
// it.
type TenantState struct {
	// Tenant is the tenant's name in the config ("default" for a
	// single-tenant config); TenantID its tenant_id when configured.
	Tenant    string `json:"tenant"`
	TenantID  string `json:"tenant_id,omitempty"`
	StateFile string `json:"state_file"`
	// GeneratedAt is when the report was read.
	GeneratedAt time.Time     `json:"generated_at"`
	Sources     []SourceState `json:"sources"`
	Outputs     []OutputState `json:"outputs"`
	// Error says why the tenant's state could not be read (the service
	// reports a tenant it cannot read instead of failing the whole page).
	Error string `json:"error,omitempty"`
}

// SourceState is one source of a tenant.
type SourceState struct {
	Source string `json:"source"`
	// TenantID is the tenant id the state is kept under (the config's, or
	// the one read from the portal session).
	TenantID string `json:"tenant_id,omitempty"`
	// Kind is "event" or "snapshot", "unknown" for state of a source
	// this version does not have.
	Kind  string `json:"kind"`
	Table string `json:"table,omitempty"`
	// Enabled says the config harvests it (state of a source switched off
	// is listed with false).
	Enabled bool `json:"enabled"`
	// Cursor is how far an event source is harvested (for a source with
	// parts: its least advanced part's); LagSeconds is now − cursor, or
	// now − snapshot_at for a snapshot source.
	Cursor     *time.Time `json:"cursor,omitempty"`
	LagSeconds *int64     `json:"lag_seconds,omitempty"`
	// Covered summarises the time ranges read completely and delivered
	// everywhere (for a source with parts: over all parts).
	Covered Coverage `json:"covered"`
	// Goal is the earliest time a backfill (or the first run) asked to
	// cover.
	Goal        *time.Time `json:"goal,omitempty"`
	LastRun     *time.Time `json:"last_run,omitempty"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	// Failures counts runs in a row that failed; LastError is the last
	// one's message; RetryAt when a resting source is tried again.
	Failures      int        `json:"failures"`
	LastError     string     `json:"last_error,omitempty"`
	RetryAt       *time.Time `json:"retry_at,omitempty"`
	SeenIDs       int        `json:"seen_ids"`
	SnapshotAt    *time.Time `json:"snapshot_at,omitempty"`
	SnapshotItems int        `json:"snapshot_items,omitempty"`
	// Parts is set for a source kept per part (the timeline's devices).
	Parts *PartsState `json:"parts,omitempty"`
}

// Coverage summarises covered ranges.
type Coverage struct {
	Ranges   int        `json:"ranges"`
	Earliest *time.Time `json:"earliest,omitempty"`
	Latest   *time.Time `json:"latest,omitempty"`
}

// PartsState summarises the parts of a source.
type PartsState struct {
	Count int `json:"count"`
	// Failing counts parts whose last run failed; NoCursor parts that
	// never completed a window.
	Failing  int `json:"failing"`
	NoCursor int `json:"no_cursor"`
	// LeastAdvanced is the part with the earliest cursor.
	LeastAdvanced       string     `json:"least_advanced,omitempty"`
	LeastAdvancedCursor *time.Time `json:"least_advanced_cursor,omitempty"`
	// FailingParts lists the failing parts (at most MaxFailingParts).
	FailingParts []PartState `json:"failing_parts,omitempty"`
}

// MaxFailingParts bounds PartsState.FailingParts.
const MaxFailingParts = 50

// PartState is one failing part.
type PartState struct {
	Part      string     `json:"part"`
	Cursor    *time.Time `json:"cursor,omitempty"`
	Failures  int        `json:"failures"`
	LastError string     `json:"last_error,omitempty"`
	RetryAt   *time.Time `json:"retry_at,omitempty"`
}

// OutputState is one output of a tenant: its spool in the state file and
// its dead-letter files.
type OutputState struct {
	Output string `json:"output"`
	Type   string `json:"type,omitempty"`
	// Configured is false for an output that has a spool but is no longer
	// in the config.
	Configured  bool            `json:"configured"`
	Spool       SpoolState      `json:"spool"`
	DeadLetters DeadLetterState `json:"dead_letters"`
}

// SpoolState is an output's backlog in the state file.
type SpoolState struct {
	Records int   `json:"records"`
	Batches int   `json:"batches"`
	Bytes   int64 `json:"bytes"`
}

// DeadLetterState lists an output's dead-letter files.
type DeadLetterState struct {
	Dir   string           `json:"dir,omitempty"`
	Lines int              `json:"lines"`
	Files []DeadLetterFile `json:"files,omitempty"`
	Error string           `json:"error,omitempty"`
}

// DeadLetterFile is one dead-letter file.
type DeadLetterFile struct {
	Path        string `json:"path"`
	Lines       int    `json:"lines"`
	Bytes       int64  `json:"bytes"`
	FirstReason string `json:"first_reason,omitempty"`
	// Retrying says a `deadletters retry` stopped part-way through it
	// (it is in <dir>/retrying/); the next retry resumes it.
	Retrying bool `json:"retrying,omitempty"`
}

// StateReport reads what cfg's tenant keeps in store — every source's
// cursor, coverage, failures and parts, every output's spool — and its
// outputs' dead-letter files, as of now. It only reads. A nil store is
// a tenant without a state file yet (never ran).
func StateReport(cfg *config.Config, store *state.Store, now time.Time) (TenantState, error) {
	now = now.UTC()
	ts := TenantState{Tenant: cfg.TenantName(), TenantID: cfg.TenantID, StateFile: cfg.StateFile, GeneratedAt: now,
		Sources: []SourceState{}, Outputs: []OutputState{}}
	var entries []state.SourceStatus
	var spools []state.SpoolInfo
	if store != nil {
		var err error
		if entries, err = store.Sources(); err != nil {
			return ts, err
		}
		if spools, err = store.Spools(); err != nil {
			return ts, err
		}
	}
	enabled, err := Select(cfg, nil)
	if err != nil {
		return ts, err
	}
	ts.Sources = sourceStates(cfg, entries, enabled, now)
	outputs, err := OutputNames(cfg)
	if err != nil {
		return ts, err
	}
	ts.Outputs = outputStates(cfg, outputs, spools)
	return ts, nil
}

func sourceStates(cfg *config.Config, entries []state.SourceStatus, enabled []source.Factory, now time.Time) []SourceState {
	on := map[string]bool{}
	for _, f := range enabled {
		on[f.Name] = true
	}
	type key struct{ tenant, source string }
	rows := map[key]*SourceState{}
	var order []key
	row := func(tenant, name string) *SourceState {
		k := key{tenant, name}
		if r, ok := rows[k]; ok {
			return r
		}
		r := &SourceState{Source: name, TenantID: tenant, Kind: "unknown", Enabled: on[name]}
		if f, ok := source.Lookup(name); ok {
			r.Kind, r.Table = f.Kind.String(), f.Table
		}
		rows[k] = r
		order = append(order, k)
		return r
	}
	// Sources that never ran are listed under the configured tenant id
	// (or the one state is kept under, when there is exactly one).
	tenantID := cfg.TenantID
	if tenantID == "" {
		ids := map[string]bool{}
		for _, e := range entries {
			ids[e.Tenant] = true
		}
		if len(ids) == 1 {
			tenantID = entries[0].Tenant
		}
	}
	for _, f := range enabled {
		row(tenantID, f.Name)
	}
	parts := map[key][]state.SourceStatus{}
	for _, e := range entries {
		r := row(e.Tenant, e.Name())
		if e.Part() != "" {
			k := key{e.Tenant, e.Name()}
			parts[k] = append(parts[k], e)
			continue
		}
		r.Cursor, r.Goal = tp(e.Cursor), tp(e.Goal)
		r.LastRun, r.LastSuccess, r.RetryAt = tp(e.LastRun), tp(e.LastSuccess), tp(e.RetryAt)
		r.Failures, r.LastError = e.Failures, e.LastError
		r.SeenIDs = e.SeenIDs
		r.SnapshotAt, r.SnapshotItems = tp(e.SnapshotAt), e.SnapshotItems
		r.Covered = coverage(e.Covered)
	}
	for k, ps := range parts {
		summariseParts(rows[k], ps)
	}
	out := make([]SourceState, 0, len(order))
	for _, k := range order {
		r := rows[k]
		switch {
		case r.Cursor != nil:
			r.LagSeconds = lag(now, *r.Cursor)
		case r.SnapshotAt != nil:
			r.LagSeconds = lag(now, *r.SnapshotAt)
		}
		out = append(out, *r)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].TenantID != out[j].TenantID {
			return out[i].TenantID == tenantID || (out[j].TenantID != tenantID && out[i].TenantID < out[j].TenantID)
		}
		return out[i].Source < out[j].Source
	})
	return out
}

// summariseParts folds a source's parts into its row.
func summariseParts(r *SourceState, ps []state.SourceStatus) {
	sum := &PartsState{Count: len(ps)}
	var all []state.Range
	var least time.Time
	for _, p := range ps {
		all = append(all, p.Covered...)
		r.SeenIDs += p.SeenIDs
		if !p.Goal.IsZero() && (r.Goal == nil || p.Goal.Before(*r.Goal)) {
			r.Goal = tp(p.Goal)
		}
		if !p.HasCursor {
			sum.NoCursor++
		} else if least.IsZero() || p.Cursor.Before(least) {
			least, sum.LeastAdvanced = p.Cursor, p.Part()
		}
		if p.Failures > 0 {
			sum.Failing++
			if len(sum.FailingParts) < MaxFailingParts {
				sum.FailingParts = append(sum.FailingParts, PartState{Part: p.Part(), Cursor: tp(p.Cursor), Failures: p.Failures,
					LastError: p.LastError, RetryAt: tp(p.RetryAt)})
			}
		}
	}
	sum.LeastAdvancedCursor = tp(least)
	if r.Cursor == nil {
		r.Cursor = sum.LeastAdvancedCursor
	}
	r.Covered = coverage(all)
	r.Parts = sum
}

func coverage(rs []state.Range) Coverage {
	c := Coverage{Ranges: len(rs)}
	for _, r := range rs {
		if c.Earliest == nil || r.From.Before(*c.Earliest) {
			c.Earliest = tp(r.From)
		}
		if c.Latest == nil || r.To.After(*c.Latest) {
			c.Latest = tp(r.To)
		}
	}
	return c
}

// tp is t in UTC, or nil for none (the state stores "none" as its
// earliest time).
func tp(t time.Time) *time.Time {
	if t.Year() < 1970 {
		return nil
	}
	u := t.UTC()
	return &u
}

func lag(now, t time.Time) *int64 {
	s := int64(now.Sub(t) / time.Second)
	return &s
}

func outputStates(cfg *config.Config, outputs []string, spools []state.SpoolInfo) []OutputState {
	backlog := map[string]state.SpoolInfo{}
	for _, s := range spools {
		backlog[s.Output] = s
	}
	var out []OutputState
	add := func(name string, configured bool) {
		o := OutputState{Output: name, Configured: configured}
		if configured {
			o.Type = config.OutputType(name, cfg.Outputs[name])
		}
		if b, ok := backlog[name]; ok {
			o.Spool = SpoolState{Records: b.Records, Batches: b.Batches, Bytes: b.Bytes}
		}
		dir, err := DeadLetterDir(cfg, name)
		o.DeadLetters.Dir = dir
		if err == nil {
			o.DeadLetters.Files, err = DeadLetterFiles(dir, name)
		}
		if err != nil {
			o.DeadLetters.Error = err.Error()
		}
		for _, f := range o.DeadLetters.Files {
			o.DeadLetters.Lines += f.Lines
		}
		out = append(out, o)
	}
	known := map[string]bool{}
	for _, n := range outputs {
		known[n] = true
		add(n, true)
	}
	for _, s := range spools {
		if !known[s.Output] {
			add(s.Output, false)
		}
	}
	return out
}

// OutputNames lists the outputs a run of cfg delivers to: the enabled
// outputs of the config, sorted, else "files".
func OutputNames(cfg *config.Config) ([]string, error) {
	var names []string
	for n, node := range cfg.Outputs {
		on, err := config.Enabled(node)
		if err != nil {
			return nil, fmt.Errorf("outputs.%s.%w", n, err)
		}
		if on {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		names = []string{"files"}
	}
	return names, nil
}

// DeadLetterDir is the folder where the output name of cfg keeps its
// dead letters: its dead_letter_dir, else <state file's folder>/deadletter.
func DeadLetterDir(cfg *config.Config, name string) (string, error) {
	def := filepath.Join(filepath.Dir(cfg.StateFile), sink.DefaultDeadLetterDir)
	node, ok := cfg.Outputs[name]
	if !ok {
		return def, nil
	}
	f, ok := sink.Lookup(config.OutputType(name, node))
	if !ok {
		return def, nil
	}
	settings, err := sinkSettings(cfg, name, f)
	if err != nil {
		return def, err
	}
	if d, ok := settings.(sink.DeadLetterDirer); ok && d.DeadLetterDirectory() != "" {
		return d.DeadLetterDirectory(), nil
	}
	return def, nil
}

// Folders under a dead-letter folder used by `deadletters retry`.
const (
	RetryingDir = "retrying" // files being retried (resumed by the next retry)
	RetriedDir  = "retried"  // files whose every record was sent again or dead-lettered again
)

// DeadLetterFiles lists the dead-letter files of output name in dir
// (and those a retry stopped part-way through, in dir/retrying), oldest
// first, with their line counts and first reason.
func DeadLetterFiles(dir, name string) ([]DeadLetterFile, error) {
	var out []DeadLetterFile
	for _, d := range []struct {
		dir      string
		retrying bool
	}{{filepath.Join(dir, RetryingDir), true}, {dir, false}} {
		paths, err := filepath.Glob(delivery.DeadLetterGlob(d.dir, name))
		if err != nil {
			return nil, err
		}
		sort.Strings(paths)
		for _, p := range paths {
			f, err := readDeadLetterFile(p)
			if errors.Is(err, os.ErrNotExist) {
				continue // moved meanwhile
			}
			if err != nil {
				return out, err
			}
			f.Retrying = d.retrying
			out = append(out, f)
		}
	}
	return out, nil
}

func readDeadLetterFile(path string) (DeadLetterFile, error) {
	df := DeadLetterFile{Path: path}
	f, err := os.Open(path)
	if err != nil {
		return df, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		df.Bytes += int64(len(line))
		if t := bytes.TrimSpace(line); len(t) > 0 {
			df.Lines++
			if df.Lines == 1 {
				if l, perr := delivery.ParseDeadLetterLine(t); perr == nil {
					df.FirstReason = l.Reason
				} else {
					df.FirstReason = "(unreadable line)"
				}
			}
		}
		if err == io.EOF {
			return df, nil
		}
		if err != nil {
			return df, fmt.Errorf("reading %s: %w", path, err)
		}
	}
}

// validOutput checks that name is an output of cfg, naming the
// configured ones otherwise.
func validOutput(cfg *config.Config, name string) error {
	names, err := OutputNames(cfg)
	if err != nil {
		return err
	}
	for _, n := range names {
		if n == name {
			return nil
		}
	}
	return fmt.Errorf("output %q is not configured for tenant %s; configured outputs: %s", name, cfg.TenantName(), strings.Join(names, ", "))
}
