package srcutil

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/defenderharvester/defenderharvester/internal/source"
)

// EventFields says how an event source reads its records: the first
// present of ID names the record's id, the first present of Time its time,
// and StableID makes the item id from both (and, if it needs, other fields).
type EventFields struct {
	ID, Time []string
	StableID func(id, ts string, f map[string]json.RawMessage) string
	// Sparse decodes only the ID and Time fields (and Need): StableID
	// then sees no others. For large records of which only those matter
	// (timeline events); the record is still checked whole.
	Sparse bool
	Need   []string
}

// Items turns records into event items. A record that is not an object or
// lacks its id or time fails the page, naming the record's index.
func (e EventFields) Items(src string, recs []json.RawMessage) ([]source.Item, error) {
	items := make([]source.Item, 0, len(recs))
	var want []string
	if e.Sparse {
		want = append(append(append(want, e.ID...), e.Time...), e.Need...)
	}
	for i, raw := range recs {
		var f map[string]json.RawMessage
		var err error
		if want != nil && len(raw) > 0 && raw[0] == '{' {
			f, err = scanPick(raw, want)
		}
		if f == nil {
			f, err = Fields(src, raw) // also the error of a record that is not an object
		}
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		id, err := Text(src, f, e.ID...)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		ts, t, err := Time(src, f, e.Time...)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		// Fields decoded raw with the validating scanner: it is JSON.
		items = append(items, source.Item{ID: e.StableID(id, ts, f), Time: t, Raw: raw, Checked: true})
	}
	return items, nil
}

// List reads a list response tolerantly (see ReadList) and turns its
// records into items.
func (e EventFields) List(src string, body []byte, shape ListShape) (List, []source.Item, error) {
	l, err := ReadList(src, body, shape)
	if err != nil {
		return List{}, nil, err
	}
	items, err := e.Items(src, l.Records)
	if err != nil {
		return List{}, nil, err
	}
	return l, items, nil
}

// IDs returns the items' ids in order (for a Pager).
func IDs(items []source.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

// KeysOf returns the items' keys in order (for a Pager).
func KeysOf(items []source.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Key
	}
	return out
}

// NextLink reads @odata.nextLink of an OData page: "" when absent or null,
// an error when it is not a string.
func NextLink(src string, body []byte) (string, error) {
	var env struct {
		Next json.RawMessage `json:"@odata.nextLink"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return "", fmt.Errorf("%s: %w", src, err)
	}
	if len(env.Next) == 0 || bytes.Equal(env.Next, []byte("null")) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(env.Next, &s); err != nil {
		return "", shapef("%s: field @odata.nextLink is not a string", src)
	}
	return s, nil
}

// IntRange checks a numeric setting lies in [lo, hi].
func IntRange(src, key string, v, lo, hi int) error {
	if err := CheckInt(key, v, lo, hi); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	return nil
}

// CheckInt is IntRange for Validate methods: the error names the key only
// (the config loader puts the section in front).
func CheckInt(key string, v, lo, hi int) error {
	if v < lo || v > hi {
		return fmt.Errorf("%s %d must be between %d and %d", key, v, lo, hi)
	}
	return nil
}

// Cursors remembers the continuation links (or cursors) a paging loop has
// followed, so a server that hands one out twice cannot loop it forever.
type Cursors map[string]bool

// Follow marks c as followed; it fails with ErrRepeatedLink when c was
// already followed.
func (cs Cursors) Follow(c string) error {
	if cs[c] {
		return ErrRepeatedLink
	}
	cs[c] = true
	return nil
}
