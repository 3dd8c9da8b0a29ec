package detect

import (
	"fmt"
	"sort"
	"strings"
)

// Sigma is the rule in the Sigma format (logsource product
// defenderharvester, service = table; fields as the payload names them),
// "" when the rule cannot be said in Sigma. A threshold becomes a Sigma
// correlation rule (value_count or event_count) following the base rule
// in the same file. Sigma has no allow-lists: a not_in_lookup test is
// left out and named in the description, to be added as a filter.
func (r *Rule) Sigma() string {
	if !r.SigmaExpressible() {
		return ""
	}
	names := fieldNames(r.Table)
	g := &sigmaGen{names: names, sel: map[string][]string{}}
	cond := g.cond(&r.Where)
	var b strings.Builder
	fmt.Fprintf(&b, "title: %s\n", yamlString(r.Title))
	fmt.Fprintf(&b, "id: %s\n", r.GUID)
	name := strings.ToLower(r.ID)
	if r.Threshold != nil {
		fmt.Fprintf(&b, "name: %s\n", name)
	}
	b.WriteString("status: experimental\n")
	desc := r.Description
	if len(g.lookups) > 0 {
		desc += " Not in this Sigma form: the allow-list test (" + strings.Join(g.lookups, "; ") + "); add it as a filter for your operators."
	}
	fmt.Fprintf(&b, "description: %s\n", yamlString(desc))
	b.WriteString("references:\n    - https://github.com/defenderharvester/defenderharvester/tree/main/detections/" + r.ID + "\n")
	b.WriteString("author: defenderharvester\ndate: 2026-11-30\n")
	b.WriteString("tags:\n")
	for _, t := range r.Tactics {
		fmt.Fprintf(&b, "    - attack.%s\n", sigmaTactic(t))
	}
	for _, t := range r.Techniques {
		fmt.Fprintf(&b, "    - attack.%s\n", strings.ToLower(t))
	}
	fmt.Fprintf(&b, "logsource:\n    product: defenderharvester\n    service: %s\n", r.Table)
	b.WriteString("detection:\n")
	keys := make([]string, 0, len(g.sel))
	for k := range g.sel {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "    %s:\n", k)
		for _, line := range g.sel[k] {
			fmt.Fprintf(&b, "        %s\n", line)
		}
	}
	fmt.Fprintf(&b, "    condition: %s\n", cond)
	b.WriteString("fields:\n")
	for _, f := range r.Show {
		fmt.Fprintf(&b, "    - %s\n", strings.Join(payloadPath(names, f), "."))
	}
	b.WriteString("falsepositives:\n")
	for _, fp := range r.FalsePositives {
		fmt.Fprintf(&b, "    - %s\n", yamlString(fp))
	}
	fmt.Fprintf(&b, "level: %s\n", sigmaLevel(r.Severity))
	if th := r.Threshold; th != nil {
		b.WriteString("---\n")
		fmt.Fprintf(&b, "title: %s\n", yamlString(r.Title+" (threshold)"))
		fmt.Fprintf(&b, "id: %s\n", correlationID(r.GUID))
		b.WriteString("status: experimental\ncorrelation:\n")
		if th.Distinct != "" {
			b.WriteString("    type: value_count\n")
		} else {
			b.WriteString("    type: event_count\n")
		}
		fmt.Fprintf(&b, "    rules:\n        - %s\n", name)
		if len(th.By) > 0 {
			b.WriteString("    group-by:\n")
			for _, f := range th.By {
				fmt.Fprintf(&b, "        - %s\n", strings.Join(payloadPath(names, f), "."))
			}
		}
		fmt.Fprintf(&b, "    timespan: %s\n", kqlSpan(th.Within.D()))
		b.WriteString("    condition:\n")
		if th.Distinct != "" {
			fmt.Fprintf(&b, "        field: %s\n", strings.Join(payloadPath(names, th.Distinct), "."))
		}
		fmt.Fprintf(&b, "        gte: %d\n", th.AtLeast)
		fmt.Fprintf(&b, "level: %s\n", sigmaLevel(r.Severity))
	}
	return b.String()
}

// correlationID derives the correlation rule's id from the base rule's
// (its last group's hex digits flipped), stable across generations.
func correlationID(guid string) string { return guid[:24] + flipHex(guid[24:]) }

func flipHex(s string) string {
	const hex = "0123456789abcdef"
	out := []byte(s)
	for i, c := range out {
		out[i] = hex[15-strings.IndexByte(hex, c)]
	}
	return string(out)
}

type sigmaGen struct {
	names   map[string]string
	sel     map[string][]string
	n       int
	lookups []string
}

// cond returns the condition expression, adding a selection per leaf.
func (g *sigmaGen) cond(c *Cond) string {
	join := func(cs []Cond, op string) string {
		var parts []string
		for i := range cs {
			if p := g.cond(&cs[i]); p != "" {
				parts = append(parts, p)
			}
		}
		if len(parts) == 1 {
			return parts[0]
		}
		return "(" + strings.Join(parts, " "+op+" ") + ")"
	}
	switch {
	case len(c.All) > 0:
		return join(c.All, "and")
	case len(c.Any) > 0:
		return join(c.Any, "or")
	case c.NotInLookup != "":
		g.lookups = append(g.lookups, c.Field+" not on the allow-list "+c.NotInLookup)
		return ""
	}
	g.n++
	name := fmt.Sprintf("selection_%d", g.n)
	f := strings.Join(payloadPath(g.names, c.Field), ".")
	var lines []string
	switch {
	case c.Equals != nil:
		lines = []string{fmt.Sprintf("%s: %s", f, yamlString(*c.Equals))}
	case len(c.In) > 0:
		lines = append([]string{f + ":"}, listLines(c.In)...)
	case len(c.Contains) > 0:
		lines = append([]string{f + "|contains:"}, listLines(c.Contains)...)
	case len(c.StartsWith) > 0:
		lines = append([]string{f + "|startswith:"}, listLines(c.StartsWith)...)
	case c.Exists != nil:
		lines = []string{fmt.Sprintf("%s|exists: %v", f, *c.Exists)}
	}
	g.sel[name] = lines
	if c.Not {
		return "not " + name
	}
	return name
}

func listLines(vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = "    - " + yamlString(v)
	}
	return out
}

// yamlString quotes a scalar for YAML (single quotes, doubled inside).
func yamlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func sigmaLevel(sev string) string {
	if sev == "Informational" {
		return "informational"
	}
	return strings.ToLower(sev)
}

// sigmaTactic is a tactic as Sigma tags it (defense-evasion).
func sigmaTactic(t string) string {
	var b strings.Builder
	for i, c := range t {
		if c >= 'A' && c <= 'Z' {
			if i > 0 {
				b.WriteByte('-')
			}
			c += 'a' - 'A'
		}
		b.WriteRune(c)
	}
	return b.String()
}
