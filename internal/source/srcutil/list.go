package srcutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ListKeys are the object members under which the portal and the public
// API have been seen to return a list. Several portal responses are known
// only from captures, so every list decoder accepts all of them (plus a
// bare array) instead of the one member its capture showed.
var ListKeys = []string{"Results", "Items", "items", "value"}

// TotalKeys are the members that carry a list's total row count.
var TotalKeys = []string{"Count", "count", "TotalCount", "totalCount", "@odata.count"}

// ListShape says what else, beyond a bare array and ListKeys, a list
// response may look like.
type ListShape struct {
	// Keys are further members that may hold the array (e.g. "Rules");
	// they are tried before ListKeys.
	Keys []string
	// Single, when set, accepts an object that has none of the list
	// members as one record if it has one of these fields (e.g. "Id").
	Single []string
	// Record names one record in errors ("app"); "record" when empty.
	Record string
}

func (s ListShape) keys() []string {
	out := make([]string, 0, len(s.Keys)+len(ListKeys))
	seen := map[string]bool{}
	for _, k := range append(append([]string(nil), s.Keys...), ListKeys...) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// expected is the shape the decoder wanted, for errors.
func (s ListShape) expected() string {
	e := "a JSON array or an object with an array under " + orList(s.keys())
	if len(s.Single) > 0 {
		rec := s.Record
		if rec == "" {
			rec = "record"
		}
		e += ", or one " + rec + " object with " + orList(s.Single)
	}
	return e
}

// List is one decoded list response.
type List struct {
	Records []json.RawMessage // each a JSON object, sub-slicing the body
	// Total is the row count the response reported, -1 when it reported
	// none.
	Total int64
	// Under is the member the records were under; "" for a bare array or
	// a single record.
	Under string
	// Object is the response object (for links and other members); nil
	// for a bare array.
	Object map[string]json.RawMessage
}

// ReadList reads a list response tolerantly: a bare array, or an object
// with the array under one of shape.Keys or ListKeys, with or without a
// total under one of TotalKeys (or, with shape.Single, one record object).
// What it cannot read fails with the top-level keys and JSON types it saw,
// never their values; so do two candidate arrays (it cannot tell which is
// the list), a total that is not a non-negative integer, and a record that
// is not a JSON object.
func ReadList(src string, body []byte, shape ListShape) (List, error) {
	b := bytes.TrimSpace(body)
	cannot := func() error {
		return shapef("%s: cannot read the response: %s; expected %s", src, DescribeShape(b), shape.expected())
	}
	if len(b) == 0 {
		return List{}, cannot()
	}
	var l List
	switch b[0] {
	case '[':
		arr, err := scanElems(b)
		if err != nil {
			return List{}, cannot()
		}
		l = List{Records: arr, Total: -1}
	case '{':
		obj, err := scanMap(b)
		if err != nil {
			return List{}, cannot()
		}
		l = List{Total: -1, Object: obj}
		var found []string
		for _, k := range shape.keys() {
			if v, ok := obj[k]; ok && JSONType(v) == "array" {
				found = append(found, k)
			}
		}
		switch {
		case len(found) > 1:
			return List{}, shapef("%s: cannot read the response: %s; it has arrays under both %s and %s and cannot tell which is the list",
				src, DescribeShape(b), showKey(found[0]), showKey(found[1]))
		case len(found) == 1:
			l.Under = found[0]
			if l.Records, err = scanElems(obj[found[0]]); err != nil {
				return List{}, cannot() // unreachable: the object was scanned
			}
		case hasAny(obj, shape.Single):
			l.Records = []json.RawMessage{b[:len(b):len(b)]}
		default:
			return List{}, cannot()
		}
		if l.Total, err = total(src, obj); err != nil {
			return List{}, err
		}
	default:
		return List{}, cannot()
	}
	if err := checkObjects(src, l.Records); err != nil {
		return List{}, err
	}
	return l, nil
}

// total reads the first present, non-null member of TotalKeys.
func total(src string, obj map[string]json.RawMessage) (int64, error) {
	for _, k := range TotalKeys {
		v, ok := obj[k]
		if !ok || JSONType(v) == "null" {
			continue
		}
		var n int64
		if JSONType(v) != "number" || json.Unmarshal(v, &n) != nil || n < 0 {
			return 0, shapef("%s: cannot read the response: its total %s is a JSON %s, not a non-negative integer", src, k, describeValue(v))
		}
		return n, nil
	}
	return -1, nil
}

func describeValue(v []byte) string {
	t := JSONType(v)
	if t == "number" {
		return "number that is negative or not whole"
	}
	return t
}

func hasAny(obj map[string]json.RawMessage, names []string) bool {
	for _, n := range names {
		if _, ok := obj[n]; ok {
			return true
		}
	}
	return false
}

// checkObjects insists every record is a JSON object, naming the type of
// the first that is not.
func checkObjects(src string, recs []json.RawMessage) error {
	for i, r := range recs {
		if t := JSONType(r); t != "object" {
			return shapef("%s: record %d is not a JSON object (it is a JSON %s)", src, i, t)
		}
	}
	return nil
}

// JSONType names the JSON type of a well-formed value by its first byte
// (for errors that name the types seen, never the values).
func JSONType(v []byte) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "nothing"
	}
	switch c := v[0]; {
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == '"':
		return "string"
	case c == 't' || c == 'f':
		return "boolean"
	case c == 'n':
		return "null"
	case c == '-' || c >= '0' && c <= '9':
		return "number"
	}
	return "non-JSON value"
}

// maxShapeKeys bounds how many keys DescribeShape lists.
const maxShapeKeys = 20

// DescribeShape says what a response body looks like at its top level —
// its keys with their JSON types, or its JSON type — and never any value,
// so errors about unreadable responses can be logged and reported without
// leaking tenant data: `it has Count (number), Data (array)`.
func DescribeShape(body []byte) string {
	b := bytes.TrimSpace(body)
	switch {
	case len(b) == 0:
		return "it is empty"
	case b[0] == '<':
		return "it is not JSON but markup (an HTML sign-in or error page?)"
	case b[0] == '{':
		var parts []string
		n := 0
		err := scanObject(b, func(key, val []byte) {
			n++
			if n <= maxShapeKeys {
				parts = append(parts, fmt.Sprintf("%s (%s)", showKey(decodeKey(key)), JSONType(val)))
			}
		})
		if err != nil {
			return "it is not valid JSON"
		}
		if n == 0 {
			return "it is an empty JSON object"
		}
		if n > maxShapeKeys {
			parts = append(parts, fmt.Sprintf("and %d more keys", n-maxShapeKeys))
		}
		return "it has " + strings.Join(parts, ", ")
	case !json.Valid(b):
		return "it is not valid JSON"
	case b[0] == '[':
		return describeArray(b)
	}
	return "it is a JSON " + JSONType(b)
}

// describeArray names an array's length and the types of its elements.
func describeArray(b []byte) string {
	types := map[string]int{}
	n := 0
	_ = scanArray(b, func(e []byte) { n++; types[JSONType(e)]++ })
	if n == 0 {
		return "it is an empty JSON array"
	}
	names := make([]string, 0, len(types))
	for t := range types {
		names = append(names, t)
	}
	sort.Strings(names)
	return fmt.Sprintf("it is a JSON array of %d (%s)", n, strings.Join(names, ", "))
}

// DescribeObject is DescribeShape for an already decoded object (keys in
// sorted order, since the map lost the document's).
func DescribeObject(obj map[string]json.RawMessage) string {
	if len(obj) == 0 {
		return "it is an empty JSON object"
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for i, k := range keys {
		if i == maxShapeKeys {
			parts = append(parts, fmt.Sprintf("and %d more keys", len(keys)-maxShapeKeys))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", showKey(k), JSONType(obj[k])))
	}
	return "it has " + strings.Join(parts, ", ")
}

// showKey prints a key as it is when it looks like a field name, else
// quoted and clipped: keys come from the remote side.
func showKey(k string) string {
	plain := k != "" && len(k) <= 64
	for _, r := range k {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("_@.$-:", r)) {
			plain = false
			break
		}
	}
	if plain {
		return k
	}
	if utf8.RuneCountInString(k) > 64 {
		k = string([]rune(k)[:64]) + "…"
	}
	return fmt.Sprintf("%q", k)
}

// orList joins names as "a, b or c".
func orList(names []string) string {
	switch len(names) {
	case 0:
		return "records"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// LinkOf reads a continuation link member of a page object: "" when the
// object is nil or the member is absent or null.
func LinkOf(src string, obj map[string]json.RawMessage, key string) (string, error) {
	v, ok := obj[key]
	if !ok || JSONType(v) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", shapef("%s: field %s is a JSON %s, not a string", src, key, JSONType(v))
	}
	return s, nil
}
