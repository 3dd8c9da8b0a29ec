package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as "30s", "15m", "24h" or "7d"
// (whole days). It is the one duration type of the config, the sources'
// settings (source.Duration is an alias) and the outputs' settings.
// Negative values are refused.
type Duration time.Duration

// maxDays bounds the "d" form (ten years).
const maxDays = 3650

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats like time.Duration ("15m0s").
func (d Duration) String() string { return time.Duration(d).String() }

// ParseDuration reads time.ParseDuration syntax ("90m", "1h30m", "36h")
// plus a whole number of days ("7d"). Negative values are refused.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		switch {
		case err == nil && n < 0, strings.HasPrefix(days, "-"):
			return 0, fmt.Errorf("%q is negative: durations must not be negative", s)
		case err != nil || n > maxDays:
			return 0, fmt.Errorf("%q: use a whole number of days like 7d (at most %dd), or units like 15m or 72h", s, maxDays)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: write it like 30s, 15m, 24h or 7d", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative: durations must not be negative", s)
	}
	return d, nil
}

// UnmarshalYAML reads a duration string; the error names the line.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a duration like 15m, 24h or 7d", n.Line)
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string that reads back the same.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalText lets environment variables and flags use the same syntax.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as a string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
