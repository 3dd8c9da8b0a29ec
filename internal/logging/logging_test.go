package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/auth"
)

func TestNewLogger(t *testing.T) {
	tests := []struct {
		format, level string
		wantLines     int // lines written by one debug, info and error call
		json          bool
	}{
		{"json", "debug", 3, true},
		{"json", "", 2, true},
		{"json", "error", 1, true},
		{"text", "info", 2, false},
		{"", "", 2, false},
		{"text", "warn", 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.format+"/"+tt.level, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := NewLogger(&buf, tt.format, tt.level)
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("debug line", "tenant", "contoso")
			log.Info("info line", "tenant", "contoso", "token", auth.Secret("SECRETVALUE"))
			log.Error("error line", "tenant", "contoso", "records", 3)
			lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			if len(lines) != tt.wantLines {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), tt.wantLines, buf.String())
			}
			if strings.Contains(buf.String(), "SECRETVALUE") {
				t.Errorf("a secret reached the log:\n%s", buf.String())
			}
			for _, line := range lines {
				var obj map[string]any
				err := json.Unmarshal([]byte(line), &obj)
				if tt.json {
					if err != nil {
						t.Fatalf("line %q is not JSON: %v", line, err)
					}
					if obj["tenant"] != "contoso" || obj["msg"] == nil || obj["level"] == nil || obj["time"] == nil {
						t.Errorf("line %q lacks time, level, msg or tenant", line)
					}
					continue
				}
				if err == nil || !strings.Contains(line, "tenant=contoso") || !strings.Contains(line, "level=") {
					t.Errorf("line %q is not a text line", line)
				}
			}
		})
	}
}

func TestNewLoggerRefusesUnknownValues(t *testing.T) {
	for _, tt := range []struct{ format, level, want string }{
		{"xml", "info", `log_format "xml" is not one of text, json`},
		{"JSON", "info", `log_format "JSON"`},
		{"json", "verbose", `log_level "verbose" is not one of debug, info, warn, error`},
	} {
		log, err := NewLogger(&bytes.Buffer{}, tt.format, tt.level)
		if err == nil || log != nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewLogger(%q, %q) = %v, %v; want an error saying %q", tt.format, tt.level, log, err, tt.want)
		}
	}
}
