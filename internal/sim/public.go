package sim

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// publicFail writes the public API error envelope (docs/REFERENCE.md §3.6).
func publicFail(q *req, status int, code, msg string) {
	switch {
	case status == http.StatusNotFound && code == "NotFound":
		code = "ResourceNotFound"
	case status == http.StatusMethodNotAllowed:
		code = "BadRequest"
	}
	q.json(status, map[string]any{"error": map[string]string{"code": code, "message": msg, "target": correlationID()}})
}

func (t *Tenant) publicService() service {
	s := service{family: FamilyPublic, fail: publicFail}
	s.auth = func(q *req) bool {
		c, present, err := t.bearer(q.r)
		switch {
		case !present:
			publicFail(q, http.StatusUnauthorized, "Unauthorized", "Authorization header is missing: send 'Authorization: Bearer <token>' for resource https://api.securitycenter.microsoft.com.")
			return false
		case err != nil:
			publicFail(q, http.StatusUnauthorized, "Unauthorized", "Authorization failed: "+err.Error()+".")
			return false
		case !audIn(c, audPublic, audPublicNew, audWdatpLegacy, wdatpAppID):
			publicFail(q, http.StatusUnauthorized, "Unauthorized", "Authorization failed: the token audience is not https://api.securitycenter.microsoft.com.")
			return false
		}
		q.claims = c
		return true
	}
	s.routes.add(http.MethodGet, "/api/machineactions", "", t.limited(t.hMachineActions))
	s.routes.add(http.MethodGet, "/api/machineactions/{id}", "", t.limited(t.hMachineAction))
	s.routes.add(http.MethodGet, "/api/libraryfiles", "", t.limited(t.hLibraryFiles))
	return s
}

// ---- rate limit: 100 calls/minute and 1,500/hour per app, wall clock ----

type rateLimiter struct {
	mu    sync.Mutex
	clock func() time.Time
	calls map[string][]time.Time // per app, ascending, last hour only
}

func newRateLimiter(clock func() time.Time) *rateLimiter {
	return &rateLimiter{clock: clock, calls: map[string][]time.Time{}}
}

// allow records a call by app, or returns how long to wait.
func (l *rateLimiter) allow(app string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock()
	cs := l.calls[app]
	i := 0
	for i < len(cs) && !cs[i].After(now.Add(-time.Hour)) {
		i++
	}
	cs = cs[i:]
	inMinute := 0
	for j := len(cs) - 1; j >= 0 && cs[j].After(now.Add(-time.Minute)); j-- {
		inMinute++
	}
	var wait time.Duration
	if inMinute >= 100 {
		wait = cs[len(cs)-inMinute].Add(time.Minute).Sub(now)
	}
	if len(cs) >= 1500 {
		if w := cs[len(cs)-1500].Add(time.Hour).Sub(now); w > wait {
			wait = w
		}
	}
	l.calls[app] = cs
	if wait > 0 {
		return false, wait
	}
	l.calls[app] = append(cs, now)
	return true, 0
}

// limited applies the public API rate limit before h.
func (t *Tenant) limited(h func(*req)) func(*req) {
	return func(q *req) {
		app := "anonymous"
		if q.claims != nil {
			app = q.claims.AppID
		}
		if ok, wait := t.limiter.allow(app); !ok {
			secs := int((wait + time.Second - 1) / time.Second)
			q.w.Header().Set("Retry-After", strconv.Itoa(secs))
			q.svc.fail(q, http.StatusTooManyRequests, "TooManyRequests", "API calls quota exceeded: 100 calls per minute and 1500 calls per hour per application. Retry after the time in the Retry-After header.")
			return
		}
		h(q)
	}
}

// needRole enforces app permissions for public-API audiences; tokens for
// the legacy mtp audience carry none and are judged by audience alone.
func needRole(q *req, roles ...string) bool {
	if q.claims == nil || !audIn(q.claims, audPublic, audPublicNew, audWdatpLegacy, wdatpAppID) {
		return true
	}
	if q.claims.Upn != "" {
		// A user token: delegated scopes (Machine.Read.All → Machine.Read).
		for _, have := range strings.Fields(q.claims.Scp) {
			for _, want := range roles {
				if have == strings.TrimSuffix(want, ".All") {
					return true
				}
			}
		}
		q.svc.fail(q, http.StatusForbidden, "Forbidden", fmt.Sprintf("The user does not have any of the required delegated permissions (%s), or no Defender role that grants them.", strings.Join(roles, ", ")))
		return false
	}
	if hasRole(q.claims, roles...) {
		return true
	}
	q.svc.fail(q, http.StatusForbidden, "Forbidden", fmt.Sprintf("The application does not have any of the required application permissions (%s) to access the resource.", strings.Join(roles, ", ")))
	return false
}

// ---- OData ($filter, $top, $skip, $orderby) for machine actions ----

// filterable are the properties $filter and $orderby take: the documented
// six, plus lastUpdateDateTimeUtc, which the documentation leaves out but
// the service accepts — both the original DefenderHarvester and Elastic's
// production integration filter on it (docs/REFERENCE.md §3.3).
var filterable = map[string]bool{"id": true, "status": true, "machineId": true, "type": true, "requestor": true, "creationDateTimeUtc": true, "lastUpdateDateTimeUtc": true}

// dateFields are the filterable Edm.DateTimeOffset properties.
var dateFields = map[string]bool{"creationDateTimeUtc": true, "lastUpdateDateTimeUtc": true}

const filterableList = "id, status, machineId, type, requestor, creationDateTimeUtc or lastUpdateDateTimeUtc"

type odataCmp struct {
	field, op, str string
	tm             time.Time
}

type odataQuery struct {
	cmps      []odataCmp
	top, skip int
	hasTop    bool
	orderBy   string
	desc      bool
	lo, hi    time.Time // creation bounds implied by the filter
	ulo, uhi  time.Time // last-update bounds implied by the filter
}

type odataErr struct{ code, msg string }

func (e *odataErr) Error() string { return e.msg }

func badOData(format string, a ...any) *odataErr {
	return &odataErr{"ODataError", fmt.Sprintf(format, a...)}
}

// parseOData reads the query options; retention bounds the time range.
func parseOData(v url.Values, lo, hi time.Time, allowFilter bool) (*odataQuery, error) {
	// A last update lies between the creation and now, so the creation
	// bounds are last-update bounds too.
	o := &odataQuery{lo: lo, hi: hi, ulo: lo, uhi: hi}
	for k := range v {
		switch k {
		case "$filter", "$top", "$skip", "$orderby":
		default:
			if strings.HasPrefix(k, "$") {
				return nil, badOData("The query parameter '%s' is not supported.", k)
			}
		}
	}
	if len(v["$filter"]) > 1 || len(v["$top"]) > 1 || len(v["$skip"]) > 1 || len(v["$orderby"]) > 1 {
		return nil, badOData("Query options must not be repeated.")
	}
	if s := v.Get("$top"); s != "" || v.Has("$top") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, badOData("Invalid value '%s' for $top query option found. The $top query option requires a non-negative integer value.", s)
		}
		if n > 10000 {
			return nil, &odataErr{"BadRequest", fmt.Sprintf("The limit of '10000' for Top query has been exceeded. The value from the incoming request is '%d'.", n)}
		}
		o.top, o.hasTop = n, true
	}
	if s := v.Get("$skip"); s != "" || v.Has("$skip") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, badOData("Invalid value '%s' for $skip query option found. The $skip query option requires a non-negative integer value.", s)
		}
		o.skip = n
	}
	if s := v.Get("$orderby"); v.Has("$orderby") {
		f := strings.Fields(s)
		if len(f) < 1 || len(f) > 2 || !filterable[f[0]] {
			return nil, badOData("The $orderby expression '%s' is not supported: use one of %s, optionally followed by asc or desc.", s, filterableList)
		}
		o.orderBy = f[0]
		if len(f) == 2 {
			switch f[1] {
			case "asc":
			case "desc":
				o.desc = true
			default:
				return nil, badOData("The $orderby direction '%s' is not valid: use asc or desc.", f[1])
			}
		}
	}
	if v.Has("$filter") {
		if !allowFilter {
			return nil, badOData("The query specified in the URI is not valid. Filtering is not supported on this resource.")
		}
		if err := o.parseFilter(v.Get("$filter")); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// tokenize splits a filter into words and quoted strings.
func tokenize(s string) ([]string, error) {
	var out []string
	i := 0
	for i < len(s) {
		switch c := s[i]; {
		case c == ' ' || c == '\t':
			i++
		case c == '\'':
			var b strings.Builder
			b.WriteByte('\'')
			i++
			closed := false
			for i < len(s) {
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' {
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					closed = true
					break
				}
				b.WriteByte(s[i])
				i++
			}
			if !closed {
				return nil, badOData("Syntax error: the string literal in $filter is not terminated.")
			}
			out = append(out, b.String())
		case c == '(' || c == ')' || c == ',':
			return nil, badOData("Syntax error at position %d in '%s': parentheses and functions are not supported.", i, s)
		default:
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '\t' && s[j] != '(' && s[j] != ')' && s[j] != '\'' {
				j++
			}
			out = append(out, s[i:j])
			i = j
		}
	}
	return out, nil
}

func (o *odataQuery) parseFilter(s string) error {
	toks, err := tokenize(s)
	if err != nil {
		return err
	}
	if len(toks) == 0 {
		return badOData("The $filter expression is empty.")
	}
	for i := 0; ; {
		if i+3 > len(toks) {
			return badOData("Syntax error in $filter '%s': expected '<property> <operator> <value>'.", s)
		}
		field, op, val := toks[i], toks[i+1], toks[i+2]
		if !filterable[field] {
			return badOData("Filtering on property '%s' is not supported: use %s.", field, filterableList)
		}
		c := odataCmp{field: field, op: op}
		if dateFields[field] {
			switch op {
			case "eq", "ge", "gt", "le", "lt":
			default:
				return badOData("The operator '%s' is not supported for %s: use eq, ge, gt, le or lt.", op, field)
			}
			if strings.HasPrefix(val, "'") {
				return badOData("A binary operator with incompatible types was detected. Found operand types 'Edm.DateTimeOffset' and 'Edm.String' for operator kind '%s': write the date-time without quotes.", op)
			}
			tm, err := time.Parse(time.RFC3339Nano, val)
			if err != nil {
				return badOData("The value '%s' is not a valid Edm.DateTimeOffset literal (use e.g. 2024-01-01T00:00:00Z).", val)
			}
			c.tm = tm.UTC()
			lo, hi := &o.lo, &o.hi
			if field == "lastUpdateDateTimeUtc" {
				lo, hi = &o.ulo, &o.uhi
			}
			switch op {
			case "eq":
				*lo, *hi = maxTime(*lo, c.tm), minTime(*hi, c.tm)
			case "ge", "gt":
				*lo = maxTime(*lo, c.tm)
			case "le", "lt":
				*hi = minTime(*hi, c.tm)
			}
		} else {
			if op != "eq" {
				return badOData("The operator '%s' is not supported for %s: use eq.", op, field)
			}
			if !strings.HasPrefix(val, "'") {
				return badOData("The value %s for %s must be a quoted string literal such as '%s'.", val, field, val)
			}
			c.str = val[1:]
		}
		o.cmps = append(o.cmps, c)
		i += 3
		if i == len(toks) {
			return nil
		}
		if toks[i] != "and" {
			return badOData("Syntax error in $filter '%s': only 'and' may join comparisons, found '%s'.", s, toks[i])
		}
		i++
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func (o *odataQuery) match(r maRecord) bool {
	for _, c := range o.cmps {
		switch c.field {
		case "creationDateTimeUtc", "lastUpdateDateTimeUtc":
			x := r.created
			if c.field == "lastUpdateDateTimeUtc" {
				x = r.updated
			}
			ok := false
			switch c.op {
			case "eq":
				ok = x.Equal(c.tm)
			case "ge":
				ok = !x.Before(c.tm)
			case "gt":
				ok = x.After(c.tm)
			case "le":
				ok = !x.After(c.tm)
			case "lt":
				ok = x.Before(c.tm)
			}
			if !ok {
				return false
			}
		case "id":
			if !strings.EqualFold(r.ID, c.str) {
				return false
			}
		case "status":
			if r.Status != c.str {
				return false
			}
		case "machineId":
			if !strings.EqualFold(r.MachineID, c.str) {
				return false
			}
		case "type":
			if r.Type != c.str {
				return false
			}
		case "requestor":
			if !strings.EqualFold(r.Requestor, c.str) {
				return false
			}
		}
	}
	return true
}

func sortKey(r maRecord, f string) string {
	switch f {
	case "id":
		return r.ID
	case "status":
		return r.Status
	case "machineId":
		return r.MachineID
	case "type":
		return r.Type
	case "requestor":
		return r.Requestor
	case "lastUpdateDateTimeUtc":
		return r.LastUpdateDateTimeUtc
	}
	return r.CreationDateTimeUtc
}

func (t *Tenant) oDataFail(q *req, err error) {
	code := "ODataError"
	if oe, ok := err.(*odataErr); ok {
		code = oe.code
	}
	publicFail(q, http.StatusBadRequest, code, err.Error())
}

// maPage is the collection envelope, in the service's field order.
type maPage struct {
	Context  string     `json:"@odata.context"`
	Value    []maRecord `json:"value"`
	NextLink string     `json:"@odata.nextLink,omitempty"`
}

func (t *Tenant) hMachineActions(q *req) {
	if !needRole(q, "Machine.Read.All", "Machine.ReadWrite.All", "Machine.Read", "Machine.ReadWrite") {
		return
	}
	o, err := parseOData(q.r.URL.Query(), t.retentionFrom(q.now), q.now, true)
	if err != nil {
		t.oDataFail(q, err)
		return
	}
	// Scan by creation: a last update lies at most maxOpSpan after it.
	rows := []maRecord{}
	for _, r := range t.machineActions(q.now, maxTime(o.lo, o.ulo.Add(-maxOpSpan)), minTime(o.hi, o.uhi)) {
		if o.match(r) {
			rows = append(rows, r)
		}
	}
	if o.orderBy != "" {
		sort.SliceStable(rows, func(i, j int) bool {
			a, b := sortKey(rows[i], o.orderBy), sortKey(rows[j], o.orderBy)
			if o.desc {
				return a > b
			}
			return a < b
		})
	}
	rows = rows[min(o.skip, len(rows)):]
	out := maPage{Context: "https://" + q.host + "/api/$metadata#MachineActions"}
	out.Value, out.NextLink = pageOData(q, o, rows, t.opts.PublicAPIPageCap, t.clamper(RouteMachineActions))
	q.json(http.StatusOK, out)
}

// pageOData cuts rows (already past $skip) to one page. Without $top the
// service serves at most pageCap rows and links to the rest; with $top it
// serves $top rows and no link — unless a page clamp (served < what was
// asked) cuts the page short, which the service then answers the OData way:
// a nextLink to the remainder, carrying the $top still owed.
func pageOData[T any](q *req, o *odataQuery, rows []T, pageCap int, clamp func(int) int) ([]T, string) {
	want := pageCap
	if o.hasTop {
		want = o.top
	}
	served := clamp(want)
	if len(rows) <= served {
		return rows, ""
	}
	rows = rows[:served]
	switch {
	case !o.hasTop:
		return rows, nextLink(q, o.skip+served, -1)
	case served < want:
		return rows, nextLink(q, o.skip+served, want-served)
	}
	return rows, ""
}

// nextLink rebuilds the request URL with a new $skip (and $top when top ≥
// 0), keeping the other options in the encoding the service uses ($ kept
// literal).
func nextLink(q *req, skip, top int) string {
	var parts []string
	for _, k := range []string{"$filter", "$orderby"} {
		if v := q.r.URL.Query(); v.Has(k) {
			parts = append(parts, k+"="+url.QueryEscape(v.Get(k)))
		}
	}
	if top >= 0 {
		parts = append(parts, "$top="+strconv.Itoa(top))
	}
	parts = append(parts, "$skip="+strconv.Itoa(skip))
	return "https://" + q.host + q.r.URL.Path + "?" + strings.Join(parts, "&")
}

func (t *Tenant) hMachineAction(q *req) {
	if !needRole(q, "Machine.Read.All", "Machine.ReadWrite.All", "Machine.Read", "Machine.ReadWrite") {
		return
	}
	id := q.vars["id"]
	if !isGUID(id) {
		publicFail(q, http.StatusBadRequest, "InvalidInput", fmt.Sprintf("The machine action id '%s' is not a GUID.", id))
		return
	}
	for _, r := range t.machineActions(q.now, t.retentionFrom(q.now), q.now) {
		if strings.EqualFold(r.ID, id) {
			body := mustJSON(r)
			ctx := `{"@odata.context":"https://` + q.host + `/api/$metadata#MachineActions/$entity",`
			q.json(http.StatusOK, append([]byte(ctx), body[1:]...))
			return
		}
	}
	publicFail(q, http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("Machine action %s was not found.", id))
}

func (t *Tenant) hLibraryFiles(q *req) {
	if !needRole(q, "Library.Manage") {
		return
	}
	o, err := parseOData(q.r.URL.Query(), time.Time{}, time.Time{}, false)
	if err != nil {
		t.oDataFail(q, err)
		return
	}
	if o.orderBy != "" {
		t.oDataFail(q, badOData("$orderby is not supported on library files."))
		return
	}
	type file struct {
		FileName              string  `json:"fileName"`
		Sha256                string  `json:"sha256"`
		Description           *string `json:"description"`
		CreationTime          string  `json:"creationTime"`
		LastUpdatedTime       string  `json:"lastUpdatedTime"`
		CreatedBy             string  `json:"createdBy"`
		HasParameters         bool    `json:"hasParameters"`
		ParametersDescription string  `json:"parametersDescription,omitempty"`
	}
	files := []file{}
	for _, f := range t.w.libraryFiles(q.now) {
		x := file{FileName: f.Name, Sha256: f.SHA256, CreationTime: fmt7Z(f.Created), LastUpdatedTime: fmt7Z(f.lastUpdated()),
			CreatedBy: f.CreatedBy, HasParameters: f.HasParams, ParametersDescription: f.ParamsDesc}
		if f.Description != "" {
			d := f.Description
			x.Description = &d
		}
		files = append(files, x)
	}
	if o.skip < len(files) {
		files = files[o.skip:]
	} else {
		files = []file{}
	}
	// Without $top the whole (short) list is one page, unless clamped.
	all := max(len(files), 1)
	files, link := pageOData(q, o, files, all, t.clamper(RouteLibraryFiles))
	out := map[string]any{"@odata.context": "https://" + q.host + "/api/$metadata#LibraryFiles", "value": files}
	if link != "" {
		out["@odata.nextLink"] = link
	}
	q.json(http.StatusOK, out)
}
