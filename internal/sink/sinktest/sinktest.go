// Package sinktest holds the conformance suite every sink must pass and
// helpers to read JSONL output back into records.
package sinktest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/sink"
)

// Conformance runs the behaviour every sink promises to the pipeline.
// newSink builds a fresh sink for one subtest and a function that reads
// back everything the sink has durably stored (called after Shutdown).
func Conformance(t *testing.T, newSink func(t *testing.T) (sink.Sink, func() []record.Record)) {
	t.Run("ShutdownIsIdempotentAndSafeWithoutStart", func(t *testing.T) {
		s, _ := newSink(t)
		if s.Name() == "" {
			t.Error("Name() is empty")
		}
		ctx := t.Context()
		if err := s.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown without Start: %v", err)
		}
		if err := s.Shutdown(ctx); err != nil {
			t.Fatalf("second Shutdown: %v", err)
		}
	})

	t.Run("WriteThenReadBackExactlyOnce", func(t *testing.T) {
		s, readBack := newSink(t)
		ctx := t.Context()
		mustStart(t, s)
		recs := Records("MdeActionCenter", 0, 20)
		recs[1].Raw = json.RawMessage(`[1,2,3]`)
		recs[2].Raw = json.RawMessage(`{}`)
		recs[3].Raw = json.RawMessage("{\n  \"Pretty\": \"printed\",\n  \"Nested\": {\"a\": [1, 2]}\n}")
		recs[4].Extra = []record.Field{{Key: "ChangeType", Value: json.RawMessage(`"Modified"`)}, {Key: "ChangedFields", Value: json.RawMessage(`["a","b"]`)}}
		recs[5].Raw = json.RawMessage(`{"Text":"line1\nline2 \u2028 é \"quoted\""}`)
		// Payloads the pipeline checked (RawValid) are not scanned again
		// and must come out the same.
		for _, i := range []int{1, 3, 5, 7} {
			recs[i].RawValid = true
		}
		if err := s.Write(ctx, "MdeActionCenter", recs); err != nil {
			t.Fatalf("Write: %v", err)
		}
		if err := s.Write(ctx, "MdeActionCenter", nil); err != nil {
			t.Fatalf("Write of an empty batch: %v", err)
		}
		mustShutdown(t, s)
		AssertSame(t, recs, readBack())
	})

	t.Run("ConcurrentWritesToSeveralTables", func(t *testing.T) {
		s, readBack := newSink(t)
		ctx := t.Context()
		mustStart(t, s)
		tables := []string{"MdeActionCenter", "MdeMachineActions", "MdeCustomDetectionState"}
		const writers, batches, per = 6, 8, 40
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			want []record.Record
			errs []error
		)
		for w := range writers {
			wg.Go(func() {
				for b := range batches {
					table := tables[(w+b)%len(tables)]
					recs := Records(table, (w*batches+b)*per, per)
					err := s.Write(ctx, table, recs)
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
					} else {
						want = append(want, recs...)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			t.Errorf("concurrent Write: %v", err)
		}
		mustShutdown(t, s)
		AssertSame(t, want, readBack())
	})

	t.Run("BatchWithInvalidPayloadIsRejectedWhole", func(t *testing.T) {
		s, readBack := newSink(t)
		ctx := t.Context()
		mustStart(t, s)
		good := Records("MdeMachineActions", 0, 3)
		if err := s.Write(ctx, "MdeMachineActions", good); err != nil {
			t.Fatalf("Write: %v", err)
		}
		bad := Records("MdeMachineActions", 100, 3)
		bad[0].RawValid = true // checked and fine: does not excuse the others
		bad[2].Raw = json.RawMessage(`{"truncated":`)
		if err := s.Write(ctx, "MdeMachineActions", bad); err == nil {
			t.Fatal("Write accepted a record whose payload is not JSON")
		}
		bad[2].Raw = json.RawMessage(`{}`)
		bad[2].RawValid = true
		bad[2].Extra = []record.Field{{Key: "ChangeType", Value: json.RawMessage(`"Modif`)}}
		if err := s.Write(ctx, "MdeMachineActions", bad); err == nil {
			t.Fatal("Write accepted a record whose extra field is not JSON (its payload marked valid)")
		}
		mustShutdown(t, s)
		AssertSame(t, good, readBack())
	})

	t.Run("WriteAfterShutdownFails", func(t *testing.T) {
		s, readBack := newSink(t)
		mustStart(t, s)
		mustShutdown(t, s)
		if err := s.Write(t.Context(), "MdeActionCenter", Records("MdeActionCenter", 0, 1)); err == nil {
			t.Fatal("Write after Shutdown reported success")
		}
		AssertSame(t, nil, readBack())
	})
}

func mustStart(t *testing.T, s sink.Sink) {
	t.Helper()
	if err := s.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
}

func mustShutdown(t *testing.T, s sink.Sink) {
	t.Helper()
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// Records makes n distinct records for table with ids first..first+n-1.
func Records(table string, first, n int) []record.Record {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	out := make([]record.Record, n)
	for i := range out {
		k := first + i
		out[i] = record.Record{
			Tenant:      "00000000-0000-0000-0000-00000000000a",
			Source:      "test",
			Table:       table,
			ID:          fmt.Sprintf("%s-%06d", table, k),
			Time:        base.Add(time.Duration(k) * time.Second),
			HarvestedAt: base.Add(time.Hour),
			Raw:         json.RawMessage(fmt.Sprintf(`{"Seq":%d,"Table":%q,"Pad":"%0100d"}`, k, table, k)),
		}
	}
	return out
}

// DecodeLine turns one output line back into a record. Extra fields and
// payload fields cannot be told apart on the wire, so every non-standard
// field lands in Raw (as an object); compare with AssertSame.
func DecodeLine(table string, line []byte) (record.Record, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return record.Record{}, fmt.Errorf("line is not a JSON object: %w (%.80q)", err, line)
	}
	r := record.Record{Table: table}
	str := func(k string, dst *string) error {
		v, ok := m[k]
		if !ok {
			return fmt.Errorf("line lacks %s: %.80q", k, line)
		}
		delete(m, k)
		return json.Unmarshal(v, dst)
	}
	tm := func(k string, dst *time.Time) error {
		var s string
		if err := str(k, &s); err != nil {
			return err
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		*dst = t
		return err
	}
	for _, err := range []error{
		str("TenantId", &r.Tenant), str("SourceName", &r.Source), str("RecordId", &r.ID),
		tm("TimeGenerated", &r.Time), tm("HarvestedAt", &r.HarvestedAt),
	} {
		if err != nil {
			return record.Record{}, err
		}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return record.Record{}, err
	}
	r.Raw = raw
	return r, nil
}

// DecodeLines reads JSONL from rd. A line without its newline (a torn tail)
// is an error: sinks must never leave one.
func DecodeLines(table string, rd io.Reader) ([]record.Record, error) {
	var out []record.Record
	br := bufio.NewReader(rd)
	for {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			if len(line) > 0 {
				return out, fmt.Errorf("unterminated last line (%d bytes)", len(line))
			}
			return out, nil
		}
		if err != nil {
			return out, err
		}
		r, err := DecodeLine(table, bytes.TrimSuffix(line, []byte("\n")))
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
}

// Canonical is what a record looks like on the wire, decoded: two records
// that serialise to the same fields compare equal.
func Canonical(r record.Record) (map[string]any, error) {
	b, err := r.AppendJSON(nil)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// AssertSame checks that got holds exactly the records of want (by
// RecordId, each once, same wire content), in any order.
func AssertSame(t testing.TB, want, got []record.Record) {
	t.Helper()
	byID := map[string]record.Record{}
	for _, r := range want {
		byID[r.ID] = r
	}
	seen := map[string]int{}
	for _, g := range got {
		seen[g.ID]++
		if seen[g.ID] > 1 {
			t.Errorf("record %s stored %d times", g.ID, seen[g.ID])
			continue
		}
		w, ok := byID[g.ID]
		if !ok {
			t.Errorf("record %s stored but never acknowledged", g.ID)
			continue
		}
		wc, err1 := Canonical(w)
		gc, err2 := Canonical(g)
		if err1 != nil || err2 != nil {
			t.Errorf("record %s: cannot compare: %v %v", g.ID, err1, err2)
			continue
		}
		if !reflect.DeepEqual(wc, gc) {
			t.Errorf("record %s changed on the way:\nwant %v\ngot  %v", g.ID, wc, gc)
		}
	}
	for id := range byID {
		if seen[id] == 0 {
			t.Errorf("record %s acknowledged but not stored", id)
		}
	}
}
