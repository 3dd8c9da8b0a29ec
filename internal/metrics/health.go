package metrics

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Ready reports whether the service is healthy enough to be relied on:
// not when a source has failed FailuresUntilNotReady runs in a row or a
// tenant's portal session has expired. Each reason names the tenant and
// the source, and the error kind (never the error's text, which may quote
// a server).
func (m *Metrics) Ready() (ok bool, reasons []string) {
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, s := range m.sources {
		if s.failures >= m.opts.FailuresUntilNotReady {
			reasons = append(reasons, fmt.Sprintf("tenant %q source %q: failed %d times in a row (last error: %s)", k.tenant, k.source, s.failures, s.lastKind))
		}
	}
	for tenant, s := range m.sessions {
		if !s.expired(now) {
			continue
		}
		r := fmt.Sprintf("tenant %q: portal session expired", tenant)
		if len(s.seenExpired) > 0 {
			srcs := make([]string, 0, len(s.seenExpired))
			for src := range s.seenExpired {
				srcs = append(srcs, fmt.Sprintf("%q", src))
			}
			slices.Sort(srcs)
			r += " (refused to source " + strings.Join(srcs, ", ") + ")"
		}
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	return len(reasons) == 0, reasons
}

// Handler serves /metrics (the registry, Prometheus text or protobuf),
// /healthz (200 "ok" while Options.Alive says the scheduler loop runs)
// and /readyz (200 "ok", or 503 with one reason a line; JSON
// {"ready":…,"reasons":[…]} when the client accepts application/json).
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog: slogPrintln{m}, ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		var err error
		if m.opts.Alive != nil {
			err = m.opts.Alive()
		}
		if err != nil {
			probe(w, r, http.StatusServiceUnavailable, false, []string{"not alive: " + err.Error()})
			return
		}
		probe(w, r, http.StatusOK, true, nil)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ok, reasons := m.Ready()
		code := http.StatusOK
		if !ok {
			code = http.StatusServiceUnavailable
		}
		probe(w, r, code, ok, reasons)
	})
	return mux
}

// probe writes a probe's answer as text lines, or JSON when asked for.
func probe(w http.ResponseWriter, r *http.Request, code int, ok bool, reasons []string) {
	w.Header().Set("Cache-Control", "no-store")
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		if reasons == nil {
			reasons = []string{}
		}
		_ = json.NewEncoder(w).Encode(struct {
			Ready   bool     `json:"ready"`
			Reasons []string `json:"reasons"`
		}{ok, reasons})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	if ok {
		_, _ = w.Write([]byte("ok\n"))
		return
	}
	_, _ = w.Write([]byte(strings.Join(reasons, "\n") + "\n"))
}

// slogPrintln adapts the logger to promhttp's ErrorLog.
type slogPrintln struct{ m *Metrics }

func (l slogPrintln) Println(v ...any) {
	l.m.opts.Logger.Error("serving /metrics failed", "err", fmt.Sprint(v...))
}
