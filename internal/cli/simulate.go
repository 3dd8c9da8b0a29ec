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
	fs := newFlagSet(env, "simulate", "simulate [--listen ADDR] [--plain] [--ca-out FILE] [--write-config FILE] [--seed N] [--faults SPEC] [--page-clamp SPEC] [--ingestion-lag DUR] [--clock-skew DUR] [--log-requests]")
	listen := fs.String("listen", "127.0.0.1:8443", "address to listen on (loopback recommended; port 0 picks a free one)")
	plain := fs.Bool("plain", false, "serve plain HTTP instead of HTTPS (loopback tests only)")
	caOut := fs.String("ca-out", "", "write the emulator's CA certificate (PEM) to this file")
	writeCfg := fs.String("write-config", "", "write a harvester config pointing at this emulator to FILE (secrets go to FILE.cookie and FILE.secret, mode 0600)")
	seed := fs.Int64("seed", 1, "seed of the emulated tenant's data (same seed, same data)")
	machines := fs.Int("machines", 30, "number of emulated devices")
	history := fs.String("history", "30d", "how far back the emulated data goes")
	latency := fs.String("latency", "0s", "delay added to every response")
	faults := fs.String("faults", "", "fault injection, e.g. portal:429=0.1,public:500=0.05,timeline:slow=2s")
	timelineRate := fs.Int("timeline-rate", 0, "timeline events per device per hour (0 = default)")
	clampSpec := fs.String("page-clamp", "", "serve at most this many rows per page on paged routes, e.g. actioncenter=37,timeline=53 or all=7 (routes: "+strings.Join(sim.PagedRoutes(), ", ")+"); totals stay complete")
	lagFlag := fs.String("ingestion-lag", "0s", "events become visible up to this long after their timestamp (each event its own seeded lag; at most 3h)")
	skewFlag := fs.String("clock-skew", "0s", "run the emulator's clock this far ahead (or behind, e.g. -5m) of this machine's; the Date header follows it")
	logRequests := fs.Bool("log-requests", false, "print one line per request to stderr: time, method, host, path, query parameter names, status, bytes, duration (never headers, cookies, bodies or query values)")
	if code, ok := parseFlags(fs, env, args); !ok {
		return code
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
	lat, err := config.ParseDuration(*latency)
	if err != nil {
		fmt.Fprintln(env.Stderr, "simulate: --latency:", err)
		return exitUsage
	}
	fl, err := sim.ParseFaults(*faults)
	if err != nil {
		fmt.Fprintln(env.Stderr, "simulate: --faults:", err)
		return exitUsage
	}
	if *machines < 1 || *machines > 100000 {
		fmt.Fprintln(env.Stderr, "simulate: --machines must be between 1 and 100000")
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
		Faults:                       fl,
		TimelineEventsPerMachineHour: *timelineRate,
		Logger:                       newLogger(env, "info", false),
		PageClamp:                    clamps,
		IngestionLag:                 lag,
		ClockSkew:                    skew,
		RequestLog:                   reqLog,
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
	info := tenant.Info(srv)
	if *writeCfg != "" {
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
	fmt.Fprintf(env.Stderr, "emulated tenant %s listening on %s (%s); Ctrl-C to stop\n", tenant.Credentials().TenantID, srv.Addr(), map[bool]string{true: "plain HTTP", false: "HTTPS"}[*plain])
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
}

// YAML is the config text `simulate --write-config` writes.
func (e EmulatorConfig) YAML() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by 'defenderharvester simulate --write-config': harvest the emulated tenant.\n")
	fmt.Fprintf(&b, "tenant_id: %q\nstate_file: %q\n", e.TenantID, e.StateFile)
	fmt.Fprintf(&b, "emulator:\n  address: %q\n", e.Address)
	if e.Plaintext {
		b.WriteString("  plaintext: true\n")
	} else {
		fmt.Fprintf(&b, "  ca_file: %q\n", e.CAFile)
	}
	fmt.Fprintf(&b, "portal:\n  cookie_file: %q\n  rate_per_second: 50\n", e.CookieFile)
	fmt.Fprintf(&b, "public_api:\n  client_id: %q\n  client_secret_file: %q\n", e.ClientID, e.SecretFile)
	fmt.Fprintf(&b, "outputs:\n  files:\n    dir: %q\n", e.OutDir)
	if e.SentinelEndpoint != "" {
		fmt.Fprintf(&b, "  sentinel:\n    enabled: %v\n    endpoint: %q\n    dcr_immutable_id: %q\n    auth:\n      method: client_secret\n      tenant_id: %q\n      client_id: %q\n      client_secret_file: %q\n",
			e.EnableReceivers, e.SentinelEndpoint, e.DCRImmutableID, e.TenantID, e.ClientID, e.SecretFile)
	}
	if e.HECURL != "" {
		fmt.Fprintf(&b, "  splunk:\n    enabled: %v\n    url: %q\n    token_file: %q\n    index: defender\n", e.EnableReceivers, e.HECURL, e.HECTokenFile)
	}
	b.WriteString("sources:\n  timeline:\n    machines: [all]\n")
	return b.String()
}
