package srcutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/source"
)

// EventItems turns records into event items. idTime reads one record's
// fields and returns its stable id and UTC time; its errors, like a record
// that is not an object, fail the page with the record's index.
func EventItems(src string, recs []json.RawMessage, idTime func(f map[string]json.RawMessage) (string, time.Time, error)) ([]source.Item, error) {
	items := make([]source.Item, 0, len(recs))
	for i, raw := range recs {
		f, err := Fields(src, raw)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		id, t, err := idTime(f)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		items = append(items, source.Item{ID: id, Time: t, Raw: raw})
	}
	return items, nil
}

// Count reads the Count total of a {"Count":n,"Results":[…]} page; ok is
// false when the field is absent. A present Count must be a non-negative
// integer.
func Count(src string, obj map[string]json.RawMessage) (n int64, ok bool, err error) {
	raw, ok := obj["Count"]
	if !ok {
		return 0, false, nil
	}
	if err := json.Unmarshal(raw, &n); err != nil || n < 0 {
		return 0, true, fmt.Errorf("%s: field Count is not a non-negative integer", src)
	}
	return n, true, nil
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
		return "", fmt.Errorf("%s: field @odata.nextLink is not a string", src)
	}
	return s, nil
}

// IntRange checks a numeric setting lies in [lo, hi].
func IntRange(src, key string, v, lo, hi int) error {
	if v < lo || v > hi {
		return fmt.Errorf("%s: %s %d must be between %d and %d", src, key, v, lo, hi)
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
