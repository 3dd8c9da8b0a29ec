package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/harvester"
)

func init() {
	register(command{name: "doctor", summary: "check every credential, data set and output, and say what to fix", run: runDoctor})
}

func runDoctor(ctx context.Context, env *Env, args []string) int {
	fs := newFlagSet(env, "doctor", "doctor [--config FILE] [--sources LIST|all] [--tenant NAMES] [--timeout DURATION]")
	cfgPath := fs.String("config", "", "config file (YAML); default $"+config.EnvConfig+" or built-in defaults")
	sources := fs.String("sources", "all", "comma-separated source names to check, or all")
	timeout := fs.Duration("timeout", 30*time.Second, "time limit of each check")
	tenant := fs.String("tenant", "", "with a config that lists tenants: only these (comma-separated names; default all)")
	debug := fs.Bool("debug", false, "debug logging")
	if code, ok := parseFlags(fs, env, args); !ok {
		return code
	}
	if *timeout <= 0 {
		fmt.Fprintln(env.Stderr, "defenderharvester doctor: --timeout must be positive, e.g. 30s")
		return exitUsage
	}
	cfg, err := loadConfig(env, *cfgPath)
	if err != nil {
		fmt.Fprintln(env.Stderr, "defenderharvester doctor:", err)
		return exitUsage
	}
	tenants, err := selectTenants(cfg, *tenant)
	if err != nil {
		fmt.Fprintln(env.Stderr, "defenderharvester doctor:", err)
		return exitUsage
	}
	var checks []harvester.DoctorCheck
	for _, tc := range tenants {
		cs, err := harvester.Doctor(ctx, harvester.DoctorRequest{
			Config:  tc,
			Sources: splitList(*sources),
			Logger:  newLogger(env, "error", *debug),
			Now:     env.Now,
			Getenv:  env.Getenv,
			Timeout: *timeout,
		})
		if err != nil {
			fmt.Fprintln(env.Stderr, "defenderharvester doctor:", err)
			return exitUsage
		}
		if cfg.MultiTenant() {
			for i := range cs {
				cs[i].DataSet = tc.Name + ": " + cs[i].DataSet
			}
		}
		checks = append(checks, cs...)
	}
	failed := printChecks(env.Stdout, checks)
	if failed > 0 {
		fmt.Fprintf(env.Stderr, "%d of %d checks failed\n", failed, len(checks))
		return exitFailed
	}
	fmt.Fprintf(env.Stdout, "all %d checks passed\n", len(checks))
	return exitOK
}

// printChecks writes the doctor's table and returns how many failed
// (warnings are shown but do not fail).
func printChecks(w io.Writer, checks []harvester.DoctorCheck) int {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DATA SET\tAPI\tSTATUS\tPROBLEM\tFIX")
	failed := 0
	for _, c := range checks {
		status, problem, fix := "ok", "-", "-"
		switch {
		case c.Warning:
			status, problem, fix = "warning", oneLine(c.Problem), oneLine(c.Fix)
		case !c.OK:
			failed++
			status, problem, fix = "FAIL", oneLine(c.Problem), oneLine(c.Fix)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.DataSet, c.API, status, problem, fix)
	}
	tw.Flush()
	return failed
}
