package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/source"
)

// FieldChange is one changed value of a modified snapshot item: its path
// (dotted for nested objects, [i] for array positions, [Name=x] for
// elements of an array of objects that name themselves), and the value
// before and after, as compact JSON; nil when absent on that side.
type FieldChange struct {
	Path   string          `json:"Path"`
	Before json.RawMessage `json:"Before,omitempty"`
	After  json.RawMessage `json:"After,omitempty"`
}

// Diff limits: deeper values, and changes beyond the count, are reported
// whole at the level reached, so a change record stays small whatever
// the item.
const (
	maxDiffDepth   = 8
	maxDiffChanges = 200
)

// identityKeys name the field an array element is known by: an array of
// objects that each carry one of them, with distinct scalar values, is
// compared element by element by that value (a column added to a table,
// a category removed from an export), not by position.
var identityKeys = []string{"Name", "name", "Id", "id", "category", "Category", "Key", "key"}

// DiffFields lists what changed between two versions of an item, in path
// order. Values are compared as compact JSON. When either side is not
// valid JSON the whole value changed (path "Value").
func DiffFields(old, cur json.RawMessage) []FieldChange {
	a, errA := decodeAny(old)
	b, errB := decodeAny(cur)
	if errA != nil || errB != nil {
		return []FieldChange{{Path: "Value", Before: compactRaw(old), After: compactRaw(cur)}}
	}
	d := &differ{maxDepth: maxDiffDepth}
	d.diff("", a, b, 0)
	if len(d.out) > maxDiffChanges {
		// Too many to list: the top-level fields that changed, whole.
		return topLevelChanges(a, b)
	}
	return d.out
}

// differ collects changes, reporting values whole from depth maxDepth on.
type differ struct {
	out      []FieldChange
	maxDepth int
}

func (d *differ) add(path string, a, b any, hasA, hasB bool) {
	if path == "" {
		path = "Value"
	}
	fc := FieldChange{Path: path}
	if hasA {
		fc.Before = marshal(a)
	}
	if hasB {
		fc.After = marshal(b)
	}
	d.out = append(d.out, fc)
}

func (d *differ) diff(path string, a, b any, depth int) {
	if equalJSON(a, b) {
		return
	}
	if depth >= d.maxDepth {
		d.add(path, a, b, true, true)
		return
	}
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			break
		}
		keys := make([]string, 0, len(av)+len(bv))
		for k := range av {
			keys = append(keys, k)
		}
		for k := range bv {
			if _, dup := av[k]; !dup {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			x, inA := av[k]
			y, inB := bv[k]
			p := join(path, k)
			switch {
			case inA && inB:
				d.diff(p, x, y, depth+1)
			default:
				d.add(p, x, y, inA, inB)
			}
		}
		return
	case []any:
		bv, ok := b.([]any)
		if !ok {
			break
		}
		if key, ok := commonIdentity(av, bv); ok {
			d.diffKeyed(path, key, av, bv, depth)
			return
		}
		if len(av) == len(bv) {
			for i := range av {
				d.diff(fmt.Sprintf("%s[%d]", path, i), av[i], bv[i], depth+1)
			}
			return
		}
	}
	d.add(path, a, b, true, true)
}

// diffKeyed compares arrays of objects by their identity field: removed
// elements, changed ones (recursively) and added ones, in order of the
// identity value.
func (d *differ) diffKeyed(path, key string, a, b []any, depth int) {
	index := func(xs []any) map[string]any {
		m := make(map[string]any, len(xs))
		for _, x := range xs {
			m[identity(x.(map[string]any)[key])] = x
		}
		return m
	}
	ma, mb := index(a), index(b)
	ids := make([]string, 0, len(ma)+len(mb))
	for id := range ma {
		ids = append(ids, id)
	}
	for id := range mb {
		if _, dup := ma[id]; !dup {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		x, inA := ma[id]
		y, inB := mb[id]
		p := fmt.Sprintf("%s[%s=%s]", path, key, id)
		if inA && inB {
			d.diff(p, x, y, depth+1)
		} else {
			d.add(p, x, y, inA, inB)
		}
	}
}

// commonIdentity finds an identity key every element of both arrays
// carries with a distinct scalar value.
func commonIdentity(a, b []any) (string, bool) {
	if len(a) == 0 && len(b) == 0 {
		return "", false
	}
	for _, key := range identityKeys {
		if distinctBy(a, key) && distinctBy(b, key) {
			return key, true
		}
	}
	return "", false
}

func distinctBy(xs []any, key string) bool {
	seen := make(map[string]bool, len(xs))
	for _, x := range xs {
		obj, ok := x.(map[string]any)
		if !ok {
			return false
		}
		v, ok := obj[key]
		if !ok {
			return false
		}
		switch v.(type) {
		case string, json.Number, bool:
		default:
			return false
		}
		id := identity(v)
		if seen[id] {
			return false
		}
		seen[id] = true
	}
	return true
}

func identity(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return string(marshal(v))
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// topLevelChanges is the fallback of DiffFields for items with too many
// changes: one entry per changed top-level field, whole.
func topLevelChanges(a, b any) []FieldChange {
	_, okA := a.(map[string]any)
	_, okB := b.(map[string]any)
	if !okA || !okB {
		return []FieldChange{{Path: "Value", Before: marshal(a), After: marshal(b)}}
	}
	d := &differ{maxDepth: 1}
	d.diff("", a, b, 0)
	return d.out
}

func equalJSON(a, b any) bool { return bytes.Equal(marshal(a), marshal(b)) }

// decodeAny decodes keeping numbers as written (json.Number), so a 64-bit
// id or a long count reads back exactly in Before and After.
func decodeAny(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after the JSON value")
	}
	return v, nil
}

// marshal encodes a decoded JSON value compactly (map keys sorted); it
// cannot fail on what json.Unmarshal produced.
func marshal(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

func compactRaw(raw json.RawMessage) json.RawMessage {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return quote(string(raw))
	}
	return buf.Bytes()
}

// ValueText is how Before and After read in the combined changes table:
// a string as it is, anything else as compact JSON, "" when absent.
func ValueText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// attribution says who changed an item and when, from the fields the
// source names (source.Attributed). An added item is attributed to its
// creation fields, else its edit fields; a modified one to its edit
// fields, and only when the edit time moved — otherwise they describe an
// earlier edit, not this change. A removed item has no attribution:
// nothing records who removed it.
func attribution(a source.Attribution, kind string, old, cur json.RawMessage) (by string, at time.Time, ok bool) {
	cf, okCur := topLevel(cur)
	if !okCur {
		return "", time.Time{}, false
	}
	first := func(f map[string]string, keys []string) (string, string) {
		for _, k := range keys {
			if v := unquote(f[k]); v != "" && v != "null" {
				return k, v
			}
		}
		return "", ""
	}
	var byKeys, atKeys []string
	switch kind {
	case Added:
		byKeys, atKeys = append(a.CreatedBy, a.EditedBy...), append(a.CreatedAt, a.EditedAt...)
	case Modified:
		of, okOld := topLevel(old)
		key, now := first(cf, a.EditedAt)
		if !okOld || key == "" || unquote(of[key]) == now {
			return "", time.Time{}, false
		}
		byKeys, atKeys = a.EditedBy, a.EditedAt
	default:
		return "", time.Time{}, false
	}
	_, by = first(cf, byKeys)
	if _, t := first(cf, atKeys); t != "" {
		at, _ = parseChangeTime(t)
	}
	return by, at, by != "" || !at.IsZero()
}

// unquote reads a compacted JSON string value; other values as they are.
func unquote(v string) string {
	var s string
	if strings.HasPrefix(v, `"`) && json.Unmarshal([]byte(v), &s) == nil {
		return s
	}
	return v
}

// parseChangeTime reads the time formats the services use for edit times
// (RFC 3339, or without a zone = UTC).
func parseChangeTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// ConfigurationChangesTable holds every snapshot data set's changes, one
// row per changed field (per item when added or removed), so one rule can
// watch every configuration change.
const ConfigurationChangesTable = "MdeConfigurationChanges"

// changeOf is one change of one snapshot item, as both tables show it.
type changeOf struct {
	dataSet, key, kind string
	at, prevAt         time.Time
	hadPrev            bool
	fields             []FieldChange
	changed            []string
	by                 string
	byAt               time.Time
	attributed         bool
}

// extra is what the data set's change record carries besides the
// payload: the change type and key, the interval in which the change
// happened (previous snapshot → this one), each changed field's before
// and after, and who made it and when, where the item says.
func (c changeOf) extra() []record.Field {
	out := []record.Field{{Key: "ChangeType", Value: quote(c.kind)}}
	if c.kind == Modified {
		cf, _ := json.Marshal(c.changed) // []string cannot fail
		ch, _ := json.Marshal(c.fields)  // FieldChange cannot fail
		out = append(out, record.Field{Key: "ChangedFields", Value: cf}, record.Field{Key: "Changes", Value: ch})
	}
	out = append(out, record.Field{Key: "SnapshotKey", Value: quote(c.key)})
	if c.hadPrev {
		out = append(out, record.Field{Key: "PreviousSnapshotTime", Value: quote(c.prevAt.UTC().Format(time.RFC3339Nano))})
	}
	out = append(out, record.Field{Key: "SnapshotTime", Value: quote(c.at.UTC().Format(time.RFC3339Nano))})
	if c.by != "" {
		out = append(out, record.Field{Key: "ChangedBy", Value: quote(c.by)})
	}
	if !c.byAt.IsZero() {
		out = append(out, record.Field{Key: "ChangedAt", Value: quote(c.byAt.UTC().Format(time.RFC3339Nano))})
	}
	return out
}

// combinedRow is one row of MdeConfigurationChanges.
type combinedRow struct {
	DataSet              string          `json:"DataSet"`
	SnapshotKey          string          `json:"SnapshotKey"`
	ChangeType           string          `json:"ChangeType"`
	FieldPath            string          `json:"FieldPath"`
	Before               string          `json:"Before"`
	After                string          `json:"After"`
	PreviousSnapshotTime string          `json:"PreviousSnapshotTime,omitempty"`
	SnapshotTime         string          `json:"SnapshotTime"`
	ChangedBy            string          `json:"ChangedBy,omitempty"`
	ChangedAt            string          `json:"ChangedAt,omitempty"`
	ChangeRecordId       string          `json:"ChangeRecordId"`
	Item                 json.RawMessage `json:"Item"`
}

// rows are the change's rows of MdeConfigurationChanges: one per changed
// field of a modified item, one for an added or removed item. changeID
// is the data set's change record id (join back to the full record).
func (c changeOf) rows(tenant, src, changeID string, item json.RawMessage) []record.Record {
	base := combinedRow{DataSet: c.dataSet, SnapshotKey: c.key, ChangeType: c.kind,
		SnapshotTime: c.at.UTC().Format(time.RFC3339Nano), ChangedBy: c.by, ChangeRecordId: changeID, Item: compactRaw(item)}
	if c.hadPrev {
		base.PreviousSnapshotTime = c.prevAt.UTC().Format(time.RFC3339Nano)
	}
	if !c.byAt.IsZero() {
		base.ChangedAt = c.byAt.UTC().Format(time.RFC3339Nano)
	}
	fields := c.fields
	if c.kind != Modified {
		fields = []FieldChange{{}}
	}
	out := make([]record.Record, 0, len(fields))
	for _, f := range fields {
		row := base
		row.FieldPath, row.Before, row.After = f.Path, ValueText(f.Before), ValueText(f.After)
		raw, _ := json.Marshal(row) // strings and valid JSON cannot fail
		out = append(out, record.Record{
			Tenant: tenant, Source: src, Table: ConfigurationChangesTable,
			ID:   record.StableID("configchanges", changeID, f.Path),
			Time: c.at, HarvestedAt: c.at, Raw: raw, RawValid: true,
		})
	}
	return out
}
