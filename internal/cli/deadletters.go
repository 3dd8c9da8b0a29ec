package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/harvester"
)

func init() {
	register(command{name: "deadletters", summary: "list dead-lettered records, or send them again: list, retry", run: runDeadLetters})
}

const deadLettersUsage = `Usage:
  defenderharvester deadletters list [--config FILE] [--tenant NAME] [--output NAME]
  defenderharvester deadletters retry [--config FILE] [--tenant NAME] [--output NAME] [--yes]

Dead letters are records an output refused for reasons of their own (too
large, refused by the service for their content); each output keeps them in
<dead_letter_dir, default: the state file's folder/deadletter>/<output>-deadletter-YYYYMMDD.jsonl.

  list   each output's dead-letter files: lines and the first line's reason
  retry  send them again through the output (fix the cause first). Each file
         is moved to deadletter/retrying/ and sent in batches of one table;
         the position reached is saved after each batch, so a retry that
         stops resumes there. Records the output refuses again go to a new
         dead-letter file, as in a run; lines that cannot be sent as they are
         (their payload was not valid JSON) are copied back unchanged. A file
         is moved to deadletter/retried/ once every line is dealt with.
         Without --yes it only lists what it would send.

Like the state tools, retry refuses while a running harvester (serve or
run) holds the tenant's state file. Exit codes: 0 done, 1 a failure
(what was not sent stays for the next retry), 2 usage, 3 records were
refused again (they are in dead letters again).
`

func runDeadLetters(ctx context.Context, env *Env, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, deadLettersUsage)
		return exitUsage
	}
	switch args[0] {
	case "list":
		return runDeadLettersList(env, args[1:])
	case "retry":
		return runDeadLettersRetry(ctx, env, args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Fprint(env.Stdout, deadLettersUsage)
		return exitOK
	}
	fmt.Fprintf(env.Stderr, "defenderharvester deadletters: unknown subcommand %q\n\n%s", args[0], deadLettersUsage)
	return exitUsage
}

// deadLetterOutputs resolves --output for one tenant: nil (all) or that
// output; ok is false when the tenant has no such output.
func deadLetterOutputs(tc *config.Config, output string) ([]string, bool) {
	if output == "" {
		return nil, true
	}
	names, _ := harvester.OutputNames(tc)
	for _, n := range names {
		if n == output {
			return []string{output}, true
		}
	}
	return nil, false
}

// checkOutputFlag makes an --output no selected tenant has a usage error
// naming the outputs.
func checkOutputFlag(env *Env, cmd string, tenants []*config.Config, output string) bool {
	if output == "" {
		return true
	}
	var all []string
	for _, tc := range tenants {
		if _, ok := deadLetterOutputs(tc, output); ok {
			return true
		}
		names, _ := harvester.OutputNames(tc)
		for _, n := range names {
			if !slices.Contains(all, n) {
				all = append(all, n)
			}
		}
	}
	fmt.Fprintf(env.Stderr, "defenderharvester %s: --output %s: no such output; configured outputs: %s\n", cmd, output, strings.Join(all, ", "))
	return false
}

func runDeadLettersList(env *Env, args []string) int {
	fs := newFlagSet(env, "deadletters list", "deadletters list [--config FILE] [--tenant NAME] [--output NAME]")
	cfgPath := fs.String("config", "", "config file (YAML); default $"+config.EnvConfig)
	tenant := fs.String("tenant", "", "only this tenant (its name in the config)")
	output := fs.String("output", "", "only this output")
	if code, ok := parseFlags(fs, env, args); !ok {
		return code
	}
	_, tenants, ok := toolTenants(env, "deadletters list", *cfgPath, *tenant, false)
	if !ok || !checkOutputFlag(env, "deadletters list", tenants, *output) {
		return exitUsage
	}
	code := exitOK
	for i, tc := range tenants {
		outs, ok := deadLetterOutputs(tc, *output)
		if !ok {
			continue
		}
		states, err := harvester.DeadLetterSummary(tc, outs)
		if err != nil {
			fmt.Fprintf(env.Stderr, "defenderharvester deadletters list: tenant %s: %v\n", tc.TenantName(), err)
			code = exitFailed
			continue
		}
		if i > 0 {
			fmt.Fprintln(env.Stdout)
		}
		fmt.Fprintf(env.Stdout, "tenant %s\n", tc.TenantName())
		printDeadLetterFiles(env.Stdout, states)
	}
	return code
}

func printDeadLetterFiles(w io.Writer, states []harvester.OutputState) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OUTPUT\tFILE\tLINES\tSIZE\tFIRST REASON")
	for _, o := range states {
		if o.DeadLetters.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\tunreadable: %s\n", o.Output, o.DeadLetters.Dir, oneLine(o.DeadLetters.Error))
			continue
		}
		if len(o.DeadLetters.Files) == 0 {
			fmt.Fprintf(tw, "%s\t(none in %s)\t0\t-\t-\n", o.Output, o.DeadLetters.Dir)
			continue
		}
		for _, f := range o.DeadLetters.Files {
			path := f.Path
			if f.Retrying {
				path += " (part-way through a retry)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", o.Output, path, f.Lines, byteSize(f.Bytes), truncate(oneLine(f.FirstReason), 100))
		}
	}
	tw.Flush()
}

func runDeadLettersRetry(ctx context.Context, env *Env, args []string) int {
	fs := newFlagSet(env, "deadletters retry", "deadletters retry [--config FILE] [--tenant NAME] [--output NAME] [--yes]")
	cfgPath := fs.String("config", "", "config file (YAML); default $"+config.EnvConfig)
	tenant := fs.String("tenant", "", "only this tenant (its name in the config); default every tenant")
	output := fs.String("output", "", "only this output; default every output")
	yes := fs.Bool("yes", false, "send them; without --yes only list what would be sent")
	if code, ok := parseFlags(fs, env, args); !ok {
		return code
	}
	top, tenants, ok := toolTenants(env, "deadletters retry", *cfgPath, *tenant, false)
	if !ok || !checkOutputFlag(env, "deadletters retry", tenants, *output) {
		return exitUsage
	}
	code := exitOK
	again := 0
	for i, tc := range tenants {
		outs, ok := deadLetterOutputs(tc, *output)
		if !ok {
			continue
		}
		if i > 0 {
			fmt.Fprintln(env.Stdout)
		}
		if !*yes {
			states, err := harvester.DeadLetterSummary(tc, outs)
			if err != nil {
				fmt.Fprintf(env.Stderr, "defenderharvester deadletters retry: tenant %s: %v\n", tc.TenantName(), err)
				code = exitFailed
				continue
			}
			fmt.Fprintf(env.Stdout, "tenant %s: would send again:\n", tc.TenantName())
			printDeadLetterFiles(env.Stdout, states)
			continue
		}
		// The lock keeps a running harvester from writing dead letters
		// (or this tenant's state) while they are sent again.
		store, err := openToolStore(env, top, tc)
		if err != nil {
			fmt.Fprintln(env.Stderr, "defenderharvester deadletters retry:", err)
			code = exitFailed
			continue
		}
		results, err := harvester.RetryDeadLetters(ctx, tc, outs, toolOptions(env, tc))
		if store != nil {
			store.Close()
		}
		// The stdout output writes records to stdout: the report goes to stderr then.
		var types []string
		names, _ := harvester.OutputNames(tc)
		for _, n := range names {
			if *output == "" || n == *output {
				types = append(types, config.OutputType(n, tc.Outputs[n]))
			}
		}
		w := summaryWriter(env, types)
		fmt.Fprintf(w, "tenant %s:\n", tc.TenantName())
		if len(results) == 0 && err == nil {
			fmt.Fprintln(w, "  no dead letters")
		}
		for _, r := range results {
			fmt.Fprintf(w, "  output %s: %s: %d record(s) sent again, %d accepted, %d refused again", r.Output, r.File, r.Records, r.Sent, r.DeadLetteredAgain)
			if r.Kept > 0 {
				fmt.Fprintf(w, ", %d line(s) cannot be sent as they are (kept in %s)", r.Kept, r.KeptIn)
			}
			switch {
			case r.MovedTo != "":
				fmt.Fprintf(w, "; done, moved to %s\n", r.MovedTo)
			case r.Err != nil:
				fmt.Fprintf(w, "; stopped, the rest is sent by the next retry\n")
			default:
				fmt.Fprintln(w)
			}
			again += r.DeadLetteredAgain + r.Kept
		}
		if err != nil {
			fmt.Fprintf(env.Stderr, "defenderharvester deadletters retry: tenant %s: %v\n", tc.TenantName(), err)
			code = exitFailed
		}
	}
	if !*yes {
		fmt.Fprintln(env.Stdout, "Nothing was sent; run again with --yes to send them.")
		return code
	}
	if code == exitOK && again > 0 {
		fmt.Fprintf(env.Stderr, "%d record(s) are still in dead letters (refused again, or not sendable as they are); see 'defenderharvester deadletters list'\n", again)
		return exitDeadLetters
	}
	return code
}
