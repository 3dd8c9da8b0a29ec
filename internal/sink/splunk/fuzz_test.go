package splunk

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/delivery"
)

// FuzzParseReply: any HEC (or proxy) answer decodes without panicking and
// classifies into an error that never carries the token.
func FuzzParseReply(f *testing.F) {
	for _, seed := range []string{
		`{"text":"Success","code":0}`,
		`{"text":"Success","code":0,"ackId":7}`,
		`{"text":"Success","code":0,"ackId":-3}`,
		`{"text":"Invalid data format","code":6,"invalid-event-number":2}`,
		`{"text":"Incorrect index","code":7}`,
		`{"text":"x","code":"7"}`,
		`<html>502 Bad Gateway</html>`,
		``, `null`, `[]`, `{"code":1e99}`,
	} {
		f.Add(seed, 400)
	}
	s := &Sink{now: time.Now, token: testToken, index: "main"}
	f.Fuzz(func(t *testing.T, body string, status int) {
		r := parseReply([]byte(body))
		if r.AckID != nil && *r.AckID < 0 {
			t.Fatalf("negative ackId %d accepted", *r.AckID)
		}
		if status < 100 || status > 599 || status == http.StatusOK {
			return
		}
		err := s.classify(status, r, http.Header{}, "T")
		if err == nil {
			t.Fatal("a failed answer classified as success")
		}
		if strings.Contains(err.Error(), testToken) {
			t.Fatal("token in error")
		}
		if status == http.StatusRequestEntityTooLarge && delivery.IsPermanent(err) {
			t.Fatal("413 must split, not stop")
		}
	})
}

// FuzzParseAcks: ack answers decode without panicking; only non-negative
// ids come back.
func FuzzParseAcks(f *testing.F) {
	for _, seed := range []string{
		`{"acks":{"0":true,"1":false,"2":true}}`,
		`{"acks":{}}`, `{"acks":{"-1":true,"x":true,"99999999999999999999":true}}`,
		`{"acks":[0,1]}`, `{}`, `not json`, `{"acks":{"0":"yes"}}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		acks, err := parseAcks([]byte(body))
		if err != nil && acks != nil {
			t.Fatal("acks returned together with an error")
		}
		for id := range acks {
			if id < 0 {
				t.Fatalf("negative ackId %d", id)
			}
		}
	})
}
