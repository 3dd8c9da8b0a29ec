// Package sim is the emulated Microsoft tenant: Entra ID's token endpoint,
// the Defender portal proxy (security.microsoft.com/apiproxy), the legacy
// regional service hosts (*.securitycenter.windows.com) and the public
// Defender API (api.security.microsoft.com). It routes by Host header, so a
// real client whose transport dials the emulator instead of Microsoft works
// unmodified. It is a separate party: it imports nothing of the harvester
// and follows docs/REFERENCE.md and docs/ARCHITECTURE.md, never the
// harvester's convenience. See README.md in this folder.
package sim

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Tenant. Zero values pick the documented defaults.
type Options struct {
	Seed    int64
	Now     func() time.Time // the data clock (default time.Now); tests drive it
	Start   time.Time        // anchor of generated data (default Now() truncated to the hour)
	History time.Duration    // how far back before Start event data exists (default 30 days)
	// TimelineHistory is how far back before Start timelines exist
	// (default 7 days, at most History).
	TimelineHistory time.Duration
	Machines        int           // default 30
	TenantID        string        // default derived from Seed (a GUID)
	Latency         time.Duration // added to every response
	// PageLatency is how long every page of the device timeline (portal
	// and legacy routes) takes before it is answered, on top of Latency:
	// the real service takes hundreds of ms to seconds per page. A
	// cancelled request stops waiting. Default 0.
	PageLatency time.Duration
	// ThrottleConcurrency, when above 0, throttles the device timeline
	// (portal and legacy routes) as the real service does under load: a
	// timeline request that arrives while K are already being served (per
	// tenant) gets 429 with Retry-After ThrottleRetryAfter. Off by
	// default; keep K below the harvester's worker count (8) so the
	// emulator is the stricter party (tests use 3).
	ThrottleConcurrency int
	// ThrottleRetryAfter is the Retry-After of those 429s (default 1s).
	ThrottleRetryAfter time.Duration
	Faults             Faults // probabilistic fault injection
	PublicAPIPageCap   int    // rows served without $top (default 10000)
	// TimelineEventsPerMachineHour scales the timeline (default 12, at most 6000).
	TimelineEventsPerMachineHour int
	// TimelineEvents, when set, is about how many events each device's
	// timeline holds over TimelineHistory: it sets
	// TimelineEventsPerMachineHour to TimelineEvents / hours, rounded up
	// (so at most 6000 × hours: 1,008,000 for the default 7 days).
	// Setting both is an error.
	TimelineEvents int
	// Clock is the wall clock for tokens, sessions and rate limits (default
	// time.Now). Tests drive it to expire tokens or refill rate limits.
	Clock func() time.Time
	// TokenLifetime is the life of issued access tokens (default 3599s).
	TokenLifetime time.Duration
	Logger        *slog.Logger

	// Reliability knobs (README "Page clamps, ingestion lag, clock skew").
	//
	// PageClamp caps the rows a paged route serves per page, whatever the
	// client asks (keys: the Route* names; off by default): offsets are
	// computed with the clamped size and totals (Count) stay the full
	// total, as on a service that caps the page size server-side; the
	// OData routes answer a clamped page with @odata.nextLink.
	PageClamp map[string]int
	// IngestionLag is the longest time between an event's timestamp and
	// the moment the services show it (Action Center history, executed
	// queries, machine actions, timeline). Each event's lag is uniform in
	// [0, IngestionLag], fixed by Seed and the event. Default 0.
	IngestionLag time.Duration
	// ClockSkew sets the emulator's clocks ahead (positive) or behind
	// (negative) Now and Clock: data visibility, tokens, sessions, rate
	// limits and the Date header of every response (Clock + ClockSkew) all
	// follow the skewed time. The data itself (Start) is anchored on the
	// unskewed Now.
	ClockSkew time.Duration
	// RequestLog, when set, gets one line per request: time, method,
	// host, path, query parameter names, status, bytes, duration. Never
	// headers, cookies, bodies or query values.
	RequestLog io.Writer

	// Receivers (README "Receivers").
	//
	// DCRs are the data collection rules the Logs Ingestion receiver
	// knows. Empty: one default DCR (immutable id derived from Seed) with a
	// stream "Custom-<T>" per SentinelTables entry, or, when that is empty
	// too, accepting any stream whose name starts with "Custom-".
	DCRs           []DCR
	SentinelTables []string
	// KeepReceived keeps every accepted record's bytes for Stored (ids and
	// counts are always kept).
	KeepReceived bool
	// HECIndexes are the indexes the HEC tokens may write (default
	// "main", "defender"); an envelope without index uses the first.
	HECIndexes []string
	// HECMaxContentLength is the HEC body limit in bytes, compressed as
	// received and decompressed (default 1,000,000, Splunk Cloud's 1 MB).
	HECMaxContentLength int
	// LogsIngestionMaxSpan, when set, makes the Logs Ingestion receiver
	// refuse a call whose records' TimeGenerated span more than it (400
	// RecordsTimeRangeIsMoreThan30Minutes with 30m, a documented limitation
	// Microsoft says is being removed; off by default).
	LogsIngestionMaxSpan time.Duration
	// HECAckDelay is how long after acceptance (on Clock) an ack turns true.
	HECAckDelay time.Duration

	// User sign-in (README "Sign-in").
	//
	// AutoApproveDeviceCode approves every device code as UserUPN after
	// its first poll (which answers authorization_pending).
	AutoApproveDeviceCode bool
	// SessionLifetime is the life of a portal session on Clock (default 4h).
	SessionLifetime time.Duration
	// AppControl puts the Defender for Cloud Apps App Control hop
	// (<org>.access.mcas.ms) into the ESTS sign-in.
	AppControl bool
	// LegacyLocation is the tenant's region on the legacy hosts (default
	// "weu"); hosts of other locations answer 401 "not provisioned".
	LegacyLocation string
	// ConditionalAccessBlock lists client ids and UPNs that Conditional
	// Access blocks (AADSTS53003); MFARequired lists UPNs needing MFA
	// (AADSTS50076). Both can be changed later with the setters.
	ConditionalAccessBlock []string
	MFARequired            []string

	// Tenants is how many tenants the emulator serves (0 or 1: one; at
	// most MaxTenants). The first is the tenant of Seed and TenantID,
	// exactly as with one; tenant k (k ≥ 1) derives its seed, tenant id,
	// organisation, users, devices and data from Seed and k, and has its
	// own apps, secrets, token key and portal sessions. All tenants share
	// the hosts, the CA, the clocks, every knob above (faults, clamps,
	// lag, skew, latency) and the receivers. See README "Several tenants".
	Tenants int

	// Office 365 Management Activity API (README "Office 365 Management
	// Activity API"); every tenant has its own feed.
	//
	// AuditRecordsPerHour is about how many audit records each content type
	// gets an hour (DLP.All a quarter; default 12, at most 5000).
	AuditRecordsPerHour int
	// AuditPageCap is how many content (and notification) items a page
	// holds before NextPageUri (default 37: deliberately odd).
	AuditPageCap int
	// AuditQuotaPerMinute is the requests a publisher pool (each
	// PublisherIdentifier, and the shared pool without one) may make per
	// wall-clock minute before AF429 (default 2000).
	AuditQuotaPerMinute int
	// AuditThrottleStatus is the HTTP status of AF429: 403 (default, the
	// troubleshooting page's example) or 429.
	AuditThrottleStatus int
	// AuditWebhookPoll is how often (real time) a tenant with a webhook
	// delivers new blobs (default 1m; negative: only NotifyNow delivers).
	AuditWebhookPoll time.Duration
	// AuditWebhookRetries is how often a refused notification is retried
	// (default 3); AuditWebhookBackoff the first wait (default 1s, doubling).
	AuditWebhookRetries int
	AuditWebhookBackoff time.Duration
	// AuditWebhookDisableAfter is how many notification batches in a row
	// may fail (every retry refused) before the subscription's webhook is
	// disabled until a start re-enables it (default 3; negative: never).
	AuditWebhookDisableAfter int

	// Scenario is the story the data tells (README "Scenarios"): ""
	// (ScenarioDefault: the scheduled changes of Changes and the scripted
	// story beats), "quiet" (a normal day: routine work by the
	// RegularOperators only, no suspicious change) or "abuse" (the quiet
	// day plus the scripted attack of AbuseSteps).
	Scenario string
	// AbuseAt is the attack's first step (Scenario "abuse" only; default
	// Start + 2h, truncated to the second). Everything before it is the
	// quiet baseline; it may lie in the history (not before Start -
	// History).
	AbuseAt time.Time
}

// Credentials are the secrets a client needs to talk to this tenant.
type Credentials struct {
	TenantID     string `json:"tenant_id"`
	ClientID     string `json:"client_id"`     // public-API app (Machine.Read.All, Library.Manage)
	ClientSecret string `json:"client_secret"` //
	// RestrictedClientID names an app with no API permissions (403 tests).
	RestrictedClientID     string `json:"restricted_client_id"`
	RestrictedClientSecret string `json:"restricted_client_secret"`
	// LegacyClientID is the app for the legacy hosts (the same app here).
	LegacyClientID     string `json:"legacy_client_id"`
	LegacyClientSecret string `json:"legacy_client_secret"`
	SccAuth            string `json:"sccauth"`    // portal session cookie value
	XSRFToken          string `json:"xsrf_token"` // URL-decoded: send as X-XSRF-TOKEN
	// Splunk HEC tokens (GUIDs): a plain one, one with indexer
	// acknowledgement, and a disabled one (403 code 1).
	HECToken         string `json:"hec_token"`
	HECAckToken      string `json:"hec_ack_token"`
	HECDisabledToken string `json:"hec_disabled_token"`
	// Users: an analyst with a Defender role (UserUPN, the default portal
	// session's user), a reader without one (portal 403), and UserUPN's
	// ESTSAUTHPERSISTENT cookie for the ESTS bootstrap.
	UserUPN            string `json:"user_upn"`
	NoRoleUPN          string `json:"no_role_upn"`
	ESTSAuthPersistent string `json:"ests_auth_persistent"`
}

// String keeps secrets out of logs and error messages.
func (c Credentials) String() string {
	return fmt.Sprintf("Credentials{TenantID:%s ClientID:%s secrets:redacted}", c.TenantID, c.ClientID)
}

// LogValue keeps secrets out of structured logs.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("tenant_id", c.TenantID), slog.String("client_id", c.ClientID))
}

// Request families, for RequestCount and fault rules.
const (
	FamilyPortal   = "portal"
	FamilyPublic   = "public"
	FamilyEntra    = "entra"
	FamilyLegacy   = "legacy"
	FamilyTimeline = "timeline" // timeline routes of portal and legacy hosts (faults only)
)

// Tenant is one emulated Defender tenant with its Microsoft endpoints.
type Tenant struct {
	opts  Options
	w     *world
	log   *slog.Logger
	now   func() time.Time
	clock func() time.Time

	opsCache *lru[int64, *opsBucket]
	qCache   *lru[int64, []*queryRecord]
	tlCache  *lru[tlKey, []tlEvent]

	apps    map[string]*entraApp
	creds   Credentials
	hmacKey []byte
	pki     *pki
	sess    *sessions
	si      *signinState
	users   map[string]*signInUser // by lower-case UPN
	limiter *rateLimiter
	faults  *faultEngine
	// tlInFlight counts the timeline requests being served
	// (ThrottleConcurrency).
	tlInFlight atomic.Int64

	countMu sync.Mutex
	counts  map[string]int

	receivers map[string]*receiverState
	dcrs      map[string]*DCR // by lower-case immutable id
	defDCR    *DCR            // first DCR, for Info
	hec       *hecState

	handler  http.Handler
	svcCache map[string]service // services of the fixed hosts, built once

	// Several tenants (README "Several tenants"): index is this tenant's
	// place (0: the first, the one New returns), root the first tenant
	// (itself for the first), set all of them.
	index int
	root  *Tenant
	set   *tenantSet

	// Office 365 Management Activity API.
	audit      *auditState
	auditCache *lru[auditKey, []auditBlob]
	hookOnce   sync.Once // the first tenant's webhook client
	hookClient *http.Client
}

// Limits on knobs, so a typo cannot make the emulator eat the machine.
const (
	maxMachines  = 100000
	maxTLPerHour = 6000
	// tlCacheEvents is how many generated timeline events (of any
	// machine-hours) the emulator keeps: about 60 MB, whatever the
	// timeline's size. The default scale (30 machines, 7 days, 12 an
	// hour) fits whole.
	tlCacheEvents   = 1 << 16
	maxHistory      = 366 * 24 * time.Hour
	defaultPageCap  = 10000
	defaultTokenTTL = 3599 * time.Second
)

// Bounds of the reliability knobs (Options.IngestionLag, Options.ClockSkew).
const (
	MaxIngestionLag = maxOpSpan
	MaxClockSkew    = 24 * time.Hour
)

// MaxTenants bounds Options.Tenants ("one tenant or hundreds").
const MaxTenants = 1000

// New builds a tenant. It fails only on invalid options.
func New(opts Options) (*Tenant, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Start.IsZero() {
		opts.Start = opts.Now().UTC().Truncate(time.Hour)
	}
	opts.Start = opts.Start.UTC()
	if opts.History == 0 {
		opts.History = 30 * 24 * time.Hour
	}
	if opts.TimelineHistory == 0 {
		opts.TimelineHistory = 7 * 24 * time.Hour
	}
	if opts.TimelineHistory > opts.History {
		opts.TimelineHistory = opts.History
	}
	if opts.Machines == 0 {
		opts.Machines = 30
	}
	if opts.PublicAPIPageCap == 0 {
		opts.PublicAPIPageCap = defaultPageCap
	}
	if opts.TimelineEvents != 0 {
		hours := int64(opts.TimelineHistory / time.Hour)
		switch {
		case opts.TimelineEventsPerMachineHour != 0:
			return nil, fmt.Errorf("sim: TimelineEvents and TimelineEventsPerMachineHour are both set: set one")
		case opts.TimelineEvents < 0 || hours < 1 || (int64(opts.TimelineEvents)+hours-1)/hours > maxTLPerHour:
			return nil, fmt.Errorf("sim: TimelineEvents %d is out of range: use 1 to %d over a TimelineHistory of %s (at most %d an hour), or lengthen TimelineHistory",
				opts.TimelineEvents, int64(maxTLPerHour)*max(hours, 1), opts.TimelineHistory, maxTLPerHour)
		}
		opts.TimelineEventsPerMachineHour = int((int64(opts.TimelineEvents) + hours - 1) / hours)
	}
	if opts.TimelineEventsPerMachineHour == 0 {
		opts.TimelineEventsPerMachineHour = 12
	}
	if opts.TokenLifetime == 0 {
		opts.TokenLifetime = defaultTokenTTL
	}
	if opts.SessionLifetime == 0 {
		opts.SessionLifetime = defaultSession
	}
	if opts.AuditRecordsPerHour == 0 {
		opts.AuditRecordsPerHour = DefaultAuditRecordsPerHour
	}
	if opts.AuditPageCap == 0 {
		opts.AuditPageCap = DefaultAuditPageCap
	}
	if opts.AuditQuotaPerMinute == 0 {
		opts.AuditQuotaPerMinute = DefaultAuditQuotaPerMinute
	}
	if opts.AuditThrottleStatus == 0 {
		opts.AuditThrottleStatus = http.StatusForbidden
	}
	if opts.AuditWebhookPoll == 0 {
		opts.AuditWebhookPoll = time.Minute
	}
	if opts.AuditWebhookRetries == 0 {
		opts.AuditWebhookRetries = 3
	}
	if opts.AuditWebhookBackoff == 0 {
		opts.AuditWebhookBackoff = time.Second
	}
	if opts.LegacyLocation == "" {
		opts.LegacyLocation = "weu"
	}
	opts.LegacyLocation = strings.ToLower(opts.LegacyLocation)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := opts.scenarioDefaults(); err != nil {
		return nil, err
	}
	switch {
	case opts.History < 0 || opts.History > maxHistory:
		return nil, fmt.Errorf("sim: History %s is out of range: use a duration between 1h and %s", opts.History, maxHistory)
	case opts.TimelineHistory < 0:
		return nil, fmt.Errorf("sim: TimelineHistory %s is negative: use a positive duration", opts.TimelineHistory)
	case opts.Machines < 1 || opts.Machines > maxMachines:
		return nil, fmt.Errorf("sim: Machines %d is out of range: use 1 to %d", opts.Machines, maxMachines)
	case opts.PublicAPIPageCap < 1 || opts.PublicAPIPageCap > 10000:
		return nil, fmt.Errorf("sim: PublicAPIPageCap %d is out of range: use 1 to 10000 (the service's maximum page)", opts.PublicAPIPageCap)
	case opts.TimelineEventsPerMachineHour < 0 || opts.TimelineEventsPerMachineHour > maxTLPerHour:
		return nil, fmt.Errorf("sim: TimelineEventsPerMachineHour %d is out of range: use 0 to %d", opts.TimelineEventsPerMachineHour, maxTLPerHour)
	case opts.Latency < 0:
		return nil, fmt.Errorf("sim: Latency %s is negative", opts.Latency)
	case opts.ThrottleConcurrency < 0:
		return nil, fmt.Errorf("sim: ThrottleConcurrency %d is negative: use 0 (off) or the most timeline requests served at once, such as 3", opts.ThrottleConcurrency)
	case opts.ThrottleRetryAfter < 0:
		return nil, fmt.Errorf("sim: ThrottleRetryAfter %s is negative: use a positive duration such as 1s", opts.ThrottleRetryAfter)
	case opts.PageLatency < 0:
		return nil, fmt.Errorf("sim: PageLatency %s is negative: use 0 (off) or a positive duration such as 300ms", opts.PageLatency)
	case opts.SessionLifetime < 0:
		return nil, fmt.Errorf("sim: SessionLifetime %s is negative: use a positive duration (default 4h)", opts.SessionLifetime)
	case !reLocation.MatchString(opts.LegacyLocation):
		return nil, fmt.Errorf("sim: LegacyLocation %q is not a location such as weu, eus or neu: use lower-case letters and digits", opts.LegacyLocation)
	case opts.TokenLifetime < 0:
		return nil, fmt.Errorf("sim: TokenLifetime %s is negative", opts.TokenLifetime)
	case opts.TenantID != "" && !isGUID(opts.TenantID):
		return nil, fmt.Errorf("sim: TenantID %q is not a GUID: leave it empty to derive one from the seed", opts.TenantID)
	case opts.IngestionLag < 0 || opts.IngestionLag > MaxIngestionLag:
		return nil, fmt.Errorf("sim: IngestionLag %s is out of range: use 0 to %s", opts.IngestionLag, MaxIngestionLag)
	case opts.ClockSkew < -MaxClockSkew || opts.ClockSkew > MaxClockSkew:
		return nil, fmt.Errorf("sim: ClockSkew %s is out of range: use -%s to %s", opts.ClockSkew, MaxClockSkew, MaxClockSkew)
	case opts.AuditRecordsPerHour < 1 || opts.AuditRecordsPerHour > MaxAuditRecordsPerHour:
		return nil, fmt.Errorf("sim: AuditRecordsPerHour %d is out of range: use 1 to %d", opts.AuditRecordsPerHour, MaxAuditRecordsPerHour)
	case opts.AuditPageCap < 1 || opts.AuditPageCap > 10000:
		return nil, fmt.Errorf("sim: AuditPageCap %d is out of range: use 1 to 10000", opts.AuditPageCap)
	case opts.AuditQuotaPerMinute < 1:
		return nil, fmt.Errorf("sim: AuditQuotaPerMinute %d is out of range: use a positive number such as 2000", opts.AuditQuotaPerMinute)
	case opts.AuditThrottleStatus != http.StatusForbidden && opts.AuditThrottleStatus != http.StatusTooManyRequests:
		return nil, fmt.Errorf("sim: AuditThrottleStatus %d: use 403 or 429", opts.AuditThrottleStatus)
	case opts.AuditWebhookRetries < 0 || opts.AuditWebhookRetries > 10:
		return nil, fmt.Errorf("sim: AuditWebhookRetries %d is out of range: use 0 to 10", opts.AuditWebhookRetries)
	case opts.AuditWebhookBackoff < 0:
		return nil, fmt.Errorf("sim: AuditWebhookBackoff %s is negative", opts.AuditWebhookBackoff)
	case opts.Tenants < 0 || opts.Tenants > MaxTenants:
		return nil, fmt.Errorf("sim: Tenants %d is out of range: use 1 to %d (0 means 1)", opts.Tenants, MaxTenants)
	}
	if err := validateClamps(opts.PageClamp); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if err := opts.Faults.validate(); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	opts.TenantID = strings.ToLower(opts.TenantID)
	if opts.Tenants == 0 {
		opts.Tenants = 1
	}

	t, err := newTenant(opts, 0, nil)
	if err != nil {
		return nil, err
	}
	set := &tenantSet{all: []*Tenant{t}}
	for k := 1; k < opts.Tenants; k++ {
		o := opts
		o.Seed, o.TenantID = memberSeed(opts.Seed, k), ""
		m, err := newTenant(o, k, t)
		if err != nil {
			return nil, err
		}
		set.all = append(set.all, m)
	}
	if err := set.index(); err != nil {
		return nil, err
	}
	for _, m := range set.all {
		m.set = set
	}
	t.handler = t.buildHandler()
	for _, m := range set.all[1:] {
		m.handler = t.handler
	}
	return t, nil
}

// newTenant builds tenant index of the set; root is the first tenant (nil
// when building it), whose CA and receivers the others share.
func newTenant(opts Options, index int, root *Tenant) (*Tenant, error) {
	t := &Tenant{
		opts:     opts,
		w:        newWorld(opts, index),
		log:      opts.Logger,
		now:      skewed(opts.Now, opts.ClockSkew),
		clock:    skewed(opts.Clock, opts.ClockSkew),
		opsCache: newLRU[int64, *opsBucket](4096),
		qCache:   newLRU[int64, []*queryRecord](4096),
		tlCache:  newWeightedLRU[tlKey](tlCacheEvents, func(v []tlEvent) int { return len(v) }),
		counts:   map[string]int{},
		index:    index,
		root:     root,

		audit:      newAuditState(opts),
		auditCache: newLRU[auditKey, []auditBlob](4096),
	}
	if root == nil {
		t.root = t
	}
	var err error
	if t.hmacKey, err = randomBytes(32); err != nil {
		return nil, err
	}
	if root == nil {
		if t.pki, err = newPKI(); err != nil {
			return nil, err
		}
	} else {
		t.pki = root.pki
	}
	if err := t.initApps(); err != nil {
		return nil, err
	}
	if err := t.initSignIn(); err != nil {
		return nil, err
	}
	if t.sess, err = newSessions(t.clock, t.opts.SessionLifetime, t.creds.UserUPN); err != nil {
		return nil, err
	}
	if root == nil {
		if err := t.initReceivers(); err != nil {
			return nil, err
		}
	} else {
		// The receivers are the customer's SIEM: one for every tenant.
		t.receivers, t.dcrs, t.defDCR, t.hec = root.receivers, root.dcrs, root.defDCR, root.hec
		t.creds.HECToken, t.creds.HECAckToken, t.creds.HECDisabledToken = root.creds.HECToken, root.creds.HECAckToken, root.creds.HECDisabledToken
	}
	t.limiter = newRateLimiter(t.clock)
	t.faults = newFaultEngine(opts.Seed, opts.Faults)
	t.svcCache = map[string]service{}
	for _, h := range []string{"login.microsoftonline.com", "security.microsoft.com", "mto.security.microsoft.com", "api.security.microsoft.com", "api.securitycenter.microsoft.com", ManageHost} {
		t.svcCache[h], _ = t.serviceFor(h)
	}
	return t, nil
}

// skewed is clock shifted by skew (clock itself when there is none).
func skewed(clock func() time.Time, skew time.Duration) func() time.Time {
	if skew == 0 {
		return clock
	}
	return func() time.Time { return clock().Add(skew) }
}

func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("sim: reading system randomness: %w", err)
	}
	return b, nil
}

// randomSecret looks like an Entra client secret (40 chars, with "~").
func randomSecret() (string, error) {
	b, err := randomBytes(30)
	if err != nil {
		return "", err
	}
	s := base64.RawURLEncoding.EncodeToString(b)
	return s[:3] + "8Q~" + s[3:37], nil
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}

// Credentials returns the secrets of the tenant's apps and portal session.
func (t *Tenant) Credentials() Credentials {
	c := t.creds
	c.SccAuth, c.XSRFToken = t.sess.current()
	return c
}

// TenantID is the tenant's GUID.
func (t *Tenant) TenantID() string { return t.w.tenantID }

// MachineIDs lists the SenseMachineIds of all machines.
func (t *Tenant) MachineIDs() []string {
	out := make([]string, len(t.w.machines))
	for i, m := range t.w.machines {
		out[i] = m.ID
	}
	return out
}

// RequestCount is how many requests a family has received: "portal",
// "public", "entra", "legacy" (and "timeline", a subset of portal+legacy).
func (t *Tenant) RequestCount(family string) int {
	t.countMu.Lock()
	defer t.countMu.Unlock()
	return t.counts[family]
}

func (t *Tenant) count(families ...string) {
	t.countMu.Lock()
	defer t.countMu.Unlock()
	for _, f := range families {
		if f != "" {
			t.counts[f]++
		}
	}
}

// ops returns the (cached) operations that started in hour h.
func (t *Tenant) ops(h int64) *opsBucket {
	return t.opsCache.get(h, func() *opsBucket { return t.w.genOps(h) })
}

func (t *Tenant) queries(h int64) []*queryRecord {
	return t.qCache.get(h, func() []*queryRecord { return t.w.genQueries(h) })
}

func (t *Tenant) timeline(machineID string, h int64) []tlEvent {
	k := tlKey{machineID, h}
	return t.tlCache.get(k, func() []tlEvent { return t.genTimeline(k) })
}

// Handler serves every emulated host, routing by the Host header (the port
// is ignored), over whatever transport the caller provides.
func (t *Tenant) Handler() http.Handler { return t.handler }

// Server is a running listener for the tenant.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	tls  bool
	done chan error
}

// Addr is the listening address (host:port).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the base URL of the listener (https://127.0.0.1:port or http://…).
func (s *Server) URL() string {
	if s.tls {
		return "https://" + s.Addr()
	}
	return "http://" + s.Addr()
}

// TLS reports whether the listener speaks TLS.
func (s *Server) TLS() bool { return s.tls }

// Close stops the listener and open connections.
func (s *Server) Close() error {
	err := s.srv.Close()
	if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// Serve listens on addr ("127.0.0.1:0" picks a free port), with TLS from
// the tenant's CA or as plain HTTP.
func (t *Tenant) Serve(addr string, useTLS bool) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sim: listen on %s: %w (pick a free address or port 0)", addr, err)
	}
	srv := &http.Server{
		Handler:           t.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(t.log.Handler(), slog.LevelDebug),
	}
	s := &Server{srv: srv, ln: ln, tls: useTLS, done: make(chan error, 1)}
	if useTLS {
		srv.TLSConfig = &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{t.pki.leaf},
			NextProtos:   []string{"h2", "http/1.1"},
		}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	go func() { s.done <- srv.Serve(ln) }()
	t.log.Info("emulated tenant listening", "address", s.Addr(), "tls", useTLS, "tenant_id", t.w.tenantID)
	return s, nil
}

// Hosts are the host names the tenant answers for (legacy hosts are
// patterns: any location).
func Hosts() []string {
	return []string{
		"login.microsoftonline.com",
		"security.microsoft.com", "mto.security.microsoft.com",
		"api.security.microsoft.com", "api.securitycenter.microsoft.com",
		"us.api.security.microsoft.com", "eu.api.security.microsoft.com", "uk.api.security.microsoft.com",
		"au.api.security.microsoft.com", "swa.api.security.microsoft.com", "ina.api.security.microsoft.com",
		"wdatpprd-<loc>.securitycenter.windows.com", "wdatpprd-eu.securitycenter.windows.com",
		"wdatpprd-eu3.securitycenter.windows.com", "wdatpprd-us.securitycenter.windows.com", "wdatpprd-us3.securitycenter.windows.com",
		"m365d-autoir-ac-prd-<loc>.securitycenter.windows.com", "m365d-hunting-api-prd-<loc>.securitycenter.windows.com",
		"m365duseprd-<loc>.securitycenter.windows.com",
		"api-eu.securitycenter.windows.com", "api-us.securitycenter.windows.com",
		"<dce>.<region>-1.ingest.monitor.azure.com", "<dce>.<region>-1.ingest.monitor.azure.us", "<dce>.<region>-1.ingest.monitor.azure.cn",
		hecHost, "<stack>.splunkcloud.com",
		"<tenant>.access.mcas.ms",
		ManageHost,
	}
}

// Info is what a user needs to point a client at a running tenant.
type Info struct {
	Address      string `json:"address"`
	TLS          bool   `json:"tls"`
	CAPEM        string `json:"ca_pem,omitempty"`
	Note         string `json:"note,omitempty"`
	TenantID     string `json:"tenant_id"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	SccAuth      string `json:"sccauth"`
	XSRFToken    string `json:"xsrf_token"`
	// UserUPN is an analyst who can sign in (device code, ESTS cookie);
	// ESTSAuthPersistent is that user's ESTSAUTHPERSISTENT cookie value.
	UserUPN            string            `json:"user_upn"`
	ESTSAuthPersistent string            `json:"ests_auth_persistent"`
	Hosts              []string          `json:"hosts"`
	BaseURLs           map[string]string `json:"base_urls"`
	Changes            []Change          `json:"changes"`
	// Scenario is Options.Scenario; AbuseSteps the attack's steps (abuse
	// scenario only).
	Scenario   string       `json:"scenario,omitempty"`
	AbuseSteps []AbuseStep  `json:"abuse_steps,omitempty"`
	Sentinel   SentinelInfo `json:"sentinel"`
	Splunk     SplunkInfo   `json:"splunk"`
	// Tenants lists every tenant when the emulator serves more than one
	// (secrets left out: see Tenants()); the fields above describe this one.
	Tenants []TenantInfo `json:"tenants,omitempty"`
}

// Info describes the running server s (nil: no listener yet).
func (t *Tenant) Info(s *Server) Info {
	c := t.Credentials()
	in := Info{
		TenantID: c.TenantID, ClientID: c.ClientID, ClientSecret: c.ClientSecret,
		SccAuth: c.SccAuth, XSRFToken: c.XSRFToken, Hosts: Hosts(),
		UserUPN: c.UserUPN, ESTSAuthPersistent: c.ESTSAuthPersistent,
		BaseURLs: map[string]string{
			"entra":  "https://login.microsoftonline.com/" + c.TenantID,
			"portal": "https://security.microsoft.com/apiproxy",
			"public": "https://api.security.microsoft.com/api",
			"legacy": "https://wdatpprd-weu.securitycenter.windows.com/api",
			// The Management Activity API root of this tenant.
			"auditlog": "https://" + ManageHost + "/api/v1.0/" + c.TenantID + "/activity/feed",
		},
		Changes:  t.Changes(),
		Scenario: t.w.scenario, AbuseSteps: t.AbuseSteps(),
		Sentinel: t.root.sentinelInfo(),
		Splunk: SplunkInfo{
			URL: "https://" + hecHost + "/services/collector/event", Token: c.HECToken,
			AckToken: c.HECAckToken, DisabledToken: c.HECDisabledToken, Indexes: t.hec.indexes,
		},
	}
	if len(t.set.all) > 1 {
		in.Tenants = t.Tenants()
	}
	in.BaseURLs["sentinel"] = in.Sentinel.Endpoint
	in.BaseURLs["splunk"] = "https://" + hecHost
	if s != nil {
		in.Address, in.TLS = s.Addr(), s.tls
		if s.tls {
			in.CAPEM = string(t.pki.caPEM)
		} else {
			in.Note = "plain HTTP: send requests to the address with the real host name in the Host header (loopback tests only)"
		}
	}
	return in
}

// CACertPEM is the PEM of the tenant's CA (stable for the Tenant's life).
func (t *Tenant) CACertPEM() []byte { return append([]byte(nil), t.pki.caPEM...) }

// sleepCtx waits d or until ctx ends; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}
