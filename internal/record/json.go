package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// ErrInvalidJSON is wrapped by AppendJSON when the payload or an extra
// field is not valid JSON; such a record cannot be written without
// producing a broken line.
var ErrInvalidJSON = errors.New("invalid JSON")

// AppendJSON appends r as one JSON object on a single line (no trailing
// newline) to dst: the standard fields TenantId, SourceName, HarvestedAt,
// RecordId and TimeGenerated first, then every Extra field, then the
// payload's own top-level fields. The payload is spliced in, not decoded and
// re-encoded, so numbers, key order and escapes stay exactly as the API sent
// them; only line breaks (insignificant whitespace, but fatal to a JSONL
// line) are compacted away. A payload that is not an object is written as
// "Value": <payload>.
//
// The payload is scanned for validity unless r.RawValid says it was
// already; Extra fields always are.
//
// On error dst is returned unchanged (truncated back to its original
// length), so a caller never ends up with half a line.
func (r *Record) AppendJSON(dst []byte) ([]byte, error) {
	start := len(dst)
	dst = append(dst, '{')
	dst = appendKey(dst, "TenantId", false)
	dst = appendString(dst, r.Tenant)
	dst = appendKey(dst, "SourceName", true)
	dst = appendString(dst, r.Source)
	dst = appendKey(dst, "HarvestedAt", true)
	dst = appendTime(dst, r.HarvestedAt)
	dst = appendKey(dst, "RecordId", true)
	dst = appendString(dst, r.ID)
	dst = appendKey(dst, "TimeGenerated", true)
	dst = appendTime(dst, r.Time)

	var err error
	for _, f := range r.Extra {
		dst = appendKey(dst, f.Key, true)
		if dst, err = appendCompact(dst, f.Value); err != nil {
			return dst[:start], fmt.Errorf("record %s: extra field %q: %w", r.ID, f.Key, err)
		}
	}

	compactRaw := appendCompact
	if r.RawValid {
		compactRaw = appendCompactValid
	}
	if firstNonSpace(r.Raw) != '{' {
		dst = appendKey(dst, "Value", true)
		if dst, err = compactRaw(dst, r.Raw); err != nil {
			return dst[:start], fmt.Errorf("record %s: payload: %w", r.ID, err)
		}
		return append(dst, '}'), nil
	}

	// Compact the payload object in place after the standard fields, then
	// turn its opening brace into the separating comma (or drop it when
	// the object is empty).
	open := len(dst)
	if dst, err = compactRaw(dst, r.Raw); err != nil {
		return dst[:start], fmt.Errorf("record %s: payload: %w", r.ID, err)
	}
	if len(bytes.Trim(dst[open+1:len(dst)-1], " \t")) == 0 { // "{}" or "{ }"
		dst = dst[:open]
		return append(dst, '}'), nil
	}
	dst[open] = ','
	return dst, nil
}

func firstNonSpace(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}

// appendCompact validates src and appends it on one line: the bytes as
// they are (minus surrounding whitespace) when they hold no line break,
// else compacted. Inside a valid JSON string a raw CR or LF cannot occur,
// so any line break is insignificant whitespace.
func appendCompact(dst, src []byte) ([]byte, error) {
	if !json.Valid(src) {
		return dst, ErrInvalidJSON
	}
	if bytes.IndexByte(src, '\n') < 0 && bytes.IndexByte(src, '\r') < 0 {
		return append(dst, bytes.Trim(src, " \t")...), nil
	}
	buf := bytes.NewBuffer(dst)
	if err := json.Compact(buf, src); err != nil {
		return dst, fmt.Errorf("%w: %v", ErrInvalidJSON, err)
	}
	return buf.Bytes(), nil
}

// appendCompactValid is appendCompact for src already known to be valid
// JSON: no validation scan; line breaks, when there are any, are removed
// with every other whitespace outside strings (a valid string holds no raw
// whitespace but spaces and tabs, which are kept). It never fails.
func appendCompactValid(dst, src []byte) ([]byte, error) {
	if bytes.IndexByte(src, '\n') < 0 && bytes.IndexByte(src, '\r') < 0 {
		return append(dst, bytes.Trim(src, " \t")...), nil
	}
	inString, escaped := false, false
	start := 0
	for i, c := range src {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			dst = append(dst, src[start:i]...)
			start = i + 1
		}
	}
	return append(dst, src[start:]...), nil
}

func appendKey(dst []byte, k string, comma bool) []byte {
	if comma {
		dst = append(dst, ',')
	}
	dst = appendString(dst, k)
	return append(dst, ':')
}

func appendTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string. Invalid UTF-8 becomes U+FFFD so
// the line stays valid JSON whatever a source put in an id.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
