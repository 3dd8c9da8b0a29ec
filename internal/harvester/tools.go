package harvester

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/delivery"
	"github.com/defenderharvester/defenderharvester/internal/pipeline"
	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/state"
)

// ToolOptions are what the state tools need to build an output.
type ToolOptions struct {
	Logger *slog.Logger
	Now    func() time.Time
	Getenv func(string) string
	Stdout io.Writer // for the stdout output
}

func (o ToolOptions) withDefaults() ToolOptions {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Getenv == nil {
		o.Getenv = func(string) string { return "" }
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	return o
}

// startOutput builds the output name of cfg (as a run would) and starts it.
func startOutput(ctx context.Context, cfg *config.Config, name string, o ToolOptions) (sink.Sink, error) {
	if err := validOutput(cfg, name); err != nil {
		return nil, err
	}
	net, err := NewNet(cfg, nil, o.Logger)
	if err != nil {
		return nil, err
	}
	sinks, err := buildSinks(cfg, Request{Outputs: []string{name}, Logger: o.Logger, Now: o.Now, Stdout: o.Stdout, Getenv: o.Getenv}, net.Transport)
	if err != nil {
		return nil, err
	}
	s := sinks[0]
	if err := s.Start(ctx); err != nil {
		shutdown(sinks, o.Logger)
		return nil, fmt.Errorf("output %s cannot start: %w", name, err)
	}
	return s, nil
}

// SpoolRetry is what RetrySpool did.
type SpoolRetry struct {
	Output string
	Sent   int // records delivered and removed from the spool
	Left   int // records still spooled
}

// RetrySpool builds the output of cfg, starts it, sends it what is
// spooled for it in store (pipeline.DrainSpool: oldest first, each
// batch bounded by spool_after, removed once accepted), and shuts it
// down. On a failure the rest stays spooled and the error says why.
func RetrySpool(ctx context.Context, cfg *config.Config, store *state.Store, output string, o ToolOptions) (SpoolRetry, error) {
	o = o.withDefaults()
	res := SpoolRetry{Output: output}
	if err := validOutput(cfg, output); err != nil {
		if n := spooled(store, output); n > 0 {
			err = fmt.Errorf("%w; its %d spooled record(s) can only be dropped (state spool purge %s)", err, n, output)
		}
		return res, err
	}
	if res.Left = spooled(store, output); res.Left == 0 {
		return res, nil
	}
	s, err := startOutput(ctx, cfg, output, o)
	if err != nil {
		return res, err
	}
	res.Sent, err = pipeline.DrainSpool(ctx, store, s, cfg.SpoolAfter.D())
	if serr := shutdown([]sink.Sink{s}, o.Logger); err == nil {
		err = serr
	}
	res.Left = spooled(store, output)
	return res, err
}

func spooled(store *state.Store, output string) int {
	infos, _ := store.Spools()
	for _, in := range infos {
		if in.Output == output {
			return in.Records
		}
	}
	return 0
}

// DeadLetterRetry is what RetryDeadLetters did with one file.
type DeadLetterRetry struct {
	Output string
	File   string // where the file was found
	// Records were read from it and sent; Sent of them the output
	// accepted, DeadLetteredAgain it refused again for their own content
	// (it put them in a new dead-letter file, as in a run).
	Records, Sent, DeadLetteredAgain int
	// Kept lines cannot be sent as they are (their payload was not valid
	// JSON, or the line is unreadable); they were copied, unchanged, to
	// KeptIn, a dead-letter file of the output.
	Kept   int
	KeptIn string
	// MovedTo is where the file went once every line was dealt with
	// (<dir>/retried/…); "" when it was not finished.
	MovedTo string
	Err     error
}

// Dead-letter retries send at most this much at once.
const (
	retryBatchRecords = 500
	retryBatchBytes   = 4 << 20
)

// RetryDeadLetters sends the dead-lettered records of the outputs of cfg
// (all when outputs is empty) again through those outputs.
//
// Every file is first moved to <dir>/retrying/ (so the records an output
// refuses again, which it writes to a new dead-letter file, are never
// read back in the same retry), then read in order and sent in batches
// of consecutive lines of one table. After each batch the position
// reached is saved next to the file (<file>.offset), so a retry that
// stops — the output fails, the process is killed — resumes there next
// time: nothing is lost, and at most the batch in flight is sent twice.
// A file is moved to <dir>/retried/ only once every line in it was
// accepted, dead-lettered again by the output, or (when it cannot be
// sent) copied back to the dead letters. An output that fails stops its
// own retry; the others carry on.
func RetryDeadLetters(ctx context.Context, cfg *config.Config, outputs []string, o ToolOptions) ([]DeadLetterRetry, error) {
	o = o.withDefaults()
	if len(outputs) == 0 {
		var err error
		if outputs, err = OutputNames(cfg); err != nil {
			return nil, err
		}
	}
	for _, name := range outputs {
		if err := validOutput(cfg, name); err != nil {
			return nil, err
		}
	}
	var out []DeadLetterRetry
	var errs []error
	for _, name := range outputs {
		res, err := retryOutput(ctx, cfg, name, o)
		out = append(out, res...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

func retryOutput(ctx context.Context, cfg *config.Config, name string, o ToolOptions) ([]DeadLetterRetry, error) {
	dir, err := DeadLetterDir(cfg, name)
	if err != nil {
		return nil, err
	}
	files, err := DeadLetterFiles(dir, name)
	if err != nil || len(files) == 0 {
		return nil, err
	}
	s, err := startOutput(ctx, cfg, name, o)
	if err != nil {
		return nil, err
	}
	defer shutdown([]sink.Sink{s}, o.Logger)
	retrying := filepath.Join(dir, RetryingDir)
	if err := os.MkdirAll(retrying, 0o700); err != nil {
		return nil, fmt.Errorf("output %s: cannot create %s: %w", name, retrying, err)
	}
	// Claim every file first: what the output dead-letters again during
	// this retry goes to a new file that is not in the list.
	var work []DeadLetterRetry
	for _, f := range files {
		if f.Retrying {
			work = append(work, DeadLetterRetry{Output: name, File: f.Path})
			continue
		}
		to := freeName(retrying, filepath.Base(f.Path))
		if err := os.Rename(f.Path, to); err != nil {
			return work, fmt.Errorf("output %s: cannot move %s to %s: %w", name, f.Path, retrying, err)
		}
		work = append(work, DeadLetterRetry{Output: name, File: f.Path})
		work[len(work)-1].File = to
	}
	syncDir(retrying)
	syncDir(dir)
	for i := range work {
		retryFile(ctx, s, dir, &work[i])
		if work[i].Err != nil {
			return work[:i+1], fmt.Errorf("output %s: %s: %w", name, work[i].File, work[i].Err)
		}
	}
	return work, nil
}

// retryFile sends one claimed file (res.File, in retrying/) from its
// saved position on, and moves it to retried/ when done.
func retryFile(ctx context.Context, s sink.Sink, dir string, res *DeadLetterRetry) {
	path := res.File
	offPath := path + ".offset"
	pos, err := readOffset(offPath)
	if err != nil {
		res.Err = err
		return
	}
	f, err := os.Open(path)
	if err != nil {
		res.Err = err
		return
	}
	defer f.Close()
	if _, err := f.Seek(pos, io.SeekStart); err != nil {
		res.Err = err
		return
	}
	br := bufio.NewReaderSize(f, 64<<10)
	var batch []record.Record
	var table string
	size := 0
	// flush sends the batch and saves the position it reached.
	flush := func(upTo int64) error {
		if len(batch) > 0 {
			before := deadLettered(s)
			if err := s.Write(ctx, table, batch); err != nil {
				return err
			}
			again := int(deadLettered(s) - before)
			res.Records += len(batch)
			res.Sent += len(batch) - again
			res.DeadLetteredAgain += again
			batch, size = nil, 0
		}
		return writeOffset(offPath, upTo)
	}
	for {
		line, rerr := br.ReadBytes('\n')
		if rerr != nil && rerr != io.EOF {
			res.Err = rerr
			return
		}
		start := pos
		pos += int64(len(line))
		if t := bytes.TrimSpace(line); len(t) > 0 {
			rec, perr := rebuild(t)
			switch {
			case perr != nil:
				// Kept as it is: after what came before, then saved at once.
				if err := flush(start); err != nil {
					res.Err = err
					return
				}
				res.KeptIn = filepath.Join(dir, filepath.Base(path))
				if err := appendLine(res.KeptIn, t); err != nil {
					res.Err = err
					return
				}
				res.Kept++
				if err := writeOffset(offPath, pos); err != nil {
					res.Err = err
					return
				}
			default:
				if len(batch) > 0 && (rec.Table != table || len(batch) >= retryBatchRecords || size+len(t) > retryBatchBytes) {
					if err := flush(start); err != nil {
						res.Err = err
						return
					}
				}
				table = rec.Table
				batch = append(batch, rec)
				size += len(t)
			}
		}
		if rerr == io.EOF {
			break
		}
	}
	if err := flush(pos); err != nil {
		res.Err = err
		return
	}
	retried := filepath.Join(dir, RetriedDir)
	if err := os.MkdirAll(retried, 0o700); err != nil {
		res.Err = err
		return
	}
	to := freeName(retried, filepath.Base(path))
	if err := os.Rename(path, to); err != nil {
		res.Err = err
		return
	}
	syncDir(retried)
	os.Remove(offPath) // after the move: a stale offset never meets a new file
	res.MovedTo = to
}

func rebuild(line []byte) (record.Record, error) {
	l, err := delivery.ParseDeadLetterLine(line)
	if err != nil {
		return record.Record{}, err
	}
	return l.Rebuild()
}

func deadLettered(s sink.Sink) int64 {
	if r, ok := s.(sink.StatsReporter); ok {
		return r.Stats().DeadLettered
	}
	return 0
}

// freeName is dir/base, or dir/<base>.<n>.jsonl when that (or its saved
// position) is taken.
func freeName(dir, base string) string {
	stem := strings.TrimSuffix(base, ".jsonl")
	for i := 1; ; i++ {
		name := base
		if i > 1 {
			name = fmt.Sprintf("%s.%d.jsonl", stem, i)
		}
		p := filepath.Join(dir, name)
		_, err1 := os.Lstat(p)
		_, err2 := os.Lstat(p + ".offset")
		if errors.Is(err1, os.ErrNotExist) && errors.Is(err2, os.ErrNotExist) {
			return p
		}
	}
}

func readOffset(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s is unreadable (%q); remove it to send the whole file again", path, b)
	}
	return n, nil
}

// writeOffset saves the position durably (temporary file, fsync, rename).
func writeOffset(path string, n int64) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strconv.FormatInt(n, 10) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("saving the retry position %s: %w", path, err)
	}
	return nil
}

// appendLine appends line to a dead-letter file (0600) and fsyncs it.
func appendLine(path string, line []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(bytes.Clone(line), '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// DeadLetterSummary lists each output's dead-letter files (for
// `deadletters list`), all outputs when outputs is empty.
func DeadLetterSummary(cfg *config.Config, outputs []string) ([]OutputState, error) {
	if len(outputs) == 0 {
		var err error
		if outputs, err = OutputNames(cfg); err != nil {
			return nil, err
		}
	}
	for _, n := range outputs {
		if err := validOutput(cfg, n); err != nil {
			return nil, err
		}
	}
	out := outputStates(cfg, outputs, nil)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Output < out[j].Output })
	return out, nil
}
