// Package winrm collects host evidence over WinRM: it runs the embedded, read-only
// collection script on each host with Basic, NTLM or Kerberos authentication, over
// transports of its own where masterzen/winrm's fall short, classifies what fails and
// keeps a wrong password from locking the account out.
package winrm

import (
	"bytes"
	"context"
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
	"strings"
	"sync"
	"time"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/internal/krb"
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
// principal the collector asks the KDC for (krb.Principal: a DOMAIN\ prefix is dropped
// and a bare user is in KrbRealm), so there CONTOSO\svc, svc and svc@REALM are one
// account when they name one principal.
func (c *Collector) account(cred Credential) string {
	if c.opts.Auth == AuthKerberos && strings.TrimSpace(cred.Username) != "" {
		user, realm := krb.Principal(strings.TrimSpace(cred.Username), c.opts.KrbRealm)
		if k := accountKey(user + "@" + realm); realm != "" && k != "" {
			return k
		}
	}
	return cred.key()
}

// Collect reads one host. It never returns nil and never panics on remote input.
//
// HostTimeout is a wall-clock limit on the whole host: reaching it, waiting for the
// credential's turn, every attempt and backoff, and the closing Delete (the work
// stops cleanupReserve before the deadline; the Delete gets what is left).
//
// Lockout protection, per account (Collector.account: credential entries naming the
// same account share one count): until a password has authenticated once in this run
// (a SOAP answer or fault from any host; a rejecting listener answers 401), at most one
// host at a time tries it or any other unproven password of the account. A host first
// shows it can be reached (TCP, over HTTPS the TLS handshake, and an unauthenticated
// WS-Man Identify: Collector.reach), then waits for that probe turn within its own
// deadline: an unreachable host never holds the turn, and a waiting host's wait is part of its duration and its
// host_timeout. The first authenticated answer opens the gate to full parallelism for
// that password: the probing host does not have to finish first. After
// LockoutThreshold hosts failed authentication as the account, through whichever
// entries, the account is retired and the hosts still waiting or not yet started with
// it are skipped (class credential_locked). A wrong password therefore costs exactly
// LockoutThreshold failed logons of the account, whatever the concurrency and however
// many entries name it. A host whose attempt fails before authentication (connect,
// DNS, TLS, timeout) gives its turn back before its retry backoff.
//
// A 401 for a password that has authenticated before in the run is re-checked once on
// a host that accepted it (Collector.recheck; new logons with it wait meanwhile):
// accepted there, the 401 is this host's own refusal (class auth, not counted as a
// failed logon of the account, since the password is right); refused there too, the
// password changed during the run and the account is retired; inconclusive, the 401
// is counted as for an unproven password.
func (c *Collector) Collect(ctx context.Context, host evidence.HostRef) *evidence.Evidence {
	start := c.opts.Now()
	log := c.log.With().Str("host", host.Name).Logger()
	cred, err := c.creds.CredentialFor(host)
	if err != nil {
		return c.finish(evidence.NewFailure(host, CollectorWinRM, start, evidence.StatusFailed, evidence.FailInternal, err.Error()), start, 0, log)
	}
	g := c.gate(cred)
	if g.isRetired() {
		return c.gateRefused(host, cred, g, start, errCredentialRetired, 0, log)
	}
	deadline := time.Now().Add(c.opts.HostTimeout)
	hctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	// The work (attempts, backoffs, the turn) ends cleanupReserve early: the Delete
	// of the last shell gets the rest (attempt).
	wctx, wcancel := context.WithDeadline(hctx, deadline.Add(-cleanupReserve(c.opts.HostTimeout)))
	defer wcancel()

	var (
		lastErr  error
		class    evidence.FailureClass
		attempts int
	)
	for attempts = 1; ; attempts++ {
		var (
			out     []byte
			release func()
		)
		out, release, lastErr = c.attempt(wctx, deadline, host, cred, g, log)
		if errors.Is(lastErr, errCredentialRetired) {
			release()
			return c.gateRefused(host, cred, g, start, lastErr, attempts-1, log)
		}
		if lastErr == nil {
			release()
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
		if class == evidence.FailAuth && noLogonSent(lastErr) {
			// No credentials were sent (no failed logon): not counted for lockout.
			release()
			break
		}
		if class == evidence.FailAuth {
			lastErr = c.authRefused(wctx, g, host, cred, lastErr, log)
			release() // after counting: the next host probes knowing this one's outcome
			break
		}
		release() // the next host may probe while this one backs off
		if !transient(class) || attempts > c.opts.Retries || wctx.Err() != nil {
			break
		}
		wait := backoff(c.opts.RetryBackoff, attempts)
		log.Warn().Str("class", string(class)).Int("attempt", attempts).Stringer("backoff", wait).Msg(scrub(lastErr.Error(), cred))
		select {
		case <-time.After(wait):
		case <-wctx.Done():
		}
		if wctx.Err() != nil {
			break
		}
	}
	msg := scrub(c.failureMessage(host, cred, class, lastErr), cred)
	ev := evidence.NewFailure(host, CollectorWinRM, start, evidence.StatusFailed, class, msg)
	ev.Failure.Attempts = attempts
	return c.finish(ev, start, attempts, log)
}

// authRefused accounts for a host that refused the credential (class auth) and returns
// the error to report: for a password proven in this run, after the re-check
// (Collector.recheck); else, or when the re-check is inconclusive, counted as a failed
// logon of the account (retiring it at LockoutThreshold).
func (c *Collector) authRefused(ctx context.Context, g *credGate, host evidence.HostRef, cred Credential, err error, log zerolog.Logger) error {
	if g.wasProven() {
		rc := c.recheck(ctx, g, host, cred)
		switch rc.verdict {
		case recheckAccepted:
			log.Warn().Str("credential", cred.Name).Str("rechecked_on", rc.on).Msg("host refused a credential that still authenticates elsewhere: a host-side refusal")
			return &hostRefusal{err: err, on: rc.on}
		case recheckRefused:
			log.Error().Str("credential", cred.Name).Str("account", c.account(cred)).Str("rechecked_on", rc.on).Msg("credential refused again where it had worked: the password changed during the run; not used again in this run")
			return fmt.Errorf("%w (refused on %s too, which had accepted it earlier in this run: the password changed during the run; the credential is retired)", err, rc.on)
		}
	}
	n := c.recordAuthFailure(g, host.Name)
	if n >= c.opts.LockoutThreshold {
		log.Error().Str("credential", cred.Name).Str("account", c.account(cred)).Int("hosts", n).Msg("credential failed authentication too often; not used again in this run")
	}
	return err
}

// hostRefusal is a 401 from a host for a credential that still authenticates on
// another host of the run (on).
type hostRefusal struct {
	err error
	on  string
}

func (e *hostRefusal) Error() string {
	return e.err.Error() + " (the credential still authenticates on " + e.on + " in this run: this host refuses it; not counted as a failed logon of the account)"
}
func (e *hostRefusal) Unwrap() error { return e.err }

// gateRefused is the evidence of a host that did not get to try its credential.
func (c *Collector) gateRefused(host evidence.HostRef, cred Credential, g *credGate, start time.Time, err error, attempts int, log zerolog.Logger) *evidence.Evidence {
	var ev *evidence.Evidence
	if errors.Is(err, errCredentialRetired) {
		why := fmt.Sprintf("failed authentication on %d hosts", c.opts.LockoutThreshold)
		if g.acct.why != "" {
			why = g.acct.why
		}
		msg := fmt.Sprintf("skipped: %s: its account %q %s; not used again in this run (account lockout protection) — check the password and the account's lockout state before the next run", cred, c.account(cred), why)
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

// attempt runs the collection script once: one shell, always deleted. It reaches the
// host and takes the credential's turn first (begin); release gives the turn back
// (never nil; the caller calls it once it has accounted for the outcome). The closing
// Delete ends by cleanupBy, the host's deadline (ctx, the work, ends earlier).
func (c *Collector) attempt(ctx context.Context, cleanupBy time.Time, host evidence.HostRef, cred Credential, g *credGate, log zerolog.Logger) (out []byte, release func(), err error) {
	params0 := ParamsFor(host, c.opts.MaxIssuedLicenses)
	params0.NoKeyMetadata = c.opts.NoKeyMetadata
	col, err := c.cmds.collection(params0)
	if err != nil {
		return nil, func() {}, err
	}
	hc, release, err := c.begin(ctx, host, cred, g)
	if err != nil {
		return nil, release, err
	}
	defer hc.close()
	tr, client := hc.tr, hc.client
	// A Create whose answer is lost (the HTTP or host deadline fires after the request
	// was sent, or the connection drops) may still have opened a shell on the host. It
	// cannot be deleted: only the lost answer carries its ShellId. It lingers until
	// WinRM's idle timeout (IdleTimeOut, PT7200S by default) and counts against
	// MaxShellsPerUser meanwhile; one shell per host per attempt keeps that far below
	// the quota (30), and a retry opens a fresh one.
	shell, shellID, err := createShell(tr, client, &hc.params)
	if err != nil {
		return nil, release, fmt.Errorf("create shell: %w", err)
	}
	defer func() {
		// Always delete the shell, also after an error or the work deadline: a
		// context detached from the work's, ending with the host's deadline.
		dctx, cancel := cleanupContext(ctx, cleanupBy)
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
	code, err := runCollection(ctx, cleanupBy, tr, client, shellID, &hc.params, col, stdout, stderr)
	if stdout.overflow {
		return nil, release, fmt.Errorf("%w: output exceeds %d bytes", ErrBadOutput, c.opts.MaxOutputBytes)
	}
	if err != nil {
		return nil, release, err
	}
	if ctx.Err() != nil {
		return nil, release, ctx.Err()
	}
	if code != 0 {
		text := stderrText(stderr.buf.Bytes())
		if ps2Error.MatchString(text) {
			// Windows PowerShell 2.0 (Server 2008 R2) cannot parse the bootstrap's -shl
			// or has no ConvertTo-Json (domain.md §1): out of support, not a script bug.
			return nil, release, fmt.Errorf("%w: exit code %d: %s", ErrUnsupportedOS, code, text)
		}
		return nil, release, fmt.Errorf("%w: exit code %d: %s", ErrScript, code, text)
	}
	if len(bytes.TrimSpace(stdout.buf.Bytes())) == 0 {
		return nil, release, fmt.Errorf("%w: empty output (stderr: %s)", ErrBadOutput, stderrText(stderr.buf.Bytes()))
	}
	return stdout.buf.Bytes(), release, nil
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
