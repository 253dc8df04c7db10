package winrm

// Kerberos (SPNEGO, "Authorization: Negotiate <AP-REQ>") over HTTPS or HTTP, our own
// client.
//
// masterzen's ClientKerberos is not used: it builds a new gokrb5 client for every SOAP
// message (a full AS and TGS exchange at the KDC per request), sets gokrb5's
// AssumePreAuthentication (a wrong password then costs TWO failed pre-authentications
// per attempt: the first guess with the default salt, then the retry with the KDC's),
// and its HTTP takes no context, ignores our dialer, reads the proxy from the
// environment and sets no TLS minimum.
//
// krbLogin is the logon of one credential for the whole run, shared by its hosts:
//
//   - one AS exchange (a TGT) per credential per run, without AssumePreAuthentication:
//     the first AS-REQ carries no password-derived data, the KDC answers
//     PREAUTH_REQUIRED with the salt (no failed logon), the second carries the
//     encrypted timestamp. A wrong password costs exactly one failed
//     pre-authentication; the refusal is remembered and no other host of the run
//     sends the password to the KDC again (they fail with class auth at once);
//   - with KrbCCachePath, the TGT of the credential cache instead (no password);
//   - one TGS exchange per service principal (service tickets cached until shortly
//     before they end); a new logon only when the TGT is about to expire (a fresh
//     gokrb5 client, so again without assumed pre-authentication);
//   - gokrb5's session management (Login, its auto-renewal goroutines, re-logons on
//     its own initiative) is not used: we hold the TGT.
//
// The KDC exchanges take no context (gokrb5 bounds each with 5s network timeouts):
// they run detached, one at a time per credential, and a caller whose context ends
// stops waiting; the result is kept for the next caller.
//
// krbHTTP is the HTTP of one host attempt: HTTP/1.1 on connections it dials through
// our dialer (TLS 1.2+ with the CA bundle and server name, no proxy). The first
// request of a connection carries a fresh AP-REQ; the listener (Windows, winrmtest)
// authenticates the TCP connection, and later requests on it carry none. A 401 to a
// request with a ticket is an authentication failure (wrong SPN, clock skew, ...: a
// refused ticket, not a failed password logon); a 401 to a request without one (the
// listener dropped the connection's authentication) is retried once on a new
// connection with a ticket (the request was not processed).

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/credentials"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/spnego"
	"github.com/jcmturner/gokrb5/v8/types"

	"github.com/rdsaudit/rdsaudit/internal/krb"
)

// krbRenewMargin: a TGT or service ticket is replaced this long before it ends.
const krbRenewMargin = 2 * time.Minute

// krbLogin is the Kerberos logon of one credential in one run (see the file comment).
type krbLogin struct {
	user, realm, pass string // principal name and realm (krb.Principal), password
	ccache            string // credential cache: its TGT instead of a password logon
	confPath          string // krb5.conf

	sem chan struct{} // one KDC exchange at a time; it guards the fields below

	cfg     *config.Config
	cl      *client.Client
	tgt     messages.Ticket
	tgtKey  types.EncryptionKey
	tgtEnd  time.Time
	failed  error // the logon was refused: not tried again in this run
	tickets map[string]krbTicket
}

type krbTicket struct {
	tkt messages.Ticket
	key types.EncryptionKey
	end time.Time
}

// krbLogin returns the run's logon of the credential, created on first use.
func (c *Collector) krbLogin(cred Credential) *krbLogin {
	user, realm := krb.Principal(cred.Username, c.opts.KrbRealm)
	sum := sha256.Sum256([]byte(cred.key() + "\x00" + cred.Username + "\x00" + realm + "\x00" + cred.Password))
	key := string(sum[:])
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.krb == nil {
		c.krb = map[string]*krbLogin{}
	}
	l := c.krb[key]
	if l == nil {
		l = &krbLogin{
			user: user, realm: realm, pass: cred.Password, ccache: c.opts.KrbCCachePath, confPath: c.opts.Krb5ConfPath,
			sem: make(chan struct{}, 1), tickets: map[string]krbTicket{},
		}
		c.krb[key] = l
	}
	return l
}

// withKDC runs fn (KDC exchanges) holding l.sem, detached from ctx: when ctx ends
// first, withKDC returns ctx's error and fn completes on its own.
func (l *krbLogin) withKDC(ctx context.Context, fn func()) error {
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { <-l.sem }()
		fn()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// token returns the value of an Authorization header for the service principal: a
// SPNEGO NegTokenInit carrying a fresh AP-REQ.
func (l *krbLogin) token(ctx context.Context, spn string) (string, error) {
	var (
		cl  *client.Client
		tkt krbTicket
		err error
	)
	if werr := l.withKDC(ctx, func() { cl, tkt, err = l.serviceTicket(spn, time.Now()) }); werr != nil {
		return "", werr
	}
	if err != nil {
		return "", err
	}
	init, err := spnego.NewNegTokenInitKRB5(cl, tkt.tkt, tkt.key)
	if err != nil {
		return "", fmt.Errorf("%w: kerberos: %v", ErrProtocol, err)
	}
	st := spnego.SPNEGOToken{Init: true, NegTokenInit: init}
	b, err := st.Marshal()
	if err != nil {
		return "", fmt.Errorf("%w: kerberos: %v", ErrProtocol, err)
	}
	return "Negotiate " + base64.StdEncoding.EncodeToString(b), nil
}

// serviceTicket returns a valid ticket for spn, logging on first if needed. Caller
// holds l.sem.
func (l *krbLogin) serviceTicket(spn string, now time.Time) (*client.Client, krbTicket, error) {
	if l.failed != nil {
		return nil, krbTicket{}, fmt.Errorf("%w: kerberos logon of %s not tried again: refused earlier in this run (%v)", ErrAuth, l.principal(), l.failed)
	}
	if l.cl == nil || !now.Before(l.tgtEnd.Add(-krbRenewMargin)) {
		if err := l.logon(now); err != nil {
			return nil, krbTicket{}, err
		}
	}
	if t, ok := l.tickets[spn]; ok && now.Before(t.end.Add(-krbRenewMargin)) {
		return l.cl, t, nil
	}
	// The ticket-granting ticket for the service's realm: ours, or a cross-realm one.
	clientRealm := l.cl.Credentials.Domain()
	kdcRealm, tgt := clientRealm, krbTicket{tkt: l.tgt, key: l.tgtKey, end: l.tgtEnd}
	if r := l.cfg.ResolveRealm(spnHost(spn)); r != "" && r != clientRealm {
		xname := "krbtgt/" + r
		x, ok := l.tickets[xname]
		if !ok || !now.Before(x.end.Add(-krbRenewMargin)) {
			var err error
			x, err = l.tgs(types.PrincipalName{NameType: nametype.KRB_NT_SRV_INST, NameString: []string{"krbtgt", r}}, clientRealm, tgt)
			if err != nil {
				return nil, krbTicket{}, err
			}
			l.tickets[xname] = x
		}
		kdcRealm, tgt = r, x
	}
	t, err := l.tgs(types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, spn), kdcRealm, tgt)
	if err != nil {
		return nil, krbTicket{}, err
	}
	l.tickets[spn] = t
	return l.cl, t, nil
}

func (l *krbLogin) tgs(sname types.PrincipalName, kdcRealm string, tgt krbTicket) (krbTicket, error) {
	_, rep, err := l.cl.TGSREQGenerateAndExchange(sname, kdcRealm, tgt.tkt, tgt.key, false)
	if err != nil {
		return krbTicket{}, fmt.Errorf("%w: kerberos: service ticket for %s: %v", ErrProtocol, sname.PrincipalNameString(), err)
	}
	return krbTicket{tkt: rep.Ticket, key: rep.DecryptedEncPart.Key, end: rep.DecryptedEncPart.EndTime}, nil
}

// spnHost is the host of a service principal name (HTTP/host[:port][@REALM]).
func spnHost(spn string) string {
	_, h, _ := strings.Cut(spn, "/")
	h, _, _ = strings.Cut(h, "@")
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return h
}

func (l *krbLogin) principal() string {
	if l.realm == "" {
		return l.user
	}
	return l.user + "@" + l.realm
}

// logon gets a TGT: one AS exchange with the password (a new gokrb5 client: no
// pre-authentication assumed), or the credential cache's. A refusal by the KDC is
// remembered (l.failed). Caller holds l.sem.
func (l *krbLogin) logon(now time.Time) error {
	if l.cfg == nil {
		cfg, err := config.Load(l.confPath)
		if err != nil {
			return fmt.Errorf("%w: kerberos: %v", ErrProtocol, err)
		}
		l.cfg = cfg
	}
	if l.ccache != "" {
		return l.logonCCache(now)
	}
	realm := l.realm
	if realm == "" {
		realm = l.cfg.LibDefaults.DefaultRealm
	}
	cl := client.NewWithPassword(l.user, realm, l.pass, l.cfg, client.DisablePAFXFAST(true))
	if ok, err := cl.IsConfigured(); !ok {
		return fmt.Errorf("%w: kerberos: %v", ErrProtocol, err)
	}
	req, err := messages.NewASReqForTGT(realm, l.cfg, cl.Credentials.CName())
	if err != nil {
		return fmt.Errorf("%w: kerberos: %v", ErrProtocol, err)
	}
	rep, err := cl.ASExchange(realm, req, 0)
	if err != nil {
		if krb.Refusal(err.Error()) != "" {
			l.failed = err
			return fmt.Errorf("%w: kerberos logon of %s refused by the KDC: %v", ErrAuth, l.principal(), err)
		}
		return fmt.Errorf("kerberos logon of %s: %w", l.principal(), err)
	}
	l.cl, l.tgt, l.tgtKey, l.tgtEnd = cl, rep.Ticket, rep.DecryptedEncPart.Key, rep.DecryptedEncPart.EndTime
	return nil
}

// logonCCache takes the TGT of the credential cache.
func (l *krbLogin) logonCCache(now time.Time) error {
	b, err := os.ReadFile(l.ccache)
	if err != nil {
		return fmt.Errorf("%w: kerberos: read credential cache: %v", ErrProtocol, err)
	}
	cc := new(credentials.CCache)
	if err := cc.Unmarshal(b); err != nil {
		return fmt.Errorf("%w: kerberos: credential cache %s: %v", ErrProtocol, l.ccache, err)
	}
	cl, err := client.NewFromCCache(cc, l.cfg, client.DisablePAFXFAST(true))
	if err != nil {
		return fmt.Errorf("%w: kerberos: credential cache %s: %v", ErrProtocol, l.ccache, err)
	}
	realm := cc.DefaultPrincipal.Realm
	cred, ok := cc.GetEntry(types.PrincipalName{NameType: nametype.KRB_NT_SRV_INST, NameString: []string{"krbtgt", realm}})
	if !ok {
		return fmt.Errorf("%w: kerberos: no TGT for %s in the credential cache %s", ErrAuth, realm, l.ccache)
	}
	var tgt messages.Ticket
	if err := tgt.Unmarshal(cred.Ticket); err != nil {
		return fmt.Errorf("%w: kerberos: credential cache %s: %v", ErrProtocol, l.ccache, err)
	}
	if !now.Before(cred.EndTime.Add(-krbRenewMargin)) {
		l.failed = fmt.Errorf("the TGT in the credential cache %s ends at %s", l.ccache, cred.EndTime.Format(time.RFC3339))
		return fmt.Errorf("%w: kerberos: %v", ErrAuth, l.failed)
	}
	l.cl, l.tgt, l.tgtKey, l.tgtEnd = cl, tgt, cred.Key, cred.EndTime
	return nil
}

// krbHTTP is the Kerberos HTTP client of one host attempt (see the file comment).
type krbHTTP struct {
	url     string // https://host:port/wsman
	host    string // Host header
	addr    string // host:port to dial
	spn     string
	login   *krbLogin
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	tls     *tls.Config // nil: plain HTTP
	timeout time.Duration
	maxBody int64

	pool connPool[*pooledConn] // authenticated connections
	pre  *preConn              // the connection Collect established before the credential's turn
}

// Post sends one SOAP request and returns the answer of a 200, or the fault / HTTP
// error.
func (t *krbHTTP) Post(ctx context.Context, reqText string) (string, error) {
	for try := 0; ; try++ {
		var c *pooledConn
		ok := false
		if try == 0 {
			c, ok = t.pool.get()
		}
		auth := ""
		if !ok {
			// A new connection: its first request carries the ticket, obtained before
			// dialing (a refused logon opens no connection).
			var err error
			if auth, err = t.login.token(ctx, t.spn); err != nil {
				return "", err
			}
			if c, err = t.connect(ctx); err != nil {
				return "", err
			}
		}
		req, err := newPost(ctx, t.url, t.host, []byte(reqText), soapType, auth)
		if err != nil {
			c.close()
			return "", err
		}
		resp, body, err := roundTrip(ctx, c, req, t.timeout, t.maxBody)
		if err != nil {
			c.close()
			return "", err
		}
		if resp.StatusCode == http.StatusUnauthorized {
			c.close()
			if auth == "" && try == 0 {
				continue // the connection lost its authentication: once more, with a ticket
			}
			return "", fmt.Errorf("kerberos: the listener refused the service ticket for %s: %w", t.spn, &HTTPError{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type")})
		}
		t.pool.put(c, resp)
		return soapAnswer(resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

// connect dials the listener through our dialer and, over HTTPS, completes the TLS
// handshake under ctx (dialListener).
func (t *krbHTTP) connect(ctx context.Context) (*pooledConn, error) {
	if nc := t.pre.take(); nc != nil {
		c := newPooledConn(nc)
		return &c, nil
	}
	nc, err := dialListener(ctx, t.dial, t.addr, t.tls)
	if err != nil {
		return nil, err
	}
	c := newPooledConn(nc)
	return &c, nil
}

// close closes the idle connections; connections in use are closed when returned.
func (t *krbHTTP) close() { t.pool.close() }
