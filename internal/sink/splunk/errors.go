package splunk

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/defenderharvester/defenderharvester/internal/delivery"
	"github.com/defenderharvester/defenderharvester/internal/httpx"
)

// classify turns a failed HEC answer into an actionable, classified error
// (docs/REFERENCE.md §6.5). Codes about the events themselves (5, 6, 12, 13, 15)
// are record-level: with invalid-event-number N, HEC indexed the events
// before N, so the helper dead-letters event N and sends only the rest.
// Every other refusal — token, authorization, index, channel, ack,
// endpoint, redirect — is about the request: it fails the Write and is
// never dead-lettered. 413 splits, 429/5xx retry.
func (s *Sink) classify(status int, rep reply, hdr http.Header, table string) error {
	code := -1
	if rep.Code != nil {
		code = *rep.Code
	}
	base := fmt.Sprintf("HEC answered HTTP %d code %s (%q)", status, codeOf(rep), s.clean(rep.Text))
	if status == http.StatusRequestEntityTooLarge {
		return delivery.TooLarge(fmt.Errorf("%s: the request is larger than HEC's max_content_length; it is split and resent (lower delivery.max_bytes to avoid this)", base))
	}
	perm := func(format string, a ...any) error {
		return delivery.Permanent(fmt.Errorf("%s: %s", base, fmt.Sprintf(format, a...)))
	}
	// record refuses the event HEC named (or, unnamed, the request's
	// events): the helper dead-letters that event only.
	record := func(format string, a ...any) error {
		err := fmt.Errorf("%s: %s", base, fmt.Sprintf(format, a...))
		if rep.InvalidNum != nil {
			return delivery.RejectedAt(err, *rep.InvalidNum)
		}
		return delivery.Rejected(err)
	}
	switch code {
	case 1, 22:
		return perm("the HEC token is disabled; enable it in Splunk (Settings → Data inputs → HTTP Event Collector) or use another token")
	case 2:
		return perm("the request carried no token; set %s or token_file (a proxy may also strip the Authorization header)", EnvToken)
	case 3:
		return perm("Splunk did not accept the Authorization header; a proxy may be rewriting it, or the token has an unexpected form")
	case 4, 21:
		return perm("Splunk does not know this HEC token; check %s / token_file against Settings → Data inputs → HTTP Event Collector", EnvToken)
	case 5:
		return record("Splunk received no data in the request; a proxy may be dropping the body")
	case 6:
		return record("Splunk could not parse %s; the events before it were indexed, it is dead-lettered and the events after it are sent again (please report it with the dead letter)", eventNumber(rep))
	case 7:
		if s.index == "" {
			return perm("the token's default index is not writable; set index to one of the token's allowed indexes")
		}
		return perm("index %q is not allowed for this token (or does not exist); create it or add it to the token's allowed indexes, or change outputs.splunk.index", s.index)
	case 10, 11:
		return perm("the data channel header X-Splunk-Request-Channel was missing or rejected; a proxy between here and Splunk may be stripping it")
	case 12, 13:
		return record("Splunk found an event without content (%s); please report it with the dead letter", eventNumber(rep))
	case 14:
		return perm("indexer acknowledgement is disabled on this token; enable it on the token or set ack.enabled: false")
	case 15:
		return record("Splunk rejected the indexed fields (%s); indexed fields must be flat", eventNumber(rep))
	case 16:
		return perm("query-string authorization is not enabled; this sink only sends the token in the Authorization header, so a proxy must be rewriting the request")
	}
	switch {
	case status == http.StatusTooManyRequests || status >= 500:
		err := fmt.Errorf("%s: Splunk is busy or failing (table %s); retrying", base, table)
		if d, ok := httpx.RetryAfter(hdr, s.now()); ok {
			return delivery.RetryAfter(err, d)
		}
		return err
	case status >= 300 && status < 400:
		return perm("HEC redirected the request; the token is never sent to a redirect target, set url to the final address")
	case status == http.StatusNotFound:
		return perm("no HEC endpoint at %s; check url (the HEC base such as https://splunk.example.com:8088) and that HEC is enabled", s.eventURL)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return perm("the token was refused; check %s / token_file", EnvToken)
	case status >= 400:
		// No HEC code we know: nothing says the events are at fault.
		return perm("the request was refused; check url, index and token settings")
	}
	return fmt.Errorf("%s: unexpected answer; retrying", base)
}

func eventNumber(r reply) string {
	if r.InvalidNum == nil {
		return "an event of the request"
	}
	return "event " + strconv.Itoa(*r.InvalidNum) + " (0-based) of the request"
}
