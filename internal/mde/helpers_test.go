package mde

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/auth"
)

// sleeps records the waits the doer asked for, without waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

type countLimiter struct {
	mu sync.Mutex
	n  int
}

func (c *countLimiter) Wait(ctx context.Context) error {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return ctx.Err()
}

// plainServer serves h on loopback and returns a transport that reaches
// it for any host, as the emulator transport does.
func plainServer(t *testing.T, h http.Handler) http.RoundTripper {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	rt, err := NewTransport(TransportOptions{EmulatorAddress: srv.Listener.Addr().String(), Plaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

const testSccauth, testXSRF = "SCCSECRETVALUE", "XSRF%2FSECRET"

func newTestPortal(t *testing.T, h http.Handler, mod func(*PortalOptions)) (*PortalClient, *sleeps) {
	t.Helper()
	sess, err := auth.NewStaticCookies(testSccauth, testXSRF)
	if err != nil {
		t.Fatal(err)
	}
	sl := &sleeps{}
	o := PortalOptions{Session: sess, ClientOptions: ClientOptions{
		Transport: plainServer(t, h), Sleep: sl.sleep, Limiter: &countLimiter{},
	}}
	if mod != nil {
		mod(&o)
	}
	c, err := NewPortalClient(o)
	if err != nil {
		t.Fatal(err)
	}
	return c, sl
}

func newTestPublic(t *testing.T, h http.Handler, mod func(*PublicOptions)) (*PublicAPIClient, *sleeps) {
	t.Helper()
	sl := &sleeps{}
	o := PublicOptions{Tokens: auth.NewStaticToken("TOKENSECRET"), ClientOptions: ClientOptions{
		Transport: plainServer(t, h), Sleep: sl.sleep, Limiter: &countLimiter{},
	}}
	if mod != nil {
		mod(&o)
	}
	c, err := NewPublicAPIClient(o)
	if err != nil {
		t.Fatal(err)
	}
	return c, sl
}

// testCA makes a CA and a leaf certificate for the given DNS names.
func testCA(t *testing.T, names ...string) (caPEM []byte, leaf tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
