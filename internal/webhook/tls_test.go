package webhook

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with serial
// sn to cert and key files (key 0600), and sets their time to mod.
func writeCert(t *testing.T, certFile, keyFile string, sn int64, mod time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(sn), Subject: pkix.Name{CommonName: "webhook.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"webhook.test"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chtimes(f, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
}

func serial(t *testing.T, cfg *tls.Config) int64 {
	t.Helper()
	c, err := cfg.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.SerialNumber.Int64()
}

// TestCertificateReloaded: a renewed certificate (cert-manager, certbot)
// is served without a restart; a broken renewal keeps the last good one;
// a key others may read is refused.
func TestCertificateReloaded(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	writeCert(t, cert, key, 1, t0)
	checked := 0
	r, err := newCertReloader(cert, key, func(string) error { checked++; return nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := r.config()
	if cfg.MinVersion < tls.VersionTLS12 || checked != 1 {
		t.Fatalf("min version %x, key checked %d times", cfg.MinVersion, checked)
	}
	clk := t0
	r.now = func() time.Time { return clk }
	if serial(t, cfg) != 1 {
		t.Fatal("not serving the configured certificate")
	}
	writeCert(t, cert, key, 2, t0.Add(time.Minute))
	clk = clk.Add(time.Second)
	if serial(t, cfg) != 1 {
		t.Fatal("the files were read again within 30 s")
	}
	clk = clk.Add(reloadEvery)
	if serial(t, cfg) != 2 {
		t.Fatal("a renewed certificate was not picked up")
	}
	if err := os.WriteFile(cert, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(cert, t0.Add(2*time.Minute), t0.Add(2*time.Minute))
	clk = clk.Add(reloadEvery)
	if serial(t, cfg) != 2 {
		t.Fatal("a broken renewal replaced the working certificate")
	}

	if _, err := TLSFromFiles(cert, key, nil, nil); err == nil || !strings.Contains(err.Error(), "tls_cert_file") {
		t.Fatalf("a file without a certificate: %v", err)
	}
	writeCert(t, cert, key, 3, t0)
	refuse := func(string) error { return os.ErrPermission }
	if _, err := TLSFromFiles(cert, key, refuse, nil); err == nil || !strings.Contains(err.Error(), "tls_key_file") {
		t.Fatalf("a key file the check refuses: %v", err)
	}
}
