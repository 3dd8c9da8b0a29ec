package service

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/harvester"
)

// handler serves /metrics, /healthz and /readyz (the metrics package)
// and /status: every job's schedule and last outcome, and each tenant's
// phase, as JSON.
func (s *Service) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", s.metrics.Handler())
	mux.HandleFunc("GET /status", s.serveStatus)
	mux.HandleFunc("GET /state", s.serveState)
	return mux
}

// jobJSON is one job in /status.
type jobJSON struct {
	Tenant    string     `json:"tenant"`
	Source    string     `json:"source"`
	Schedule  string     `json:"schedule"`
	Next      *time.Time `json:"next,omitempty"`
	Running   bool       `json:"running"`
	Waiting   bool       `json:"waiting"`
	LastStart *time.Time `json:"last_start,omitempty"`
	LastEnd   *time.Time `json:"last_end,omitempty"`
	LastError string     `json:"last_error,omitempty"`
	Failures  int        `json:"failures_in_a_row"`
	Runs      int        `json:"runs"`
	Skipped   int        `json:"skipped"`
}

// tenantJSON is one tenant in /status.
type tenantJSON struct {
	Name  string `json:"name"`
	Phase string `json:"phase"`
	Error string `json:"error,omitempty"`
}

func (s *Service) serveStatus(w http.ResponseWriter, _ *http.Request) {
	var out struct {
		Tenants []tenantJSON `json:"tenants"`
		Jobs    []jobJSON    `json:"jobs"`
	}
	for _, t := range s.tenants {
		t.mu.Lock()
		tj := tenantJSON{Name: t.name, Phase: t.phase}
		if t.err != nil {
			tj.Error = t.err.Error()
		}
		t.mu.Unlock()
		out.Tenants = append(out.Tenants, tj)
	}
	for _, j := range s.sched.Status() {
		jj := jobJSON{Tenant: j.Tenant, Source: j.Source, Schedule: j.Spec, Running: j.Running, Waiting: j.Waiting,
			Next: timePtr(j.Next), LastStart: timePtr(j.LastStart), LastEnd: timePtr(j.LastEnd),
			Failures: j.Failures, Runs: j.Runs, Skipped: j.Skipped}
		if j.LastErr != nil {
			jj.LastError = j.LastErr.Error()
		}
		out.Jobs = append(out.Jobs, jj)
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// serveState answers what `state show` prints, for the tenants this
// replica owns (the tools cannot open a state file a service holds).
func (s *Service) serveState(w http.ResponseWriter, _ *http.Request) {
	doc := harvester.StateDoc{Tenants: []harvester.TenantState{}}
	for _, t := range s.tenants {
		t.mu.Lock()
		opened, phase, terr := t.opened, t.phase, t.err
		t.mu.Unlock()
		var ts harvester.TenantState
		var err error
		if opened != nil {
			// Reads go through bbolt's own locking; a run may commit
			// meanwhile, which is fine for a status page.
			ts, err = harvester.StateReport(t.cfg, opened.Store(), s.opts.Now())
		} else {
			ts = harvester.TenantState{Tenant: t.name, TenantID: t.cfg.TenantID, StateFile: t.cfg.StateFile, GeneratedAt: s.opts.Now().UTC()}
			err = fmt.Errorf("not open here (%s)", phase)
			if terr != nil {
				err = fmt.Errorf("not open here (%s: %v)", phase, terr)
			}
		}
		if err != nil {
			ts.Error = err.Error()
		}
		doc.Tenants = append(doc.Tenants, ts)
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(doc)
}
