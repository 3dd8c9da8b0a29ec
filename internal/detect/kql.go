package detect

import (
	"fmt"
	"strings"

	"github.com/defenderharvester/defenderharvester/internal/tables"
)

// KQL is the rule as a Microsoft Sentinel query over the table the
// harvester's Sentinel output writes (<Table>_CL, columns as in
// internal/tables). Values are compared as text, case-insensitively;
// allow-lists are Sentinel watchlists (SearchKey).
func (r *Rule) KQL() string {
	types := columnTypes(r.Table)
	var b strings.Builder
	fmt.Fprintf(&b, "// %s — %s\n", r.ID, r.Title)
	for _, l := range r.Lookups() {
		fmt.Fprintf(&b, "let %s = _GetWatchlist(%s) | project SearchKey;\n", l, kqlString(l))
	}
	fmt.Fprintf(&b, "%s_CL\n", r.Table)
	fmt.Fprintf(&b, "| where TimeGenerated > ago(%s)\n", kqlSpan(r.Lookback()))
	fmt.Fprintf(&b, "| where %s\n", kqlCond(&r.Where, types, true))
	if th := r.Threshold; th != nil {
		var by []string
		for _, f := range th.By {
			by = append(by, fmt.Sprintf("%s = %s", kqlName(f), kqlText(f, types)))
		}
		by = append(by, fmt.Sprintf("bin(TimeGenerated, %s)", kqlSpan(th.Within.D())))
		aggs := []string{"Count = count()", "FirstSeen = min(TimeGenerated)", "LastSeen = max(TimeGenerated)"}
		if th.Distinct != "" {
			aggs = append(aggs, fmt.Sprintf("Distinct = dcount(%s)", kqlText(th.Distinct, types)))
		}
		for _, f := range r.Show {
			aggs = append(aggs, fmt.Sprintf("%s = make_set(%s, 20)", kqlName(f)+"s", kqlText(f, types)))
		}
		fmt.Fprintf(&b, "| summarize %s by %s\n", strings.Join(aggs, ", "), strings.Join(by, ", "))
		n := "Count"
		if th.Distinct != "" {
			n = "Distinct"
		}
		fmt.Fprintf(&b, "| where %s >= %d\n", n, th.AtLeast)
		return b.String()
	}
	cols := []string{"TimeGenerated"}
	seen := map[string]bool{"TimeGenerated": true}
	for _, f := range append(append([]string{}, r.Show...), r.Actor) {
		if f == "" || seen[f] {
			continue
		}
		seen[f] = true
		if strings.Contains(f, ".") {
			cols = append(cols, fmt.Sprintf("%s = %s", kqlName(f), kqlText(f, types)))
		} else {
			cols = append(cols, f)
		}
	}
	cols = append(cols, "RecordId")
	fmt.Fprintf(&b, "| project %s\n", strings.Join(cols, ", "))
	return b.String()
}

func columnTypes(table string) map[string]string {
	tb, _ := tables.Lookup(table)
	out := map[string]string{}
	for _, c := range tb.Columns {
		out[c.Name] = c.Type
	}
	return out
}

// kqlText is a field as text: string columns as they are, others (and
// paths into dynamic columns) through tostring().
func kqlText(f string, types map[string]string) string {
	col, rest, nested := strings.Cut(f, ".")
	if !nested {
		if types[col] == tables.String {
			return col
		}
		return "tostring(" + col + ")"
	}
	var b strings.Builder
	b.WriteString("tostring(" + col)
	for _, seg := range strings.Split(rest, ".") {
		fmt.Fprintf(&b, "[%s]", kqlString(seg))
	}
	b.WriteString(")")
	return b.String()
}

// kqlName is a column name for a field path (dots to underscores).
func kqlName(f string) string { return strings.ReplaceAll(f, ".", "_") }

func kqlString(s string) string { return `"` + s + `"` } // values are checked: no quote, backslash or newline

func kqlList(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = kqlString(v)
	}
	return "(" + strings.Join(q, ", ") + ")"
}

func kqlSpan(d interface{ Hours() float64 }) string {
	h := d.Hours()
	if h >= 24 && h == float64(int(h/24))*24 {
		return fmt.Sprintf("%dd", int(h/24))
	}
	if h >= 1 && h == float64(int(h)) {
		return fmt.Sprintf("%dh", int(h))
	}
	return fmt.Sprintf("%dm", int(h*60))
}

func kqlCond(c *Cond, types map[string]string, top bool) string {
	join := func(cs []Cond, op string) string {
		parts := make([]string, len(cs))
		for i := range cs {
			parts[i] = kqlCond(&cs[i], types, false)
		}
		s := strings.Join(parts, " "+op+" ")
		if top || len(parts) == 1 {
			return s
		}
		return "(" + s + ")"
	}
	switch {
	case len(c.All) > 0:
		return join(c.All, "and")
	case len(c.Any) > 0:
		return join(c.Any, "or")
	}
	f := kqlText(c.Field, types)
	var s string
	switch {
	case c.Equals != nil:
		s = f + " =~ " + kqlString(*c.Equals)
	case len(c.In) > 0:
		s = f + " in~ " + kqlList(c.In)
	case len(c.Contains) > 0:
		parts := make([]string, len(c.Contains))
		for i, v := range c.Contains {
			parts[i] = f + " contains " + kqlString(v)
		}
		s = "(" + strings.Join(parts, " or ") + ")"
	case len(c.StartsWith) > 0:
		parts := make([]string, len(c.StartsWith))
		for i, v := range c.StartsWith {
			parts[i] = f + " startswith " + kqlString(v)
		}
		s = "(" + strings.Join(parts, " or ") + ")"
	case c.Exists != nil:
		s = "isnotempty(" + f + ")"
		if !*c.Exists {
			s = "isempty(" + f + ")"
		}
	case c.NotInLookup != "":
		return fmt.Sprintf("%s !in~ (%s)", f, c.NotInLookup)
	}
	if c.Not {
		return "not(" + s + ")"
	}
	return s
}
