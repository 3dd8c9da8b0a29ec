// Command gen writes the detection pack's generated forms from its rules
// (go generate ./detections, run in the detections folder). With
// -testdata it also rebuilds every rule's test set (<id>/testdata/, what
// the CI harness runs the KQL over) from a fresh harvest of the emulated
// abuse scenario — the demo's.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/defenderharvester/defenderharvester/detections"
	"github.com/defenderharvester/defenderharvester/internal/cli"
	"github.com/defenderharvester/defenderharvester/internal/detect"
)

func main() {
	testdata := flag.Bool("testdata", false, "also rebuild every rule's testdata from a harvest of the emulated abuse scenario")
	flag.Parse()
	rules, err := detections.Rules()
	if err == nil {
		err = detect.WritePack(".", rules)
	}
	if err == nil && *testdata {
		err = writeTestdata(rules)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote the generated forms of %d rules\n", len(rules))
}

// writeTestdata runs the demo (two harvests of the emulated tenant, the
// attack between them) into a temporary folder and builds each rule's
// test set from what it harvested, with the demo's allow-lists.
func writeTestdata(rules []*detect.Rule) error {
	tmp, err := os.MkdirTemp("", "dh-testdata-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "demo")
	var stdout, stderr bytes.Buffer
	env := &cli.Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }, Now: time.Now}
	if code := cli.Main(context.Background(), env, []string{"demo", "--out", out, "--seed", "1"}); code != 0 {
		io.Copy(os.Stderr, &stdout)
		io.Copy(os.Stderr, &stderr)
		return fmt.Errorf("the demo failed (exit %d)", code)
	}
	lookups, err := detect.LoadLookups(filepath.Join(out, "allow-lists"))
	if err != nil {
		return err
	}
	byTable := map[string][]detect.Record{}
	if _, err := detect.ReadDir(out, nil, func(r detect.Record) { byTable[r.Table] = append(byTable[r.Table], r) }); err != nil {
		return err
	}
	for _, r := range rules {
		files, rows, err := detect.Testdata(r, byTable[r.Table], lookups)
		if err != nil {
			return err
		}
		dir := filepath.Join(r.ID, "testdata")
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		for p, b := range files {
			full := filepath.Join(dir, p)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(full, b, 0o644); err != nil {
				return err
			}
		}
		fmt.Printf("%s: test set with %d expected rows\n", r.ID, rows)
	}
	return nil
}
