package sim

import (
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// benchRecords returns about 1 MB of realistic records: the emulator's own
// timeline events with TimeGenerated and RecordId in front, as the
// harvester's Sentinel output sends them.
func benchRecords(b *testing.B, ten *Tenant) [][]byte {
	b.Helper()
	c := ten.Credentials()
	h := ten.Handler()
	var out [][]byte
	size := 0
	for _, id := range ten.MachineIDs() {
		req := httptest.NewRequest("GET", "http://security.microsoft.com/apiproxy/mtp/mdeTimelineExperience/machines/"+id+"/events/?fromDate=2026-03-09T12:00:00Z&toDate=2026-03-10T12:00:00Z&pageSize=1000", nil)
		req.Header.Set("Cookie", "sccauth="+c.SccAuth)
		req.Header.Set("X-XSRF-TOKEN", c.XSRFToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("timeline: %d %s", rec.Code, truncate(rec.Body.Bytes()))
		}
		var page struct{ Items []json.RawMessage }
		if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
			b.Fatal(err)
		}
		for _, it := range page.Items {
			var v struct{ EventTime string }
			json.Unmarshal(it, &v)
			at, err := parseTimeParam(v.EventTime)
			if err != nil {
				at = testStart
			}
			r := fmt.Appendf(nil, `{"TimeGenerated":%q,"RecordId":"%s-%d",`, at.Format(time.RFC3339Nano), id, len(out))
			r = append(r, it[1:]...)
			if size+len(r)+1 > 1000000 {
				return out
			}
			size += len(r) + 1
			out = append(out, r)
		}
	}
	if len(out) < 100 {
		b.Fatalf("only %d records", len(out))
	}
	return out
}

func benchTenant(b *testing.B) *Tenant {
	b.Helper()
	ten, err := New(Options{Seed: 1, Start: testStart, Now: func() time.Time { return testStart.Add(24 * time.Hour) }, TimelineEventsPerMachineHour: 200,
		SentinelTables: []string{"DefenderTimeline"}, LogsIngestionMaxSpan: 48 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	return ten
}

func benchToken(b *testing.B, ten *Tenant, scope string) string {
	b.Helper()
	c := ten.Credentials()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ClientID}, "client_secret": {c.ClientSecret}, "scope": {scope}}
	req := httptest.NewRequest("POST", "https://login.microsoftonline.com/"+ten.TenantID()+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	ten.Handler().ServeHTTP(rec, req)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &tok); err != nil || tok.AccessToken == "" {
		b.Fatalf("token: %d %s", rec.Code, rec.Body.String())
	}
	return tok.AccessToken
}

func gzipBytes(p []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(p)
	zw.Close()
	return buf.Bytes()
}

// benchPost sends body b.N times through the tenant's handler and reports
// ns per event.
func benchPost(b *testing.B, h http.Handler, events int, body []byte, mk func() *http.Request, want int) {
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := mk()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			b.Fatalf("%d %s", rec.Code, truncate(rec.Body.Bytes()))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
}

// BenchmarkIngestUpload posts a ~1 MB Logs Ingestion call of ~1 KB
// timeline records (plain and gzip) through the whole handler.
func BenchmarkIngestUpload(b *testing.B) {
	ten := benchTenant(b)
	recs := benchRecords(b, ten)
	body := append([]byte{'['}, bytes.Join(recs, []byte{','})...)
	body = append(body, ']')
	tok := benchToken(b, ten, "https://monitor.azure.com//.default")
	dcr := ten.Info(nil).Sentinel.DCRImmutableID
	h := ten.Handler()
	for _, zip := range []bool{false, true} {
		payload, name := body, "plain"
		if zip {
			payload, name = gzipBytes(body), "gzip"
		}
		b.Run(name, func(b *testing.B) {
			benchPost(b, h, len(recs), payload, func() *http.Request {
				req := httptest.NewRequest("POST", "https://dh-dce-1.westeurope-1.ingest.monitor.azure.com/dataCollectionRules/"+dcr+"/streams/Custom-DefenderTimeline?api-version=2023-01-01", bytes.NewReader(payload))
				req.TLS = &tls.ConnectionState{}
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
				if zip {
					req.Header.Set("Content-Encoding", "gzip")
				}
				return req
			}, http.StatusNoContent)
		})
	}
}

// BenchmarkHECUpload posts a ~1 MB HEC batch of the same records in the
// harvester's envelopes (plain and gzip) through the whole handler.
func BenchmarkHECUpload(b *testing.B) {
	ten := benchTenant(b)
	recs := benchRecords(b, ten)
	var buf bytes.Buffer
	n := 0
	for i, r := range recs {
		if buf.Len()+len(r)+200 > 1000000 {
			break
		}
		n++
		fmt.Fprintf(&buf, `{"time":%d.%03d,"host":"defenderharvester","source":"mde:timeline","sourcetype":"mde:timeline","index":"main","event":`, 1773144000+i, i%1000)
		buf.Write(r)
		buf.WriteString("}\n")
	}
	body := buf.Bytes()
	tok := ten.Credentials().HECToken
	h := ten.Handler()
	for _, zip := range []bool{false, true} {
		payload, name := body, "plain"
		if zip {
			payload, name = gzipBytes(body), "gzip"
		}
		b.Run(name, func(b *testing.B) {
			benchPost(b, h, n, payload, func() *http.Request {
				req := httptest.NewRequest("POST", "https://"+hecHost+"/services/collector/event", bytes.NewReader(payload))
				req.Header.Set("Authorization", "Splunk "+tok)
				if zip {
					req.Header.Set("Content-Encoding", "gzip")
				}
				return req
			}, http.StatusOK)
		})
	}
}
