package splunk

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/sink/sinktest"
)

// HEC refuses two events for their format (code 6, invalid-event-number)
// after indexing the ones before each: exactly those two are
// dead-lettered, every other event arrives once, and the Write succeeds.
func TestEventRefusedForItsFormatIsDeadLetteredAlone(t *testing.T) {
	f := newFakeHEC(t)
	recs := sinktest.Records("MdeMachineActions", 0, 10)
	f.bad = map[string]bool{recs[3].ID: true, recs[7].ID: true}
	s, _ := newTestSink(t, f, testOpts{})
	mustStart(t, s)
	if err := s.Write(t.Context(), "MdeMachineActions", recs); err != nil {
		t.Fatalf("Write: %v", err)
	}
	var want []string
	for _, r := range recs {
		if !f.bad[r.ID] {
			want = append(want, r.ID)
		}
	}
	var got []string
	for _, r := range f.received(t) {
		got = append(got, r.ID)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("HEC holds %v, want each good event once: %v", got, want)
	}
	dead := deadLetters(t, s)
	if len(dead) != 2 || !strings.Contains(dead[0], recs[3].ID) || !strings.Contains(dead[1], recs[7].ID) {
		t.Fatalf("dead letters %q, want the two refused events", dead)
	}
	if !strings.Contains(dead[0], "Invalid data format") {
		t.Errorf("dead letter %q does not carry HEC's answer", dead[0])
	}
	if st := s.Stats(); st.DeadLettered != 2 || st.Records != 8 {
		t.Errorf("stats: %d delivered, %d dead-lettered; want 8 and 2", st.Records, st.DeadLettered)
	}
}

// stallingHEC answers health and the token check, then hangs on what
// stall selects: the connection stays open, no answer comes.
func stallingHEC(t *testing.T, stall func(r *http.Request) bool) *httptest.Server {
	stop := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if stall(r) {
			// Hold the answer until the test ends, even after the client
			// gave up: a handler that returned would send an empty 200.
			<-stop
			return
		}
		switch {
		case r.URL.Path == healthPath:
			hecJSON(w, 200, map[string]any{"text": "HEC is healthy", "code": 17})
		case r.ContentLength == 0:
			hecJSON(w, 400, map[string]any{"text": "No data", "code": 5})
		default:
			hecJSON(w, 200, map[string]any{"text": "Success", "code": 0, "ackId": 0})
		}
	}))
	t.Cleanup(func() { close(stop); srv.Close() })
	return srv
}

// A HEC that accepts connections and never answers ends Start and Write
// with an error naming the output and the timeout, instead of hanging.
func TestStalledHECNeverHangs(t *testing.T) {
	tests := []struct {
		name  string
		ack   bool
		stall func(*http.Request) bool
		start bool   // the stall hits Start
		want  string // in the error
	}{
		{"health check", false, func(r *http.Request) bool { return r.URL.Path == healthPath }, true, "no answer within 100ms (outputs.splunk.timeout)"},
		{"token check", false, func(r *http.Request) bool { return r.URL.Path == eventPath && r.ContentLength == 0 }, true, "no answer within 100ms"},
		{"event post", false, func(r *http.Request) bool { return r.URL.Path == eventPath && r.ContentLength != 0 }, false, "no answer within 100ms"},
		{"ack query", true, func(r *http.Request) bool { return r.URL.Path == ackPath }, false, "not acknowledged by the Splunk indexers in time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := stallingHEC(t, tc.stall)
			clk := &fakeClock{t: time.Now()}
			cfg := *DefaultConfig()
			cfg.URL, cfg.Host = srv.URL, "h"
			cfg.Timeout = config.Duration(100 * time.Millisecond)
			cfg.Ack = AckConfig{Enabled: tc.ack, PollInterval: config.Duration(10 * time.Second), Timeout: config.Duration(20 * time.Second)}
			cfg.Delivery.MaxAttempts = 2
			cfg.Delivery.Sleep, cfg.Delivery.Now = clk.Sleep, clk.Now
			s, err := New(sink.Deps{Transport: srv.Client().Transport, Now: clk.Now, DataDir: t.TempDir(),
				Getenv: func(string) string { return testToken }}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			s.sleep = clk.Sleep
			defer s.Shutdown(context.Background())
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a safety net, not the subject
			defer cancel()
			err = s.Start(ctx)
			if !tc.start {
				if err != nil {
					t.Fatalf("Start: %v", err)
				}
				err = s.Write(ctx, "T", sinktest.Records("T", 0, 3))
			}
			if ctx.Err() != nil {
				t.Fatal("the call hung until the test's safety net")
			}
			if err == nil {
				t.Fatal("no error from a HEC that never answers")
			}
			t.Logf("error: %v", err)
			for _, want := range []string{"splunk", tc.want} {
				if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(want)) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if strings.Contains(err.Error(), testToken) {
				t.Error("the token leaked into the error")
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func() *Config { c := DefaultConfig(); c.URL = "https://splunk.example.com:8088"; return c }
	tests := []struct {
		name string
		mod  func(*Config)
		want []string // nil: valid
	}{
		{"defaults plus url", func(*Config) {}, nil},
		{"ack with its defaults", func(c *Config) { c.Ack.Enabled = true }, nil},
		{"no url", func(c *Config) { c.URL = "" }, []string{"url is empty"}},
		{"http url", func(c *Config) { c.URL = "http://splunk:8088" }, []string{"https://"}},
		{"negative timeout", func(c *Config) { c.Timeout = config.Duration(-time.Second) }, []string{"timeout -1s is negative"}},
		{"ack timeout below poll", func(c *Config) {
			c.Ack = AckConfig{Enabled: true, PollInterval: config.Duration(time.Minute), Timeout: config.Duration(10 * time.Second)}
		}, []string{"ack.timeout 10s is shorter than ack.poll_interval 1m0s"}},
		{"attempt timeout shorter than the ack wait", func(c *Config) {
			c.Ack.Enabled = true
			c.Delivery.AttemptTimeout = time.Minute
		}, []string{"delivery.attempt_timeout 1m0s is shorter than ack.timeout 5m0s"}},
		{"empty sourcetype", func(c *Config) { c.Sourcetypes = map[string]string{"T": " "} }, []string{"sourcetypes.T is empty"}},
		{"delivery keys named in full", func(c *Config) { c.Delivery.MaxBytes = -1; c.Delivery.Concurrency = -1 }, []string{"delivery.max_bytes -1 is negative", "delivery.concurrency -1 is negative"}},
		{"every problem at once", func(c *Config) { c.URL = ""; c.Timeout = config.Duration(-1) }, []string{"url is empty", "timeout"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mod(c)
			err := c.Validate()
			if (err == nil) != (tc.want == nil) {
				t.Fatalf("Validate() = %v, want error %v", err, tc.want != nil)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if err != nil && (strings.Contains(err.Error(), "outputs.splunk.") || strings.HasPrefix(err.Error(), "splunk")) {
				t.Errorf("error %q carries the section; the config loader adds it", err)
			}
			if _, err2 := New(sink.Deps{Getenv: func(string) string { return testToken }}, *c); (err2 == nil) != (err == nil) {
				t.Errorf("New and Validate disagree: %v / %v", err2, err)
			}
		})
	}
}

func TestResolvePaths(t *testing.T) {
	c := DefaultConfig()
	c.TokenFile, c.CAFile, c.DeadLetterDir = "hec.token", "/etc/ssl/ca.pem", "dl"
	c.ResolvePaths(func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join("/etc/dh", p)
	})
	if c.TokenFile != "/etc/dh/hec.token" || c.CAFile != "/etc/ssl/ca.pem" || c.DeadLetterDir != "/etc/dh/dl" {
		t.Errorf("paths %q %q %q; want token_file and dead_letter_dir under the config folder, ca_file kept", c.TokenFile, c.CAFile, c.DeadLetterDir)
	}
	empty := DefaultConfig()
	empty.ResolvePaths(func(string) string { return "/x" })
	if empty.TokenFile != "" || empty.CAFile != "" || empty.DeadLetterDir != "" {
		t.Error("an unset path was filled in")
	}
}

func TestDeadLettersGoToTheSharedDirectory(t *testing.T) {
	for _, tc := range []struct{ dir, want string }{
		{"", filepath.Join("DATA", "deadletter", "splunk-deadletter-*.jsonl")},
		{"/var/dl", filepath.Join("/var/dl", "splunk-deadletter-*.jsonl")},
	} {
		c := DefaultConfig()
		c.URL, c.DeadLetterDir = "https://splunk.example.com:8088", tc.dir
		s, err := New(sink.Deps{DataDir: "DATA", Getenv: func(string) string { return testToken }}, *c)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Stats().DeadLetters; got != tc.want {
			t.Errorf("dead_letter_dir %q: DeadLetters %q, want %q", tc.dir, got, tc.want)
		}
	}
}

func TestInsecureSkipVerifyIsAWarning(t *testing.T) {
	c := DefaultConfig()
	c.URL = "https://splunk.example.com:8088"
	s, err := New(sink.Deps{Getenv: func(string) string { return testToken }}, *c)
	if err != nil {
		t.Fatal(err)
	}
	var w sink.Warner = s
	if got := w.Warnings(); len(got) != 0 {
		t.Errorf("warnings %q with TLS verified", got)
	}
	c.InsecureSkipVerify = true
	if s, err = New(sink.Deps{Getenv: func(string) string { return testToken }}, *c); err != nil {
		t.Fatal(err)
	}
	if got := s.Warnings(); len(got) != 1 || !strings.Contains(got[0], "insecure_skip_verify: true") {
		t.Errorf("warnings %q; want one naming insecure_skip_verify", got)
	}
}
