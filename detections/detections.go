// Package detections is the detection pack: one folder per rule
// (<id>/rule.yaml, the one description), and the forms generated from it
// (rule.kql, rule.spl, sentinel.yaml, sigma.yml, sentinel/azuredeploy.json,
// splunk/defenderharvester_detections/). Regenerate them after editing a
// rule with go generate ./detections; a test fails while they are stale.
package detections

import (
	"embed"
	"io/fs"

	"github.com/defenderharvester/defenderharvester/internal/detect"
)

//go:generate go run ./gen

//go:embed */rule.yaml
var files embed.FS

// FS holds every rule.yaml of the pack.
func FS() fs.FS { return files }

// Rules loads and checks the pack's rules.
func Rules() ([]*detect.Rule, error) { return detect.Load(files) }
