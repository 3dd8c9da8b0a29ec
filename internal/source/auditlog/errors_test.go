package auditlog

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/source"
)

// fetch reads one window of Audit.General straight from the source.
func (h *harness) fetch(w source.Window) ([]source.Item, error) {
	var items []source.Item
	err := h.src.FetchPart(h.t.Context(), mde.ContentGeneral, w, func(_ context.Context, it source.Item) error {
		items = append(items, it)
		return nil
	})
	return items, err
}

var lastHour = source.Window{From: t0.Add(-time.Hour), To: t0}

func generalBlobs(h *harness, n int) {
	for i := range n {
		created := t0.Add(-50 * time.Minute).Add(time.Duration(i) * time.Minute)
		h.feed.add(blob{ct: mde.ContentGeneral, id: "b" + string(rune('a'+i)), created: created,
			records: []string{rec("r-"+string(rune('a'+i)), created, "X", "Y", 1)}})
	}
}

// Links handed out by the service that lead elsewhere — another host,
// loopback, another tenant, another operation — are refused with an
// error naming the problem and are never requested.
func TestSpoofedLinksAreRefused(t *testing.T) {
	feedPath := "/activity/feed/"
	tests := []struct {
		name, next, uri, want string
	}{
		{"NextPageUri to another host", "https://evil.example/api/v1/" + tenant + feedPath + "subscriptions/content?nextPage=2", "", "not the management host"},
		{"NextPageUri to loopback", "https://127.0.0.1/api/v1/" + tenant + feedPath + "subscriptions/content?nextPage=2", "", "not the management host"},
		{"NextPageUri to a look-alike host", "https://manage.office.com.evil.example/api/v1/" + tenant + feedPath + "subscriptions/content?nextPage=2", "", "not the management host"},
		{"NextPageUri of another tenant", "https://manage.office.com/api/v1/" + other + feedPath + "subscriptions/content?nextPage=2", "", "not the configured tenant"},
		{"NextPageUri over http", "http://manage.office.com/api/v1/" + tenant + feedPath + "subscriptions/content?nextPage=2", "", "https"},
		{"NextPageUri to another operation", "https://manage.office.com/api/v1/" + tenant + feedPath + "subscriptions/stop?contentType=Audit.General", "", "not a subscriptions/content link"},
		{"contentUri to another host", "", "https://evil.example/api/v1.0/" + tenant + feedPath + "audit/x", "not the management host"},
		{"contentUri to loopback", "", "https://127.0.0.1/api/v1.0/" + tenant + feedPath + "audit/x", "not the management host"},
		{"contentUri of another tenant", "", "https://manage.office.com/api/v1.0/" + other + feedPath + "audit/x", "not the configured tenant"},
		{"contentUri outside the feed", "", "https://manage.office.com/api/v1.0/" + tenant + "/other/audit/x", "not under"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, []string{mde.ContentGeneral}, time.Hour, 0)
			h.feed.subs[mde.ContentGeneral] = true
			h.feed.pageSize = 1
			generalBlobs(h, 3)
			h.feed.spoofNext, h.feed.spoofURI = tt.next, tt.uri
			_, err := h.fetch(lastHour)
			if err == nil || !errors.Is(err, mde.ErrBadFeedLink) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want a refused link saying %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "nextPage=") {
				t.Errorf("the error prints the link's query: %v", err)
			}
			if len(h.feed.foreign) > 0 {
				t.Errorf("requests reached %v", h.feed.foreign)
			}
		})
	}
}

// Subscriptions: a missing one is started; AF20022 from a listing starts
// it and the listing is retried; AF20024 on start is success; a second
// start within 15 minutes is not sent and the part fails with a
// retry-later message.
func TestSubscriptions(t *testing.T) {
	t.Run("missing from the list: started", func(t *testing.T) {
		h := newHarness(t, []string{mde.ContentGeneral}, time.Hour, 0)
		generalBlobs(h, 2)
		items, err := h.fetch(lastHour)
		if err != nil || len(items) != 2 || len(h.feed.starts) != 1 || h.feed.requests["list"] != 1 {
			t.Fatalf("%v, %d items, %d starts, %d lists", err, len(items), len(h.feed.starts), h.feed.requests["list"])
		}
		if _, err := h.fetch(lastHour); err != nil || h.feed.requests["list"] != 1 {
			t.Errorf("second window: %v, %d subscription lists; want the list read once", err, h.feed.requests["list"])
		}
	})
	t.Run("AF20022 from the listing: subscribe and retry", func(t *testing.T) {
		h := newHarness(t, []string{mde.ContentGeneral}, time.Hour, 0)
		h.feed.subs[mde.ContentGeneral] = true
		generalBlobs(h, 2)
		h.feed.hook = func(kind string) *fault {
			if kind == "content" && h.feed.requests["content"] == 1 {
				delete(h.feed.subs, mde.ContentGeneral) // disabled meanwhile
				return &fault{status: 400, code: "AF20022", msg: "No subscription found for the specified content type."}
			}
			return nil
		}
		items, err := h.fetch(lastHour)
		if err != nil || len(items) != 2 || len(h.feed.starts) != 1 {
			t.Fatalf("%v, %d items, %d starts", err, len(items), len(h.feed.starts))
		}
	})
	t.Run("AF20024 on start is success", func(t *testing.T) {
		h := newHarness(t, []string{mde.ContentGeneral}, time.Hour, 0)
		generalBlobs(h, 1)
		h.feed.hook = func(kind string) *fault {
			if kind == "start" {
				h.feed.subs[mde.ContentGeneral] = true
				return &fault{status: 400, code: "AF20024", msg: "The subscription is already enabled. No property change."}
			}
			return nil
		}
		if items, err := h.fetch(lastHour); err != nil || len(items) != 1 {
			t.Fatalf("%v, %d items", err, len(items))
		}
	})
	t.Run("a second start within 15 minutes is not sent", func(t *testing.T) {
		h := newHarness(t, []string{mde.ContentGeneral}, time.Hour, 0)
		generalBlobs(h, 1)
		if _, err := h.fetch(lastHour); err != nil {
			t.Fatal(err)
		}
		h.feed.hook = func(kind string) *fault {
			if kind == "content" {
				return &fault{status: 400, code: "AF20023", msg: "The subscription was disabled by an admin."}
			}
			return nil
		}
		h.clk.Set(t0.Add(5 * time.Minute))
		_, err := h.fetch(lastHour)
		if err == nil || !strings.Contains(err.Error(), "one start per 15 minutes: retry after") || len(h.feed.starts) != 1 {
			t.Fatalf("%v, %d starts", err, len(h.feed.starts))
		}
		h.feed.hook = nil
		h.clk.Set(t0.Add(16 * time.Minute))
		delete(h.feed.subs, mde.ContentGeneral)
		if _, err := h.fetch(lastHour); err != nil || len(h.feed.starts) != 2 {
			t.Fatalf("after 15 minutes: %v, %d starts", err, len(h.feed.starts))
		}
	})
}

// AF429 throttling, with HTTP 403 (as the troubleshooting page shows) and
// with 429: the client backs off and the window is read.
func TestThrottledThenRead(t *testing.T) {
	for _, status := range []int{403, 429} {
		t.Run(string(rune('0'+status/100))+"xx", func(t *testing.T) {
			h := newHarness(t, []string{mde.ContentGeneral}, time.Hour, 0)
			h.feed.subs[mde.ContentGeneral] = true
			generalBlobs(h, 2)
			n := 0
			h.feed.hook = func(kind string) *fault {
				if n < 2 && (kind == "content" || kind == "blob") {
					n++
					return &fault{status: status, code: "AF429", msg: "Too many requests. Method=GetBlob, PublisherId=" + tenant}
				}
				return nil
			}
			items, err := h.fetch(lastHour)
			if err != nil || len(items) != 2 {
				t.Fatalf("%v, %d items", err, len(items))
			}
			if len(h.waits) < 2 {
				t.Errorf("%d backoff waits, want 2", len(h.waits))
			}
		})
	}
}

// Errors a user must act on say what to do.
func TestClearErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		code   string
		msg    string
		want   string
	}{
		{"missing permission", 403, "AF10001", "The permission set () sent in the request did not include the expected permission ActivityFeed.Read.", "ActivityFeed.Read and give admin consent"},
		{"tenant mismatch", 401, "AF20010", "The tenant ID in the request does not match the token.", "tenant mismatch"},
		{"audit logging off", 400, "AF20012", "Tenant " + tenant + " does not exist.", "unified audit logging is not turned on"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, []string{mde.ContentGeneral}, time.Hour, 0)
			h.feed.hook = func(string) *fault { return &fault{status: tt.status, code: tt.code, msg: tt.msg} }
			res := h.run()
			if res.Err == nil || !strings.Contains(res.Err.Error(), tt.want) || !strings.Contains(res.Err.Error(), tt.code) {
				t.Fatalf("err %v, want %s and %q", res.Err, tt.code, tt.want)
			}
		})
	}
}

// A listing answered 200 with something other than an array of blobs
// fails the part, naming the keys found.
func TestListingOfUnknownShape(t *testing.T) {
	h := newHarness(t, []string{mde.ContentGeneral}, time.Hour, 0)
	h.feed.subs[mde.ContentGeneral] = true
	h.feed.hook = func(kind string) *fault {
		if kind == "content" {
			return &fault{status: 200, code: "SECRETVALUE", msg: "SECRETVALUE"}
		}
		return nil
	}
	_, err := h.fetch(lastHour)
	if err == nil || !strings.Contains(err.Error(), "a JSON object with keys [error]") || strings.Contains(err.Error(), "SECRETVALUE") {
		t.Fatalf("err %v", err)
	}
}

// Blob and record shapes the decoder does not know are errors naming
// keys, indexes and JSON types — never values.
func TestDecodeBlobShapes(t *testing.T) {
	created := t0
	good := `[` + rec("a", t0, MDEWorkload, "LiveResponseGetFile", 110) + `,` + rec("b", t0, "Exchange", "Send", 2) + `,` +
		rec("c", t0, MDEWorkload, "AddIndicator", 112) + `]`
	items, err := DecodeBlob(mde.ContentGeneral, created, []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for _, it := range items {
		tables = append(tables, it.Table)
		if !it.Checked || !it.Time.Equal(created) || !it.EventTime.Equal(t0) {
			t.Errorf("item %+v", it)
		}
	}
	if strings.Join(tables, ",") != "O365AuditGeneral,MdeAuditResponseActions,O365AuditGeneral,O365AuditGeneral" {
		t.Errorf("tables %v: only the response action goes to both", tables)
	}
	if items[0].ID == items[1].ID {
		t.Error("the response-action copy has the same id as the content-type record")
	}
	at, err := ParseCreationTime("2015-06-29T20:03:19")
	if err != nil || !at.Equal(time.Date(2015, 6, 29, 20, 3, 19, 0, time.UTC)) {
		t.Errorf("CreationTime without Z: %v %v", at, err)
	}
	bad := map[string]string{
		`{"error":{"code":"SECRETVALUE"}}`:                              "a JSON object with keys [error]",
		`"SECRETVALUE"`:                                                 "a JSON string",
		`["SECRETVALUE"]`:                                               "record 0: expected a JSON object, got a JSON string",
		`[{"CreationTime":"2015-06-29T20:03:19"}]`:                      "field Id is missing",
		`[{"Id":1234,"CreationTime":"2015-06-29T20:03:19"}]`:            "field Id is a JSON number, not a string",
		`[{"Id":"SECRETVALUE","CreationTime":"SECRETVALUE"}]`:           "field CreationTime: not an ISO 8601 time",
		`[{"Id":"SECRETVALUE","CreationTime":["SECRETVALUE"]}]`:         "field CreationTime is a JSON array",
		`[{"Id":"a","CreationTime":"2015-06-29T20:03:19"},SECRETVALUE]`: "expected a JSON array of audit records",
	}
	for body, want := range bad {
		_, err := DecodeBlob(mde.ContentGeneral, created, []byte(body))
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "SECRETVALUE") {
			t.Errorf("%s: %v, want %q and no value", body, err, want)
		}
	}
}

func FuzzDecodeBlob(f *testing.F) {
	f.Add([]byte(`[` + rec("a", t0, MDEWorkload, "RunLiveResponseSession", 110) + `]`))
	f.Add([]byte(`[{"Id":"x","CreationTime":"2015-06-29T20:03:19.123Z","Workload":"MicrosoftDefenderForEndpoint","RecordType":"MSDEResponseActions"}]`))
	f.Add([]byte(`{"error":{"code":"AF20051","message":"x"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := DecodeBlob(mde.ContentGeneral, t0, b)
		if err != nil {
			return
		}
		for _, it := range items {
			if it.ID == "" || it.EventTime.IsZero() || it.Table == "" || !it.Checked {
				t.Fatalf("item without id, time or table: %+v", it)
			}
		}
	})
}
