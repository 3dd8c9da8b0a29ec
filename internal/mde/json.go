package mde

import "encoding/json"

// fullCheckMax is the largest body the client scans completely. Larger
// ones (timeline pages of ~1 MB) are checked for a JSON container's
// first and last byte only: every reader of a large body decodes it with
// a validating decoder (srcutil's scanner), which fails loudly on what
// this cheap check lets through, and a second full scan of every page
// cost a quarter of a timeline harvest's CPU.
const fullCheckMax = 64 << 10

// jsonValid reports whether b (trimmed, not empty) is a JSON document:
// completely checked up to fullCheckMax bytes; beyond, a JSON object or
// array whose closing bracket is there — what a truncated body lacks.
func jsonValid(b []byte) bool {
	if len(b) <= fullCheckMax {
		return json.Valid(b)
	}
	first, last := b[0], b[len(b)-1]
	return (first == '{' && last == '}') || (first == '[' && last == ']')
}
