package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/harvester"
	"go.yaml.in/yaml/v3"
)

// compatSources maps the original DefenderHarvester's flags to sources.
var compatSources = []struct {
	flag    string
	sources []string
	help    string
}{
	{"machineactions", []string{"actioncenter", "machineactions"}, "Action Center history (MdeMachineActions) and public-API machine actions (MdeMachineActionsApi)"},
	{"customdetections", []string{"customdetections"}, "custom detection rules and their state"},
	{"featuresettings", []string{"featuresettings"}, "advanced feature and Live Response settings"},
	{"suppressionrules", []string{"suppressionrules"}, "alert suppression rules"},
	{"machinegroups", []string{"machinegroups"}, "device groups"},
	{"connectedapps", []string{"connectedapps"}, "connected API apps and their usage"},
	{"executedqueries", []string{"executedqueries"}, "executed advanced hunting queries"},
	{"alertservicesettings", []string{"alertservicesettings"}, "disabled alert workloads"},
	{"dataexportsettings", []string{"dataexportsettings"}, "streaming API export destinations"},
	{"schema", []string{"schema"}, "advanced hunting schema reference"},
	{"timeline", []string{"timeline"}, "device timeline of -machineid"},
}

// compatName is the flag set of the original tool's command line.
const compatName = "compat"

// runCompat accepts the original tool's command line unchanged.
func runCompat(ctx context.Context, env *Env, args []string) int {
	fs := newFlagSet(env, compatName, "-machineactions -customdetections … [-lookback HOURS] -files   (original DefenderHarvester flags)")
	picked := map[string]*bool{}
	for _, c := range compatSources {
		picked[c.flag] = fs.Bool(c.flag, false, c.help)
	}
	machineID := fs.String("machineid", "", "device id (40 hex) for -timeline")
	lookback := fs.Int("lookback", 0, "hours to re-read; without it the harvest resumes from the last checkpoint")
	files := fs.Bool("files", false, "write JSONL files (directory: outputs.files.dir, default ./out)")
	sentinel := fs.Bool("sentinel", false, "send to Microsoft Sentinel (changed: see message)")
	splunk := fs.Bool("splunk", false, "send to Splunk (changed: see message)")
	token := fs.String("accesstoken", "", "bearer token for the public API (prefer $DH_ACCESS_TOKEN: command lines are visible to other users)")
	location := fs.String("location", "", "with -accesstoken: region of the legacy hosts, e.g. weu (closed in 2025); otherwise not needed: the portal proxy has one host")
	debug := fs.Bool("debug", false, "debug logging")
	if code, ok := parseFlags(fs, env, args); !ok {
		return code
	}

	var names []string
	for _, c := range compatSources {
		if *picked[c.flag] {
			names = append(names, c.sources...)
		}
	}
	if len(names) == 0 {
		fmt.Fprintln(env.Stderr, "defenderharvester: choose at least one data set, e.g. -machineactions (see -h), or use 'defenderharvester run --sources all'")
		return exitUsage
	}
	if !*files && !*sentinel && !*splunk {
		fmt.Fprintln(env.Stderr, "defenderharvester: choose an output: -files (JSONL files under ./out), -sentinel or -splunk")
		return exitUsage
	}
	if *picked["timeline"] && *machineID == "" {
		fmt.Fprintln(env.Stderr, "defenderharvester: -timeline needs -machineid <40-hex device id>")
		return exitUsage
	}
	if *lookback < 0 {
		fmt.Fprintln(env.Stderr, "defenderharvester: -lookback must be a positive number of hours")
		return exitUsage
	}
	cfg, err := loadConfig(env, "")
	if err != nil {
		fmt.Fprintln(env.Stderr, "defenderharvester:", err)
		return exitUsage
	}
	outputs, getenv, err := compatOutputs(env, cfg, *files, *sentinel, *splunk)
	if err != nil {
		fmt.Fprintln(env.Stderr, "defenderharvester:", err)
		return exitUsage
	}
	log := newLogger(env, cfg.LogLevel, *debug)
	if *token != "" {
		log.Warn("-accesstoken puts a secret on the command line, where other local users can read it; set DH_ACCESS_TOKEN instead")
		cfg.Secrets.AccessToken = *token
		// The flag replaces whatever credential the config names, as it
		// did in the original tool.
		cfg.PublicAPI.Auth.Method = config.MethodToken
		cfg.PublicAPI.ClientSecretFile, cfg.Secrets.ClientSecret = "", ""
	}
	switch {
	case *location != "" && cfg.Secrets.AccessToken != "" && cfg.Portal.Mode != config.ModeLegacy:
		// The original's road: one bearer token to the regional hosts.
		log.Warn("-accesstoken with -location uses the legacy *.securitycenter.windows.com hosts, which Microsoft closed to user tokens in 2025; if they refuse, use a portal session (see README, Authentication)", "location", *location)
		cfg.Portal.Mode, cfg.Portal.Location = config.ModeLegacy, *location
		if err := cfg.Validate(); err != nil {
			fmt.Fprintln(env.Stderr, "defenderharvester: -location:", err)
			return exitUsage
		}
	case *location != "":
		log.Info("-location is not needed any more: the portal proxy (security.microsoft.com/apiproxy) serves every region", "location", *location)
	}
	if *picked["timeline"] {
		node := &yaml.Node{}
		if err := node.Encode(map[string]any{"machines": []string{*machineID}}); err != nil {
			fmt.Fprintln(env.Stderr, "defenderharvester:", err)
			return exitUsage
		}
		cfg.Sources["timeline"] = node
	}
	var since time.Time
	if *lookback > 0 {
		since = env.Now().Add(-time.Duration(*lookback) * time.Hour)
	}
	req := harvester.Request{
		Config:     cfg,
		Sources:    names,
		Outputs:    outputs,
		Since:      since,
		Timeout:    configRunTimeout(cfg),
		SpoolAfter: spoolAfter(cfg),
		Logger:     log,
		Now:        env.Now,
		Stdout:     env.Stdout,
		Getenv:     getenv,
		Prompt:     func(m string) { fmt.Fprintln(env.Stderr, m) },
	}
	return harvestAndReport(ctx, env, req, env.Stdout)
}

// compatOutputs maps -files, -sentinel and -splunk to outputs. The
// original's Sentinel road (the HTTP Data Collector API, SentinelWorkspaceID
// / SentinelSharedKey) was retired on 2026-09-14, so -sentinel needs
// outputs.sentinel (Logs Ingestion) in the config. The original's Splunk
// variables still work: SplunkUri becomes the HEC URL and SplunkToken the
// token, now with TLS verified.
func compatOutputs(env *Env, cfg *config.Config, files, sentinel, splunk bool) ([]string, func(string) string, error) {
	getenv := env.Getenv
	var outputs []string
	if files {
		outputs = append(outputs, "files")
	}
	if sentinel {
		if _, ok := cfg.Outputs["sentinel"]; !ok {
			msg := "-sentinel: the HTTP Data Collector API the original tool used (SentinelWorkspaceID / SentinelSharedKey) was retired on 2026-09-14. " +
				"Sentinel now takes data through the Logs Ingestion API: run 'defenderharvester sentinel-setup', deploy the template, and put the outputs.sentinel section it prints in the config named by DH_CONFIG (README, Microsoft Sentinel)"
			if env.Getenv("SentinelWorkspaceID") != "" || env.Getenv("SentinelSharedKey") != "" {
				msg += "; SentinelWorkspaceID / SentinelSharedKey are set in your environment and are not used any more"
			}
			return nil, nil, errors.New(msg)
		}
		outputs = append(outputs, "sentinel")
	}
	if splunk {
		if _, ok := cfg.Outputs["splunk"]; !ok {
			uri, token := env.Getenv("SplunkUri"), env.Getenv("SplunkToken")
			if uri == "" || token == "" {
				return nil, nil, errors.New("-splunk needs outputs.splunk in the config named by DH_CONFIG, or the original's SplunkUri and SplunkToken environment variables")
			}
			node := &yaml.Node{}
			if err := node.Encode(map[string]any{"url": uri}); err != nil {
				return nil, nil, err
			}
			cfg.Outputs["splunk"] = node
			// The sink reads its token from DH_SPLUNK_TOKEN; the original's
			// variable stands in when that is not set.
			getenv = func(k string) string {
				if v := env.Getenv(k); v != "" || k != "DH_SPLUNK_TOKEN" {
					return v
				}
				return token
			}
		}
		outputs = append(outputs, "splunk")
	}
	return outputs, getenv, nil
}
