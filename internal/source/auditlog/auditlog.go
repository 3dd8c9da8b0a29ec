// Package auditlog harvests the Unified Audit Log through the Office 365
// Management Activity API (event source "auditlog"; polling, with webhook
// mode on top): one part per content type, windows on the blobs'
// contentCreated, one table per content type, and the Defender for
// Endpoint response actions (Live Response, isolation, investigation
// packages …) a second time in MdeAuditResponseActions.
//
// For a window of one content type it makes sure the subscription is on
// (subscriptions/list once an hour; start when missing or when the
// listing answers AF20022/AF20023, at most one start per content type per
// 15 minutes), lists the content pages (following the validated
// NextPageUri), fetches each blob whose contentCreated lies in the window
// and emits every audit record. Records are re-published by the service
// in later blobs; the pipeline drops them by id for 7 days
// (Windowing.Remember). No window starts more than 7 days − 10 minutes in
// the past: what is older cannot be listed and is reported once.
//
// Webhook mode (webhook.address set): the source is Hooked. Once the
// listener is up, UseWebhook makes every subscription carry the webhook
// (and keeps it so at each hourly check); FetchNotified reads the blobs
// of notifications exactly as a poll would, and Delivered tells later
// polls to skip the blobs already delivered from notifications. Polling
// goes on: the webhook only lowers the latency.
package auditlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil"
)

const (
	// Name is the source's config key.
	Name = "auditlog"
	// TableResponseActions holds the Defender for Endpoint response
	// actions (Workload MicrosoftDefenderForEndpoint).
	TableResponseActions = "MdeAuditResponseActions"
	// MDEWorkload is the Workload of Defender for Endpoint records.
	MDEWorkload = "MicrosoftDefenderForEndpoint"
	// RecordTypeResponseActions is MSDEResponseActions.
	RecordTypeResponseActions = 110

	// Retention is how long the API keeps content: windows start no
	// earlier than now − (Retention − retentionMargin).
	Retention       = 7 * 24 * time.Hour
	retentionMargin = 10 * time.Minute
	maxPages        = 10000
	subsTTL         = time.Hour
)

// Tables maps each content type to its table.
var Tables = map[string]string{
	mde.ContentAzureAD:    "O365AuditAzureActiveDirectory",
	mde.ContentExchange:   "O365AuditExchange",
	mde.ContentSharePoint: "O365AuditSharePoint",
	mde.ContentGeneral:    "O365AuditGeneral",
	mde.ContentDLP:        "O365DLPAll",
}

// ResponseActions are the Defender for Endpoint operations that go to
// TableResponseActions besides every record of type 110
// (MSDEResponseActions).
var ResponseActions = map[string]bool{
	"RunLiveResponseSession": true, "RunLiveResponseApi": true, "LiveResponseGetFile": true,
	"CollectInvestigationPackage": true, "RunAntiVirusScan": true, "IsolateDevice": true,
	"ReleaseFromIsolation": true,
}

// Config are the source's settings.
type Config struct {
	// ContentTypes to read (default all five).
	ContentTypes []string `yaml:"content_types"`
	// PublisherIdentifier is sent on every call for a dedicated quota
	// (default: the tenant id).
	PublisherIdentifier string `yaml:"publisher_identifier"`
	// Cloud is commercial (manage.office.com), gcc, gcchigh or dod.
	Cloud string `yaml:"cloud"`
	// Webhook makes the service push notifications to a listener
	// (webhook mode); off while Webhook.Address is empty.
	Webhook           WebhookConfig `yaml:"webhook"`
	srcutil.Windowing `yaml:",inline"`
}

// NewConfig returns the defaults: overlap 1h re-reads the last hour of
// blobs for those listed late (duplicates are dropped by id), max_window
// 24h is the API's limit on one listing, delay 5m keeps the window end
// behind blobs still being published.
func NewConfig() *Config {
	return &Config{
		ContentTypes: append([]string(nil), mde.ContentTypes...),
		Cloud:        "commercial",
		Webhook:      WebhookConfig{AuthIDEnv: DefaultAuthIDEnv},
		Windowing: srcutil.Windowing{
			Overlap: source.Duration(time.Hour), MaxWindow: source.Duration(24 * time.Hour),
			Delay: source.Duration(5 * time.Minute),
		},
	}
}

// Validate checks the values (config.Validator); errors name the key.
func (c *Config) Validate() error {
	if len(c.ContentTypes) == 0 {
		return fmt.Errorf("content_types is empty; use some of %s", strings.Join(mde.ContentTypes, ", "))
	}
	seen := map[string]bool{}
	for _, ct := range c.ContentTypes {
		if _, ok := Tables[ct]; !ok {
			return fmt.Errorf("content_types: %q is not one of %s", ct, strings.Join(mde.ContentTypes, ", "))
		}
		if seen[ct] {
			return fmt.Errorf("content_types: %s is listed twice", ct)
		}
		seen[ct] = true
	}
	if _, ok := mde.Clouds[c.Cloud]; !ok && c.Cloud != "" {
		return fmt.Errorf("cloud %q is not one of commercial, gcc, gcchigh, dod", c.Cloud)
	}
	if p := c.PublisherIdentifier; p != "" && !mde.IsGUID(p) {
		return errors.New("publisher_identifier must be a GUID (your tenant id, as Microsoft suggests)")
	}
	if err := c.Webhook.validate(); err != nil {
		return err
	}
	return c.Windowing.CheckValues(24 * time.Hour)
}

// ResolvePaths makes a relative webhook.auth_id_file relative to the
// config file's folder (config.PathResolver).
func (c *Config) ResolvePaths(resolve func(string) string) {
	if c.Webhook.AuthIDFile != "" {
		c.Webhook.AuthIDFile = resolve(c.Webhook.AuthIDFile)
	}
}

// Rules are the window rules: the configured ones, and ids kept for the
// API's 7-day retention.
func (c *Config) Rules() source.Windowing {
	w := c.Windowing.Rules()
	w.Remember = Retention
	return w
}

type src struct {
	srcutil.Meta
	feed mde.ActivityFeed
	cfg  Config
	log  *slog.Logger
	now  func() time.Time

	// hook is the resolved webhook (nil: webhook.address not set).
	hook *hookConf
	// delivered are the blobs delivered from notifications: polls skip
	// them; skipped counts the blobs so skipped.
	delivered *deliveredSet
	skipped   atomic.Int64

	mu        sync.Mutex
	subs      map[string]mde.Subscription // by content type, as last listed (or started)
	subsAt    time.Time
	lastStart map[string]time.Time
	warned    map[string]bool // parts whose lost range was reported
	// hookOn: UseWebhook was called, every start carries the webhook.
	hookOn     bool
	hookWarned map[string]bool // content types whose failed webhook start was reported
}

var (
	_ source.PartitionedSource = (*src)(nil)
	_ source.Parallel          = (*src)(nil)
	_ Hooked                   = (*src)(nil)
)

func (s *src) Windowing() source.Windowing { return s.cfg.Rules() }

// workers is how many (content type, day) windows are read at once: a
// week is 35 windows of hundreds of blobs, each blob a request; the
// client's limit (2,000 requests a minute, the documented baseline)
// bounds them together.
const workers = 5

// Workers makes the pipeline read several windows at once (source.Parallel).
func (s *src) Workers() int { return workers }

// Parts are the configured content types.
func (s *src) Parts(context.Context) ([]string, error) {
	return append([]string(nil), s.cfg.ContentTypes...), nil
}

// Fetch reads every content type (FetchPart in turn).
func (s *src) Fetch(ctx context.Context, w source.Window, emit source.Emit) error {
	var errs []error
	for _, ct := range s.cfg.ContentTypes {
		if err := s.FetchPart(ctx, ct, w, emit); err != nil {
			if ctx.Err() != nil {
				return err
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// FetchPart emits the records of the blobs of one content type whose
// contentCreated lies in w.
func (s *src) FetchPart(ctx context.Context, ct string, w source.Window, emit source.Emit) error {
	if _, ok := Tables[ct]; !ok {
		return fmt.Errorf("%s: unknown part %q", Name, ct)
	}
	now := s.now().UTC()
	limit := ceilSecond(now.Add(-(Retention - retentionMargin)))
	from, to := w.From, w.To
	if from.Before(limit) {
		lostTo := minTime(to, limit)
		s.warnLost(ct, from, lostTo)
		from = limit
	}
	if !from.Before(to) {
		return nil
	}
	if err := s.ensure(ctx, ct); err != nil {
		return fmt.Errorf("%s %s: %w", Name, ct, err)
	}
	from, to = from.UTC().Truncate(time.Second), ceilSecond(to.UTC())
	for _, c := range srcutil.Chunks(source.Window{From: from, To: to}, 24*time.Hour) {
		if err := s.list(ctx, ct, c, w, emit); err != nil {
			return fmt.Errorf("%s %s: %w", Name, ct, err)
		}
	}
	return nil
}

// warnLost reports once per part the range older than the API keeps.
func (s *src) warnLost(ct string, from, to time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.warned[ct] {
		return
	}
	s.warned[ct] = true
	s.log.Warn("the Management Activity API keeps content for 7 days: this range cannot be read and is skipped",
		"source", Name, "content_type", ct, "from", from.UTC().Format(time.RFC3339), "to", to.UTC().Format(time.RFC3339))
}

// ensure makes sure the subscription of ct is enabled: the list is read
// once an hour, a missing or disabled subscription is started. Once
// UseWebhook was called, an enabled subscription whose webhook is not
// ours (absent, disabled, another address or authId) is started again
// with it; when that cannot be done now (the start throttle, a failed
// validation) polling goes on and it is retried at the next check.
func (s *src) ensure(ctx context.Context, ct string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.subs == nil || s.now().Sub(s.subsAt) >= subsTTL {
		if err := s.listLocked(ctx); err != nil {
			return err
		}
	}
	sub, listed := s.subs[ct]
	enabled := listed && sub.Enabled()
	if !s.hookOn {
		if enabled {
			return nil
		}
		return s.startLocked(ctx, ct)
	}
	if enabled && s.hook.matches(sub.Webhook) {
		return nil
	}
	err := s.startLocked(ctx, ct)
	if err == nil || !enabled {
		return err
	}
	// The subscription is on: polling reads everything; the webhook only
	// lowers the latency.
	if !s.hookWarned[ct] {
		s.hookWarned[ct] = true
		s.log.Warn("could not register the webhook on the subscription; polling goes on and the start is retried at the next check",
			"source", Name, "content_type", ct, "error", err)
	} else {
		s.log.Debug("the webhook is still not registered on the subscription", "source", Name, "content_type", ct, "error", err)
	}
	return nil
}

// listLocked reads subscriptions/list into s.subs.
func (s *src) listLocked(ctx context.Context) error {
	subs, err := s.feed.Subscriptions(ctx)
	if err != nil {
		return fmt.Errorf("listing subscriptions: %w", err)
	}
	s.subs, s.subsAt = make(map[string]mde.Subscription, len(subs)), s.now()
	for _, sub := range subs {
		s.subs[sub.ContentType] = sub
	}
	return nil
}

// startLocked starts the subscription of ct — with the webhook once
// UseWebhook was called — at most once per 15 minutes.
func (s *src) startLocked(ctx context.Context, ct string) error {
	now := s.now()
	if last, ok := s.lastStart[ct]; ok && now.Sub(last) < mde.StartThrottleInterval {
		why := "the subscription is not enabled"
		if s.hookOn && s.subs[ct].Enabled() {
			why = "the subscription does not carry the webhook"
		}
		return fmt.Errorf("%s and was started %s ago; the API allows one start per 15 minutes: retry after %s",
			why, now.Sub(last).Round(time.Second), last.Add(mde.StartThrottleInterval).UTC().Format(time.RFC3339))
	}
	s.lastStart[ct] = now
	var spec *mde.WebhookSpec
	if s.hookOn {
		spec = &s.hook.spec
	}
	if err := s.feed.StartSubscription(ctx, ct, spec); err != nil {
		if spec != nil {
			return fmt.Errorf("starting the subscription with the webhook: %w", err)
		}
		return fmt.Errorf("starting the subscription: %w", err)
	}
	sub := mde.Subscription{ContentType: ct, Status: "enabled"}
	if spec == nil {
		s.subs[ct] = sub
		s.log.Info("started the Management Activity API subscription; its first content can take up to 12 hours to appear",
			"source", Name, "content_type", ct)
		return nil
	}
	sub.Webhook = &mde.SubscriptionWebhook{Status: "enabled", Address: spec.Address, AuthID: spec.AuthID, Expiration: spec.Expiration}
	s.subs[ct] = sub
	delete(s.hookWarned, ct)
	s.log.Info("started the Management Activity API subscription with the webhook", "source", Name, "content_type", ct,
		"webhook_host", s.hook.host)
	return nil
}

// resubscribe handles AF20022/AF20023 from a listing.
func (s *src) resubscribe(ctx context.Context, ct string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.subs == nil {
		s.subs, s.subsAt = map[string]mde.Subscription{}, s.now()
	}
	s.subs[ct] = mde.Subscription{ContentType: ct, Status: "disabled"}
	return s.startLocked(ctx, ct)
}

// list reads the listing of chunk c and emits the records of the blobs in
// w.
func (s *src) list(ctx context.Context, ct string, c, w source.Window, emit source.Emit) error {
	next := ""
	links := srcutil.Cursors{}
	resubscribed, corrected := false, false
	for page := 1; page <= maxPages; page++ {
		p, err := s.feed.ListContent(ctx, ct, c.From, c.To, next)
		if err != nil && next == "" {
			switch code := mde.FeedCode(err); {
			case (code == mde.AFNoSubscription || code == mde.AFSubscriptionOff) && !resubscribed:
				resubscribed = true
				if serr := s.resubscribe(ctx, ct); serr != nil {
					return fmt.Errorf("%w (after the listing answered %s: %v)", serr, code, err)
				}
				page--
				continue
			case (code == mde.AFBadWindow || code == mde.AFBadWindowStartAge) && !corrected:
				// The service thinks the start is more than 7 days back
				// (its clock runs ahead of ours): start later, once.
				corrected = true
				later := ceilSecond(s.now().UTC().Add(-(Retention - time.Hour)))
				if later.After(c.From) && later.Before(c.To) {
					s.log.Warn("the API refused the window start as too old; starting it later (check this host's clock)",
						"source", Name, "content_type", ct, "from", c.From.Format(time.RFC3339), "new_from", later.Format(time.RFC3339))
					c.From = later
					page--
					continue
				}
			}
		}
		if err != nil {
			return fmt.Errorf("content listing page %d: %w", page, err)
		}
		blobs, err := mde.DecodeContentList(p.Body)
		if err != nil {
			return fmt.Errorf("page %d: %w", page, err)
		}
		for _, b := range blobs {
			if b.ContentType != ct {
				return fmt.Errorf("page %d: the listing of %s holds a blob of content type %q", page, ct, b.ContentType)
			}
			if !w.Contains(b.ContentCreated) {
				continue // the pipeline would drop its records
			}
			if err := s.blob(ctx, ct, b, emit); err != nil {
				return err
			}
		}
		if p.Next == "" {
			return nil
		}
		if err := links.Follow(p.Next); err != nil {
			return err
		}
		next = p.Next
	}
	return fmt.Errorf("more than %d content pages in one window; lower max_window", maxPages)
}

// blob fetches one blob and emits its records; a blob already delivered
// from a webhook notification (Delivered) is skipped.
func (s *src) blob(ctx context.Context, ct string, b mde.Content, emit source.Emit) error {
	if s.delivered.has(ct, b.ContentID, s.now()) {
		n := s.skipped.Add(1)
		s.log.Debug("blob already delivered from a webhook notification; not fetched again", "source", Name,
			"content_type", ct, "content_created", b.ContentCreated.UTC().Format(time.RFC3339), "skipped_total", n)
		return nil
	}
	if !b.ContentExpiration.IsZero() && !s.now().Before(b.ContentExpiration) {
		s.log.Warn("a blob expired before it could be read; its records are lost", "source", Name,
			"content_type", ct, "content_created", b.ContentCreated.Format(time.RFC3339))
		return nil
	}
	items, err := FetchBlob(ctx, s.feed, ct, b)
	if code := mde.FeedCode(err); code == mde.AFContentExpired || code == mde.AFContentNotFound {
		s.log.Warn("the API no longer has a listed blob; its records are lost", "source", Name,
			"content_type", ct, "code", code, "content_created", b.ContentCreated.Format(time.RFC3339))
		return nil
	}
	if err != nil {
		return err
	}
	return srcutil.EmitAll(ctx, emit, items)
}

// FetchBlob GETs a blob of content type ct (its contentUri is validated
// by the client) and decodes its records (DecodeBlob). A webhook
// notification's entries can be read with it.
func FetchBlob(ctx context.Context, feed mde.ActivityFeed, ct string, b mde.Content) ([]source.Item, error) {
	body, err := feed.FetchContent(ctx, b.ContentURI)
	if err != nil {
		return nil, fmt.Errorf("blob created %s: %w", b.ContentCreated.UTC().Format(time.RFC3339), err)
	}
	items, err := DecodeBlob(ct, b.ContentCreated, body)
	if err != nil {
		return nil, fmt.Errorf("blob created %s: %w", b.ContentCreated.UTC().Format(time.RFC3339), err)
	}
	return items, nil
}

// DecodeBlob turns a blob (a JSON array of audit records) of content type
// ct, created at created, into items: each record once for the content
// type's table and, when it is a Defender for Endpoint response action,
// once more for MdeAuditResponseActions (another id). Item.Time is
// created (windows are cut on it), Item.EventTime the record's
// CreationTime. Errors name record indexes, keys and JSON types, never
// values.
func DecodeBlob(ct string, created time.Time, body []byte) ([]source.Item, error) {
	table, ok := Tables[ct]
	if !ok {
		return nil, fmt.Errorf("unknown content type %q", ct)
	}
	var recs []json.RawMessage
	b := trimSpace(body)
	if len(b) == 0 || b[0] != '[' || json.Unmarshal(b, &recs) != nil {
		return nil, fmt.Errorf("blob: expected a JSON array of audit records, got %s", describe(b))
	}
	items := make([]source.Item, 0, len(recs))
	for i, raw := range recs {
		f, err := srcutil.Fields(Name, raw)
		if err != nil || f == nil {
			return nil, fmt.Errorf("blob record %d: expected a JSON object, got %s", i, describe(raw))
		}
		id, err := str(f, "Id")
		if err != nil {
			return nil, fmt.Errorf("blob record %d: %w", i, err)
		}
		ts, err := str(f, "CreationTime")
		if err != nil {
			return nil, fmt.Errorf("blob record %d: %w", i, err)
		}
		at, err := ParseCreationTime(ts)
		if err != nil {
			return nil, fmt.Errorf("blob record %d: field CreationTime: %w", i, err)
		}
		it := source.Item{ID: record.StableID(Name, table, id), Time: created.UTC(), EventTime: at, Raw: raw, Checked: true, Table: table}
		items = append(items, it)
		if ResponseAction(f) {
			it.ID, it.Table = record.StableID(Name, TableResponseActions, id), TableResponseActions
			items = append(items, it)
		}
	}
	return items, nil
}

// ResponseAction reports whether an audit record is a Defender for
// Endpoint response action: Workload MicrosoftDefenderForEndpoint and
// RecordType 110 (MSDEResponseActions) or a known response operation.
func ResponseAction(f map[string]json.RawMessage) bool {
	if srcutil.OptText(f, "Workload") != MDEWorkload {
		return false
	}
	rt := srcutil.OptText(f, "RecordType")
	if rt == "110" || rt == "MSDEResponseActions" {
		return true
	}
	return ResponseActions[srcutil.OptText(f, "Operation")]
}

// ParseCreationTime reads an audit record's CreationTime: UTC, written
// without a zone ("2015-06-29T20:03:19"), optionally with fractions; a
// zone, when present, is honoured. The error does not quote the value.
func ParseCreationTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not an ISO 8601 time (%d characters)", len(s))
}

// str reads a non-empty string field, naming key and type on error.
func str(f map[string]json.RawMessage, key string) (string, error) {
	v, ok := f[key]
	if !ok {
		return "", fmt.Errorf("field %s is missing", key)
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fmt.Errorf("field %s is %s, not a string", key, describe(v))
	}
	if strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("field %s is an empty string", key)
	}
	return s, nil
}

func init() {
	tables := make([]string, 0, len(Tables)+1)
	for _, ct := range mde.ContentTypes {
		if Tables[ct] != Tables[mde.ContentGeneral] {
			tables = append(tables, Tables[ct])
		}
	}
	tables = append(tables, TableResponseActions)
	source.Register(source.Factory{
		Name: Name, Table: Tables[mde.ContentGeneral], Tables: tables,
		Kind: source.Event, API: "public", DefaultEnabled: false, Schedule: "15m",
		Description: "Unified Audit Log (Office 365 Management Activity API), one table per content type, Defender response actions in MdeAuditResponseActions",
		NewConfig:   func() any { return NewConfig() },
		New: func(deps source.Deps, cfg any) (source.Source, error) {
			c, err := srcutil.Settings(Name, cfg, NewConfig)
			if err != nil {
				return nil, err
			}
			if deps.ActivityFeed == nil {
				return nil, fmt.Errorf("%s: needs the public API credentials (public_api.auth) for the Office 365 Management Activity API: an app registration granted ActivityFeed.Read (Office 365 Management APIs) with admin consent", Name)
			}
			feed, err := deps.ActivityFeed(c.Cloud, c.PublisherIdentifier)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", Name, err)
			}
			s := newSrc(feed, *c, deps.Logger, deps.Now)
			if c.Webhook.Address != "" {
				if s.hook, err = resolveWebhook(c.Webhook, deps.TenantName, feed.TenantID(), deps.Getenv, s.now()); err != nil {
					return nil, fmt.Errorf("%s: %w", Name, err)
				}
			}
			return s, nil
		},
	})
}

// New builds the source over a client (tests, and callers with their own
// client). It does not read cfg.Webhook (it has no environment to take
// the AuthID from): its Webhook reports false. The registered factory
// resolves the webhook.
func New(feed mde.ActivityFeed, cfg Config, log *slog.Logger, now func() time.Time) Hooked {
	return newSrc(feed, cfg, log, now)
}

func newSrc(feed mde.ActivityFeed, cfg Config, log *slog.Logger, now func() time.Time) *src {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &src{Meta: srcutil.NewMeta(Name, Tables[mde.ContentGeneral], source.Event), feed: feed, cfg: cfg, log: log, now: now,
		lastStart: map[string]time.Time{}, warned: map[string]bool{}, hookWarned: map[string]bool{},
		delivered: newDeliveredSet(maxDelivered)}
}
