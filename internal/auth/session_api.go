package auth

import (
	"context"
	"fmt"
	"log/slog"
)

// Refresher is a portal session that can renew itself. The portal client
// calls Refresh once after the portal rejects the session (401, 440, a
// redirect to sign-in or an HTML sign-in page) and then retries once.
type Refresher interface {
	Refresh(ctx context.Context) error
}

// Maintainer is a portal session that needs upkeep before a request (for
// example an XSRF token older than five minutes). The portal client calls
// Maintain before every request; it is cheap when nothing is due.
type Maintainer interface {
	Maintain(ctx context.Context) error
}

// Prover is a portal session that is written to the session cache only
// once it has been proven: the portal client calls Proven after every
// request the portal answered with data. A renewal alone (a new XSRF
// token, a fresh sign-in) proves nothing, so it is not cached. Proven is
// cheap when nothing changed since the last write.
type Prover interface {
	Proven()
}

// Secret holds a cookie, token or client secret. Every fmt verb and slog
// print it as "[redacted]", so a secret that reaches a log line by mistake
// still does not leak. Reveal returns the value for the wire.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret value itself; use it only to build a request.
func (s Secret) Reveal() string { return string(s) }

// String redacts.
func (s Secret) String() string { return redacted }

// GoString redacts (%#v).
func (s Secret) GoString() string { return redacted }

// Format redacts for every verb, including %d and %x.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue redacts in slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText redacts so encoders (JSON, YAML) never write the value;
// the session cache writes secrets through its own file type instead.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
