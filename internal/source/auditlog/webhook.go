package auditlog

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/source"
)

const (
	// DefaultAuthIDEnv is the environment variable the webhook AuthID is
	// read from unless webhook.auth_id_env names another.
	DefaultAuthIDEnv = "DH_WEBHOOK_AUTH_ID"
	// TenantPlaceholder in webhook.address is replaced by the tenant's
	// name in a multi-tenant config, else by the tenant id.
	TenantPlaceholder = "{tenant}"
	// MaxAuthIDLength bounds the webhook AuthID. The API documents no
	// limit; it travels in the Webhook-AuthID header of every POST, and a
	// thousand characters is far more than a random secret needs.
	MaxAuthIDLength = 1000
	// maxDelivered bounds the blob ids Delivered remembers.
	maxDelivered = 100000
)

// WebhookConfig are the webhook settings (sources.auditlog.webhook).
type WebhookConfig struct {
	// Address is the public https URL the service posts notifications to;
	// {tenant} is replaced by the tenant's name (multi-tenant configs) or
	// id. Empty: webhook mode is off.
	Address string `yaml:"address"`
	// AuthIDFile holds the AuthID (a secret file only its owner may
	// read), used when the variable AuthIDEnv is unset or empty.
	AuthIDFile string `yaml:"auth_id_file"`
	// AuthIDEnv names the environment variable holding the AuthID
	// (default DH_WEBHOOK_AUTH_ID; empty means the default).
	AuthIDEnv string `yaml:"auth_id_env"`
	// Expiration (optional, RFC 3339) is when the service stops
	// notifying.
	Expiration string `yaml:"expiration"`
}

var envNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// validate checks the webhook keys; errors name the key.
func (w WebhookConfig) validate() error {
	if strings.TrimSpace(w.Address) == "" {
		return nil
	}
	// {tenant} is checked with a stand-in; the expanded address is
	// checked again when the source is built.
	if _, err := checkAddress(strings.ReplaceAll(strings.TrimSpace(w.Address), TenantPlaceholder, "tenant")); err != nil {
		return fmt.Errorf("webhook.address: %w", err)
	}
	if w.AuthIDEnv != "" && !envNameRe.MatchString(w.AuthIDEnv) {
		return fmt.Errorf("webhook.auth_id_env: %q is not an environment variable name (letters, digits, _)", w.AuthIDEnv)
	}
	if w.Expiration != "" {
		if _, err := time.Parse(time.RFC3339, w.Expiration); err != nil {
			return fmt.Errorf("webhook.expiration: %q is not an RFC 3339 time such as 2027-01-01T00:00:00Z", w.Expiration)
		}
	}
	return nil
}

// checkAddress checks a webhook address — https, a host, no user info,
// query or fragment — and returns its path ("/" when empty). Errors do
// not quote the address.
func checkAddress(addr string) (string, error) {
	if strings.ContainsAny(addr, " \t\r\n") {
		return "", errors.New("the address contains white space")
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", errors.New("the address does not parse as a URL")
	}
	switch {
	case u.Scheme != "https":
		return "", errors.New("the address must be an https URL (the service only posts to https)")
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return "", errors.New("the address has no host")
	case u.User != nil:
		return "", errors.New("the address must not carry user info")
	case u.RawQuery != "" || u.ForceQuery:
		return "", errors.New("the address must not have a query")
	case u.Fragment != "" || strings.Contains(addr, "#"):
		return "", errors.New("the address must not have a fragment")
	case strings.ContainsAny(addr, "{}"):
		return "", fmt.Errorf("the only placeholder the address may hold is %s", TenantPlaceholder)
	}
	if u.Path == "" {
		return "/", nil
	}
	return u.Path, nil
}

// Expand is the tenant's webhook address ({tenant} replaced by its name,
// or its id in a single-tenant config) and the path a listener serves it
// on; "" for both when no address is configured.
func (w WebhookConfig) Expand(tenantName, tenantID string) (addr, path string, err error) {
	if strings.TrimSpace(w.Address) == "" {
		return "", "", nil
	}
	name := tenantName
	if name == "" {
		name = tenantID
	}
	addr = strings.ReplaceAll(strings.TrimSpace(w.Address), TenantPlaceholder, url.PathEscape(name))
	if path, err = checkAddress(addr); err != nil {
		return "", "", fmt.Errorf("webhook.address (%s = %q): %w", TenantPlaceholder, name, err)
	}
	return addr, path, nil
}

// hookConf is the resolved webhook: what starts send and the listener
// serves.
type hookConf struct {
	spec mde.WebhookSpec // AuthID: the secret, kept only here
	path string
	host string // for logs
}

// resolveWebhook expands the address and reads the AuthID: the variable
// named by AuthIDEnv through getenv (nil: no environment), else
// AuthIDFile. Errors name keys, variables and files, never the AuthID.
func resolveWebhook(w WebhookConfig, tenantName, tenantID string, getenv func(string) string, now time.Time) (*hookConf, error) {
	addr, path, err := w.Expand(tenantName, tenantID)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(addr)
	env := w.AuthIDEnv
	if env == "" {
		env = DefaultAuthIDEnv
	}
	var id, from string
	if getenv != nil {
		id, from = strings.TrimSpace(getenv(env)), "the environment variable "+env
	}
	if id == "" && w.AuthIDFile != "" {
		if id, err = auth.ReadSecretFile(w.AuthIDFile); err != nil {
			return nil, fmt.Errorf("webhook.auth_id_file: %w", err)
		}
		from = "webhook.auth_id_file " + w.AuthIDFile
	}
	if id == "" {
		return nil, fmt.Errorf("webhook.address is set but there is no webhook AuthID: set the environment variable %s (named by webhook.auth_id_env) or webhook.auth_id_file (a file only its owner can read) to a random secret", env)
	}
	if err := checkAuthID(id); err != nil {
		return nil, fmt.Errorf("the webhook AuthID from %s %w", from, err)
	}
	exp := ""
	if w.Expiration != "" {
		t, err := time.Parse(time.RFC3339, w.Expiration)
		if err != nil {
			return nil, fmt.Errorf("webhook.expiration: %q is not an RFC 3339 time such as 2027-01-01T00:00:00Z", w.Expiration)
		}
		if !t.After(now) {
			return nil, fmt.Errorf("webhook.expiration %s has passed: remove it or set a later time", w.Expiration)
		}
		exp = t.UTC().Format(time.RFC3339)
	}
	return &hookConf{spec: mde.WebhookSpec{Address: addr, AuthID: id, Expiration: exp}, path: path, host: u.Host}, nil
}

// checkAuthID: printable ASCII without spaces (it travels in a header),
// at most MaxAuthIDLength characters. The error completes "the webhook
// AuthID from X …" and never quotes it.
func checkAuthID(id string) error {
	if len(id) > MaxAuthIDLength {
		return fmt.Errorf("is %d characters long: at most %d are accepted (the API documents no limit; it travels in an HTTP header)", len(id), MaxAuthIDLength)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return errors.New("must be printable ASCII without spaces (it travels in the Webhook-AuthID header)")
		}
	}
	return nil
}

// matches reports whether a listed webhook is this one: present, not
// disabled, the same address and — unless the listing hides it — the
// same authId.
func (h *hookConf) matches(w *mde.SubscriptionWebhook) bool {
	if h == nil || w == nil {
		return false
	}
	if st := strings.TrimSpace(w.Status); st != "" && !strings.EqualFold(st, "enabled") {
		return false
	}
	if !sameAddress(w.Address, h.spec.Address) {
		return false
	}
	return w.AuthID == "" || subtle.ConstantTimeCompare([]byte(w.AuthID), []byte(h.spec.AuthID)) == 1
}

// sameAddress compares webhook addresses as the service may echo them:
// scheme and host case-insensitively (443 implied), the path with "" as
// "/".
func sameAddress(a, b string) bool {
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	if a == b {
		return true
	}
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	if err1 != nil || err2 != nil {
		return false
	}
	host := func(u *url.URL) string {
		h := strings.ToLower(u.Host)
		return strings.TrimSuffix(h, ":443")
	}
	path := func(u *url.URL) string {
		if p := u.EscapedPath(); p != "" {
			return p
		}
		return "/"
	}
	return strings.EqualFold(ua.Scheme, ub.Scheme) && host(ua) == host(ub) && path(ua) == path(ub) && ua.RawQuery == ub.RawQuery
}

// WebhookSettings is what the listener needs.
type WebhookSettings struct {
	Address      string   // expanded public URL
	Path         string   // its path (what the listener serves), "/" when empty
	AuthID       string   // secret; never log
	ContentTypes []string // the configured content types
	Cloud        string   // commercial, gcc, gcchigh, dod (as configured, default commercial)
}

// String describes s without its AuthID (so %v and %+v never print it).
func (s WebhookSettings) String() string {
	return fmt.Sprintf("{Address:%s Path:%s AuthID:[%d characters] ContentTypes:%v Cloud:%s}", s.Address, s.Path, len(s.AuthID), s.ContentTypes, s.Cloud)
}

// Hooked is implemented by the auditlog source.
type Hooked interface {
	source.PartitionedSource
	// Webhook returns the settings; ok is false when webhook.address is not configured.
	Webhook() (WebhookSettings, bool)
	// UseWebhook is called once the listener is up: from then on every subscription this source
	// starts carries the webhook, and it (re)starts now each configured content type whose listed
	// subscription is not enabled or whose webhook is absent, disabled, or has another address or
	// authId (AF20024 = already so = fine). The 15-minute start throttle per content type applies
	// (an error for a content type that cannot be started yet says when to retry; the others
	// still go). Returns the joined errors.
	UseWebhook(ctx context.Context) error
	// FetchNotified fetches the given blobs of content type ct (from webhook notifications:
	// ContentID, ContentURI, ContentCreated, ContentExpiration set) and emits their records
	// exactly as a poll would (same ids, tables, Time = contentCreated, EventTime). Expired or
	// vanished blobs are logged and skipped as in a poll. Blobs already Delivered are skipped.
	FetchNotified(ctx context.Context, ct string, blobs []mde.Content, emit source.Emit) error
	// Delivered records that every record of these blobs (content ids) was delivered and
	// checkpointed: later polls skip fetching them (bounded memory: at most 100,000 ids, each
	// forgotten after the 7-day retention; oldest first). Only for blobs whose ids are given.
	Delivered(ct string, blobs []mde.Content)
}

// Webhook returns the resolved webhook settings.
func (s *src) Webhook() (WebhookSettings, bool) {
	if s.hook == nil {
		return WebhookSettings{}, false
	}
	cloud := s.cfg.Cloud
	if cloud == "" {
		cloud = "commercial"
	}
	return WebhookSettings{Address: s.hook.spec.Address, Path: s.hook.path, AuthID: s.hook.spec.AuthID,
		ContentTypes: append([]string(nil), s.cfg.ContentTypes...), Cloud: cloud}, true
}

// UseWebhook turns webhook mode on and registers the webhook on every
// configured content type that does not carry it yet.
func (s *src) UseWebhook(ctx context.Context) error {
	if s.hook == nil {
		return fmt.Errorf("%s: webhook.address is not configured", Name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hookOn = true
	if err := s.listLocked(ctx); err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	var errs []error
	for _, ct := range s.cfg.ContentTypes {
		if sub, ok := s.subs[ct]; ok && sub.Enabled() && s.hook.matches(sub.Webhook) {
			continue
		}
		if err := s.startLocked(ctx, ct); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", Name, ct, err))
		}
	}
	return errors.Join(errs...)
}

// FetchNotified reads notified blobs as a poll reads listed ones.
func (s *src) FetchNotified(ctx context.Context, ct string, blobs []mde.Content, emit source.Emit) error {
	if _, ok := Tables[ct]; !ok {
		return fmt.Errorf("%s: unknown content type %q", Name, ct)
	}
	for i, b := range blobs {
		if b.ContentType != "" && b.ContentType != ct {
			return fmt.Errorf("%s %s: notified blob %d is of content type %q", Name, ct, i, b.ContentType)
		}
		if err := s.blob(ctx, ct, b, emit); err != nil {
			return fmt.Errorf("%s %s: notified blob %d: %w", Name, ct, i, err)
		}
	}
	return nil
}

// Delivered remembers blobs whose records were all delivered, until
// their content expires (at most the 7-day retention).
func (s *src) Delivered(ct string, blobs []mde.Content) {
	now := s.now()
	for _, b := range blobs {
		if b.ContentID == "" {
			continue
		}
		until := b.ContentExpiration
		if until.IsZero() && !b.ContentCreated.IsZero() {
			until = b.ContentCreated.Add(Retention)
		}
		if limit := now.Add(Retention); until.IsZero() || until.After(limit) {
			until = limit
		}
		s.delivered.add(ct+"\n"+b.ContentID, until, now)
	}
}

// deliveredSet remembers keys until a time, at most max of them: the
// oldest remembered go first.
type deliveredSet struct {
	mu    sync.Mutex
	max   int
	until map[string]time.Time
	order []string // keys in the order first remembered
	head  int      // order[:head] are gone
}

func newDeliveredSet(max int) *deliveredSet {
	return &deliveredSet{max: max, until: map[string]time.Time{}}
}

func (d *deliveredSet) add(key string, until, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !until.After(now) {
		return
	}
	if old, ok := d.until[key]; ok {
		if until.After(old) {
			d.until[key] = until
		}
		return
	}
	// Forget the expired oldest, then make room.
	for d.head < len(d.order) {
		if u, ok := d.until[d.order[d.head]]; ok && now.Before(u) {
			break
		}
		d.pop()
	}
	for len(d.until) >= d.max {
		d.pop()
	}
	d.until[key] = until
	d.order = append(d.order, key)
	if d.head > 1024 && d.head > len(d.order)/2 {
		d.order = append([]string(nil), d.order[d.head:]...)
		d.head = 0
	}
}

// pop forgets the oldest key.
func (d *deliveredSet) pop() {
	if d.head >= len(d.order) {
		return
	}
	delete(d.until, d.order[d.head])
	d.order[d.head] = ""
	d.head++
}

func (d *deliveredSet) has(ct, id string, now time.Time) bool {
	if id == "" {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.until[ct+"\n"+id]
	return ok && now.Before(u)
}

func (d *deliveredSet) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.until)
}
