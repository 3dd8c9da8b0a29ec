package detectionrules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"github.com/defenderharvester/defenderharvester/internal/httpx"
	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/sim"
	"github.com/defenderharvester/defenderharvester/internal/sim/simtest"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil/srctest"
)

// simNow is the emulator's data clock: twelve hours after its start, so
// the scripted rule changes (an auto-disable, a new rule) have happened.
var simNow = time.Date(2026, 6, 10, 15, 30, 0, 0, time.UTC)

// simClients starts the emulated tenant and returns a Graph client signed
// in as the tenant's app (restricted: the app without any permission),
// and a portal client.
func simClients(t *testing.T, restricted bool) (*sim.Tenant, *mde.GraphClient, mde.Portal) {
	t.Helper()
	ten, srv, _ := simtest.Start(t, sim.Options{Seed: 7, Machines: 2, Start: simNow.Add(-12 * time.Hour), Now: func() time.Time { return simNow }}, "")
	rt, err := mde.NewTransport(mde.TransportOptions{EmulatorAddress: srv.Addr(), EmulatorCAPEM: ten.CACertPEM()})
	if err != nil {
		t.Fatal(err)
	}
	c := ten.Credentials()
	id, secret := c.ClientID, c.ClientSecret
	if restricted {
		id, secret = c.RestrictedClientID, c.RestrictedClientSecret
	}
	cred, err := auth.NewCredential(auth.CredentialOptions{Method: auth.MethodClientSecret, TenantID: c.TenantID, ClientID: id, Secret: secret,
		Client: httpx.NewClient(rt, 10*time.Second), DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	co := mde.ClientOptions{Transport: rt, MaxAttempts: 1, Limiter: mde.Limiters{}, Timeout: 10 * time.Second}
	gc, err := mde.NewGraphClient(mde.GraphOptions{Tokens: auth.NewAzureCredential(cred, mde.GraphScope), ClientOptions: co})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := auth.NewStaticCookies(c.SccAuth, url.QueryEscape(c.XSRFToken))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := mde.NewPortalClient(mde.PortalOptions{Session: sess, ClientOptions: co})
	if err != nil {
		t.Fatal(err)
	}
	return ten, gc, pc
}

// portalRuleIDs are the rules the emulator holds, read from the portal's
// custom detections list with plain decoding, independent of the source.
func portalRuleIDs(t *testing.T, p mde.Portal) []string {
	t.Helper()
	body, err := p.Get(context.Background(), "/apiproxy/mtp/huntingService/rules/unified", url.Values{"pageIndex": {"1"}, "pageSize": {"10000"}, "sortOrder": {"Ascending"}})
	if err != nil {
		t.Fatal(err)
	}
	var rules []struct {
		ID int64 `json:"Id"`
	}
	if err := json.Unmarshal(body, &rules); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rules {
		ids = append(ids, strconv.FormatInt(r.ID, 10))
	}
	sort.Strings(ids)
	return ids
}

// Every rule the emulator holds arrives once, keyed by its id, read over
// several pages (the emulator serves at most 3 a page), in both versions
// and with or without the count.
func TestSnapshotAgainstTheEmulator(t *testing.T) {
	ten, gc, pc := simClients(t, false)
	want := portalRuleIDs(t, pc)
	if len(want) <= sim.GraphPageCap {
		t.Fatalf("the emulator holds %d rules: paging is not exercised", len(want))
	}
	for _, cfg := range []Config{
		*NewConfig(),
		{APIVersion: mde.GraphV1, PageSize: 2, Count: false},
		{APIVersion: mde.GraphBeta, PageSize: 1000, Count: true},
	} {
		t.Run(fmt.Sprintf("%s/%d/%t", cfg.APIVersion, cfg.PageSize, cfg.Count), func(t *testing.T) {
			before := ten.RequestCount(sim.FamilyGraph)
			s := srctest.Build(t, Name, source.Deps{Graph: gc}, func(c any) { *c.(*Config) = cfg }).(source.SnapshotSource)
			items, ok := srctest.CheckSnapshot(t, s, "", nil)
			if !ok {
				return
			}
			got := srctest.Keys(items)
			sort.Strings(got)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("keys %v, want the emulator's rules %v", got, want)
			}
			size := min(cfg.PageSize, sim.GraphPageCap)
			if n, pages := ten.RequestCount(sim.FamilyGraph)-before, (len(want)+size-1)/size; n != pages {
				t.Errorf("%d Graph requests, want %d pages", n, pages)
			}
			autoDisabled := 0
			for _, it := range items {
				var r map[string]json.RawMessage
				if err := json.Unmarshal(it.Raw, &r); err != nil {
					t.Fatal(err)
				}
				// The actor and time fields keep Graph's names (the
				// pipeline's change records read them).
				for _, k := range []string{"id", "displayName", "isEnabled", "createdBy", "createdDateTime", "lastModifiedBy", "lastModifiedDateTime", "queryCondition", "schedule", "lastRunDetails", "detectionAction"} {
					if _, ok := r[k]; !ok {
						t.Errorf("rule %s has no %s", it.Key, k)
					}
				}
				if string(r["lastModifiedBy"]) == `"Microsoft Defender"` {
					autoDisabled++
					if string(r["isEnabled"]) != "false" {
						t.Errorf("rule %s: auto-disabled but enabled", it.Key)
					}
				}
				if it.ID != "" || !it.Time.IsZero() {
					t.Errorf("snapshot item %s has an id or time", it.Key)
				}
			}
			if autoDisabled != 1 {
				t.Errorf("%d auto-disabled rules, want the emulator's one", autoDisabled)
			}
		})
	}
}

// An app without CustomDetection.Read.All gets Graph's 403, and the error
// says which permission to grant.
func TestMissingPermission(t *testing.T) {
	_, gc, _ := simClients(t, true)
	s := srctest.Build(t, Name, source.Deps{Graph: gc}, nil).(source.SnapshotSource)
	if _, ok := srctest.CheckSnapshot(t, s, "CustomDetection.Read.All (API permissions", mde.ErrForbidden); ok {
		t.Fatal("no error")
	}
	err := s.Snapshot(context.Background(), func(context.Context, source.Item) error { return nil })
	for _, w := range []string{"detectionrules:", "HTTP 403 Forbidden", "Missing role permissions", "admin consent"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("err = %v, want it to mention %q", err, w)
		}
	}
}

// fakeGraph is a Graph client whose requests reach h.
func fakeGraph(t *testing.T, h http.Handler) *mde.GraphClient {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	rt, err := mde.NewTransport(mde.TransportOptions{EmulatorAddress: srv.Listener.Addr().String(), Plaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	gc, err := mde.NewGraphClient(mde.GraphOptions{Tokens: auth.NewStaticToken("test-token"), ClientOptions: mde.ClientOptions{
		Transport: rt, MaxAttempts: 1, Limiter: mde.Limiters{},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return gc
}

func rule(id string) string {
	return fmt.Sprintf(`{"id":%s,"displayName":"Rule","isEnabled":true,"createdBy":"a@contoso.com","createdDateTime":"2026-01-01T00:00:00Z","lastModifiedBy":"b@contoso.com","lastModifiedDateTime":"2026-02-01T00:00:00Z","queryCondition":{"queryText":"DeviceEvents | take 1"},"schedule":{"period":"1H"}}`, id)
}

const list = "https://graph.microsoft.com/beta/security/rules/detectionRules"

func TestSnapshotCases(t *testing.T) {
	next := func(tok string) string { return `,"@odata.nextLink":"` + list + `?$skiptoken=` + tok + `"` }
	tests := []struct {
		name     string
		pages    map[string]string // $skiptoken → body
		wantKeys string
		wantErr  string
		wantIs   error
	}{
		{name: "two pages", pages: map[string]string{"": `{"value":[` + rule(`"7506"`) + `]` + next("p2") + `}`, "p2": `{"value":[` + rule(`"8575"`) + `]}`}, wantKeys: "7506,8575"},
		{name: "empty", pages: map[string]string{"": `{"@odata.context":"x","value":[]}`}, wantKeys: ""},
		{name: "numeric id", pages: map[string]string{"": `{"value":[` + rule(`42`) + `]}`}, wantKeys: "42"},
		{name: "id twice over pages", pages: map[string]string{"": `{"value":[` + rule(`"1"`) + `]` + next("p2") + `}`, "p2": `{"value":[` + rule(`"1"`) + `]}`}, wantErr: `key "1" appears twice`, wantIs: srcutil.ErrShape},
		{name: "rule without id", pages: map[string]string{"": `{"value":[{"displayName":"x"}]}`}, wantErr: "record has no id field", wantIs: srcutil.ErrShape},
		{name: "empty id", pages: map[string]string{"": `{"value":[` + rule(`""`) + `]}`}, wantErr: "not a non-empty string or number", wantIs: srcutil.ErrShape},
		{name: "no value", pages: map[string]string{"": `{"rules":[` + rule(`"1"`) + `]}`}, wantErr: "got a JSON object with keys [rules (array)]", wantIs: srcutil.ErrShape},
		{name: "count above the rules", pages: map[string]string{"": `{"@odata.count":3,"value":[` + rule(`"1"`) + `]}`}, wantErr: "reported 3 items (@odata.count), returned 1", wantIs: srcutil.ErrShape},
		{name: "paging loop", pages: map[string]string{"": `{"value":[` + rule(`"1"`) + `]` + next("p2") + `}`, "p2": `{"value":[` + rule(`"2"`) + `]` + next("p2") + `}`}, wantErr: "paging loop", wantIs: srcutil.ErrShape},
		{name: "foreign nextLink", pages: map[string]string{"": `{"value":[` + rule(`"1"`) + `],"@odata.nextLink":"https://evil.example/beta/security/rules/detectionRules"}`}, wantErr: "refusing Microsoft Graph continuation link", wantIs: mde.ErrBadGraphLink},
		{name: "403", pages: map[string]string{"": `403`}, wantErr: "CustomDetection.Read.All", wantIs: mde.ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Host != mde.GraphHost || r.URL.Path != "/beta/security/rules/detectionRules" || r.Header.Get("Authorization") != "Bearer test-token" {
					t.Errorf("request %s %s auth %q", r.Host, r.URL.Path, r.Header.Get("Authorization"))
				}
				q := r.URL.Query()
				if q.Get("$skiptoken") == "" && (q.Get("$top") != "100" || q.Get("$count") != "true") {
					t.Errorf("first request's query %q", r.URL.RawQuery)
				}
				body := tt.pages[q.Get("$skiptoken")]
				if body == "403" {
					w.WriteHeader(http.StatusForbidden)
					body = `{"error":{"code":"Forbidden","message":"Missing role permissions on the request."}}`
				}
				w.Write([]byte(body))
			})
			s := srctest.Build(t, Name, source.Deps{Graph: fakeGraph(t, h)}, nil).(source.SnapshotSource)
			items, ok := srctest.CheckSnapshot(t, s, tt.wantErr, tt.wantIs)
			if !ok {
				return
			}
			if got := strings.Join(srctest.Keys(items), ","); got != tt.wantKeys {
				t.Errorf("keys = %s, want %s", got, tt.wantKeys)
			}
			for _, it := range items {
				if !strings.Contains(strings.Join(collect(tt.pages), ""), string(it.Raw)) {
					t.Errorf("rule %s was changed: %s", it.Key, it.Raw)
				}
			}
		})
	}
}

func collect(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func TestNeedsGraph(t *testing.T) {
	f, _ := source.Lookup(Name)
	_, err := f.New(source.Deps{API: srctest.Public(t, http.NotFoundHandler())}, nil)
	if err == nil || !strings.Contains(err.Error(), "CustomDetection.Read.All") || !strings.Contains(err.Error(), "public_api") {
		t.Errorf("err = %v", err)
	}
	if f.DefaultEnabled || f.API != "public" || f.Kind != source.Snapshot || f.Table != Table || f.ScheduleOrDefault() != "1h" {
		t.Errorf("factory %+v", f)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{*NewConfig(), ""},
		{Config{APIVersion: mde.GraphV1, PageSize: 1}, ""},
		{Config{APIVersion: "v2", PageSize: 100}, `api_version "v2" must be beta or v1.0`},
		{Config{APIVersion: "", PageSize: 100}, "api_version"},
		{Config{APIVersion: mde.GraphBeta, PageSize: 0}, "page_size 0 must be between 1 and 1000"},
		{Config{APIVersion: mde.GraphBeta, PageSize: 1001}, "page_size"},
	} {
		err := tc.cfg.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: err = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	f, _ := source.Lookup(Name)
	if _, err := f.New(source.Deps{Graph: fakeGraph(t, http.NotFoundHandler())}, &Config{APIVersion: "x", PageSize: 1}); err == nil || !strings.Contains(err.Error(), "detectionrules: api_version") {
		t.Errorf("bad config built: %v", err)
	}
}

func TestDecodePage(t *testing.T) {
	p, err := DecodePage([]byte(`{"@odata.count":2,"value":[` + rule(`"1"`) + `,` + rule(`"2"`) + `],"@odata.nextLink":"` + list + `?$skiptoken=x"}`))
	if err != nil || len(p.Items) != 2 || p.Count != 2 || p.NextLink == "" || p.Items[1].Key != "2" {
		t.Fatalf("page %+v, err %v", p, err)
	}
	if _, err := DecodePage([]byte(`{"value":"SECRET"}`)); !errors.Is(err, srcutil.ErrShape) || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("err = %v", err)
	}
}

func FuzzDecodePage(f *testing.F) {
	for _, s := range []string{
		`{"value":[` + rule(`"1"`) + `],"@odata.nextLink":"` + list + `?$skiptoken=x","@odata.count":1}`,
		`{"value":[]}`, `{"value":[{"id":1},{"id":1}]}`, `{"value":[{"id":""}]}`, `{"@odata.count":-1,"value":[]}`, `[{"id":"1"}]`, `{"value":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePage(b)
		srctest.CheckSnapshotDecode(t, p.Items, err)
		if err != nil && (p.NextLink != "" || !errors.Is(err, srcutil.ErrShape)) {
			t.Fatalf("error %v with a link or of another kind", err)
		}
	})
}
