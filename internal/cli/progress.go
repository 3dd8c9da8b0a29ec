package cli

import (
	"errors"
	"flag"
	"fmt"
	"github.com/defenderharvester/defenderharvester/internal/logging"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/pipeline"
	"github.com/defenderharvester/defenderharvester/internal/progress"
)

// progressFlags are --progress and --progress-interval.
type progressFlags struct {
	mode     *string
	interval *time.Duration
}

func addProgressFlags(fs *flag.FlagSet) progressFlags {
	return progressFlags{
		mode: fs.String("progress", "auto", "progress display: auto (a live block on a terminal, else a log line every --progress-interval; "+
			"off with --outputs stdout or log_format: json), tty, log or off"),
		interval: fs.Duration("progress-interval", progress.DefaultInterval, "with log progress: how often a progress line is logged"),
	}
}

// progressMode picks the display: a terminal gets the live block, other
// stderr a log line every interval; never any with the stdout output
// (stdout carries records) or JSON logs. outputs are the outputs of the
// run (those of the config when --outputs is not given).
func progressMode(flagMode string, cfg *config.Config, outputs []string, stderr io.Writer, getenv func(string) string) (progress.Mode, error) {
	quiet := ""
	switch {
	case hasStdoutOutput(cfg, outputs):
		quiet = "--outputs stdout"
	case cfg.LogFormat == "json":
		quiet = "log_format: json"
	}
	switch flagMode {
	case "off":
		return progress.Off, nil
	case "auto":
		switch {
		case quiet != "":
			return progress.Off, nil
		case isTerminal(stderr, getenv):
			return progress.TTY, nil
		}
		return progress.Log, nil
	case "tty", "log":
		if quiet != "" {
			return progress.Off, fmt.Errorf("--progress %s cannot be used with %s: nothing but records and logs is written then (use --progress off or auto)", flagMode, quiet)
		}
		if flagMode == "tty" {
			return progress.TTY, nil
		}
		return progress.Log, nil
	}
	return progress.Off, fmt.Errorf("--progress %q is not one of auto, tty, log, off", flagMode)
}

// observer is the display as the harvest's observer: none when off.
func observer(d *progress.Display) pipeline.Observer {
	if d == nil || d.Mode() == progress.Off {
		return nil
	}
	return d
}

// setup builds the run's display from the flags (not started) and the
// run's logger (newLog over the writer given): on a terminal the logs go
// through the display, which keeps its block below them; in log mode the
// display writes its lines with that logger.
func (p progressFlags) setup(env *Env, cfg *config.Config, outputs, sources []string, newLog func(io.Writer) *slog.Logger) (*progress.Display, *slog.Logger, error) {
	if *p.interval <= 0 {
		return nil, nil, errors.New("--progress-interval must be more than 0, e.g. 30s")
	}
	mode, err := progressMode(*p.mode, cfg, outputs, env.Stderr, env.Getenv)
	if err != nil {
		return nil, nil, err
	}
	opts := progress.Options{Mode: mode, Out: env.Stderr, Interval: *p.interval, Sources: sources}
	if mode == progress.TTY {
		d := progress.New(opts)
		return d, newLog(d.Wrap(env.Stderr)), nil
	}
	opts.Logger = newLog(env.Stderr)
	return progress.New(opts), opts.Logger, nil
}

// hasStdoutOutput says whether the run writes records to stdout: named
// in --outputs, or (without --outputs) enabled in the config.
func hasStdoutOutput(cfg *config.Config, outputs []string) bool {
	if len(outputs) > 0 {
		for _, o := range outputs {
			if o == "stdout" {
				return true
			}
		}
		return false
	}
	node, ok := cfg.Outputs["stdout"]
	if !ok {
		return false
	}
	on, err := config.Enabled(node)
	return err == nil && on
}

// isTerminal says whether w is a terminal a live display can redraw: a
// character device other than /dev/null, with TERM not "dumb".
func isTerminal(w io.Writer, getenv func(string) string) bool {
	f, ok := w.(*os.File)
	if !ok || getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
		return false
	}
	return true
}

// newLoggerTo writes structured logs to w at the given level, as text or
// JSON (log_format).
func newLoggerTo(w io.Writer, level, format string, debug bool) *slog.Logger {
	if debug {
		level = "debug"
	}
	log, err := logging.NewLogger(w, format, level)
	if err != nil { // the config was validated; keep logging whatever happens
		log, _ = logging.NewLogger(w, "text", "info")
	}
	return log
}
