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
		fmt.Fprintf(env.Stderr, "defenderharvester: unknown command %q\n\n", name)
		usage(env.Stderr)
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

// newFlagSet makes a flag set that reports errors to env.Stderr instead of exiting.
func newFlagSet(env *Env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "Usage: defenderharvester %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; a bad flag or stray argument yields exitUsage.
func parseFlags(fs *flag.FlagSet, env *Env, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "defenderharvester %s: unexpected argument %q (flags go before arguments; see -h)\n", fs.Name(), fs.Arg(0))
		return exitUsage, false
	}
	return 0, true
}

// newLogger writes structured text logs to stderr at the given level.
func newLogger(env *Env, level string, debug bool) *slog.Logger {
	return newLoggerTo(env.Stderr, level, "text", debug)
}
