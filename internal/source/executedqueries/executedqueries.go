// Package executedqueries harvests the report of executed advanced hunting
// queries — portal, API and custom detection runs, with who ran what
// (event source, table MdeExecutedQueries).
package executedqueries

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil"
)

const (
	// Name is the source's config key.
	Name = "executedqueries"
	// Table is where its records land.
	Table = "MdeExecutedQueries"
	// Path is the portal endpoint (POST).
	Path = "/apiproxy/hunting/huntingService/reports"
	// apiLimit is the longest window the service accepts.
	apiLimit = 30 * 24 * time.Hour
	// minSplit stops halving windows whose report looks truncated.
	minSplit = time.Minute
)

// Config are the source's settings.
type Config struct {
	srcutil.Windowing `yaml:",inline"`
}

// NewConfig returns the defaults. The report is built from query telemetry
// after a query ends (queries run up to minutes), and no public source
// states its latency: the window end stays 15 minutes behind now and 2
// hours are re-read. The overlap costs no request (each run is one POST per
// chunk), only rows that dedup drops.
func NewConfig() *Config {
	return &Config{Windowing: srcutil.Windowing{
		Overlap: source.Duration(2 * time.Hour), MaxWindow: source.Duration(24 * time.Hour),
		Delay: source.Duration(15 * time.Minute),
	}}
}

// Validate checks the settings at config load; errors name the key.
func (c *Config) Validate() error { return c.CheckValues(apiLimit) }

// Page is one decoded report.
type Page struct {
	Count int64 // -1 when the report has no total
	Items []source.Item
}

// Shape: no public source shows this response; the portal's report pages
// elsewhere use {"Count":n,"Results":[…]}, and every list envelope is
// accepted.
var Shape = srcutil.ListShape{}

// DecodePage reads one report (see srcutil.ReadList); every query needs an
// id (QueryId, queryId, ExecutionId, executionId, Id, id) and a time
// (Timestamp, timestamp, StartTime, startTime, ExecutionTime,
// executionTime, Time, time).
func DecodePage(body []byte) (Page, error) {
	l, items, err := fields.List(Name, body, Shape)
	if err != nil {
		return Page{}, err
	}
	return Page{Count: l.Total, Items: items}, nil
}

// fields: QueryId is one per execution (the emulator's reading of the
// report), so it alone is the id. The other id candidates are not known to
// be per execution, so their id also takes the time.
var fields = srcutil.EventFields{
	ID:   []string{"QueryId", "queryId", "ExecutionId", "executionId", "Id", "id"},
	Time: []string{"Timestamp", "timestamp", "StartTime", "startTime", "ExecutionTime", "executionTime", "Time", "time"},
	StableID: func(id, ts string, f map[string]json.RawMessage) string {
		if _, ok := f["QueryId"]; ok {
			return record.StableID(Name, id)
		}
		if _, ok := f["queryId"]; ok {
			return record.StableID(Name, id)
		}
		return record.StableID(Name, id, ts)
	},
}

type src struct {
	srcutil.Meta
	portal mde.Portal
	cfg    Config
}

func (s *src) Windowing() source.Windowing { return s.cfg.Rules() }

// Fetch requests the report per chunk of at most max_window.
func (s *src) Fetch(ctx context.Context, w source.Window, emit source.Emit) error {
	for _, c := range srcutil.Chunks(w, s.cfg.MaxWindow.D()) {
		if err := s.fetch(ctx, c, emit); err != nil {
			return err
		}
	}
	return nil
}

// fetch reads one window. The report has no paging; if its Count says it
// holds more rows than it returned, the window is halved and re-read
// rather than emitting a truncated report.
func (s *src) fetch(ctx context.Context, w source.Window, emit source.Emit) error {
	body, err := s.portal.Post(ctx, Path, nil, map[string]string{
		"startTime": mde.FormatPortalTime(w.From), "endTime": mde.FormatPortalTimeCeil(w.To),
	})
	if err != nil {
		return fmt.Errorf("%s %s–%s: %w", Name, mde.FormatPortalTime(w.From), mde.FormatPortalTime(w.To), err)
	}
	p, err := DecodePage(body)
	if err != nil {
		return err
	}
	if p.Count > int64(len(p.Items)) {
		half := w.To.Sub(w.From) / 2
		if half < minSplit {
			return fmt.Errorf("%s: the report for %s–%s holds %d queries but returned %d; it cannot be split further", Name,
				mde.FormatPortalTime(w.From), mde.FormatPortalTime(w.To), p.Count, len(p.Items))
		}
		mid := w.From.Add(half)
		if err := s.fetch(ctx, source.Window{From: w.From, To: mid}, emit); err != nil {
			return err
		}
		return s.fetch(ctx, source.Window{From: mid, To: w.To}, emit)
	}
	return srcutil.EmitAll(ctx, emit, p.Items)
}

func init() {
	source.Register(source.Factory{
		Schedule: "15m", // hunting queries; the service itself lags ~15 minutes
		Name:     Name, Table: Table, Kind: source.Event, API: "portal", DefaultEnabled: true,
		Description: "Executed advanced hunting queries (portal, API, custom detections) with who ran them",
		NewConfig:   func() any { return NewConfig() },
		New: func(deps source.Deps, cfg any) (source.Source, error) {
			c, err := srcutil.Settings(Name, cfg, NewConfig)
			if err != nil {
				return nil, err
			}
			if err := srcutil.NeedPortal(Name, deps); err != nil {
				return nil, err
			}
			return &src{Meta: srcutil.NewMeta(Name, Table, source.Event), portal: deps.Portal, cfg: *c}, nil
		},
	})
}
