package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DCR is a data collection rule of the emulated Logs Ingestion API.
type DCR struct {
	ImmutableID string   // "dcr-" + 32 lower-case hex digits
	Name        string   // ARM resource name (default "dcr-defenderharvester")
	Streams     []Stream // declared streams ("Custom-…")
	// AnyCustomStream accepts every stream whose name starts with
	// "Custom-" as if declared with a TimeGenerated column.
	AnyCustomStream bool
}

// Stream is one streamDeclarations entry.
type Stream struct {
	Name    string // "Custom-<Table>"
	Columns []Column
}

// Column is one declared column; only TimeGenerated is checked (it must be
// present and an ISO-8601 date-time when declared).
type Column struct {
	Name string
	Type string // string, int, long, real, boolean, datetime, dynamic
}

// SentinelInfo tells a client where to upload.
type SentinelInfo struct {
	Endpoint        string   `json:"endpoint"` // DCE, e.g. https://dh-dce-1a2b3c.westeurope-1.ingest.monitor.azure.com
	DCRImmutableID  string   `json:"dcr_immutable_id"`
	Streams         []string `json:"streams,omitempty"`
	AnyCustomStream bool     `json:"any_custom_stream"`
	Scope           string   `json:"scope"`
}

const (
	ingestAPIVersion = "2023-01-01"
	maxIngestBytes   = 1048576 // docs/REFERENCE.md §5.5: 1 MB compressed or uncompressed
	defaultDCRName   = "dcr-defenderharvester"
)

var (
	reIngest = regexp.MustCompile(`^[a-z0-9-]+\.([a-z0-9-]+\.)?ingest\.monitor\.azure\.(com|us|cn)$`)
	reDCRID  = regexp.MustCompile(`^dcr-[0-9a-f]{32}$`)
)

func (t *Tenant) initDCRs() error {
	dcrs := t.opts.DCRs
	if len(dcrs) == 0 {
		r := rngFor(t.w.seed, lblTenant, 0xdc7)
		d := DCR{ImmutableID: "dcr-" + hexN(r, 32), Name: defaultDCRName}
		for _, tb := range t.opts.SentinelTables {
			d.Streams = append(d.Streams, Stream{Name: "Custom-" + tb, Columns: []Column{{"TimeGenerated", "datetime"}, {"RecordId", "string"}}})
		}
		d.AnyCustomStream = len(d.Streams) == 0
		dcrs = []DCR{d}
	}
	t.dcrs = map[string]*DCR{}
	for i := range dcrs {
		d := dcrs[i]
		d.ImmutableID = strings.ToLower(d.ImmutableID)
		if !reDCRID.MatchString(d.ImmutableID) {
			return fmt.Errorf("sim: DCR immutable id %q is malformed: use \"dcr-\" and 32 hex digits", dcrs[i].ImmutableID)
		}
		if _, dup := t.dcrs[d.ImmutableID]; dup {
			return fmt.Errorf("sim: DCR %s is listed twice: give each DCR its own immutable id", d.ImmutableID)
		}
		if d.Name == "" {
			d.Name = defaultDCRName
		}
		for _, s := range d.Streams {
			if !strings.HasPrefix(s.Name, "Custom-") || len(s.Name) == len("Custom-") {
				return fmt.Errorf("sim: DCR %s stream %q must be named Custom-<Name>", d.ImmutableID, s.Name)
			}
		}
		t.dcrs[d.ImmutableID] = &d
		if t.defDCR == nil {
			t.defDCR = &d
		}
	}
	return nil
}

// stream finds a declared stream (case-sensitive, as stream names are).
func (d *DCR) stream(name string) (Stream, bool) {
	for _, s := range d.Streams {
		if s.Name == name {
			return s, true
		}
	}
	if d.AnyCustomStream && strings.HasPrefix(name, "Custom-") && len(name) > len("Custom-") {
		return Stream{Name: name, Columns: []Column{{"TimeGenerated", "datetime"}}}, true
	}
	return Stream{}, false
}

func (s Stream) declares(col string) bool {
	for _, c := range s.Columns {
		if c.Name == col {
			return true
		}
	}
	return false
}

func (t *Tenant) dcrArmID(d *DCR) string {
	sub := guid(rngFor(t.w.seed, lblTenant, 0x5b))
	return "/subscriptions/" + sub + "/resourceGroups/rg-sentinel/providers/Microsoft.Insights/dataCollectionRules/" + d.Name
}

func (t *Tenant) sentinelInfo() SentinelInfo {
	r := rngFor(t.w.seed, lblTenant, 0xdce)
	in := SentinelInfo{
		Endpoint:        "https://dh-dce-" + hexN(r, 6) + ".westeurope-1.ingest.monitor.azure.com",
		DCRImmutableID:  t.defDCR.ImmutableID,
		AnyCustomStream: t.defDCR.AnyCustomStream,
		Scope:           audMonitor + "//.default",
	}
	for _, s := range t.defDCR.Streams {
		in.Streams = append(in.Streams, s.Name)
	}
	return in
}

func (t *Tenant) logsIngestionService() service {
	s := service{family: ReceiverSentinel, receiver: ReceiverSentinel, fail: t.ingestFail, auth: t.ingestAuth}
	s.routes.add(http.MethodPost, "/dataCollectionRules/{dcr}/streams/{stream}", "", t.ingestUpload)
	return s
}

// ingestFail writes Azure.Core's ErrorResponse with x-ms-error-code.
func (t *Tenant) ingestFail(q *req, status int, code, msg string) {
	h := q.w.Header()
	h.Set("x-ms-error-code", code)
	h.Set("x-ms-request-id", correlationID())
	q.json(status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func monitorAudience(host string) string {
	switch {
	case strings.HasSuffix(host, ".azure.us"):
		return "https://monitor.azure.us"
	case strings.HasSuffix(host, ".azure.cn"):
		return "https://monitor.azure.cn"
	}
	return audMonitor
}

func (t *Tenant) ingestAuth(q *req) bool {
	if q.r.TLS == nil {
		// The real endpoint is HTTPS only; azcore refuses to send a token
		// over plain HTTP anyway.
		t.ingestFail(q, http.StatusBadRequest, "HttpsRequired", "The Logs Ingestion API accepts HTTPS only: send the request to https://"+q.host+".")
		return false
	}
	c, present, err := t.bearer(q.r)
	switch {
	case !present:
		q.w.Header().Set("WWW-Authenticate", `Bearer authorization_uri="https://login.microsoftonline.com/`+t.w.tenantID+`", resource_id="`+monitorAudience(q.host)+`"`)
		t.ingestFail(q, http.StatusUnauthorized, "InvalidAuthenticationToken", "The request has no Authorization header: send 'Authorization: Bearer <token>' with a token for "+monitorAudience(q.host)+".")
		return false
	case errors.Is(err, errTokenExpired):
		t.ingestFail(q, http.StatusUnauthorized, "ExpiredAuthenticationToken", "The access token has expired: get a new token.")
		return false
	case err != nil:
		t.ingestFail(q, http.StatusUnauthorized, "InvalidAuthenticationToken", "The access token is invalid: "+err.Error()+".")
		return false
	case !audIn(c, monitorAudience(q.host)):
		t.ingestFail(q, http.StatusUnauthorized, "InvalidAuthenticationTokenAudience", "The access token has the wrong audience '"+c.Aud+"': request the scope "+monitorAudience(q.host)+"//.default.")
		return false
	}
	q.claims = c
	return true
}

func (t *Tenant) ingestUpload(q *req) {
	rs := t.receivers[ReceiverSentinel]
	id, streamName := strings.ToLower(q.vars["dcr"]), q.vars["stream"]
	av, hasAV := queryFold(q.r, "api-version")
	switch {
	case !hasAV || av == "":
		t.ingestFail(q, http.StatusBadRequest, "MissingApiVersionParameter", "The api-version query parameter (?api-version) is required for all requests: use api-version="+ingestAPIVersion+".")
		return
	case av != ingestAPIVersion:
		t.ingestFail(q, http.StatusBadRequest, "UnsupportedApiVersion", fmt.Sprintf("The HTTP resource does not support api version '%s': use %s.", av, ingestAPIVersion))
		return
	}
	d, ok := t.dcrs[id]
	if !ok || q.claims.Oid != t.creds.ClientID || rs.roleRevoked() {
		// An unknown DCR and a missing role look the same to the caller:
		// the access check finds no role assignment on the rule.
		arm := "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/unknown/providers/Microsoft.Insights/dataCollectionRules/unknown"
		if ok {
			arm = t.dcrArmID(d)
		}
		t.ingestFail(q, http.StatusForbidden, "OperationFailed", fmt.Sprintf(
			"The authentication token provided does not have access to ingest data for the data collection rule with immutable Id '%s' PipelineAccessResult: AccessGranted: False, IsRbacPresent: False, IsDcrDceBindingValid: , DcrArmId: %s, Message: Required authorization action was not found for tenantId %s objectId %s on resourceId %s ConfigurationId: %s..",
			id, arm, t.w.tenantID, q.claims.Oid, arm, id))
		return
	}
	st, ok := d.stream(streamName)
	if !ok {
		t.ingestFail(q, http.StatusNotFound, "InvalidStream", fmt.Sprintf("Stream '%s' is not declared in data collection rule '%s': use a stream from its streamDeclarations (names start with Custom-).", streamName, d.ImmutableID))
		return
	}
	if rs.isBusy() {
		q.w.Header().Set("Retry-After", "1")
		t.ingestFail(q, http.StatusServiceUnavailable, "ServiceUnavailable", "The service is temporarily unavailable. Retry after the Retry-After interval.")
		return
	}
	if mt, _, err := mime.ParseMediaType(q.r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		t.ingestFail(q, http.StatusUnsupportedMediaType, "UnsupportedMediaType", "Content-Type must be application/json.")
		return
	}
	enc := strings.ToLower(strings.TrimSpace(q.r.Header.Get("Content-Encoding")))
	if enc != "" && enc != "gzip" {
		t.ingestFail(q, http.StatusBadRequest, "InvalidContentEncoding", fmt.Sprintf("Content-Encoding '%s' is not supported: send gzip or no Content-Encoding.", enc))
		return
	}
	tooLarge := func() {
		t.ingestFail(q, http.StatusRequestEntityTooLarge, "ContentLengthLimitExceeded", fmt.Sprintf("Maximum allowed content length: %d bytes (1 MB).", maxIngestBytes))
	}
	if q.r.ContentLength > maxIngestBytes {
		q.bodyBytes = int(min(q.r.ContentLength, 1<<40))
		tooLarge()
		return
	}
	var rb reqBody
	defer rb.release()
	raw, err := rb.read(q.r.Body, maxIngestBytes, q.r.ContentLength)
	q.bodyBytes = len(raw)
	if err != nil {
		t.ingestFail(q, http.StatusBadRequest, "InvalidRequest", "The request body could not be read.")
		return
	}
	if len(raw) > maxIngestBytes {
		tooLarge()
		return
	}
	body := raw
	if enc == "gzip" {
		var headerErr error
		body, headerErr, err = rb.gunzip(raw, maxIngestBytes)
		if headerErr != nil {
			t.ingestFail(q, http.StatusBadRequest, "InvalidContentEncoding", "The body is not valid gzip although Content-Encoding is gzip.")
			return
		}
		if err != nil {
			t.ingestFail(q, http.StatusBadRequest, "InvalidContentEncoding", "The gzip body is corrupt.")
			return
		}
		if len(body) > maxIngestBytes {
			tooLarge()
			return
		}
	}
	limit := t.opts.LogsIngestionMaxSpan
	batch, err := parseIngest(body, st, limit > 0)
	if err != nil {
		t.ingestFail(q, http.StatusBadRequest, "InvalidRequest", err.Error())
		return
	}
	if limit > 0 && batch.span > limit {
		t.ingestFail(q, http.StatusBadRequest, "RecordsTimeRangeIsMoreThan30Minutes",
			fmt.Sprintf("The records' TimeGenerated values span %s; one call may span at most %s.", batch.span, limit))
		return
	}
	rs.acceptIDs(streamName, batch.recs, batch.ids)
	q.w.Header().Set("x-ms-request-id", correlationID())
	q.w.WriteHeader(http.StatusNoContent)
}

// SetIngestionRole grants (true, the default) or removes (false) the main
// app's "Monitoring Metrics Publisher" role on every DCR. Without it every
// upload is refused with 403 OperationFailed and the documented "does not
// have access to ingest data … IsRbacPresent: False" message (docs/REFERENCE.md
// §5.4), whatever its records, until the role is granted again; the
// token endpoint keeps issuing tokens, as Entra does.
func (t *Tenant) SetIngestionRole(granted bool) {
	rs := t.receivers[ReceiverSentinel]
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.noRole = !granted
}

func (s *receiverState) roleRevoked() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.noRole
}

// ingestBatch is a checked Logs Ingestion body: its records (slices of
// the body), their RecordIds (recordID) and the span of their
// TimeGenerated values (timeSpan; only when asked for).
type ingestBatch struct {
	recs []json.RawMessage
	ids  []string
	span time.Duration
}

// parseIngestBody checks a Logs Ingestion body: a JSON array of objects,
// each with a date-time TimeGenerated when the stream declares it.
func parseIngestBody(body []byte, st Stream) ([]json.RawMessage, error) {
	b, err := parseIngest(body, st, false)
	return b.recs, err
}

// parseIngest is parseIngestBody with the records' ids and, when wantSpan,
// their time span, all from one pass over each record. Anything the pass
// does not accept is answered by parseIngestBodyStd, for its exact error.
func parseIngest(body []byte, st Stream, wantSpan bool) (ingestBatch, error) {
	needTime := st.declares("TimeGenerated")
	if b, ok := scanIngestBody(bytes.TrimSpace(body), needTime, wantSpan); ok {
		return b, nil
	}
	recs, err := parseIngestBodyStd(body, st)
	if err != nil {
		return ingestBatch{}, err
	}
	b := ingestBatch{recs: recs, ids: make([]string, len(recs))}
	for i, r := range recs {
		b.ids[i] = recordID(r)
	}
	if wantSpan {
		b.span = timeSpan(recs)
	}
	return b, nil
}

// scanIngestBody is parseIngest's single pass; false means "ask
// parseIngestBodyStd" (an error, or something unusual).
func scanIngestBody(b []byte, needTime, wantSpan bool) (ingestBatch, bool) {
	if len(b) == 0 || b[0] != '[' {
		return ingestBatch{}, false
	}
	// What one record's members say, as encoding/json would see them:
	// exactTG is map["TimeGenerated"] (parseIngestBodyStd), foldTG the
	// string a struct field TimeGenerated ends with (timeSpan: later
	// case-insensitive matches win, null leaves it, other values fail),
	// rid the last case-insensitive RecordId (recordID).
	var exactTG, foldTG, rid []byte
	var foldBad bool
	visit := func(key []byte, start, depth int) int {
		end := scanJSONValue(b, start, depth)
		if end < 0 {
			return -1
		}
		switch k := jsonKey(key); len(k) {
		case len("TimeGenerated"):
			if !foldKey(k, "TimeGenerated") {
				break
			}
			v := b[start:end]
			if string(k) == "TimeGenerated" {
				exactTG = v
			}
			switch v[0] {
			case '"':
				foldTG = v
			case 'n':
			default:
				foldBad = true
			}
		case len("RecordId"):
			if foldKey(k, "RecordId") {
				rid = b[start:end]
			}
		}
		return end
	}
	var out ingestBatch
	var span timeSpanAcc
	i := skipJSONSpace(b, 1)
	if i < len(b) && b[i] == ']' {
		i++
	} else {
		for {
			if i >= len(b) || b[i] != '{' {
				return ingestBatch{}, false
			}
			exactTG, foldTG, rid, foldBad = nil, nil, nil, false
			end := walkJSONObject(b, i, 2, visit)
			if end < 0 {
				return ingestBatch{}, false
			}
			var at time.Time
			if needTime {
				if exactTG == nil || exactTG[0] != '"' {
					return ingestBatch{}, false
				}
				s, _ := jsonString(exactTG)
				var err error
				if at, err = parseTimeParam(s); err != nil {
					return ingestBatch{}, false
				}
			}
			if wantSpan && !foldBad {
				if foldTG == nil || !needTime || &foldTG[0] != &exactTG[0] {
					var s string
					if foldTG != nil {
						s, _ = jsonString(foldTG)
					}
					var err error
					at, err = parseTimeParam(s)
					if err != nil {
						at = time.Time{}
						foldBad = true
					}
				}
				if !foldBad {
					span.add(at)
				}
			}
			id := ""
			if rid != nil {
				id, _ = jsonString(rid)
			}
			out.recs = append(out.recs, b[i:end])
			out.ids = append(out.ids, id)
			if i = skipJSONSpace(b, end); i >= len(b) {
				return ingestBatch{}, false
			}
			if b[i] == ',' {
				i = skipJSONSpace(b, i+1)
				continue
			}
			if b[i] != ']' {
				return ingestBatch{}, false
			}
			i++
			break
		}
	}
	if skipJSONSpace(b, i) != len(b) {
		return ingestBatch{}, false
	}
	out.span = span.dur()
	return out, true
}

// parseIngestBodyStd is parseIngestBody with encoding/json throughout:
// the reference scanIngestBody defers to for every error message.
func parseIngestBodyStd(body []byte, st Stream) ([]json.RawMessage, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return nil, errors.New("The request body must be a JSON array of records, e.g. [{\"TimeGenerated\":\"2026-01-01T00:00:00Z\",...}].")
	}
	var recs []json.RawMessage
	if err := json.Unmarshal(trimmed, &recs); err != nil {
		return nil, fmt.Errorf("The request body is not valid JSON: %v.", err)
	}
	needTime := st.declares("TimeGenerated")
	for i, r := range recs {
		var obj map[string]json.RawMessage
		if len(r) == 0 || r[0] != '{' || json.Unmarshal(r, &obj) != nil {
			return nil, fmt.Errorf("Record %d is not a JSON object: every array element must be an object with the stream's columns.", i)
		}
		if !needTime {
			continue
		}
		tg, ok := obj["TimeGenerated"]
		var s string
		if !ok || json.Unmarshal(tg, &s) != nil {
			return nil, fmt.Errorf("Record %d has no TimeGenerated string: stream '%s' declares TimeGenerated (datetime), so every record needs it.", i, st.Name)
		}
		if _, err := parseTimeParam(s); err != nil {
			return nil, fmt.Errorf("Record %d: TimeGenerated %s is not an ISO-8601 date-time.", i, strconv.Quote(s))
		}
	}
	return recs, nil
}

// timeSpanAcc accumulates the earliest and latest of a set of times.
type timeSpanAcc struct{ lo, hi time.Time }

func (a *timeSpanAcc) add(at time.Time) {
	if a.lo.IsZero() || at.Before(a.lo) {
		a.lo = at
	}
	if at.After(a.hi) {
		a.hi = at
	}
}

func (a *timeSpanAcc) dur() time.Duration { return a.hi.Sub(a.lo) }

// timeSpan is the distance between the earliest and latest TimeGenerated.
func timeSpan(recs []json.RawMessage) time.Duration {
	var acc timeSpanAcc
	for _, r := range recs {
		var v struct{ TimeGenerated string }
		if json.Unmarshal(r, &v) != nil {
			continue
		}
		at, err := parseTimeParam(v.TimeGenerated)
		if err != nil {
			continue
		}
		acc.add(at)
	}
	return acc.dur()
}

// queryFold reads a query parameter whose name matches case-insensitively
// (Azure front ends treat api-version that way).
func queryFold(r *http.Request, name string) (string, bool) {
	for k, v := range r.URL.Query() {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0], true
		}
	}
	return "", false
}
