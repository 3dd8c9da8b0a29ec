// Command gen writes the detection pack's generated forms from its rules
// (go generate ./detections, run in the detections folder).
package main

import (
	"fmt"
	"os"

	"github.com/defenderharvester/defenderharvester/detections"
	"github.com/defenderharvester/defenderharvester/internal/detect"
)

func main() {
	rules, err := detections.Rules()
	if err == nil {
		err = detect.WritePack(".", rules)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote the generated forms of %d rules\n", len(rules))
}
