package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// ServerOptions configure NewServer.
type ServerOptions struct {
	// Listen is the address (e.g. ":9443"), unless Listener is set.
	Listen   string
	Listener net.Listener
	// TLSConfig, when set, serves HTTPS; without it, TLS must be
	// terminated in front (the service only posts to https addresses).
	TLSConfig *tls.Config
	// Server timeouts (defaults 5s, 30s, 30s, 60s).
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	Logger                                                    *slog.Logger
}

// Server serves several Listeners on one address, each on its own path
// (Options.Path): one port for every tenant of a service. Listeners are
// mounted and unmounted while it runs (a tenant opening or closing); a
// path nobody mounted is 404.
type Server struct {
	opts ServerOptions
	log  *slog.Logger

	mu     sync.RWMutex
	routes map[string]*Listener
	// fallback answers unrouted paths instead (Listener.Start: the
	// listener counts its own 404s).
	fallback *Listener

	notFound atomic.Uint64

	srvMu sync.Mutex
	srv   *http.Server
	ln    net.Listener
}

// NewServer builds a server; nothing listens before Start.
func NewServer(opts ServerOptions) (*Server, error) {
	if opts.Listener == nil && opts.Listen == "" {
		return nil, errors.New("webhook: no listen address (webhook.listen)")
	}
	setDefault(&opts.ReadHeaderTimeout, 5*time.Second)
	setDefault(&opts.ReadTimeout, 30*time.Second)
	setDefault(&opts.WriteTimeout, 30*time.Second)
	setDefault(&opts.IdleTimeout, 60*time.Second)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{opts: opts, log: opts.Logger.With("component", "webhook"), routes: map[string]*Listener{}}, nil
}

// Mount serves l on its path until unmount is called. Two listeners
// cannot share a path.
func (s *Server) Mount(l *Listener) (unmount func(), err error) {
	path := l.opts.Path
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, taken := s.routes[path]; taken {
		return nil, fmt.Errorf("webhook: path %s is already served for another tenant: give each tenant its own webhook address (a {tenant} placeholder in webhook.address does that)", path)
	}
	s.routes[path] = l
	return func() {
		s.mu.Lock()
		if s.routes[path] == l {
			delete(s.routes, path)
		}
		s.mu.Unlock()
	}, nil
}

// ServeHTTP routes a request to the listener mounted on its path.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	l := s.routes[r.URL.Path]
	s.mu.RUnlock()
	if l == nil && s.fallback != nil {
		s.fallback.serveHTTP(w, r)
		return
	}
	if l == nil {
		s.notFound.Add(1)
		http.NotFound(w, r)
		return
	}
	l.serveHTTP(w, r)
}

// NotFound counts requests for paths no listener is mounted on.
func (s *Server) NotFound() uint64 { return s.notFound.Load() }

// Start listens and serves in the background.
func (s *Server) Start(ctx context.Context) error {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.srv != nil {
		return errors.New("webhook: server started twice")
	}
	ln := s.opts.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.opts.Listen); err != nil {
			return fmt.Errorf("webhook.listen %s: %w", s.opts.Listen, err)
		}
	}
	o := s.opts
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		WriteTimeout:      o.WriteTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    32 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	if o.TLSConfig != nil {
		ln = tls.NewListener(ln, o.TLSConfig)
	}
	s.ln = ln
	srv := s.srv
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("the webhook endpoint stopped", "err", err)
		}
	}()
	s.log.Info("webhook listening", "addr", ln.Addr().String(), "tls", o.TLSConfig != nil)
	return nil
}

// Addr is where Start listens (nil before).
func (s *Server) Addr() net.Addr {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Shutdown stops serving, waiting within ctx for the requests in flight.
// The mounted listeners are not shut down: their owners do that.
func (s *Server) Shutdown(ctx context.Context) error {
	s.srvMu.Lock()
	srv := s.srv
	s.srvMu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("webhook: closing the endpoint: %w", err)
	}
	return nil
}
