package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/sim"
)

// wallClock is the emulator's wall clock (tokens, sessions), separate from
// the data clock so a test can expire sessions without moving the data.
type wallClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *wallClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *wallClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var portalTables = []string{"M365AlertServiceSettings", "M365DataExportSettings", "MdeAdvancedFeatureSettings",
	"MdeConnectedAppStats", "MdeCustomDetectionState", "MdeExecutedQueries", "MdeMachineActions",
	"MdeMachineGroups", "MdeSchemaReference", "MdeSuppressionRules", "MdeTimeline"}

// portalRefreshToken signs the emulator's analyst in with the device code
// flow as the Teams client (a FOCI app) for the portal app, as a user of
// the experimental bearer mode would, and returns the refresh token.
func portalRefreshToken(t *testing.T, f *fixture) string {
	t.Helper()
	rt, err := mde.NewTransport(mde.TransportOptions{EmulatorAddress: f.srv.Addr(), EmulatorCAPEM: f.tenant.CACertPEM()})
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := "https://login.microsoftonline.com/" + f.tenant.Credentials().TenantID + "/oauth2/v2.0/"
	form := url.Values{"client_id": {"1fec8e78-bce4-4aaf-ab1b-5451cc387264"}, "scope": {"80ccca67-54bd-44ab-8625-4b79c4dc7775/.default offline_access"}}
	var dc struct {
		DeviceCode string `json:"device_code"`
		UserCode   string `json:"user_code"`
	}
	postJSON(t, hc, base+"devicecode", form, &dc)
	if err := f.tenant.ApproveDeviceCode(dc.UserCode, f.tenant.Credentials().UserUPN); err != nil {
		t.Fatal(err)
	}
	var tok struct {
		RefreshToken string `json:"refresh_token"`
	}
	postJSON(t, hc, base+"token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
		"client_id": form["client_id"], "device_code": {dc.DeviceCode}}, &tok)
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token from the device code flow")
	}
	return tok.RefreshToken
}

func postJSON(t *testing.T, hc *http.Client, u string, form url.Values, out any) {
	t.Helper()
	resp, err := hc.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// TestEveryWayIn harvests every data set with each way into the portal:
// browser cookies, the ESTS cookie bootstrap, and the experimental bearer.
func TestEveryWayIn(t *testing.T) {
	for _, way := range []string{"cookies", "ests", "bearer"} {
		t.Run(way, func(t *testing.T) {
			f := newFixture(t, sim.Options{Seed: 41})
			extra := ""
			switch way {
			case "ests":
				p := filepath.Join(f.dir, "ests")
				mustWrite(t, p, []byte(f.tenant.Credentials().ESTSAuthPersistent), 0o600)
				extra = fmt.Sprintf("  auth:\n    method: ests\n    ests_file: %q\n", p)
			case "bearer":
				p := filepath.Join(f.dir, "refresh")
				mustWrite(t, p, []byte(portalRefreshToken(t, f)), 0o600)
				extra = fmt.Sprintf("  auth:\n    method: bearer\n    refresh_token_file: %q\n", p)
			}
			cfg := f.writeConfig("way", "")
			if extra != "" {
				cfg = patchPortal(t, cfg, extra)
			}
			code, out, errs := f.runCLI("run", "--config", cfg)
			if code != 0 {
				t.Fatalf("%s: exit %d\n%s\n%s", way, code, out, errs)
			}
			if way == "ests" && f.tenant.RequestCount(sim.FamilyEntra) == 0 {
				t.Fatal("no sign-in reached the emulated Entra: the ESTS way in was not used")
			}
			counts := countByTable(readOutput(t, filepath.Join(f.dir, "way-out")))
			for _, table := range portalTables {
				if counts[table] == 0 {
					t.Errorf("%s: %s is empty", way, table)
				}
			}
		})
	}
}

// patchPortal puts settings under the portal section and drops the cookie
// file the written config names (another way in replaces it).
func patchPortal(t *testing.T, path, settings string) string {
	t.Helper()
	s := readFile(t, path)
	lines := strings.Split(s, "\n")
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, "  cookie_file:") {
			continue
		}
		out = append(out, l)
		if l == "portal:" {
			out = append(out, strings.TrimSuffix(settings, "\n"))
		}
	}
	mustWrite(t, path, []byte(strings.Join(out, "\n")), 0o600)
	return path
}

// TestESTSSessionSurvivesExpiry: the portal session the ESTS cookie bought
// expires (emulator wall clock past its lifetime); the next run signs in
// again by itself and harvests.
func TestESTSSessionSurvivesExpiry(t *testing.T) {
	wall := &wallClock{t: time.Now()}
	f := newFixture(t, sim.Options{Seed: 42, Clock: wall.Now, SessionLifetime: time.Hour, TokenLifetime: time.Hour})
	p := filepath.Join(f.dir, "ests")
	mustWrite(t, p, []byte(f.tenant.Credentials().ESTSAuthPersistent), 0o600)
	cfg := patchPortal(t, f.writeConfig("expiry", ""), fmt.Sprintf("  auth:\n    method: ests\n    ests_file: %q\n", p))
	signIns := -1
	for i := 0; i < 3; i++ {
		if code, out, errs := f.runCLI("run", "--config", cfg, "--sources", "actioncenter,suppressionrules"); code != 0 {
			t.Fatalf("run %d: exit %d\n%s\n%s", i+1, code, out, errs)
		}
		n := f.tenant.RequestCount(sim.FamilyEntra)
		if n <= signIns {
			t.Fatalf("run %d made no sign-in request although its session had expired", i+1)
		}
		signIns = n
		// Past the session's life: the cached sccauth is now refused.
		wall.Advance(2 * time.Hour)
		f.clock.Advance(2 * time.Hour)
	}
	lines := readOutput(t, filepath.Join(f.dir, "expiry-out"))
	if d := duplicates(lines); d != 0 {
		t.Fatalf("%d duplicates across re-sign-ins", d)
	}
}

// TestCookieSessionSurvivesXSRFRotation: hours of runs with browser cookies;
// the XSRF token is renewed from the portal root as it ages, and every run
// works.
func TestCookieSessionSurvivesXSRFRotation(t *testing.T) {
	wall := &wallClock{t: time.Now()}
	f := newFixture(t, sim.Options{Seed: 43, Clock: wall.Now})
	cfg := f.writeConfig("xsrf", "")
	for i := 0; i < 4; i++ {
		if code, out, errs := f.runCLI("run", "--config", cfg, "--sources", "actioncenter"); code != 0 {
			t.Fatalf("run %d after %d×40 min: exit %d\n%s\n%s", i+1, i, code, out, errs)
		}
		wall.Advance(40 * time.Minute)
		f.clock.Advance(40 * time.Minute)
	}
}

// TestDeviceCodeLoginAndRun signs a user in with the device code flow
// (the emulator approves it as the analyst would in a browser), then
// harvests the public API data sets with that user's token.
func TestDeviceCodeLoginAndRun(t *testing.T) {
	f := newFixture(t, sim.Options{Seed: 44, AutoApproveDeviceCode: true})
	record := filepath.Join(f.dir, "auth-record.json")
	cfg := f.writeConfig("device", "")
	s := readFile(t, cfg)
	s = strings.Replace(s, "public_api:\n", fmt.Sprintf("public_api:\n  auth:\n    method: device_code\n    auth_record_file: %q\n", record), 1)
	s = strings.Replace(s, "  client_secret_file:", "  # client_secret_file:", 1)
	s = strings.Replace(s, "  client_id:", "  # client_id:", 1)
	mustWrite(t, cfg, []byte(s), 0o600)
	code, out, errs := f.runCLI("login", "device-code", "--config", cfg)
	if code != 0 {
		t.Fatalf("login device-code: exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out+errs, "devicelogin") {
		t.Errorf("the sign-in instructions were not shown:\n%s\n%s", out, errs)
	}
	if st, err := osStat(record); err != nil || st != 0o600 {
		t.Fatalf("authentication record missing or not 0600: %v %o", err, st)
	}
	code, out, errs = f.runCLI("run", "--config", cfg, "--sources", "machineactions,libraryfiles")
	if code != 0 {
		t.Fatalf("run with the device-code user: exit %d\n%s\n%s", code, out, errs)
	}
	counts := countByTable(readOutput(t, filepath.Join(f.dir, "device-out")))
	if counts["MdeMachineActionsApi"] == 0 || counts["MdeLibraryFiles"] == 0 {
		t.Fatalf("public API data sets empty with a user token: %v\n%s", counts, out)
	}
}

// TestOriginalCommandLineInLegacyMode runs the original tool's command line
// with a bearer token and a location: the data sets come from the legacy
// regional hosts, as they did for DefenderHarvester.
func TestOriginalCommandLineInLegacyMode(t *testing.T) {
	f := newFixture(t, sim.Options{Seed: 45})
	rt, err := mde.NewTransport(mde.TransportOptions{EmulatorAddress: f.srv.Addr(), EmulatorCAPEM: f.tenant.CACertPEM()})
	if err != nil {
		t.Fatal(err)
	}
	cred := f.tenant.Credentials()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	postJSON(t, &http.Client{Transport: rt}, "https://login.microsoftonline.com/"+cred.TenantID+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {cred.LegacyClientID}, "client_secret": {cred.LegacyClientSecret},
		"scope": {"https://securitycenter.microsoft.com/mtp/.default"}}, &tok)
	cfg := f.writeConfig("legacy", "")
	var outb, errb strings.Builder
	env := &cliEnv{vars: map[string]string{"DH_CONFIG": cfg}}
	code := env.run(f, &outb, &errb, "-machineactions", "-customdetections", "-suppressionrules", "-accesstoken", tok.AccessToken, "-location", "weu", "-files")
	if code != 0 {
		t.Fatalf("original flags in legacy mode: exit %d\n%s\n%s", code, outb.String(), errb.String())
	}
	if !strings.Contains(errb.String(), "2025") {
		t.Errorf("no warning that the legacy hosts were closed in 2025:\n%s", errb.String())
	}
	if strings.Contains(outb.String()+errb.String(), tok.AccessToken) {
		t.Fatal("the access token was printed")
	}
	counts := countByTable(readOutput(t, filepath.Join(f.dir, "legacy-out")))
	for _, table := range []string{"MdeMachineActions", "MdeCustomDetectionState", "MdeSuppressionRules"} {
		if counts[table] == 0 {
			t.Errorf("%s empty in legacy mode:\n%s", table, outb.String())
		}
	}
	if f.tenant.RequestCount(sim.FamilyLegacy) == 0 {
		t.Fatal("no request reached the legacy hosts")
	}
}

// TestDoctorChecksTheSentinelCredential: a wrong Sentinel secret is caught
// by doctor before any run.
func TestDoctorChecksTheSentinelCredential(t *testing.T) {
	f := newFixture(t, sim.Options{Seed: 46})
	cfg := f.writeConfig("doc", "")
	s := strings.Replace(readFile(t, cfg), "  sentinel:\n    enabled: false", "  sentinel:\n    enabled: true", 1)
	bad := filepath.Join(f.dir, "bad.secret")
	mustWrite(t, bad, []byte("not-the-secret"), 0o600)
	s = strings.Replace(s, "      client_secret_file: "+fmt.Sprintf("%q", filepath.Join(f.dir, "doc.secret")), "      client_secret_file: "+fmt.Sprintf("%q", bad), 1)
	mustWrite(t, cfg, []byte(s), 0o600)
	code, out, errs := f.runCLI("doctor", "--config", cfg, "--sources", "suppressionrules")
	if code == 0 || !strings.Contains(out, "sentinel") || !strings.Contains(strings.ToLower(out+errs), "secret") {
		t.Fatalf("doctor did not flag the wrong Sentinel secret (exit %d):\n%s\n%s", code, out, errs)
	}
	if strings.Contains(out+errs, "not-the-secret") {
		t.Fatal("doctor printed the secret")
	}
}

// TestCanarySecretsAcrossScenarios runs the command line through every way
// in and every failure the emulator can inject — with debug logging — and
// scans all that was printed, the state file, the outputs and the dead
// letters for every secret in play. Only the session cache holds the
// portal session, on purpose, and it must be 0600.
func TestCanarySecretsAcrossScenarios(t *testing.T) {
	wall := &wallClock{t: time.Now()}
	f := newFixture(t, sim.Options{Seed: 47, Clock: wall.Now, SessionLifetime: time.Hour})
	cred := f.tenant.Credentials()
	refresh := portalRefreshToken(t, f)
	estsFile := filepath.Join(f.dir, "ests")
	mustWrite(t, estsFile, []byte(cred.ESTSAuthPersistent), 0o600)
	refreshFile := filepath.Join(f.dir, "refresh")
	mustWrite(t, refreshFile, []byte(refresh), 0o600)

	var printed strings.Builder
	run := func(args ...string) int {
		code, out, errs := f.runCLI(args...)
		printed.WriteString(out + errs)
		return code
	}
	base := patchOutputs(t, f.writeConfig("canary", "log_level: debug\nhttp:\n  backoff: 1ms\n  max_wait: 1s\n  max_attempts: 2\n"), fastRetries)
	ests := filepath.Join(f.dir, "canary-ests.yaml")
	mustWrite(t, ests, []byte(readFile(t, base)), 0o600)
	patchPortal(t, ests, fmt.Sprintf("  auth:\n    method: ests\n    ests_file: %q\n", estsFile))
	bearer := filepath.Join(f.dir, "canary-bearer.yaml")
	mustWrite(t, bearer, []byte(readFile(t, base)), 0o600)
	patchPortal(t, bearer, fmt.Sprintf("  auth:\n    method: bearer\n    refresh_token_file: %q\n", refreshFile))
	all := []string{"--debug", "--outputs", "files,sentinel,splunk"}

	run(append([]string{"run", "--config", base}, all...)...)
	run(append([]string{"run", "--config", ests}, all...)...)
	run(append([]string{"run", "--config", bearer}, all...)...)
	run("login", "portal", "--config", ests, "--ests-file", estsFile)
	run("doctor", "--config", base)
	// Failures: an expired session, a revoked user, Conditional Access, an
	// output down, a throttled and failing portal.
	wall.Advance(2 * time.Hour)
	f.clock.Advance(2 * time.Hour)
	run(append([]string{"run", "--config", base}, all...)...)
	f.tenant.SetReceiverDown(sim.ReceiverSplunk, true)
	f.tenant.Inject(sim.FaultRule{Family: sim.FamilyPortal, Kind: sim.Fault429, Count: 3, RetryAfter: time.Millisecond})
	run(append([]string{"run", "--config", ests}, all...)...)
	f.tenant.SetReceiverDown(sim.ReceiverSplunk, false)
	f.tenant.SetConditionalAccessBlock(cred.UserUPN, true)
	if err := f.tenant.RevokeUserSessions(cred.UserUPN); err != nil {
		t.Fatal(err)
	}
	run(append([]string{"run", "--config", ests}, all...)...)
	run("doctor", "--config", ests)
	run("doctor", "--config", bearer)
	f.tenant.SetConditionalAccessBlock(cred.ClientID, true)
	run("doctor", "--config", base)
	run("-machineactions", "-files", "-accesstoken", "canary-token-123456", "-lookback", "1")

	secrets := map[string]string{
		"sccauth": cred.SccAuth, "XSRF token": cred.XSRFToken, "XSRF cookie form": url.QueryEscape(cred.XSRFToken),
		"ESTS cookie": cred.ESTSAuthPersistent, "refresh token": refresh, "client secret": cred.ClientSecret,
		"HEC token": cred.HECToken, "command-line token": "canary-token-123456",
	}
	var stored strings.Builder
	stored.WriteString(readFile(t, filepath.Join(f.dir, "canary.db")))
	for _, l := range readOutput(t, filepath.Join(f.dir, "canary-out")) {
		b, _ := json.Marshal(l.raw)
		stored.Write(b)
	}
	// Everything else the runs wrote: dead letters (Sentinel and Splunk
	// keep them in different places), spools, caches, side files. Only the
	// files the test itself filled with secrets are left out.
	inputs := map[string]bool{estsFile: true, refreshFile: true}
	for _, ext := range []string{".cookie", ".secret", ".hec"} {
		inputs[filepath.Join(f.dir, "canary"+ext)] = true
	}
	filepath.WalkDir(f.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || inputs[p] || strings.Contains(filepath.Base(p), "session") || filepath.Dir(p) == filepath.Join(f.dir, "canary-out") {
			return nil
		}
		stored.WriteString(readFile(t, p))
		return nil
	})
	for name, secret := range secrets {
		if strings.Contains(printed.String(), secret) {
			t.Errorf("the %s was printed", name)
		}
		if strings.Contains(stored.String(), secret) {
			t.Errorf("the %s was stored outside the session cache", name)
		}
	}
	if strings.Contains(printed.String(), "eyJ") {
		t.Error("a bearer token (JWT) was printed")
	}
	caches, _ := filepath.Glob(filepath.Join(f.dir, "*session*"))
	if len(caches) == 0 {
		t.Fatal("no session cache was written: the ESTS and login scenarios did not run")
	}
	for _, p := range caches {
		if m, err := osStat(p); err != nil || m != 0o600 {
			t.Errorf("session cache %s has mode %o, want 0600", p, m)
		}
	}
	if !strings.Contains(printed.String(), "level=DEBUG") || !strings.Contains(printed.String(), "FAIL") {
		t.Fatal("the scenarios did not run with debug logging and failures: the scan proves nothing")
	}
}
