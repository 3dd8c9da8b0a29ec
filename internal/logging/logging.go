// Package logging builds the process's slog.Logger from the config's
// log_format and log_level, so `run` and `serve` log the same way: text
// for people, JSON lines for log collectors.
package logging

import (
	"fmt"
	"io"
	"log/slog"
)

// NewLogger returns a logger writing to w in format ("json": one JSON
// object a line; "text" or "": key=value lines) at level ("debug",
// "info" or "", "warn", "error"). An unknown value is an error naming the
// key and the accepted values.
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	lv, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log_format %q is not one of text, json", format)
}

// ParseLevel reads a log_level value ("" is info).
func ParseLevel(level string) (slog.Level, error) {
	switch level {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log_level %q is not one of debug, info, warn, error", level)
}
