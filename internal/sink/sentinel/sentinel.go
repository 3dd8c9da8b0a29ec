// Package sentinel is the output to Microsoft Sentinel / Log Analytics
// through the Azure Monitor Logs Ingestion API, one stream per table. A
// DCR holds at most 10 streams, so rules send some tables to another DCR
// (one client per endpoint, one credential). Records travel as gzip'd
// JSON arrays of at most 1 MB per call; the shared delivery helper owns
// batching, retries (azcore's own retry is off) and dead letters.
package sentinel

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/monitor/ingestion/azlogs"
	"github.com/klauspost/compress/gzip"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"github.com/defenderharvester/defenderharvester/internal/delivery"
	"github.com/defenderharvester/defenderharvester/internal/httpx"
	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/sink"
)

func init() {
	sink.Register(sink.NewFactory(Name,
		"Microsoft Sentinel / Log Analytics via the Logs Ingestion API (DCR streams Custom-<Table>, tables <Table>_CL)",
		DefaultConfig, New))
}

// uploader is the one azlogs call the sink makes (a seam for tests).
type uploader interface {
	Upload(ctx context.Context, ruleID, streamName string, logs []byte, opts *azlogs.UploadOptions) (azlogs.UploadResponse, error)
}

// route is the DCR one table is sent to.
type route struct {
	client uploader
	dcr    string
	// setting names the config keys to fix, for messages.
	setting string
}

// Sink is the Sentinel output.
type Sink struct {
	name    string // instance name
	cfg     Config
	log     *slog.Logger
	def     *route            // top-level endpoint/dcr_immutable_id; nil if unset
	byTable map[string]*route // tables listed in rules
	exp     *delivery.Exporter
	secrets []string
	// token fetches a token for the Logs Ingestion audience (doctor's
	// Check); nil when the sink was built without a credential (tests).
	token func(ctx context.Context) error

	mu       sync.Mutex
	started  bool
	closed   bool
	inflight sync.WaitGroup
}

// New builds the Sentinel output: it validates the settings, reads the
// credential's secret and prepares the clients; nothing is sent before
// Write.
func New(deps sink.Deps, cfg Config) (*Sink, error) {
	deps = deps.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := deps.Logger.With("output", deps.NameOr(Name))
	co, err := clientOptions(deps, cfg, log)
	if err != nil {
		return nil, err
	}
	cred, secrets, err := newCredential(deps, cfg.Auth, co)
	if err != nil {
		return nil, err
	}
	return newWithCredential(deps, cfg, co, cred, secrets, log)
}

// clientOptions are the azcore options shared by azlogs and azidentity:
// our transport (no redirects) and no azcore retries, since the delivery
// helper owns retries and honours Retry-After beyond azcore's 60 s cap.
func clientOptions(deps sink.Deps, cfg Config, log *slog.Logger) (azcore.ClientOptions, error) {
	cl, _ := cloudConfig(cfg.Cloud)

	base := deps.Transport
	if base == nil {
		base = newHTTPTransport(cfg.Delivery.AttemptTimeout)
	}
	if cfg.InsecureSkipVerify {
		log.Warn("TLS certificate verification is OFF for the sentinel output (insecure_skip_verify: true); use it only for tests")
		t, ok := base.(*http.Transport)
		if !ok {
			return azcore.ClientOptions{}, errors.New("sentinel output: insecure_skip_verify needs the default HTTP transport; remove it")
		}
		t = t.Clone()
		if t.TLSClientConfig == nil {
			t.TLSClientConfig = &tls.Config{}
		}
		t.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // explicit user choice, warned above
		base = t
	}
	// Authenticated requests never follow redirects: a redirect would
	// carry the bearer token (or the client assertion) elsewhere.
	hc := httpx.NewClient(base, 0)
	return azcore.ClientOptions{Cloud: cl, Transport: hc, Retry: policy.RetryOptions{MaxRetries: -1}}, nil
}

// Dial and TLS handshake bounds of the output's own transport, and the
// idle connections it keeps per endpoint (at least delivery.concurrency).
const (
	dialTimeout      = 15 * time.Second
	handshakeTimeout = 15 * time.Second
	idleConnsPerHost = 16
)

// newHTTPTransport is the production transport: the default one with
// bounds on dialling, the TLS handshake and the wait for response headers,
// so a stalled endpoint (Logs Ingestion or Entra) cannot hang a call.
func newHTTPTransport(responseHeader time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = handshakeTimeout
	t.ResponseHeaderTimeout = responseHeader
	// Keep a connection for every call a Write has in flight (the
	// default keeps 2), so each batch does not pay new TLS handshakes.
	t.MaxIdleConnsPerHost = idleConnsPerHost
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{}
	}
	t.TLSClientConfig.MinVersion = tls.VersionTLS12 // the service requires TLS 1.2+ (docs/REFERENCE.md §5.1)
	return t
}

// newWithCredential builds one azlogs client per distinct endpoint, all
// on cred (one token cache).
func newWithCredential(deps sink.Deps, cfg Config, co azcore.ClientOptions, cred azcore.TokenCredential, secrets []string, log *slog.Logger) (*Sink, error) {
	s, err := newSink(deps, cfg, func(endpoint string) (uploader, error) {
		client, err := azlogs.NewClient(endpoint, cred, &azlogs.ClientOptions{ClientOptions: co})
		if err != nil {
			return nil, fmt.Errorf("sentinel output: cannot build the Logs Ingestion client for %s: %w", endpoint, err)
		}
		return client, nil
	}, secrets, log)
	if err != nil {
		return nil, err
	}
	audience := "https://monitor.azure.com/"
	if c, ok := co.Cloud.Services[azlogs.ServiceNameIngestion]; ok && c.Audience != "" {
		audience = c.Audience
	}
	s.token = func(ctx context.Context) error {
		_, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{strings.TrimSuffix(audience, "/") + "//.default"}})
		return err
	}
	return s, nil
}

// Check gets a token for the Logs Ingestion API, the part of the setup
// that can be verified without sending data: a wrong secret, tenant or
// Conditional Access block shows here. The role on the DCR only shows on
// the first upload (403 with the fix in its message). It is bounded by
// delivery.attempt_timeout.
func (s *Sink) Check(ctx context.Context) error {
	if s.token == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Delivery.AttemptTimeout)
	defer cancel()
	if err := s.token(ctx); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("sentinel output: no token for the Logs Ingestion API within %s (delivery.attempt_timeout): Entra did not answer; check the network path to the authority", s.cfg.Delivery.AttemptTimeout)
		}
		return fmt.Errorf("sentinel output: cannot get a token for the Logs Ingestion API (check auth.tenant_id, auth.client_id and the secret or certificate): %s", firstLine(redact(err.Error(), s.secrets)))
	}
	return nil
}

// newSink routes each table to its DCR's uploader and wires the sender
// into the delivery helper. cfg must be validated.
func newSink(deps sink.Deps, cfg Config, newClient func(endpoint string) (uploader, error), secrets []string, log *slog.Logger) (*Sink, error) {
	s := &Sink{name: deps.NameOr(Name), cfg: cfg, log: log, secrets: secrets, byTable: map[string]*route{}}
	clients := map[string]uploader{}
	clientFor := func(endpoint string) (uploader, error) {
		endpoint = strings.TrimRight(endpoint, "/")
		key := strings.ToLower(endpoint) // hosts are case-insensitive
		if c, ok := clients[key]; ok {
			return c, nil
		}
		c, err := newClient(endpoint)
		if err != nil {
			return nil, err
		}
		clients[key] = c
		return c, nil
	}
	if cfg.Endpoint != "" {
		c, err := clientFor(cfg.Endpoint)
		if err != nil {
			return nil, err
		}
		s.def = &route{client: c, dcr: cfg.DCRImmutableID, setting: "outputs.sentinel.endpoint and dcr_immutable_id"}
	}
	for i, r := range cfg.Rules {
		c, err := clientFor(r.Endpoint)
		if err != nil {
			return nil, err
		}
		rt := &route{client: c, dcr: r.DCRImmutableID, setting: fmt.Sprintf("outputs.sentinel.rules[%d] (endpoint, dcr_immutable_id, tables)", i)}
		for _, t := range r.Tables {
			s.byTable[t] = rt
		}
	}
	dir := cfg.DeadLetterDir
	if dir == "" {
		dir = filepath.Join(deps.DataDir, defaultDeadLetterName)
	}
	dcfg := cfg.Delivery
	dcfg.Apart = withinSpan(cfg.MaxTimeSpan)
	exp, err := delivery.New(deps.NameOr(Name), dcfg, delivery.JSONArray, encode, s.send, delivery.NewFileDeadLetter(dir, deps.Now), log)
	if err != nil {
		return nil, fmt.Errorf("sentinel output: %w", err)
	}
	s.exp = exp
	return s, nil
}

// newCredential builds the Entra credential of the configured method and
// returns the secrets to keep out of messages.
func newCredential(deps sink.Deps, a AuthConfig, co azcore.ClientOptions) (azcore.TokenCredential, []string, error) {
	var secret string
	if a.Method == AuthClientSecret {
		var err error
		if a.ClientSecretFile != "" {
			if secret, err = auth.ReadSecretFile(a.ClientSecretFile); err != nil {
				return nil, nil, fmt.Errorf("sentinel output: auth.client_secret_file: %w", err)
			}
		} else if secret = strings.TrimSpace(deps.Getenv(SecretEnv)); secret == "" {
			return nil, nil, fmt.Errorf("sentinel output: no client secret: set auth.client_secret_file to a 0600 file holding it, or the environment variable %s", SecretEnv)
		}
	}
	switch a.Method {
	case AuthClientSecret, AuthCertificate, AuthManagedIdentity, AuthWorkloadIdentity, AuthAzureCLI:
	default:
		return nil, nil, fmt.Errorf("sentinel output: auth.method %q is unknown", a.Method)
	}
	client, _ := co.Transport.(*http.Client)
	cl := co.Cloud
	cred, err := auth.NewCredential(auth.CredentialOptions{
		Method: a.Method, TenantID: a.TenantID, ClientID: a.ClientID, Secret: secret,
		CertificateFile: a.CertificateFile, Client: client, Cloud: &cl, DisableInstanceDiscovery: deps.Emulated,
	})
	secrets := []string{}
	if secret != "" {
		secrets = append(secrets, secret)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("sentinel output: cannot set up %s sign-in: %s", a.Method, redact(err.Error(), secrets))
	}
	return cred, secrets, nil
}

func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[REDACTED]")
		}
	}
	return s
}

func encode(dst []byte, r *record.Record) ([]byte, error) { return r.AppendJSON(dst) }

// Name implements sink.Sink.
func (s *Sink) Name() string { return s.name }

// Start implements sink.Sink. It proves the credential by fetching a
// token for the Logs Ingestion API (Check), so a wrong secret, tenant or
// certificate fails the start and the pipeline keeps this output's share
// in its spool instead of finding out batch by batch.
func (s *Sink) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("sentinel output is shut down and cannot be restarted; build a new one")
	}
	started := s.started
	s.mu.Unlock()
	if started {
		return nil
	}
	if err := s.Check(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	return nil
}

// Write delivers recs to the table's stream and returns nil once the
// service accepted every one (or dead-lettered the ones it refused for
// their own content). A refusal of the request — credentials, role,
// endpoint, DCR, stream — fails the Write and dead-letters nothing. A
// record that is not valid JSON fails the whole batch before anything is
// sent: it is a harvester bug, not data to drop.
func (s *Sink) Write(ctx context.Context, table string, recs []record.Record) error {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return fmt.Errorf("sentinel output: table %s: the output is shut down", table)
	case !s.started:
		s.mu.Unlock()
		return fmt.Errorf("sentinel output: table %s: Write before Start", table)
	}
	s.inflight.Add(1)
	s.mu.Unlock()
	defer s.inflight.Done()
	if _, err := s.route(table); err != nil {
		return err
	}
	for i := range recs {
		if err := checkJSON(&recs[i]); err != nil {
			return fmt.Errorf("sentinel output: table %s: nothing sent: %w", table, err)
		}
	}
	// One Write: the exporter cuts requests where the time range would
	// exceed max_time_span (Config.Apart) and sends them concurrently.
	return s.exp.Write(ctx, table, timeOrdered(recs, s.cfg.MaxTimeSpan))
}

// withinSpan is the exporter's Apart rule for max_time_span: a record
// more than span after the first of a request starts a new request.
func withinSpan(span time.Duration) func(first, next *record.Record) bool {
	if span <= 0 {
		return nil
	}
	return func(first, next *record.Record) bool { return next.Time.Sub(first.Time) > span }
}

// timeOrdered returns recs sorted by time (a copy) when they span more
// than span, so the requests cut by withinSpan are as few as possible; a
// batch already within the span (the usual case) is returned as it is.
func timeOrdered(recs []record.Record, span time.Duration) []record.Record {
	if span <= 0 || len(recs) < 2 {
		return recs
	}
	lo, hi := recs[0].Time, recs[0].Time
	for _, r := range recs[1:] {
		lo, hi = minTime(lo, r.Time), maxTime(hi, r.Time)
	}
	if hi.Sub(lo) <= span {
		return recs
	}
	sorted := slices.Clone(recs)
	slices.SortStableFunc(sorted, func(a, b record.Record) int { return a.Time.Compare(b.Time) })
	return sorted
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// route returns the DCR of table: its rule's, else the top-level one.
func (s *Sink) route(table string) (*route, error) {
	if r, ok := s.byTable[table]; ok {
		return r, nil
	}
	if s.def != nil {
		return s.def, nil
	}
	return nil, delivery.Permanent(fmt.Errorf("sentinel output: table %s: no data collection rule takes it, nothing sent: add %s to the tables of the outputs.sentinel.rules entry whose DCR declares stream %s, or set outputs.sentinel.endpoint and dcr_immutable_id for every table no rule lists", table, table, s.Stream(table)))
}

// checkJSON refuses a record that would give a broken line; a payload
// the pipeline already checked (RawValid) is not scanned again.
func checkJSON(r *record.Record) error {
	if !r.RawValid && !json.Valid(r.Raw) {
		return fmt.Errorf("record %s: the payload is not valid JSON", r.ID)
	}
	for _, f := range r.Extra {
		if !json.Valid(f.Value) {
			return fmt.Errorf("record %s: field %s is not valid JSON", r.ID, f.Key)
		}
	}
	return nil
}

// Shutdown implements sink.Sink: it refuses new Writes and waits for the
// ones in flight, bounded by ctx. Idempotent.
func (s *Sink) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sentinel output: shutdown stopped while writes were in flight: %w", ctx.Err())
	}
}

// Stats are the delivery counters.
func (s *Sink) Stats() delivery.Stats { return s.exp.Stats() }

// Warnings implements sink.Warner.
func (s *Sink) Warnings() []string {
	if s.cfg.InsecureSkipVerify {
		return []string{"TLS certificate verification is off (insecure_skip_verify: true): anyone on the path can read the records and the Entra tokens; remove it outside tests"}
	}
	return nil
}

// Stream returns the stream a table is sent to.
func (s *Sink) Stream(table string) string {
	if st, ok := s.cfg.Streams[table]; ok {
		return st
	}
	return s.cfg.StreamPrefix + table
}

var gzipPool = sync.Pool{New: func() any { w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed); return w }}

// send performs one Upload.
func (s *Sink) send(ctx context.Context, req *delivery.Request) error {
	body := req.Body
	var opts *azlogs.UploadOptions
	if s.cfg.Gzip {
		var buf bytes.Buffer
		buf.Grow(len(body)/4 + 64)
		zw := gzipPool.Get().(*gzip.Writer)
		zw.Reset(&buf)
		_, err := zw.Write(body)
		if err == nil {
			err = zw.Close()
		}
		gzipPool.Put(zw)
		// Incompressible data can grow past the limit; then send it as is.
		if err == nil && buf.Len() <= MaxRequestBytes {
			body = buf.Bytes()
			enc := "gzip"
			opts = &azlogs.UploadOptions{ContentEncoding: &enc}
		}
	}
	rt, err := s.route(req.Table)
	if err != nil {
		return err
	}
	stream := s.Stream(req.Table)
	if _, err = rt.client.Upload(ctx, rt.dcr, stream, body, opts); err == nil {
		return nil
	}
	return s.classify(err, req, stream, rt)
}

// uploadError is a short, secret-free message that still unwraps to the
// azcore/azidentity error.
type uploadError struct {
	msg string
	err error
}

func (e *uploadError) Error() string { return e.msg }
func (e *uploadError) Unwrap() error { return e.err }

// classify maps a failed Upload to the delivery helper's verdicts.
func (s *Sink) classify(err error, req *delivery.Request, stream string, rt *route) error {
	where := fmt.Sprintf("sentinel output: upload of %d records of table %s to stream %s of DCR %s", len(req.Records), req.Table, stream, rt.dcr)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", where, err)
	}
	var signIn *auth.SignInError
	if errors.As(err, &signIn) {
		// Entra refused the credential (wrong secret, tenant, Conditional
		// Access…): retrying cannot fix it.
		return delivery.Permanent(&uploadError{msg: fmt.Sprintf("%s: Entra sign-in failed: %s", where, firstLine(redact(err.Error(), s.secrets))), err: err})
	}
	var authErr *azidentity.AuthenticationFailedError
	if errors.As(err, &authErr) {
		msg := fmt.Sprintf("%s: Entra sign-in failed: %s; check auth.tenant_id, auth.client_id and the secret or certificate", where, firstLine(redact(err.Error(), s.secrets)))
		if authErr.RawResponse != nil && authErr.RawResponse.StatusCode >= 500 {
			return &uploadError{msg: msg, err: err}
		}
		return delivery.Permanent(&uploadError{msg: msg, err: err})
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		// Transport errors (connection reset, DNS, TLS) are transient.
		return &uploadError{msg: fmt.Sprintf("%s: %s", where, firstLine(redact(err.Error(), s.secrets))), err: err}
	}
	code, text := serviceError(re)
	detail := fmt.Sprintf("HTTP %d", re.StatusCode)
	if code != "" {
		detail += " " + code
	}
	if text != "" {
		detail += ": " + text
	}
	ue := func(hint string) *uploadError {
		m := where + ": " + detail
		if hint != "" {
			m += "; " + hint
		}
		return &uploadError{msg: redact(m, s.secrets), err: err}
	}
	switch st := re.StatusCode; {
	case st == http.StatusRequestEntityTooLarge:
		return delivery.TooLarge(ue(""))
	case st == http.StatusTooManyRequests || st == http.StatusRequestTimeout || st >= 500:
		if d, ok := retryAfterOf(re.RawResponse); ok {
			return delivery.RetryAfter(ue(""), d)
		}
		return ue("")
	case st == http.StatusUnauthorized, st == http.StatusForbidden:
		hint := "the identity needs the Monitoring Metrics Publisher role on the data collection rule " + rt.dcr +
			" (az role assignment create --role \"Monitoring Metrics Publisher\" --assignee <client id> --scope <DCR resource id>); role assignments take up to 30 minutes to apply"
		if st == http.StatusUnauthorized {
			hint = "the token was refused: check auth.tenant_id, cloud and that the app exists in that tenant; " + hint
		}
		return delivery.Permanent(ue(hint))
	case st == http.StatusNotFound:
		return delivery.Permanent(ue("check " + rt.setting + " and that the DCR declares stream " + stream + " (run sentinel-setup)"))
	case st == http.StatusBadRequest && code == codeTimeRange:
		return delivery.Permanent(ue("the records of one call span more than the service allows; keep max_time_span at 30m (or lower) for this output"))
	case st == http.StatusBadRequest && requestCode(code):
		return delivery.Permanent(ue("the service refused the request itself, not its records; check " + rt.setting + ", stream " + stream + " and any proxy between here and the service"))
	case st == http.StatusBadRequest:
		// A 400 without a code about the request is the records' content
		// not matching the stream (schema, malformed values): one record is
		// dead-lettered; for several the helper looks for the one.
		return delivery.Rejected(ue("the record does not match stream " + stream + "'s declaration; compare the DCR with `defenderharvester sentinel-setup` output"))
	default:
		return delivery.Permanent(ue("the service refused the request; compare the DCR with `defenderharvester sentinel-setup` output and check " + rt.setting))
	}
}

// codeTimeRange is the documented refusal of a call whose records span
// more than 30 minutes (docs/REFERENCE.md §5.4).
const codeTimeRange = "RecordsTimeRangeIsMoreThan30Minutes"

// requestCode reports whether a 400's error code names the request rather
// than its records: the API version, the encoding, the transport, the
// data collection rule or endpoint, the stream. Codes docs/REFERENCE.md §5.4 does
// not list are read by what they name.
func requestCode(code string) bool {
	c := strings.ToLower(code)
	for _, w := range []string{"apiversion", "encoding", "https", "mediatype", "contenttype",
		"datacollection", "dcr", "dce", "endpoint", "stream", "authentication", "authorization", "token"} {
		if strings.Contains(c, w) {
			return true
		}
	}
	return false
}

// serviceError reads {"error":{"code","message"}} (or x-ms-error-code).
func serviceError(re *azcore.ResponseError) (code, msg string) {
	code = re.ErrorCode
	if re.RawResponse == nil {
		return code, ""
	}
	if code == "" {
		code = re.RawResponse.Header.Get("x-ms-error-code")
	}
	body, err := runtime.Payload(re.RawResponse)
	if err != nil {
		return code, ""
	}
	return parseErrorBody(code, body)
}

// parseErrorBody extracts the service's code and message, bounded so a
// huge or hostile body cannot flood the logs.
func parseErrorBody(code string, body []byte) (string, string) {
	var env struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil {
		if code == "" {
			code = env.Error.Code
		}
		return clip(code, 100), clip(env.Error.Message, 600)
	}
	return clip(code, 100), ""
}

func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		cut := n
		for cut > 0 && s[cut]&0xC0 == 0x80 {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	return clip(s, 300)
}

// retryAfterOf is the wait the service asked for, if it answered at all.
func retryAfterOf(resp *http.Response) (time.Duration, bool) {
	if resp == nil {
		return 0, false
	}
	return httpx.RetryAfter(resp.Header, time.Now())
}
