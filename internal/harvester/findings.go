package harvester

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/clock"
	"github.com/defenderharvester/defenderharvester/internal/detect"
	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/sink"
)

// FindingsTable is where detect --emit writes.
const FindingsTable = "DefenderHarvesterFindings"

// FindingRecords turns findings into records of FindingsTable. A
// finding's id is derived from the rule and what it matched (the first
// matching record, or the threshold group and its first record), so
// running the rules again over the same data gives the same ids and
// downstream dedup drops the repeats.
func FindingRecords(tenant string, fs []detect.Finding, now time.Time) ([]record.Record, error) {
	out := make([]record.Record, 0, len(fs))
	for _, f := range fs {
		if f.Tenant == "" {
			f.Tenant = tenant
		}
		raw, err := json.Marshal(f)
		if err != nil {
			return nil, fmt.Errorf("finding of %s: %w", f.RuleID, err)
		}
		out = append(out, record.Record{
			Tenant: f.Tenant, Source: "detect", Table: FindingsTable, ID: record.StableID(f.Key(), f.FirstSeen.UTC().Format(time.RFC3339Nano)),
			Time: f.LastSeen, HarvestedAt: now.UTC(), Raw: raw,
		})
	}
	return out, nil
}

// Emit writes records of one table to the configured outputs (req.Outputs
// or every configured one): each is started, written and shut down; an
// error names every output that did not take them. Nothing is spooled:
// the caller runs again (the ids are stable).
func Emit(ctx context.Context, req Request, table string, recs []record.Record) error {
	if len(recs) == 0 {
		return nil
	}
	if req.Now == nil {
		req.Now = time.Now
	}
	if req.Getenv == nil {
		req.Getenv = func(string) string { return "" }
	}
	if req.Logger == nil {
		req.Logger = slog.New(slog.DiscardHandler)
	}
	n, err := NewNet(req.Config, clock.NewSkewMeter(), req.Logger)
	if err != nil {
		return err
	}
	sinks, err := buildSinks(req.Config, req, n.Transport)
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range sinks {
		errs = append(errs, emitTo(ctx, s, table, recs, req.Logger))
	}
	return errors.Join(errs...)
}

func emitTo(ctx context.Context, s sink.Sink, table string, recs []record.Record, log *slog.Logger) error {
	if err := s.Start(ctx); err != nil {
		return fmt.Errorf("output %s cannot start: %w", s.Name(), err)
	}
	werr := s.Write(ctx, table, recs)
	serr := shutdown([]sink.Sink{s}, log)
	switch {
	case werr != nil:
		return fmt.Errorf("output %s: %w", s.Name(), werr)
	case serr != nil:
		return serr
	}
	return nil
}
