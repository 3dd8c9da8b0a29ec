package mde

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// TransportOptions choose how requests reach the network.
type TransportOptions struct {
	// EmulatorAddress ("127.0.0.1:8443") dials every request there
	// whatever its host, like a DNS override; the real host name stays in
	// the URL, the Host header and TLS SNI.
	EmulatorAddress string
	// EmulatorCAPEM verifies the emulator's certificates (PEM).
	EmulatorCAPEM []byte
	// Plaintext sends requests as plain HTTP to EmulatorAddress (loopback
	// tests only); requires EmulatorAddress.
	Plaintext bool
	// InsecureSkipVerify disables TLS verification; only allowed together
	// with EmulatorAddress.
	InsecureSkipVerify bool
	// Proxy selects an HTTP proxy; nil means the environment
	// (HTTPS_PROXY/NO_PROXY) in production and no proxy for the emulator.
	Proxy func(*http.Request) (*url.URL, error)
	// ResponseHeaderTimeout bounds the wait for an answer's headers once
	// the request is sent (default DefaultResponseHeaderTimeout). It is
	// the backstop for callers whose requests carry no deadline; the API
	// clients also bound every attempt with ClientOptions.Timeout. Set it
	// to the config's http.timeout.
	ResponseHeaderTimeout time.Duration
}

// Network timeouts of NewTransport: a host that does not accept the
// connection, finish the TLS handshake or send headers in time fails the
// attempt (and is retried like any transient failure) instead of hanging.
const (
	DialTimeout                  = 15 * time.Second
	TLSHandshakeTimeout          = 15 * time.Second
	DefaultResponseHeaderTimeout = 2 * time.Minute
)

// NewTransport builds the round tripper the API clients use. Without an
// emulator it is a production transport with TLS verification on.
func NewTransport(o TransportOptions) (http.RoundTripper, error) {
	rht := o.ResponseHeaderTimeout
	if rht <= 0 {
		rht = DefaultResponseHeaderTimeout
	}
	base := &http.Transport{
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          32,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   TLSHandshakeTimeout,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: rht,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
	dialer := &net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}
	if o.EmulatorAddress == "" {
		if o.Plaintext || o.InsecureSkipVerify || len(o.EmulatorCAPEM) > 0 {
			return nil, errors.New("mde: plaintext, insecure_skip_verify and ca_file only apply to the emulator: set emulator.address too, or remove them")
		}
		base.DialContext = dialer.DialContext
		base.Proxy = o.Proxy
		if base.Proxy == nil {
			base.Proxy = http.ProxyFromEnvironment
		}
		return base, nil
	}
	if _, _, err := net.SplitHostPort(o.EmulatorAddress); err != nil {
		return nil, fmt.Errorf("mde: emulator address %q must be host:port: %w", o.EmulatorAddress, err)
	}
	addr := o.EmulatorAddress
	base.Proxy = o.Proxy
	base.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return dialer.DialContext(ctx, network, addr)
	}
	if len(o.EmulatorCAPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(o.EmulatorCAPEM) {
			return nil, errors.New("mde: the emulator CA file holds no PEM certificate: write it with `defenderharvester simulate --ca-out FILE` and point emulator.ca_file at it")
		}
		base.TLSClientConfig.RootCAs = pool
	}
	base.TLSClientConfig.InsecureSkipVerify = o.InsecureSkipVerify
	if o.Plaintext {
		base.ForceAttemptHTTP2 = false
		return plaintextRT{base}, nil
	}
	return base, nil
}

// plaintextRT rewrites https to http on a clone of the request, keeping the
// host so the emulator can route by Host header.
type plaintextRT struct{ next http.RoundTripper }

func (p plaintextRT) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		return p.next.RoundTrip(req)
	}
	r := req.Clone(req.Context())
	u := *req.URL
	u.Scheme = "http"
	if u.Port() == "443" {
		u.Host = u.Hostname()
	}
	r.URL = &u
	if r.Host == "" {
		r.Host = u.Host
	}
	return p.next.RoundTrip(r)
}
