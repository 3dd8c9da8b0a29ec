// Package record defines the unit that flows from sources through the
// pipeline into sinks: one harvested item with its stable id, event time and
// untouched raw JSON payload.
package record

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Record is one harvested item on its way to the sinks.
type Record struct {
	Tenant      string          // tenant id (GUID) the record belongs to
	Source      string          // source name, e.g. "actioncenter"
	Table       string          // destination table, e.g. "MdeMachineActions"
	ID          string          // stable RecordId, the dedup key downstream
	Time        time.Time       // event time; for snapshot records the observation time
	HarvestedAt time.Time       // when the harvester read it
	Raw         json.RawMessage // payload exactly as the API returned it
	Extra       []Field         // additional top-level fields (e.g. ChangeType), added after the standard ones

	// RawValid says Raw was found to be one valid JSON value (json.Valid)
	// since it was last changed, so AppendJSON and the outputs do not scan
	// it again. The pipeline sets it after its one check per payload (the
	// guard against a buggy source); a record built anywhere else — read
	// back from a dead-letter line, made by a test — leaves it false and
	// is checked. Setting it on a payload that was not checked can put a
	// broken line into an output: set it only right after json.Valid.
	// Extra fields are always checked (they are small).
	RawValid bool
}

// Field is an extra top-level field: Value must be valid JSON.
type Field struct {
	Key   string
	Value json.RawMessage
}

// StableID derives a RecordId from the parts that identify one observation.
// The same parts always give the same id, across runs and hosts, so
// downstream systems (which do not dedup themselves) can.
func StableID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
