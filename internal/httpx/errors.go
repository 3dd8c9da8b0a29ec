package httpx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"
)

// Sentinel errors of failed attempts; callers test them with errors.Is.
var (
	// ErrTimeout: no answer (or no complete body) within the per-attempt
	// timeout or the transport's response-header timeout. Retried.
	ErrTimeout = errors.New("timed out")
	// ErrCertificate: the server's TLS certificate is not trusted. A retry
	// cannot fix it, so it is final.
	ErrCertificate = errors.New("TLS certificate not trusted")
	// ErrHostNotFound: the host name does not resolve. Final.
	ErrHostNotFound = errors.New("host name does not resolve")
	// ErrNetwork: the connection failed or broke (refused, reset, a body
	// cut short) for another reason than the ones above. Retried.
	ErrNetwork = errors.New("network failure")
)

// networkError matches ErrNetwork without adding its text, so messages
// stay as they were.
type networkError struct{ msg string }

func (e *networkError) Error() string        { return e.msg }
func (e *networkError) Is(target error) bool { return target == ErrNetwork }

// StatusError is an answer whose status asked for another attempt (429,
// 5xx) on the last attempt a policy allowed.
type StatusError struct{ Code int }

func (e *StatusError) Error() string { return fmt.Sprintf("HTTP %d", e.Code) }

// RetryableStatus reports the statuses worth another attempt: 429 and the
// transient server failures 500, 502, 503, 504.
func RetryableStatus(code int) bool {
	switch code {
	case 429, 500, 502, 503, 504:
		return true
	}
	return false
}

// AttemptError explains a failed attempt to host: sending it (reading
// false) or reading its body (reading true). attempt is the attempt's
// context, whose deadline is the per-attempt timeout. The text never holds
// the URL's query, which may carry secrets. Final tells whether another
// attempt could help.
func AttemptError(attempt context.Context, err error, host string, timeout time.Duration, reading bool) error {
	var (
		certErr    *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		dnsErr     *net.DNSError
		netErr     net.Error
	)
	switch {
	case attempt != nil && errors.Is(attempt.Err(), context.DeadlineExceeded):
		if reading {
			return fmt.Errorf("%w: the answer from %s stopped arriving: no complete body within %s", ErrTimeout, host, timeout)
		}
		return fmt.Errorf("%w: no answer from %s within %s", ErrTimeout, host, timeout)
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalidErr):
		return fmt.Errorf("%w (check proxies that intercept TLS, or emulator.ca_file): %s: %s", ErrCertificate, host, Cause(err))
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return fmt.Errorf("%w: %s", ErrHostNotFound, Cause(err))
	case errors.As(err, &netErr) && netErr.Timeout():
		// The transport's own limits (dial, TLS handshake, response
		// headers) or the client's timeout.
		if reading {
			return fmt.Errorf("%w: the answer from %s stopped arriving: %s", ErrTimeout, host, Cause(err))
		}
		return fmt.Errorf("%w: no answer from %s: %s", ErrTimeout, host, Cause(err))
	}
	if reading {
		return &networkError{fmt.Sprintf("reading the answer from %s failed: %s", host, Cause(err))}
	}
	return &networkError{fmt.Sprintf("connection to %s failed: %s", host, Cause(err))}
}

// Cause is the text of err without the URL *url.Error would print (its
// query can hold an authorization code or a token).
func Cause(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// Final reports failures another attempt cannot fix: an untrusted
// certificate or a host name that does not resolve.
func Final(err error) bool {
	return errors.Is(err, ErrCertificate) || errors.Is(err, ErrHostNotFound)
}
