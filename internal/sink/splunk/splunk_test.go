package splunk

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/delivery"
	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/sink/sinktest"
)

func TestConformance(t *testing.T) {
	sinktest.Conformance(t, func(t *testing.T) (sink.Sink, func() []record.Record) {
		f := newFakeHEC(t)
		s, _ := newTestSink(t, f, testOpts{})
		return s, func() []record.Record { return f.received(t) }
	})
}

func TestRequestShape(t *testing.T) {
	const table = "MdeMachineActions"
	cases := []struct {
		name           string
		mutate         func(*Config)
		wantSourcetype string
		wantIndex      string // "" = no index key
		wantGzip       bool
	}{
		{"defaults", nil, table, "", true},
		{"global sourcetype and index, no gzip", func(c *Config) { c.Sourcetype = "mde:json"; c.Index = "defender"; c.Gzip = false }, "mde:json", "defender", false},
		{"per-table override wins", func(c *Config) {
			c.Sourcetype = "mde:json"
			c.Sourcetypes = map[string]string{table: "mde:machineactions", "Other": "x"}
		}, "mde:machineactions", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeHEC(t)
			s, _ := newTestSink(t, f, testOpts{mutate: func(c *Config) {
				c.Delivery.MaxBytes = 4000 // several requests
				if tc.mutate != nil {
					tc.mutate(c)
				}
			}})
			mustStart(t, s)
			recs := sinktest.Records(table, 0, 30)
			recs[3].Time = recs[3].Time.Add(250 * time.Millisecond)
			recs[4].Time = recs[4].Time.Add(123456 * time.Microsecond)
			if err := s.Write(t.Context(), table, recs); err != nil {
				t.Fatalf("Write: %v", err)
			}
			sinktest.AssertSame(t, recs, f.received(t))

			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.requests) < 2 {
				t.Fatalf("%d requests; max_bytes 4000 should have split 30 records", len(f.requests))
			}
			for i, r := range f.requests {
				if got := r.Header.Get("X-Splunk-Request-Channel"); got != s.Channel() {
					t.Errorf("request %d channel %q, want the sink's one channel %q", i, got, s.Channel())
				}
				if gz := r.Header.Get("Content-Encoding") == "gzip"; gz != tc.wantGzip {
					t.Errorf("request %d gzip=%v, want %v", i, gz, tc.wantGzip)
				}
				if len(f.bodies[i]) > 4000 {
					t.Errorf("request %d body %d bytes > max_bytes", i, len(f.bodies[i]))
				}
				if bytes.HasPrefix(bytes.TrimSpace(f.bodies[i]), []byte("[")) {
					t.Errorf("request %d is a JSON array; HEC wants concatenated objects", i)
				}
			}
			if len(f.channels) != 1 {
				t.Errorf("%d channels used, want 1 per process", len(f.channels))
			}
			wantTime := map[string]string{
				recs[0].ID: "1772366400.000",
				recs[3].ID: "1772366403.250",
				recs[4].ID: "1772366404.123456",
			}
			for _, e := range f.events {
				if e.Host != "harvester-01" || e.Source != DefaultSource || e.Sourcetype != tc.wantSourcetype {
					t.Errorf("envelope host/source/sourcetype = %q/%q/%q", e.Host, e.Source, e.Sourcetype)
				}
				switch {
				case tc.wantIndex == "" && e.Index != nil:
					t.Errorf("index %q sent; want none (token default)", *e.Index)
				case tc.wantIndex != "" && (e.Index == nil || *e.Index != tc.wantIndex):
					t.Errorf("index %v, want %q", e.Index, tc.wantIndex)
				}
				r, err := sinktest.DecodeLine(table, e.Event)
				if err != nil {
					t.Fatal(err)
				}
				if e.Time == nil {
					t.Fatalf("record %s: no time", r.ID)
				}
				if w, ok := wantTime[r.ID]; ok && e.Time.String() != w {
					t.Errorf("record %s time %s, want %s", r.ID, e.Time, w)
				}
			}
		})
	}
}

func TestWriteTakesTableFromTheCall(t *testing.T) {
	f := newFakeHEC(t)
	s, _ := newTestSink(t, f, testOpts{})
	mustStart(t, s)
	recs := sinktest.Records("MdeActionCenter", 0, 2)
	recs[0].Table = ""
	if err := s.Write(t.Context(), "MdeActionCenter", recs); err != nil {
		t.Fatal(err)
	}
	for _, e := range f.events {
		if e.Sourcetype != "MdeActionCenter" {
			t.Errorf("sourcetype %q, want the Write's table", e.Sourcetype)
		}
	}
	if recs[0].Table != "" {
		t.Error("Write modified the caller's records")
	}
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestErrorMapping(t *testing.T) {
	type answer struct {
		status int
		body   string
		h      http.Header
	}
	cases := []struct {
		name      string
		ans       answer
		fails     int // posts answered with ans, then success
		index     string
		wantErr   string // "" = Write succeeds after retries
		wantPosts int
		wantSlept time.Duration // exact, for Retry-After; -1 = don't care
	}{
		{"disabled token", answer{403, `{"text":"Token disabled","code":1}`, nil}, 99, "", "token is disabled", 1, -1},
		{"token missing", answer{401, `{"text":"Token is required","code":2}`, nil}, 99, "", "DH_SPLUNK_TOKEN", 1, -1},
		{"bad authorization", answer{401, `{"text":"Invalid authorization","code":3}`, nil}, 99, "", "Authorization header", 1, -1},
		{"invalid token", answer{403, `{"text":"Invalid token","code":4}`, nil}, 99, "", "does not know this HEC token", 1, -1},
		{"cloud invalid token", answer{400, `{"text":"Invalid token","code":21}`, nil}, 99, "", "does not know this HEC token", 1, -1},
		{"incorrect index", answer{400, `{"text":"Incorrect index","code":7}`, nil}, 99, "secret_idx", `index "secret_idx" is not allowed`, 1, -1},
		{"incorrect default index", answer{400, `{"text":"Incorrect index","code":7}`, nil}, 99, "", "default index", 1, -1},
		{"channel missing", answer{400, `{"text":"Data channel is missing","code":10}`, nil}, 99, "", "X-Splunk-Request-Channel", 1, -1},
		{"channel invalid", answer{400, `{"text":"Invalid data channel","code":11}`, nil}, 99, "", "X-Splunk-Request-Channel", 1, -1},
		{"ack disabled", answer{400, `{"text":"ACK is disabled","code":14}`, nil}, 99, "", "ack.enabled: false", 1, -1},
		{"forbidden without a HEC code", answer{403, `<html>forbidden</html>`, nil}, 99, "", "token was refused", 1, -1},
		{"unknown 400 code", answer{400, `{"text":"Something new","code":99}`, nil}, 99, "", "request was refused", 1, -1},
		{"query auth", answer{400, `{"text":"Query string authorization is not enabled","code":16}`, nil}, 99, "", "query-string", 1, -1},
		{"not found", answer{404, `<html>nope</html>`, nil}, 99, "", "no HEC endpoint", 1, -1},
		{"redirect", answer{302, ``, hdr("Location", "https://elsewhere.example/")}, 99, "", "redirect", 1, -1},
		{"internal error retried", answer{500, `{"text":"Internal server error","code":8}`, nil}, 2, "", "", 3, -1},
		{"busy with Retry-After", answer{503, `{"text":"Server is busy","code":9}`, hdr("Retry-After", "7")}, 2, "", "", 3, 14 * time.Second},
		{"unhealthy queues full", answer{503, `{"text":"HEC is unhealthy, queues are full","code":18}`, hdr("Retry-After", "3")}, 1, "", "", 2, 3 * time.Second},
		{"proxy 502 html", answer{502, `<html>bad gateway</html>`, nil}, 1, "", "", 2, -1},
		{"too large splits", answer{413, `{"text":"Content-Length of 2000000 too large (maximum is 1000000)","code":6}`, nil}, 1, "", "", 3, 0},
		{"keeps failing gives up", answer{503, `{"text":"Server is busy","code":9}`, nil}, 99, "", "gave up", 3, -1},
	}
	for _, tc := range cases {
		sizes := []int{5}
		if tc.wantErr != "" {
			sizes = append(sizes, 1) // a refused request of one record is not a bad record either
		}
		for _, size := range sizes {
			t.Run(fmt.Sprintf("%s/%d records", tc.name, size), func(t *testing.T) {
				f := newFakeHEC(t)
				f.override = func(n int) (int, string, http.Header) {
					if n <= tc.fails {
						return tc.ans.status, tc.ans.body, tc.ans.h
					}
					return 0, "", nil
				}
				s, clk := newTestSink(t, f, testOpts{mutate: func(c *Config) {
					c.Index = tc.index
					c.Delivery.MaxAttempts = 3
				}})
				mustStart(t, s)
				recs := sinktest.Records("MdeMachineActions", 0, size)
				err := s.Write(t.Context(), "MdeMachineActions", recs)
				switch {
				case tc.wantErr == "" && err != nil:
					t.Fatalf("Write: %v", err)
				case tc.wantErr != "" && err == nil:
					t.Fatalf("Write succeeded; want an error containing %q", tc.wantErr)
				case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
					t.Fatalf("error %q does not contain %q", err, tc.wantErr)
				}
				if tc.wantErr == "" {
					sinktest.AssertSame(t, recs, f.received(t))
				}
				if st := s.Stats(); st.DeadLettered != 0 || len(deadLetters(t, s)) != 0 {
					t.Errorf("%d records dead-lettered; a refusal of the request must fail the Write instead", st.DeadLettered)
				}
				f.mu.Lock()
				posts := f.posts
				f.mu.Unlock()
				if posts != tc.wantPosts {
					t.Errorf("%d posts, want %d (permanent errors must not be retried)", posts, tc.wantPosts)
				}
				if tc.wantSlept >= 0 && clk.Slept() != tc.wantSlept {
					t.Errorf("waited %s, want %s (Retry-After honoured, no backoff when told)", clk.Slept(), tc.wantSlept)
				}
			})
		}
	}
}

// deadLetters returns the dead-letter lines the sink wrote.
func deadLetters(t testing.TB, s *Sink) []string {
	t.Helper()
	files, err := filepath.Glob(s.Stats().DeadLetters)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.Split(strings.TrimSpace(string(b)), "\n")...)
	}
	return lines
}

func TestClassifyKinds(t *testing.T) {
	s := &Sink{now: time.Now, index: "x", token: testToken}
	code := func(c int) *int { return &c }
	const (
		transient = iota
		request   // delivery.Permanent: fails the Write, never dead-lettered
		records   // delivery.Rejected(At): the named event is dead-lettered
		tooLarge
	)
	cases := []struct {
		status int
		code   *int
		num    *int // invalid-event-number
		want   int
	}{
		{403, code(1), nil, request}, {401, code(2), nil, request}, {401, code(3), nil, request}, {403, code(4), nil, request},
		{400, code(7), code(3), request}, {400, code(10), nil, request}, {400, code(11), nil, request},
		{400, code(14), nil, request}, {400, code(16), nil, request}, {400, code(21), nil, request}, {400, code(22), nil, request},
		{400, nil, nil, request}, {401, nil, nil, request}, {403, nil, nil, request}, {404, nil, nil, request},
		{301, nil, nil, request}, {307, nil, nil, request},
		{400, code(5), nil, records}, {400, code(6), code(2), records}, {400, code(6), nil, records},
		{400, code(12), code(0), records}, {400, code(13), code(4), records}, {400, code(15), nil, records},
		{500, code(8), nil, transient}, {503, code(9), nil, transient}, {503, code(18), nil, transient}, {503, code(19), nil, transient},
		{503, code(20), nil, transient}, {429, nil, nil, transient}, {502, nil, nil, transient},
		{413, code(6), nil, tooLarge},
	}
	for _, tc := range cases {
		err := s.classify(tc.status, reply{Code: tc.code, Text: "x", InvalidNum: tc.num}, http.Header{}, "T")
		got := transient
		switch {
		case delivery.IsPermanent(err):
			got = request
		case delivery.IsRejected(err):
			got = records
		case strings.Contains(err.Error(), "split"):
			got = tooLarge
		}
		if got != tc.want {
			t.Errorf("HTTP %d code %s: class %d, want %d (%v)", tc.status, codeOf(reply{Code: tc.code}), got, tc.want, err)
		}
		if tc.num != nil && tc.want == records && !strings.Contains(err.Error(), fmt.Sprintf("event %d (0-based)", *tc.num)) {
			t.Errorf("HTTP %d code %s: error %q does not name event %d", tc.status, codeOf(reply{Code: tc.code}), err, *tc.num)
		}
	}
}

func TestStartHealthAndToken(t *testing.T) {
	cases := []struct {
		name    string
		health  func(w http.ResponseWriter)
		token   string
		wantErr string
		wantLog string
	}{
		{"healthy", nil, testToken, "", ""},
		{"queues full warns", func(w http.ResponseWriter) {
			hecJSON(w, 503, map[string]any{"text": "HEC is unhealthy, queues are full", "code": 18})
		}, testToken, "", "unhealthy"},
		{"no HEC there", func(w http.ResponseWriter) { w.WriteHeader(404) }, testToken, "404", ""},
		{"wrong token", nil, "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "does not know this HEC token", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeHEC(t)
			f.health = tc.health
			var log bytes.Buffer
			s, _ := newTestSink(t, f, testOpts{log: &log})
			s.token = tc.token
			err := s.Start(t.Context())
			if tc.wantErr == "" && err != nil {
				t.Fatalf("Start: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Start error %v, want one containing %q", err, tc.wantErr)
			}
			if tc.wantLog != "" && !strings.Contains(log.String(), tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, log.String())
			}
			if strings.Contains(log.String(), tc.token) || (err != nil && strings.Contains(err.Error(), tc.token)) {
				t.Error("the token leaked into the log or the error")
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.events) != 0 {
				t.Errorf("Start indexed %d events", len(f.events))
			}
		})
	}
}

func TestAckWaitsForIndexers(t *testing.T) {
	f := newFakeHEC(t)
	f.ack = true
	f.ackAfter = 2 // true on the third query
	s, clk := newTestSink(t, f, testOpts{mutate: func(c *Config) { c.Ack.Enabled = true }})
	mustStart(t, s)
	recs := sinktest.Records("MdeActionCenter", 0, 10)
	if err := s.Write(t.Context(), "MdeActionCenter", recs); err != nil {
		t.Fatalf("Write: %v", err)
	}
	sinktest.AssertSame(t, recs, f.received(t))
	if got, want := clk.Slept(), 3*DefaultPollInterval; got != want {
		t.Errorf("waited %s for the ack, want %s (three polls at poll_interval)", got, want)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.ackQuery) != 3 || len(f.ackQuery[0]) != 1 || f.ackQuery[0][0] != 0 {
		t.Errorf("ack queries %v, want three asking for ackId 0", f.ackQuery)
	}
}

func TestAckTimeoutResends(t *testing.T) {
	f := newFakeHEC(t)
	f.ack = true
	f.ackAfter = 0
	never := int64(0) // the first post's ack never turns true
	s, clk := newTestSink(t, f, testOpts{mutate: func(c *Config) {
		c.Ack.Enabled = true
		c.Ack.Timeout = 60_000_000_000 // 1m
	}})
	mustStart(t, s)
	f.mu.Lock()
	f.acked[never] = true // already "reported": the fake never says true again
	f.mu.Unlock()
	recs := sinktest.Records("MdeActionCenter", 0, 3)
	if err := s.Write(t.Context(), "MdeActionCenter", recs); err != nil {
		t.Fatalf("Write: %v", err)
	}
	f.mu.Lock()
	posts, events := f.posts, len(f.events)
	f.mu.Unlock()
	if posts != 2 || events != 6 {
		t.Errorf("%d posts with %d events; want the request resent once after ack.timeout (2 posts, 6 events)", posts, events)
	}
	if clk.Slept() < time.Minute {
		t.Errorf("resent after %s, before ack.timeout 1m", clk.Slept())
	}
}

func TestAckConcurrentWritesShareQueries(t *testing.T) {
	f := newFakeHEC(t)
	f.ack = true
	f.ackAfter = 0
	s, _ := newTestSink(t, f, testOpts{mutate: func(c *Config) { c.Ack.Enabled = true }})
	mustStart(t, s)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var want []record.Record
	for w := range 8 {
		wg.Go(func() {
			recs := sinktest.Records("MdeActionCenter", w*10, 10)
			if err := s.Write(context.Background(), "MdeActionCenter", recs); err != nil {
				t.Errorf("Write: %v", err)
				return
			}
			mu.Lock()
			want = append(want, recs...)
			mu.Unlock()
		})
	}
	wg.Wait()
	sinktest.AssertSame(t, want, f.received(t))
}

func TestAckRequestedButTokenHasNone(t *testing.T) {
	f := newFakeHEC(t) // answers without ackId
	var log bytes.Buffer
	s, _ := newTestSink(t, f, testOpts{log: &log, mutate: func(c *Config) { c.Ack.Enabled = true }})
	mustStart(t, s)
	recs := sinktest.Records("MdeActionCenter", 0, 2)
	if err := s.Write(t.Context(), "MdeActionCenter", recs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "no ackId") {
		t.Errorf("no warning that the token lacks indexer acknowledgement:\n%s", log.String())
	}
}

func TestSecretsNeverInErrorsOrLogs(t *testing.T) {
	f := newFakeHEC(t)
	// A misbehaving proxy that echoes the Authorization header back.
	f.override = func(int) (int, string, http.Header) {
		return 400, `{"text":"bad request: Authorization: Splunk ` + testToken + `","code":99}`, nil
	}
	var log bytes.Buffer
	s, _ := newTestSink(t, f, testOpts{log: &log})
	mustStart(t, s)
	err := s.Write(t.Context(), "MdeActionCenter", sinktest.Records("MdeActionCenter", 0, 3))
	if err == nil {
		t.Fatal("Write accepted a 400")
	}
	if strings.Contains(err.Error(), testToken) || strings.Contains(log.String(), testToken) {
		t.Errorf("token leaked:\nerr: %v\nlog: %s", err, log.String())
	}
	if !strings.Contains(err.Error(), "[REDACTED]") {
		t.Errorf("echoed token not redacted: %v", err)
	}

	// Token file with a loose mode: the error names the file, not the secret.
	p := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(p, []byte(testToken), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = New(sink.Deps{}, Config{URL: "https://splunk.example:8088", TokenFile: p})
	if err == nil || strings.Contains(err.Error(), testToken) || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("loose token file: %v", err)
	}
}

func TestTokenFromFile(t *testing.T) {
	f := newFakeHEC(t)
	p := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(p, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := New(sink.Deps{Transport: f.srv.Client().Transport, DataDir: t.TempDir()}, Config{URL: f.srv.URL, TokenFile: p, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	mustStart(t, s2)
	if err := s2.Write(t.Context(), "T", sinktest.Records("T", 0, 1)); err != nil {
		t.Fatal(err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	env := func(v string) func(string) string { return func(string) string { return v } }
	cases := []struct {
		name   string
		cfg    Config
		getenv func(string) string
		want   string
	}{
		{"no url", Config{}, env(testToken), "url is empty"},
		{"plain http", Config{URL: "http://splunk:8088"}, env(testToken), "https://"},
		{"userinfo", Config{URL: "https://x:" + testToken + "@splunk:8088"}, env(testToken), "must not contain a user"},
		{"query token", Config{URL: "https://splunk:8088/?token=" + testToken}, env(testToken), "query"},
		{"no token", Config{URL: "https://splunk:8088"}, env(""), "DH_SPLUNK_TOKEN"},
		{"token with newline", Config{URL: "https://splunk:8088"}, env("abc\r\nX-Evil: 1"), "control characters"},
		{"ack timeout below poll", Config{URL: "https://splunk:8088", Ack: AckConfig{Enabled: true, PollInterval: 60e9, Timeout: 10e9}}, env(testToken), "ack.timeout"},
		{"empty sourcetype override", Config{URL: "https://splunk:8088", Sourcetypes: map[string]string{"T": " "}}, env(testToken), "sourcetypes.T"},
		{"missing ca file", Config{URL: "https://splunk:8088", CAFile: "/nonexistent/ca.pem"}, env(testToken), "ca_file"},
		{"negative max bytes", Config{URL: "https://splunk:8088", Delivery: delivery.Config{MaxBytes: -1}}, env(testToken), "negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(sink.Deps{Getenv: tc.getenv}, tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error leaks the token: %v", err)
			}
		})
	}
}

func TestParseBase(t *testing.T) {
	for in, want := range map[string]string{
		"https://splunk.example.com:8088":                            "https://splunk.example.com:8088",
		"https://splunk.example.com:8088/":                           "https://splunk.example.com:8088",
		"https://splunk.example.com:8088/services/collector/event":   "https://splunk.example.com:8088",
		"https://splunk.example.com:8088/services/collector":         "https://splunk.example.com:8088",
		"https://proxy.example.com/splunk/services/collector/event/": "https://proxy.example.com/splunk",
	} {
		got, err := parseBase(in)
		if err != nil || got != want {
			t.Errorf("parseBase(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestTLSWithCustomCA(t *testing.T) {
	f := newFakeHEC(t)
	caPath := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	if err := os.WriteFile(caPath, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	build := func(t *testing.T, mutate func(*Config), log *bytes.Buffer) *Sink {
		cfg := *DefaultConfig()
		cfg.URL, cfg.Host = f.srv.URL, "h"
		mutate(&cfg)
		deps := sink.Deps{Getenv: func(string) string { return testToken }, DataDir: t.TempDir()}
		if log != nil {
			deps.Logger = slogTo(log)
		}
		s, err := New(deps, cfg) // no injected transport: the sink builds its own
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
		return s
	}
	t.Run("ca_file trusted", func(t *testing.T) {
		s := build(t, func(c *Config) { c.CAFile = caPath }, nil)
		if err := s.Start(t.Context()); err != nil {
			t.Fatalf("Start with ca_file: %v", err)
		}
		if err := s.Write(t.Context(), "T", sinktest.Records("T", 0, 2)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unknown CA refused", func(t *testing.T) {
		s := build(t, func(*Config) {}, nil)
		err := s.Start(t.Context())
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("Start against an untrusted certificate: %v; want a certificate error", err)
		}
	})
	t.Run("insecure_skip_verify warns", func(t *testing.T) {
		var log bytes.Buffer
		s := build(t, func(c *Config) { c.InsecureSkipVerify = true }, &log)
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(log.String(), "verification") || !strings.Contains(log.String(), "WARN") {
			t.Errorf("no warning about disabled verification:\n%s", log.String())
		}
	})
}

func TestWriteAfterShutdownAndCancel(t *testing.T) {
	f := newFakeHEC(t)
	s, _ := newTestSink(t, f, testOpts{})
	mustStart(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Write(ctx, "T", sinktest.Records("T", 0, 1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Write with a cancelled context: %v", err)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(t.Context(), "T", sinktest.Records("T", 0, 1)); err == nil {
		t.Error("Write after Shutdown succeeded")
	}
}

func TestAppendEpoch(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		0:                         "1772366400.000",
		500 * time.Millisecond:    "1772366400.500",
		1500 * time.Microsecond:   "1772366400.0015",
		999999 * time.Microsecond: "1772366400.999999",
		7 * time.Nanosecond:       "1772366400.000",
	} {
		if got := string(appendEpoch(nil, base.Add(d))); got != want {
			t.Errorf("+%s: %s, want %s", d, got, want)
		}
	}
}

// TestOK200WithoutHECReplyIsNotDelivered: a proxy answering 200 with its
// own page in front of HEC must not make records count as delivered.
func TestOK200WithoutHECReplyIsNotDelivered(t *testing.T) {
	f := newFakeHEC(t)
	f.override = func(n int) (int, string, http.Header) {
		if n <= 2 {
			return 200, "<html><body>Maintenance</body></html>", http.Header{"Content-Type": {"text/html"}}
		}
		return 0, "", nil
	}
	s, _ := newTestSink(t, f, testOpts{})
	mustStart(t, s)
	recs := sinktest.Records("MdeMachineActions", 0, 3)
	if err := s.Write(t.Context(), "MdeMachineActions", recs); err != nil {
		t.Fatalf("Write after the proxy page went away: %v", err)
	}
	if got := len(f.received(t)); got != 3 {
		t.Fatalf("HEC indexed %d records, want 3 (the proxy's 200s must have been retried)", got)
	}
	if st := s.Stats(); st.Retries < 2 {
		t.Fatalf("%d retries; the two 200 proxy pages were counted as delivered", st.Retries)
	}
}
