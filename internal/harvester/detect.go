package harvester

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/defenderharvester/defenderharvester/detections"
	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/detect"
	"github.com/defenderharvester/defenderharvester/internal/record"
)

// detectKeep is how long a long-lived evaluator (serve) remembers
// matches: longer than any rule's threshold bin, so a threshold counts
// records across the runs of its bin.
const detectKeep = 48 * time.Hour

// inProcess runs the detection pack over what the pipeline delivers
// (detect.enabled): it reads every batch of the tables the rules read
// (pipeline.Options.Tap) and reports what fired after each run.
type inProcess struct {
	mu     sync.Mutex
	ev     *detect.Evaluator
	tables map[string]bool
	emit   bool
}

// newInProcess loads the pack (limited to cfg.Rules) and the allow-lists.
func newInProcess(cfg config.Detect) (*inProcess, error) {
	rules, err := detections.Rules()
	if err != nil {
		return nil, fmt.Errorf("detect: the built-in pack does not load (a bug): %w", err)
	}
	if len(cfg.Rules) > 0 {
		if rules, err = detect.Select(rules, cfg.Rules); err != nil {
			return nil, fmt.Errorf("detect.rules: %w (defenderharvester detect --list)", err)
		}
	}
	lists, err := detect.LoadLookups(cfg.Lookups)
	if err != nil {
		return nil, fmt.Errorf("detect.lookups: %w", err)
	}
	ev := detect.NewEvaluator(rules, lists)
	d := &inProcess{ev: ev, tables: map[string]bool{}, emit: cfg.Emits()}
	for _, t := range ev.Tables() {
		d.tables[t] = true
	}
	return d, nil
}

// tap is the pipeline's Tap: records of the rules' tables are evaluated.
func (d *inProcess) tap(table string, recs []record.Record) {
	if !d.tables[table] {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range recs {
		if rec, ok := detect.FromRecord(r); ok {
			d.ev.Add(rec)
		}
	}
}

// report takes what fired since the last report, logs each finding, and
// — with emit — writes them to the outputs; it forgets matches older
// than detectKeep.
func (t *Tenant) reportFindings(ctx context.Context) []detect.Finding {
	d := t.detect
	if d == nil {
		return nil
	}
	d.mu.Lock()
	fs := d.ev.TakeNew()
	d.ev.Prune(t.req.Now().Add(-detectKeep))
	d.mu.Unlock()
	for _, f := range fs {
		t.log.Warn("detection fired", "rule", f.RuleID, "severity", f.Severity, "title", f.Title, "actor", f.Actor,
			"count", f.Count, "first_seen", f.FirstSeen, "data_set", f.Table)
	}
	if !d.emit || len(fs) == 0 {
		return fs
	}
	recs, err := FindingRecords(t.tenant, fs, t.req.Now())
	if err == nil {
		err = t.p.Deliver(ctx, FindingsTable, recs)
	}
	if err != nil {
		t.log.Error("the findings could not be written to the outputs; they are in the log above", "findings", len(fs), "err", err)
	}
	return fs
}
