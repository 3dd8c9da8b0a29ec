package sim

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"time"
)

// ---- Management Activity API webhooks ----

// webhookClient posts validations and notifications; it trusts the
// emulator's CA (and the system roots), so a listener with a certificate
// from IssueServerCertificate validates.
func (t *Tenant) webhookClient() *http.Client {
	root := t.root
	root.hookOnce.Do(func() {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pool.AppendCertsFromPEM(root.pki.caPEM)
		root.hookClient = &http.Client{
			Timeout: 10 * time.Second,
			Transport: &http.Transport{
				TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
				ForceAttemptHTTP2:   true,
				MaxIdleConnsPerHost: 4,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	})
	return root.hookClient
}

// post sends body to the webhook and reports whether it answered 200.
func (t *Tenant) hookPost(ctx context.Context, h *auditHook, body []byte, validationCode string) error {
	rq, err := http.NewRequestWithContext(ctx, http.MethodPost, h.Address, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("The address is not a valid URL.")
	}
	rq.Header.Set("Content-Type", "application/json; charset=utf-8")
	if h.AuthID != "" {
		rq.Header.Set("Webhook-AuthID", h.AuthID)
	}
	if validationCode != "" {
		rq.Header.Set("Webhook-ValidationCode", validationCode)
	}
	res, err := t.webhookClient().Do(rq)
	if err != nil {
		return errors.New("The endpoint could not be reached.")
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return errors.New("The endpoint did not return HTTP 200.")
	}
	return nil
}

// validateWebhook is the handshake the service runs right after start.
func (t *Tenant) validateWebhook(ctx context.Context, h *auditHook) error {
	code := correlationID()
	return t.hookPost(ctx, h, mustJSON(map[string]string{"validationCode": code}), code)
}

// NotifyNow delivers, for every enabled subscription with an enabled
// webhook, the blobs created (data clock) since its last delivery: JSON
// arrays of at most 100 notifications, each retried on a non-200 answer
// (AuditWebhookRetries times, backoff AuditWebhookBackoff doubling), every
// attempt recorded in the notifications history. A batch whose every
// attempt failed ends the content type's round: its blobs and the later
// ones are offered again next round. After AuditWebhookDisableAfter such
// batches in a row the webhook is disabled (list shows "status":
// "disabled") and gets nothing until a start with it re-enables it;
// notifications then resume with the blobs created since the last
// successful delivery. It returns how many notifications were delivered
// (answered 200). The delivery loop (AuditWebhookPoll) calls it too.
func (t *Tenant) NotifyNow(ctx context.Context) int {
	a := t.audit
	a.deliverMu.Lock()
	defer a.deliverMu.Unlock()
	now := t.now().UTC()
	type job struct {
		ct       string
		hook     *auditHook
		clientID string
		cursor   time.Time
	}
	var jobs []job
	a.mu.Lock()
	for _, ct := range auditCTs {
		if s := a.subs[ct]; s != nil && s.enabled && s.hook.active() && !s.hook.expired(now) {
			jobs = append(jobs, job{ct, s.hook, s.clientID, s.hook.cursor})
		}
	}
	a.mu.Unlock()
	delivered := 0
	for _, j := range jobs {
		from := j.cursor
		if from.Before(now.Add(-auditRetention)) {
			from = now.Add(-auditRetention)
		}
		blobs := t.auditBlobsIn(auditCTIndex(j.ct), from.Add(time.Millisecond), now.Add(time.Millisecond), now)
		cursor := now // every blob up to now was notified, unless a batch fails
		for len(blobs) > 0 {
			n := min(100, len(blobs))
			batch := blobs[:n]
			blobs = blobs[n:]
			items := make([]map[string]any, 0, n)
			for _, b := range batch {
				it := t.contentItem(j.ct, b.id, b.created)
				it["tenantId"], it["clientId"] = t.w.tenantID, j.clientID
				items = append(items, it)
			}
			body := mustJSON(items)
			backoff := t.opts.AuditWebhookBackoff
			ok := false
			for attempt := 0; attempt <= t.opts.AuditWebhookRetries; attempt++ {
				if attempt > 0 {
					if !sleepCtx(ctx, backoff) {
						return delivered
					}
					backoff *= 2
				}
				err := t.hookPost(ctx, j.hook, body, "")
				status := "Succeeded"
				if err != nil {
					status = "Failed"
				}
				t.recordAttempts(j.ct, batch, t.now().UTC(), status)
				if err == nil {
					delivered += n
					ok = true
					break
				}
			}
			a.mu.Lock()
			if ok {
				j.hook.failures = 0
				a.mu.Unlock()
				continue
			}
			// Offer this batch again: the cursor stops just before it.
			cursor = batch[0].created.Add(-time.Millisecond)
			j.hook.failures++
			if limit := t.webhookDisableAfter(); limit > 0 && j.hook.failures >= limit {
				j.hook.disabled = true
			}
			a.mu.Unlock()
			break
		}
		a.mu.Lock()
		if cursor.After(j.hook.cursor) {
			j.hook.cursor = cursor
		}
		a.mu.Unlock()
	}
	return delivered
}

// webhookDisableAfter is AuditWebhookDisableAfter with its default; 0
// means never.
func (t *Tenant) webhookDisableAfter() int {
	switch n := t.opts.AuditWebhookDisableAfter; {
	case n == 0:
		return defaultAuditWebhookDisableAfter
	case n < 0:
		return 0
	default:
		return n
	}
}

// defaultAuditWebhookDisableAfter is AuditWebhookDisableAfter's default.
const defaultAuditWebhookDisableAfter = 3

func (t *Tenant) recordAttempts(ct string, batch []auditBlob, sent time.Time, status string) {
	a := t.audit
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, b := range batch {
		a.history = append(a.history, auditNotification{ct: ct, id: b.id, created: b.created, sent: sent, status: status})
	}
	if over := len(a.history) - maxAuditHistory; over > 0 {
		a.history = append(a.history[:0:0], a.history[over:]...)
	}
}

// deliveryLoop notifies every AuditWebhookPoll while a webhook exists.
func (t *Tenant) deliveryLoop() {
	tk := time.NewTicker(t.opts.AuditWebhookPoll)
	defer tk.Stop()
	for range tk.C {
		t.audit.mu.Lock()
		any := false
		for _, s := range t.audit.subs {
			any = any || (s.enabled && s.hook.active())
		}
		if !any {
			t.audit.loop = false
			t.audit.mu.Unlock()
			return
		}
		t.audit.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		t.NotifyNow(ctx)
		cancel()
	}
}

// IssueServerCertificate mints a TLS server certificate from the
// emulator's CA for hosts (DNS names or IP addresses; default 127.0.0.1 and
// localhost), e.g. for a webhook listener the emulator must trust.
func (t *Tenant) IssueServerCertificate(hosts ...string) (tls.Certificate, error) {
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "localhost"}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("sim: generating key: %w", err)
	}
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("sim: serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	p := t.root.pki
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("sim: creating certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der, p.ca.Raw}, PrivateKey: key}, nil
}

// IssueServerCertificatePEM is IssueServerCertificate as PEM: the chain
// (leaf, then the emulator's CA) and the PKCS #8 private key, ready for
// serve.webhook.tls_cert_file and tls_key_file.
func (t *Tenant) IssueServerCertificatePEM(hosts ...string) (certPEM, keyPEM []byte, err error) {
	c, err := t.IssueServerCertificate(hosts...)
	if err != nil {
		return nil, nil, err
	}
	for _, der := range c.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sim: encoding the key: %w", err)
	}
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), nil
}

// expired reports whether the webhook's expiration has passed at now.
func (h *auditHook) expired(now time.Time) bool {
	if h.Expiration == "" {
		return false
	}
	exp, err := parseAuditTime(h.Expiration)
	return err == nil && !now.Before(exp)
}
