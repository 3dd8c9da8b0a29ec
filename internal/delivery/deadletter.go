package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"
)

// DeadLetter keeps a record that can never be sent because of its own
// content: alone it is larger than a request may be, it cannot be
// encoded, or the destination refused that record (Rejected). Put returns
// nil only once the record is durably kept.
type DeadLetter interface {
	Put(ctx context.Context, sinkName, table string, r *record.Record, reason error) error
}

// Locator is implemented by dead-letter stores that can say where a
// sink's dead letters go, for the run summary (Stats.DeadLetters).
type Locator interface {
	Where(sinkName string) string
}

// FileDeadLetter appends dead letters as JSON lines to
// <dir>/<sink>-deadletter-<YYYYMMDD>.jsonl (UTC day), each line
// {"Sink","Table","Reason","DeadLetteredAt","Record":<record.AppendJSON>}.
// Files are 0600 in a 0700 directory and fsync'd before Put returns.
// Safe for concurrent use.
type FileDeadLetter struct {
	dir string
	now func() time.Time
	mu  sync.Mutex
}

// NewFileDeadLetter returns a dead-letter store in dir; now defaults to
// time.Now.
func NewFileDeadLetter(dir string, now func() time.Time) *FileDeadLetter {
	if now == nil {
		now = time.Now
	}
	return &FileDeadLetter{dir: dir, now: now}
}

// Where returns the files sinkName's dead letters go to, as a glob
// (<dir>/<sink>-deadletter-*.jsonl).
func (d *FileDeadLetter) Where(sinkName string) string {
	return DeadLetterGlob(d.dir, sinkName)
}

type deadLine struct {
	Sink           string
	Table          string
	Reason         string
	DeadLetteredAt string
	Record         json.RawMessage
}

// Put appends one line for r and fsyncs it.
func (d *FileDeadLetter) Put(ctx context.Context, sinkName, table string, r *record.Record, reason error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("dead-letter record %s: %w", r.ID, err)
	}
	now := d.now().UTC()
	line := deadLine{
		Sink:           sinkName,
		Table:          table,
		Reason:         "unknown",
		DeadLetteredAt: now.Format(time.RFC3339Nano),
		Record:         deadRecordJSON(r),
	}
	if reason != nil {
		line.Reason = reason.Error()
	}
	b, err := json.Marshal(line)
	if err != nil { // cannot happen: every field is a string or valid JSON
		return fmt.Errorf("dead-letter record %s: encode line: %w", r.ID, err)
	}
	b = append(b, '\n')

	name := filepath.Join(d.dir, safeName(sinkName)+"-deadletter-"+now.Format("20060102")+".jsonl")
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return fmt.Errorf("dead-letter record %s: create directory %s: %w (check the path and its permissions)", r.ID, d.dir, err)
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("dead-letter record %s: open %s: %w (check the directory's permissions and free space)", r.ID, name, err)
	}
	// A file created by someone else with a looser mode is tightened:
	// dead letters hold the full payload.
	_ = f.Chmod(0o600)
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("dead-letter record %s: write %s: %w (check free space)", r.ID, name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("dead-letter record %s: fsync %s: %w", r.ID, name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("dead-letter record %s: close %s: %w", r.ID, name, err)
	}
	return nil
}

// deadRecordJSON is the record's normal line, or, when the record cannot
// be encoded (invalid JSON payload — often the very reason it is here),
// its fields with the payload kept as a string so nothing is lost.
func deadRecordJSON(r *record.Record) json.RawMessage {
	if b, err := r.AppendJSON(nil); err == nil {
		return b
	}
	extra := make(map[string]string, len(r.Extra))
	for _, f := range r.Extra {
		extra[f.Key] = string(f.Value)
	}
	b, _ := json.Marshal(struct {
		TenantId, SourceName, RecordId string
		HarvestedAt, TimeGenerated     string
		RawText                        string
		ExtraText                      map[string]string `json:",omitempty"`
	}{r.Tenant, r.Source, r.ID, r.HarvestedAt.UTC().Format(time.RFC3339Nano), r.Time.UTC().Format(time.RFC3339Nano), string(r.Raw), extra})
	return b
}

// safeName keeps a sink name usable as a file name component.
func safeName(s string) string {
	if s == "" {
		return "sink"
	}
	return strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
			return c
		}
		return '_'
	}, s)
}
