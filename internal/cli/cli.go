// Package cli holds one file per command. Commands parse flags, call the
// packages that do the work, and print; nothing else.
package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"
)

// Env is what a command may touch of the outside world; tests replace it.
type Env struct {
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	Now    func() time.Time
}

// OSEnv is the real process environment.
func OSEnv() *Env {
	return &Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Now: time.Now}
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *Env, args []string) int
}

var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1 // the work ran and something failed
	exitUsage   = 2 // bad flags or config: nothing ran
	exitVersion = 0
	// exitDeadLetters: everything else worked, but an output refused
	// some records for reasons of their own; they are in dead-letter
	// files, not delivered.
	exitDeadLetters = 3
	// exitDeadline: the run was stopped by its deadline (run_timeout or
	// --timeout); what it finished is kept, the rest is read next run.
	exitDeadline = 4
)

// Version is set at build time with -ldflags "-X .../internal/cli.Version=…";
// left at "dev", `version` prints the module version go stamped instead.
var Version = "dev"

// Main runs the command named by args[0]. The original DefenderHarvester's
// single-dash flags (-machineactions, -lookback 2, …) are accepted as-is.
func Main(ctx context.Context, env *Env, args []string) int {
	if len(args) == 0 {
		usage(env.Stderr)
		return exitUsage
	}
	name := args[0]
	if strings.HasPrefix(name, "-") {
		switch name {
		case "-h", "-help", "--help":
			usage(env.Stdout)
			return exitOK
		case "-version", "--version":
			printVersion(env.Stdout)
			return exitVersion
		}
		return runCompat(ctx, env, args)
	}
	switch name {
	case "help":
		usage(env.Stdout)
		return exitOK
	case "version":
		printVersion(env.Stdout)
		return exitVersion
	}
	c, ok := commands[name]
	if !ok {
		known := []string{"help", "version"}
		for n := range commands {
			known = append(known, n)
		}
		msg := fmt.Sprintf("defenderharvester: unknown command %q", name)
		if s := suggest(name, known); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		}
		fmt.Fprintln(env.Stderr, msg+"; see 'defenderharvester -h'")
		return exitUsage
	}
	return c.run(ctx, env, args[1:])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "defenderharvester — harvest Microsoft Defender for Endpoint sensitive-action telemetry")
	fmt.Fprintln(w, "\nUsage:\n  defenderharvester <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "  version    print the version")
	fmt.Fprintln(w, "\nThe original DefenderHarvester flags (-machineactions, -lookback 2, -files, …) also work.")
	fmt.Fprintln(w, "Run 'defenderharvester <command> -h' for a command's flags.")
}

// newFlagSet makes a flag set that reports errors to env.Stderr instead
// of exiting; -h prints its usage to env.Stdout.
func newFlagSet(env *Env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parseFlags says what is wrong, on one line
	fs.Usage = func() {
		fmt.Fprintf(env.Stdout, "Usage: defenderharvester %s\n\nFlags:\n", synopsis)
		fs.SetOutput(env.Stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parseFlags parses args; a bad flag or stray argument yields exitUsage
// and one line on stderr (with the nearest flag for a misspelt one),
// never the whole usage.
func parseFlags(fs *flag.FlagSet, env *Env, args []string) (int, bool) {
	usage := fs.Usage
	fs.Usage = func() {} // the flag package calls it on every error
	err := fs.Parse(args)
	fs.Usage = usage
	if err != nil {
		if err == flag.ErrHelp {
			usage()
			return exitOK, false
		}
		fmt.Fprintln(env.Stderr, flagError(fs, err))
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "%s: unexpected argument %q (flags go before arguments); see %s\n", commandLabel(fs), fs.Arg(0), helpHint(fs))
		return exitUsage, false
	}
	return 0, true
}

// commandLabel names the command in messages: "defenderharvester run"
// ("defenderharvester" for the original tool's flags).
func commandLabel(fs *flag.FlagSet) string {
	if fs.Name() == compatName {
		return "defenderharvester"
	}
	return "defenderharvester " + fs.Name()
}

// helpHint says where the command's flags are listed.
func helpHint(fs *flag.FlagSet) string {
	if fs.Name() == compatName {
		return "'defenderharvester -files -h' for the original tool's flags, 'defenderharvester -h' for the commands"
	}
	return "'defenderharvester " + fs.Name() + " -h'"
}

// dashes is how the command's flags are written: the original tool's with
// one dash, the commands' with two.
func dashes(fs *flag.FlagSet) string {
	if fs.Name() == compatName {
		return "-"
	}
	return "--"
}

// flagError turns the flag package's error into one line:
// "defenderharvester run: unknown flag --sorces (did you mean --sources?);
// see 'defenderharvester run -h'".
func flagError(fs *flag.FlagSet, err error) string {
	msg := err.Error()
	const undefined = "flag provided but not defined: "
	if name, ok := strings.CutPrefix(msg, undefined); ok {
		name = strings.TrimLeft(name, "-")
		var known []string
		fs.VisitAll(func(f *flag.Flag) { known = append(known, f.Name) })
		msg = "unknown flag " + dashes(fs) + name
		if s := suggest(name, known); s != "" {
			msg += " (did you mean " + dashes(fs) + s + "?)"
		}
	} else {
		// "invalid value "x" for flag -timeout: …", "flag needs an
		// argument: -config": name the flag as the user writes it.
		for _, p := range []string{"for flag -", "argument: -"} {
			if i := strings.Index(msg, p); i >= 0 && dashes(fs) == "--" {
				msg = msg[:i+len(p)] + "-" + msg[i+len(p):]
			}
		}
	}
	return fmt.Sprintf("%s: %s; see %s", commandLabel(fs), oneLine(msg), helpHint(fs))
}

// suggest returns the candidate nearest to name: one that starts with it
// (at least two characters typed), else one at edit distance 2 or less;
// "" when none is close.
func suggest(name string, candidates []string) string {
	name = strings.ToLower(name)
	best, bestDist := "", 3
	for _, c := range candidates {
		if len(name) >= 2 && strings.HasPrefix(c, name) {
			if best == "" || bestDist > 0 || len(c) < len(best) {
				best, bestDist = c, 0
			}
			continue
		}
		if d := editDistance(name, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// newLogger writes structured text logs to stderr at the given level.
func newLogger(env *Env, level string, debug bool) *slog.Logger {
	return newLoggerTo(env.Stderr, level, "text", debug)
}
