package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/state"
)

// Change types of snapshot records.
const (
	Initial  = "Initial"
	Added    = "Added"
	Modified = "Modified"
	Removed  = "Removed"
)

type snapItem struct {
	raw  json.RawMessage
	hash string
}

func (p *Pipeline) runSnapshot(ctx context.Context, tenant string, src source.SnapshotSource, res *Result) error {
	name, table := src.Name(), src.Table()

	// Collect the whole snapshot first: removals can only be computed
	// from a complete one, and snapshots are small.
	var (
		mu    sync.Mutex
		items = map[string]snapItem{}
		open  = true
	)
	emit := func(ctx context.Context, it source.Item) error {
		mu.Lock()
		defer mu.Unlock()
		if err := ctx.Err(); err != nil {
			return err
		}
		if !open {
			return errors.New("emit called after Snapshot returned (a bug in the source)")
		}
		res.Fetched++
		if it.Key == "" {
			return errors.New("emitted a snapshot item without a key (a bug in the source)")
		}
		if _, dup := items[it.Key]; dup {
			return fmt.Errorf("the snapshot holds key %q twice; refusing to compare an ambiguous snapshot", it.Key)
		}
		if err := validJSON(it.Raw, fmt.Sprintf("item %q", it.Key)); err != nil {
			return err
		}
		items[it.Key] = snapItem{raw: it.Raw, hash: ContentHash(it.Raw)}
		return nil
	}
	err := src.Snapshot(ctx, emit)
	mu.Lock()
	open = false
	mu.Unlock()
	// A snapshot read in part (some endpoints failed) still counts for the
	// parts that were read; the failed parts' stored items are kept as
	// they are. Any other failure delivers and stores nothing.
	var partial *source.PartialError
	if err != nil && (!errors.As(err, &partial) || ctx.Err() != nil) {
		return fmt.Errorf("snapshot not taken, nothing delivered or stored: %w", err)
	}
	notRead := func(key string) bool { return partial != nil && partial.Owns(key) }

	prev, prevAt, hadSnapshot, err := p.opts.Store.Snapshot(tenant, name)
	if err != nil {
		return err
	}
	now := p.opts.Now().UTC()
	res.Changes = map[string]int{}
	var recs []record.Record
	// The id names the change, not only its result: the state before it
	// (previous hash, previous snapshot's time) is part of it, so a setting
	// switched off, on and off again gives two switch-off records with
	// different ids, while a retried delivery of one change keeps its id.
	prevStamp := ""
	if hadSnapshot {
		prevStamp = prevAt.UTC().Format(time.RFC3339Nano)
	}
	var attr source.Attribution
	if a, ok := src.(source.Attributed); ok {
		attr = a.Attribution()
	}
	var combined []record.Record
	change := func(key, kind, hash, prevHash string, raw, oldRaw json.RawMessage) {
		id := record.StableID(name, key, kind, hash, prevHash, prevStamp)
		c := changeOf{dataSet: table, key: key, kind: kind, at: now, prevAt: prevAt, hadPrev: hadSnapshot}
		if kind == Modified {
			c.fields = DiffFields(oldRaw, raw)
			c.changed = ChangedFields(oldRaw, raw)
		}
		c.by, c.byAt, c.attributed = attribution(attr, kind, oldRaw, raw)
		recs = append(recs, record.Record{
			Tenant: tenant, Source: name, Table: table, ID: id,
			Time: now, HarvestedAt: now, Raw: raw, Extra: c.extra(),
		})
		if kind != Initial {
			combined = append(combined, c.rows(tenant, name, id, raw)...)
		}
		res.Changes[kind]++
	}
	for _, key := range sortedKeys(items) {
		cur := items[key]
		old, existed := prev[key]
		switch {
		case !hadSnapshot:
			change(key, Initial, cur.hash, "", cur.raw, nil)
		case !existed:
			change(key, Added, cur.hash, "", cur.raw, nil)
		case old.Hash != cur.hash:
			change(key, Modified, cur.hash, old.Hash, cur.raw, old.Raw)
		}
	}
	kept := 0
	for _, key := range sortedKeys(prev) {
		if _, still := items[key]; still {
			continue
		}
		old := prev[key]
		if notRead(key) {
			items[key] = snapItem{raw: old.Raw, hash: old.Hash} // unknown, not gone
			kept++
			continue
		}
		change(key, Removed, old.Hash, old.Hash, old.Raw, old.Raw)
	}

	// Deliver in bounded batches, the data set's table first, then the
	// combined changes table; the stored snapshot is replaced only once
	// every sink accepted every change.
	for _, out := range []struct {
		table string
		recs  []record.Record
	}{{table, recs}, {ConfigurationChangesTable, combined}} {
		if err := p.deliverAll(ctx, out.table, out.recs); err != nil {
			return fmt.Errorf("%w; the snapshot was not saved, so the changes are reported again next run", err)
		}
	}
	entries := make(map[string]state.SnapshotEntry, len(items))
	for k, it := range items {
		entries[k] = state.SnapshotEntry{Hash: it.hash, Raw: it.raw}
	}
	if err := p.opts.Store.ReplaceSnapshot(tenant, name, now, entries); err != nil {
		return fmt.Errorf("%d change records were delivered but the snapshot could not be saved (they will be reported again): %w", len(recs)+len(combined), err)
	}
	res.New, res.Cursor = len(recs)+len(combined), now
	if partial != nil && !partial.NotServed {
		return fmt.Errorf("snapshot read in part: the changes of the parts that were read are delivered, %d stored item(s) of the others are kept unchanged: %w", kept, partial)
	}
	return nil
}

// deliverAll writes recs to table in batches bounded like a run's.
func (p *Pipeline) deliverAll(ctx context.Context, table string, recs []record.Record) error {
	for start := 0; start < len(recs); {
		end, size := start, 0
		for end < len(recs) && end-start < p.opts.BatchSize && (end == start || size < p.opts.BatchBytes) {
			size += len(recs[end].Raw) + recordOverhead
			end++
		}
		if err := p.deliver(ctx, table, recs[start:end]); err != nil {
			return err
		}
		start = end
	}
	return nil
}

func quote(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string cannot fail
	return b
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// topLevel splits an object into compacted values by key; ok is false
// when raw is not a JSON object.
func topLevel(raw json.RawMessage) (map[string]string, bool) {
	var m map[string]json.RawMessage
	if firstByte(raw) != '{' || json.Unmarshal(raw, &m) != nil {
		return nil, false
	}
	out := make(map[string]string, len(m))
	var buf bytes.Buffer
	for k, v := range m {
		buf.Reset()
		if json.Compact(&buf, v) != nil {
			return nil, false
		}
		out[k] = buf.String()
	}
	return out, true
}

func firstByte(b []byte) byte {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return c
		}
	}
	return 0
}

// ContentHash identifies a snapshot item's content independent of
// whitespace and of the order of its top-level keys (APIs do not promise
// an order). Nested values compare as compacted JSON.
func ContentHash(raw json.RawMessage) string {
	h := sha256.New()
	if fields, ok := topLevel(raw); ok {
		h.Write([]byte("object\x00"))
		for _, k := range sortedKeys(fields) {
			h.Write([]byte(k))
			h.Write([]byte{0})
			h.Write([]byte(fields[k]))
			h.Write([]byte{0})
		}
	} else {
		var buf bytes.Buffer
		if json.Compact(&buf, raw) != nil {
			buf.Reset()
			buf.Write(raw)
		}
		h.Write([]byte("value\x00"))
		h.Write(buf.Bytes())
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// ChangedFields lists, sorted, the top-level keys whose values differ
// (added, removed or changed, compared as compacted JSON). When either
// side is not an object the whole value changed: ["Value"], the name it
// has in the output.
func ChangedFields(old, cur json.RawMessage) []string {
	a, okA := topLevel(old)
	b, okB := topLevel(cur)
	if !okA || !okB {
		return []string{"Value"}
	}
	changed := []string{}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			changed = append(changed, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			changed = append(changed, k)
		}
	}
	slices.Sort(changed)
	return changed
}
