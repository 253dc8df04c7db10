package directory

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/go-ldap/ldap/v3/gssapi"
	"github.com/jcmturner/gokrb5/v8/client"
	krbconfig "github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/credentials"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/internal/krb"
)

// CollectorName is the Collector of a live document.
const CollectorName = "ldap"

// Target is one domain to read, settings resolved.
type Target struct {
	Name   string
	BaseDN string
	URLs   []string // tried in order
	// BindName is the simple-bind name (UPN or DN); Password is called once, when the
	// bind needs it, and its value never reaches an error or the evidence.
	BindName string
	Password func() (string, error)
	// RootCAs verifies the servers' certificates (nil: the system roots); ServerName,
	// when set, is the name verified instead of the URL's host.
	RootCAs        *x509.CertPool
	ServerName     string
	AllowPlainLDAP bool

	// Kerberos, when set, binds with SASL GSSAPI instead of a simple bind.
	Kerberos *Kerberos

	PageSize   int
	MaxEntries int
	MaxBytes   int64
	Timeout    time.Duration
	// PseudonymKey, when set, replaces sAMAccountName, userPrincipalName and the DN by
	// keyed hashes before anything is kept.
	PseudonymKey []byte
	Now          func() time.Time
}

// Kerberos is a SASL GSSAPI bind's settings: the client logs on at the KDC once per
// domain (BindName's principal with Password, or the credential cache CCache) and
// binds to every URL with a service ticket for SPN (default ldap/<URL host>).
type Kerberos struct {
	Krb5Conf string // krb5.conf: the realm's KDCs
	Realm    string // "": the BindName's @REALM, else krb5.conf's default realm
	CCache   string // credential cache instead of a password
	SPN      string

	cl *client.Client // the logged-on client of one Collect or Check
}

// attemptError is a classified failure of one URL.
type attemptError struct {
	class evidence.FailureClass
	msg   string
	// final: trying the next URL cannot help, or could lock the account out.
	final bool
}

func (e *attemptError) Error() string { return e.msg }

// Collect reads one domain. It always returns a document: collected, or failed with a
// class. An auth failure is never retried against another URL (account lockout).
func Collect(ctx context.Context, t Target) *Evidence {
	now := t.Now
	if now == nil {
		now = time.Now
	}
	if t.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.Timeout)
		defer cancel()
	}
	if t.Kerberos != nil {
		k, aerr := t.Kerberos.logon(t)
		if aerr != nil {
			return Failed(t.Name, t.BaseDN, CollectorName, now(), aerr.class, aerr.msg, nil)
		}
		defer k.cl.Destroy()
		t.Kerberos = k
	}
	var attempts []Attempt
	var last *attemptError
	for _, raw := range t.URLs {
		ev, aerr := collectURL(ctx, t, raw)
		if aerr == nil {
			ev.CollectedAt = now().UTC()
			ev.Coverage.Attempts = attempts
			return ev
		}
		attempts = append(attempts, Attempt{URL: raw, Class: aerr.class, Message: aerr.msg})
		last = aerr
		if aerr.final || ctx.Err() != nil {
			break
		}
	}
	if last == nil {
		last = &attemptError{class: evidence.FailConnect, msg: "no URL configured"}
	}
	msg := last.msg
	if len(attempts) > 1 {
		msg = fmt.Sprintf("%s (%d URLs tried)", msg, len(attempts))
	}
	return Failed(t.Name, t.BaseDN, CollectorName, now(), last.class, msg, attempts)
}

// countingConn fails reads once more than limit bytes came from the server: the bound
// on what one domain may send holds before the library allocates it.
type countingConn struct {
	net.Conn
	n, limit int64
	over     atomic.Bool
}

var errTooMuch = errors.New("directory answer exceeds directory.max_bytes")

func (c *countingConn) Read(p []byte) (int, error) {
	if c.over.Load() {
		return 0, errTooMuch
	}
	n, err := c.Conn.Read(p)
	if atomic.AddInt64(&c.n, int64(n)) > c.limit {
		c.over.Store(true)
		return n, errTooMuch
	}
	return n, err
}

// session is what is done on a connected, TLS-protected (or allowed plain) connection:
// search (the read) or probe (check's bind and base-DN read).
type session func(ctx context.Context, t Target, raw string, conn *ldap.Conn, cc *countingConn) (*Evidence, *attemptError)

func collectURL(ctx context.Context, t Target, raw string) (*Evidence, *attemptError) {
	return connectURL(ctx, t, raw, search)
}

// connectURL connects to one URL (TCP, then TLS or StartTLS) and runs op on it.
func connectURL(ctx context.Context, t Target, raw string, op session) (*Evidence, *attemptError) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "ldaps" && u.Scheme != "ldap") || u.Hostname() == "" {
		return nil, &attemptError{class: evidence.FailConnect, msg: "not an ldaps:// or ldap:// URL"}
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"ldaps": "636", "ldap": "389"}[u.Scheme]
	}
	host := u.Hostname()
	tlsCfg := &tls.Config{RootCAs: t.RootCAs, ServerName: host, MinVersion: tls.VersionTLS12}
	if t.ServerName != "" {
		tlsCfg.ServerName = t.ServerName
	}
	deadline, _ := ctx.Deadline()
	d := net.Dialer{Deadline: deadline}
	raw0, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, classifyDial(ctx, err)
	}
	limit := t.MaxBytes
	if limit <= 0 {
		limit = 256 << 20
	}
	cc := &countingConn{Conn: raw0, limit: limit}
	if !deadline.IsZero() {
		_ = cc.SetDeadline(deadline)
	}
	// Closing the socket when ctx ends unblocks every pending read, whatever the library
	// is waiting for.
	stop := context.AfterFunc(ctx, func() { _ = raw0.Close() })
	defer stop()

	var nc net.Conn = cc
	isTLS := u.Scheme == "ldaps"
	if isTLS {
		tc := tls.Client(cc, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw0.Close()
			return nil, classify(ctx, cc, err, "TLS handshake")
		}
		nc = tc
	}
	conn := ldap.NewConn(nc, isTLS)
	conn.Start()
	defer conn.Close()
	if to := time.Until(deadline); !deadline.IsZero() && to > 0 {
		conn.SetTimeout(to + 5*time.Second) // the socket deadline fires first: classified as timeout
	}
	if !isTLS {
		if err := conn.StartTLS(tlsCfg); err != nil {
			if !t.AllowPlainLDAP {
				ae := classify(ctx, cc, err, "StartTLS")
				if ae.class != evidence.FailTimeout && ae.class != evidence.FailConnect {
					ae.class = evidence.FailTLS
					ae.msg = "StartTLS refused or failed, and plain LDAP is not allowed (allow_plain_ldap: false): " + ae.msg
				}
				return nil, ae
			}
			// Allowed plain: the failed StartTLS may have left the connection unusable;
			// start over without it.
			return collectPlain(ctx, t, raw, host, port, op)
		}
	}
	return op(ctx, t, raw, conn, cc)
}

// collectPlain reads over ldap:// without TLS (allow_plain_ldap).
func collectPlain(ctx context.Context, t Target, raw, host, port string, op session) (*Evidence, *attemptError) {
	deadline, _ := ctx.Deadline()
	d := net.Dialer{Deadline: deadline}
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, classifyDial(ctx, err)
	}
	cc := &countingConn{Conn: c, limit: t.MaxBytes}
	if cc.limit <= 0 {
		cc.limit = 256 << 20
	}
	if !deadline.IsZero() {
		_ = cc.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	conn := ldap.NewConn(cc, false)
	conn.Start()
	defer conn.Close()
	if to := time.Until(deadline); !deadline.IsZero() && to > 0 {
		conn.SetTimeout(to + 5*time.Second) // the socket deadline fires first: classified as timeout
	}
	return op(ctx, t, raw, conn, cc)
}

// bind authenticates the connection: SASL GSSAPI with t.Kerberos (logged on already),
// else a simple bind. A refusal is final: never retried against another URL (lockout).
func bind(ctx context.Context, t Target, raw string, conn *ldap.Conn, cc *countingConn) *attemptError {
	if k := t.Kerberos; k != nil {
		spn := k.SPN
		if spn == "" {
			u, _ := url.Parse(raw)
			spn = "ldap/" + u.Hostname()
		}
		if err := conn.GSSAPIBind(&saslClient{Client: &gssapi.Client{Client: k.cl}, spn: spn}, spn, ""); err != nil {
			if strings.Contains(err.Error(), "KDC_ERR_S_PRINCIPAL_UNKNOWN") {
				return &attemptError{class: evidence.FailAuth, final: true,
					msg: fmt.Sprintf("kerberos bind: the KDC knows no service principal %s; set the domain's spn (AD registers ldap/<DC FQDN>) or use the DC's FQDN in the URL", spn)}
			}
			ae := classify(ctx, cc, err, "kerberos bind as "+spn)
			if ae.class == evidence.FailProtocol || ae.class == evidence.FailConnect && !strings.Contains(ae.msg, "connection lost") {
				ae.class, ae.final = evidence.FailAuth, true
			}
			return ae
		}
		return nil
	}
	if t.Password == nil {
		return &attemptError{class: evidence.FailAuth, msg: "no password configured", final: true}
	}
	pw, err := t.Password()
	if err != nil {
		return &attemptError{class: evidence.FailAuth, msg: err.Error(), final: true}
	}
	if pw == "" || t.BindName == "" {
		// An empty password would be an unauthenticated bind (RFC 4513 §5.1.2): refused.
		return &attemptError{class: evidence.FailAuth, final: true, msg: "the domain's credential has no bind name or password (simple bind needs both)"}
	}
	if err := conn.Bind(t.BindName, pw); err != nil {
		ae := classify(ctx, cc, err, "bind")
		if ae.class == evidence.FailProtocol {
			ae.class, ae.final = evidence.FailAuth, true
		}
		return ae
	}
	return nil
}

// search binds and runs the paged search.
func search(ctx context.Context, t Target, raw string, conn *ldap.Conn, cc *countingConn) (*Evidence, *attemptError) {
	if ae := bind(ctx, t, raw, conn, cc); ae != nil {
		return nil, ae
	}
	pageSize := t.PageSize
	if pageSize <= 0 {
		pageSize = 1000
	}
	bindMethod := "simple"
	if t.Kerberos != nil {
		bindMethod = "kerberos"
	}
	ev := &Evidence{Schema: Schema, Domain: t.Name, BaseDN: t.BaseDN, Server: raw, Bind: bindMethod, Collector: CollectorName,
		Coverage: Coverage{Status: StatusCollected}, Filter: Filter, PageSize: pageSize,
		Pseudonymised: len(t.PseudonymKey) > 0, Users: []User{}}
	paging := ldap.NewControlPaging(uint32(pageSize))
	for {
		req := ldap.NewSearchRequest(t.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			Filter, Attributes, []ldap.Control{paging})
		pctx, cancel := context.WithCancel(ctx)
		res := conn.SearchAsync(pctx, req, 64)
		var over bool
		for res.Next() {
			e := res.Entry()
			if e == nil {
				continue // a referral or an intermediate response
			}
			if len(ev.Users) >= t.MaxEntries && t.MaxEntries > 0 {
				over = true
				break
			}
			ev.Users = append(ev.Users, userOf(e, t.PseudonymKey))
		}
		err := res.Err()
		controls := res.Controls()
		cancel()
		if over {
			return nil, &attemptError{class: FailSizeLimit, final: true,
				msg: fmt.Sprintf("more than %d user objects hold msTS licence attributes (directory.max_entries); figures unknown", t.MaxEntries)}
		}
		if err != nil && ev.Pages == 0 && pageSize > 1 && len(ev.Users) == 0 &&
			(ldap.IsErrorWithCode(err, ldap.LDAPResultAdminLimitExceeded) || ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded)) {
			// The server refuses a page this large (OpenLDAP's size.pr; AD caps it at
			// MaxPageSize instead): ask again with half, and record what was used.
			pageSize /= 2
			ev.PageSize = pageSize
			paging = ldap.NewControlPaging(uint32(pageSize))
			continue
		}
		if err != nil {
			ae := classify(ctx, cc, err, "search")
			ae.final = true
			return nil, ae
		}
		ev.Pages++
		pc, _ := ldap.FindControl(controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
		if pc == nil || len(pc.Cookie) == 0 {
			break
		}
		paging.SetCookie(pc.Cookie)
	}
	_ = conn.Unbind()
	return ev, nil
}

func userOf(e *ldap.Entry, key []byte) User {
	u := User{
		SAMAccountName:     e.GetEqualFoldAttributeValue("sAMAccountName"),
		UserPrincipalName:  e.GetEqualFoldAttributeValue("userPrincipalName"),
		DN:                 e.DN,
		UserAccountControl: e.GetEqualFoldAttributeValue("userAccountControl"),
		LastLogonTimestamp: e.GetEqualFoldAttributeValue("lastLogonTimestamp"),
		Slots:              []Slot{},
	}
	if len(key) > 0 {
		u.SAMAccountName = Pseudonym(key, u.SAMAccountName)
		u.UserPrincipalName = Pseudonym(key, u.UserPrincipalName)
		u.DN = Pseudonym(key, u.DN)
	}
	for k := 1; k <= 4; k++ {
		suffix := ""
		if k > 1 {
			suffix = strconv.Itoa(k)
		}
		s := Slot{Slot: k,
			LicenseVersion: e.GetEqualFoldAttributeValue("msTSLicenseVersion" + suffix),
			ExpireDate:     e.GetEqualFoldAttributeValue("msTSExpireDate" + suffix),
			ManagingLS:     e.GetEqualFoldAttributeValue("msTSManagingLS" + suffix),
		}
		if s.LicenseVersion != "" || s.ExpireDate != "" || s.ManagingLS != "" {
			u.Slots = append(u.Slots, s)
		}
	}
	return u
}

// Pseudonym is the keyed hash that stands for a user name or DN ("" stays ""): the
// same name under the same key always gives the same pseudonym, case-insensitively.
func Pseudonym(key []byte, v string) string {
	if v == "" {
		return ""
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(strings.ToLower(v)))
	return "user-" + hex.EncodeToString(m.Sum(nil))[:20]
}

func classifyDial(ctx context.Context, err error) *attemptError {
	var de *net.DNSError
	switch {
	case errors.As(err, &de):
		return &attemptError{class: evidence.FailDNS, msg: fmt.Sprintf("resolve %s: %s", de.Name, de.Err)}
	case timedOut(ctx, err):
		return &attemptError{class: evidence.FailTimeout, msg: "connect: timed out (directory.timeout)", final: true}
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		cause := oe.Err
		var se *os.SyscallError
		if errors.As(cause, &se) && se.Err != nil {
			cause = se.Err // "connection refused", not "connect: connection refused"
		}
		return &attemptError{class: evidence.FailConnect, msg: "connect: " + cause.Error()}
	}
	return &attemptError{class: evidence.FailConnect, msg: "connect: " + err.Error()}
}

// classify turns an error of the TLS handshake, StartTLS, bind or search into a class.
func classify(ctx context.Context, cc *countingConn, err error, step string) *attemptError {
	if cc != nil && cc.over.Load() {
		return &attemptError{class: FailSizeLimit, final: true, msg: step + ": " + errTooMuch.Error() + "; figures unknown"}
	}
	if timedOut(ctx, err) {
		return &attemptError{class: evidence.FailTimeout, final: true, msg: step + ": timed out (directory.timeout)"}
	}
	var le *ldap.Error
	if errors.As(err, &le) {
		switch le.ResultCode {
		case ldap.LDAPResultInvalidCredentials, ldap.LDAPResultInappropriateAuthentication, ldap.LDAPResultConfidentialityRequired,
			ldap.LDAPResultStrongAuthRequired:
			return &attemptError{class: evidence.FailAuth, final: true, msg: fmt.Sprintf("%s: %s (LDAP %d); not retried, to avoid locking the account out",
				step, ldap.LDAPResultCodeMap[le.ResultCode], le.ResultCode)}
		case ldap.LDAPResultInsufficientAccessRights:
			return &attemptError{class: evidence.FailAccessDenied, final: true, msg: fmt.Sprintf("%s: insufficient access rights (LDAP 50)", step)}
		case ldap.LDAPResultSizeLimitExceeded, ldap.LDAPResultAdminLimitExceeded:
			return &attemptError{class: FailSizeLimit, final: true, msg: fmt.Sprintf("%s: the server's %s (LDAP %d) stopped the paged search; figures unknown",
				step, ldap.LDAPResultCodeMap[le.ResultCode], le.ResultCode)}
		case ldap.LDAPResultTimeLimitExceeded:
			return &attemptError{class: evidence.FailTimeout, final: true, msg: step + ": the server's time limit was exceeded"}
		case ldap.ErrorNetwork:
			var ce *tls.CertificateVerificationError
			if errors.As(err, &ce) {
				return tlsError(step, err)
			}
			return &attemptError{class: evidence.FailConnect, msg: step + ": connection lost: " + errText(le.Err)}
		case ldap.LDAPResultNoSuchObject:
			return &attemptError{class: evidence.FailProtocol, final: true, msg: step + ": base_dn does not exist on this server (LDAP 32)"}
		}
		if step == "StartTLS" {
			return &attemptError{class: evidence.FailTLS, msg: fmt.Sprintf("%s: %s (LDAP %d)", step, ldap.LDAPResultCodeMap[le.ResultCode], le.ResultCode)}
		}
		return &attemptError{class: evidence.FailProtocol, msg: fmt.Sprintf("%s: %s (LDAP %d)", step, ldap.LDAPResultCodeMap[le.ResultCode], le.ResultCode)}
	}
	var ce *tls.CertificateVerificationError
	var re tls.RecordHeaderError
	var ae tls.AlertError
	if errors.As(err, &ce) || errors.As(err, &re) || errors.As(err, &ae) || step == "TLS handshake" || step == "StartTLS" {
		return tlsError(step, err)
	}
	return &attemptError{class: evidence.FailConnect, msg: step + ": " + err.Error()}
}

// timedOut: the domain's deadline passed (the socket deadline and ctx end together; the
// library does not always wrap the socket's error).
func timedOut(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

func tlsError(step string, err error) *attemptError {
	var ce *tls.CertificateVerificationError
	if errors.As(err, &ce) && ce.Err != nil {
		return &attemptError{class: evidence.FailTLS, msg: step + ": certificate not trusted: " + ce.Err.Error() + " (set the domain's ca_bundle or server_name)"}
	}
	return &attemptError{class: evidence.FailTLS, msg: step + ": " + err.Error()}
}

func errText(err error) string {
	if err == nil {
		return "closed"
	}
	return err.Error()
}

// logon logs on at the KDC (one AS exchange; FAST off, as for WinRM) and returns the
// settings with the logged-on client. A refusal is auth: never retried (lockout).
func (k *Kerberos) logon(t Target) (*Kerberos, *attemptError) {
	cfg, err := krbconfig.Load(k.Krb5Conf)
	if err != nil {
		return nil, &attemptError{class: evidence.FailAuth, final: true, msg: fmt.Sprintf("kerberos: read %s: %v", k.Krb5Conf, err)}
	}
	out := *k
	if k.CCache != "" && (t.Password == nil) {
		cc, err := credentials.LoadCCache(k.CCache)
		if err != nil {
			return nil, &attemptError{class: evidence.FailAuth, final: true, msg: fmt.Sprintf("kerberos: credential cache %s: %v; run kinit as the account running rdsaudit", k.CCache, err)}
		}
		if out.cl, err = client.NewFromCCache(cc, cfg, client.DisablePAFXFAST(true)); err != nil {
			return nil, &attemptError{class: evidence.FailAuth, final: true, msg: fmt.Sprintf("kerberos: credential cache %s: %v", k.CCache, err)}
		}
		return &out, nil
	}
	if t.Password == nil {
		return nil, &attemptError{class: evidence.FailAuth, final: true, msg: "kerberos: no password configured and no transport.kerberos.ccache"}
	}
	pw, err := t.Password()
	if err != nil || pw == "" {
		msg := "kerberos: the domain's credential has no password"
		if err != nil {
			msg = "kerberos: " + err.Error()
		}
		return nil, &attemptError{class: evidence.FailAuth, final: true, msg: msg}
	}
	user, realm := krb.Principal(t.BindName, k.Realm)
	if realm == "" {
		realm = cfg.LibDefaults.DefaultRealm
	}
	out.cl = client.NewWithPassword(user, realm, pw, cfg, client.DisablePAFXFAST(true))
	if err := out.cl.Login(); err != nil {
		out.cl.Destroy()
		msg := err.Error()
		if code := krb.Refusal(msg); code != "" {
			return nil, &attemptError{class: evidence.FailAuth, final: true,
				msg: fmt.Sprintf("kerberos logon of %s@%s refused by the KDC (%s); not retried, to avoid locking the account out", user, realm, code)}
		}
		return nil, &attemptError{class: evidence.FailConnect, final: true,
			msg: fmt.Sprintf("kerberos logon of %s@%s failed (check the realm and its kdc entries in %s): %s", user, realm, k.Krb5Conf, firstLine(msg))}
	}
	return &out, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
