package winrm

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/rdsaudit/rdsaudit/evidence"
)

// Phases of a host attempt, as failure messages name them (phaseError).
const (
	PhaseConnect   = "TCP connect"
	PhaseTLS       = "TLS handshake"
	PhaseProbeTurn = "waiting for the credential's probe turn"
	PhaseOperation = "WS-Man" // followed by the action: "WS-Man Create"
	PhaseCleanup   = "WS-Man Delete"
)

// Dial and TLS handshake bounds of one connection (each also bounded by the host's
// deadline).
const (
	dialTimeout         = 30 * time.Second
	tlsHandshakeTimeout = 30 * time.Second
)

// phaseError names the step of a host attempt that failed: which connection step or
// WS-Man operation, so that "context deadline exceeded" becomes "host_timeout reached
// during TLS handshake". errors.Is and errors.As see Err.
type phaseError struct {
	Phase string
	Err   error
}

func (e *phaseError) Error() string { return e.Phase + ": " + e.Err.Error() }
func (e *phaseError) Unwrap() error { return e.Err }

// phaseOf is the phase named by the outermost phaseError in err's chain, "" if none.
func phaseOf(err error) string {
	var pe *phaseError
	if errors.As(err, &pe) {
		return pe.Phase
	}
	return ""
}

// endpoint is where one host is reached.
type endpoint struct {
	addr  string // address dialed: HostRef.Address, else Name
	port  int
	https bool
}

func (c *Collector) endpointOf(host evidence.HostRef) endpoint {
	addr := host.Address
	if addr == "" {
		addr = host.Name
	}
	port := host.Port
	if port == 0 {
		port = c.opts.Port
	}
	return endpoint{addr: addr, port: port, https: c.opts.Scheme == "https"}
}

func (e endpoint) hostPort() string { return net.JoinHostPort(e.addr, strconv.Itoa(e.port)) }

// URL is the listener's WS-Man URL.
func (e endpoint) URL() string {
	scheme := "http"
	if e.https {
		scheme = "https"
	}
	return scheme + "://" + e.hostPort() + "/wsman"
}

// listenerTLS is the collector's TLS configuration for one listener (its own view of
// the session cache), nil for plain HTTP.
func (c *Collector) listenerTLS(ep endpoint) (*tls.Config, error) {
	if !ep.https {
		return nil, nil
	}
	if c.tlsErr != nil {
		return nil, c.tlsErr
	}
	conf := c.tls.Clone()
	conf.ClientSessionCache = listenerSessions{cache: c.sessions, addr: ep.hostPort()}
	return conf, nil
}

// dialer is the collector's TCP dialer.
func (c *Collector) dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	if c.opts.DialContext != nil {
		return c.opts.DialContext
	}
	return (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
}

// reach establishes a connection to the listener: TCP, then over HTTPS the TLS
// handshake with the certificate chain and name checked, then an unauthenticated
// WS-Man Identify (no credentials; Windows answers it, as to Test-WSMan; any HTTP
// answer will do). It is what a host must show before it may take its credential's
// probe turn (Collect): a host that does not answer, at any of these levels, never
// holds the turn. The connection is handed to the host attempt's transport as its
// first (preConn); nil when the listener closed it after its answer.
func (c *Collector) reach(ctx context.Context, ep endpoint) (net.Conn, error) {
	conf, err := c.listenerTLS(ep)
	if err != nil {
		return nil, &phaseError{Phase: PhaseTLS, Err: err}
	}
	nc, err := dialListener(ctx, c.dialer(), ep.hostPort(), conf)
	if err != nil {
		return nil, err
	}
	resp, _, err := identify(ctx, nc, ep, c.opts.OperationTimeout+HTTPTimeoutMargin)
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	if resp.Close {
		_ = nc.Close()
		return nil, nil
	}
	return nc, nil
}

// identify sends an unauthenticated WS-Man Identify on nc and reads the answer
// (within timeout and ctx).
func identify(ctx context.Context, nc net.Conn, ep endpoint, timeout time.Duration) (*http.Response, []byte, error) {
	pc := newPooledConn(nc)
	req, err := newPost(ctx, ep.URL(), ep.hostPort(), []byte(identifyRequest), soapType, "")
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("WSMANIDENTIFY", "unauthenticated")
	resp, body, err := roundTrip(ctx, &pc, req, timeout, 1<<20)
	if err != nil {
		return nil, nil, &phaseError{Phase: PhaseOperation + " Identify", Err: err}
	}
	return resp, body, nil
}

// preConnTTL: a connection established before the credential's turn is used only if
// the turn came within this long (a listener closes idle connections: HTTP.sys after
// 2 minutes, others sooner); else the attempt dials again (TLS resumes the session).
const preConnTTL = 5 * time.Second

// preConn is the connection reach established, taken by the first dial of the host
// attempt's transport.
type preConn struct {
	mu   sync.Mutex
	conn net.Conn
	at   time.Time
}

func newPreConn(nc net.Conn) *preConn { return &preConn{conn: nc, at: time.Now()} }

// take returns the connection once (nil afterwards, or when it waited too long).
func (p *preConn) take() net.Conn {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	nc := p.conn
	p.conn = nil
	if nc != nil && time.Since(p.at) > preConnTTL {
		_ = nc.Close()
		return nil
	}
	return nc
}

// close closes the connection if no one took it.
func (p *preConn) close() {
	if nc := p.take(); nc != nil {
		_ = nc.Close()
	}
}

// dialListener dials addr through dial and, when tlsConf is set, completes the TLS
// handshake under ctx (at most tlsHandshakeTimeout), with the address's host as server
// name unless tlsConf names one. Errors carry their phase (phaseError).
func dialListener(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), addr string, tlsConf *tls.Config) (net.Conn, error) {
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, &phaseError{Phase: PhaseConnect, Err: err}
	}
	if tlsConf == nil {
		return nc, nil
	}
	cfg := tlsConf.Clone()
	if cfg.ServerName == "" {
		if h, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = h
		}
	}
	tc := tls.Client(nc, cfg)
	hctx, cancel := context.WithTimeout(ctx, tlsHandshakeTimeout)
	err = tc.HandshakeContext(hctx)
	timedOut := hctx.Err() == context.DeadlineExceeded
	cancel()
	if err != nil {
		_ = nc.Close()
		switch {
		case ctx.Err() != nil:
			err = ctx.Err()
		case timedOut:
			err = errTLSHandshakeTimeout
		}
		return nil, &phaseError{Phase: PhaseTLS, Err: err}
	}
	return tc, nil
}

// errTLSHandshakeTimeout: the listener accepted the TCP connection but did not finish
// the TLS handshake within tlsHandshakeTimeout.
var errTLSHandshakeTimeout = &timeoutError{"no TLS handshake within " + tlsHandshakeTimeout.String()}

// timeoutError is a net.Error timeout with a message of its own.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }
func (e *timeoutError) Is(target error) bool {
	return target == ErrTimeout
}
