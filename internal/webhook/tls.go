package webhook

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// reloadEvery is how often the certificate files are checked for a
// newer version (cert-manager, certbot and Kubernetes secrets replace
// them in place).
const reloadEvery = 30 * time.Second

// TLSFromFiles serves the PEM certificate chain and key of certFile and
// keyFile (TLS 1.2 or later), picking up new versions of the files
// without a restart: they are checked at most every 30 s, during a
// handshake, and a version that does not load is logged and the last
// good one kept. The key file must be readable by its owner only, like
// every secret file.
func TLSFromFiles(certFile, keyFile string, checkKey func(string) error, log *slog.Logger) (*tls.Config, error) {
	r, err := newCertReloader(certFile, keyFile, checkKey, log)
	if err != nil {
		return nil, err
	}
	return r.config(), nil
}

func newCertReloader(certFile, keyFile string, checkKey func(string) error, log *slog.Logger) (*certReloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &certReloader{certFile: certFile, keyFile: keyFile, checkKey: checkKey, log: log, now: time.Now}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) config() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.get}
}

type certReloader struct {
	certFile, keyFile string
	checkKey          func(string) error
	log               *slog.Logger
	now               func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	modCert   time.Time
	modKey    time.Time
	checkedAt time.Time
}

func (r *certReloader) load() error {
	if r.checkKey != nil {
		if err := r.checkKey(r.keyFile); err != nil {
			return fmt.Errorf("serve.webhook.tls_key_file: %w", err)
		}
	}
	ci, err := os.Stat(r.certFile)
	if err != nil {
		return fmt.Errorf("serve.webhook.tls_cert_file: %w", err)
	}
	ki, err := os.Stat(r.keyFile)
	if err != nil {
		return fmt.Errorf("serve.webhook.tls_key_file: %w", err)
	}
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		// The error names the files' problem (no PEM block, key does not
		// match), never key material.
		return fmt.Errorf("serve.webhook.tls_cert_file / tls_key_file: %w", err)
	}
	r.mu.Lock()
	r.cert, r.modCert, r.modKey = &c, ci.ModTime(), ki.ModTime()
	r.mu.Unlock()
	return nil
}

// get is tls.Config.GetCertificate: the current certificate, reloaded
// first when the files changed.
func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	now := r.now()
	due := now.Sub(r.checkedAt) >= reloadEvery
	if due {
		r.checkedAt = now
	}
	cur, modCert, modKey := r.cert, r.modCert, r.modKey
	r.mu.Unlock()
	if due && r.changed(modCert, modKey) {
		if err := r.load(); err != nil {
			r.log.Warn("the webhook's new certificate files do not load; still serving the previous certificate", "err", err)
		} else {
			r.log.Info("the webhook's certificate was reloaded", "cert_file", r.certFile)
			r.mu.Lock()
			cur = r.cert
			r.mu.Unlock()
		}
	}
	return cur, nil
}

func (r *certReloader) changed(modCert, modKey time.Time) bool {
	ci, err1 := os.Stat(r.certFile)
	ki, err2 := os.Stat(r.keyFile)
	return err1 == nil && err2 == nil && (!ci.ModTime().Equal(modCert) || !ki.ModTime().Equal(modKey))
}
