package winrm

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// idleConnTTL bounds how long an authenticated connection waits in the pool.
const idleConnTTL = 30 * time.Second

// pooledConn is one dialed listener connection with its reader and writer. The
// transports that authenticate per connection (NTLM over HTTP, Kerberos) keep their
// authenticated connections in a connPool, one request at a time on each.
type pooledConn struct {
	conn   net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer // requests, flushed after each
	idleAt time.Time
}

func newPooledConn(nc net.Conn) pooledConn {
	return pooledConn{conn: nc, br: bufio.NewReader(nc), bw: bufio.NewWriter(nc)}
}

func (c *pooledConn) close()              { _ = c.conn.Close() }
func (c *pooledConn) pooled() *pooledConn { return c }

// connPool holds idle authenticated connections of one host attempt.
type connPool[C interface{ pooled() *pooledConn }] struct {
	mu     sync.Mutex
	idle   []C
	closed bool
}

// get takes an idle connection that is still usable; ok is false when there is none
// or the pool is closed. Stale connections are closed on the way.
func (p *connPool[C]) get() (c C, ok bool) {
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 || p.closed {
			p.mu.Unlock()
			return c, false
		}
		c = p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		pc := c.pooled()
		if connAlive(pc.conn, pc.br, pc.idleAt) {
			return c, true
		}
		pc.close()
	}
}

// put returns a connection to the pool when its answer allows it, else closes it.
func (p *connPool[C]) put(c C, resp *http.Response) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pc := c.pooled()
	if p.closed || resp.Close {
		pc.close()
		return
	}
	pc.idleAt = time.Now()
	p.idle = append(p.idle, c)
}

func (p *connPool[C]) hasIdle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle) > 0
}

func (p *connPool[C]) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// close closes the idle connections; connections in use are closed when returned.
func (p *connPool[C]) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		c.pooled().close()
	}
}

// connAlive reports whether an idle connection can carry a request: it has not idled
// longer than idleConnTTL, and the listener has not closed it nor sent anything unasked.
func connAlive(conn net.Conn, br *bufio.Reader, idleAt time.Time) bool {
	if time.Since(idleAt) > idleConnTTL {
		return false
	}
	if br.Buffered() > 0 {
		return false
	}
	_ = conn.SetReadDeadline(time.Now())
	_, err := br.Peek(1)
	_ = conn.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
