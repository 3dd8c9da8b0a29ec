package detect

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// fileRe matches what the files output writes: <Table>-<YYYYMMDD>[.<n>].jsonl.
var fileRe = regexp.MustCompile(`^([A-Za-z0-9_]+)-\d{8}(?:\.\d{1,9})?\.jsonl$`)

// ReadStats says what ReadDir read.
type ReadStats struct {
	Files, Records int
	// Skipped are lines that are not a JSON object (a torn last line
	// after a crash, which the files output repairs at its next start, or
	// a damaged file), named by file and line in Problems.
	Skipped  int
	Problems []string
}

// ReadDir feeds fn every record of the files output under dir (walked
// recursively: a multi-tenant config writes a folder per tenant) whose
// table is in want (all tables when want is nil). Files are read one line
// at a time.
func ReadDir(dir string, want map[string]bool, fn func(Record)) (ReadStats, error) {
	var st ReadStats
	if fi, err := os.Stat(dir); err != nil {
		return st, fmt.Errorf("--in %s: %w", dir, err)
	} else if !fi.IsDir() {
		return st, fmt.Errorf("--in %s is not a folder: give the files output's dir", dir)
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		m := fileRe.FindStringSubmatch(d.Name())
		if d.IsDir() || m == nil || (want != nil && !want[m[1]]) {
			return nil
		}
		st.Files++
		return readFile(p, m[1], &st, fn)
	})
	return st, err
}

const maxLine = 64 << 20

func readFile(p, table string, st *ReadStats, fn func(Record)) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			if len(line) > maxLine {
				return fmt.Errorf("%s line %d: longer than %d bytes", p, n, maxLine)
			}
			dec := json.NewDecoder(bytes.NewReader(line))
			dec.UseNumber()
			var m map[string]any
			if derr := dec.Decode(&m); derr != nil || m == nil {
				st.Skipped++
				if len(st.Problems) < 10 {
					st.Problems = append(st.Problems, fmt.Sprintf("%s line %d is not a JSON object (a torn last line after a crash?)", p, n))
				}
			} else {
				st.Records++
				fn(Record{Table: table, Fields: m})
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
}

// LoadLookups reads the allow-lists in dir: <name>.csv files with a
// SearchKey column (the Sentinel watchlists' and the Splunk lookups'
// layout); other columns are ignored. A missing dir gives no lists.
func LoadLookups(dir string) (Lookups, error) {
	l := Lookups{}
	if dir == "" {
		return l, nil
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.csv"))
	if err != nil {
		return nil, err
	}
	for _, p := range files {
		name := strings.TrimSuffix(filepath.Base(p), ".csv")
		if err := readLookup(p, name, l); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func readLookup(p, name string, l Lookups) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	r.Comment = '#'
	head, err := r.Read()
	if err != nil {
		return fmt.Errorf("lookup %s: %w (want a header line with a SearchKey column)", p, err)
	}
	col := -1
	for i, h := range head {
		if strings.EqualFold(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")), "SearchKey") {
			col = i
		}
	}
	if col < 0 {
		return fmt.Errorf("lookup %s: no SearchKey column in the header line", p)
	}
	if l[name] == nil {
		l[name] = map[string]bool{}
	}
	for line := 2; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("lookup %s line %d: %w", p, line, err)
		}
		if col < len(rec) && strings.TrimSpace(rec[col]) != "" {
			l.Add(name, rec[col])
		}
	}
}

// EvaluateDir runs rules over the files output under dir, reading only
// the tables they read, records from since on (zero: all), and returns
// the findings and what was read.
func EvaluateDir(dir string, rules []*Rule, lookups Lookups, since time.Time) ([]Finding, ReadStats, error) {
	ev := NewEvaluator(rules, lookups)
	want := map[string]bool{}
	for _, t := range ev.Tables() {
		want[t] = true
	}
	st, err := ReadDir(dir, want, func(r Record) {
		if since.IsZero() || !r.Time().Before(since) {
			ev.Add(r)
		}
	})
	if err != nil {
		return nil, st, err
	}
	return ev.Findings(), st, nil
}
