package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/sim"
)

func init() {
	register(command{name: "simulate", summary: "run the emulated Defender tenant (portal, public API, Entra) as a server", run: runSimulate})
}

func runSimulate(ctx context.Context, env *Env, args []string) int {
	fs := newFlagSet(env, "simulate", "simulate [--listen ADDR] [--plain] [--ca-out FILE] [--write-config FILE] [--tenants N] [--seed N] [--faults SPEC] [--page-clamp SPEC] [--ingestion-lag DUR] [--clock-skew DUR] [--page-latency DUR] [--throttle-concurrency K] [--timeline-events N] [--audit-records-per-hour N] [--audit-page-cap N] [--audit-throttle-status 403|429] [--audit-webhook-poll DUR] [--webhook-cert PREFIX] [--scenario quiet|abuse [--abuse-at TIME]] [--log-requests]")
	listen := fs.String("listen", "127.0.0.1:8443", "address to listen on (loopback recommended; port 0 picks a free one)")
	plain := fs.Bool("plain", false, "serve plain HTTP instead of HTTPS (loopback tests only)")
	caOut := fs.String("ca-out", "", "write the emulator's CA certificate (PEM) to this file")
	writeCfg := fs.String("write-config", "", "write a harvester config pointing at this emulator to FILE (secrets go to FILE.cookie and FILE.secret, mode 0600)")
	seed := fs.Int64("seed", 1, "seed of the emulated tenant's data (same seed, same data)")
	machines := fs.Int("machines", 30, "number of emulated devices")
	history := fs.String("history", "30d", "how far back the emulated data goes")
	latency := fs.String("latency", "0s", "delay added to every response")
	pageLatency := fs.String("page-latency", "0s", "time every device timeline page takes before it is answered (the real service: hundreds of ms to seconds), e.g. 300ms")
	throttleK := fs.Int("throttle-concurrency", 0, "throttle the device timeline like the real service: a timeline request arriving while K are served gets 429 with Retry-After 1s (0 = off; keep K below the harvester's 8 workers, e.g. 3)")
	faults := fs.String("faults", "", "fault injection, e.g. portal:429=0.1,public:500=0.05,timeline:slow=2s")
	timelineRate := fs.Int("timeline-rate", 0, "timeline events per device per hour (0 = default 12, at most 6000)")
	timelineEvents := fs.Int("timeline-events", 0, "about this many timeline events per device over --timeline-history (sets the hourly rate; at most 6000 an hour, e.g. 1000000 over 7d); not with --timeline-rate")
	timelineHistory := fs.String("timeline-history", "7d", "how far back device timelines go (at most --history)")
	clampSpec := fs.String("page-clamp", "", "serve at most this many rows per page on paged routes, e.g. actioncenter=37,timeline=53 or all=7 (routes: "+strings.Join(sim.PagedRoutes(), ", ")+"); totals stay complete")
	lagFlag := fs.String("ingestion-lag", "0s", "events become visible up to this long after their timestamp (each event its own seeded lag; at most 3h)")
	skewFlag := fs.String("clock-skew", "0s", "run the emulator's clock this far ahead (or behind, e.g. -5m) of this machine's; the Date header follows it")
	tenants := fs.Int("tenants", 1, "number of emulated tenants, each with its own data and credentials (more than 1 needs --write-config: each tenant's credentials go to tenants/<name>/ next to it)")
	auditRate := fs.Int("audit-records-per-hour", 0, fmt.Sprintf("Office 365 Management Activity API: about this many audit records per content type an hour (0 = default %d, at most %d; DLP.All a quarter)", sim.DefaultAuditRecordsPerHour, sim.MaxAuditRecordsPerHour))
	auditPageCap := fs.Int("audit-page-cap", 0, fmt.Sprintf("Office 365 Management Activity API: content items per page before NextPageUri (0 = default %d)", sim.DefaultAuditPageCap))
	auditThrottle := fs.Int("audit-throttle-status", 0, "Office 365 Management Activity API: HTTP status of AF429 throttling answers, 403 (default, as documented) or 429")
	scenario := fs.String("scenario", "", "emulated story: quiet (a normal day: routine work by the regular operators only) or abuse (the quiet day, then an attacker with a stolen admin session: see the emulator README's Scenarios); default: the classic scheduled changes")
	abuseAt := fs.String("abuse-at", "", "with --scenario abuse: when the attack starts (RFC 3339; default two hours after the data's start)")
	hookPoll := fs.String("audit-webhook-poll", "1m", "Office 365 Management Activity API: how often a subscription with a webhook is sent its new content (0 or negative: never)")
	hookCert := fs.String("webhook-cert", "", "write a TLS certificate for 127.0.0.1 and localhost, signed by the emulator's CA (which its webhook client trusts), to PREFIX.crt and PREFIX.key (0600): serve.webhook.tls_cert_file / tls_key_file of a harvester receiving the emulator's notifications")
	logRequests := fs.Bool("log-requests", false, "print one line per request to stderr: time, method, host, path, query parameter names, status, bytes, duration (never headers, cookies, bodies or query values)")
	if code, ok := parseFlags(fs, env, args); !ok {
		return code
	}
	var attackAt time.Time
	if *abuseAt != "" {
		var err error
		if attackAt, err = time.Parse(time.RFC3339, *abuseAt); err != nil {
			fmt.Fprintf(env.Stderr, "simulate: --abuse-at %q is not an RFC 3339 time such as 2026-11-30T10:00:00Z\n", *abuseAt)
			return exitUsage
		}
	}
	poll, err := config.ParseDuration(*hookPoll)
	if err != nil {
		fmt.Fprintln(env.Stderr, "simulate: --audit-webhook-poll:", err)
		return exitUsage
	}
	if poll <= 0 {
		poll = -1 // the emulator's "never"; 0 would be its default
	}
	clamps, err := sim.ParsePageClamp(*clampSpec)
	if err != nil {
		fmt.Fprintln(env.Stderr, "simulate: --page-clamp:", err)
		return exitUsage
	}
	lag, err := config.ParseDuration(*lagFlag)
	if err == nil && lag > sim.MaxIngestionLag {
		err = fmt.Errorf("%s is more than the emulator's maximum %s", lag, sim.MaxIngestionLag)
	}
	if err != nil {
		fmt.Fprintln(env.Stderr, "simulate: --ingestion-lag:", err)
		return exitUsage
	}
	// A skew may be negative, which config durations refuse.
	skew, err := time.ParseDuration(strings.TrimSpace(*skewFlag))
	if err != nil || skew < -sim.MaxClockSkew || skew > sim.MaxClockSkew {
		fmt.Fprintf(env.Stderr, "simulate: --clock-skew %q: use a signed duration within ±%s, such as 90s or -5m\n", *skewFlag, sim.MaxClockSkew)
		return exitUsage
	}
	var reqLog io.Writer
	if *logRequests {
		reqLog = env.Stderr
	}
	hist, err := config.ParseDuration(*history)
	if err != nil {
		fmt.Fprintln(env.Stderr, "simulate: --history:", err)
		return exitUsage
	}
	tlHist, err := config.ParseDuration(*timelineHistory)
	if err == nil && tlHist <= 0 {
		err = fmt.Errorf("%q: use a positive duration such as 7d", *timelineHistory)
	}
	if err != nil {
		fmt.Fprintln(env.Stderr, "simulate: --timeline-history:", err)
		return exitUsage
	}
	lat, err := config.ParseDuration(*latency)
	if err != nil {
		fmt.Fprintln(env.Stderr, "simulate: --latency:", err)
		return exitUsage
	}
	pageLat, err := config.ParseDuration(*pageLatency)
	if err != nil {
		fmt.Fprintln(env.Stderr, "simulate: --page-latency:", err)
		return exitUsage
	}
	fl, err := sim.ParseFaults(*faults)
	if err != nil {
		fmt.Fprintln(env.Stderr, "simulate: --faults:", err)
		return exitUsage
	}
	if *throttleK < 0 {
		fmt.Fprintln(env.Stderr, "simulate: --throttle-concurrency must be 0 (off) or the most timeline requests served at once, e.g. 3")
		return exitUsage
	}
	if *auditRate < 0 || *auditRate > sim.MaxAuditRecordsPerHour {
		fmt.Fprintf(env.Stderr, "simulate: --audit-records-per-hour must be between 1 and %d (0: the default %d)\n", sim.MaxAuditRecordsPerHour, sim.DefaultAuditRecordsPerHour)
		return exitUsage
	}
	if *auditPageCap < 0 || *auditPageCap > 10000 {
		fmt.Fprintf(env.Stderr, "simulate: --audit-page-cap must be between 1 and 10000 (0: the default %d)\n", sim.DefaultAuditPageCap)
		return exitUsage
	}
	if *auditThrottle != 0 && *auditThrottle != 403 && *auditThrottle != 429 {
		fmt.Fprintln(env.Stderr, "simulate: --audit-throttle-status must be 403 or 429")
		return exitUsage
	}
	if *machines < 1 || *machines > 100000 {
		fmt.Fprintln(env.Stderr, "simulate: --machines must be between 1 and 100000")
		return exitUsage
	}
	if *tenants < 1 || *tenants > sim.MaxTenants {
		fmt.Fprintf(env.Stderr, "simulate: --tenants must be between 1 and %d\n", sim.MaxTenants)
		return exitUsage
	}
	if *tenants > 1 && *writeCfg == "" {
		fmt.Fprintln(env.Stderr, "simulate: --tenants needs --write-config FILE: each tenant's portal cookie and client secret are written to tenants/<name>/ in FILE's folder (mode 0600)")
		return exitUsage
	}
	if *writeCfg != "" && !*plain && *caOut == "" {
		fmt.Fprintln(env.Stderr, "simulate: --write-config needs --ca-out FILE too (the harvester verifies the emulator's TLS with it), or --plain")
		return exitUsage
	}
	tenant, err := sim.New(sim.Options{
		Seed:                         *seed,
		Now:                          env.Now,
		History:                      hist,
		Machines:                     *machines,
		Latency:                      lat,
		PageLatency:                  pageLat,
		ThrottleConcurrency:          *throttleK,
		Faults:                       fl,
		TimelineEventsPerMachineHour: *timelineRate,
		TimelineEvents:               *timelineEvents,
		TimelineHistory:              tlHist,
		Logger:                       newLogger(env, "info", false),
		PageClamp:                    clamps,
		IngestionLag:                 lag,
		ClockSkew:                    skew,
		RequestLog:                   reqLog,
		Tenants:                      *tenants,
		AuditRecordsPerHour:          *auditRate,
		AuditPageCap:                 *auditPageCap,
		AuditThrottleStatus:          *auditThrottle,
		AuditWebhookPoll:             poll,
		Scenario:                     *scenario,
		AbuseAt:                      attackAt,
	})
	if err != nil {
		fmt.Fprintln(env.Stderr, "simulate:", err)
		return exitUsage
	}
	srv, err := tenant.Serve(*listen, !*plain)
	if err != nil {
		fmt.Fprintln(env.Stderr, "simulate:", err)
		return exitFailed
	}
	defer srv.Close()

	if *caOut != "" {
		if err := os.WriteFile(*caOut, tenant.CACertPEM(), 0o644); err != nil {
			fmt.Fprintln(env.Stderr, "simulate: --ca-out:", err)
			return exitFailed
		}
	}
	if *hookCert != "" {
		certPEM, keyPEM, err := tenant.IssueServerCertificatePEM("127.0.0.1", "localhost")
		if err == nil {
			err = os.WriteFile(*hookCert+".crt", certPEM, 0o644)
		}
		if err == nil {
			err = os.WriteFile(*hookCert+".key", keyPEM, 0o600)
		}
		if err != nil {
			fmt.Fprintln(env.Stderr, "simulate: --webhook-cert:", err)
			return exitFailed
		}
		fmt.Fprintf(env.Stderr, "webhook certificate for 127.0.0.1 and localhost: %s.crt, key %s.key\n", *hookCert, *hookCert)
	}
	info := tenant.Info(srv)
	switch {
	case *writeCfg != "" && *tenants > 1:
		ec, err := writeTenantsConfig(*writeCfg, info, tenant.Tenants(), srv.Addr(), *caOut, *plain)
		if err != nil {
			fmt.Fprintln(env.Stderr, "simulate: --write-config:", err)
			return exitFailed
		}
		dir := filepath.Dir(ec.path)
		for _, t := range ec.Tenants {
			fmt.Fprintf(env.Stderr, "%s (%s, %s): portal cookie in %s, client secret in %s\n", t.Name, t.TenantID, t.Domain,
				filepath.Join(dir, t.CookieFile), filepath.Join(dir, t.SecretFile))
		}
		fmt.Fprintf(env.Stderr, "config for all %d tenants written to %s; its tenants: list (paths relative to that folder):\n%s", len(ec.Tenants), ec.path, ec.TenantsYAML())
	case *writeCfg != "":
		if err := writeEmulatorConfig(*writeCfg, info, tenant.Credentials(), srv.Addr(), *caOut, *plain); err != nil {
			fmt.Fprintln(env.Stderr, "simulate: --write-config:", err)
			return exitFailed
		}
	}
	line, err := json.Marshal(info)
	if err != nil {
		fmt.Fprintln(env.Stderr, "simulate:", err)
		return exitFailed
	}
	fmt.Fprintln(env.Stdout, string(line))
	if *tenants > 1 {
		fmt.Fprintf(env.Stderr, "%d emulated tenants listening on %s (%s); Ctrl-C to stop\n", *tenants, srv.Addr(), map[bool]string{true: "plain HTTP", false: "HTTPS"}[*plain])
	} else {
		fmt.Fprintf(env.Stderr, "emulated tenant %s listening on %s (%s); Ctrl-C to stop\n", tenant.Credentials().TenantID, srv.Addr(), map[bool]string{true: "plain HTTP", false: "HTTPS"}[*plain])
	}
	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = shutdownCtx
	return exitOK
}

// writeEmulatorConfig writes a ready harvester config for the emulator;
// secrets go to 0600 side files, never into the YAML.
func writeEmulatorConfig(path string, info sim.Info, cred sim.Credentials, addr, caFile string, plain bool) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if caFile != "" {
		if caFile, err = filepath.Abs(caFile); err != nil {
			return err
		}
	}
	ec := EmulatorConfig{
		TenantID: cred.TenantID, ClientID: cred.ClientID, Address: addr, CAFile: caFile, Plaintext: plain,
		CookieFile: abs + ".cookie", SecretFile: abs + ".secret", HECTokenFile: abs + ".hec-token",
		SentinelEndpoint: info.Sentinel.Endpoint, DCRImmutableID: info.Sentinel.DCRImmutableID,
		HECURL:    strings.TrimSuffix(info.Splunk.URL, "/services/collector/event"),
		StateFile: "sim-state.db", OutDir: "sim-out",
	}
	files := map[string]string{
		ec.CookieFile:   PortalCookieHeader(cred.SccAuth, cred.XSRFToken),
		ec.SecretFile:   cred.ClientSecret,
		ec.HECTokenFile: cred.HECToken,
	}
	for f, v := range files {
		if err := os.WriteFile(f, []byte(v+"\n"), 0o600); err != nil {
			return err
		}
	}
	return os.WriteFile(path, []byte(ec.YAML()), 0o600)
}

// writeTenantsConfig writes a harvester config for every tenant of the
// emulator: shared keys (emulator, outputs, sources) at the top, one
// tenants: entry each. Each tenant's secrets go to
// tenants/<name>/portal-cookie and client-secret in the config's folder
// (files 0600, folders 0700), named relative to it; the HEC token to
// FILE.hec-token. The outputs authenticate as the first tenant's app.
func writeTenantsConfig(path string, info sim.Info, tenants []sim.TenantInfo, addr, caFile string, plain bool) (EmulatorConfig, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return EmulatorConfig{}, err
	}
	if caFile != "" {
		if caFile, err = filepath.Abs(caFile); err != nil {
			return EmulatorConfig{}, err
		}
	}
	dir := filepath.Dir(abs)
	ec := EmulatorConfig{
		Address: addr, CAFile: caFile, Plaintext: plain, HECTokenFile: abs + ".hec-token",
		SentinelEndpoint: info.Sentinel.Endpoint, DCRImmutableID: info.Sentinel.DCRImmutableID,
		HECURL: strings.TrimSuffix(info.Splunk.URL, "/services/collector/event"), OutDir: "sim-out",
		path: abs,
	}
	if err := os.WriteFile(ec.HECTokenFile, []byte(info.Splunk.Token+"\n"), 0o600); err != nil {
		return EmulatorConfig{}, err
	}
	for _, t := range tenants {
		et := EmulatorTenant{Name: t.Name, TenantID: t.ID, Domain: t.Domain, ClientID: t.ClientID,
			CookieFile: filepath.ToSlash(filepath.Join("tenants", t.Name, "portal-cookie")),
			SecretFile: filepath.ToSlash(filepath.Join("tenants", t.Name, "client-secret"))}
		if err := os.MkdirAll(filepath.Join(dir, "tenants", t.Name), 0o700); err != nil {
			return EmulatorConfig{}, err
		}
		for f, v := range map[string]string{et.CookieFile: t.PortalCookie, et.SecretFile: t.ClientSecret} {
			if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(f)), []byte(v+"\n"), 0o600); err != nil {
				return EmulatorConfig{}, err
			}
		}
		ec.Tenants = append(ec.Tenants, et)
	}
	if len(ec.Tenants) > 0 {
		first := ec.Tenants[0]
		ec.TenantID, ec.ClientID, ec.SecretFile = first.TenantID, first.ClientID, first.SecretFile
	}
	return ec, os.WriteFile(abs, []byte(ec.YAML()), 0o600)
}

// PortalCookieHeader renders the session as the browser's Cookie header
// holds it: the XSRF-TOKEN cookie is URL-encoded (the header form is not).
func PortalCookieHeader(sccauth, xsrfHeaderForm string) string {
	return "sccauth=" + sccauth + "; XSRF-TOKEN=" + url.QueryEscape(xsrfHeaderForm)
}

// EmulatorConfig is what a harvester config for the emulator needs.
type EmulatorConfig struct {
	TenantID, ClientID, Address, CAFile string
	Plaintext                           bool
	CookieFile, SecretFile              string
	// Receivers; empty endpoints leave the outputs out.
	SentinelEndpoint, DCRImmutableID string
	HECURL, HECTokenFile             string
	// EnableReceivers turns the sentinel and splunk outputs on; otherwise
	// they are written with enabled: false (use --outputs to pick them).
	EnableReceivers   bool
	StateFile, OutDir string
	// Tenants, when set, makes YAML write a tenants: list (one entry
	// each) instead of the single tenant's tenant_id, state_file, portal
	// and public_api keys; the outputs then authenticate with TenantID,
	// ClientID and SecretFile (the first tenant's).
	Tenants []EmulatorTenant

	path string // where writeTenantsConfig wrote it
}

// EmulatorTenant is one entry of the tenants: list; the files are
// relative to the config's folder.
type EmulatorTenant struct {
	Name, TenantID, Domain, ClientID string
	CookieFile, SecretFile           string
}

// TenantsYAML is the tenants: list of the config.
func (e EmulatorConfig) TenantsYAML() string {
	var b strings.Builder
	b.WriteString("tenants:\n")
	for _, t := range e.Tenants {
		fmt.Fprintf(&b, "  - name: %s\n    tenant_id: %q\n    portal:\n      cookie_file: %q\n    public_api:\n      client_id: %q\n      client_secret_file: %q\n",
			t.Name, t.TenantID, t.CookieFile, t.ClientID, t.SecretFile)
	}
	return b.String()
}

// YAML is the config text `simulate --write-config` writes.
func (e EmulatorConfig) YAML() string {
	var b strings.Builder
	if len(e.Tenants) > 0 {
		fmt.Fprintf(&b, "# Written by 'defenderharvester simulate --tenants %d --write-config': harvest the emulated tenants.\n", len(e.Tenants))
	} else {
		fmt.Fprintf(&b, "# Written by 'defenderharvester simulate --write-config': harvest the emulated tenant.\n")
		fmt.Fprintf(&b, "tenant_id: %q\nstate_file: %q\n", e.TenantID, e.StateFile)
	}
	fmt.Fprintf(&b, "emulator:\n  address: %q\n", e.Address)
	if e.Plaintext {
		b.WriteString("  plaintext: true\n")
	} else {
		fmt.Fprintf(&b, "  ca_file: %q\n", e.CAFile)
	}
	if len(e.Tenants) > 0 {
		b.WriteString(e.TenantsYAML())
	} else {
		fmt.Fprintf(&b, "portal:\n  cookie_file: %q\n  rate_per_second: 50\n", e.CookieFile)
		fmt.Fprintf(&b, "public_api:\n  client_id: %q\n  client_secret_file: %q\n", e.ClientID, e.SecretFile)
	}
	fmt.Fprintf(&b, "outputs:\n  files:\n    dir: %q\n", e.OutDir)
	if e.SentinelEndpoint != "" {
		fmt.Fprintf(&b, "  sentinel:\n    enabled: %v\n    endpoint: %q\n    dcr_immutable_id: %q\n    auth:\n      method: client_secret\n      tenant_id: %q\n      client_id: %q\n      client_secret_file: %q\n",
			e.EnableReceivers, e.SentinelEndpoint, e.DCRImmutableID, e.TenantID, e.ClientID, e.SecretFile)
	}
	if e.HECURL != "" {
		fmt.Fprintf(&b, "  splunk:\n    enabled: %v\n    url: %q\n    token_file: %q\n    index: defender\n", e.EnableReceivers, e.HECURL, e.HECTokenFile)
	}
	b.WriteString("sources:\n  timeline:\n    machines: [all]\n" +
		"    # or choose devices: machine_names: [..], machine_groups: [Servers], alerted_within: 24h\n")
	// The emulator also serves the Office 365 Management Activity API; the
	// harvester's audit-log source reads it with the same app.
	tid := e.TenantID
	if len(e.Tenants) > 0 {
		tid = "<tenant_id>"
	}
	fmt.Fprintf(&b, "# The emulator also serves the Office 365 Management Activity API (unified audit log):\n"+
		"#   https://%s/api/v1.0/%s/activity/feed (token scope %s/.default, role %s, content types %s)\n",
		sim.ManageHost, tid, sim.AuditResource, sim.AuditRole, strings.Join(sim.AuditContentTypes(), ", "))
	return b.String()
}
