// Package source defines what a data source is and keeps the registry of all
// of them. A source knows one kind of Defender data: where it lives, how to
// page it, how to cut a time window, which field is its time and its id. It
// emits items; it never writes output and never touches state.
package source

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/registry"
)

// Kind tells the pipeline how to treat a source.
type Kind int

const (
	// Event sources read a time window [From, To) and keep a cursor.
	Event Kind = iota + 1
	// Snapshot sources read the whole state each time; the pipeline turns
	// the difference from the last snapshot into change records.
	Snapshot
)

func (k Kind) String() string {
	switch k {
	case Event:
		return "event"
	case Snapshot:
		return "snapshot"
	}
	return "unknown"
}

// Window is a half-open time interval [From, To).
type Window struct {
	From, To time.Time
}

// Contains reports whether t lies in [From, To).
func (w Window) Contains(t time.Time) bool {
	return !t.Before(w.From) && t.Before(w.To)
}

// Item is what a source emits.
//
// Event sources set ID (a stable id, see record.StableID) and Time (the
// event time, UTC). Snapshot sources set Key (the natural key of the item in
// the snapshot, e.g. a rule id) and leave Time zero.
type Item struct {
	ID   string
	Key  string
	Time time.Time
	Raw  json.RawMessage
	// Checked says Raw came out of a validating JSON decoder, so the
	// pipeline need not scan it again.
	Checked bool
	// Table, when set, is the table this item goes to instead of the
	// source's (a source writing several tables, one per content type).
	Table string
	// EventTime, when set, is the record's time (TimeGenerated) while
	// Time stays what windows are cut on — e.g. an audit record's
	// CreationTime in a listing filtered on when its blob appeared.
	EventTime time.Time
	// Mark, set on an item without Raw, is a progress mark and not an
	// event: the source reads its window newest first and has emitted
	// every item of the window later than Mark. Once those are
	// delivered the pipeline counts (Mark, window end) as covered, so an
	// interrupted window resumes at Mark instead of being read again
	// from its end, and the ids it delivered need not be remembered.
	Mark time.Time
}

// IsMark reports whether it is a progress mark rather than an event.
func (it Item) IsMark() bool { return !it.Mark.IsZero() && it.Raw == nil }

// Emit hands one item to the pipeline. It returns an error when the
// pipeline cannot take more (context cancelled, sink failure); the source
// must stop and return that error.
type Emit func(ctx context.Context, it Item) error

// Source is the common part of every source.
type Source interface {
	Name() string  // CLI/config key, e.g. "actioncenter"
	Table() string // destination table, e.g. "MdeMachineActions"
	Kind() Kind
}

// EventSource reads a time window.
type EventSource interface {
	Source
	// Fetch emits every item whose time lies in w. It may also emit items
	// outside w (APIs often treat bounds inclusively); the pipeline drops
	// those. Order does not matter.
	Fetch(ctx context.Context, w Window, emit Emit) error
	// Windowing says how the pipeline should cut windows for this source.
	Windowing() Windowing
}

// Windowing are the per-source window rules.
type Windowing struct {
	// Overlap is re-read before the cursor on every run, to catch late
	// arrivals; duplicates it causes are removed by id.
	Overlap time.Duration
	// MaxWindow splits long ranges (backfills) into chunks; the cursor is
	// committed after each chunk. Zero means no limit.
	MaxWindow time.Duration
	// Delay keeps the window end this far behind now (ingestion latency).
	Delay time.Duration
	// Remember, when longer than twice the overlap, is how long
	// delivered ids are kept behind the newest time read: for services
	// that deliver the same record again much later (audit blobs
	// re-published days after), so it is dropped as a duplicate.
	Remember time.Duration
}

// Parallel is an event source whose windows — and parts — may be read by
// several workers at once; each worker reads one window of one part.
type Parallel interface {
	// Workers is how many windows are read at once (at least 1).
	Workers() int
}

// SnapshotSource reads the whole current state.
type SnapshotSource interface {
	Source
	// Snapshot emits every item of the current state, each with a unique
	// Key. It must return an error rather than emit a partial snapshot
	// silently: the pipeline only computes removals from complete ones.
	Snapshot(ctx context.Context, emit Emit) error
}

// Attribution names the payload fields of a snapshot source that say who
// changed an item and when, so its change records can carry ChangedBy and
// ChangedAt. Fields are top-level payload keys, tried in order; the first
// non-empty one wins. EditedBy/EditedAt describe the last edit (for
// example LastUpdatedBy, LastUpdateTime); CreatedBy/CreatedAt the
// creation, used for added items.
type Attribution struct {
	EditedBy, EditedAt   []string
	CreatedBy, CreatedAt []string
}

// Attributed is implemented by snapshot sources whose items record their
// last editor and edit time.
type Attributed interface {
	Attribution() Attribution
}

// Deps are the shared things a source is built with.
type Deps struct {
	Portal   mde.Portal    // the portal service API (security.microsoft.com/apiproxy)
	API      mde.PublicAPI // the public Defender API (api.security.microsoft.com)
	TenantID string
	Logger   *slog.Logger
	Now      func() time.Time
	// ActivityFeed builds the Office 365 Management Activity API client
	// of the tenant for a cloud (commercial, gcc, gcchigh, dod) and a
	// PublisherIdentifier ("": the tenant id), with the public API's
	// credentials asked for https://manage.office.com/.default. nil when
	// those credentials are not configured.
	ActivityFeed func(cloud, publisher string) (mde.ActivityFeed, error)
	// Graph is Microsoft Graph (graph.microsoft.com) with the public
	// API's credentials asked for https://graph.microsoft.com/.default;
	// nil when those credentials are not configured.
	Graph mde.GraphAPI
	// TenantName is the tenant's name in a multi-tenant config ("" in a
	// single-tenant one), e.g. for the auditlog webhook address's
	// {tenant} placeholder.
	TenantName string
	// Getenv reads the process environment (secrets sources may take
	// from a variable, such as the auditlog webhook AuthID); nil means
	// no environment.
	Getenv func(string) string
}

// Factory describes and builds one source. Each source package registers
// its factory in init().
type Factory struct {
	Name  string
	Table string
	// Tables are the other tables the source writes (Item.Table), so
	// table descriptions and Sentinel setup know them.
	Tables      []string
	Kind        Kind
	Description string // one line, shown by `sources` listings and docs
	// API names the API family the source needs: "portal" or "public".
	API string
	// DefaultEnabled says whether "all" includes it without explicit config.
	DefaultEnabled bool
	// Schedule is how often `serve` runs it unless the config says
	// otherwise (sources.<name>.schedule): an interval such as 5m or a
	// cron expression. Empty means DefaultSchedule.
	Schedule string
	// NewConfig returns a pointer to the source's config struct with its
	// defaults filled in; the config loader decodes the user's settings
	// into it (unknown keys are errors). May be nil when the source has
	// no settings.
	NewConfig func() any
	// New builds the source from deps and the decoded config.
	New func(deps Deps, cfg any) (Source, error)
}

// DefaultSchedule is the schedule of a source that declares none.
const DefaultSchedule = "1h"

// ScheduleOrDefault is f's schedule, or DefaultSchedule.
func (f Factory) ScheduleOrDefault() string {
	if f.Schedule == "" {
		return DefaultSchedule
	}
	return f.Schedule
}

var factories = registry.New("source", func(f Factory) string { return f.Name })

// Register adds a source factory. It panics on a duplicate name because
// that is a programming error caught by any test.
func Register(f Factory) { factories.Register(f) }

// Lookup returns the factory for name.
func Lookup(name string) (Factory, bool) { return factories.Lookup(name) }

// All returns every registered factory, sorted by name.
func All() []Factory { return factories.All() }

// PartialError is what a snapshot source built from several endpoints
// returns when some of them (its parts) could not be read while the
// others were: it emits the items of the parts it read and returns this.
// The pipeline then reports changes only among the parts that were read,
// keeps the stored items of the failed parts as they were (no Removed
// record for them) and reports the source as failed.
//
// A stored item belongs to part P when its key is P or starts with P+"/".
type PartialError struct {
	Failed []string // the parts not read
	Err    error    // why (all parts' errors joined)
	// NotServed says the parts are not served in this mode at all (e.g.
	// the legacy hosts never had them): their stored items are kept as
	// they are, and the source does not count as failed.
	NotServed bool
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("parts not read (%s): %v", strings.Join(e.Failed, ", "), e.Err)
}

func (e *PartialError) Unwrap() error { return e.Err }

// Owns reports whether the stored item key belongs to one of the failed
// parts.
func (e *PartialError) Owns(key string) bool {
	for _, p := range e.Failed {
		if key == p || strings.HasPrefix(key, p+"/") {
			return true
		}
	}
	return false
}

// PartitionedSource is an event source whose data falls into independent
// parts — the timeline's devices. The pipeline keeps a cursor, covered
// ranges, seen ids and a failure count per part, so one failing part
// neither holds back the others nor makes their seen ids pile up while it
// is stuck, and it backs off that part alone.
type PartitionedSource interface {
	EventSource
	// Parts lists the parts to read in this run (the configured devices,
	// or the tenant's device list). Part names are stable ids without
	// "/".
	Parts(ctx context.Context) ([]string, error)
	// FetchPart is Fetch for one part.
	FetchPart(ctx context.Context, part string, w Window, emit Emit) error
}
