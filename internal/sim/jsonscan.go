package sim

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"sync"
	"unicode/utf8"
)

// A validating one-pass JSON walker for the receivers. It accepts exactly
// what encoding/json's scanner accepts (the RFC 8259 grammar, any byte
// from 0x20 up inside strings, at most 10000 nested arrays and objects)
// and hands an object's members to a visitor, so a record is checked and
// the few fields a receiver needs are found in a single pass. The
// receivers use it on their success path only: whenever it finds anything
// wrong they run their encoding/json implementation again for the exact
// answer (jsonscan_test.go compares both).

const jsonMaxDepth = 10000 // encoding/json's maxNestingDepth

// jsonStrStop marks the bytes that end a run of plain string content.
var jsonStrStop = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanJSONValue validates the value starting at b[i] (no leading
// whitespace) and returns the index just past it, or -1. depth is the
// nesting level the value has if it is an array or object (1 at the top).
func scanJSONValue(b []byte, i, depth int) int {
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		return scanJSONString(b, i)
	case c == '{':
		return scanJSONObject(b, i, depth)
	case c == '[':
		return scanJSONArray(b, i, depth)
	case c == '-' || '0' <= c && c <= '9':
		return scanJSONNumber(b, i)
	case c == 't':
		return scanJSONLiteral(b, i, "true")
	case c == 'f':
		return scanJSONLiteral(b, i, "false")
	case c == 'n':
		return scanJSONLiteral(b, i, "null")
	}
	return -1
}

func scanJSONLiteral(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

func scanJSONString(b []byte, i int) int {
	i++ // '"'
	for i < len(b) {
		c := b[i]
		if !jsonStrStop[c] {
			i++
			continue
		}
		switch c {
		case '"':
			return i + 1
		case '\\':
			if i+1 >= len(b) {
				return -1
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(b)-i < 6 {
					return -1
				}
				for _, h := range b[i+2 : i+6] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return -1
					}
				}
				i += 6
			default:
				return -1
			}
		default: // a control character
			return -1
		}
	}
	return -1
}

func scanJSONNumber(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	digits := func(i int) int {
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i
	}
	switch {
	case i >= len(b):
		return -1
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		i = digits(i + 1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func scanJSONArray(b []byte, i, depth int) int {
	if depth > jsonMaxDepth {
		return -1
	}
	i = skipJSONSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1
	}
	for {
		if i = scanJSONValue(b, i, depth+1); i < 0 {
			return -1
		}
		if i = skipJSONSpace(b, i); i >= len(b) {
			return -1
		}
		switch b[i] {
		case ',':
			i = skipJSONSpace(b, i+1)
		case ']':
			return i + 1
		default:
			return -1
		}
	}
}

func scanJSONObject(b []byte, i, depth int) int {
	return walkJSONObject(b, i, depth, nil)
}

// jsonMember is called for each member of a walked object with the key
// (quoted, as in the input) and the start of the value; it scans the
// value (its depth given) and returns the index past it, or -1.
type jsonMember func(key []byte, start, depth int) int

// walkJSONObject validates the object at b[i] like scanJSONValue, calling
// visit (nil: scanJSONValue) for each member in order.
func walkJSONObject(b []byte, i, depth int, visit jsonMember) int {
	if depth > jsonMaxDepth {
		return -1
	}
	i = skipJSONSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return -1
		}
		ke := scanJSONString(b, i)
		if ke < 0 {
			return -1
		}
		key := b[i:ke]
		if i = skipJSONSpace(b, ke); i >= len(b) || b[i] != ':' {
			return -1
		}
		i = skipJSONSpace(b, i+1)
		if visit == nil {
			i = scanJSONValue(b, i, depth+1)
		} else {
			i = visit(key, i, depth+1)
		}
		if i < 0 {
			return -1
		}
		if i = skipJSONSpace(b, i); i >= len(b) {
			return -1
		}
		switch b[i] {
		case ',':
			i = skipJSONSpace(b, i+1)
		case '}':
			return i + 1
		default:
			return -1
		}
	}
}

// plainJSONString reports whether a valid quoted string needs no
// unquoting: no escapes and valid UTF-8.
func plainJSONString(q []byte) bool {
	ascii := true
	for _, c := range q[1 : len(q)-1] {
		if c == '\\' {
			return false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	return ascii || utf8.Valid(q[1:len(q)-1])
}

// jsonKey is an object key as encoding/json decodes it (escapes resolved,
// invalid UTF-8 replaced); q is the valid quoted key.
func jsonKey(q []byte) []byte {
	if plainJSONString(q) {
		return q[1 : len(q)-1]
	}
	var s string
	json.Unmarshal(q, &s)
	return []byte(s)
}

// jsonString is json.Unmarshal(v, &s) for a valid JSON value v: a string
// decodes, null leaves "", anything else fails.
func jsonString(v []byte) (string, bool) {
	switch v[0] {
	case '"':
		if plainJSONString(v) {
			return string(v[1 : len(v)-1]), true
		}
		var s string
		err := json.Unmarshal(v, &s)
		return s, err == nil
	case 'n':
		return "", true
	}
	return "", false
}

// foldKey is encoding/json's case-insensitive match of a decoded key with
// a struct field name; for the ASCII names used here (no K or S, whose
// folds include non-ASCII runes) it is an ASCII case fold.
func foldKey(k []byte, name string) bool {
	if len(k) != len(name) {
		return false
	}
	for i := 0; i < len(k); i++ {
		a, b := k[i], name[i]
		if 'a' <= a && a <= 'z' {
			a -= 'a' - 'A'
		}
		if 'a' <= b && b <= 'z' {
			b -= 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// Body buffers and gzip readers are recycled across requests; a buffer
// that grew past maxPooledBody is left to the collector.
const maxPooledBody = 4 << 20

var (
	bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	gzipPool sync.Pool
)

// reqBody holds a request's pooled buffers until release.
type reqBody struct {
	raw, plain *bytes.Buffer
}

func (rb *reqBody) buf() *bytes.Buffer {
	b := bodyPool.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

func (rb *reqBody) release() {
	for _, b := range []*bytes.Buffer{rb.raw, rb.plain} {
		if b != nil && b.Cap() <= maxPooledBody {
			bodyPool.Put(b)
		}
	}
	rb.raw, rb.plain = nil, nil
}

// read is io.ReadAll(io.LimitReader(r, limit+1)) into a pooled buffer;
// sizeHint (the Content-Length, or -1) presizes a fresh one.
func (rb *reqBody) read(r io.Reader, limit, sizeHint int64) ([]byte, error) {
	rb.raw = rb.buf()
	if sizeHint >= 0 && sizeHint <= limit {
		rb.raw.Grow(int(sizeHint) + bytes.MinRead)
	}
	_, err := rb.raw.ReadFrom(io.LimitReader(r, limit+1))
	return rb.raw.Bytes(), err
}

// gunzip decompresses raw (at most limit+1 bytes of output) with a
// recycled gzip reader; headerErr is gzip.NewReader's error, readErr the
// decompression's.
func (rb *reqBody) gunzip(raw []byte, limit int64) (body []byte, headerErr, readErr error) {
	zr, _ := gzipPool.Get().(*gzip.Reader)
	if zr == nil {
		zr = new(gzip.Reader)
	}
	defer gzipPool.Put(zr)
	if err := zr.Reset(bytes.NewReader(raw)); err != nil {
		return nil, err, nil
	}
	rb.plain = rb.buf()
	_, err := rb.plain.ReadFrom(io.LimitReader(zr, limit+1))
	return rb.plain.Bytes(), nil, err
}
