package auditlog

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/source"
)

const (
	authID   = "Wh-S3cret_AuthID.0123456789"
	hookAddr = "https://hooks.contoso.com/o365/{tenant}"
)

// newHookHarness is newHarness with the webhook resolved (tenant name
// contoso, AuthID from the environment).
func newHookHarness(t *testing.T, cts []string) (*harness, *src) {
	t.Helper()
	h := newHarness(t, cts, time.Hour, 0)
	cfg := NewConfig()
	cfg.ContentTypes = cts
	cfg.Webhook.Address = hookAddr
	s := newSrc(h.srcFeed(), *cfg, slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), h.clk.Now)
	hook, err := resolveWebhook(cfg.Webhook, "contoso", tenant, env(DefaultAuthIDEnv, authID), t0)
	if err != nil {
		t.Fatal(err)
	}
	s.hook = hook
	h.src = s
	return h, s
}

// srcFeed is the client the harness's source reads through.
func (h *harness) srcFeed() mde.ActivityFeed { return h.src.(*src).feed }

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// ourHook is the webhook the source registers, as the fake stores it.
func ourHook(status string) *fakeHook {
	return &fakeHook{Address: "https://hooks.contoso.com/o365/contoso", AuthID: authID, status: status}
}

// hookBodies counts the start bodies with and without a webhook.
func (f *fakeFeed) hookBodies() (with, without int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.startBodies {
		if b == "" {
			without++
			continue
		}
		var in struct {
			Webhook struct{ Address, AuthID string }
		}
		if err := json.Unmarshal([]byte(b), &in); err != nil || in.Webhook.Address != "https://hooks.contoso.com/o365/contoso" || in.Webhook.AuthID != authID {
			f.t.Errorf("start body %s", b)
		}
		with++
	}
	return with, without
}

func TestWebhookConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(w *WebhookConfig)
		want string // "" = valid
	}{
		{"off", func(w *WebhookConfig) {}, ""},
		{"off with other keys", func(w *WebhookConfig) { w.AuthIDFile = "x" }, ""},
		{"with {tenant}", func(w *WebhookConfig) { w.Address = hookAddr }, ""},
		{"host placeholder", func(w *WebhookConfig) { w.Address = "https://{tenant}.hooks.contoso.com/" }, ""},
		{"port and no path", func(w *WebhookConfig) { w.Address = "https://hooks.contoso.com:8443" }, ""},
		{"expiration", func(w *WebhookConfig) { w.Address = hookAddr; w.Expiration = "2027-01-01T00:00:00+02:00" }, ""},
		{"http", func(w *WebhookConfig) { w.Address = "http://hooks.contoso.com/" }, "webhook.address: the address must be an https URL"},
		{"no scheme", func(w *WebhookConfig) { w.Address = "hooks.contoso.com/x" }, "webhook.address: the address must be an https URL"},
		{"no host", func(w *WebhookConfig) { w.Address = "https:///x" }, "webhook.address: the address has no host"},
		{"user info", func(w *WebhookConfig) { w.Address = "https://u:SECRETVALUE@hooks.contoso.com/" }, "webhook.address: the address must not carry user info"},
		{"query", func(w *WebhookConfig) { w.Address = "https://hooks.contoso.com/?k=SECRETVALUE" }, "webhook.address: the address must not have a query"},
		{"fragment", func(w *WebhookConfig) { w.Address = "https://hooks.contoso.com/#SECRETVALUE" }, "webhook.address: the address must not have a fragment"},
		{"unknown placeholder", func(w *WebhookConfig) { w.Address = "https://hooks.contoso.com/{name}" }, "webhook.address: the only placeholder"},
		{"white space", func(w *WebhookConfig) { w.Address = "https://hooks.contoso.com/a b" }, "webhook.address: the address contains white space"},
		{"not a URL", func(w *WebhookConfig) { w.Address = "https://hooks.contoso.com:x:y/" }, "webhook.address: the address does not parse"},
		{"bad env name", func(w *WebhookConfig) { w.Address = hookAddr; w.AuthIDEnv = "DH-WEBHOOK" }, "webhook.auth_id_env"},
		{"bad expiration", func(w *WebhookConfig) { w.Address = hookAddr; w.Expiration = "2027-01-01" }, "webhook.expiration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewConfig()
			tt.mod(&c.Webhook)
			err := c.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "SECRETVALUE") {
				t.Errorf("the error quotes the address: %v", err)
			}
		})
	}
	if NewConfig().Webhook.AuthIDEnv != DefaultAuthIDEnv {
		t.Error("auth_id_env has no default")
	}
	for _, tt := range []struct{ in, want string }{{"hook.id", "/etc/dh/hook.id"}, {"/abs/hook.id", "/abs/hook.id"}, {"", ""}} {
		c := NewConfig()
		c.Webhook.AuthIDFile = tt.in
		c.ResolvePaths(func(p string) string {
			if filepath.IsAbs(p) {
				return p
			}
			return filepath.Join("/etc/dh", p)
		})
		if c.Webhook.AuthIDFile != tt.want {
			t.Errorf("auth_id_file %q resolved to %q, want %q", tt.in, c.Webhook.AuthIDFile, tt.want)
		}
	}
}

func TestResolveWebhook(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := file("good.id", authID+"\n", 0o600)
	open := file("open.id", authID, 0o644)
	spaced := file("spaced.id", "has a space", 0o600)
	long := file("long.id", strings.Repeat("a", MaxAuthIDLength+1), 0o600)
	tests := []struct {
		name       string
		w          WebhookConfig
		tenantName string
		getenv     func(string) string
		wantAddr   string
		wantPath   string
		wantExp    string
		wantErr    []string
	}{
		{name: "env, {tenant} = name", w: WebhookConfig{Address: hookAddr}, tenantName: "contoso", getenv: env(DefaultAuthIDEnv, authID),
			wantAddr: "https://hooks.contoso.com/o365/contoso", wantPath: "/o365/contoso"},
		{name: "{tenant} = tenant id without a name", w: WebhookConfig{Address: hookAddr}, getenv: env(DefaultAuthIDEnv, authID),
			wantAddr: "https://hooks.contoso.com/o365/" + tenant, wantPath: "/o365/" + tenant},
		{name: "{tenant} in the host", w: WebhookConfig{Address: "https://{tenant}.hooks.contoso.com"}, tenantName: "fabrikam", getenv: env(DefaultAuthIDEnv, authID),
			wantAddr: "https://fabrikam.hooks.contoso.com", wantPath: "/"},
		{name: "a name that cannot be a host", w: WebhookConfig{Address: "https://{tenant}.hooks.contoso.com"}, tenantName: "a b", getenv: env(DefaultAuthIDEnv, authID),
			wantErr: []string{"webhook.address", `{tenant} = "a b"`}},
		{name: "env named by auth_id_env", w: WebhookConfig{Address: hookAddr, AuthIDEnv: "MY_HOOK_ID", AuthIDFile: open}, getenv: env("MY_HOOK_ID", authID, DefaultAuthIDEnv, "other"),
			wantAddr: "https://hooks.contoso.com/o365/" + tenant, wantPath: "/o365/" + tenant},
		{name: "env empty: file", w: WebhookConfig{Address: hookAddr, AuthIDFile: good}, getenv: env(DefaultAuthIDEnv, " "),
			wantAddr: "https://hooks.contoso.com/o365/" + tenant, wantPath: "/o365/" + tenant},
		{name: "no environment: file", w: WebhookConfig{Address: hookAddr, AuthIDFile: good},
			wantAddr: "https://hooks.contoso.com/o365/" + tenant, wantPath: "/o365/" + tenant},
		{name: "expiration in UTC", w: WebhookConfig{Address: hookAddr, AuthIDFile: good, Expiration: "2027-01-01T02:00:00+02:00"},
			wantAddr: "https://hooks.contoso.com/o365/" + tenant, wantPath: "/o365/" + tenant, wantExp: "2027-01-01T00:00:00Z"},
		{name: "expiration passed", w: WebhookConfig{Address: hookAddr, AuthIDFile: good, Expiration: "2026-01-01T00:00:00Z"},
			wantErr: []string{"webhook.expiration", "has passed"}},
		{name: "neither", w: WebhookConfig{Address: hookAddr}, getenv: env(),
			wantErr: []string{"no webhook AuthID", DefaultAuthIDEnv, "webhook.auth_id_file"}},
		{name: "neither, custom variable", w: WebhookConfig{Address: hookAddr, AuthIDEnv: "MY_HOOK_ID"}, getenv: env(DefaultAuthIDEnv, authID),
			wantErr: []string{"MY_HOOK_ID", "webhook.auth_id_file"}},
		{name: "file others can read", w: WebhookConfig{Address: hookAddr, AuthIDFile: open},
			wantErr: []string{"webhook.auth_id_file", "chmod 600"}},
		{name: "file missing", w: WebhookConfig{Address: hookAddr, AuthIDFile: filepath.Join(dir, "none")},
			wantErr: []string{"webhook.auth_id_file"}},
		{name: "space in the AuthID", w: WebhookConfig{Address: hookAddr, AuthIDFile: spaced},
			wantErr: []string{"webhook.auth_id_file", "printable ASCII without spaces"}},
		{name: "control character in the variable", w: WebhookConfig{Address: hookAddr}, getenv: env(DefaultAuthIDEnv, "SECRET\x01VALUE"),
			wantErr: []string{"environment variable " + DefaultAuthIDEnv, "printable ASCII"}},
		{name: "non-ASCII", w: WebhookConfig{Address: hookAddr}, getenv: env(DefaultAuthIDEnv, "SECRETVALUEé"),
			wantErr: []string{"printable ASCII"}},
		{name: "too long", w: WebhookConfig{Address: hookAddr, AuthIDFile: long},
			wantErr: []string{"1001 characters", "at most 1000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := resolveWebhook(tt.w, tt.tenantName, tenant, tt.getenv, t0)
			if len(tt.wantErr) > 0 {
				for _, want := range tt.wantErr {
					if err == nil || !strings.Contains(err.Error(), want) {
						t.Errorf("err %v, want %q", err, want)
					}
				}
				if err != nil && (strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), authID) || strings.Contains(err.Error(), "aaaaaaaa")) {
					t.Errorf("the error carries the AuthID: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.spec.Address != tt.wantAddr || h.path != tt.wantPath || h.spec.AuthID != authID || h.spec.Expiration != tt.wantExp {
				t.Errorf("got %v path %s, want %s %s %s", h.spec, h.path, tt.wantAddr, tt.wantPath, tt.wantExp)
			}
		})
	}
}

// The registered factory resolves the webhook from deps (tenant name,
// environment) and builds a Hooked source.
func TestFactoryWebhook(t *testing.T) {
	f, ok := source.Lookup(Name)
	if !ok {
		t.Fatal("not registered")
	}
	clk := &fakeClock{t: t0}
	client := serve(t, newFake(t, clk), nil)
	deps := func(getenv func(string) string) source.Deps {
		return source.Deps{TenantID: tenant, TenantName: "contoso", Getenv: getenv, Now: clk.Now,
			ActivityFeed: func(string, string) (mde.ActivityFeed, error) { return client, nil }}
	}
	cfg := NewConfig()
	cfg.ContentTypes = []string{mde.ContentGeneral, mde.ContentDLP}
	cfg.Cloud = "gcc"
	s, err := f.New(deps(env(DefaultAuthIDEnv, authID)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	hooked, ok := s.(Hooked)
	if !ok {
		t.Fatalf("%T is not Hooked", s)
	}
	if _, on := hooked.Webhook(); on {
		t.Error("webhook settings without webhook.address")
	}
	if err := hooked.UseWebhook(t.Context()); err == nil || !strings.Contains(err.Error(), "webhook.address is not configured") {
		t.Errorf("UseWebhook without an address: %v", err)
	}
	cfg.Webhook.Address = hookAddr
	s, err = f.New(deps(env(DefaultAuthIDEnv, authID)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	got, on := s.(Hooked).Webhook()
	want := WebhookSettings{Address: "https://hooks.contoso.com/o365/contoso", Path: "/o365/contoso", AuthID: authID,
		ContentTypes: []string{mde.ContentGeneral, mde.ContentDLP}, Cloud: "gcc"}
	if !on || !reflect.DeepEqual(got, want) {
		t.Errorf("settings %v, want %v", got, want)
	}
	if strings.Contains(fmt.Sprintf("%v %+v", got, got), authID) {
		t.Error("formatting the settings prints the AuthID")
	}
	if _, err := f.New(deps(nil), cfg); err == nil || !strings.Contains(err.Error(), DefaultAuthIDEnv) {
		t.Errorf("no AuthID: %v", err)
	}
}

func TestUseWebhook(t *testing.T) {
	cts := []string{mde.ContentGeneral, mde.ContentExchange}
	tests := []struct {
		name string
		// setup prepares the fake service.
		setup func(f *fakeFeed)
		// wantStarts are the starts UseWebhook sends (all with the webhook).
		wantStarts int
		wantErr    string
	}{
		{name: "starts each content type with the webhook", setup: func(f *fakeFeed) {
			f.subs[mde.ContentGeneral] = true // enabled, no webhook; Exchange missing
		}, wantStarts: 2},
		{name: "skips those already right", setup: func(f *fakeFeed) {
			for _, ct := range cts {
				f.subs[ct], f.webhooks[ct] = true, ourHook("enabled")
			}
		}},
		{name: "a hidden authId compares on the address", setup: func(f *fakeFeed) {
			for _, ct := range cts {
				f.subs[ct], f.webhooks[ct] = true, ourHook("enabled")
			}
			f.hideAuthID = true
		}},
		{name: "re-registers a disabled webhook", setup: func(f *fakeFeed) {
			f.subs[mde.ContentGeneral], f.webhooks[mde.ContentGeneral] = true, ourHook("disabled")
			f.subs[mde.ContentExchange], f.webhooks[mde.ContentExchange] = true, ourHook("enabled")
		}, wantStarts: 1},
		{name: "another address or authId is replaced", setup: func(f *fakeFeed) {
			other := ourHook("enabled")
			other.Address = "https://old.contoso.com/hook"
			f.subs[mde.ContentGeneral], f.webhooks[mde.ContentGeneral] = true, other
			stale := ourHook("enabled")
			stale.AuthID = "old-auth-id"
			f.subs[mde.ContentExchange], f.webhooks[mde.ContentExchange] = true, stale
		}, wantStarts: 2},
		{name: "AF20024 is fine", setup: func(f *fakeFeed) {
			f.hook = func(kind string) *fault {
				if kind == "start" {
					return &fault{status: 400, code: "AF20024", msg: "The subscription is already enabled. No property change."}
				}
				return nil
			}
		}, wantStarts: 2},
		{name: "validation failed: the error says what to check, the other content type goes", setup: func(f *fakeFeed) {
			f.faults = append(f.faults, &fault{op: "start", status: 400, code: "AF20021",
				msg: "The webhook endpoint {https://hooks.contoso.com/o365/contoso} could not be validated. The endpoint did not return HTTP 200.", times: 1})
		}, wantStarts: 2, wantErr: "validation POST with HTTP 200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, s := newHookHarness(t, cts)
			tt.setup(h.feed)
			err := s.UseWebhook(t.Context())
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err %v, want %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), authID) {
				t.Errorf("the error carries the AuthID: %v", err)
			}
			with, without := h.feed.hookBodies()
			if with != tt.wantStarts || without != 0 {
				t.Errorf("%d starts with the webhook, %d without; want %d with", with, without, tt.wantStarts)
			}
			if strings.Contains(h.logs.String(), authID) {
				t.Errorf("the logs carry the AuthID:\n%s", h.logs.String())
			}
		})
	}
}

// The 15-minute throttle: a content type started by a poll moments
// before cannot take the webhook yet; UseWebhook says when to retry and
// still registers the others; polling goes on (one warning) and the
// start is sent once the 15 minutes are over.
func TestUseWebhookThrottle(t *testing.T) {
	h, s := newHookHarness(t, []string{mde.ContentGeneral, mde.ContentExchange})
	h.feed.subs[mde.ContentGeneral] = true
	generalBlobs(h, 1)
	h.feed.add(blob{ct: mde.ContentExchange, id: "ex1", created: t0.Add(-30 * time.Minute), records: []string{rec("ex-1", t0.Add(-31*time.Minute), "Exchange", "Send", 2)}})
	readExchange := func() int {
		var n int
		err := s.FetchPart(t.Context(), mde.ContentExchange, lastHour, func(context.Context, source.Item) error { n++; return nil })
		if err != nil {
			t.Fatalf("polling Exchange: %v", err)
		}
		return n
	}
	if readExchange() != 1 { // starts Exchange, without a webhook
		t.Fatal("Exchange not read")
	}
	h.clk.Set(t0.Add(5 * time.Minute))
	err := s.UseWebhook(t.Context())
	if err == nil || !strings.Contains(err.Error(), mde.ContentExchange) || !strings.Contains(err.Error(), "retry after "+t0.Add(15*time.Minute).Format(time.RFC3339)) {
		t.Fatalf("err %v, want Exchange to be retried after 15 minutes", err)
	}
	if h.feed.webhooks[mde.ContentGeneral] == nil || h.feed.webhooks[mde.ContentExchange] != nil {
		t.Fatalf("webhooks %v", h.feed.webhooks)
	}
	for _, at := range []time.Duration{6 * time.Minute, 10 * time.Minute} {
		h.clk.Set(t0.Add(at))
		if readExchange() != 1 {
			t.Fatal("polling stopped while the webhook could not be registered")
		}
	}
	if n := strings.Count(h.logs.String(), "could not register the webhook"); n != 1 {
		t.Errorf("%d warnings, want one:\n%s", n, h.logs.String())
	}
	h.clk.Set(t0.Add(16 * time.Minute))
	readExchange()
	if h.feed.webhooks[mde.ContentExchange] == nil {
		t.Fatal("the webhook was not registered on Exchange after the 15 minutes")
	}
	if with, without := h.feed.hookBodies(); with != 2 || without != 1 {
		t.Errorf("%d starts with the webhook, %d without; want 2 and 1", with, without)
	}
}

// Before UseWebhook (a one-shot run) the source never sends nor removes
// a webhook: any enabled subscription is fine; after it, the hourly
// check re-registers a webhook the service disabled.
func TestWebhookOnlyAfterUseWebhook(t *testing.T) {
	h, s := newHookHarness(t, []string{mde.ContentGeneral, mde.ContentExchange, mde.ContentSharePoint, mde.ContentAzureAD})
	other := ourHook("enabled")
	other.Address = "https://elsewhere.example/hook"
	h.feed.subs[mde.ContentGeneral], h.feed.webhooks[mde.ContentGeneral] = true, ourHook("disabled")
	h.feed.subs[mde.ContentExchange], h.feed.webhooks[mde.ContentExchange] = true, other
	// SharePoint is listed enabled but its content listing answers
	// AF20022 (disabled meanwhile); AzureAD is missing.
	h.feed.subs[mde.ContentSharePoint] = true
	n := 0
	h.feed.hook = func(kind string) *fault {
		if kind == "content" && n == 0 && h.feed.ct == mde.ContentSharePoint {
			n++
			delete(h.feed.subs, mde.ContentSharePoint)
			return &fault{status: 400, code: "AF20022", msg: "No subscription found for the specified content type."}
		}
		return nil
	}
	h.clk.Set(t0)
	if res := h.run(); res.Err != nil {
		t.Fatalf("one-shot run: %v", res.Err)
	}
	with, without := h.feed.hookBodies()
	if with != 0 || without != 2 || n != 1 {
		t.Fatalf("one-shot run: %d starts with a webhook, %d without; want SharePoint's and AzureAD's, without\n%s", with, without, h.logs.String())
	}
	if h.feed.webhooks[mde.ContentExchange] != other || h.feed.webhooks[mde.ContentGeneral].status != "disabled" {
		t.Error("the one-shot run changed a webhook")
	}

	h.clk.Set(t0.Add(20 * time.Minute))
	if err := s.UseWebhook(t.Context()); err != nil {
		t.Fatal(err)
	}
	if with, _ := h.feed.hookBodies(); with != 4 {
		t.Fatalf("%d starts with the webhook, want 4", with)
	}
	// The service disables the webhook; the next hourly check restarts it.
	h.feed.webhooks[mde.ContentGeneral].status = "disabled"
	h.clk.Set(t0.Add(50 * time.Minute))
	if _, err := h.fetch(lastHour); err != nil {
		t.Fatal(err)
	}
	if with, _ := h.feed.hookBodies(); with != 4 {
		t.Fatal("restarted before the hourly check")
	}
	h.clk.Set(t0.Add(81 * time.Minute))
	if _, err := h.fetch(source.Window{From: t0, To: t0.Add(80 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if with, _ := h.feed.hookBodies(); with != 5 || h.feed.webhooks[mde.ContentGeneral].status != "enabled" {
		t.Fatalf("%d starts with the webhook; the disabled webhook was not re-registered", with)
	}
}

// content is the notification of a fake blob.
func content(b blob) mde.Content {
	return mde.Content{ContentType: b.ct, ContentID: b.id,
		ContentURI:     fmt.Sprintf("https://%s/api/v1.0/%s/activity/feed/audit/%s", host, tenant, b.id),
		ContentCreated: b.created, ContentExpiration: b.created.Add(Retention)}
}

func collect(items *[]source.Item) source.Emit {
	return func(_ context.Context, it source.Item) error { *items = append(*items, it); return nil }
}

func TestFetchNotified(t *testing.T) {
	a := blob{ct: mde.ContentGeneral, id: "nA$1", created: t0.Add(-40 * time.Minute), records: []string{
		rec("a-1", t0.Add(-41*time.Minute), MDEWorkload, "IsolateDevice", 110), rec("a-2", t0.Add(-42*time.Minute), "X", "Y", 1)}}
	b := blob{ct: mde.ContentGeneral, id: "nB$2", created: t0.Add(-30 * time.Minute), records: []string{rec("b-1", t0.Add(-31*time.Minute), "X", "Y", 1)}}
	old := blob{ct: mde.ContentGeneral, id: "nOld", created: t0.Add(-8 * 24 * time.Hour), records: []string{rec("o-1", t0.Add(-8*24*time.Hour), "X", "Y", 1)}}
	gone := blob{ct: mde.ContentGeneral, id: "nGone", created: t0.Add(-20 * time.Minute)} // not served: AF20050

	t.Run("same items as a poll", func(t *testing.T) {
		h, s := newHookHarness(t, []string{mde.ContentGeneral})
		h.feed.subs[mde.ContentGeneral] = true
		h.feed.add(a)
		var polled, notified []source.Item
		if err := s.FetchPart(t.Context(), mde.ContentGeneral, lastHour, collect(&polled)); err != nil {
			t.Fatal(err)
		}
		if err := s.FetchNotified(t.Context(), mde.ContentGeneral, []mde.Content{content(a)}, collect(&notified)); err != nil {
			t.Fatal(err)
		}
		if len(polled) != 3 || !reflect.DeepEqual(polled, notified) {
			t.Fatalf("polled %+v\nnotified %+v", polled, notified)
		}
		if !notified[0].Time.Equal(a.created) || notified[1].Table != TableResponseActions {
			t.Errorf("items %+v", notified)
		}
	})
	t.Run("delivered blobs are skipped by polls and notifications", func(t *testing.T) {
		h, s := newHookHarness(t, []string{mde.ContentGeneral})
		h.feed.subs[mde.ContentGeneral] = true
		h.feed.add(a, b)
		var items []source.Item
		if err := s.FetchNotified(t.Context(), mde.ContentGeneral, []mde.Content{content(a)}, collect(&items)); err != nil || len(items) != 3 {
			t.Fatalf("%v, %d items", err, len(items))
		}
		s.Delivered(mde.ContentGeneral, []mde.Content{content(a), {ContentType: mde.ContentGeneral}})
		items = nil
		if err := s.FetchPart(t.Context(), mde.ContentGeneral, lastHour, collect(&items)); err != nil {
			t.Fatal(err)
		}
		if h.feed.fetched[a.id] != 1 || h.feed.fetched[b.id] != 1 || len(items) != 1 || items[0].ID != idOf(Tables[mde.ContentGeneral], "b-1") {
			t.Fatalf("blob GETs %v, items %+v: want the delivered blob skipped", h.feed.fetched, items)
		}
		if s.skipped.Load() != 1 || !strings.Contains(h.logs.String(), "already delivered") {
			t.Errorf("skipped %d", s.skipped.Load())
		}
		items = nil
		if err := s.FetchNotified(t.Context(), mde.ContentGeneral, []mde.Content{content(a)}, collect(&items)); err != nil || len(items) != 0 || h.feed.fetched[a.id] != 1 {
			t.Fatalf("a delivered notified blob: %v, %d items, %d GETs", err, len(items), h.feed.fetched[a.id])
		}
		// Only the blobs named are remembered: another content type, or
		// a fresh source, fetches again.
		if s.delivered.has(mde.ContentExchange, a.id, t0) || s.delivered.has(mde.ContentGeneral, b.id, t0) {
			t.Error("remembered blobs not given to Delivered")
		}
		fresh := newSrc(s.feed, s.cfg, nil, h.clk.Now)
		items = nil
		if err := fresh.FetchNotified(t.Context(), mde.ContentGeneral, []mde.Content{content(a)}, collect(&items)); err != nil || len(items) != 3 {
			t.Fatalf("a fresh source: %v, %d items", err, len(items))
		}
		// After the retention the id is forgotten.
		if s.delivered.has(mde.ContentGeneral, a.id, a.created.Add(Retention)) {
			t.Error("remembered past the retention")
		}
	})
	t.Run("expired and vanished blobs are skipped", func(t *testing.T) {
		h, s := newHookHarness(t, []string{mde.ContentGeneral})
		h.feed.add(old, b)
		var items []source.Item
		err := s.FetchNotified(t.Context(), mde.ContentGeneral, []mde.Content{content(old), content(gone), content(b)}, collect(&items))
		if err != nil || len(items) != 1 {
			t.Fatalf("%v, %d items", err, len(items))
		}
		if h.feed.fetched[old.id] != 0 || h.feed.requests["blob"] != 2 {
			t.Errorf("the expired blob was requested: %v", h.feed.requests)
		}
		if !strings.Contains(h.logs.String(), "expired before it could be read") || !strings.Contains(h.logs.String(), "AF20050") {
			t.Errorf("logs:\n%s", h.logs.String())
		}
	})
	t.Run("errors", func(t *testing.T) {
		_, s := newHookHarness(t, []string{mde.ContentGeneral})
		noop := func(context.Context, source.Item) error { return nil }
		if err := s.FetchNotified(t.Context(), "Audit.Nope", nil, noop); err == nil {
			t.Error("unknown content type accepted")
		}
		if err := s.FetchNotified(t.Context(), mde.ContentGeneral, []mde.Content{content(blob{ct: mde.ContentExchange, id: "x", created: t0})}, noop); err == nil || !strings.Contains(err.Error(), "notified blob 0") {
			t.Errorf("a blob of another content type: %v", err)
		}
		bad := content(b)
		bad.ContentURI = "https://evil.example/api/v1.0/" + tenant + "/activity/feed/audit/x"
		if err := s.FetchNotified(t.Context(), mde.ContentGeneral, []mde.Content{bad}, noop); err == nil || !strings.Contains(err.Error(), "not the management host") {
			t.Errorf("a foreign contentUri: %v", err)
		}
	})
}

// The delivered set keeps at most its bound, forgetting the oldest
// first, and each id until its time.
func TestDeliveredSetBounds(t *testing.T) {
	d := newDeliveredSet(3)
	for i := range 5 {
		d.add(fmt.Sprintf("ct\nid%d", i), t0.Add(time.Hour), t0)
	}
	if d.len() != 3 || d.has("ct", "id0", t0) || d.has("ct", "id1", t0) || !d.has("ct", "id4", t0) {
		t.Fatalf("len %d: want the 3 newest", d.len())
	}
	d.add("ct\nlate", t0.Add(-time.Minute), t0) // already over
	if d.has("ct", "late", t0) {
		t.Error("an expired id was remembered")
	}
	if d.has("ct", "id4", t0.Add(time.Hour)) {
		t.Error("remembered past its time")
	}
	d.add("ct\nnew", t0.Add(3*time.Hour), t0.Add(2*time.Hour)) // the others are over: forgotten
	if d.len() != 1 || !d.has("ct", "new", t0.Add(2*time.Hour)) {
		t.Errorf("len %d after the others expired", d.len())
	}
	big := newDeliveredSet(maxDelivered)
	for i := range maxDelivered + 5000 {
		big.add(fmt.Sprint(i), t0.Add(Retention), t0)
	}
	if big.len() != maxDelivered || len(big.order)-big.head != maxDelivered {
		t.Errorf("len %d, order %d", big.len(), len(big.order)-big.head)
	}
}
