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
}

// Items turns records into event items. A record that is not an object or
// lacks its id or time fails the page, naming the record's index.
func (e EventFields) Items(src string, recs []json.RawMessage) ([]source.Item, error) {
	items := make([]source.Item, 0, len(recs))
	for i, raw := range recs {
		f, err := Fields(src, raw)
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
		items = append(items, source.Item{ID: e.StableID(id, ts, f), Time: t, Raw: raw})
	}
	return items, nil
}

// Results reads a report page {"Count":n,"Results":[…]} (see the Results
// function) and turns its records into items.
func (e EventFields) Results(src string, body []byte, countRequired bool) (int64, []source.Item, error) {
	count, recs, err := Results(src, body, countRequired)
	if err != nil {
		return 0, nil, err
	}
	items, err := e.Items(src, recs)
	if err != nil {
		return 0, nil, err
	}
	return count, items, nil
}

// Results reads a portal report page {"Count":n,"Results":[…]}. Count must
// be a non-negative integer; when it is absent, Results fails if
// countRequired and otherwise gives -1.
func Results(src string, body []byte, countRequired bool) (count int64, recs []json.RawMessage, err error) {
	obj, err := Object(src, body)
	if err != nil {
		return 0, nil, err
	}
	count = -1
	if raw, ok := obj["Count"]; ok {
		if err := json.Unmarshal(raw, &count); err != nil || count < 0 {
			return 0, nil, fmt.Errorf("%s: field Count is not a non-negative integer", src)
		}
	} else if countRequired {
		return 0, nil, fmt.Errorf("%s: response has no Count field", src)
	}
	recs, err = Items(src, body, Envelope{Keys: []string{"Results"}})
	if err != nil {
		return 0, nil, err
	}
	return count, recs, nil
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
