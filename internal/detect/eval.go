package detect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"

	"github.com/defenderharvester/defenderharvester/internal/tables"
)

// Record is one harvested record as the outputs wrote it: its table and
// its fields (payload names: the standard fields and the payload's own,
// not the Log Analytics column renames).
type Record struct {
	Table  string
	Fields map[string]any
}

// ID is the record's RecordId.
func (r Record) ID() string { s, _ := r.Fields["RecordId"].(string); return s }

// Time is the record's TimeGenerated (zero when unreadable).
func (r Record) Time() time.Time {
	s, _ := r.Fields["TimeGenerated"].(string)
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t.UTC()
}

// Lookups are allow-lists by name: the values on each (compared
// case-insensitively).
type Lookups map[string]map[string]bool

// Add puts value on the allow-list name.
func (l Lookups) Add(name, value string) {
	if l[name] == nil {
		l[name] = map[string]bool{}
	}
	l[name][strings.ToLower(strings.TrimSpace(value))] = true
}

// Finding is one rule firing: a matching record, or a group of them that
// reached the rule's threshold within one time bin.
type Finding struct {
	RuleID     string   `json:"RuleId"`
	Title      string   `json:"RuleTitle"`
	Severity   string   `json:"Severity"`
	Tactics    []string `json:"Tactics"`
	Techniques []string `json:"Techniques"`
	Table      string   `json:"DataSet"`
	Tenant     string   `json:"DefenderTenantId,omitempty"`
	// FirstSeen and LastSeen span the matching records' times.
	FirstSeen time.Time `json:"FirstSeen"`
	LastSeen  time.Time `json:"LastSeen"`
	Actor     string    `json:"Actor,omitempty"`
	// Group is a threshold's group (by-column values); Count the matching
	// records, Distinct the distinct values counted when the threshold
	// says so.
	Group    map[string]string `json:"Group,omitempty"`
	Count    int               `json:"Count"`
	Distinct int               `json:"Distinct,omitempty"`
	// Evidence shows the rule's columns of up to maxEvidence matching
	// records; RecordIds names up to maxEvidence of them.
	Evidence  []map[string]string `json:"Evidence"`
	RecordIDs []string            `json:"RecordIds"`
}

const maxEvidence = 20

// Evaluator runs rules over records, fed one at a time; memory grows
// with the matches only (and, for threshold rules, their groups).
type Evaluator struct {
	rules   []*Rule
	lookups Lookups
	byTable map[string][]*Rule
	fields  map[string]map[string]string // table → column → payload field
	seen    map[string]time.Time         // rule + record id → record time: dedup of re-delivered records
	taken   map[string]int               // finding key → its count when last taken (TakeNew)
	single  []Finding
	groups  map[string]*groupState
	order   []string
}

type groupState struct {
	rule     *Rule
	finding  Finding
	distinct map[string]bool
}

// NewEvaluator prepares rules; lookups are the allow-lists (a rule
// reading a list that is absent treats it as empty: everything fires).
func NewEvaluator(rules []*Rule, lookups Lookups) *Evaluator {
	e := &Evaluator{rules: rules, lookups: lookups, byTable: map[string][]*Rule{}, fields: map[string]map[string]string{},
		seen: map[string]time.Time{}, groups: map[string]*groupState{}}
	for _, r := range rules {
		e.byTable[r.Table] = append(e.byTable[r.Table], r)
		if _, ok := e.fields[r.Table]; !ok {
			e.fields[r.Table] = fieldNames(r.Table)
		}
	}
	return e
}

// Tables lists the tables the rules read.
func (e *Evaluator) Tables() []string {
	out := make([]string, 0, len(e.byTable))
	for t := range e.byTable {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// fieldNames maps a table's column names to the payload field names the
// outputs write (a renamed column's Field).
func fieldNames(table string) map[string]string {
	tb, _ := tables.Lookup(table)
	out := map[string]string{}
	for _, c := range tb.Columns {
		if c.Field != "" {
			out[c.Name] = c.Field
		} else {
			out[c.Name] = c.Name
		}
	}
	return out
}

// payloadPath turns a rule field (column[.path]) into the record's field
// path.
func payloadPath(names map[string]string, f string) []string {
	col, rest, nested := strings.Cut(f, ".")
	p := []string{names[col]}
	if p[0] == "" {
		p[0] = col
	}
	if nested {
		p = append(p, strings.Split(rest, ".")...)
	}
	return p
}

// Add evaluates every rule of the record's table on it.
func (e *Evaluator) Add(rec Record) {
	rules := e.byTable[rec.Table]
	if len(rules) == 0 {
		return
	}
	names := e.fields[rec.Table]
	for _, r := range rules {
		if !e.match(&r.Where, names, rec) {
			continue
		}
		key := r.ID + "\x00" + rec.ID()
		if _, dup := e.seen[key]; dup && rec.ID() != "" {
			continue // the same record delivered twice (at least once)
		}
		e.seen[key] = rec.Time()
		e.addMatch(r, names, rec)
	}
}

func (e *Evaluator) addMatch(r *Rule, names map[string]string, rec Record) {
	at := rec.Time()
	ev := map[string]string{}
	for _, f := range r.Show {
		ev[f] = text(lookup(rec.Fields, payloadPath(names, f)))
	}
	actor := ""
	if r.Actor != "" {
		actor = text(lookup(rec.Fields, payloadPath(names, r.Actor)))
	}
	tenant, _ := rec.Fields["TenantId"].(string)
	base := Finding{RuleID: r.ID, Title: r.Title, Severity: r.Severity, Tactics: r.Tactics, Techniques: r.Techniques,
		Table: r.Table, Tenant: tenant, FirstSeen: at, LastSeen: at, Actor: actor, Count: 1,
		Evidence: []map[string]string{ev}, RecordIDs: []string{rec.ID()}}
	th := r.Threshold
	if th == nil {
		e.single = append(e.single, base)
		return
	}
	// Bins are aligned to the Unix epoch, as KQL's bin() and Splunk's
	// bin are (time.Truncate aligns to the zero time).
	w := int64(th.Within.D())
	bin := time.Unix(0, at.UnixNano()-((at.UnixNano()%w)+w)%w).UTC()
	group, byKey := r.group(names, rec)
	k := fmt.Sprintf("%s\x00%d\x00%s", r.ID, bin.UnixNano(), byKey)
	g, ok := e.groups[k]
	if !ok {
		base.Group, base.Evidence, base.RecordIDs, base.Count = group, nil, nil, 0
		g = &groupState{rule: r, finding: base, distinct: map[string]bool{}}
		e.groups[k] = g
		e.order = append(e.order, k)
	}
	f := &g.finding
	f.Count++
	if at.Before(f.FirstSeen) {
		f.FirstSeen = at
	}
	if at.After(f.LastSeen) {
		f.LastSeen = at
	}
	if f.Actor == "" {
		f.Actor = actor
	}
	if th.Distinct != "" {
		g.distinct[strings.ToLower(text(lookup(rec.Fields, payloadPath(names, th.Distinct))))] = true
		f.Distinct = len(g.distinct)
	}
	if len(f.Evidence) < maxEvidence {
		f.Evidence = append(f.Evidence, ev)
		f.RecordIDs = append(f.RecordIDs, rec.ID())
	}
}

// group is a threshold rule's group of rec: its by-column values, and
// their key (compared case-insensitively).
func (r *Rule) group(names map[string]string, rec Record) (map[string]string, string) {
	group := map[string]string{}
	var k strings.Builder
	for _, f := range r.Threshold.By {
		v := text(lookup(rec.Fields, payloadPath(names, f)))
		group[f] = v
		k.WriteString(strings.ToLower(v) + "\x00")
	}
	return group, k.String()
}

// Findings are the findings so far: every single match, and every group
// that reached its threshold; by first seen time, then rule.
func (e *Evaluator) Findings() []Finding {
	out := append([]Finding(nil), e.single...)
	for _, k := range e.order {
		g := e.groups[k]
		th := g.rule.Threshold
		n := g.finding.Count
		if th.Distinct != "" {
			n = g.finding.Distinct
		}
		if n >= th.AtLeast {
			out = append(out, g.finding)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].FirstSeen.Equal(out[j].FirstSeen) {
			return out[i].FirstSeen.Before(out[j].FirstSeen)
		}
		return out[i].RuleID < out[j].RuleID
	})
	return out
}

// match evaluates a condition on a record.
func (e *Evaluator) match(c *Cond, names map[string]string, rec Record) bool {
	switch {
	case len(c.All) > 0:
		for i := range c.All {
			if !e.match(&c.All[i], names, rec) {
				return false
			}
		}
		return true
	case len(c.Any) > 0:
		for i := range c.Any {
			if e.match(&c.Any[i], names, rec) {
				return true
			}
		}
		return false
	}
	v := strings.ToLower(text(lookup(rec.Fields, payloadPath(names, c.Field))))
	var ok bool
	switch {
	case c.Equals != nil:
		ok = v == strings.ToLower(*c.Equals)
	case len(c.In) > 0:
		ok = anyOf(c.In, func(s string) bool { return v == strings.ToLower(s) })
	case len(c.Contains) > 0:
		ok = anyOf(c.Contains, func(s string) bool { return strings.Contains(v, strings.ToLower(s)) })
	case len(c.StartsWith) > 0:
		ok = anyOf(c.StartsWith, func(s string) bool { return strings.HasPrefix(v, strings.ToLower(s)) })
	case c.Exists != nil:
		ok = (v != "") == *c.Exists
	case c.NotInLookup != "":
		ok = !e.lookups[c.NotInLookup][v]
	}
	return ok != c.Not
}

func anyOf(vs []string, f func(string) bool) bool {
	for _, v := range vs {
		if f(v) {
			return true
		}
	}
	return false
}

// lookup walks a field path (case-sensitive, as the payloads spell them).
func lookup(m map[string]any, path []string) any {
	var cur any = m
	for _, p := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[p]
	}
	return cur
}

// text is a value as the rules compare it: a string as it is, true or
// false, a number as written, other values as compact JSON, "" when
// absent or null — what KQL's tostring() gives.
func text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		if x {
			return "true"
		}
		return "false"
	case json.Number:
		return x.String()
	case float64:
		return fmt.Sprint(x)
	default:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(x)
		return strings.TrimSpace(buf.String())
	}
}

// FromRecord is a delivered record as the outputs write it (the standard
// fields, the payload's fields, the extra fields), for the in-process
// evaluation. ok is false when the line cannot be read back (never for
// a record the pipeline delivered).
func FromRecord(r record.Record) (Record, bool) {
	line, err := r.AppendJSON(nil)
	if err != nil {
		return Record{}, false
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return Record{}, false
	}
	return Record{Table: r.Table, Fields: m}, true
}

// TakeNew returns the findings that are new, or grew, since the last
// TakeNew: what to report after each run of a long-lived evaluator.
func (e *Evaluator) TakeNew() []Finding {
	if e.taken == nil {
		e.taken = map[string]int{}
	}
	var out []Finding
	for _, f := range e.Findings() {
		k := f.Key()
		n := f.Count*1_000_000 + f.Distinct
		if e.taken[k] == n {
			continue
		}
		e.taken[k] = n
		out = append(out, f)
	}
	return out
}

// Key identifies a finding across evaluations and runs: its rule, group
// and first matched record (a threshold group keeps its first record).
func (f Finding) Key() string {
	var b strings.Builder
	b.WriteString(f.RuleID)
	for _, k := range slices.Sorted(maps.Keys(f.Group)) {
		b.WriteString("\x00" + k + "=" + f.Group[k])
	}
	if len(f.RecordIDs) > 0 {
		b.WriteString("\x00" + f.RecordIDs[0])
	}
	return b.String()
}

// Prune forgets what is older than before: single findings and threshold
// groups whose last record is older, and the record ids kept for
// dropping duplicates — so a long-lived evaluator (serve) stays bounded.
// A record older than before that arrives later is evaluated again.
func (e *Evaluator) Prune(before time.Time) {
	keep := e.single[:0]
	for _, f := range e.single {
		if !f.LastSeen.Before(before) {
			keep = append(keep, f)
		} else {
			delete(e.taken, f.Key())
		}
	}
	e.single = keep
	order := e.order[:0]
	for _, k := range e.order {
		if g := e.groups[k]; g.finding.LastSeen.Before(before) {
			delete(e.taken, g.finding.Key())
			delete(e.groups, k)
			continue
		}
		order = append(order, k)
	}
	e.order = order
	for k, at := range e.seen {
		if at.Before(before) {
			delete(e.seen, k)
		}
	}
}
