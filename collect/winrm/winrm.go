// Package winrm collects host evidence over WinRM: it runs the embedded, read-only
// collection script on each host with Basic, NTLM or Kerberos authentication, over
// transports of its own where masterzen/winrm's fall short, classifies what fails and
// keeps a wrong password from locking the account out.
package winrm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	masterzen "github.com/masterzen/winrm"
	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/internal/redact"
	"github.com/rs/zerolog"
)

// CollectorWinRM is the Collector field value of evidence read over WinRM.
const CollectorWinRM = "winrm"

// WinRM authentication methods.
const (
	AuthBasic    = "basic"
	AuthNTLM     = "ntlm"
	AuthKerberos = "kerberos"
)

// Defaults of Options.
const (
	DefaultHostTimeout      = 10 * time.Minute
	DefaultOperationTimeout = 60 * time.Second
	DefaultRetries          = 2
	DefaultRetryBackoff     = 2 * time.Second
	DefaultMaxOutputBytes   = 64 << 20
	DefaultLockoutThreshold = 3
	// HTTPTimeoutMargin is added to the WS-Man OperationTimeout to get the HTTP
	// response-header timeout: a long-poll Receive legitimately waits OperationTimeout.
	HTTPTimeoutMargin = 15 * time.Second
)

// Options configure the WinRM collector. They are plain values: config decoding
// and validation of the file live in config; New checks consistency.
type Options struct {
	Scheme             string // "https" (default) or "http"
	Port               int    // default 5986 for https, 5985 for http; HostRef.Port wins
	Auth               string // "ntlm" (default), "basic", "kerberos"
	CABundlePath       string // PEM file of CAs trusted for HTTPS (default: system roots)
	CAPEM              []byte // PEM of CAs, alternative to CABundlePath
	TLSServerName      string // name checked against the certificate (default: the address dialed)
	InsecureSkipVerify bool   // explicit opt-in only; logged as a warning
	AllowBasicOverHTTP bool   // Basic over plain HTTP sends the password in clear: refused unless set
	Krb5ConfPath       string // Kerberos: krb5.conf
	KrbRealm           string
	KrbSPN             string // default HTTP/<host>
	KrbCCachePath      string // optional credential cache instead of the password

	HostTimeout       time.Duration // whole collection of one host, retries included (default 10m)
	OperationTimeout  time.Duration // WS-Man OperationTimeout (default 60s); HTTP timeout = this + HTTPTimeoutMargin
	Retries           int           // extra attempts for transient failures (default 2; -1 for none)
	RetryBackoff      time.Duration // first backoff, doubled per attempt, with jitter (default 2s)
	MaxOutputBytes    int64         // stdout bound per host (default 64 MiB)
	MaxIssuedLicenses int           // bound of the issued-licence list (default DefaultMaxIssued)
	NoKeyMetadata     bool          // collection.key_metadata false: the script without Reflection.Emit (no key LastWriteTime)
	LockoutThreshold  int           // hosts failing auth before a credential is retired (default 3); see Collect

	// DialContext replaces the TCP dialer (tests, benchmarks). Nil dials directly.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Credential is one WinRM account. String and GoString never print the password.
type Credential struct {
	Name     string // reference name from configuration, used for lockout accounting
	Username string // user, DOMAIN\user or user@REALM
	Password string
}

// String describes the credential without its secret.
func (c Credential) String() string {
	return fmt.Sprintf("credential %q (user %q)", c.Name, c.Username)
}

// GoString is String, so %#v cannot print the password either.
func (c Credential) GoString() string { return "winrm.Credential{" + c.String() + "}" }

// key is the account the credential logs on as: what the lockout gate counts failed
// logons for. The domain locks an account, not a configuration entry, so two entries
// naming the same account share one gate and one failure count, whatever their names
// and passwords. See accountKey for the normalisation.
func (c Credential) key() string {
	if k := accountKey(c.Username); k != "" {
		return k
	}
	// No user name (a Kerberos credential cache): the entry is all we know.
	return "entry:" + c.Name
}

// accountKey normalises a user name to its account: "DOMAIN\user" and "user@domain"
// both become "user@domain", the domain (NetBIOS name, DNS name or realm) and the user
// folded to lower case, as Windows compares both without regard to case. So
// CONTOSO\svc, contoso\SVC and svc@CONTOSO are one account, and svc@contoso.example is
// the same account as CONTOSO.EXAMPLE\svc. No directory is consulted: the NetBIOS
// name CONTOSO and the DNS name contoso.example are not known to be one domain, and a
// UPN suffix need not be the domain's name, so CONTOSO\svc and svc@contoso.example
// stay two accounts (each is still bounded by LockoutThreshold). Where the same
// spelling might still name two accounts (a UPN against a down-level name), merging
// them only makes the gate stricter, never laxer.
//
// A bare "user" has no domain: the host resolves it (a local account, or the host's
// own domain), so it may be a different account from any DOMAIN\user and is kept
// apart as "user" alone (merging it with one domain's account would be a guess, and
// could not be done for two domains at once). Bare names still fold case. Empty for an
// empty user name.
func accountKey(username string) string {
	u := strings.TrimSpace(username)
	if u == "" {
		return ""
	}
	domain := ""
	if i := strings.IndexByte(u, '\\'); i >= 0 {
		domain, u = u[:i], u[i+1:]
	} else if i := strings.LastIndexByte(u, '@'); i >= 0 {
		u, domain = u[:i], u[i+1:]
	}
	u, domain = strings.ToLower(strings.TrimSpace(u)), strings.ToLower(strings.TrimSpace(domain))
	if domain == "" {
		return u
	}
	return u + "@" + domain
}

// CredentialSource chooses the credential for a host.
type CredentialSource interface {
	CredentialFor(host evidence.HostRef) (Credential, error)
}

// CredentialFunc adapts a function to CredentialSource.
type CredentialFunc func(host evidence.HostRef) (Credential, error)

// CredentialFor calls f.
func (f CredentialFunc) CredentialFor(h evidence.HostRef) (Credential, error) { return f(h) }

// CredentialMap maps HostRef.Name to a credential; the key "*" is the default.
type CredentialMap map[string]Credential

// CredentialFor looks the host up by name, then "*".
func (m CredentialMap) CredentialFor(h evidence.HostRef) (Credential, error) {
	if c, ok := m[h.Name]; ok {
		return c, nil
	}
	if c, ok := m["*"]; ok {
		return c, nil
	}
	return Credential{}, fmt.Errorf("no credential for host %s", h.Name)
}

// Collector collects hosts over WinRM with the collection script. It is safe for
// concurrent use; one collector is meant for one run (it remembers locked credentials).
type Collector struct {
	opts  Options
	creds CredentialSource
	log   zerolog.Logger

	cmds     commandCache           // collections by parameters, built once each
	tls      *tls.Config            // listeners' TLS configuration, CAs parsed once (baseTLS)
	tlsErr   error                  // the CA bundle is unusable: reported by every host attempt
	sessions tls.ClientSessionCache // TLS sessions of the listeners, resumed (listenerSessions)

	mu       sync.Mutex
	accounts map[string]*accountGate // account (Collector.account) -> its lockout count
	gates    map[string]*credGate    // account and password digest -> the password's gate
	krb      map[string]*krbLogin    // Kerberos: a credential's logon, shared by its hosts
}

// errCredentialRetired is returned by credGate.enter once the credential is retired.
var errCredentialRetired = errors.New("credential retired")

// accountGate is the lockout state of one account in one run, shared by every
// credential entry that logs on as it (Credential.key): the domain counts failed
// logons per account, whichever entry sent them. At most one host at a time probes the
// account with a password not yet proven (probe), and after LockoutThreshold hosts
// failed authentication as it, the account is retired for every entry.
type accountGate struct {
	probe      chan struct{} // one slot: the host trying an unproven password of the account
	retired    chan struct{} // closed when LockoutThreshold hosts failed authentication
	retireOnce sync.Once
	failed     map[string]bool // hosts that failed authentication (under Collector.mu)
}

func newAccountGate() *accountGate {
	return &accountGate{probe: make(chan struct{}, 1), retired: make(chan struct{}), failed: map[string]bool{}}
}

// credGate is the lockout guard of one password of an account in one run. Until the
// password has authenticated once (open), at most one host at a time may try it, or
// any other unproven password of the account (the account's probe slot): a wrong
// password then costs at most LockoutThreshold failed logons of the account, however
// many hosts and credential entries run in parallel. A proven password does not open
// the gate for another password of the same account.
type credGate struct {
	acct     *accountGate
	open     chan struct{} // closed at the password's first authenticated response
	openOnce sync.Once
}

func newCredGate() *credGate { return newPasswordGate(newAccountGate()) }

func newPasswordGate(a *accountGate) *credGate {
	return &credGate{acct: a, open: make(chan struct{})}
}

func (g *credGate) markOpen()       { g.openOnce.Do(func() { close(g.open) }) }
func (g *credGate) retire()         { g.acct.retireOnce.Do(func() { close(g.acct.retired) }) }
func (g *credGate) isOpen() bool    { return isClosed(g.open) }
func (g *credGate) isRetired() bool { return isClosed(g.acct.retired) }

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// enter waits until the caller may try the credential and returns the function that
// gives its turn back (idempotent; a no-op once the gate is open). It fails with
// errCredentialRetired, or with ctx's error while waiting.
func (g *credGate) enter(ctx context.Context) (release func(), err error) {
	noop := func() {}
	switch {
	case g.isRetired():
		return nil, errCredentialRetired
	case g.isOpen():
		return noop, nil
	}
	select {
	case <-g.acct.retired:
		return nil, errCredentialRetired
	case <-g.open:
		return noop, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case g.acct.probe <- struct{}{}:
		// select picks at random among ready cases: look again before probing.
		switch {
		case g.isRetired():
			<-g.acct.probe
			return nil, errCredentialRetired
		case g.isOpen():
			<-g.acct.probe
			return noop, nil
		}
		var once sync.Once
		return func() { once.Do(func() { <-g.acct.probe }) }, nil
	}
}

// New checks the options and returns a collector.
func New(opts Options, creds CredentialSource, log zerolog.Logger) (*Collector, error) {
	if creds == nil {
		return nil, errors.New("winrm collector: no credential source")
	}
	opts.Scheme = strings.ToLower(opts.Scheme)
	if opts.Scheme == "" {
		opts.Scheme = "https"
	}
	if opts.Scheme != "https" && opts.Scheme != "http" {
		return nil, fmt.Errorf("winrm collector: scheme %q: want https or http", opts.Scheme)
	}
	if opts.Port == 0 {
		opts.Port = 5986
		if opts.Scheme == "http" {
			opts.Port = 5985
		}
	}
	opts.Auth = strings.ToLower(opts.Auth)
	if opts.Auth == "" {
		opts.Auth = AuthNTLM
	}
	switch opts.Auth {
	case AuthBasic:
		if opts.Scheme == "http" {
			if !opts.AllowBasicOverHTTP {
				return nil, errors.New("winrm collector: basic authentication over plain http sends passwords in clear text; use https, ntlm, or set allow_basic_over_http")
			}
			log.Warn().Msg("basic authentication over plain http: passwords and evidence travel unencrypted")
		}
	case AuthNTLM:
	case AuthKerberos:
		if opts.Krb5ConfPath == "" {
			return nil, errors.New("winrm collector: kerberos needs a krb5.conf path")
		}
	default:
		return nil, fmt.Errorf("winrm collector: auth %q: want basic, ntlm or kerberos", opts.Auth)
	}
	if opts.InsecureSkipVerify {
		log.Warn().Msg("tls certificate verification disabled (insecure_skip_verify)")
	}
	ca := opts.CAPEM
	if opts.CABundlePath != "" {
		b, err := os.ReadFile(opts.CABundlePath)
		if err != nil {
			return nil, fmt.Errorf("winrm collector: read CA bundle: %w", err)
		}
		ca = append(append([]byte{}, ca...), b...)
	}
	if len(ca) > 0 && !bytes.Contains(ca, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, errors.New("winrm collector: CA bundle holds no PEM certificate")
	}
	if opts.HostTimeout <= 0 {
		opts.HostTimeout = DefaultHostTimeout
	}
	if opts.OperationTimeout <= 0 {
		opts.OperationTimeout = DefaultOperationTimeout
	}
	if opts.OperationTimeout < time.Second {
		opts.OperationTimeout = time.Second
	}
	if opts.Retries == 0 {
		opts.Retries = DefaultRetries
	} else if opts.Retries < 0 {
		opts.Retries = 0
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = DefaultRetryBackoff
	}
	if opts.MaxOutputBytes <= 0 {
		opts.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if opts.MaxIssuedLicenses <= 0 {
		opts.MaxIssuedLicenses = DefaultMaxIssued
	}
	if opts.LockoutThreshold <= 0 {
		opts.LockoutThreshold = DefaultLockoutThreshold
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Collector{opts: opts, creds: creds, log: log, accounts: map[string]*accountGate{}, gates: map[string]*credGate{}}
	c.tls, c.tlsErr = baseTLS(opts, ca)
	c.sessions = tls.NewLRUClientSessionCache(sessionCacheSize)
	return c, nil
}

// Options returns the effective options (defaults applied).
func (c *Collector) Options() Options { return c.opts }

// Name implements collect.Collector.
func (c *Collector) Name() string { return CollectorWinRM }

// account is the account cred logs on as (Credential.key). With Kerberos it is the
// principal the collector asks the KDC for (krbPrincipal: a DOMAIN\ prefix is dropped
// and a bare user is in KrbRealm), so there CONTOSO\svc, svc and svc@REALM are one
// account when they name one principal.
func (c *Collector) account(cred Credential) string {
	if c.opts.Auth == AuthKerberos && strings.TrimSpace(cred.Username) != "" {
		user, realm := krbPrincipal(strings.TrimSpace(cred.Username), c.opts.KrbRealm)
		if k := accountKey(user + "@" + realm); realm != "" && k != "" {
			return k
		}
	}
	return cred.key()
}

// gate returns the gate of the credential's password, created on first use, sharing
// its account's lockout count with every other entry for the same account.
func (c *Collector) gate(cred Credential) *credGate {
	acct := c.account(cred)
	sum := sha256.Sum256([]byte(acct + "\x00" + cred.Password))
	key := string(sum[:])
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.gates[key]
	if g == nil {
		a := c.accounts[acct]
		if a == nil {
			a = newAccountGate()
			c.accounts[acct] = a
		}
		g = newPasswordGate(a)
		c.gates[key] = g
	}
	return g
}

// recordAuthFailure counts a host that failed authentication with the credential and
// retires the credential at LockoutThreshold hosts. It returns the count.
func (c *Collector) recordAuthFailure(g *credGate, host string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	g.acct.failed[host] = true
	n := len(g.acct.failed)
	if n >= c.opts.LockoutThreshold {
		g.retire()
	}
	return n
}

// Collect reads one host. It never returns nil and never panics on remote input.
//
// Lockout protection, per account (Collector.account: credential entries naming the
// same account share one count): until a password has authenticated once in this run
// (a SOAP answer or fault from any host; a rejecting listener answers 401), at most one
// host at a time tries it or any other unproven password of the account; the others
// wait (honouring ctx; the wait does not count against HostTimeout). Its first
// authenticated answer opens the gate to full parallelism for that password: the
// probing host does not have to finish first. After LockoutThreshold hosts failed
// authentication as the account, through whichever entries, the account is retired and
// the hosts still waiting or not yet started with it are skipped (class
// credential_locked). A wrong password therefore costs exactly LockoutThreshold failed
// logons of the account, whatever the concurrency and however many entries name it. A
// host whose attempt fails before authentication (connect, DNS, TLS, timeout) gives its
// turn back before its retry backoff.
func (c *Collector) Collect(ctx context.Context, host evidence.HostRef) *evidence.Evidence {
	start := c.opts.Now()
	log := c.log.With().Str("host", host.Name).Logger()
	cred, err := c.creds.CredentialFor(host)
	if err != nil {
		return c.finish(evidence.NewFailure(host, CollectorWinRM, start, evidence.StatusFailed, evidence.FailInternal, err.Error()), start, 0, log)
	}
	g := c.gate(cred)
	release, err := g.enter(ctx)
	if err != nil {
		return c.gateRefused(host, cred, start, err, 0, log)
	}
	defer func() { release() }()
	hctx, cancel := context.WithTimeout(ctx, c.opts.HostTimeout)
	defer cancel()

	var (
		lastErr  error
		class    evidence.FailureClass
		attempts int
	)
	for attempts = 1; ; attempts++ {
		if attempts > 1 {
			if release, err = g.enter(hctx); err != nil {
				release = func() {}
				if errors.Is(err, errCredentialRetired) {
					return c.gateRefused(host, cred, start, err, attempts-1, log)
				}
				break // the host's deadline or the run ended while waiting: keep the last error
			}
		}
		var out []byte
		out, lastErr = c.attempt(hctx, host, cred, g.markOpen, log)
		if lastErr == nil {
			ev, err := evidence.Decode(bytes.NewReader(out))
			if err == nil {
				completeRegistry(ev, evidence.KeysFor(host.Roles)) // hashes and redacts what the host did not (script.go)
				ev.Host = host
				ev.Collector = CollectorWinRM
				ev.CollectedAt = start.UTC()
				ev.DurationMS = c.opts.Now().Sub(start).Milliseconds()
				ev.Status = evidence.StatusCollected
				ev.Failure = nil
				log.Debug().Stringer("duration", c.opts.Now().Sub(start)).Int("attempts", attempts).Msg("collected")
				return ev
			}
			lastErr = fmt.Errorf("%w: %v", ErrBadOutput, err)
		}
		class = Classify(lastErr)
		if errors.Is(lastErr, context.DeadlineExceeded) && ctx.Err() == nil {
			class = evidence.FailTimeout
		} else if ctx.Err() != nil {
			class = evidence.FailCanceled
		}
		if class == evidence.FailAuth && errors.Is(lastErr, ErrNTLMNotOffered) {
			// No credentials were sent (no failed logon): not counted for lockout.
			break
		}
		if class == evidence.FailAuth {
			n := c.recordAuthFailure(g, host.Name)
			if n >= c.opts.LockoutThreshold {
				log.Error().Str("credential", cred.Name).Str("account", c.account(cred)).Int("hosts", n).Msg("credential failed authentication too often; not used again in this run")
			}
			break
		}
		release() // the next host may probe while this one backs off
		if !transient(class) || attempts > c.opts.Retries || hctx.Err() != nil {
			break
		}
		wait := backoff(c.opts.RetryBackoff, attempts)
		log.Warn().Str("class", string(class)).Int("attempt", attempts).Stringer("backoff", wait).Msg(scrub(lastErr.Error(), cred))
		select {
		case <-time.After(wait):
		case <-hctx.Done():
		}
		if hctx.Err() != nil {
			break
		}
	}
	msg := scrub(fmt.Sprintf("collect %s: %v", host.Name, lastErr), cred)
	ev := evidence.NewFailure(host, CollectorWinRM, start, evidence.StatusFailed, class, msg)
	ev.Failure.Attempts = attempts
	return c.finish(ev, start, attempts, log)
}

// gateRefused is the evidence of a host that did not get to try its credential.
func (c *Collector) gateRefused(host evidence.HostRef, cred Credential, start time.Time, err error, attempts int, log zerolog.Logger) *evidence.Evidence {
	var ev *evidence.Evidence
	if errors.Is(err, errCredentialRetired) {
		msg := fmt.Sprintf("skipped: %s: its account %q failed authentication on %d hosts; not used again in this run (account lockout protection)", cred, c.account(cred), c.opts.LockoutThreshold)
		ev = evidence.NewFailure(host, CollectorWinRM, start, evidence.StatusSkipped, evidence.FailCredential, msg)
	} else {
		ev = evidence.NewFailure(host, CollectorWinRM, start, evidence.StatusFailed, evidence.FailCanceled, fmt.Sprintf("collect %s: not started: %v", host.Name, err))
	}
	if attempts > 0 {
		ev.Failure.Attempts = attempts
	}
	return c.finish(ev, start, attempts, log)
}

func (c *Collector) finish(ev *evidence.Evidence, start time.Time, attempts int, log zerolog.Logger) *evidence.Evidence {
	d := c.opts.Now().Sub(start)
	ev.DurationMS = d.Milliseconds()
	if ev.Failure != nil {
		log.Warn().Str("class", string(ev.Failure.Class)).Int("attempts", attempts).Stringer("duration", d).Msg(ev.Failure.Message)
	}
	return ev
}

// backoff is base·2^(n-1), capped at one minute, plus up to 50% jitter.
func backoff(base time.Duration, n int) time.Duration {
	d := base << min(n-1, 10)
	d = min(d, time.Minute)
	return d + rand.N(d/2+1)
}

// scrub removes the credential's secret (and its URL-escaped and Basic header forms)
// from a message, by token (internal/redact): never a blind substring of a short secret.
func scrub(msg string, cred Credential) string {
	if cred.Password == "" {
		return msg
	}
	return redact.Secrets(msg, cred.Password, url.QueryEscape(cred.Password),
		base64.StdEncoding.EncodeToString([]byte(cred.Username+":"+cred.Password)))
}

// ps2Error matches what Windows PowerShell 2.0 says about the bootstrap or the script.
var ps2Error = regexp.MustCompile(`Unexpected token '-sh[lr]'|'ConvertTo-Json' is not recognized|'ConvertFrom-Json' is not recognized`)

var clixmlString = regexp.MustCompile(`<S S="Error">([^<]*)</S>`)

// stderrText turns PowerShell's CLIXML error stream into plain text.
func stderrText(b []byte) string {
	s := string(b)
	if strings.HasPrefix(s, "#< CLIXML") {
		var parts []string
		for _, m := range clixmlString.FindAllStringSubmatch(s, -1) {
			t := strings.NewReplacer("_x000D_", "", "_x000A_", " ", "&lt;", "<", "&gt;", ">", "&amp;", "&", "&quot;", `"`, "&#39;", "'").Replace(m[1])
			parts = append(parts, t)
		}
		s = strings.Join(parts, "")
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}

// attempt runs the collection script once: one shell, always deleted.
// onAuth is called at the first response that proves the credential authenticated.
func (c *Collector) attempt(ctx context.Context, host evidence.HostRef, cred Credential, onAuth func(), log zerolog.Logger) (out []byte, err error) {
	addr := host.Address
	if addr == "" {
		addr = host.Name
	}
	port := host.Port
	if port == 0 {
		port = c.opts.Port
	}
	params0 := ParamsFor(host, c.opts.MaxIssuedLicenses)
	params0.NoKeyMetadata = c.opts.NoKeyMetadata
	col, err := c.cmds.collection(params0)
	if err != nil {
		return nil, err
	}
	https := c.opts.Scheme == "https"
	// The TLS configuration (server name, verification, CAs) is the collector's, in
	// tr.tls: our transport does not read the endpoint's.
	ep := &masterzen.Endpoint{
		Host: addr, Port: port, HTTPS: https, Insecure: c.opts.InsecureSkipVerify,
		TLSServerName: c.opts.TLSServerName,
		Timeout:       c.opts.OperationTimeout + HTTPTimeoutMargin,
	}
	params := *masterzen.DefaultParameters // a copy: DefaultParameters is shared
	params.Timeout = "PT" + strconv.Itoa(int(c.opts.OperationTimeout/time.Second)) + "S"
	scheme := "http"
	if https {
		scheme = "https"
	}
	hostPort := net.JoinHostPort(addr, strconv.Itoa(port))
	tr := &transport{
		url:     (&url.URL{Scheme: scheme, Host: hostPort, Path: "/wsman"}).String(),
		user:    cred.Username,
		pass:    cred.Password,
		ntlm:    c.opts.Auth == AuthNTLM,
		maxBody: 8 << 20,
		dial:    c.opts.DialContext,
		tlsErr:  c.tlsErr,
		onAuth:  onAuth,
	}
	if c.tls != nil {
		tr.tls = c.tls.Clone()
		tr.tls.ClientSessionCache = listenerSessions{cache: c.sessions, addr: hostPort}
	}
	// NTLM: tr logs on with our NTLM client, and over plain HTTP seals every message
	// (winrm_ntlmhttp.go). Kerberos: tr presents the tickets of the credential's
	// logon, shared by the run's hosts (winrm_kerberos.go).
	if c.opts.Auth == AuthKerberos {
		tr.spn = c.opts.KrbSPN
		if tr.spn == "" {
			tr.spn = "HTTP/" + addr
		}
		tr.krb = c.krbLogin(cred)
	}
	params.TransportDecorator = func() masterzen.Transporter { return tr }
	tr.setContext(ctx)
	defer tr.close()
	client, err := masterzen.NewClientWithParameters(ep, cred.Username, cred.Password, &params)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	// A Create whose answer is lost (the HTTP or host deadline fires after the request
	// was sent, or the connection drops) may still have opened a shell on the host. It
	// cannot be deleted: only the lost answer carries its ShellId. It lingers until
	// WinRM's idle timeout (IdleTimeOut, PT7200S by default) and counts against
	// MaxShellsPerUser meanwhile; one shell per host per attempt keeps that far below
	// the quota (30), and a retry opens a fresh one.
	shell, shellID, err := createShell(tr, client, &params)
	if err != nil {
		return nil, fmt.Errorf("create shell: %w", err)
	}
	defer func() {
		// Always delete the shell, also after an error or the deadline: a fresh
		// short context detached from the (maybe expired) host deadline.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		tr.setContext(dctx)
		if derr := shell.Close(); derr != nil {
			log.Debug().Str("error", scrub(derr.Error(), cred)).Msg("delete shell")
		}
	}()

	// The command path (command.go): Command, the script on stdin, Receive until Done;
	// Signal terminate on a fresh short context when the deadline or the output bound
	// cuts the command short.
	stdout := &limitedBuffer{max: c.opts.MaxOutputBytes}
	stderr := &limitedBuffer{max: 64 << 10}
	code, err := runCollection(ctx, tr, client, shellID, &params, col, stdout, stderr)
	if stdout.overflow {
		return nil, fmt.Errorf("%w: output exceeds %d bytes", ErrBadOutput, c.opts.MaxOutputBytes)
	}
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if code != 0 {
		text := stderrText(stderr.buf.Bytes())
		if ps2Error.MatchString(text) {
			// Windows PowerShell 2.0 (Server 2008 R2) cannot parse the bootstrap's -shl
			// or has no ConvertTo-Json (domain.md §1): out of support, not a script bug.
			return nil, fmt.Errorf("%w: exit code %d: %s", ErrUnsupportedOS, code, text)
		}
		return nil, fmt.Errorf("%w: exit code %d: %s", ErrScript, code, text)
	}
	if len(bytes.TrimSpace(stdout.buf.Bytes())) == 0 {
		return nil, fmt.Errorf("%w: empty output (stderr: %s)", ErrBadOutput, stderrText(stderr.buf.Bytes()))
	}
	return stdout.buf.Bytes(), nil
}

// krbPrincipal turns a credential's user name into the Kerberos principal name and
// realm that gokrb5 wants apart: DOMAIN\user is user, "user@REALM" is user in
// REALM (upper-cased: Active Directory realms are the upper-cased DNS domain). An
// explicit KrbRealm wins over the suffix. gokrb5 takes the name as given: a whole
// "user@REALM" or DOMAIN\user would be an unknown principal at the KDC.
func krbPrincipal(username, krbRealm string) (user, realm string) {
	user, realm = username, krbRealm
	if i := strings.LastIndexByte(user, '\\'); i >= 0 {
		user = user[i+1:]
	}
	if i := strings.LastIndexByte(user, '@'); i >= 0 {
		if realm == "" {
			realm = strings.ToUpper(user[i+1:])
		}
		user = user[:i]
	}
	return user, realm
}

// limitedBuffer keeps at most max bytes; beyond that it records the overflow, calls
// onOverflow once and discards the rest (so the reader keeps draining the pipe).
type limitedBuffer struct {
	buf        bytes.Buffer
	max        int64
	overflow   bool
	onOverflow func()
}

// ReadFrom reads r to its end straight into the buffer, with Write's limit: beyond
// max bytes the rest is drained and discarded. (io.Copy into Write would allocate a
// 32 KiB copy buffer per stream and host.)
func (b *limitedBuffer) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	if !b.overflow {
		n, err := b.buf.ReadFrom(io.LimitReader(r, b.max-int64(b.buf.Len())+1))
		total += n
		if err != nil {
			return total, err
		}
		if int64(b.buf.Len()) <= b.max {
			return total, nil // r ended within the limit
		}
		b.buf.Truncate(int(b.max))
		b.overflow = true
		if b.onOverflow != nil {
			b.onOverflow()
		}
	}
	n, err := io.Copy(io.Discard, r)
	return total + n, err
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.overflow {
		return len(p), nil
	}
	if int64(b.buf.Len()+len(p)) > b.max {
		b.overflow = true
		if b.onOverflow != nil {
			b.onOverflow()
		}
		return len(p), nil
	}
	return b.buf.Write(p)
}
