package source

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDurationYAML(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"overlap: 15m", 15 * time.Minute, ""},
		{"overlap: 72h", 72 * time.Hour, ""},
		{"overlap: 7d", 7 * 24 * time.Hour, ""},
		{"overlap: 1h30m", 90 * time.Minute, ""},
		{"overlap: fifteen", 0, "line 1"},
		{"overlap: -5m", 0, "negative"},
		{"overlap: 1.5d", 0, "whole number of days"},
		{"overlap: [1]", 0, "expected a duration"},
	}
	for _, tt := range tests {
		var v struct {
			Overlap Duration `yaml:"overlap"`
		}
		err := yaml.Unmarshal([]byte(tt.in), &v)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || v.Overlap.D() != tt.want {
			t.Errorf("%q: got %v, %v; want %v", tt.in, v.Overlap, err, tt.want)
		}
	}
	out, err := yaml.Marshal(struct {
		D Duration `yaml:"d"`
	}{Duration(15 * time.Minute)})
	if err != nil || strings.TrimSpace(string(out)) != "d: 15m0s" {
		t.Errorf("marshal = %q, %v", out, err)
	}
}
