package sentinel

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/defenderharvester/defenderharvester/internal/delivery"
	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/sink/sinktest"
)

const (
	testDCR    = "dcr-0123456789abcdef0123456789abcdef"
	testDCR2   = "dcr-fedcba9876543210fedcba9876543210"
	testToken  = "test-bearer-token-not-a-secret"
	testSecret = "s3cr3t-Value~with.symbols_42"
)

// staticCred hands out a fixed token (the Entra side is tested against
// the emulator).
type staticCred struct{}

func (staticCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: testToken, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// fakeIngest is a strict Logs Ingestion receiver.
type fakeIngest struct {
	t  testing.TB
	mu sync.Mutex
	// respond may answer instead of accepting (status != 0).
	respond func(n int, r *http.Request) (status int, hdr map[string]string, body string)
	calls   int
	stored  map[string][][]byte // stream -> records
	wire    []int               // request body sizes on the wire
	plain   []int               // decompressed sizes
	gzipped []bool
	bad     []string       // protocol violations
	discard bool           // count only (benchmarks)
	dcrs    []string       // accepted immutable ids; default testDCR
	byDCR   map[string]int // "dcr/stream" -> records
}

func (f *fakeIngest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	fail := func(format string) {
		f.bad = append(f.bad, format)
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":{"code":"BadRequest","message":"`+format+`"}}`)
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if r.Method != http.MethodPost || len(parts) != 4 || parts[0] != "dataCollectionRules" || parts[2] != "streams" {
		fail("bad method or path " + r.Method + " " + r.URL.Path)
		return
	}
	dcrs := f.dcrs
	if len(dcrs) == 0 {
		dcrs = []string{testDCR}
	}
	if !slices.Contains(dcrs, parts[1]) {
		fail("wrong dcr " + parts[1])
		return
	}
	if v := r.URL.Query().Get("api-version"); v != "2023-01-01" {
		fail("api-version " + v)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+testToken {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		fail("content-type " + ct)
		return
	}
	raw, _ := io.ReadAll(r.Body)
	f.wire = append(f.wire, len(raw))
	body := raw
	gz := r.Header.Get("Content-Encoding") == "gzip"
	f.gzipped = append(f.gzipped, gz)
	if gz {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			fail("gzip")
			return
		}
		if body, err = io.ReadAll(zr); err != nil {
			fail("gzip body")
			return
		}
	}
	f.plain = append(f.plain, len(body))
	if len(raw) > MaxRequestBytes || len(body) > MaxRequestBytes {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		_, _ = io.WriteString(w, `{"error":{"code":"ContentLengthLimitExceeded","message":"Maximum allowed content length: 1048576 bytes (1 MB)."}}`)
		return
	}
	if f.respond != nil {
		if st, hdr, msg := f.respond(f.calls, r); st != 0 {
			for k, v := range hdr {
				w.Header().Set(k, v)
			}
			w.WriteHeader(st)
			_, _ = io.WriteString(w, msg)
			return
		}
	}
	if f.discard { // benchmarks measure the sink, not this fake's parsing
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(body, &arr); err != nil {
		fail("body is not a JSON array")
		return
	}
	for _, e := range arr {
		var m map[string]any
		if json.Unmarshal(e, &m) != nil || m["TimeGenerated"] == nil {
			fail("element without TimeGenerated")
			return
		}
		f.stored[parts[3]] = append(f.stored[parts[3]], append([]byte(nil), e...))
		if f.byDCR != nil {
			f.byDCR[parts[1]+"/"+parts[3]]++
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeIngest) records(t testing.TB) []record.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bad) > 0 {
		t.Errorf("protocol violations: %v", f.bad)
	}
	var out []record.Record
	for stream, lines := range f.stored {
		for _, l := range lines {
			r, err := sinktest.DecodeLine(strings.TrimPrefix(stream, "Custom-"), l)
			if err != nil {
				t.Fatalf("stored element: %v", err)
			}
			out = append(out, r)
		}
	}
	return out
}

func testConfig(endpoint string) Config {
	c := *DefaultConfig()
	c.Endpoint = endpoint
	c.DCRImmutableID = testDCR
	c.Auth = AuthConfig{Method: AuthClientSecret, TenantID: "11111111-2222-3333-4444-555555555555", ClientID: "66666666-7777-8888-9999-000000000000"}
	c.Delivery.InitialBackoff = time.Millisecond
	c.Delivery.MaxBackoff = time.Millisecond
	return c
}

// newTestSink starts a TLS fake and a sink on it whose delivery sleeps
// are recorded instead of slept.
func newTestSink(t testing.TB, mod func(*Config), respond func(int, *http.Request) (int, map[string]string, string)) (*Sink, *fakeIngest, *[]time.Duration) {
	f := &fakeIngest{t: t, respond: respond, stored: map[string][][]byte{}}
	srv := httptest.NewTLSServer(f)
	t.Cleanup(srv.Close)
	cfg := testConfig(srv.URL)
	cfg.DeadLetterDir = t.TempDir()
	var (
		mu     sync.Mutex
		sleeps []time.Duration
	)
	cfg.Delivery.Sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		sleeps = append(sleeps, d)
		mu.Unlock()
		return ctx.Err()
	}
	if mod != nil {
		mod(&cfg)
	}
	deps := sink.Deps{Transport: srv.Client().Transport}.WithDefaults()
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	co, err := clientOptions(deps, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newWithCredential(deps, cfg, co, staticCred{}, []string{testSecret}, log)
	if err != nil {
		t.Fatal(err)
	}
	return s, f, &sleeps
}

func TestConformance(t *testing.T) {
	sinktest.Conformance(t, func(t *testing.T) (sink.Sink, func() []record.Record) {
		s, f, _ := newTestSink(t, nil, nil)
		return s, func() []record.Record { return f.records(t) }
	})
}

func bigRecords(table string, n, size int) []record.Record {
	recs := sinktest.Records(table, 0, n)
	pad := strings.Repeat("x", size)
	for i := range recs {
		recs[i].Raw = json.RawMessage(`{"Seq":` + string(rune('0'+i%10)) + `,"Pad":"` + pad + `"}`)
	}
	return recs
}

func TestRequestShape(t *testing.T) {
	tests := []struct {
		name       string
		gzip       bool
		recs       int
		size       int
		stream     map[string]string
		wantStream string
		minCalls   int
	}{
		{name: "gzip small batch", gzip: true, recs: 10, size: 100, wantStream: "Custom-MdeMachineActions", minCalls: 1},
		{name: "plain", gzip: false, recs: 10, size: 100, wantStream: "Custom-MdeMachineActions", minCalls: 1},
		{name: "split at 1 MB", gzip: true, recs: 3000, size: 1000, wantStream: "Custom-MdeMachineActions", minCalls: 3},
		{name: "stream override", gzip: true, recs: 5, size: 10, stream: map[string]string{"MdeMachineActions": "Custom-Other"}, wantStream: "Custom-Other", minCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, f, _ := newTestSink(t, func(c *Config) { c.Gzip = tt.gzip; c.Streams = tt.stream }, nil)
			if err := s.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			recs := bigRecords("MdeMachineActions", tt.recs, tt.size)
			if err := s.Write(t.Context(), "MdeMachineActions", recs); err != nil {
				t.Fatalf("Write: %v", err)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.bad) > 0 {
				t.Fatalf("protocol violations: %v", f.bad)
			}
			if f.calls < tt.minCalls {
				t.Errorf("%d calls, want ≥ %d", f.calls, tt.minCalls)
			}
			for i := range f.wire {
				if f.plain[i] > DefaultMaxBytes || f.wire[i] > MaxRequestBytes {
					t.Errorf("call %d: %d bytes (%d on the wire), limit %d", i, f.plain[i], f.wire[i], DefaultMaxBytes)
				}
				if f.gzipped[i] != tt.gzip {
					t.Errorf("call %d gzip=%v, want %v", i, f.gzipped[i], tt.gzip)
				}
			}
			if got := len(f.stored[tt.wantStream]); got != tt.recs {
				t.Errorf("stream %s got %d records, want %d (streams %v)", tt.wantStream, got, tt.recs, len(f.stored))
			}
		})
	}
}

func TestErrorMapping(t *testing.T) {
	forbidden := `{"error":{"code":"OperationFailed","message":"The authentication token provided does not have access to ingest data for the data collection rule with immutable Id '` + testDCR + `'."}}`
	const (
		ok      = iota // delivered
		request        // refusal of the request: Write fails, permanent, nothing dead-lettered
		records        // refusal of the records: Write fails (several records refused), nothing dead-lettered
		dead           // the one record is dead-lettered, Write succeeds
	)
	tests := []struct {
		name      string
		status    int
		hdr       map[string]string
		body      string
		failTimes int
		records   int // default 4
		want      int
		wantErr   []string // substrings of the error
		wantSleep time.Duration
		wantCalls int
	}{
		{name: "401", status: 401, failTimes: 99, want: request, wantErr: []string{"HTTP 401", "Monitoring Metrics Publisher", "30 minutes"}, wantCalls: 1},
		{name: "403 OperationFailed", status: 403, hdr: map[string]string{"x-ms-error-code": "OperationFailed"}, body: forbidden, failTimes: 99, want: request,
			wantErr: []string{"HTTP 403 OperationFailed", testDCR, "Monitoring Metrics Publisher", "up to 30 minutes"}, wantCalls: 1},
		// The old rule dead-lettered a refused request of one record: with
		// the 30-minute split one-record calls are common, so a missing
		// role silently lost records.
		{name: "403 on one record is not the record's fault", status: 403, hdr: map[string]string{"x-ms-error-code": "OperationFailed"}, body: forbidden, failTimes: 99, records: 1, want: request,
			wantErr: []string{"HTTP 403 OperationFailed", "nothing was dead-lettered"}, wantCalls: 1},
		{name: "401 on one record", status: 401, failTimes: 99, records: 1, want: request, wantErr: []string{"HTTP 401"}, wantCalls: 1},
		{name: "404 on one record", status: 404, body: `{"error":{"code":"NotFound","message":"no such rule"}}`, failTimes: 99, records: 1, want: request, wantErr: []string{"HTTP 404", "outputs.sentinel.endpoint"}, wantCalls: 1},
		{name: "400 naming the stream", status: 400, body: `{"error":{"code":"InvalidStream","message":"schema mismatch"}}`, failTimes: 99, records: 1, want: request, wantErr: []string{"HTTP 400 InvalidStream", "schema mismatch"}, wantCalls: 1},
		{name: "400 naming the api version", status: 400, body: `{"error":{"code":"UnsupportedApiVersion","message":"no"}}`, failTimes: 99, records: 1, want: request, wantErr: []string{"UnsupportedApiVersion"}, wantCalls: 1},
		{name: "400 time range", status: 400, body: `{"error":{"code":"RecordsTimeRangeIsMoreThan30Minutes","message":"span"}}`, failTimes: 99, want: request, wantErr: []string{"RecordsTimeRangeIsMoreThan30Minutes", "max_time_span"}, wantCalls: 1},
		{name: "400 on one record is that record's", status: 400, body: `{"error":{"code":"InvalidRequest","message":"Record 0 does not match"}}`, failTimes: 99, records: 1, want: dead, wantCalls: 1},
		{name: "400 on every record of several fails the Write", status: 400, body: `{"error":{"code":"InvalidRequest","message":"schema mismatch"}}`, failTimes: 99, want: records,
			wantErr: []string{"both of its halves", "nothing was dead-lettered", "InvalidRequest"}, wantCalls: 3},
		{name: "415 is the request's", status: 415, body: `{"error":{"code":"UnsupportedMediaType","message":"json"}}`, failTimes: 99, records: 1, want: request, wantErr: []string{"HTTP 415"}, wantCalls: 1},
		{name: "429 Retry-After 90s", status: 429, hdr: map[string]string{"Retry-After": "90"}, body: `{"error":{"code":"TooManyRequests","message":"slow down"}}`, failTimes: 1, wantSleep: 90 * time.Second, wantCalls: 2},
		{name: "503 then ok", status: 503, failTimes: 2, wantCalls: 3},
		{name: "503 Retry-After 5", status: 503, hdr: map[string]string{"Retry-After": "5"}, failTimes: 1, wantSleep: 5 * time.Second, wantCalls: 2},
		{name: "413 splits", status: 413, body: `{"error":{"code":"ContentLengthLimitExceeded","message":"too big"}}`, failTimes: 1, wantCalls: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, f, sleeps := newTestSink(t, func(c *Config) { c.Delivery.MaxAttempts = 4 }, func(n int, _ *http.Request) (int, map[string]string, string) {
				if n <= tt.failTimes {
					return tt.status, tt.hdr, tt.body
				}
				return 0, nil, ""
			})
			if err := s.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			n := tt.records
			if n == 0 {
				n = 4
			}
			recs := sinktest.Records("MdeMachineActions", 0, n)
			err := s.Write(t.Context(), "MdeMachineActions", recs)
			switch tt.want {
			case ok:
				if err != nil {
					t.Fatalf("Write: %v", err)
				}
				if got := len(f.stored["Custom-MdeMachineActions"]); got != len(recs) {
					t.Errorf("stored %d records, want %d", got, len(recs))
				}
			case dead:
				if err != nil {
					t.Fatalf("Write: %v; a record refused for its content is dead-lettered", err)
				}
				if st := s.Stats(); st.DeadLettered != 1 {
					t.Errorf("%d dead-lettered, want 1", st.DeadLettered)
				}
			default:
				if err == nil {
					t.Fatal("Write succeeded, want an error")
				}
				if got := delivery.IsPermanent(err); got != (tt.want == request) {
					t.Errorf("IsPermanent = %v for %v", got, err)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), testSecret) {
					t.Errorf("error leaks a secret: %v", err)
				}
				var re *azcore.ResponseError
				if !errors.As(err, &re) || re.StatusCode != tt.status {
					t.Errorf("error does not unwrap to the ResponseError %d", tt.status)
				}
				if st := s.Stats(); st.DeadLettered != 0 {
					t.Errorf("%d records dead-lettered; a failed Write must keep them for the next run", st.DeadLettered)
				}
			}
			if f.calls != tt.wantCalls {
				t.Errorf("%d calls, want %d", f.calls, tt.wantCalls)
			}
			if tt.wantSleep != 0 {
				found := false
				for _, d := range *sleeps {
					found = found || d == tt.wantSleep
				}
				if !found {
					t.Errorf("sleeps %v, want one of %s (Retry-After honoured beyond azcore's 60 s cap)", *sleeps, tt.wantSleep)
				}
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	ok := testConfig("https://dce-1.westeurope-1.ingest.monitor.azure.com")
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"valid", func(*Config) {}, ""},
		{"http endpoint", func(c *Config) { c.Endpoint = "http://x.ingest.monitor.azure.com" }, "https URL"},
		{"endpoint with path", func(c *Config) { c.Endpoint = "https://x/dataCollectionRules" }, "https URL"},
		{"bad dcr", func(c *Config) { c.DCRImmutableID = "dcr-123" }, "32 hex"},
		{"bad prefix", func(c *Config) { c.StreamPrefix = "Mde" }, "Custom-"},
		{"bad stream", func(c *Config) { c.Streams = map[string]string{"T": "T"} }, "streams.T"},
		{"cloud", func(c *Config) { c.Cloud = "mars" }, "cloud"},
		{"too big", func(c *Config) { c.Delivery.MaxBytes = 2 << 20 }, "max_bytes"},
		{"negative attempt timeout", func(c *Config) { c.Delivery.AttemptTimeout = -time.Second }, "delivery.attempt_timeout -1s is negative"},
		{"negative time span", func(c *Config) { c.MaxTimeSpan = -time.Minute }, "max_time_span"},
		{"tenant", func(c *Config) { c.Auth.TenantID = "contoso" }, "tenant_id"},
		{"method", func(c *Config) { c.Auth.Method = "password" }, "auth.method"},
		{"cert file", func(c *Config) { c.Auth.Method = AuthCertificate }, "certificate_file"},
		{"managed identity", func(c *Config) { c.Auth = AuthConfig{Method: AuthManagedIdentity} }, ""},
		{"rules beside the top-level DCR", func(c *Config) { c.Rules = []Rule{okRule("MdeTimeline")} }, ""},
		{"rules only", func(c *Config) { c.Endpoint, c.DCRImmutableID = "", ""; c.Rules = []Rule{okRule("MdeTimeline")} }, ""},
		{"no DCR at all", func(c *Config) { c.Endpoint, c.DCRImmutableID = "", "" }, "endpoint is empty"},
		{"rules and half a top-level DCR", func(c *Config) { c.DCRImmutableID = ""; c.Rules = []Rule{okRule("MdeTimeline")} }, "dcr_immutable_id"},
		{"table in two rules", func(c *Config) {
			c.Rules = []Rule{okRule("MdeTimeline", "MdeLibraryFiles"), okRule("MdeLibraryFiles")}
		}, "table MdeLibraryFiles is in rules[0] and rules[1]"},
		{"table twice in a rule", func(c *Config) { c.Rules = []Rule{okRule("MdeTimeline", "MdeTimeline")} }, "rules[0].tables lists MdeTimeline twice"},
		{"rule with bad id", func(c *Config) { r := okRule("MdeTimeline"); r.DCRImmutableID = "dcr-xyz"; c.Rules = []Rule{r} }, "rules[0].dcr_immutable_id \"dcr-xyz\""},
		{"rule with http endpoint", func(c *Config) {
			r := okRule("MdeTimeline")
			r.Endpoint = "http://x.ingest.monitor.azure.com"
			c.Rules = []Rule{okRule("MdeLibraryFiles"), r}
		}, "rules[1].endpoint"},
		{"rule without endpoint", func(c *Config) { r := okRule("MdeTimeline"); r.Endpoint = ""; c.Rules = []Rule{r} }, "rules[0].endpoint is empty"},
		{"unknown table", func(c *Config) { c.Rules = []Rule{okRule("MdeTimelines")} }, `unknown table "MdeTimelines"`},
		{"rule without tables", func(c *Config) { c.Rules = []Rule{okRule()} }, "rules[0].tables is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			err := c.Validate()
			if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "outputs.sentinel.") {
				t.Errorf("error %q names the section; the config loader adds it", err)
			}
		})
	}
}

func okRule(tables ...string) Rule {
	return Rule{Endpoint: "https://dcr-2.westeurope-1.ingest.monitor.azure.com", DCRImmutableID: testDCR2, Tables: tables}
}

func TestSecretsComeFromEnvOrPrivateFile(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte(testSecret), 0o644); err != nil {
		t.Fatal(err)
	}
	private := filepath.Join(dir, "private")
	if err := os.WriteFile(private, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		file    string
		env     string
		wantErr string
	}{
		{"env", "", testSecret, ""},
		{"private file", private, "", ""},
		{"none", "", "", SecretEnv},
		{"group-readable file", open, "", "chmod 600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig("https://dce-1.westeurope-1.ingest.monitor.azure.com")
			cfg.Auth.ClientSecretFile = tt.file
			var logs bytes.Buffer
			deps := sink.Deps{Getenv: func(k string) string {
				if k == SecretEnv {
					return tt.env
				}
				return ""
			}, Logger: slog.New(slog.NewTextHandler(&logs, nil)), DataDir: t.TempDir()}
			s, err := New(deps, cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New = %v, want error containing %q", err, tt.wantErr)
				}
			} else if err != nil || s == nil {
				t.Fatalf("New: %v", err)
			}
			if err != nil && strings.Contains(err.Error(), testSecret) {
				t.Error("error leaks the secret")
			}
			if strings.Contains(logs.String(), testSecret) {
				t.Error("log leaks the secret")
			}
		})
	}
}

func FuzzParseErrorBody(f *testing.F) {
	f.Add("", []byte(`{"error":{"code":"OperationFailed","message":"no access"}}`))
	f.Add("X", []byte(`{"error":null}`))
	f.Add("", []byte(`not json`))
	f.Add("", []byte(`{"error":{"code":"`+strings.Repeat("é", 300)+`"}}`))
	f.Fuzz(func(t *testing.T, code string, body []byte) {
		c, m := parseErrorBody(code, body)
		if len(c) > 100+len("…") || len(m) > 600+len("…") {
			t.Fatalf("unbounded: %d, %d", len(c), len(m))
		}
		if strings.ContainsAny(c+m, "\r\n") {
			t.Fatal("line break in message")
		}
	})
}

func BenchmarkWrite1KB(b *testing.B) {
	s, f, _ := newTestSink(b, nil, nil)
	if err := s.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	f.discard = true
	recs := bigRecords("MdeTimeline", 1000, 1000)
	b.ResetTimer()
	for b.Loop() {
		if err := s.Write(b.Context(), "MdeTimeline", recs); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	st := s.Stats()
	b.ReportMetric(float64(st.Records)/b.Elapsed().Seconds(), "events/s")
	if st.Requests > 0 {
		b.ReportMetric(float64(st.BytesSent)/float64(st.Requests), "bytes/request")
	}
	b.ReportMetric(float64(st.MaxRequestBytes), "max-bytes/request")
}
