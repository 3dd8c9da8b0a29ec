package delivery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// refusingDest is a destination that refuses, for their content, the
// records whose ids are in bad. With named it behaves like HEC: it keeps
// the records before the first bad one and names it (RejectedAt);
// otherwise like a service that refuses the whole request without saying
// which record (Rejected).
type refusingDest struct {
	named bool
	bad   map[string]bool

	mu       sync.Mutex
	got      map[string]int
	requests int
}

func (d *refusingDest) send(_ context.Context, req *Request) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.requests++
	if d.got == nil {
		d.got = map[string]int{}
	}
	for i, r := range req.Records {
		if !d.bad[r.ID] {
			continue
		}
		if !d.named {
			return Rejected(errors.New("400 InvalidRequest: a record does not match the stream declaration"))
		}
		for _, ok := range req.Records[:i] {
			d.got[ok.ID]++
		}
		return RejectedAt(fmt.Errorf(`400 code 6 "Invalid data format" invalid-event-number %d`, i), i)
	}
	for _, r := range req.Records {
		d.got[r.ID]++
	}
	return nil
}

func set(ids ...string) map[string]bool {
	m := map[string]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// A refusal of the request (credentials, permission, index…) is never the
// records' fault: the Write fails whatever the number of records, nothing
// is dead-lettered, and the other requests of the Write stop.
func TestRequestLevelRefusalNeverDeadLetters(t *testing.T) {
	refusals := []error{
		errors.New("HTTP 403 OperationFailed: the token does not have access to ingest data for the data collection rule"),
		errors.New(`HEC answered HTTP 403 code 1 ("Token disabled")`),
		errors.New(`HEC answered HTTP 400 code 7 ("Incorrect index")`),
	}
	for _, refusal := range refusals {
		for _, n := range []int{1, 2, 30} {
			t.Run(fmt.Sprintf("%d records: %.20s", n, refusal), func(t *testing.T) {
				var mu sync.Mutex
				calls := 0
				send := func(context.Context, *Request) error {
					mu.Lock()
					calls++
					mu.Unlock()
					return Permanent(refusal)
				}
				dl := &memDL{}
				e, err := New("sentinel", testConfig(newClock(), Config{MaxRecords: 10, Concurrency: 1}), JSONArray, encJSON, send, dl, nil)
				if err != nil {
					t.Fatal(err)
				}
				err = e.Write(context.Background(), "T", recs(n, 10))
				if err == nil {
					t.Fatal("Write returned nil although the destination refused the request: the pipeline would commit the checkpoint")
				}
				if !IsPermanent(err) || !strings.Contains(err.Error(), refusal.Error()) || !strings.Contains(err.Error(), "nothing was dead-lettered") {
					t.Errorf("error %q: want the refusal, permanent, saying nothing was dead-lettered", err)
				}
				if len(dl.ids) != 0 || e.Stats().DeadLettered != 0 {
					t.Errorf("dead-lettered %v after a request-level refusal", dl.ids)
				}
				if calls != 1 {
					t.Errorf("%d requests; a refused request must stop the Write at once", calls)
				}
			})
		}
	}
}

// HEC names the refused record (invalid-event-number N) and has indexed
// the ones before it: only that record is dead-lettered and only the
// records after it are sent again, so nothing is duplicated.
func TestRejectedAtDeadLettersTheNamedRecordOnly(t *testing.T) {
	tests := []struct {
		name string
		bad  []string
	}{
		{"one bad record in the middle", []string{"r0004"}},
		{"the first record", []string{"r0000"}},
		{"the last record", []string{"r0009"}},
		{"two bad records", []string{"r0002", "r0007"}},
		{"two adjacent bad records", []string{"r0005", "r0006"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &refusingDest{named: true, bad: set(tc.bad...)}
			dl := &memDL{}
			e, err := New("splunk", testConfig(newClock(), Config{Concurrency: 1}), Concatenated, encJSON, d.send, dl, nil)
			if err != nil {
				t.Fatal(err)
			}
			in := recs(10, 10)
			if err := e.Write(context.Background(), "T", in); err != nil {
				t.Fatalf("Write: %v", err)
			}
			for _, r := range in {
				want := 1
				if d.bad[r.ID] {
					want = 0
				}
				if d.got[r.ID] != want {
					t.Errorf("record %s reached the destination %d times, want %d", r.ID, d.got[r.ID], want)
				}
			}
			if !slices.Equal(dl.ids, tc.bad) {
				t.Errorf("dead letters %v, want %v", dl.ids, tc.bad)
			}
			st := e.Stats()
			if st.Records != int64(len(in)-len(tc.bad)) || st.DeadLettered != int64(len(tc.bad)) {
				t.Errorf("stats: %d accepted, %d dead-lettered; want %d and %d", st.Records, st.DeadLettered, len(in)-len(tc.bad), len(tc.bad))
			}
			if want := len(tc.bad) + 1; d.requests > want {
				t.Errorf("%d requests; one per refused record plus the first is enough", d.requests)
			}
			for _, reason := range dl.reasons {
				if !strings.Contains(reason, "Invalid data format") {
					t.Errorf("dead-letter reason %q lacks the service's answer", reason)
				}
			}
		})
	}
}

// A service that refuses a request for the content of its records without
// naming one: halving finds a single bad record; when records in both
// halves are refused (a schema mismatch refuses them all) the Write fails
// and nothing is dead-lettered.
func TestRejectedWithoutIndexIsolatesOneRecordOrFails(t *testing.T) {
	all := make([]string, 16)
	for i := range all {
		all[i] = fmt.Sprintf("r%04d", i)
	}
	tests := []struct {
		name     string
		bad      []string
		wantErr  bool
		wantDead []string
	}{
		{"one bad record among 16", []string{"r0011"}, false, []string{"r0011"}},
		{"the first of 16", []string{"r0000"}, false, []string{"r0000"}},
		{"two bad records in different halves", []string{"r0001", "r0012"}, true, nil},
		{"every record refused (schema mismatch)", all, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &refusingDest{bad: set(tc.bad...)}
			dl := &memDL{}
			e, err := New("sentinel", testConfig(newClock(), Config{Concurrency: 1}), JSONArray, encJSON, d.send, dl, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = e.Write(context.Background(), "T", recs(16, 10))
			if (err != nil) != tc.wantErr {
				t.Fatalf("Write error %v, want error %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "nothing was dead-lettered") {
				t.Errorf("error %q does not say nothing was dead-lettered", err)
			}
			if !slices.Equal(dl.ids, tc.wantDead) {
				t.Errorf("dead letters %v, want %v", dl.ids, tc.wantDead)
			}
			for id, n := range d.got {
				if n != 1 {
					t.Errorf("record %s reached the destination %d times", id, n)
				}
			}
			if !tc.wantErr && len(d.got) != 16-len(tc.bad) {
				t.Errorf("%d records delivered, want %d", len(d.got), 16-len(tc.bad))
			}
			if d.requests > 1+2*4 { // 2·log2(16) after the first
				t.Errorf("%d requests to isolate; want at most 9", d.requests)
			}
		})
	}
}

// hangingServer accepts connections and never answers, like a stalled
// endpoint behind a load balancer.
func hangingServer(t *testing.T) *httptest.Server {
	t.Helper()
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(func() { close(stop); srv.Close() })
	return srv
}

// A destination that accepts the connection and never answers ends the
// Write with an error naming the output and the attempt timeout, after
// max_attempts attempts, instead of hanging.
func TestAttemptTimeoutEndsAStalledRequest(t *testing.T) {
	srv := hangingServer(t)
	client := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}}
	tests := []struct {
		name     string
		classify func(error) error
	}{
		{"transport error", func(err error) error { return err }},
		// A cut request is retried even when the sender calls the error
		// permanent: it says nothing about the request.
		{"sender calls the cut permanent", Permanent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			calls := 0
			send := func(ctx context.Context, req *Request) error {
				mu.Lock()
				calls++
				mu.Unlock()
				hr, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader(string(req.Body)))
				if err != nil {
					return err
				}
				resp, err := client.Do(hr)
				if err != nil {
					return tc.classify(err)
				}
				resp.Body.Close()
				return nil
			}
			e, err := New("sentinel", testConfig(newClock(), Config{AttemptTimeout: 50 * time.Millisecond, MaxAttempts: 3}), JSONArray, encJSON, send, &memDL{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a safety net, not the subject
			defer cancel()
			err = e.Write(ctx, "T", recs(3, 10))
			if ctx.Err() != nil {
				t.Fatal("Write hung until the test's safety net")
			}
			if err == nil {
				t.Fatal("Write to a server that never answers succeeded")
			}
			for _, want := range []string{"sink sentinel", "no answer within 50ms", "attempt_timeout", "after 3 attempts"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if calls != 3 {
				t.Errorf("%d attempts, want 3 (a timeout is retried)", calls)
			}
			if IsPermanent(err) {
				t.Error("a timed-out request was reported as a permanent refusal")
			}
		})
	}
}

func TestStatsNameWhereDeadLettersGo(t *testing.T) {
	dir := t.TempDir()
	e, err := New("splunk", testConfig(newClock(), Config{}), Concatenated, encJSON,
		func(context.Context, *Request) error { return Rejected(errors.New("400 code 6")) }, NewFileDeadLetter(dir, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Write(context.Background(), "T", recs(1, 10)); err != nil {
		t.Fatal(err)
	}
	st := e.Stats()
	if want := filepath.Join(dir, "splunk-deadletter-*.jsonl"); st.DeadLetters != want {
		t.Fatalf("DeadLetters %q, want %q", st.DeadLetters, want)
	}
	files, _ := filepath.Glob(st.DeadLetters)
	if len(files) != 1 || st.DeadLettered != 1 {
		t.Fatalf("the pattern matches %v after %d dead letters; want the one file", files, st.DeadLettered)
	}
	if b, _ := os.ReadFile(files[0]); !strings.Contains(string(b), `"RecordId":"r0000"`) {
		t.Errorf("dead-letter file lacks the record: %s", b)
	}
	none, err := New("s", Config{}, JSONArray, encJSON, func(context.Context, *Request) error { return nil }, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := none.Stats().DeadLetters; got != "" {
		t.Errorf("without a store DeadLetters is %q, want empty", got)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings; nil = valid
	}{
		{"zero is the defaults", Config{}, nil},
		{"explicit values", Config{MaxBytes: 500_000, AttemptTimeout: 10 * time.Second, MaxAttempts: -1}, nil},
		{"negative attempt timeout", Config{AttemptTimeout: -time.Second}, []string{"attempt_timeout -1s is negative"}},
		{"several bad keys at once", Config{MaxRecords: -1, Concurrency: -2, Burst: -1}, []string{"max_records", "concurrency", "burst"}},
		{"backoff above the default max", Config{InitialBackoff: time.Hour}, []string{"initial_backoff 1h0m0s is longer than max_backoff 5m0s"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != (tc.want == nil) {
				t.Fatalf("Validate() = %v, want error %v", err, tc.want != nil)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if err != nil && strings.Contains(err.Error(), "delivery.") {
				t.Errorf("error %q carries a section prefix; the caller adds it", err)
			}
		})
	}
}
