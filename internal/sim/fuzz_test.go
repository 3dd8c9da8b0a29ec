package sim

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzODataQuery: any $filter/$top/$skip/$orderby is either accepted with
// bounds that make sense or rejected with an OData error, never a panic.
func FuzzODataQuery(f *testing.F) {
	for _, s := range []string{
		"$filter=creationDateTimeUtc ge 2024-01-01T00:00:00Z",
		"$filter=status eq 'Succeeded' and type eq 'Isolate'&$top=10&$skip=5",
		"$filter=requestor eq 'a''b'&$orderby=creationDateTimeUtc desc",
		"$filter=lastUpdateDateTimeUtc ge 2024-01-01T00:00:00Z",
		"$filter=lastUpdateDateTimeUtc gt 2026-02-01T00:00:00.123456789+01:00 and creationDateTimeUtc lt 2026-02-02T00:00:00Z&$orderby=lastUpdateDateTimeUtc desc",
		"$filter=(status eq 'x')", "$top=99999", "$filter='", "$filter=id eq",
	} {
		f.Add(s)
	}
	lo, hi := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		o, err := parseOData(v, lo, hi, true)
		if err != nil {
			if _, ok := err.(*odataErr); !ok || err.Error() == "" {
				t.Fatalf("error %T %v is not an OData error", err, err)
			}
			return
		}
		if o.top < 0 || o.top > 10000 || o.skip < 0 {
			t.Fatalf("accepted top=%d skip=%d", o.top, o.skip)
		}
		if o.lo.Before(lo) || o.hi.After(hi) || o.ulo.Before(lo) || o.uhi.After(hi) {
			t.Fatalf("filter widened the bounds: created %s..%s, updated %s..%s", o.lo, o.hi, o.ulo, o.uhi)
		}
		o.match(maRecord{})
	})
}

func FuzzParseFaults(f *testing.F) {
	for _, s := range []string{"portal:429=0.1,public:500=0.05,timeline:slow=2s", "*:reset=1", "x", "portal:slow=0.1@1ms", ",,,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		fs, err := ParseFaults(spec)
		if err != nil {
			return
		}
		if err := fs.validate(); err != nil {
			t.Fatalf("ParseFaults accepted an invalid spec %q: %v", spec, err)
		}
		if _, err := ParseFaults(fs.String()); err != nil {
			t.Fatalf("String() of %q does not parse: %v", spec, err)
		}
	})
}

// FuzzVerifyToken: no forged or mangled token is ever accepted.
func FuzzVerifyToken(f *testing.F) {
	ten, err := New(Options{Seed: 1, Start: testStart, Now: func() time.Time { return testStart }})
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now()
	good := ten.sign(claims{Aud: audPublic, Iss: ten.issuer(), Tid: ten.TenantID(), Iat: now.Unix(), Nbf: now.Unix(), Exp: now.Add(time.Hour).Unix()})
	f.Add(good)
	f.Add("a.b.c")
	f.Add(strings.Repeat(".", 5))
	f.Add(good[:len(good)-2] + "AA")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := ten.verify(tok)
		if err == nil && tok != good {
			t.Fatalf("accepted a token that was not issued: %q (%+v)", tok, c)
		}
	})
}

// FuzzPortalQuery sends arbitrary query strings to the paged portal
// routes: the answer is JSON with a 200 or 400, never a panic or a 500.
func FuzzPortalQuery(f *testing.F) {
	ten, err := New(Options{Seed: 1, Start: testStart, Now: func() time.Time { return testStart.Add(time.Hour) }, Machines: 3, TimelineEventsPerMachineHour: 2})
	if err != nil {
		f.Fatal(err)
	}
	c := ten.Credentials()
	h := ten.Handler()
	id := ten.MachineIDs()[0]
	for _, s := range []string{
		"pageIndex=2&pageSize=5&sortByField=actionType&sortOrder=Ascending&fromDate=2026-03-01T00:00:00Z&toDate=2026-03-10T00:00:00Z",
		"fromDate=2026-03-09T00:00:00Z&toDate=2026-03-10T00:00:00Z&ReportIdForScrolling=1&IsScrollingForward=false&pageSize=3",
		"pageSize=-1", "toDate=x", "ReportIdForScrolling=9999999999999999999999",
	} {
		f.Add(s)
	}
	paths := []string{
		"/apiproxy/mtp/actionCenter/actioncenterui/history-actions/",
		"/apiproxy/mtp/mdeTimelineExperience/machines/" + id + "/events/",
		"/apiproxy/mtp/ndr/machines", "/apiproxy/mtp/huntingService/rules/unified",
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		for _, p := range paths {
			req := httptest.NewRequest("GET", "http://security.microsoft.com"+p+"?"+v.Encode(), nil)
			req.Header.Set("Cookie", "sccauth="+c.SccAuth)
			req.Header.Set("X-XSRF-TOKEN", c.XSRFToken)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
				t.Fatalf("%s?%s: status %d %s", p, raw, rec.Code, rec.Body.String())
			}
			if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
				t.Fatalf("%s?%s: not JSON", p, raw)
			}
		}
	})
}

// FuzzParsePageClamp: a spec is rejected with an error or gives clamps New
// accepts, which print back to the same spec.
func FuzzParsePageClamp(f *testing.F) {
	for _, s := range []string{"all=7", "actioncenter=37,timeline=53", "rules=", "=3", "timeline=0", ",machines=4,", "x=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		m, err := ParsePageClamp(spec)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if err := validateClamps(m); err != nil {
			t.Fatalf("ParsePageClamp(%q) gave invalid clamps: %v", spec, err)
		}
		back, err := ParsePageClamp(formatClamps(m))
		if err != nil || formatClamps(back) != formatClamps(m) {
			t.Fatalf("round trip of %q: %v %v", spec, back, err)
		}
	})
}
