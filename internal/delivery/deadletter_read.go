package delivery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"
)

// Reading dead letters back, for `deadletters retry` and `list`.

// DeadLetterLine is one line of a dead-letter file.
type DeadLetterLine struct {
	Sink           string
	Table          string
	Reason         string
	DeadLetteredAt string
	Record         json.RawMessage
}

// ErrNotResendable is matched (errors.Is) by Rebuild when the line holds
// a record that cannot be sent as it is: its payload was not valid JSON
// (it is kept as text), or the line lacks the standard fields.
var ErrNotResendable = errors.New("the dead-lettered record cannot be sent again as it is")

// DeadLetterGlob is the pattern of sinkName's dead-letter files in dir
// (<dir>/<sink>-deadletter-*.jsonl).
func DeadLetterGlob(dir, sinkName string) string {
	return filepath.Join(dir, safeName(sinkName)+"-deadletter-*.jsonl")
}

// ParseDeadLetterLine decodes one line of a dead-letter file.
func ParseDeadLetterLine(b []byte) (DeadLetterLine, error) {
	var l DeadLetterLine
	if err := json.Unmarshal(b, &l); err != nil {
		return l, fmt.Errorf("not a dead-letter line: %w", err)
	}
	if l.Table == "" || len(l.Record) == 0 {
		return l, errors.New("not a dead-letter line: Table or Record is missing")
	}
	return l, nil
}

// standardKeys are the fields record.AppendJSON writes first, in order.
var standardKeys = []string{"TenantId", "SourceName", "HarvestedAt", "RecordId", "TimeGenerated"}

// Rebuild turns the line back into a record that writes the same line
// (record.AppendJSON): the standard fields become the record's, and every
// other field of the line — the extra fields and the payload's own, in
// their order — becomes its payload. Every output encodes records with
// AppendJSON, so what it sends is what it would have sent the first
// time. Numbers, escapes and key order of the values are kept as they
// are, the keys' too.
func (l DeadLetterLine) Rebuild() (record.Record, error) {
	r := record.Record{Table: l.Table}
	dec := json.NewDecoder(bytes.NewReader(l.Record))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return r, fmt.Errorf("%w: the record is not a JSON object", ErrNotResendable)
	}
	var payload []byte
	payload = append(payload, '{')
	i := 0
	for dec.More() {
		before := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return r, fmt.Errorf("%w: %v", ErrNotResendable, err)
		}
		key, _ := tok.(string)
		rawKey := bytes.TrimLeft(l.Record[before:dec.InputOffset()], " \t\r\n,") // as written, escapes kept
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return r, fmt.Errorf("%w: %v", ErrNotResendable, err)
		}
		if i < len(standardKeys) {
			// The fallback form of an unencodable record lists the
			// standard fields in another order (and its payload as text).
			if key != standardKeys[i] {
				return r, fmt.Errorf("%w: its payload was not valid JSON and is kept as text (field %q where %q was expected)", ErrNotResendable, key, standardKeys[i])
			}
			if err := l.setStandard(&r, key, val); err != nil {
				return r, err
			}
			i++
			continue
		}
		if len(payload) > 1 {
			payload = append(payload, ',')
		}
		payload = append(payload, rawKey...)
		payload = append(payload, ':')
		payload = append(payload, val...)
	}
	if i < len(standardKeys) {
		return r, fmt.Errorf("%w: the standard fields are missing", ErrNotResendable)
	}
	if _, err := dec.Token(); err != nil {
		return r, fmt.Errorf("%w: %v", ErrNotResendable, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return r, fmt.Errorf("%w: data after the record", ErrNotResendable)
	}
	r.Raw = append(payload, '}')
	return r, nil
}

func (l DeadLetterLine) setStandard(r *record.Record, key string, val json.RawMessage) error {
	var s string
	if err := json.Unmarshal(val, &s); err != nil {
		return fmt.Errorf("%w: field %s is not a string", ErrNotResendable, key)
	}
	switch key {
	case "TenantId":
		r.Tenant = s
	case "SourceName":
		r.Source = s
	case "RecordId":
		r.ID = s
	case "HarvestedAt", "TimeGenerated":
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("%w: field %s is not a time: %v", ErrNotResendable, key, err)
		}
		if key == "HarvestedAt" {
			r.HarvestedAt = t
		} else {
			r.Time = t
		}
	}
	return nil
}
