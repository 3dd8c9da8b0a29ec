// Package srcutil holds what the source packages share: the tolerant list
// reader (ReadList: every envelope the services use, totals, shape errors
// that name keys and JSON types but never values — DescribeShape), the
// Pager for pageIndex/pageSize lists (clamp detection, total checks),
// field extraction for ids, keys and times from candidate lists, snapshot
// key checks, window chunking, config checks, and the skeletons of one-GET
// snapshot sources and event record decoding. Items keep their raw JSON.
// Items/ItemsOf/Envelope are the older strict readers, still used by the
// timeline and machineactions sources.
package srcutil

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/source"
)

// Meta implements the Name/Table/Kind part of source.Source.
type Meta struct {
	name, table string
	kind        source.Kind
}

// NewMeta describes a source.
func NewMeta(name, table string, kind source.Kind) Meta { return Meta{name, table, kind} }

func (m Meta) Name() string      { return m.name }
func (m Meta) Table() string     { return m.table }
func (m Meta) Kind() source.Kind { return m.kind }

// Envelope says where a page's records are: a bare JSON array (Bare) and/or
// an array under one of Keys of a JSON object.
type Envelope struct {
	Bare bool
	Keys []string
}

// Items returns the records of one page. Anything else — HTML, a scalar,
// an object without the array, a non-array under the key, or a record that
// is not a JSON object — is an error naming the source and the field.
func Items(src string, body []byte, env Envelope) ([]json.RawMessage, error) {
	b := bytes.TrimSpace(body)
	if len(b) == 0 {
		return nil, shapef("%s: empty response body", src)
	}
	var arr []json.RawMessage
	switch b[0] {
	case '[':
		if !env.Bare {
			return nil, shapef("%s: expected an object with %s, got a JSON array", src, keyList(env.Keys))
		}
		var err error
		if arr, err = scanElems(b); err != nil {
			// encoding/json names the fault for the user.
			if err := json.Unmarshal(b, &arr); err != nil {
				return nil, shapef("%s: response is not a valid JSON array: %w", src, err)
			}
		}
	case '{':
		obj, err := object(src, b)
		if err != nil {
			return nil, err
		}
		return ItemsOf(src, obj, env)
	default:
		return nil, shapef("%s: response is not a JSON array or object (starts with %q)", src, string(b[:1]))
	}
	if err := checkRecords(src, arr); err != nil {
		return nil, err
	}
	return arr, nil
}

// ItemsOf is Items for a page object already decoded with Object, so a
// caller that also reads other members (links, counts) scans it once.
func ItemsOf(src string, obj map[string]json.RawMessage, env Envelope) ([]json.RawMessage, error) {
	var arr []json.RawMessage
	var found string
	for _, k := range env.Keys {
		if v, ok := obj[k]; ok {
			found = k
			if err := arrayField(src, k, v, &arr); err != nil {
				return nil, err
			}
			break
		}
	}
	if found == "" {
		if len(env.Keys) == 0 {
			return nil, shapef("%s: expected a JSON array, got an object", src)
		}
		return nil, shapef("%s: response has no %s field: the API's shape changed or this is not the expected endpoint", src, keyList(env.Keys))
	}
	if err := checkRecords(src, arr); err != nil {
		return nil, err
	}
	return arr, nil
}

// checkRecords insists every record is a JSON object.
func checkRecords(src string, arr []json.RawMessage) error {
	for i, it := range arr {
		if t := bytes.TrimSpace(it); len(t) == 0 || t[0] != '{' {
			return shapef("%s: record %d is not a JSON object", src, i)
		}
	}
	return nil
}

func arrayField(src, key string, v json.RawMessage, arr *[]json.RawMessage) error {
	t := bytes.TrimSpace(v)
	if len(t) == 0 || t[0] != '[' {
		return shapef("%s: field %s is not an array", src, key)
	}
	// v is a member of an object the scanner has checked, so this cannot
	// fail short of a scanner bug; encoding/json then has the last word.
	a, err := scanElems(t)
	if err != nil {
		if err := json.Unmarshal(t, arr); err != nil {
			return shapef("%s: field %s: %w", src, key, err)
		}
		return nil
	}
	*arr = a
	return nil
}

func keyList(keys []string) string {
	if len(keys) == 0 {
		return "records"
	}
	return strings.Join(keys, " or ")
}

// Object decodes a JSON object page.
func Object(src string, body []byte) (map[string]json.RawMessage, error) {
	b := bytes.TrimSpace(body)
	if len(b) == 0 || b[0] != '{' {
		return nil, shapef("%s: expected a JSON object", src)
	}
	return object(src, b)
}

// object decodes the object in b as json.Unmarshal into
// map[string]json.RawMessage would, but in one pass with values that
// sub-slice b (see scan.go). Only on malformed input does encoding/json run,
// to give its usual error text.
func object(src string, b []byte) (map[string]json.RawMessage, error) {
	if obj, err := scanMap(b); err == nil {
		return obj, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil, shapef("%s: response is not a valid JSON object: %w", src, err)
	}
	if obj == nil {
		return nil, shapef("%s: expected a JSON object, got null", src)
	}
	return obj, nil
}

// Fields decodes one record (a JSON object).
func Fields(src string, raw json.RawMessage) (map[string]json.RawMessage, error) {
	return Object(src, raw)
}

// Text returns the first of names present as a non-empty string or number.
func Text(src string, rec map[string]json.RawMessage, names ...string) (string, error) {
	for _, n := range names {
		v, ok := rec[n]
		if !ok {
			continue
		}
		t := bytes.TrimSpace(v)
		if len(t) > 0 && t[0] == '"' {
			var s string
			if json.Unmarshal(t, &s) == nil && strings.TrimSpace(s) != "" {
				return s, nil
			}
		} else if len(t) > 0 && (t[0] == '-' || t[0] >= '0' && t[0] <= '9') {
			var num json.Number
			if json.Unmarshal(t, &num) == nil {
				return num.String(), nil
			}
		}
		return "", shapef("%s: record field %s is not a non-empty string or number", src, n)
	}
	return "", shapef("%s: record has no %s field", src, orList(names))
}

// OptText is Text for optional fields: missing or null gives "".
func OptText(rec map[string]json.RawMessage, names ...string) string {
	for _, n := range names {
		if v, ok := rec[n]; ok {
			var s string
			if json.Unmarshal(v, &s) == nil {
				return s
			}
			var num json.Number
			if json.Unmarshal(v, &num) == nil {
				return num.String()
			}
			return ""
		}
	}
	return ""
}

// Time reads the first present time field; it returns the raw text (for
// stable ids) and the parsed UTC time.
func Time(src string, rec map[string]json.RawMessage, names ...string) (string, time.Time, error) {
	for _, n := range names {
		if _, ok := rec[n]; !ok {
			continue
		}
		s, err := Text(src, rec, n)
		if err != nil {
			return "", time.Time{}, err
		}
		t, err := mde.ParseTime(s)
		if err != nil {
			return "", time.Time{}, shapef("%s: record field %s: %w", src, n, err)
		}
		return s, t, nil
	}
	return "", time.Time{}, shapef("%s: record has no %s field", src, orList(names))
}

// Keys checks that snapshot keys are unique.
type Keys struct {
	src  string
	seen map[string]struct{}
}

// NewKeys starts an empty key set for src.
func NewKeys(src string) *Keys { return &Keys{src: src, seen: map[string]struct{}{}} }

// Add records key and fails on a duplicate.
func (k *Keys) Add(key string) error {
	if _, dup := k.seen[key]; dup {
		return shapef("%s: key %q appears twice in one snapshot (the API repeated a page or returned duplicates); the snapshot was not emitted", k.src, key)
	}
	k.seen[key] = struct{}{}
	return nil
}

// Len is the number of keys seen.
func (k *Keys) Len() int { return len(k.seen) }

// SnapshotItems turns records into snapshot items keyed by the first
// present of keyFields, with unique keys.
func SnapshotItems(src string, recs []json.RawMessage, keys *Keys, keyFields ...string) ([]source.Item, error) {
	out := make([]source.Item, 0, len(recs))
	for i, raw := range recs {
		f, err := Fields(src, raw)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		key, err := Text(src, f, keyFields...)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		if err := keys.Add(key); err != nil {
			return nil, err
		}
		out = append(out, source.Item{Key: key, Raw: raw})
	}
	return out, nil
}

// EmitAll emits items in order and stops at the first error.
func EmitAll(ctx context.Context, emit source.Emit, items []source.Item) error {
	for _, it := range items {
		if err := emit(ctx, it); err != nil {
			return err
		}
	}
	return nil
}

// Chunks cuts w into consecutive windows of at most max (max ≤ 0: one).
func Chunks(w source.Window, max time.Duration) []source.Window {
	if !w.From.Before(w.To) {
		return nil
	}
	if max <= 0 {
		return []source.Window{w}
	}
	var out []source.Window
	for from := w.From; from.Before(w.To); from = from.Add(max) {
		to := from.Add(max)
		if to.After(w.To) {
			to = w.To
		}
		out = append(out, source.Window{From: from, To: to})
	}
	return out
}

// CheckConfig rejects nil or wrongly typed configs with a programming
// error message.
func CheckConfig[T any](src string, cfg any) (*T, error) {
	if cfg == nil {
		return new(T), nil
	}
	c, ok := cfg.(*T)
	if !ok || c == nil {
		return nil, fmt.Errorf("%s: config has type %T, want %T", src, cfg, new(T))
	}
	return c, nil
}

// Settings is a factory's settings: cfg as the config decoded it (nil:
// defaults()), of the source's own type, checked by its Validate; errors
// name the source.
func Settings[T any, PT interface {
	*T
	Validate() error
}](src string, cfg any, defaults func() PT) (PT, error) {
	if cfg == nil {
		cfg = defaults()
	}
	c, err := CheckConfig[T](src, cfg)
	if err != nil {
		return nil, err
	}
	pc := PT(c)
	if err := pc.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	return pc, nil
}

// Windowing is the YAML form of source.Windowing, inlined in event
// source configs.
type Windowing struct {
	Overlap   source.Duration `yaml:"overlap"`
	MaxWindow source.Duration `yaml:"max_window"`
	Delay     source.Duration `yaml:"delay"`
}

// Rules converts to source.Windowing.
func (w Windowing) Rules() source.Windowing {
	return source.Windowing{Overlap: w.Overlap.D(), MaxWindow: w.MaxWindow.D(), Delay: w.Delay.D()}
}

// Check is CheckValues with the source's name in front of the error.
func (w Windowing) Check(src string, limit time.Duration) error {
	if err := w.CheckValues(limit); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	return nil
}

// CheckValues checks the window settings, naming the key: none may be
// negative, and max_window must lie within the API's hard window limit
// (0: none; then 0 means no chunking).
func (w Windowing) CheckValues(limit time.Duration) error {
	for _, v := range []struct {
		key string
		d   source.Duration
	}{{"overlap", w.Overlap}, {"max_window", w.MaxWindow}, {"delay", w.Delay}} {
		if v.d < 0 {
			return fmt.Errorf("%s %s must not be negative", v.key, v.d)
		}
	}
	if limit > 0 && (w.MaxWindow.D() <= 0 || w.MaxWindow.D() > limit) {
		return fmt.Errorf("max_window %s must be between 1s and %s (the API's limit)", w.MaxWindow, source.Duration(limit))
	}
	return nil
}

// ErrShape matches every error about an answer whose shape a source
// cannot read (missing or mistyped fields, unknown envelopes, lists that
// end short of their total): metrics count them as one kind.
var ErrShape = errors.New("unreadable answer")

// shapeError is an answer-shape error; its text stays the message given.
type shapeError struct{ err error }

func (e *shapeError) Error() string        { return e.err.Error() }
func (e *shapeError) Unwrap() error        { return e.err }
func (e *shapeError) Is(target error) bool { return target == ErrShape }

// shapef is fmt.Errorf for answer-shape errors.
func shapef(format string, a ...any) error {
	return &shapeError{fmt.Errorf(format, a...)}
}
