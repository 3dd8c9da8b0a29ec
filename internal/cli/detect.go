package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/defenderharvester/defenderharvester/detections"
	"github.com/defenderharvester/defenderharvester/internal/detect"
	"github.com/defenderharvester/defenderharvester/internal/harvester"
)

func init() {
	register(command{name: "detect", summary: "run the detection pack's rules over harvested records (the files output) and print the findings", run: runDetect})
}

func runDetect(ctx context.Context, env *Env, args []string) int {
	fs := newFlagSet(env, "detect", "detect --in DIR [--json] [--lookups DIR] [--rules DH-001,…] [--since TIME] [--emit [--config FILE] [--outputs LIST]] [--list]")
	in := fs.String("in", "", "the files output's folder (walked recursively: <Table>-<YYYYMMDD>.jsonl)")
	asJSON := fs.Bool("json", false, "print one JSON object per finding (naming the rule's id) instead of a table")
	lookups := fs.String("lookups", "", "folder of allow-lists: <name>.csv with a SearchKey column (the rules' not_in_lookup lists; an absent list is empty)")
	only := fs.String("rules", "", "run only these rule ids (default: every rule of the pack)")
	since := fs.String("since", "", "only records from this time on (RFC 3339)")
	emit := fs.Bool("emit", false, "also write the findings to the configured outputs, table DefenderHarvesterFindings")
	cfgPath := fs.String("config", "", "config file for --emit (default $DH_CONFIG)")
	outputs := fs.String("outputs", "", "with --emit: only these outputs")
	list := fs.Bool("list", false, "list the rules and what each needs, then exit")
	if code, ok := parseFlags(fs, env, args); !ok {
		return code
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(env.Stderr, "defenderharvester detect: "+format+"\n", a...)
		return code
	}
	rules, err := detections.Rules()
	if err != nil {
		return fail(exitFailed, "the built-in pack does not load (a bug): %v", err)
	}
	if *only != "" {
		if rules, err = detect.Select(rules, splitList(*only)); err != nil {
			return fail(exitUsage, "--rules: %v (see detect --list)", err)
		}
	}
	if *list {
		printRules(env.Stdout, rules)
		return exitOK
	}
	if *in == "" {
		return fail(exitUsage, "--in is required: the folder of the files output (outputs.files.dir)")
	}
	var from time.Time
	if *since != "" {
		if from, err = time.Parse(time.RFC3339, *since); err != nil {
			return fail(exitUsage, "--since %q is not an RFC 3339 time such as 2026-11-30T00:00:00Z", *since)
		}
	}
	lists, err := detect.LoadLookups(*lookups)
	if err != nil {
		return fail(exitUsage, "--lookups: %v", err)
	}
	if *lookups != "" {
		if _, err := os.Stat(*lookups); err != nil {
			return fail(exitUsage, "--lookups: %v", err)
		}
	}
	findings, st, err := detect.EvaluateDir(*in, rules, lists, from)
	if err != nil {
		return fail(exitFailed, "%v", err)
	}
	for _, p := range st.Problems {
		fmt.Fprintln(env.Stderr, "defenderharvester detect: skipped:", p)
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetEscapeHTML(false)
		for _, f := range findings {
			if err := enc.Encode(f); err != nil {
				return fail(exitFailed, "%v", err)
			}
		}
	} else {
		printFindings(env.Stdout, findings, rules, st)
	}
	if *emit {
		cfg, err := loadConfig(env, *cfgPath)
		if err != nil {
			return fail(exitUsage, "%v", err)
		}
		recs, err := harvester.FindingRecords(cfg.TenantID, findings, env.Now())
		if err == nil {
			err = harvester.Emit(ctx, harvester.Request{Config: cfg, Outputs: splitList(*outputs), Logger: newLogger(env, cfg.LogLevel, false),
				Now: env.Now, Getenv: env.Getenv, Stdout: env.Stdout}, harvester.FindingsTable, recs)
		}
		if err != nil {
			return fail(exitFailed, "--emit: %v (the findings keep their ids: run again)", err)
		}
		fmt.Fprintf(env.Stderr, "wrote %d findings to table %s\n", len(recs), harvester.FindingsTable)
	}
	return exitOK
}

// printFindings shows the findings as a table, with one line of evidence
// each, after a summary of what was read.
func printFindings(w io.Writer, fs []detect.Finding, rules []*detect.Rule, st detect.ReadStats) {
	bySev := map[string]int{}
	for _, f := range fs {
		bySev[f.Severity]++
	}
	var sev []string
	for _, s := range []string{"High", "Medium", "Low", "Informational"} {
		if bySev[s] > 0 {
			sev = append(sev, fmt.Sprintf("%d %s", bySev[s], s))
		}
	}
	fmt.Fprintf(w, "%d findings", len(fs))
	if len(sev) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(sev, ", "))
	}
	fmt.Fprintf(w, " from %d rules over %d records in %d files\n", len(rules), st.Records, st.Files)
	if len(fs) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FIRST SEEN (UTC)\tRULE\tSEVERITY\tACTOR\tCOUNT\tTITLE\tEVIDENCE")
	for _, f := range fs {
		actor := f.Actor
		if actor == "" {
			actor = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", f.FirstSeen.UTC().Format("2006-01-02 15:04:05"), f.RuleID, f.Severity,
			truncate(actor, 40), f.Count, truncate(f.Title, 60), truncate(evidenceLine(f), 100))
	}
	tw.Flush()
}

// evidenceLine is the first matching record's shown columns, or the
// threshold group and distinct count.
func evidenceLine(f detect.Finding) string {
	var parts []string
	if len(f.Group) > 0 {
		for _, k := range slices.Sorted(maps.Keys(f.Group)) {
			parts = append(parts, k+"="+f.Group[k])
		}
		if f.Distinct > 0 {
			parts = append(parts, fmt.Sprintf("distinct=%d", f.Distinct))
		}
	}
	if len(f.Evidence) > 0 {
		e := f.Evidence[0]
		for _, k := range slices.Sorted(maps.Keys(e)) {
			if v := e[k]; v != "" && len(f.Group) == 0 {
				parts = append(parts, k+"="+oneLine(v))
			}
		}
	}
	return strings.Join(parts, " ")
}

// printRules lists the pack: id, severity, table, allow-lists, forms.
func printRules(w io.Writer, rules []*detect.Rule) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tSEVERITY\tTABLE\tALLOW-LISTS\tSIGMA\tTITLE")
	for _, r := range rules {
		l := strings.Join(r.Lookups(), ",")
		if l == "" {
			l = "-"
		}
		sigma := "yes"
		if !r.SigmaExpressible() {
			sigma = "no"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Severity, r.Table, l, sigma, r.Title)
	}
	tw.Flush()
}
