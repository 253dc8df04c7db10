package winrm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	masterzen "github.com/masterzen/winrm"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// Clean-up bounds: the closing Delete of a shell gets what is left of the host's
// deadline, at most deleteTimeout. The host's work stops cleanupReserve before the
// deadline, so that the Delete has at least that long and host_timeout holds as a
// wall-clock limit, clean-up included.
const (
	deleteTimeout     = 15 * time.Second
	maxCleanupReserve = 2 * time.Second
)

// cleanupReserve is the part of a host's deadline kept for the Delete: 2 s, or a
// quarter of a shorter host_timeout.
func cleanupReserve(hostTimeout time.Duration) time.Duration {
	return min(maxCleanupReserve, hostTimeout/4)
}

// cleanupContext is the context of the closing Delete: detached from ctx's
// cancellation (the shell must go also after an error, a stop or the work deadline),
// ending at by (the host's deadline; zero: none) and at most deleteTimeout from now.
func cleanupContext(ctx context.Context, by time.Time) (context.Context, context.CancelFunc) {
	d := time.Now().Add(deleteTimeout)
	if !by.IsZero() && by.Before(d) {
		d = by
	}
	return context.WithDeadline(context.WithoutCancel(ctx), d)
}

// hostClient is one host attempt's WinRM client over our transport.
type hostClient struct {
	ep     endpoint
	tr     *transport
	client *masterzen.Client
	params masterzen.Parameters
}

func (h *hostClient) close() {
	h.tr.close()
	h.tr.pre.close()
}

// begin starts a host attempt: it reaches the listener (TCP, TLS: Collector.reach),
// then takes the credential's turn (credGate.enter; the reachable host waits, an
// unreachable one never holds the turn), then builds the client, whose first
// connection is the one reach established. release gives the turn back; it is never
// nil, also on error.
func (c *Collector) begin(ctx context.Context, host evidence.HostRef, cred Credential, g *credGate) (hc *hostClient, release func(), err error) {
	release = func() {}
	if g.isRetired() {
		return nil, release, errCredentialRetired
	}
	ep := c.endpointOf(host)
	nc, err := c.reach(ctx, ep)
	if err != nil {
		return nil, release, err
	}
	pre := newPreConn(nc)
	r, err := g.enter(ctx)
	if err != nil {
		pre.close()
		if errors.Is(err, errCredentialRetired) {
			return nil, release, err
		}
		return nil, release, &phaseError{Phase: PhaseProbeTurn, Err: err}
	}
	hc, err = c.newClient(ctx, host, cred, pre, func() { g.markOpen(host) })
	if err != nil {
		pre.close()
		return nil, r, err
	}
	return hc, r, nil
}

// newClient builds the WinRM client of one host attempt over our transport; pre, if
// not nil, is its first connection. onAuth is called at every response that proves the
// credential authenticated.
func (c *Collector) newClient(ctx context.Context, host evidence.HostRef, cred Credential, pre *preConn, onAuth func()) (*hostClient, error) {
	ep := c.endpointOf(host)
	// The TLS configuration (server name, verification, CAs) is the collector's, in
	// tr.tls: our transport does not read the endpoint's.
	mep := &masterzen.Endpoint{
		Host: ep.addr, Port: ep.port, HTTPS: ep.https, Insecure: c.opts.InsecureSkipVerify,
		TLSServerName: c.opts.TLSServerName,
		Timeout:       c.opts.OperationTimeout + HTTPTimeoutMargin,
	}
	params := *masterzen.DefaultParameters // a copy: DefaultParameters is shared
	params.Timeout = "PT" + strconv.Itoa(int(c.opts.OperationTimeout/time.Second)) + "S"
	tr := &transport{
		url:     ep.URL(),
		user:    cred.Username,
		pass:    cred.Password,
		ntlm:    c.opts.Auth == AuthNTLM,
		maxBody: 8 << 20,
		dial:    c.opts.DialContext,
		tlsErr:  c.tlsErr,
		onAuth:  onAuth,
		pre:     pre,
	}
	if c.tls != nil {
		tr.tls = c.tls.Clone()
		tr.tls.ClientSessionCache = listenerSessions{cache: c.sessions, addr: ep.hostPort()}
	}
	// NTLM: tr logs on with our NTLM client, and over plain HTTP seals every message
	// (winrm_ntlmhttp.go). Kerberos: tr presents the tickets of the credential's
	// logon, shared by the run's hosts (winrm_kerberos.go).
	if c.opts.Auth == AuthKerberos {
		spn, err := c.spnFor(host)
		if err != nil {
			return nil, err
		}
		tr.spn = spn
		tr.krb = c.krbLogin(cred)
	}
	params.TransportDecorator = func() masterzen.Transporter { return tr }
	tr.setContext(ctx)
	client, err := masterzen.NewClientWithParameters(mep, cred.Username, cred.Password, &params)
	if err != nil {
		tr.close()
		return nil, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	return &hostClient{ep: ep, tr: tr, client: client, params: params}, nil
}

// ErrNoSPN: with auth kerberos the host is known by an IP address only, so no service
// principal can be derived.
var ErrNoSPN = fmt.Errorf("%w: kerberos: no service principal for a host known only by its IP address", ErrAuth)

// spnFor is the Kerberos service principal of the host's listener: transport.kerberos.spn
// if set, else HTTP/<address>, or HTTP/<inventory name> when the address is an IP (a
// ticket names a host, never an address: Windows registers HTTP/ and HOST/ for its
// short and DNS names only).
func (c *Collector) spnFor(host evidence.HostRef) (string, error) {
	if c.opts.KrbSPN != "" {
		return c.opts.KrbSPN, nil
	}
	ep := c.endpointOf(host)
	if !isIP(ep.addr) {
		return "HTTP/" + ep.addr, nil
	}
	if name := strings.TrimSpace(host.Name); name != "" && !isIP(name) {
		return "HTTP/" + name, nil
	}
	return "", fmt.Errorf("%w %s: set transport.kerberos.spn (HTTP/<the host's DNS name>), or name the host by its DNS name in the inventory", ErrNoSPN, ep.addr)
}

func isIP(s string) bool {
	return net.ParseIP(strings.Trim(s, "[]")) != nil
}

// authenticate logs on at host with cred and proves it: it creates a shell and deletes
// it, running no command. It bypasses the credential gate (its callers hold or decide
// it: Collector.recheck, Collector.Check).
func (c *Collector) authenticate(ctx context.Context, cleanupBy time.Time, host evidence.HostRef, cred Credential, onAuth func()) error {
	ep := c.endpointOf(host)
	nc, err := c.reach(ctx, ep)
	if err != nil {
		return err
	}
	pre := newPreConn(nc)
	hc, err := c.newClient(ctx, host, cred, pre, onAuth)
	if err != nil {
		pre.close()
		return err
	}
	defer hc.close()
	// The Delete ends by cleanupBy (the re-check's own deadline; the host's for check,
	// whose work ends cleanupReserve earlier), else with ctx's deadline; at least minDelete.
	by := cleanupBy
	if d, ok := ctx.Deadline(); ok && by.IsZero() {
		by = d
	}
	return c.createDelete(ctx, hc, by)
}

// minDelete is the least time a Delete is given when its deadline has (nearly) passed.
const minDelete = 500 * time.Millisecond

// createDelete creates a shell and deletes it (by the deadline cleanupBy, at least
// minDelete from now; zero: within deleteTimeout).
func (c *Collector) createDelete(ctx context.Context, hc *hostClient, cleanupBy time.Time) error {
	shell, err := hc.client.CreateShell()
	if err != nil {
		return fmt.Errorf("create shell: %w", err)
	}
	if !cleanupBy.IsZero() && time.Until(cleanupBy) < minDelete {
		cleanupBy = time.Now().Add(minDelete)
	}
	dctx, cancel := cleanupContext(ctx, cleanupBy)
	defer cancel()
	hc.tr.setContext(dctx)
	if err := shell.Close(); err != nil {
		return fmt.Errorf("delete shell: %w", err)
	}
	return nil
}
