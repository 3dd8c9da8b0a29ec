// Package webhook is the receiving end of the Office 365 Management
// Activity API's webhook (protocols.md §C.4): it answers the validation
// handshake, checks every notification against the configured tenant,
// management host and content types, and queues the accepted ones for the
// harvester, which fetches their contentUri later with its own token. It
// never fetches anything itself.
//
// Lifecycle (like internal/service): New checks the options, Start
// serves, Shutdown ends. Handler serves the same requests for a caller
// that runs its own server.
package webhook

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of Options.
const (
	DefaultMaxBodyBytes  = 1 << 20
	DefaultMaxItems      = 2000
	DefaultMaxConcurrent = 16
	DefaultQueueSize     = 10000
	DefaultDedupWindow   = 24 * time.Hour
	DefaultDedupMax      = 100000
	DefaultRetryAfter    = 30 * time.Second
)

// Options configure New. AuthID, TenantID and Host are required.
type Options struct {
	// AuthID is the secret the subscription was started with
	// (webhook.authId); every request must carry it in Webhook-AuthID.
	// The caller reads it from a file or the environment; it is compared
	// in constant time and never logged. Required.
	AuthID string
	// TenantID is our tenant (a GUID): notifications for any other are
	// rejected. Required.
	TenantID string
	// Host is the management host of the configured cloud (HostForCloud),
	// the only host a contentUri may name. Required.
	Host string
	// ContentTypes are the content types accepted (nil: AllContentTypes).
	ContentTypes []string

	// Listen is the address Start listens on (e.g. ":9443"), unless
	// Listener is set.
	Listen string
	// Listener, when set, is served by Start instead of Listen (closed by
	// Shutdown).
	Listener net.Listener
	// TLSConfig, when set, makes Start serve HTTPS (the service only
	// posts to https addresses; without it, terminate TLS in front).
	TLSConfig *tls.Config
	// Path is the path the webhook answers on (default "/"); any other
	// path is 404.
	Path string

	// MaxBodyBytes bounds a request body (default 1 MiB); larger is 413.
	MaxBodyBytes int64
	// MaxItems bounds the notifications in one request (default 2000);
	// more is 413.
	MaxItems int
	// MaxConcurrent bounds the requests read at once (default 16); beyond
	// it the answer is 503 at once.
	MaxConcurrent int
	// QueueSize bounds the accepted notifications not yet consumed
	// (default 10000; at least MaxItems). A request whose new
	// notifications do not all fit is refused whole with 503 (nothing of
	// it is queued), so the service retries it later.
	QueueSize int
	// DedupWindow is how long a queued contentId is remembered (default
	// 24h); a repeat within it is answered 200 and not queued again.
	DedupWindow time.Duration
	// DedupMax bounds the contentIds remembered (default 100000; the
	// oldest are forgotten first).
	DedupMax int
	// RetryAfter is sent with 503 answers (default 30s).
	RetryAfter time.Duration

	// Server timeouts (defaults 5s, 30s, 30s, 60s).
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration

	Logger *slog.Logger
	// Now is the clock for dedup and expiry (nil: time.Now).
	Now func() time.Time
}

// Listener receives webhook notifications. Its methods are safe for
// concurrent use.
type Listener struct {
	opts  Options
	log   *slog.Logger
	check checker
	auth  [32]byte // SHA-256 of the AuthID
	sem   chan struct{}

	mu     sync.Mutex // guards queue sends, closed, dedup
	queue  chan Notification
	closed bool
	seen   *dedup

	stats counters

	warnLimit  *rate.Limiter
	suppressed atomic.Uint64

	srvMu sync.Mutex
	srv   *Server // what Start runs
}

// New checks the options; it refuses to build a listener without an
// AuthID, a GUID tenant or a bare management host name.
func New(opts Options) (*Listener, error) {
	if opts.AuthID == "" {
		return nil, errors.New("webhook: no AuthID: refusing to accept unauthenticated notifications")
	}
	if strings.TrimSpace(opts.AuthID) != opts.AuthID {
		return nil, errors.New("webhook: the AuthID starts or ends with white space (trim the file or variable it was read from)")
	}
	for _, c := range opts.AuthID {
		if c < 0x21 || c > 0x7e {
			return nil, errors.New("webhook: the AuthID must be printable ASCII without spaces (it travels in an HTTP header)")
		}
	}
	if !isGUID(opts.TenantID) {
		return nil, fmt.Errorf("webhook: tenant id %q is not a GUID", opts.TenantID)
	}
	if err := checkHost(opts.Host); err != nil {
		return nil, err
	}
	cts := opts.ContentTypes
	if cts == nil {
		cts = AllContentTypes()
	}
	if len(cts) == 0 {
		return nil, errors.New("webhook: no content types allowed")
	}
	known := map[string]string{}
	for _, ct := range AllContentTypes() {
		known[strings.ToLower(ct)] = ct
	}
	allowed := map[string]string{}
	for _, ct := range cts {
		canon, ok := known[strings.ToLower(ct)]
		if !ok {
			return nil, fmt.Errorf("webhook: unknown content type %q (want one of %s)", ct, strings.Join(AllContentTypes(), ", "))
		}
		allowed[strings.ToLower(ct)] = canon
	}
	if opts.Path == "" {
		opts.Path = "/"
	}
	if !strings.HasPrefix(opts.Path, "/") {
		return nil, fmt.Errorf("webhook: path %q does not start with /", opts.Path)
	}
	setDefault(&opts.MaxBodyBytes, DefaultMaxBodyBytes)
	setDefault(&opts.MaxItems, DefaultMaxItems)
	setDefault(&opts.MaxConcurrent, DefaultMaxConcurrent)
	setDefault(&opts.QueueSize, DefaultQueueSize)
	setDefault(&opts.DedupWindow, DefaultDedupWindow)
	setDefault(&opts.DedupMax, DefaultDedupMax)
	setDefault(&opts.RetryAfter, DefaultRetryAfter)
	setDefault(&opts.ReadHeaderTimeout, 5*time.Second)
	setDefault(&opts.ReadTimeout, 30*time.Second)
	setDefault(&opts.WriteTimeout, 30*time.Second)
	setDefault(&opts.IdleTimeout, 60*time.Second)
	if opts.QueueSize < opts.MaxItems {
		return nil, fmt.Errorf("webhook: queue size %d is smaller than the items allowed in one request (%d): such a request could never be queued", opts.QueueSize, opts.MaxItems)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := &Listener{
		opts:      opts,
		log:       opts.Logger.With("component", "webhook"),
		check:     checker{tenant: opts.TenantID, host: strings.ToLower(opts.Host), contentTypes: allowed, now: opts.Now},
		auth:      sha256.Sum256([]byte(opts.AuthID)),
		sem:       make(chan struct{}, opts.MaxConcurrent),
		queue:     make(chan Notification, opts.QueueSize),
		seen:      newDedup(opts.DedupWindow, opts.DedupMax),
		warnLimit: rate.NewLimiter(rate.Every(time.Second), 20),
	}
	l.opts.AuthID = "" // kept only as its hash
	return l, nil
}

func setDefault[T int | int64 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// secretEqual compares a received AuthID with the expected one in
// constant time (both hashed first, so not even the length leaks). A
// variable so tests can see it is the comparison used.
var secretEqual = func(got string, want [32]byte) bool {
	h := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(h[:], want[:]) == 1
}

// Notifications is the queue of accepted notifications. It is closed by
// Shutdown once no request can add to it; what was queued before stays
// readable.
func (l *Listener) Notifications() <-chan Notification { return l.queue }

// Handler serves the webhook (the same as Start serves).
func (l *Listener) Handler() http.Handler { return http.HandlerFunc(l.serveHTTP) }

// Start listens (Options.Listener, or Options.Listen) and serves in the
// background, on a Server of its own. ctx is the base context of every
// request.
func (l *Listener) Start(ctx context.Context) error {
	l.srvMu.Lock()
	defer l.srvMu.Unlock()
	if l.srv != nil {
		return errors.New("webhook: started twice")
	}
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return errors.New("webhook: start after shutdown")
	}
	o := l.opts
	srv, err := NewServer(ServerOptions{Listen: o.Listen, Listener: o.Listener, TLSConfig: o.TLSConfig,
		ReadHeaderTimeout: o.ReadHeaderTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout, IdleTimeout: o.IdleTimeout,
		Logger: o.Logger})
	if err != nil {
		return err
	}
	srv.fallback = l // other paths: the listener answers (and counts) the 404
	if _, err := srv.Mount(l); err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	l.srv = srv
	return nil
}

// Addr is the address Start listens on (nil before Start).
func (l *Listener) Addr() net.Addr {
	l.srvMu.Lock()
	defer l.srvMu.Unlock()
	if l.srv == nil {
		return nil
	}
	return l.srv.Addr()
}

// Shutdown stops the endpoint Start runs (waiting, within ctx, for the
// requests in flight) and closes the queue: later requests are answered
// 503, and the consumer drains what was queued, then sees the channel
// closed. Safe to call without Start (a caller serving Handler itself, or
// a Server the listener is mounted on) and more than once.
func (l *Listener) Shutdown(ctx context.Context) error {
	l.srvMu.Lock()
	srv := l.srv
	l.srvMu.Unlock()
	var err error
	if srv != nil {
		err = srv.Shutdown(ctx)
	}
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.queue)
	}
	l.mu.Unlock()
	return err
}

// errOverflow and errClosed are the outcomes of offer that are answered 503.
var (
	errOverflow = errors.New("queue full")
	errClosed   = errors.New("shutting down")
)

// offer queues the notifications not seen within the dedup window, all
// or none: if they do not all fit, nothing is queued (and nothing is
// remembered), so the service's retry brings them back whole. It never
// blocks: sends happen under mu only when the free room was checked
// under mu (consumers only make room).
func (l *Listener) offer(items []Notification) (queued, dups int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, 0, errClosed
	}
	now := l.opts.Now()
	l.seen.prune(now)
	fresh := items[:0:0]
	inBatch := map[string]struct{}{}
	for _, n := range items {
		if _, ok := inBatch[n.ContentID]; ok || l.seen.has(n.ContentID, now) {
			dups++
			continue
		}
		inBatch[n.ContentID] = struct{}{}
		fresh = append(fresh, n)
	}
	if cap(l.queue)-len(l.queue) < len(fresh) {
		return 0, 0, errOverflow
	}
	for _, n := range fresh {
		l.queue <- n
		l.seen.add(n.ContentID, now)
	}
	return len(fresh), dups, nil
}

// warn logs at Warn level, at most about one a second after a burst of
// 20, so that a flood of bad requests cannot flood the log; what is
// suppressed is counted and the count reported with the next line.
func (l *Listener) warn(msg string, args ...any) {
	if !l.warnLimit.Allow() {
		l.suppressed.Add(1)
		return
	}
	if n := l.suppressed.Swap(0); n > 0 {
		args = append(args, "suppressed_warnings", n)
	}
	l.log.Warn(msg, args...)
}
