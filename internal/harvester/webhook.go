package harvester

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/pipeline"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/auditlog"
	"github.com/defenderharvester/defenderharvester/internal/webhook"
)

// Webhook consumption: what the listener accepted is fetched in batches,
// at most pushBatch notifications or pushWait after the first, per
// content type.
const (
	pushBatch = 200
	pushWait  = 2 * time.Second
)

// hookedTenant is a tenant's audit log webhook: the listener (mounted by
// the caller on its server) and the source that fetches what it accepts.
type hookedTenant struct {
	src      auditlog.Hooked
	listener *webhook.Listener
	settings auditlog.WebhookSettings
}

// openWebhook builds the listener of the tenant's audit log source when
// its webhook.address is set (nil when not, or when the source is not
// harvested).
func (t *Tenant) openWebhook(cfg config.Webhook) error {
	src, ok := t.sources[auditlog.Name].(auditlog.Hooked)
	if !ok {
		return nil
	}
	ws, ok := src.Webhook()
	if !ok {
		return nil
	}
	host, ok := mde.Clouds[ws.Cloud]
	if !ok {
		return fmt.Errorf("sources.auditlog.cloud %q is not one of commercial, gcc, gcchigh, dod", ws.Cloud)
	}
	l, err := webhook.New(webhook.Options{
		AuthID: ws.AuthID, TenantID: t.tenant, Host: host, ContentTypes: ws.ContentTypes, Path: ws.Path,
		MaxBodyBytes: cfg.MaxBodyBytes, MaxConcurrent: cfg.MaxConcurrent, QueueSize: cfg.QueueSize,
		Logger: t.log, Now: t.req.Now,
	})
	if err != nil {
		return fmt.Errorf("sources.auditlog.webhook: %w", err)
	}
	t.hook = &hookedTenant{src: src, listener: l, settings: ws}
	return nil
}

// Webhook is the tenant's audit log webhook listener, nil unless the
// tenant was opened with Request.Webhook and sources.auditlog.webhook.address
// is set. The caller mounts it (webhook.Server) before ServeWebhook.
func (t *Tenant) Webhook() *webhook.Listener {
	if t.hook == nil {
		return nil
	}
	return t.hook.listener
}

// PushObserver is told about each batch of notified content delivered
// (metrics).
type PushObserver func(res pipeline.Result, notifications int)

// RegisterWebhook registers the webhook with the Management Activity API
// (subscriptions/start with the address and AuthID, for every content
// type not already so); from then on the source's subscription checks
// keep it registered. The listener must be reachable by then: the
// service validates it at once. Call it before the first scheduled run,
// or that run may start a subscription without the webhook and the
// 15-minute start throttle delays the registration. A failure is logged
// and returned; the scheduled polls harvest everything meanwhile, so
// nothing is missed, only later.
func (t *Tenant) RegisterWebhook(ctx context.Context) error {
	h := t.hook
	if h == nil {
		return nil
	}
	log := t.log.With("source", auditlog.Name, "component", "webhook")
	if err := h.src.UseWebhook(ctx); err != nil {
		log.Error("registering the webhook failed; the scheduled polls still harvest everything, and the registration is tried again at the next subscription check",
			"address", h.settings.Address, "err", err)
		return err
	}
	log.Info("webhook registered", "address", h.settings.Address, "content_types", len(h.settings.ContentTypes))
	return nil
}

// ServeWebhook fetches and delivers what the listener accepts until its
// queue closes (Listener.Shutdown) or ctx ends.
func (t *Tenant) ServeWebhook(ctx context.Context, observe PushObserver) {
	h := t.hook
	if h == nil {
		return
	}
	log := t.log.With("source", auditlog.Name, "component", "webhook")
	queue := h.listener.Notifications()
	for {
		batch, open := nextBatch(ctx, queue)
		if len(batch) > 0 {
			t.pushAll(ctx, log, batch, observe)
		}
		if !open || ctx.Err() != nil {
			return
		}
	}
}

// nextBatch waits for a notification, then takes what follows within
// pushWait, up to pushBatch. open is false once the queue is closed.
func nextBatch(ctx context.Context, queue <-chan webhook.Notification) (batch []webhook.Notification, open bool) {
	select {
	case n, ok := <-queue:
		if !ok {
			return nil, false
		}
		batch = append(batch, n)
	case <-ctx.Done():
		return nil, true
	}
	timer := time.NewTimer(pushWait)
	defer timer.Stop()
	for len(batch) < pushBatch {
		select {
		case n, ok := <-queue:
			if !ok {
				return batch, false
			}
			batch = append(batch, n)
		case <-timer.C:
			return batch, true
		case <-ctx.Done():
			return batch, true
		}
	}
	return batch, true
}

// pushAll delivers a batch, one push per content type. A failed push is
// logged: the scheduled poll reads that time again, so its records are
// late, not lost.
func (t *Tenant) pushAll(ctx context.Context, log *slog.Logger, batch []webhook.Notification, observe PushObserver) {
	byType := map[string][]mde.Content{}
	var order []string
	for _, n := range batch {
		if _, ok := byType[n.ContentType]; !ok {
			order = append(order, n.ContentType)
		}
		byType[n.ContentType] = append(byType[n.ContentType], mde.Content{
			ContentType: n.ContentType, ContentID: n.ContentID, ContentURI: n.ContentURI,
			ContentCreated: n.ContentCreated, ContentExpiration: n.ContentExpiration,
		})
	}
	src := t.hook.src
	for _, ct := range order {
		blobs := byType[ct]
		res := t.p.Push(ctx, t.tenant, src, ct, func(ctx context.Context, emit source.Emit) error {
			return src.FetchNotified(ctx, ct, blobs, emit)
		})
		if observe != nil {
			observe(res, len(blobs))
		}
		switch {
		case res.Err == nil:
			src.Delivered(ct, blobs)
			log.Info("delivered notified content", "content_type", ct, "blobs", len(blobs), "new", res.New, "duplicates", res.Duplicates,
				"duration", res.Duration.Round(time.Millisecond).String())
		case errors.Is(res.Err, context.Canceled) && ctx.Err() != nil:
			return
		default:
			log.Warn("notified content could not be delivered now; the scheduled poll reads it", "content_type", ct, "blobs", len(blobs), "err", res.Err)
		}
	}
}

// WebhookPath is the path tenant config tc's audit log webhook is served
// on ("" when tc does not harvest the audit log with a webhook address):
// the path of sources.auditlog.webhook.address, {tenant} replaced by the
// tenant's name (or, in a single-tenant config, its id).
func WebhookPath(tc *config.Config) (string, error) {
	fs, err := Select(tc, nil)
	if err != nil {
		return "", err
	}
	for _, f := range fs {
		if f.Name != auditlog.Name {
			continue
		}
		settings, err := sourceSettings(tc, f)
		if err != nil {
			return "", err
		}
		c, ok := settings.(*auditlog.Config)
		if !ok {
			return "", nil
		}
		_, path, err := c.Webhook.Expand(tc.Name, tc.TenantID)
		if err != nil {
			return "", fmt.Errorf("sources.auditlog.%w", err)
		}
		return path, nil
	}
	return "", nil
}

// WebhookTLS is the TLS of the webhook listener: the certificate files
// (reloaded when replaced, the key checked like any secret file), nil
// when plain_http says a proxy in front terminates TLS, an error when
// neither is set — the service only posts to https.
func WebhookTLS(c config.Webhook, log *slog.Logger) (*tls.Config, error) {
	switch {
	case c.TLSCertFile != "":
		return webhook.TLSFromFiles(c.TLSCertFile, c.TLSKeyFile, auth.CheckPrivateFile, log)
	case c.PlainHTTP:
		return nil, nil
	}
	return nil, errors.New("serve.webhook: the Management Activity API only posts to https addresses: set tls_cert_file and tls_key_file (PEM), or plain_http: true when a proxy in front terminates TLS")
}
