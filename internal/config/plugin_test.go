package config

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

type InlineWindow struct {
	Overlap Duration `yaml:"overlap"`
	Delay   Duration `yaml:"delay"`
}

type pluginWithInline struct {
	PageSize     int `yaml:"page_size"`
	InlineWindow `yaml:",inline"`
}

// TestPluginInlineKeys: keys of a struct embedded inline (the event
// sources' delay/overlap/max_window) are accepted and decoded, and listed
// among the known keys when a key is wrong.
func TestPluginInlineKeys(t *testing.T) {
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("page_size: 50\ndelay: 5m\noverlap: 1h\n"), &n); err != nil {
		t.Fatal(err)
	}
	var got pluginWithInline
	if err := DecodePlugin(n.Content[0], "sources.x", &got); err != nil {
		t.Fatal(err)
	}
	if got.PageSize != 50 || time.Duration(got.Delay) != 5*time.Minute || time.Duration(got.Overlap) != time.Hour {
		t.Fatalf("decoded %+v", got)
	}
	if err := yaml.Unmarshal([]byte("delai: 5m\n"), &n); err != nil {
		t.Fatal(err)
	}
	err := DecodePlugin(n.Content[0], "sources.x", &pluginWithInline{})
	if err == nil || !strings.Contains(err.Error(), `unknown key "delai"`) || !strings.Contains(err.Error(), "delay, overlap, page_size") {
		t.Fatalf("err = %v", err)
	}
}
