// Package file is the sink that appends records as JSON lines to one file
// per table and day, fsync'd before a batch is acknowledged.
package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/sink"
)

// Name is the output's config key.
const Name = "files"

// Defaults of Config.
const (
	DefaultDir         = "./out"
	DefaultRotateBytes = 100 << 20
	DefaultFileMode    = "0600"
)

func init() {
	sink.Register(sink.NewFactory(Name,
		"JSON lines files, one per table and day (<dir>/<Table>-<YYYYMMDD>.jsonl), fsync'd per batch",
		DefaultConfig, New))
}

// Config are the file output's settings.
type Config struct {
	// Dir receives the files; created 0700 when missing.
	Dir string `yaml:"dir"`
	// RotateBytes starts a new numbered file once the current one would
	// grow past this size. A single batch is never split, so a file can
	// exceed it by at most one batch.
	RotateBytes int64 `yaml:"rotate_bytes"`
	// RotateDaily starts a new file when the UTC date changes. When false
	// the newest file of a table is continued until it reaches RotateBytes.
	RotateDaily bool `yaml:"rotate_daily"`
	// FileMode of new files: "0600" (default) or "0640" (group-readable,
	// e.g. for a log shipper running under a shared group).
	FileMode string `yaml:"file_mode"`
}

// DefaultConfig returns the settings used when the config file says nothing.
func DefaultConfig() *Config {
	return &Config{Dir: DefaultDir, RotateBytes: DefaultRotateBytes, RotateDaily: true, FileMode: DefaultFileMode}
}

// SetDir overrides the directory (the --out flag).
func (c *Config) SetDir(dir string) { c.Dir = dir }

// ForTenant implements sink.TenantScoper: in a config with tenants each
// tenant writes into <dir>/<tenant>/ (a files output repairs and rotates
// the files of its folder, which only one writer may do).
func (c *Config) ForTenant(name string) { c.Dir = filepath.Join(c.Dir, name) }

// Sink is the file output.
type Sink struct {
	name        string // instance name
	dir         string
	rotateBytes int64
	daily       bool
	mode        os.FileMode
	log         *slog.Logger
	now         func() time.Time

	mu      sync.Mutex
	started bool
	closed  bool
	tables  map[string]*tableFile
}

// tableFile is the open file of one table. Its mutex serialises writers of
// that table; other tables proceed in parallel.
type tableFile struct {
	mu     sync.Mutex
	closed bool
	f      *os.File
	day    string // YYYYMMDD of the open file's name
	seq    int    // 0 for <T>-<day>.jsonl, n for <T>-<day>.<n>.jsonl
	size   int64
	buf    []byte
}

var tableRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$`)

// fileRe matches the files this sink writes: <Table>-<YYYYMMDD>[.<n>].jsonl.
var fileRe = regexp.MustCompile(`^([A-Za-z0-9_][A-Za-z0-9_-]{0,127})-(\d{8})(?:\.(\d{1,9}))?\.jsonl$`)

// Validate checks the settings, so a bad value is a config error before
// any work. Messages name the key without the outputs.files. prefix (the
// caller adds it).
func (c *Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.Dir) == "" {
		errs = append(errs, errors.New("dir is empty: set it to the directory that should receive the .jsonl files"))
	}
	if c.RotateBytes <= 0 {
		errs = append(errs, fmt.Errorf("rotate_bytes is %d: it must be a positive number of bytes (default %d)", c.RotateBytes, DefaultRotateBytes))
	}
	if _, err := fileMode(c.FileMode); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ResolvePaths implements config.PathResolver: dir is relative to the
// config file's folder.
func (c *Config) ResolvePaths(resolve func(string) string) {
	if c.Dir != "" {
		c.Dir = resolve(c.Dir)
	}
}

func fileMode(s string) (os.FileMode, error) {
	switch s {
	case "", "0600", "600":
		return 0o600, nil
	case "0640", "640":
		return 0o640, nil
	}
	return 0, fmt.Errorf("file_mode %q is not allowed; use \"0600\" (owner only) or \"0640\" (owner and group)", s)
}

// New builds a file sink; nothing touches the disk before Start.
func New(deps sink.Deps, cfg Config) (*Sink, error) {
	deps = deps.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	mode, _ := fileMode(cfg.FileMode) // checked by Validate
	return &Sink{
		name: deps.NameOr(Name),
		dir:  cfg.Dir, rotateBytes: cfg.RotateBytes, daily: cfg.RotateDaily, mode: mode,
		log: deps.Logger.With("output", deps.NameOr(Name)), now: deps.Now, tables: map[string]*tableFile{},
	}, nil
}

// Name implements sink.Sink.
func (s *Sink) Name() string { return s.name }

// Start creates the directory and cuts any torn last line left by a crash
// (it was never acknowledged, so the pipeline sends it again).
func (s *Sink) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("file output is shut down and cannot be restarted; build a new one")
	}
	if s.started {
		return nil
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("cannot create output directory %s: %w; check its parent's permissions", s.dir, err)
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("cannot list output directory %s: %w", s.dir, err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !e.Type().IsRegular() || !fileRe.MatchString(e.Name()) {
			continue
		}
		f, err := os.OpenFile(filepath.Join(s.dir, e.Name()), os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("cannot open %s to check its last line: %w", filepath.Join(s.dir, e.Name()), err)
		}
		_, err = s.repair(f)
		f.Close()
		if err != nil {
			return err
		}
	}
	s.started = true
	return nil
}

var errClosed = errors.New("file output is shut down; no more records can be written")

// Write appends every record as one line, fsyncs, and only then returns
// nil. A batch is all or nothing: if encoding or writing fails the file is
// cut back to where it was.
func (s *Sink) Write(ctx context.Context, table string, recs []record.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !tableRe.MatchString(table) {
		return fmt.Errorf("table name %q cannot be used as a file name (letters, digits, '_' and '-' only)", table)
	}
	if len(recs) == 0 {
		return nil
	}
	s.mu.Lock()
	if !s.started || s.closed {
		s.mu.Unlock()
		if s.closed {
			return errClosed
		}
		return errors.New("file output used before Start")
	}
	tf := s.tables[table]
	if tf == nil {
		tf = &tableFile{}
		s.tables[table] = tf
	}
	s.mu.Unlock()

	tf.mu.Lock()
	defer tf.mu.Unlock()
	if tf.closed {
		return errClosed
	}
	buf := tf.buf[:0]
	for i := range recs {
		var err error
		if buf, err = recs[i].AppendJSON(buf); err != nil {
			return fmt.Errorf("table %s: %w", table, err)
		}
		buf = append(buf, '\n')
	}
	defer func() {
		if cap(buf) <= 8<<20 { // keep the buffer unless one huge batch inflated it
			tf.buf = buf[:0]
		}
	}()

	if err := s.prepare(table, tf, int64(len(buf))); err != nil {
		return err
	}
	name := tf.f.Name()
	if _, err := tf.f.Write(buf); err != nil {
		s.rollback(tf)
		return fmt.Errorf("writing %s: %w; the batch will be retried", name, err)
	}
	if err := tf.f.Sync(); err != nil {
		s.rollback(tf)
		return fmt.Errorf("syncing %s to disk: %w; the batch will be retried", name, err)
	}
	tf.size += int64(len(buf))
	return nil
}

// prepare makes tf.f the file the next n bytes go to: the current one, a
// new day's file, or the next numbered file after size rotation.
func (s *Sink) prepare(table string, tf *tableFile, n int64) error {
	day := s.now().UTC().Format("20060102")
	if tf.f != nil && s.daily && tf.day != day {
		s.closeFile(tf)
	}
	if tf.f == nil {
		if err := s.openLatest(table, tf, day); err != nil {
			return err
		}
	}
	if tf.size > 0 && tf.size+n > s.rotateBytes {
		next := 0 // a new file is named after the write date
		if tf.day == day {
			next = tf.seq + 1
		}
		s.closeFile(tf)
		if err := s.create(table, tf, day, next); err != nil {
			return err
		}
	}
	return nil
}

// openLatest continues the newest existing file of the table (of today
// when rotating daily), repairing a torn tail, or creates a new one.
func (s *Sink) openLatest(table string, tf *tableFile, day string) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("cannot list output directory %s: %w", s.dir, err)
	}
	bestDay, bestSeq, found := "", -1, false
	for _, e := range entries {
		m := fileRe.FindStringSubmatch(e.Name())
		if m == nil || m[1] != table || !e.Type().IsRegular() {
			continue
		}
		if s.daily && m[2] != day {
			continue
		}
		seq := 0
		if m[3] != "" {
			seq, _ = strconv.Atoi(m[3])
		}
		if !found || m[2] > bestDay || (m[2] == bestDay && seq > bestSeq) {
			bestDay, bestSeq, found = m[2], seq, true
		}
	}
	if !found {
		return s.create(table, tf, day, 0)
	}
	path := filepath.Join(s.dir, fileName(table, bestDay, bestSeq))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("cannot open %s for appending: %w", path, err)
	}
	size, err := s.repair(f)
	if err != nil {
		f.Close()
		return err
	}
	tf.f, tf.day, tf.seq, tf.size = f, bestDay, bestSeq, size
	return nil
}

// create makes a new file (never overwriting one: a name taken by a file
// another process left there moves on to the next number) and fsyncs the
// directory so the file survives a crash.
func (s *Sink) create(table string, tf *tableFile, day string, seq int) error {
	for ; ; seq++ {
		path := filepath.Join(s.dir, fileName(table, day, seq))
		f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL, s.mode)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("cannot create %s: %w; check that the output directory is writable", path, err)
		}
		if err := syncDir(s.dir); err != nil {
			f.Close()
			return err
		}
		tf.f, tf.day, tf.seq, tf.size = f, day, seq, 0
		return nil
	}
}

func fileName(table, day string, seq int) string {
	if seq == 0 {
		return table + "-" + day + ".jsonl"
	}
	return table + "-" + day + "." + strconv.Itoa(seq) + ".jsonl"
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("cannot open directory %s to sync it: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("cannot sync directory %s: %w", dir, err)
	}
	return nil
}

// repair cuts the file back to its last newline if a crash left a partial
// line, and returns the resulting size.
func (s *Sink) repair(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("cannot stat %s: %w", f.Name(), err)
	}
	end, err := lastLineEnd(f, st.Size())
	if err != nil {
		return 0, fmt.Errorf("cannot read the end of %s: %w", f.Name(), err)
	}
	if end == st.Size() {
		return end, nil
	}
	if err := f.Truncate(end); err != nil {
		return 0, fmt.Errorf("cannot cut the torn last line of %s: %w; remove the partial line by hand", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("cannot sync %s: %w", f.Name(), err)
	}
	s.log.Warn("cut a partial last line left by an interrupted write; those records were not acknowledged and will be sent again",
		"file", f.Name(), "bytes_removed", st.Size()-end)
	return end, nil
}

// lastLineEnd returns the offset just after the last '\n' in the first
// size bytes of r (0 when there is none).
func lastLineEnd(r io.ReaderAt, size int64) (int64, error) {
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	for end := size; end > 0; {
		start := max(end-chunk, 0)
		b := buf[:end-start]
		if n, err := r.ReadAt(b, start); n < len(b) {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // the file shrank under us
			}
			return 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] == '\n' {
				return start + int64(i) + 1, nil
			}
		}
		end = start
	}
	return 0, nil
}

// rollback cuts a failed write back to the acknowledged size and drops
// the handle, so the next Write reopens (and re-checks) the file.
func (s *Sink) rollback(tf *tableFile) {
	if err := tf.f.Truncate(tf.size); err != nil {
		s.log.Warn("cannot cut back a failed write; the partial line will be removed on the next start", "file", tf.f.Name(), "err", err)
	}
	s.closeFile(tf)
}

func (s *Sink) closeFile(tf *tableFile) {
	if tf.f == nil {
		return
	}
	if err := tf.f.Close(); err != nil {
		s.log.Warn("closing output file failed", "file", tf.f.Name(), "err", err)
	}
	tf.f = nil
}

// Shutdown closes every file. Every acknowledged batch is already synced.
func (s *Sink) Shutdown(context.Context) error {
	s.mu.Lock()
	s.closed = true
	tables := make([]*tableFile, 0, len(s.tables))
	for _, tf := range s.tables {
		tables = append(tables, tf)
	}
	s.mu.Unlock()
	var errs []error
	for _, tf := range tables {
		tf.mu.Lock()
		tf.closed = true
		if tf.f != nil {
			if err := tf.f.Close(); err != nil {
				errs = append(errs, fmt.Errorf("closing %s: %w", tf.f.Name(), err))
			}
			tf.f = nil
		}
		tf.mu.Unlock()
	}
	return errors.Join(errs...)
}
