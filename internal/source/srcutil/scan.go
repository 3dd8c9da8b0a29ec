package srcutil

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/maphash"
	"slices"
	"sync/atomic"
	"unicode/utf8"
)

// A small JSON scanner for the page shapes the sources read. Decoding a
// 1 MB page through encoding/json into map[string]json.RawMessage, then its
// array, then every record, scans each byte about five times and copies it
// three; this scanner walks a container once and hands out its members as
// sub-slices of the input (no copy).
//
// It checks the full JSON grammar as it goes (strings, escapes, numbers,
// literals, separators, nesting depth), accepting exactly what json.Valid
// accepts, so a caller needs no separate validation pass. FuzzScanObject
// holds it to that and to encoding/json's decoding of keys and values.
// Callers that must report an error re-run encoding/json on the input for
// its usual message, so the scanner's own errors stay terse.

// maxDepth is encoding/json's nesting limit: deeper documents are invalid.
const maxDepth = 10000

var errSyntax = errors.New("invalid JSON")

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// scanObject calls fn for each member of the object that b holds (with
// optional surrounding JSON whitespace), in document order. key is the raw
// key text between its quotes (still escaped; see decodeKey), val the
// member's value without surrounding whitespace, capacity-capped so an
// append cannot write into b.
func scanObject(b []byte, fn func(key, val []byte)) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errSyntax
	}
	end, err := walkObject(b, i, 1, fn)
	if err != nil {
		return err
	}
	if skipSpace(b, end) != len(b) {
		return errSyntax
	}
	return nil
}

// scanArray calls fn for each element of the array that b holds, like
// scanObject.
func scanArray(b []byte, fn func(elem []byte)) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return errSyntax
	}
	end, err := walkArray(b, i, 1, fn)
	if err != nil {
		return err
	}
	if skipSpace(b, end) != len(b) {
		return errSyntax
	}
	return nil
}

// walkObject reads the object starting at b[i] == '{' at nesting depth
// depth and returns the index just past its '}'.
func walkObject(b []byte, i, depth int, fn func(key, val []byte)) (int, error) {
	if depth > maxDepth {
		return 0, errSyntax
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, errSyntax
		}
		kend, err := skipString(b, i)
		if err != nil {
			return 0, err
		}
		key := b[i+1 : kend-1]
		i = skipSpace(b, kend)
		if i >= len(b) || b[i] != ':' {
			return 0, errSyntax
		}
		i = skipSpace(b, i+1)
		vstart := i
		if i, err = skipValue(b, i, depth); err != nil {
			return 0, err
		}
		if fn != nil {
			fn(key, b[vstart:i:i])
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return 0, errSyntax
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return 0, errSyntax
		}
	}
}

// walkArray reads the array starting at b[i] == '[' like walkObject.
func walkArray(b []byte, i, depth int, fn func(elem []byte)) (int, error) {
	if depth > maxDepth {
		return 0, errSyntax
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		start := i
		var err error
		if i, err = skipValue(b, i, depth); err != nil {
			return 0, err
		}
		if fn != nil {
			fn(b[start:i:i])
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return 0, errSyntax
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return i + 1, nil
		default:
			return 0, errSyntax
		}
	}
}

// skipValue checks the value starting at b[i] (no leading whitespace) that
// sits inside a container at depth and returns the index just past it.
func skipValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{':
		return walkObject(b, i, depth+1, nil)
	case c == '[':
		return walkArray(b, i, depth+1, nil)
	case c == '-' || c >= '0' && c <= '9':
		return skipNumber(b, i)
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	}
	return 0, errSyntax
}

func skipLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, errSyntax
	}
	return i + len(lit), nil
}

// skipString checks the string starting at b[i] == '"' and returns the
// index just past its closing quote. Like json.Valid it rejects control
// characters and bad escapes but not invalid UTF-8.
func skipString(b []byte, i int) (int, error) {
	i++
	for {
		i = skipPlain(b, i)
		if i >= len(b) {
			return 0, errSyntax
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			if i+1 >= len(b) {
				return 0, errSyntax
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(b)-i < 6 || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return 0, errSyntax
				}
				i += 6
			default:
				return 0, errSyntax
			}
		case c < 0x20:
			return 0, errSyntax
		default:
			i++
		}
	}
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// skipPlain returns the index of the first byte at or after i that a string
// scan must look at: '"', '\\' or a control character (or len(b)). String
// contents are most of a page, so it tests eight bytes at a time: a word
// has a byte equal to c iff (x^c·lsb) has a zero byte, and a byte below
// 0x20 iff x-0x20·lsb borrows into a clear high bit. Both tests are exact
// about whether such a byte exists, which is all the skip needs.
func skipPlain(b []byte, i int) int {
	for len(b)-i >= 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		q := x ^ (lsb * '"')
		s := x ^ (lsb * '\\')
		if ((q-lsb)&^q|(s-lsb)&^s|(x-lsb*0x20)&^x)&msb != 0 {
			break
		}
		i += 8
	}
	for i < len(b) {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 {
			return i
		}
		i++
	}
	return i
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// skipNumber checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at b[i].
// What may follow is the caller's grammar's business.
func skipNumber(b []byte, i int) (int, error) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		return 0, errSyntax
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return 0, errSyntax
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return 0, errSyntax
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i, nil
}

// decodeKey turns a raw key (between its quotes, from a scanned and so
// well-formed string) into the string encoding/json would use as a map key.
// Keys without escapes in valid UTF-8 — the common case — convert directly;
// others (escapes, or invalid UTF-8 that encoding/json replaces with
// U+FFFD) go through encoding/json itself.
func decodeKey(raw []byte) string {
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return intern(raw)
	}
	q := make([]byte, 0, len(raw)+2)
	q = append(q, '"')
	q = append(q, raw...)
	q = append(q, '"')
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		// Unreachable for a scanned key; keep the raw text rather than
		// drop the member.
		return string(raw)
	}
	return s
}

// Field names repeat in every record of every page, so decodeKey interns
// them: a fixed table of slots, each holding the last name that hashed
// there. Slots are swapped atomically, so concurrent sources share it
// without a lock; a collision only costs an allocation.
var (
	internSeed  = maphash.MakeSeed()
	internSlots [1024]atomic.Pointer[string]
)

func intern(b []byte) string {
	if len(b) > 64 {
		return string(b)
	}
	slot := &internSlots[maphash.Bytes(internSeed, b)%uint64(len(internSlots))]
	if p := slot.Load(); p != nil && *p == string(b) {
		return *p
	}
	s := string(b)
	slot.Store(&s)
	return s
}

// scanMap builds what json.Unmarshal into map[string]json.RawMessage gives
// for the object in b (later duplicate keys win), with values sub-slicing b.
func scanMap(b []byte) (map[string]json.RawMessage, error) {
	obj := make(map[string]json.RawMessage, 8)
	err := scanObject(b, func(key, val []byte) { obj[decodeKey(key)] = val })
	if err != nil {
		return nil, err
	}
	return obj, nil
}

// scanPick is scanMap keeping only the members named in want (the whole
// object is still checked): records of ~40 fields of which a source needs
// two cost no map of 40 entries.
func scanPick(b []byte, want []string) (map[string]json.RawMessage, error) {
	obj := make(map[string]json.RawMessage, len(want))
	err := scanObject(b, func(key, val []byte) {
		if bytes.IndexByte(key, '\\') >= 0 {
			if k := decodeKey(key); slices.Contains(want, k) {
				obj[k] = val
			}
			return
		}
		for _, w := range want {
			if string(key) == w {
				obj[w] = val
				return
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return obj, nil
}

// scanElems returns the elements of the array in b as sub-slices of b; an
// empty array gives an empty, non-nil slice as encoding/json does.
func scanElems(b []byte) ([]json.RawMessage, error) {
	arr := make([]json.RawMessage, 0, 16)
	if err := scanArray(b, func(e []byte) { arr = append(arr, e) }); err != nil {
		return nil, err
	}
	return arr, nil
}
