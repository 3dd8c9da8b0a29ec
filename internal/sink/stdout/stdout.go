// Package stdout is the sink that prints records as JSON lines to standard
// output, for piping into jq or another tool.
package stdout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/sink"
)

// Name is the output's config key.
const Name = "stdout"

func init() {
	sink.Register(sink.Factory{
		Name:        Name,
		Description: "JSON lines on standard output (for jq and pipes)",
		New: func(deps sink.Deps, _ any) (sink.Sink, error) {
			return New(deps), nil
		},
	})
}

// Sink writes JSONL to an io.Writer. Each batch is encoded completely and
// handed to the writer in one Write call under a lock, so lines of
// concurrent batches never interleave.
type Sink struct {
	name   string // instance name
	mu     sync.Mutex
	w      io.Writer
	closed bool
	buf    []byte
}

// New builds the sink writing to deps.Stdout (os.Stdout when nil).
func New(deps sink.Deps) *Sink {
	w := deps.Stdout
	if w == nil {
		w = os.Stdout
	}
	return &Sink{name: deps.NameOr(Name), w: w}
}

// Name implements sink.Sink.
func (s *Sink) Name() string { return s.name }

// Start implements sink.Sink; there is nothing to prepare.
func (s *Sink) Start(context.Context) error { return nil }

// writeMu serialises the writes of every stdout output of the process.
var writeMu sync.Mutex

var errClosed = errors.New("stdout output is shut down; no more records can be written")

// Write encodes all records first (one bad record rejects the batch) and
// then writes them. A pipe offers no fsync: "durable" means the reader
// has been handed the bytes.
func (s *Sink) Write(ctx context.Context, table string, recs []record.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	buf := s.buf[:0]
	for i := range recs {
		var err error
		if buf, err = recs[i].AppendJSON(buf); err != nil {
			return fmt.Errorf("table %s: %w", table, err)
		}
		buf = append(buf, '\n')
	}
	if len(buf) == 0 {
		return nil
	}
	// Several instances (one per tenant of a serve) share the process's
	// standard output: one batch is written whole before another starts.
	writeMu.Lock()
	_, err := s.w.Write(buf)
	writeMu.Unlock()
	if cap(buf) <= 8<<20 { // keep a pipeline batch's buffer (4 MiB), not a huge one
		s.buf = buf
	}
	if err != nil {
		return fmt.Errorf("writing table %s to standard output: %w", table, err)
	}
	return nil
}

// Shutdown implements sink.Sink. It does not close the writer: standard
// output belongs to the process.
func (s *Sink) Shutdown(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
