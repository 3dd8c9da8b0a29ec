// Package detect is the detection pack's engine: rules described once in
// YAML (detections/<id>/rule.yaml), checked against the tables the
// harvester writes (internal/tables), evaluated natively over harvested
// records (the detect command) and turned into the three forms the pack
// ships — a KQL query for Microsoft Sentinel, an SPL search for Splunk and
// a Sigma rule — so the four never drift apart.
package detect

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/tables"
	"go.yaml.in/yaml/v3"
)

// Severities, as Sentinel names them.
var Severities = []string{"Informational", "Low", "Medium", "High"}

// Rule is one detection.
type Rule struct {
	ID          string   `yaml:"id"`          // DH-NNN, stable
	GUID        string   `yaml:"guid"`        // the Sentinel and Sigma rule id
	Title       string   `yaml:"title"`       // one line
	Description string   `yaml:"description"` // what it finds and why it matters
	Severity    string   `yaml:"severity"`
	Tactics     []string `yaml:"tactics"`    // ATT&CK tactics, Sentinel spelling (DefenseEvasion)
	Techniques  []string `yaml:"techniques"` // ATT&CK technique ids (T1562.001)
	// Table is the table the rule reads (internal/tables).
	Table string `yaml:"table"`
	// Where must hold for a record to match.
	Where Cond `yaml:"where"`
	// Threshold, when set, turns matches into one finding per group and
	// time bin that reaches it.
	Threshold *Threshold `yaml:"threshold"`
	// Actor is the column naming who acted (the finding's actor and the
	// Sentinel account entity).
	Actor string `yaml:"actor"`
	// Show are the columns a finding carries as evidence.
	Show []string `yaml:"show"`
	// Frequency is how often Sentinel and Splunk run it; the lookback is
	// the same (default 1h; a Threshold's Within when longer).
	Frequency      Duration `yaml:"frequency"`
	FalsePositives []string `yaml:"false_positives"`
	// Tuning says how to adapt it (the allow-lists it reads, fields to
	// narrow it).
	Tuning string `yaml:"tuning"`
	// Needs says which data sets and settings the rule depends on.
	Needs []string `yaml:"needs"`
	// Sigma false: the rule cannot be said in Sigma (say why in Tuning).
	SigmaForm *bool `yaml:"sigma"`

	dir string // where it was loaded from
}

// Threshold groups matches.
type Threshold struct {
	By     []string `yaml:"by"`     // group columns
	Within Duration `yaml:"within"` // time bin (aligned to the Unix epoch, as KQL bin() and Splunk bin do)
	// Distinct, when set, counts distinct values of this column; else
	// matching records are counted.
	Distinct string `yaml:"distinct"`
	AtLeast  int    `yaml:"at_least"`
}

// Cond is a condition tree: All (and), Any (or) or one leaf test of a
// column. Comparisons are case-insensitive on the value's text (booleans
// read true/false, numbers as written), as KQL's =~, Splunk and Sigma
// compare.
type Cond struct {
	All []Cond `yaml:"all"`
	Any []Cond `yaml:"any"`

	Field string `yaml:"field"` // column, or column.path into a dynamic column
	Not   bool   `yaml:"not"`   // negates the leaf test
	// One of:
	Equals      *string  `yaml:"equals"`
	In          []string `yaml:"in"`
	Contains    []string `yaml:"contains"`   // any of the substrings
	StartsWith  []string `yaml:"startswith"` // any of the prefixes
	Exists      *bool    `yaml:"exists"`
	NotInLookup string   `yaml:"not_in_lookup"` // the value is not on this allow-list (Sentinel watchlist, Splunk lookup, detect --lookups)
}

// Duration reads "30m", "1h", "1d".
type Duration time.Duration

// UnmarshalYAML reads a duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	s := strings.TrimSpace(n.Value)
	if strings.HasSuffix(s, "d") {
		var days int
		if _, err := fmt.Sscanf(s, "%dd", &days); err != nil || days <= 0 {
			return fmt.Errorf("line %d: %q is not a duration such as 30m, 1h or 1d", n.Line, s)
		}
		*d = Duration(time.Duration(days) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return fmt.Errorf("line %d: %q is not a duration such as 30m, 1h or 1d", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// D is the duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

var (
	idRe        = regexp.MustCompile(`^DH-\d{3}$`)
	guidRe      = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	techniqueRe = regexp.MustCompile(`^T\d{4}(\.\d{3})?$`)
	lookupRe    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{2,63}$`)
	tactics     = []string{"Reconnaissance", "ResourceDevelopment", "InitialAccess", "Execution", "Persistence", "PrivilegeEscalation",
		"DefenseEvasion", "CredentialAccess", "Discovery", "LateralMovement", "Collection", "CommandAndControl", "Exfiltration", "Impact"}
)

// Load reads every <dir>/rule.yaml of fsys (the pack), strictly, and
// checks each rule; errors name the file and what to fix.
func Load(fsys fs.FS) ([]*Rule, error) {
	files, err := fs.Glob(fsys, "*/rule.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var rules []*Rule
	var errs []error
	ids, guids := map[string]string{}, map[string]string{}
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r, err := Parse(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
			continue
		}
		r.dir = path.Dir(f)
		if r.dir != r.ID {
			errs = append(errs, fmt.Errorf("%s: the folder must be named after the rule id %s", f, r.ID))
		}
		if other, dup := ids[r.ID]; dup {
			errs = append(errs, fmt.Errorf("%s: id %s is also used by %s", f, r.ID, other))
		}
		if other, dup := guids[r.GUID]; dup {
			errs = append(errs, fmt.Errorf("%s: guid %s is also used by %s", f, r.GUID, other))
		}
		ids[r.ID], guids[r.GUID] = f, f
		rules = append(rules, r)
	}
	if len(files) == 0 {
		errs = append(errs, errors.New("no */rule.yaml found"))
	}
	return rules, errors.Join(errs...)
}

// Parse reads one rule strictly and checks it.
func Parse(b []byte) (*Rule, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var r Rule
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("reading the rule: %w", err)
	}
	if r.Frequency == 0 {
		r.Frequency = Duration(time.Hour)
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Select picks the rules with these ids (case-insensitive), in the order
// given; an unknown id is an error naming it.
func Select(rules []*Rule, ids []string) ([]*Rule, error) {
	var out []*Rule
	for _, id := range ids {
		i := slices.IndexFunc(rules, func(r *Rule) bool { return strings.EqualFold(r.ID, id) })
		if i < 0 {
			return nil, fmt.Errorf("unknown rule %q", id)
		}
		out = append(out, rules[i])
	}
	return out, nil
}

// Dir is the rule's folder in the pack.
func (r *Rule) Dir() string { return r.dir }

// Lookback is how far back one scheduled run reads: the frequency, or a
// threshold's bin when longer.
func (r *Rule) Lookback() time.Duration {
	lb := r.Frequency.D()
	if r.Threshold != nil && r.Threshold.Within.D() > lb {
		lb = r.Threshold.Within.D()
	}
	return lb
}

// SigmaExpressible says whether the rule has a Sigma form.
func (r *Rule) SigmaExpressible() bool { return r.SigmaForm == nil || *r.SigmaForm }

func (r *Rule) check() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !idRe.MatchString(r.ID) {
		add("id %q must be DH- and three digits", r.ID)
	}
	if !guidRe.MatchString(r.GUID) {
		add("guid %q must be a lower-case GUID (generate one; it never changes)", r.GUID)
	}
	if strings.TrimSpace(r.Title) == "" || strings.TrimSpace(r.Description) == "" {
		add("title and description are required")
	}
	if !slices.Contains(Severities, r.Severity) {
		add("severity %q must be one of %s", r.Severity, strings.Join(Severities, ", "))
	}
	if len(r.Tactics) == 0 {
		add("tactics: name at least one ATT&CK tactic")
	}
	for _, t := range r.Tactics {
		if !slices.Contains(tactics, t) {
			add("tactic %q must be one of %s", t, strings.Join(tactics, ", "))
		}
	}
	if len(r.Techniques) == 0 {
		add("techniques: name at least one ATT&CK technique")
	}
	for _, t := range r.Techniques {
		if !techniqueRe.MatchString(t) {
			add("technique %q must look like T1234 or T1234.001", t)
		}
	}
	if len(r.FalsePositives) == 0 || strings.TrimSpace(r.Tuning) == "" || len(r.Needs) == 0 {
		add("false_positives, tuning and needs are required: say when it fires wrongly, how to tune it and what it needs")
	}
	tb, ok := tables.Lookup(r.Table)
	if !ok {
		add("table %q is not a table the harvester writes (internal/tables)", r.Table)
		return errors.Join(errs...)
	}
	cols := map[string]tables.Column{}
	for _, c := range tb.Columns {
		cols[c.Name] = c
	}
	col := func(what, f string) {
		if err := checkField(cols, f); err != nil {
			add("%s: %v (table %s)", what, err, r.Table)
		}
	}
	if err := r.Where.check("where", col); err != nil {
		errs = append(errs, err)
	}
	if r.Actor != "" {
		col("actor", r.Actor)
	}
	if len(r.Show) == 0 {
		add("show: list the columns a finding shows")
	}
	for _, f := range r.Show {
		col("show", f)
	}
	if th := r.Threshold; th != nil {
		if th.Within <= 0 || th.AtLeast < 2 {
			add("threshold: within must be a duration and at_least 2 or more")
		}
		for _, f := range th.By {
			col("threshold.by", f)
		}
		if th.Distinct != "" {
			col("threshold.distinct", th.Distinct)
		}
	}
	return errors.Join(errs...)
}

// checkField accepts a column, or column.path into a dynamic column.
func checkField(cols map[string]tables.Column, f string) error {
	name, rest, nested := strings.Cut(f, ".")
	c, ok := cols[name]
	switch {
	case f == "":
		return errors.New("an empty field")
	case !ok:
		return fmt.Errorf("column %q does not exist", name)
	case nested && (c.Type != tables.Dynamic || rest == ""):
		return fmt.Errorf("%q: only dynamic columns have paths (%s is %s)", f, name, c.Type)
	}
	return nil
}

func (c *Cond) check(at string, col func(what, f string)) error {
	var errs []error
	kinds := 0
	if len(c.All) > 0 {
		kinds++
	}
	if len(c.Any) > 0 {
		kinds++
	}
	if c.Field != "" {
		kinds++
	}
	if kinds != 1 {
		return fmt.Errorf("%s: a condition is exactly one of all, any or a field test", at)
	}
	for i := range c.All {
		errs = append(errs, c.All[i].check(fmt.Sprintf("%s.all[%d]", at, i), col))
	}
	for i := range c.Any {
		errs = append(errs, c.Any[i].check(fmt.Sprintf("%s.any[%d]", at, i), col))
	}
	if c.Field == "" {
		return errors.Join(errs...)
	}
	col(at, c.Field)
	tests := 0
	for _, set := range []bool{c.Equals != nil, len(c.In) > 0, len(c.Contains) > 0, len(c.StartsWith) > 0, c.Exists != nil, c.NotInLookup != ""} {
		if set {
			tests++
		}
	}
	if tests != 1 {
		errs = append(errs, fmt.Errorf("%s: field %s needs exactly one of equals, in, contains, startswith, exists, not_in_lookup", at, c.Field))
	}
	if c.NotInLookup != "" && (!lookupRe.MatchString(c.NotInLookup) || c.Not) {
		errs = append(errs, fmt.Errorf("%s: not_in_lookup %q must be a name of letters, digits and _ (and not negated)", at, c.NotInLookup))
	}
	for _, v := range append(append(append([]string{}, c.In...), c.Contains...), c.StartsWith...) {
		if v == "" || strings.ContainsAny(v, "\"\\\n*") {
			errs = append(errs, fmt.Errorf("%s: value %q is empty or holds a quote, backslash, newline or * (a Splunk wildcard)", at, v))
		}
	}
	if c.Equals != nil && strings.ContainsAny(*c.Equals, "\"\\\n*") {
		errs = append(errs, fmt.Errorf("%s: value %q holds a quote, backslash, newline or * (a Splunk wildcard)", at, *c.Equals))
	}
	return errors.Join(errs...)
}

// each calls fn on every leaf of c.
func (c *Cond) each(fn func(leaf *Cond)) {
	for i := range c.All {
		c.All[i].each(fn)
	}
	for i := range c.Any {
		c.Any[i].each(fn)
	}
	if c.Field != "" {
		fn(c)
	}
}

// Lookups lists the allow-lists the rule reads.
func (r *Rule) Lookups() []string {
	var out []string
	r.Where.each(func(c *Cond) {
		if c.NotInLookup != "" && !slices.Contains(out, c.NotInLookup) {
			out = append(out, c.NotInLookup)
		}
	})
	sort.Strings(out)
	return out
}

// Columns lists every column the rule refers to (for the pack's check
// against the tables and its documentation).
func (r *Rule) Columns() []string {
	set := map[string]bool{}
	addF := func(f string) {
		if f != "" {
			name, _, _ := strings.Cut(f, ".")
			set[name] = true
		}
	}
	r.Where.each(func(c *Cond) { addF(c.Field) })
	addF(r.Actor)
	for _, f := range r.Show {
		addF(f)
	}
	if th := r.Threshold; th != nil {
		for _, f := range th.By {
			addF(f)
		}
		addF(th.Distinct)
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
