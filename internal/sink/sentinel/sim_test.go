package sentinel

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/sim"
	"github.com/defenderharvester/defenderharvester/internal/sink"
)

// simDeps returns deps whose transport dials the emulator for every host
// and trusts only its CA, as the CLI does with --emulate.
func simDeps(t testing.TB, ten *sim.Tenant, srv *sim.Server, secret string) sink.Deps {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ten.CACertPEM()) {
		t.Fatal("emulator CA not parsable")
	}
	var d net.Dialer
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, srv.Addr())
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return sink.Deps{
		Transport: tr, Emulated: true, DataDir: t.TempDir(),
		Getenv: func(k string) string {
			if k == SecretEnv {
				return secret
			}
			return ""
		},
	}
}

func TestAgainstEmulator(t *testing.T) {
	ten, err := sim.New(sim.Options{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ten.Serve("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	info := ten.Info(srv)
	creds := ten.Credentials()

	tests := []struct {
		name     string
		clientID string
		secret   string
		wantErr  string
	}{
		{name: "client secret delivers every record once", clientID: creds.ClientID, secret: creds.ClientSecret},
		// The credential is proven at Start: a wrong secret fails the start
		// (the pipeline then spools this output's share) instead of the
		// first Write.
		{name: "wrong secret fails Start without leaking it", clientID: creds.ClientID, secret: "wrong-" + creds.ClientSecret, wantErr: "cannot get a token for the Logs Ingestion API"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ten.Received(sim.ReceiverSentinel)
			cfg := *DefaultConfig()
			cfg.Endpoint = info.Sentinel.Endpoint
			cfg.DCRImmutableID = info.Sentinel.DCRImmutableID
			cfg.Auth = AuthConfig{Method: AuthClientSecret, TenantID: creds.TenantID, ClientID: tt.clientID}
			cfg.Delivery.MaxBytes = 200_000 // several calls
			s, err := New(simDeps(t, ten, srv, tt.secret), cfg)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			err = s.Start(t.Context())
			defer func() { _ = s.Shutdown(context.Background()) }()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "AADSTS7000215") {
					t.Fatalf("Start = %v, want an error containing %q and Entra's code", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), tt.secret) {
					t.Fatal("error leaks the client secret")
				}
				if ten.Received(sim.ReceiverSentinel).Requests != before.Requests {
					t.Fatal("an upload was attempted although Start failed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tablesUsed := []string{"MdeMachineActions", "MdeTimeline"}
			var ids []string
			for i, table := range tablesUsed {
				recs := bigRecords(table, 600, 900)
				for j := range recs {
					recs[j].ID = table + "-" + string(rune('a'+i)) + "-" + recs[j].ID
					ids = append(ids, recs[j].ID)
				}
				if err := s.Write(t.Context(), table, recs); err != nil {
					t.Fatalf("Write %s: %v", table, err)
				}
			}
			st := ten.Received(sim.ReceiverSentinel)
			got := st.IDs()
			for _, id := range ids {
				if got[id] != 1 {
					t.Errorf("record %s received %d times, want exactly once", id, got[id])
				}
			}
			if st.Records-before.Records != len(ids) {
				t.Errorf("receiver accepted %d records, want %d", st.Records-before.Records, len(ids))
			}
			if st.MaxRequestBytes > MaxRequestBytes {
				t.Errorf("a request was %d bytes on the wire", st.MaxRequestBytes)
			}
			if s.Stats().Requests < 4 {
				t.Errorf("%d requests: the batches were not split at max_bytes", s.Stats().Requests)
			}
		})
	}
}
