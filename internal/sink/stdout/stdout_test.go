package stdout

import (
	"bytes"
	"errors"
	"sync"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/sink/sinktest"
)

// lockedBuffer is a writer that is safe to read after concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func TestConformance(t *testing.T) {
	sinktest.Conformance(t, func(t *testing.T) (sink.Sink, func() []record.Record) {
		out := &lockedBuffer{}
		f, ok := sink.Lookup(Name)
		if !ok {
			t.Fatal("stdout sink not registered")
		}
		s, err := f.New(sink.Deps{Stdout: out}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s, func() []record.Record {
			out.mu.Lock()
			defer out.mu.Unlock()
			recs, err := sinktest.DecodeLines("", bytes.NewReader(out.b.Bytes()))
			if err != nil {
				t.Fatalf("stdout output is not clean JSONL: %v", err)
			}
			return recs
		}
	})
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestWriteErrorIsReported(t *testing.T) {
	s := New(sink.Deps{Stdout: failingWriter{}})
	err := s.Write(t.Context(), "MdeActionCenter", sinktest.Records("MdeActionCenter", 0, 1))
	if err == nil {
		t.Fatal("a failed write to standard output was reported as delivered")
	}
}
