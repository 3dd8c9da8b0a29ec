package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"
)

// Header names of the webhook protocol (§C.4).
const (
	HeaderAuthID         = "Webhook-AuthID"
	HeaderValidationCode = "Webhook-ValidationCode"
)

// Result is the body of a 200 answer to a notification request (the
// service ignores it; it helps whoever tests the endpoint by hand).
type Result struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Rejected   int `json:"rejected"`
}

func (l *Listener) serveHTTP(w http.ResponseWriter, r *http.Request) {
	c := &l.stats
	c.requests.Add(1)
	defer func() {
		// Nothing here should panic; if something does, answer 500
		// rather than let net/http print a stack for every request.
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			l.log.Error("webhook handler panicked", "remote", r.RemoteAddr, "panic", v)
			http.Error(w, "internal error", http.StatusInternalServerError)
		}
	}()
	if r.URL.Path != l.opts.Path {
		c.notFound.Add(1)
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		c.badMethod.Add(1)
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "only POST", http.StatusMethodNotAllowed)
		return
	}
	// Authenticate before reading anything: the header is already in
	// memory, the body is not.
	ids := r.Header.Values(HeaderAuthID)
	switch {
	case len(ids) == 0 || ids[0] == "":
		c.authMissing.Add(1)
		l.warn("webhook request without "+HeaderAuthID, "remote", r.RemoteAddr)
		http.Error(w, "missing "+HeaderAuthID, http.StatusUnauthorized)
		return
	case len(ids) > 1 || !secretEqual(ids[0], l.auth):
		c.authWrong.Add(1)
		// The received value is never logged: it may be our secret
		// mistyped, or someone else's.
		l.warn("webhook request with a wrong "+HeaderAuthID, "remote", r.RemoteAddr)
		http.Error(w, "wrong "+HeaderAuthID, http.StatusForbidden)
		return
	}
	select {
	case l.sem <- struct{}{}:
		defer func() { <-l.sem }()
	default:
		c.busy.Add(1)
		l.warn("webhook busy: too many requests at once", "remote", r.RemoteAddr, "max_concurrent", l.opts.MaxConcurrent)
		l.unavailable(w, "busy")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		c.badContentType.Add(1)
		l.warn("webhook request is not application/json", "remote", r.RemoteAddr)
		http.Error(w, "want Content-Type: application/json", http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, l.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			c.tooLarge.Add(1)
			l.warn("webhook body too large", "remote", r.RemoteAddr, "max_bytes", l.opts.MaxBodyBytes)
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		c.malformed.Add(1)
		l.warn("webhook body could not be read", "remote", r.RemoteAddr, "err", err)
		http.Error(w, "body could not be read", http.StatusBadRequest)
		return
	}
	trimmed := bytes.TrimSpace(body)
	code := r.Header.Get(HeaderValidationCode)
	if code != "" || (len(trimmed) > 0 && trimmed[0] == '{') {
		l.validate(w, r, code, trimmed)
		return
	}
	l.notify(w, r, trimmed)
}

// validate answers the handshake the service makes when a subscription
// with this webhook is started: 200, or the subscription is not created.
func (l *Listener) validate(w http.ResponseWriter, r *http.Request, header string, body []byte) {
	c := &l.stats
	var v struct {
		ValidationCode *string `json:"validationCode"`
	}
	if len(body) > 0 {
		if body[0] != '{' || json.Unmarshal(body, &v) != nil {
			c.malformed.Add(1)
			l.warn("webhook validation body is not a JSON object", "remote", r.RemoteAddr)
			http.Error(w, "validation body is not a JSON object", http.StatusBadRequest)
			return
		}
	}
	switch {
	case v.ValidationCode != nil && header != "" && *v.ValidationCode != header:
		c.malformed.Add(1)
		l.warn("webhook validation: the header and body codes differ", "remote", r.RemoteAddr)
		http.Error(w, "validation codes differ", http.StatusBadRequest)
		return
	case header == "" && (v.ValidationCode == nil || *v.ValidationCode == ""):
		c.malformed.Add(1)
		l.warn("webhook request is neither a validation nor a JSON array", "remote", r.RemoteAddr)
		http.Error(w, "neither a validation nor a notification array", http.StatusBadRequest)
		return
	}
	c.validations.Add(1)
	// The code itself is not logged: it is the service's, and of no use
	// to anyone reading the log.
	l.log.Info("webhook subscription validated", "remote", r.RemoteAddr)
	w.WriteHeader(http.StatusOK)
}

// notify checks a notification array and queues what it accepts.
//
// Answers: 400 if the body is not a JSON array, 413 if it holds more than
// MaxItems, 503 if the queue cannot take all its new items (or during
// Shutdown), otherwise 200 — also when items were rejected: they will not
// become acceptable on a retry, and the service disables a webhook that
// keeps failing. Rejected items are logged and counted; the harvester's
// poll of the content listing covers anything legitimately missed.
func (l *Listener) notify(w http.ResponseWriter, r *http.Request, body []byte) {
	c := &l.stats
	raws, err := ParseNotifications(body, l.opts.MaxItems)
	if err != nil {
		if errors.Is(err, ErrTooManyItems) {
			c.tooManyItems.Add(1)
			l.warn("webhook request holds too many notifications", "remote", r.RemoteAddr, "max_items", l.opts.MaxItems)
			http.Error(w, "too many notifications", http.StatusRequestEntityTooLarge)
			return
		}
		c.malformed.Add(1)
		l.warn("webhook body is not a JSON array", "remote", r.RemoteAddr)
		http.Error(w, "body is not a JSON array of notifications", http.StatusBadRequest)
		return
	}
	var (
		good     = make([]Notification, 0, len(raws))
		byReason [numReasons]int
		rejected int
	)
	for i, raw := range raws {
		n, reason, detail := l.check.checkItem(raw)
		if detail != "" {
			rejected++
			byReason[reason]++
			c.rejected[reason].Add(1)
			// contentId is checked before it is logged (only when its
			// own check passed); never the URI or anything else.
			args := []any{"remote", r.RemoteAddr, "index", i, "reason", reason.String(), "detail", detail}
			if reason > ReasonContentID {
				args = append(args, "content_id", n.ContentID)
			}
			l.log.Debug("webhook notification rejected", args...)
			continue
		}
		good = append(good, n)
	}
	if rejected > 0 {
		args := []any{"remote", r.RemoteAddr, "items", len(raws), "rejected", rejected}
		for i, k := range byReason {
			if k > 0 {
				args = append(args, "rejected_"+Reason(i).String(), k)
			}
		}
		l.warn("webhook notifications rejected", args...)
	}
	queued, dups, err := l.offer(good)
	switch {
	case errors.Is(err, errClosed):
		c.closed.Add(1)
		l.unavailable(w, "shutting down")
		return
	case errors.Is(err, errOverflow):
		c.overflow.Add(1)
		c.overflowItems.Add(uint64(len(good)))
		l.warn("webhook queue full: notifications refused for the service to retry", "remote", r.RemoteAddr,
			"items", len(good), "queue_size", l.opts.QueueSize)
		l.unavailable(w, "queue full")
		return
	}
	c.notifications.Add(1)
	c.accepted.Add(uint64(queued))
	c.duplicates.Add(uint64(dups))
	l.log.Debug("webhook notifications received", "remote", r.RemoteAddr, "queued", queued, "duplicates", dups, "rejected", rejected)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(Result{Accepted: queued, Duplicates: dups, Rejected: rejected})
}

func (l *Listener) unavailable(w http.ResponseWriter, why string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(l.opts.RetryAfter.Round(time.Second)/time.Second)))
	http.Error(w, why, http.StatusServiceUnavailable)
}
