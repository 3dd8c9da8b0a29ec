package sentinel

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/sim"
	"github.com/defenderharvester/defenderharvester/internal/sink"
	"github.com/defenderharvester/defenderharvester/internal/sink/sinktest"
)

// spread gives records event times an hour apart, so the 30-minute split
// sends each alone: the case where the old rule dead-lettered refusals.
func spread(recs []record.Record) []record.Record {
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	for i := range recs {
		recs[i].Time = base.Add(time.Duration(i) * time.Hour)
	}
	return recs
}

// With the app's role removed from the DCR, the emulated Logs Ingestion
// refuses every call with 403: every Write fails, one-record calls
// included, nothing is dead-lettered; with the role back, the same
// records all arrive once.
func TestRoleRemovedAgainstEmulator(t *testing.T) {
	ten, err := sim.New(sim.Options{Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ten.Serve("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	info, creds := ten.Info(srv), ten.Credentials()
	cfg := *DefaultConfig()
	cfg.Endpoint, cfg.DCRImmutableID = info.Sentinel.Endpoint, info.Sentinel.DCRImmutableID
	cfg.Auth = AuthConfig{Method: AuthClientSecret, TenantID: creds.TenantID, ClientID: creds.ClientID}
	// One request at a time: a sibling request cancelled by the first
	// refusal could still be accepted once the role is back (an honest
	// duplicate, but this test counts exact deliveries).
	cfg.Delivery.Concurrency = 1
	s, err := New(simDeps(t, ten, srv, creds.ClientSecret), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Shutdown(context.Background()) }()

	ten.SetIngestionRole(false)
	if err := s.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v (the token is fine; only the role on the DCR is missing)", err)
	}
	spreadRecs := spread(sinktest.Records("MdeMachineActions", 0, 5))
	for _, recs := range [][]record.Record{spreadRecs[:1], spreadRecs} {
		err := s.Write(t.Context(), "MdeMachineActions", recs)
		if err == nil {
			t.Fatalf("Write of %d records succeeded although every call was refused", len(recs))
		}
		for _, want := range []string{"HTTP 403 OperationFailed", "Monitoring Metrics Publisher", "nothing was dead-lettered"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
	}
	st := s.Stats()
	if files, _ := filepath.Glob(st.DeadLetters); st.DeadLettered != 0 || len(files) != 0 {
		t.Fatalf("%d records dead-lettered (%v) after a refusal of the request", st.DeadLettered, files)
	}
	if got := ten.Received(sim.ReceiverSentinel); got.Records != 0 || got.Rejected[403] == 0 {
		t.Fatalf("receiver: %d accepted, rejections %v", got.Records, got.Rejected)
	}

	ten.SetIngestionRole(true)
	if err := s.Write(t.Context(), "MdeMachineActions", spreadRecs); err != nil {
		t.Fatalf("Write with the role back: %v", err)
	}
	ids := ten.Received(sim.ReceiverSentinel).IDs()
	for _, r := range spreadRecs {
		if ids[r.ID] != 1 {
			t.Errorf("record %s received %d times, want once", r.ID, ids[r.ID])
		}
	}
}

// stallingCred never answers until its context ends, like an authority
// behind a stalled proxy.
type stallingCred struct{}

func (stallingCred) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	<-ctx.Done()
	return azcore.AccessToken{}, ctx.Err()
}

type failingCred struct{}

func (failingCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{}, errors.New("AADSTS7000215: Invalid client secret provided " + testSecret)
}

// newCredSink builds a sink on endpoint with cred and small timeouts.
func newCredSink(t *testing.T, endpoint string, rt http.RoundTripper, cred azcore.TokenCredential, mod func(*Config)) *Sink {
	t.Helper()
	cfg := testConfig(endpoint)
	cfg.DeadLetterDir = t.TempDir()
	cfg.Delivery.AttemptTimeout = 100 * time.Millisecond
	cfg.Delivery.MaxAttempts = 2
	cfg.Delivery.Sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	if mod != nil {
		mod(&cfg)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	deps := sink.Deps{Transport: rt}.WithDefaults()
	log := slog.New(slog.DiscardHandler)
	co, err := clientOptions(deps, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newWithCredential(deps, cfg, co, cred, []string{testSecret}, log)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Start proves the credential: a refused sign-in or an authority that
// never answers fails Start (bounded by attempt_timeout), so the output
// is down before any record is harvested.
func TestStartProvesTheCredential(t *testing.T) {
	tests := []struct {
		name string
		cred azcore.TokenCredential
		want string
	}{
		{"sign-in refused", failingCred{}, "AADSTS7000215"},
		{"authority never answers", stallingCred{}, "no token for the Logs Ingestion API within 100ms (delivery.attempt_timeout)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newCredSink(t, "https://dce-1.westeurope-1.ingest.monitor.azure.com", nil, tt.cred, nil)
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a safety net, not the subject
			defer cancel()
			err := s.Start(ctx)
			if ctx.Err() != nil {
				t.Fatal("Start hung until the test's safety net")
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "sentinel output") {
				t.Fatalf("Start = %v, want an error naming the output and %q", err, tt.want)
			}
			if strings.Contains(err.Error(), testSecret) {
				t.Error("the secret leaked into the error")
			}
			if err := s.Write(t.Context(), "MdeMachineActions", sinktest.Records("MdeMachineActions", 0, 1)); err == nil {
				t.Error("Write after a failed Start succeeded")
			}
		})
	}
	t.Run("good credential", func(t *testing.T) {
		s := newCredSink(t, "https://dce-1.westeurope-1.ingest.monitor.azure.com", nil, staticCred{}, nil)
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// An endpoint that accepts the connection and never answers ends the
// Write with an error naming the output and the attempt timeout.
func TestStalledEndpointNeverHangs(t *testing.T) {
	stop := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(func() { close(stop); srv.Close() })
	s := newCredSink(t, srv.URL, srv.Client().Transport, staticCred{}, nil)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a safety net, not the subject
	defer cancel()
	err := s.Write(ctx, "MdeMachineActions", sinktest.Records("MdeMachineActions", 0, 3))
	if ctx.Err() != nil {
		t.Fatal("Write hung until the test's safety net")
	}
	if err == nil {
		t.Fatal("Write to an endpoint that never answers succeeded")
	}
	t.Logf("error: %v", err)
	for _, want := range []string{"sink sentinel", "no answer within 100ms (delivery.attempt_timeout)", "after 2 attempts"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}

}

// Shutdown does not wait past its context for a Write that hangs.
func TestShutdownIsBoundedByItsContext(t *testing.T) {
	arrived, stop := make(chan struct{}, 1), make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(func() { close(stop); srv.Close() })
	s := newCredSink(t, srv.URL, srv.Client().Transport, staticCred{}, func(c *Config) { c.Delivery.AttemptTimeout = time.Minute })
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	writeCtx, stopWrite := context.WithCancel(t.Context())
	defer stopWrite()
	wrote := make(chan error, 1)
	go func() { wrote <- s.Write(writeCtx, "T", sinktest.Records("T", 0, 1)) }()
	<-arrived // the Write is in flight
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown with a Write in flight = %v, want the context's deadline", err)
	}
	if err := s.Write(t.Context(), "T", sinktest.Records("T", 0, 1)); err == nil || !strings.Contains(err.Error(), "shut down") {
		t.Errorf("Write after Shutdown = %v", err)
	}
	stopWrite()
	if err := <-wrote; err == nil {
		t.Error("the cancelled Write reported success")
	}
}

func TestResolvePathsAndWarnings(t *testing.T) {
	c := DefaultConfig()
	c.DeadLetterDir, c.Auth.ClientSecretFile, c.Auth.CertificateFile = "dl", "/etc/dh/secret", "cert.pem"
	c.ResolvePaths(func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join("/cfg", p)
	})
	if c.DeadLetterDir != "/cfg/dl" || c.Auth.ClientSecretFile != "/etc/dh/secret" || c.Auth.CertificateFile != "/cfg/cert.pem" {
		t.Errorf("paths %q %q %q", c.DeadLetterDir, c.Auth.ClientSecretFile, c.Auth.CertificateFile)
	}
	empty := DefaultConfig()
	empty.ResolvePaths(func(string) string { return "/x" })
	if empty.DeadLetterDir != "" || empty.Auth.ClientSecretFile != "" || empty.Auth.CertificateFile != "" {
		t.Error("an unset path was filled in")
	}

	for _, insecure := range []bool{false, true} {
		s := newCredSink(t, "https://dce-1.westeurope-1.ingest.monitor.azure.com", nil, staticCred{}, func(c *Config) { c.InsecureSkipVerify = insecure })
		var w sink.Warner = s
		got := w.Warnings()
		if insecure != (len(got) == 1 && strings.Contains(got[0], "insecure_skip_verify: true")) {
			t.Errorf("insecure_skip_verify %v: warnings %q", insecure, got)
		}
	}
}

// Without an injected transport the output builds its own, bounded one.
func TestOwnTransportIsBounded(t *testing.T) {
	tr := newHTTPTransport(42 * time.Second)
	if tr.ResponseHeaderTimeout != 42*time.Second || tr.TLSHandshakeTimeout == 0 || tr.DialContext == nil {
		t.Errorf("transport bounds: header %s, handshake %s", tr.ResponseHeaderTimeout, tr.TLSHandshakeTimeout)
	}
}
