package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// req is one request on its way through a route.
type req struct {
	w      http.ResponseWriter
	r      *http.Request
	host   string // lower-case host name, no port
	vars   map[string]string
	now    time.Time // data clock, read once per request
	claims *claims   // bearer token, when one was presented and valid
	scc    string    // the portal session cookie, when it names a live session
	upn    string    // the signed-in user (portal session or user token)
	svc    service
	// bodyBytes is the request body size as received (receivers' accounting).
	bodyBytes int
}

// route is one method+path of a service. Literal segments match
// case-insensitively (the services are ASP.NET, which routes that way);
// "{name}" matches one non-empty segment.
type route struct {
	method  string
	pattern string
	segs    []string
	sub     string // fault sub-family, e.g. "timeline"
	h       func(*req)
}

type routeTable []route

func (rt *routeTable) add(method, pattern, sub string, h func(*req)) {
	*rt = append(*rt, route{method: method, pattern: pattern, segs: strings.Split(pattern, "/"), sub: sub, h: h})
}

// match finds the route for path. found reports a path match; when it is
// true but r is nil, the method is not allowed.
func (rt routeTable) match(method, path string) (r *route, vars map[string]string, found bool) {
	segs := strings.Split(path, "/")
	for i := range rt {
		v, ok := matchSegs(rt[i].segs, segs)
		if !ok {
			continue
		}
		found = true
		if rt[i].method == method || (method == http.MethodHead && rt[i].method == http.MethodGet) {
			return &rt[i], v, true
		}
	}
	return nil, nil, found
}

func matchSegs(pat, segs []string) (map[string]string, bool) {
	if len(pat) != len(segs) {
		return nil, false
	}
	var vars map[string]string
	for i, p := range pat {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			if segs[i] == "" {
				return nil, false
			}
			if vars == nil {
				vars = map[string]string{}
			}
			vars[p[1:len(p)-1]] = segs[i]
			continue
		}
		if !strings.EqualFold(p, segs[i]) {
			return nil, false
		}
	}
	return vars, true
}

// service is one emulated party: its routes, how it authenticates and
// how it prints errors.
type service struct {
	family string
	routes routeTable
	// auth checks credentials; it writes the failure response itself and
	// returns false.
	auth func(*req) bool
	// fail writes an error in the service's envelope.
	fail func(q *req, status int, code, msg string)
	// receiver names the receiver ("sentinel", "splunk") whose accounting
	// and outage switch apply; empty for the Microsoft read services.
	receiver string
}

var (
	reLegacy   = regexp.MustCompile(`^(wdatpprd|m365d-autoir-ac-prd|m365d-hunting-api-prd|m365duseprd)-([a-z0-9]+)\.securitycenter\.windows\.com$`)
	reLocation = regexp.MustCompile(`^[a-z0-9]{1,16}$`)
	reMCAS     = regexp.MustCompile(`^[a-z0-9-]+\.access\.mcas\.ms$`)
	rePublic   = regexp.MustCompile(`^((us|eu|uk|au|swa|ina)\.)?api\.security\.microsoft\.com$`)
)

// serviceFor maps a host to its service; ok is false for unknown hosts.
func (t *Tenant) serviceFor(host string) (service, bool) {
	switch {
	case host == "login.microsoftonline.com":
		return t.entraService(), true
	case host == "security.microsoft.com" || host == "mto.security.microsoft.com":
		return t.portalService(), true
	case rePublic.MatchString(host) || host == "api.securitycenter.microsoft.com":
		return t.publicService(), true
	case host == "api-eu.securitycenter.windows.com" || host == "api-us.securitycenter.windows.com":
		return t.legacyService("api"), true
	case reIngest.MatchString(host):
		return t.logsIngestionService(), true
	case host == hecHost || strings.HasSuffix(host, ".splunkcloud.com"):
		return t.hecService(), true
	case reMCAS.MatchString(host):
		return t.mcasService(), true
	case host == ManageHost:
		return t.manageService(), true
	case host == GraphHost:
		return t.graphService(), true
	}
	if m := reLegacy.FindStringSubmatch(host); m != nil {
		return t.legacyService(m[1]), true
	}
	return service{}, false
}

func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// buildHandler is the handler of every tenant of the set (built on the
// first): it stamps Date, logs the request, and hands it to the tenant the
// request's credentials name (README "Several tenants").
func (t *Tenant) buildHandler() http.Handler {
	rl := newRequestLog(t.opts.RequestLog)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		host := hostOnly(r.Host)
		now := t.now().UTC()
		// Every answer, errors and faults included, carries the emulator's
		// own wall-clock time (Clock + ClockSkew): clients measure clock
		// skew from it. The skew shifts the data clock by the same amount,
		// so the offset measured here is also the offset of what is visible.
		w.Header().Set("Date", t.clock().UTC().Format(http.TimeFormat))
		sw := &statusWriter{ResponseWriter: w}
		if rl != nil {
			defer func() { rl.write(began, r, host, sw) }()
		}
		t.set.pick(sw, r, host).handle(sw, r, host, now)
	})
}

// handle serves one request as this tenant.
func (t *Tenant) handle(sw *statusWriter, r *http.Request, host string, now time.Time) {
	svc, ok := t.svcCache[host]
	if !ok {
		svc, ok = t.serviceFor(host)
	}
	if !ok {
		t.log.Debug("request for a host this tenant does not emulate", "host", host, "path", r.URL.Path)
		http.Error(sw, fmt.Sprintf("misdirected request: %q is not an emulated Microsoft host", host), http.StatusMisdirectedRequest)
		return
	}
	rt, vars, found := svc.routes.match(r.Method, r.URL.Path)
	sub := ""
	if rt != nil {
		sub = rt.sub
	}
	t.count(svc.family, sub)
	q := &req{w: sw, r: r, host: host, vars: vars, now: now, svc: svc}
	if !sleepCtx(r.Context(), t.opts.Latency) {
		return
	}
	var rs *receiverState
	if svc.receiver != "" {
		rs = t.receivers[svc.receiver]
	}
	defer func() {
		if rs != nil {
			n := q.bodyBytes
			if n == 0 && r.ContentLength > 0 {
				n = int(min(r.ContentLength, 1<<40))
			}
			rs.observe(sw.status, n)
		}
		t.log.Debug("request", "family", svc.family, "method", r.Method, "host", host, "path", r.URL.Path, "status", sw.status)
	}()
	if rs != nil && rs.isDown() {
		// An outage: the connection dies before any response.
		dropConn(q.w, true)
		return
	}
	if sub == FamilyTimeline && t.opts.ThrottleConcurrency > 0 {
		// The service throttles a caller with too many timeline requests
		// at once; the refused ones are not in flight.
		if t.tlInFlight.Add(1) > int64(t.opts.ThrottleConcurrency) {
			t.tlInFlight.Add(-1)
			t.faults.count(Fault429)
			ra := t.opts.ThrottleRetryAfter
			if ra <= 0 {
				ra = time.Second
			}
			t.applyFault(q, &faultDecision{kind: Fault429, retryAfter: ra}, rt)
			return
		}
		defer t.tlInFlight.Add(-1)
	}
	if f := t.faults.decide(svc.family, sub); f != nil {
		if !sleepCtx(r.Context(), f.delay) {
			return
		}
		if f.kind != "" && t.applyFault(q, f, rt) {
			return
		}
	}
	t.serve(q, rt, found)
}

// serve runs the route after the strict checks: 404, 405, auth.
func (t *Tenant) serve(q *req, rt *route, found bool) {
	switch {
	case rt == nil && found:
		q.w.Header().Set("Allow", allowed(q.svc.routes, q.r.URL.Path))
		q.svc.fail(q, http.StatusMethodNotAllowed, "MethodNotAllowed", fmt.Sprintf("The requested resource does not support http method '%s'.", q.r.Method))
		return
	case rt == nil:
		q.svc.fail(q, http.StatusNotFound, "NotFound", fmt.Sprintf("No HTTP resource was found that matches the request URI '%s'.", q.r.URL.Path))
		return
	}
	if q.svc.auth != nil && !q.svc.auth(q) {
		return
	}
	rt.h(q)
}

func allowed(rt routeTable, path string) string {
	segs := strings.Split(path, "/")
	var ms []string
	for _, r := range rt {
		if _, ok := matchSegs(r.segs, segs); ok {
			ms = append(ms, r.method)
		}
	}
	return strings.Join(ms, ", ")
}

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64 // body bytes written
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (hijack).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (q *req) json(status int, v any) {
	var b []byte
	switch x := v.(type) {
	case json.RawMessage:
		b = x
	case []byte:
		b = x
	default:
		b = mustJSON(v)
	}
	writeJSON(q.w, status, b)
}

// readBody reads at most limit bytes of the request body.
func (q *req) readBody(limit int64) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(http.MaxBytesReader(q.w, q.r.Body, limit)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func correlationID() string {
	return guid(rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())))
}

// ---- fault application ----

func (t *Tenant) applyFault(q *req, f *faultDecision, rt *route) bool {
	ra := int((f.retryAfter + time.Second - 1) / time.Second)
	switch f.kind {
	case Fault429:
		if ra < 1 {
			ra = 1
		}
		q.w.Header().Set("Retry-After", strconv.Itoa(ra))
		q.svc.fail(q, http.StatusTooManyRequests, "TooManyRequests", "Rate limit is exceeded. Try again later.")
	case Fault500:
		q.svc.fail(q, http.StatusInternalServerError, "InternalServerError", "An error has occurred.")
	case Fault503:
		if ra > 0 {
			q.w.Header().Set("Retry-After", strconv.Itoa(ra))
		}
		q.svc.fail(q, http.StatusServiceUnavailable, "ServiceUnavailable", "The service is temporarily unavailable.")
	case FaultLogin:
		writeHTML(q.w, http.StatusOK, loginPageHTML)
	case FaultChaos:
		// One of the transient failures, picked by the seeded fault RNG.
		sub := *f
		sub.kind = []FaultKind{Fault429, Fault500, Fault503, FaultReset}[f.pick%4]
		if sub.kind == Fault429 && sub.retryAfter <= 0 {
			sub.retryAfter = time.Second
		}
		return t.applyFault(q, &sub, rt)
	case FaultReset:
		dropConn(q.w, true)
	case FaultTruncate:
		// Run the real request into a buffer and send only half of it
		// under the full Content-Length; the server then drops the
		// connection and the client sees an unexpected EOF.
		bw := &bufWriter{h: http.Header{}}
		inner := *q
		inner.w = bw
		t.serve(&inner, rt, rt != nil)
		for k, v := range bw.h {
			q.w.Header()[k] = v
		}
		body := bw.buf.Bytes()
		q.w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if bw.status == 0 {
			bw.status = http.StatusOK
		}
		q.w.WriteHeader(bw.status)
		_, _ = q.w.Write(body[:len(body)/2])
		if fl, ok := q.w.(http.Flusher); ok {
			fl.Flush()
		}
		dropConn(q.w, false)
	default:
		return false
	}
	return true
}

// dropConn closes the client connection: with rst, abruptly (a reset,
// before any response); otherwise after what was already written.
func dropConn(w http.ResponseWriter, rst bool) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		raw := conn
		if tc, ok := conn.(interface{ NetConn() net.Conn }); ok {
			raw = tc.NetConn()
		}
		if tc, ok := raw.(*net.TCPConn); ok && rst {
			_ = tc.SetLinger(0) // send RST, not FIN
		}
		_ = conn.Close()
		return
	}
	// HTTP/2 or a recorder: abort the stream the way net/http documents.
	panic(http.ErrAbortHandler)
}

type bufWriter struct {
	h      http.Header
	status int
	buf    bytes.Buffer
}

func (b *bufWriter) Header() http.Header { return b.h }
func (b *bufWriter) WriteHeader(c int) {
	if b.status == 0 {
		b.status = c
	}
}
func (b *bufWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.buf.Write(p)
}

func writeHTML(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

const loginPageHTML = `<!DOCTYPE html>
<html dir="ltr" class="" lang="en"><head><title>Sign in to your account</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8"></head>
<body><form name="f1" id="i0281" method="post" action="https://login.microsoftonline.com/common/login">
<div id="loginHeader">Sign in</div><script type="text/javascript">//<![CDATA[
$Config={"sErrorCode":"","pgid":"ConvergedSignIn","urlPost":"https://login.microsoftonline.com/common/login"};
//]]></script></form></body></html>`
