package detect

import (
	"fmt"
	"strings"
)

// SplunkIndexMacro is the macro every search starts with: the app defines
// it as index=defender; change it there to your index.
const SplunkIndexMacro = "defenderharvester_index"

// SPL is the rule as a Splunk search over the events the harvester's
// Splunk output sends (sourcetype = table, fields as the payload names
// them; nested JSON fields with dots, KV_MODE=json). Splunk compares
// field values case-insensitively; allow-lists are lookups
// (<name>.csv with a SearchKey column).
func (r *Rule) SPL() string {
	names := fieldNames(r.Table)
	var b strings.Builder
	fmt.Fprintf(&b, "`%s` sourcetype=%s %s", SplunkIndexMacro, splQuote(r.Table), splCond(&r.Where, names, true))
	if th := r.Threshold; th != nil {
		aggs := []string{"count AS Count", "min(_time) AS FirstSeen", "max(_time) AS LastSeen"}
		if th.Distinct != "" {
			aggs = append(aggs, fmt.Sprintf("dc(%s) AS Distinct", splField(th.Distinct, names)))
		}
		for _, f := range r.Show {
			aggs = append(aggs, fmt.Sprintf("values(%s) AS %s", splField(f, names), kqlName(f)+"s"))
		}
		by := []string{"_time"}
		for _, f := range th.By {
			by = append(by, splField(f, names))
		}
		n := "Count"
		if th.Distinct != "" {
			n = "Distinct"
		}
		fmt.Fprintf(&b, "\n| bin _time span=%s\n| stats %s by %s\n| where %s>=%d", kqlSpan(th.Within.D()),
			strings.Join(aggs, " "), strings.Join(by, " "), n, th.AtLeast)
		return b.String()
	}
	cols := []string{"_time"}
	seen := map[string]bool{}
	for _, f := range append(append([]string{}, r.Show...), r.Actor) {
		if f != "" && !seen[f] {
			seen[f] = true
			cols = append(cols, splField(f, names))
		}
	}
	cols = append(cols, "RecordId")
	fmt.Fprintf(&b, "\n| table %s", strings.Join(cols, " "))
	return b.String()
}

// splField is the event field of a rule field; a nested JSON field is
// named with dots, as Splunk's JSON extraction names it (search terms,
// stats and table take such names as they are).
func splField(f string, names map[string]string) string {
	return strings.Join(payloadPath(names, f), ".")
}

func splQuote(s string) string { return `"` + s + `"` }

func splCond(c *Cond, names map[string]string, top bool) string {
	join := func(cs []Cond, op string) string {
		parts := make([]string, len(cs))
		for i := range cs {
			parts[i] = splCond(&cs[i], names, false)
		}
		s := strings.Join(parts, " "+op+" ")
		if top && op == "AND" || len(parts) == 1 {
			return s
		}
		return "(" + s + ")"
	}
	switch {
	case len(c.All) > 0:
		return join(c.All, "AND")
	case len(c.Any) > 0:
		return join(c.Any, "OR")
	}
	f := splField(c.Field, names)
	var s string
	switch {
	case c.Equals != nil:
		s = f + "=" + splQuote(*c.Equals)
		if *c.Equals == "" {
			s = "NOT " + f + "=*"
		}
	case len(c.In) > 0:
		q := make([]string, len(c.In))
		for i, v := range c.In {
			q[i] = splQuote(v)
		}
		s = f + " IN (" + strings.Join(q, ", ") + ")"
	case len(c.Contains) > 0:
		parts := make([]string, len(c.Contains))
		for i, v := range c.Contains {
			parts[i] = f + "=" + splQuote("*"+v+"*")
		}
		s = "(" + strings.Join(parts, " OR ") + ")"
	case len(c.StartsWith) > 0:
		parts := make([]string, len(c.StartsWith))
		for i, v := range c.StartsWith {
			parts[i] = f + "=" + splQuote(v+"*")
		}
		s = "(" + strings.Join(parts, " OR ") + ")"
	case c.Exists != nil:
		s = f + "=*"
		if !*c.Exists {
			s = "NOT " + f + "=*"
		}
	case c.NotInLookup != "":
		return fmt.Sprintf("NOT [| inputlookup %s.csv | rename SearchKey AS %s | fields %s]", c.NotInLookup, f, f)
	}
	if c.Not {
		return "NOT (" + s + ")"
	}
	return s
}
