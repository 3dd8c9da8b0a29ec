// Package sink defines where records go and keeps the registry of every
// output. A sink takes batches of records for one table and returns only
// once they are durably accepted; it never decides what to fetch.
package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/delivery"
	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/registry"
)

// Sink is one output.
type Sink interface {
	Name() string
	// Start prepares the output (directories, connections, repairs after a
	// crash). Write must not be called before Start.
	Start(ctx context.Context) error
	// Write delivers records (all of one table) and returns nil only once
	// they are durably accepted (file: written and fsync'd). Safe for
	// concurrent calls.
	Write(ctx context.Context, table string, recs []record.Record) error
	// Shutdown flushes and releases everything. Idempotent, safe without
	// Start; Write fails after it.
	Shutdown(ctx context.Context) error
}

// Deps are the shared things a sink is built with.
type Deps struct {
	Logger *slog.Logger
	Now    func() time.Time
	Stdout io.Writer
	// Transport carries network sinks' requests; nil means a production
	// transport (TLS verified). The emulator swaps it (docs/ARCHITECTURE.md,
	// "Reaching the emulator").
	Transport http.RoundTripper
	// Emulated is true when Transport leads to the emulator (e.g. Entra
	// instance discovery must be off).
	Emulated bool
	// Getenv reads secrets from the environment (os.Getenv in production).
	Getenv func(string) string
	// DataDir is where a sink may keep files of its own (dead letters),
	// the directory of the state file.
	DataDir string
	// Name is the output instance's name (outputs given as a list); ""
	// means the type's own name.
	Name string
}

// NameOr is the instance's name, or typeName when it has none.
func (d Deps) NameOr(typeName string) string {
	if d.Name != "" {
		return d.Name
	}
	return typeName
}

// Factory describes and builds one sink. Each sink package registers its
// factory in init().
type Factory struct {
	Name        string
	Description string
	// NewConfig returns a pointer to the sink's config struct with its
	// defaults filled in; the config loader decodes the user's settings
	// into it. May be nil when the sink has no settings.
	NewConfig func() any
	// New builds the sink from deps and the decoded config.
	New func(deps Deps, cfg any) (Sink, error)
}

// NewFactory builds the Factory of a sink whose settings are a struct C
// with defaults: the registry hands New the decoded *C (or nothing, which
// means the defaults).
func NewFactory[C any, S Sink](name, description string, defaults func() *C, build func(Deps, C) (S, error)) Factory {
	return Factory{
		Name: name, Description: description,
		NewConfig: func() any { return defaults() },
		New: func(deps Deps, cfg any) (Sink, error) {
			c, ok := cfg.(*C)
			if !ok || c == nil {
				c = defaults()
			}
			return build(deps, *c)
		},
	}
}

var factories = registry.New("sink", func(f Factory) string { return f.Name })

// Register adds a sink factory. It panics on a duplicate name because
// that is a programming error caught by any test.
func Register(f Factory) { factories.Register(f) }

// Lookup returns the factory for name.
func Lookup(name string) (Factory, bool) { return factories.Lookup(name) }

// All returns every registered factory, sorted by name.
func All() []Factory { return factories.All() }

// WithDefaults fills the zero fields of d: a discarding logger, time.Now
// and io.Discard, so sinks never dereference nil.
func (d Deps) WithDefaults() Deps {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Stdout == nil {
		d.Stdout = io.Discard
	}
	if d.Getenv == nil {
		d.Getenv = func(string) string { return "" }
	}
	if d.DataDir == "" {
		d.DataDir = "."
	}
	return d
}

// TenantScoper is implemented by output settings that name a place on
// this machine several tenants' outputs would otherwise share (a
// folder): ForTenant makes it the tenant's own (a subfolder), so two
// tenants' outputs never write, rotate or repair the same files.
type TenantScoper interface {
	ForTenant(name string)
}

// StatsReporter is implemented by outputs that send requests through the
// shared delivery helper; the run summary shows their request counts and
// sizes.
type StatsReporter interface {
	Stats() delivery.Stats
}

// DefaultDeadLetterDir is the folder, under Deps.DataDir, where outputs
// keep their dead letters unless configured otherwise.
const DefaultDeadLetterDir = "deadletter"

// DeadLetterDirer is implemented by the settings of outputs whose dead
// letters can be kept in a configured folder (dead_letter_dir); "" means
// the default, <data dir>/deadletter.
type DeadLetterDirer interface {
	DeadLetterDirectory() string
}

// Warner is implemented by outputs whose settings weaken a guarantee (TLS
// verification turned off…). Each warning is one sentence naming the
// setting; doctor reports them as problems and run logs them at start.
type Warner interface {
	Warnings() []string
}

// PrefixKeys puts prefix (e.g. "delivery.") before each of err's joined
// messages, so an output's Validate reports a nested section's errors with
// their full key.
func PrefixKeys(prefix string, err error) error {
	if err == nil {
		return nil
	}
	list := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	out := make([]error, len(list))
	for i, e := range list {
		out[i] = fmt.Errorf("%s%w", prefix, e)
	}
	return errors.Join(out...)
}
