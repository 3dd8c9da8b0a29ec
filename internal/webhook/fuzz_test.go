package webhook

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func FuzzParseNotifications(f *testing.F) {
	f.Add(mustJSON(f, items(0, 3)))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"tenantId":1}]`))
	f.Add([]byte(`[{}, null, "x", [1]] `))
	f.Add([]byte(`{"validationCode":"x"}`))
	f.Add([]byte(`[{"tenantId":"` + testTenant + `","contentType":"Audit.General","contentId":"a$b","contentUri":"https://manage.office.com:443/api/v1/` + testTenant + `/activity/feed/audit/a%24b","contentCreated":"2026-11-30T00:00:00Z","contentExpiration":"2026-12-07T00:00:00Z"}]`))
	f.Add([]byte("[\"\\ud800\"]"))
	c := checker{tenant: testTenant, host: testHost, now: func() time.Time { return testNow },
		contentTypes: map[string]string{"audit.general": ContentTypeGeneral, "dlp.all": ContentTypeDLP}}
	f.Fuzz(func(t *testing.T, body []byte) {
		raws, err := ParseNotifications(body, 50)
		if err != nil {
			if raws != nil {
				t.Fatal("items returned with an error")
			}
			return
		}
		if len(raws) > 50 {
			t.Fatalf("%d items past the limit", len(raws))
		}
		for _, raw := range raws {
			n, reason, detail := c.checkItem(raw)
			if detail != "" {
				if reason < 0 || reason >= numReasons {
					t.Fatalf("reason %d", reason)
				}
				continue
			}
			// What is accepted is ours, of an allowed type, and its URI
			// is canonical and valid again.
			if n.TenantID != testTenant || (n.ContentType != ContentTypeGeneral && n.ContentType != ContentTypeDLP) {
				t.Fatalf("accepted %+v", n)
			}
			again, err := ValidateContentURI(n.ContentURI, testHost, testTenant, n.ContentID)
			if err != nil || again != n.ContentURI {
				t.Fatalf("accepted URI %q does not validate again: %q %v", n.ContentURI, again, err)
			}
			if !n.ContentExpiration.After(testNow) || n.ContentExpiration.Before(n.ContentCreated) {
				t.Fatalf("accepted times %+v", n)
			}
		}
	})
}

func FuzzValidateContentURI(f *testing.F) {
	id := contentID(1)
	for _, s := range []string{
		"https://manage.office.com/api/v1.0/" + testTenant + "/activity/feed/audit/" + id,
		"https://manage.office.com:443/api/v1/" + testTenant + "/activity/feed/audit/" + id,
		"https://user@manage.office.com/api/v1.0/" + testTenant + "/activity/feed/audit/" + id,
		"https://127.0.0.1/api/v1.0/" + testTenant + "/activity/feed/audit/" + id,
		"https://[::1]:443/api/v1.0/" + testTenant + "/activity/feed/audit/" + id,
		"http://manage.office.com/api/v1.0/" + testTenant + "/activity/feed/audit/" + id,
		"https://manage.office.com/api/v1.0/" + testTenant + "/activity/feed/audit/%2e%2e",
	} {
		f.Add(s, id)
	}
	f.Add("https://manage.office.com/api/v1.0/"+testTenant+"/activity/feed/audit/..", "..")
	f.Fuzz(func(t *testing.T, raw, contentID string) {
		got, err := ValidateContentURI(raw, testHost, testTenant, contentID)
		if err != nil {
			if got != "" {
				t.Fatal("a URI returned with an error")
			}
			return
		}
		u, perr := url.Parse(got)
		if perr != nil {
			t.Fatalf("canonical %q does not parse: %v", got, perr)
		}
		if u.Scheme != "https" || u.Host != testHost || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			t.Fatalf("canonical %q: wrong scheme, host or extras", got)
		}
		if u.Path != "/api/v1.0/"+testTenant+"/activity/feed/audit/"+contentID &&
			u.Path != "/api/v1/"+testTenant+"/activity/feed/audit/"+contentID {
			t.Fatalf("canonical %q: path %q", got, u.Path)
		}
		if strings.Contains(contentID, "/") || contentID == ".." || contentID == "." {
			t.Fatalf("contentId %q accepted", contentID)
		}
		if again, err := ValidateContentURI(got, testHost, testTenant, contentID); err != nil || again != got {
			t.Fatalf("canonical %q does not validate again: %q %v", got, again, err)
		}
	})
}
