package sim

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/monitor/ingestion/azlogs"
)

// tlsEnv is a tenant served over TLS with a client that trusts its CA.
type tlsEnv struct {
	*env
	cl  *http.Client
	srv *Server
}

func newTLSEnv(t *testing.T, mod func(*Options)) *tlsEnv {
	t.Helper()
	e := newEnv(t, mod)
	srv, err := e.ten.Serve("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return &tlsEnv{env: e, cl: tlsClient(t, e.ten, srv.Addr()), srv: srv}
}

func (e *tlsEnv) send(method, url string, body []byte, hdr map[string]string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := e.cl.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, b}
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func rec(id string) string {
	return fmt.Sprintf(`{"TimeGenerated":"2026-03-10T12:00:00.0000000Z","RecordId":%q,"ActionType":"Isolate"}`, id)
}

func TestLogsIngestionStrictness(t *testing.T) {
	e := newTLSEnv(t, nil)
	c := e.ten.Credentials()
	in := e.ten.Info(e.srv).Sentinel
	tok := e.token(c.ClientID, c.ClientSecret, "https://monitor.azure.com//.default")
	tokSingle := e.token(c.ClientID, c.ClientSecret, "https://monitor.azure.com/.default")
	restricted := e.token(c.RestrictedClientID, c.RestrictedClientSecret, "https://monitor.azure.com//.default")
	wrongAud := e.publicToken()
	url := func(dcr, stream, q string) string {
		return in.Endpoint + "/dataCollectionRules/" + dcr + "/streams/" + stream + q
	}
	good := url(in.DCRImmutableID, "Custom-MdeMachineActions", "?api-version=2023-01-01")
	arr := []byte("[" + rec("a1") + "," + rec("a2") + "]")
	big := []byte("[" + strings.Repeat(rec("x")+",", maxIngestBytes/len(rec("x"))) + rec("x") + "]")
	hdr := func(tok string, kv ...string) map[string]string {
		h := map[string]string{"Content-Type": "application/json"}
		if tok != "" {
			h["Authorization"] = "Bearer " + tok
		}
		for i := 0; i+1 < len(kv); i += 2 {
			h[kv[i]] = kv[i+1]
		}
		return h
	}
	cases := []struct {
		name   string
		method string
		url    string
		body   []byte
		hdr    map[string]string
		status int
		code   string
	}{
		{"success", "POST", good, arr, hdr(tok), 204, ""},
		{"scope with one slash", "POST", good, arr, hdr(tokSingle), 204, ""},
		{"gzip", "POST", good, gz(t, arr), hdr(tok, "Content-Encoding", "gzip"), 204, ""},
		{"DCR endpoint host", "POST", "https://dcr-x-abcd.eastus-1.ingest.monitor.azure.com/dataCollectionRules/" + in.DCRImmutableID + "/streams/Custom-T?api-version=2023-01-01", arr, hdr(tok), 204, ""},
		{"no token", "POST", good, arr, hdr(""), 401, "InvalidAuthenticationToken"},
		{"wrong audience", "POST", good, arr, hdr(wrongAud), 401, "InvalidAuthenticationTokenAudience"},
		{"no publisher role", "POST", good, arr, hdr(restricted), 403, "OperationFailed"},
		{"unknown DCR", "POST", url("dcr-00000000000000000000000000000000", "Custom-T", "?api-version=2023-01-01"), arr, hdr(tok), 403, "OperationFailed"},
		{"stream not Custom-", "POST", url(in.DCRImmutableID, "MdeTable", "?api-version=2023-01-01"), arr, hdr(tok), 404, "InvalidStream"},
		{"api-version missing", "POST", url(in.DCRImmutableID, "Custom-T", ""), arr, hdr(tok), 400, "MissingApiVersionParameter"},
		{"api-version wrong", "POST", url(in.DCRImmutableID, "Custom-T", "?api-version=2021-01-01"), arr, hdr(tok), 400, "UnsupportedApiVersion"},
		{"content type", "POST", good, arr, hdr(tok, "Content-Type", "text/plain"), 415, "UnsupportedMediaType"},
		{"deflate", "POST", good, arr, hdr(tok, "Content-Encoding", "deflate"), 400, "InvalidContentEncoding"},
		{"bad gzip", "POST", good, arr, hdr(tok, "Content-Encoding", "gzip"), 400, "InvalidContentEncoding"},
		{"object not array", "POST", good, []byte(rec("o")), hdr(tok), 400, "InvalidRequest"},
		{"not JSON", "POST", good, []byte("[{"), hdr(tok), 400, "InvalidRequest"},
		{"element not object", "POST", good, []byte(`[1]`), hdr(tok), 400, "InvalidRequest"},
		{"no TimeGenerated", "POST", good, []byte(`[{"RecordId":"n"}]`), hdr(tok), 400, "InvalidRequest"},
		{"bad TimeGenerated", "POST", good, []byte(`[{"TimeGenerated":"yesterday"}]`), hdr(tok), 400, "InvalidRequest"},
		{"over 1 MB", "POST", good, big, hdr(tok), 413, "ContentLengthLimitExceeded"},
		{"over 1 MB decompressed", "POST", good, gz(t, big), hdr(tok, "Content-Encoding", "gzip"), 413, "ContentLengthLimitExceeded"},
		{"wrong method", "GET", good, nil, hdr(tok), 405, "MethodNotAllowed"},
		{"unknown path", "POST", in.Endpoint + "/dataCollectionRules/x", arr, hdr(tok), 404, "NotFound"},
	}
	if len(gz(t, big)) > maxIngestBytes {
		t.Fatal("test data: compressed big body should fit 1 MB")
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.send(tc.method, tc.url, tc.body, tc.hdr)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if r.header.Get("x-ms-request-id") == "" {
				t.Error("no x-ms-request-id")
			}
			if tc.status == 204 {
				if len(r.body) != 0 {
					t.Fatalf("204 with body %q", r.body)
				}
				return
			}
			var env struct {
				Error struct{ Code, Message string }
			}
			r.json(t, &env)
			if env.Error.Code != tc.code || env.Error.Message == "" || r.header.Get("x-ms-error-code") != tc.code {
				t.Fatalf("error %+v header %q, want code %s", env.Error, r.header.Get("x-ms-error-code"), tc.code)
			}
			if tc.code == "OperationFailed" && !strings.HasPrefix(env.Error.Message, "The authentication token provided does not have access to ingest data for the data collection rule with immutable Id") {
				t.Fatalf("403 message shape: %s", env.Error.Message)
			}
		})
	}
	st := e.ten.Received(ReceiverSentinel)
	if st.Records != 8 || st.ByTable["Custom-MdeMachineActions"] != 6 || st.ByTable["Custom-T"] != 2 {
		t.Fatalf("accounting: %+v", st)
	}
	if st.Rejected[413] != 2 || st.Rejected[403] != 2 || st.Requests != len(cases) {
		t.Fatalf("rejections: %+v requests %d", st.Rejected, st.Requests)
	}
	// Plain HTTP is refused: the service is HTTPS only.
	r := e.do("POST", "dce.westeurope-1.ingest.monitor.azure.com", "/dataCollectionRules/"+in.DCRImmutableID+"/streams/Custom-T?api-version=2023-01-01", arr, hdr(tok))
	if r.status != 400 || !strings.Contains(string(r.body), "HttpsRequired") {
		t.Fatalf("plain HTTP: %d %s", r.status, r.body)
	}
}

func TestLogsIngestionDeclaredStreams(t *testing.T) {
	e := newTLSEnv(t, func(o *Options) { o.SentinelTables = []string{"MdeActionCenter"} })
	c := e.ten.Credentials()
	in := e.ten.Info(e.srv).Sentinel
	if in.AnyCustomStream || len(in.Streams) != 1 || in.Streams[0] != "Custom-MdeActionCenter" {
		t.Fatalf("info: %+v", in)
	}
	tok := e.token(c.ClientID, c.ClientSecret, "https://monitor.azure.com//.default")
	h := map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + tok}
	base := in.Endpoint + "/dataCollectionRules/" + in.DCRImmutableID + "/streams/"
	if r := e.send("POST", base+"Custom-MdeActionCenter?api-version=2023-01-01", []byte("["+rec("1")+"]"), h); r.status != 204 {
		t.Fatalf("declared stream: %d %s", r.status, r.body)
	}
	if r := e.send("POST", base+"Custom-Other?api-version=2023-01-01", []byte("["+rec("1")+"]"), h); r.status != 404 {
		t.Fatalf("undeclared stream: %d %s", r.status, r.body)
	}
	if _, err := New(Options{DCRs: []DCR{{ImmutableID: "dcr-123"}}}); err == nil {
		t.Fatal("a malformed immutable id was accepted")
	}
}

// The real azlogs client with a real azidentity credential uploads to the
// emulated Logs Ingestion route over TLS.
func TestAzlogsClientUpload(t *testing.T) {
	e := newTLSEnv(t, func(o *Options) { o.Clock = nil; o.KeepReceived = true })
	c := e.ten.Credentials()
	in := e.ten.Info(e.srv).Sentinel
	client := func(id, secret string) *azlogs.Client {
		cred, err := azidentity.NewClientSecretCredential(c.TenantID, id, secret, &azidentity.ClientSecretCredentialOptions{
			DisableInstanceDiscovery: true, ClientOptions: policy.ClientOptions{Transport: e.cl},
		})
		if err != nil {
			t.Fatal(err)
		}
		cl, err := azlogs.NewClient(in.Endpoint, cred, &azlogs.ClientOptions{ClientOptions: azcore.ClientOptions{
			Transport: e.cl, Retry: policy.RetryOptions{MaxRetries: -1},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	ctx := context.Background()
	logs := []byte("[" + rec("r1") + "," + rec("r2") + "]")
	if _, err := client(c.ClientID, c.ClientSecret).Upload(ctx, in.DCRImmutableID, "Custom-MdeMachineActions", logs, nil); err != nil {
		t.Fatalf("upload: %v", err)
	}
	enc := "gzip"
	if _, err := client(c.ClientID, c.ClientSecret).Upload(ctx, in.DCRImmutableID, "Custom-MdeMachineActions", gz(t, []byte("["+rec("r3")+"]")), &azlogs.UploadOptions{ContentEncoding: &enc}); err != nil {
		t.Fatalf("gzip upload: %v", err)
	}
	got := e.ten.Stored(ReceiverSentinel, "Custom-MdeMachineActions")
	if len(got) != 3 || recordID(got[2]) != "r3" {
		t.Fatalf("stored: %s", got)
	}
	_, err := client(c.RestrictedClientID, c.RestrictedClientSecret).Upload(ctx, in.DCRImmutableID, "Custom-MdeMachineActions", logs, nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 403 || re.ErrorCode != "OperationFailed" {
		t.Fatalf("restricted app: %v", err)
	}
}

func TestHECStrictness(t *testing.T) {
	e := newTLSEnv(t, func(o *Options) { o.HECMaxContentLength = 4096 })
	c := e.ten.Credentials()
	const chID = "2f1c2f6e-0d2a-4f0b-9d4e-3b8a7c6d5e4f"
	ev := `{"event":{"RecordId":"h1"},"sourcetype":"mde:actions","index":"defender","fields":{"tenant":"t","tags":["a","b"]},"time":1426279439.5}`
	auth := func(tok string) map[string]string { return map[string]string{"Authorization": "Splunk " + tok} }
	with := func(m map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	const u = "https://" + hecHost + "/services/collector/event"
	cases := []struct {
		name     string
		method   string
		url      string
		body     string
		hdr      map[string]string
		status   int
		code     int
		badEvent int // -1: no invalid-event-number
	}{
		{"success", "POST", u, ev, auth(c.HECToken), 200, 0, -1},
		{"alias collector", "POST", "https://" + hecHost + "/services/collector", ev, auth(c.HECToken), 200, 0, -1},
		{"alias 1.0 on splunkcloud", "POST", "https://http-inputs-acme.splunkcloud.com/services/collector/event/1.0", ev, auth(c.HECToken), 200, 0, -1},
		{"batch", "POST", u, ev + "\n" + ev + ev, auth(c.HECToken), 200, 0, -1},
		{"basic auth", "POST", u, ev, map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("x:"+c.HECToken))}, 200, 0, -1},
		{"no token", "POST", u, ev, nil, 401, 2, -1},
		{"malformed auth", "POST", u, ev, map[string]string{"Authorization": "Bearer " + c.HECToken}, 401, 3, -1},
		{"unknown token", "POST", u, ev, auth("00000000-0000-0000-0000-000000000000"), 403, 4, -1},
		{"disabled token", "POST", u, ev, auth(c.HECDisabledToken), 403, 1, -1},
		{"query token", "POST", u + "?token=" + c.HECToken, ev, nil, 400, 16, -1},
		{"no data", "POST", u, "  ", auth(c.HECToken), 400, 5, -1},
		{"array", "POST", u, "[" + ev + "]", auth(c.HECToken), 400, 6, 0},
		{"bad second element", "POST", u, ev + `{"event":`, auth(c.HECToken), 400, 6, 1},
		{"index not allowed", "POST", u, `{"event":"x","index":"secret"}`, auth(c.HECToken), 400, 7, 0},
		{"missing event", "POST", u, ev + `{"host":"h"}`, auth(c.HECToken), 400, 12, 1},
		{"blank event", "POST", u, `{"event":"  "}`, auth(c.HECToken), 400, 13, 0},
		{"nested fields", "POST", u, `{"event":"x","fields":{"a":{"b":1}}}`, auth(c.HECToken), 400, 15, 0},
		{"deflate", "POST", u, ev, with(auth(c.HECToken), "Content-Encoding", "deflate"), 400, 6, -1},
		{"too large", "POST", u, strings.Repeat(ev, 40), auth(c.HECToken), 413, 6, -1},
		{"ack token needs channel", "POST", u, ev, auth(c.HECAckToken), 400, 10, -1},
		{"malformed channel", "POST", u, ev, with(auth(c.HECToken), "X-Splunk-Request-Channel", "nope"), 400, 11, -1},
		{"ack on non-ack token", "POST", "https://" + hecHost + "/services/collector/ack?channel=" + chID, `{"acks":[0]}`, auth(c.HECToken), 400, 14, -1},
		{"health", "GET", "https://" + hecHost + "/services/collector/health", "", nil, 200, 17, -1},
		{"raw not emulated", "POST", "https://" + hecHost + "/services/collector/raw", "x", auth(c.HECToken), 404, 404, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.send(tc.method, tc.url, []byte(tc.body), tc.hdr)
			var out map[string]any
			r.json(t, &out)
			if r.status != tc.status || out["code"] != float64(tc.code) || out["text"] == "" {
				t.Fatalf("got %d %s, want %d code %d", r.status, r.body, tc.status, tc.code)
			}
			n, has := out["invalid-event-number"]
			if (tc.badEvent >= 0) != has || (has && n != float64(tc.badEvent)) {
				t.Fatalf("invalid-event-number %v, want %d", n, tc.badEvent)
			}
		})
	}
	// A gzip body within the limit is accepted; one that inflates past it is 413.
	if r := e.send("POST", u, gz(t, []byte(ev)), with(auth(c.HECToken), "Content-Encoding", "gzip")); r.status != 200 {
		t.Fatalf("gzip: %d %s", r.status, r.body)
	}
	if r := e.send("POST", u, gz(t, []byte(strings.Repeat(ev, 40))), with(auth(c.HECToken), "Content-Encoding", "gzip")); r.status != 413 {
		t.Fatalf("gzip bomb: %d %s", r.status, r.body)
	}
	st := e.ten.Received(ReceiverSplunk)
	// success 1 + alias 1 + alias 1 + batch 3 + basic 1 + first of "bad
	// second element" 1 + first of "missing event" 1 + gzip 1.
	if st.ByTable["mde:actions"] != 10 || st.Unique != 1 || st.Duplicates != 9 || st.IDs()["h1"] != 10 {
		t.Fatalf("accounting: %+v ids %v", st, st.IDs())
	}
}

func TestHECAckLifecycle(t *testing.T) {
	e := newTLSEnv(t, func(o *Options) { o.HECAckDelay = 10 * time.Second })
	c := e.ten.Credentials()
	const ch1, ch2 = "2f1c2f6e-0d2a-4f0b-9d4e-3b8a7c6d5e4f", "8a8b8c8d-0000-4000-8000-000000000001"
	h := func(ch string) map[string]string {
		return map[string]string{"Authorization": "Splunk " + c.HECAckToken, "X-Splunk-Request-Channel": ch}
	}
	post := func(ch string) float64 {
		r := e.send("POST", "https://"+hecHost+"/services/collector/event", []byte(`{"event":"x"}`), h(ch))
		var out map[string]any
		r.json(t, &out)
		if r.status != 200 {
			t.Fatalf("post: %d %s", r.status, r.body)
		}
		return out["ackId"].(float64)
	}
	query := func(ch string, ids string) map[string]bool {
		r := e.send("POST", "https://"+hecHost+"/services/collector/ack?channel="+ch, []byte(`{"acks":`+ids+`}`),
			map[string]string{"Authorization": "Splunk " + c.HECAckToken})
		var out struct{ Acks map[string]bool }
		r.json(t, &out)
		if r.status != 200 {
			t.Fatalf("ack query: %d %s", r.status, r.body)
		}
		return out.Acks
	}
	if a, b, x := post(ch1), post(ch1), post(ch2); a != 0 || b != 1 || x != 0 {
		t.Fatalf("ack ids per channel from 0: %v %v %v", a, b, x)
	}
	if got := query(ch1, "[0,1,7]"); got["0"] || got["1"] || got["7"] || len(got) != 3 {
		t.Fatalf("before the delay: %v", got)
	}
	e.wall.Add(10 * time.Second)
	if got := query(ch1, "[0,1]"); !got["0"] || !got["1"] {
		t.Fatalf("after the delay: %v", got)
	}
	if got := query(ch1, "[0,1]"); got["0"] || got["1"] {
		t.Fatalf("a true ack must be forgotten: %v", got)
	}
	if got := query(ch2, "[0]"); !got["0"] {
		t.Fatalf("channel 2: %v", got)
	}
	r := e.send("POST", "https://"+hecHost+"/services/collector/ack", []byte(`{"acks":[0]}`), map[string]string{"Authorization": "Splunk " + c.HECAckToken})
	if r.status != 400 || !strings.Contains(string(r.body), `"code":10`) {
		t.Fatalf("ack without channel: %d %s", r.status, r.body)
	}
	r = e.send("POST", "https://"+hecHost+"/services/collector/ack?channel="+ch1, []byte(`[0]`), map[string]string{"Authorization": "Splunk " + c.HECAckToken})
	if r.status != 400 || !strings.Contains(string(r.body), `"code":6`) {
		t.Fatalf("bad ack body: %d %s", r.status, r.body)
	}
}

func TestReceiverFaultsOutageAndBusy(t *testing.T) {
	e := newTLSEnv(t, nil)
	c := e.ten.Credentials()
	in := e.ten.Info(e.srv).Sentinel
	tok := e.token(c.ClientID, c.ClientSecret, in.Scope)
	li := in.Endpoint + "/dataCollectionRules/" + in.DCRImmutableID + "/streams/Custom-T?api-version=2023-01-01"
	liHdr := map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + tok}
	hec := "https://" + hecHost + "/services/collector/event"
	hecHdr := map[string]string{"Authorization": "Splunk " + c.HECToken}
	body := []byte("[" + rec("f") + "]")

	e.ten.Inject(FaultRule{Family: ReceiverSentinel, Kind: Fault429, Count: 1, RetryAfter: 90 * time.Second})
	if r := e.send("POST", li, body, liHdr); r.status != 429 || r.header.Get("Retry-After") != "90" || r.header.Get("x-ms-error-code") != "TooManyRequests" {
		t.Fatalf("sentinel 429: %d %v %s", r.status, r.header, r.body)
	}
	e.ten.Inject(FaultRule{Family: ReceiverSplunk, Kind: Fault503, Count: 1})
	if r := e.send("POST", hec, []byte(`{"event":"x"}`), hecHdr); r.status != 503 || !strings.Contains(string(r.body), `"code":9`) {
		t.Fatalf("splunk 503: %d %s", r.status, r.body)
	}
	// Outage: every request's connection dies until it ends.
	e.ten.SetReceiverDown(ReceiverSplunk, true)
	req, _ := http.NewRequest("POST", hec, strings.NewReader(`{"event":"x"}`))
	req.Header.Set("Authorization", "Splunk "+c.HECToken)
	if res, err := e.cl.Do(req); err == nil {
		res.Body.Close()
		t.Fatalf("outage: got status %d, want a connection error", res.StatusCode)
	}
	e.ten.SetReceiverDown(ReceiverSplunk, false)
	if r := e.send("POST", hec, []byte(`{"event":"x"}`), hecHdr); r.status != 200 {
		t.Fatalf("after the outage: %d %s", r.status, r.body)
	}
	// Busy: HEC health 503/18 and posts 503/9; Logs Ingestion 503 + Retry-After.
	e.ten.SetReceiverBusy(ReceiverSplunk, true)
	e.ten.SetReceiverBusy(ReceiverSentinel, true)
	if r := e.send("GET", "https://"+hecHost+"/services/collector/health", nil, nil); r.status != 503 || !strings.Contains(string(r.body), `"code":18`) {
		t.Fatalf("busy health: %d %s", r.status, r.body)
	}
	if r := e.send("POST", li, body, liHdr); r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("busy sentinel: %d %s", r.status, r.body)
	}
	st := e.ten.Received(ReceiverSplunk)
	if st.Rejected[0] != 1 || st.Rejected[503] != 2 || st.Records != 1 {
		t.Fatalf("splunk stats: %+v", st)
	}
	// The spec parser knows the receiver families and chaos.
	f, err := ParseFaults("sentinel:500=0.2,splunk:503=0.1,sentinel:chaos=0.3")
	if err != nil || len(f.Rates) != 3 || f.Rates[2].Kind != FaultChaos {
		t.Fatalf("ParseFaults: %v %+v", err, f)
	}
}

// Chaos always fails when its rate is 1, with one of the transient kinds.
func TestChaosFault(t *testing.T) {
	e := newTLSEnv(t, func(o *Options) {
		o.Faults = Faults{Rates: []FaultRate{{Family: ReceiverSplunk, Kind: FaultChaos, Rate: 1}}}
	})
	c := e.ten.Credentials()
	for i := 0; i < 20; i++ {
		req, _ := http.NewRequest("POST", "https://"+hecHost+"/services/collector/event", strings.NewReader(`{"event":"x"}`))
		req.Header.Set("Authorization", "Splunk "+c.HECToken)
		res, err := e.cl.Do(req)
		if err != nil {
			continue // reset
		}
		res.Body.Close()
		if res.StatusCode != 429 && res.StatusCode != 500 && res.StatusCode != 503 {
			t.Fatalf("chaos let a request through: %d", res.StatusCode)
		}
	}
	if st := e.ten.Received(ReceiverSplunk); st.Records != 0 || st.Requests != 20 {
		t.Fatalf("chaos stats: %+v", st)
	}
}

func FuzzHECBatch(f *testing.F) {
	f.Add([]byte(`{"event":"a"}{"event":{"RecordId":"x"},"fields":{"a":["b"]}}`))
	f.Add([]byte(`[{"event":"a"}]`))
	f.Add([]byte(`{"event":"a","fields":{"a":[{}]},"time":"12.5","index":"main"}`))
	f.Add([]byte(`{"event":null}  {"x":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, bad := parseHECBatch(body, []string{"main"})
		if bad != nil && (bad.code < 5 || bad.code > 15 || bad.text == "") {
			t.Fatalf("bad error %+v", bad)
		}
		if bad != nil && bad.index >= 0 && len(evs) != bad.index {
			t.Fatalf("%d events before bad event %d", len(evs), bad.index)
		}
		for _, e := range evs {
			if e.sourcetype == "" || len(e.event) == 0 {
				t.Fatalf("empty event %+v", e)
			}
		}
	})
}

func FuzzLogsIngestionBody(f *testing.F) {
	f.Add([]byte(`[{"TimeGenerated":"2026-01-01T00:00:00Z","RecordId":"a"}]`))
	f.Add([]byte(`{"TimeGenerated":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`[1,{"TimeGenerated":7}]`))
	st := Stream{Name: "Custom-T", Columns: []Column{{"TimeGenerated", "datetime"}}}
	f.Fuzz(func(t *testing.T, body []byte) {
		recs, err := parseIngestBody(body, st)
		if err != nil {
			if recs != nil {
				t.Fatal("records with an error")
			}
			return
		}
		for _, r := range recs {
			var m map[string]any
			if json.Unmarshal(r, &m) != nil || m["TimeGenerated"] == nil {
				t.Fatalf("accepted %s", r)
			}
		}
	})
}

// BenchmarkHECBatch measures parsing and accounting of a 1 MB-class batch.
func BenchmarkHECBatch(b *testing.B) {
	var buf bytes.Buffer
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&buf, `{"event":{"RecordId":"r%d","Payload":"%s"},"sourcetype":"mde:actions","index":"main"}`+"\n", i, strings.Repeat("x", 800))
	}
	body := buf.Bytes()
	rs := newReceiverState(false)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		evs, bad := parseHECBatch(body, []string{"main"})
		if bad != nil || len(evs) != 1000 {
			b.Fatalf("%d events, %+v", len(evs), bad)
		}
		raws := make([]json.RawMessage, len(evs))
		for j, e := range evs {
			raws[j] = e.event
		}
		rs.accept("mde:actions", raws)
	}
	b.ReportMetric(float64(1000*b.N)/b.Elapsed().Seconds(), "records/s")
}
