package winrm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	masterzen "github.com/masterzen/winrm"
	"github.com/masterzen/winrm/soap"
	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/internal/krb"
)

// Sentinel errors of the WinRM collector, checked with errors.Is.
var (
	ErrAuth          = errors.New("authentication failed")
	ErrAccessDenied  = errors.New("access denied")
	ErrQuota         = errors.New("winrm quota exceeded")
	ErrTimeout       = errors.New("timed out")
	ErrShellNotFound = errors.New("winrm shell not found")
	ErrProtocol      = errors.New("winrm protocol error")
	ErrScript        = errors.New("collection script failed")
	ErrBadOutput     = errors.New("bad collection output")
	ErrUnsupportedOS = errors.New("unsupported host: PowerShell 3.0 or later required")
	// ErrNTLMNotOffered (an ErrAuth) means that with auth ntlm the listener's 401
	// offered neither NTLM nor Negotiate, or did not answer the NTLM NEGOTIATE with a
	// CHALLENGE. No credentials were sent: with auth ntlm the password never travels as
	// Basic (ntlmHTTP builds no Basic header).
	ErrNTLMNotOffered = fmt.Errorf("%w: host does not offer NTLM or Negotiate; with auth ntlm the password is never sent with Basic", ErrAuth)
)

// WS-Man fault codes (wsman.md, Faults).
const (
	WSManOperationTimeout = "2150858793"
	WSManShellNotFound    = "2150858843"
	WSManQuotaShells      = "2150859173"
	WSManQuotaOperations  = "2150859174"
	WSManAccessDenied     = "5"
	WSManAccessDeniedHR   = "2147942405"
)

// WSManFault is a SOAP 1.2 fault returned by a WinRM listener.
type WSManFault struct {
	Code    string // s:Sender / s:Receiver
	Subcode string // w:TimedOut, w:AccessDenied, ...
	WSMan   string // f:WSManFault/@Code, "" if absent
	Reason  string
	Status  int // HTTP status
}

// Error includes "OperationTimeout" for the operation timeout fault: masterzen's Receive
// loop looks for that word to issue the next Receive instead of failing.
func (f *WSManFault) Error() string {
	code := f.WSMan
	if code == "" {
		code = "-"
	}
	prefix := ""
	if f.WSMan == WSManOperationTimeout {
		prefix = "OperationTimeout: "
	}
	return fmt.Sprintf("%swsman fault %s (code %s): %s", prefix, f.Subcode, code, strings.TrimSpace(f.Reason))
}

// Is maps fault codes to the sentinels.
func (f *WSManFault) Is(target error) bool {
	sub := strings.ToLower(f.Subcode)
	switch target {
	case ErrTimeout:
		return f.WSMan == WSManOperationTimeout || strings.HasSuffix(sub, ":timedout")
	case ErrShellNotFound:
		return f.WSMan == WSManShellNotFound
	case ErrQuota:
		return f.WSMan == WSManQuotaShells || f.WSMan == WSManQuotaOperations || strings.HasSuffix(sub, ":quotalimit")
	case ErrAccessDenied:
		return f.WSMan == WSManAccessDenied || f.WSMan == WSManAccessDeniedHR || strings.HasSuffix(sub, ":accessdenied")
	case ErrProtocol:
		return true
	}
	return false
}

// HTTPError is a non-200 answer that carries no SOAP fault.
type HTTPError struct {
	Status      int
	ContentType string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("http status %d (content type %q)", e.Status, e.ContentType)
}

// Is maps 401 to ErrAuth and 403 to ErrAccessDenied.
func (e *HTTPError) Is(target error) bool {
	return (target == ErrAuth && e.Status == http.StatusUnauthorized) ||
		(target == ErrAccessDenied && e.Status == http.StatusForbidden) ||
		target == ErrProtocol
}

// soapFault is the shape of a SOAP 1.2 fault body.
type soapFault struct {
	Body struct {
		Fault *struct {
			Code struct {
				Value   string `xml:"Value"`
				Subcode struct {
					Value string `xml:"Value"`
				} `xml:"Subcode"`
			} `xml:"Code"`
			Reason struct {
				Text string `xml:"Text"`
			} `xml:"Reason"`
			Detail struct {
				WSManFault struct {
					Code    string `xml:"Code,attr"`
					Message string `xml:"Message"`
				} `xml:"WSManFault"`
			} `xml:"Detail"`
		} `xml:"Fault"`
	} `xml:"Body"`
}

// parseFault returns the fault in a response body, or nil when there is none.
func parseFault(body string, status int) *WSManFault {
	if !strings.Contains(body, "Fault") {
		return nil
	}
	var env soapFault
	if err := xml.Unmarshal([]byte(body), &env); err != nil || env.Body.Fault == nil {
		return nil
	}
	f := env.Body.Fault
	// Windows gives some faults a generic reason ("… invalid selectors for the
	// resource") and the specific text in the WSManFault message ("… the shell was not
	// found on the server …"): the message wins when there is one.
	reason := strings.TrimSpace(f.Detail.WSManFault.Message)
	if reason == "" {
		reason = f.Reason.Text
	}
	return &WSManFault{Code: f.Code.Value, Subcode: f.Code.Subcode.Value, WSMan: strings.TrimSpace(f.Detail.WSManFault.Code), Reason: reason, Status: status}
}

// transport is our masterzen.Transporter. masterzen's own transports return HTTP 500 SOAP
// faults as a successful body (wsman.md, traps); every response goes through checkBody
// here instead. For Basic, transport does the HTTP itself (context aware, no proxy,
// bounded body); NTLM goes through our NTLM client (ntlmc, winrm_ntlmhttp.go: over
// HTTPS in clear inside TLS, over plain HTTP every message sealed); Kerberos through
// our SPNEGO client (kerb, winrm_kerberos.go) with the tickets of the credential's
// shared logon (krb).
type transport struct {
	url        string
	user, pass string
	ntlm       bool
	maxBody    int64
	dial       func(ctx context.Context, network, addr string) (net.Conn, error)
	tls        *tls.Config  // the listener's TLS configuration (collector's, with its session cache)
	tlsErr     error        // the collector's CA bundle is unusable: Transport fails with it
	krb        *krbLogin    // Kerberos: the credential's logon, shared by the run's hosts
	spn        string       // Kerberos: the listener's service principal
	httpClient *http.Client // our HTTP: Basic
	ntlmc      *ntlmHTTP    // NTLM: HTTPS (in clear inside TLS) or HTTP (every message sealed)
	kerb       *krbHTTP     // Kerberos (SPNEGO), HTTPS or HTTP
	// onAuth, when set, is called after every response that proves the credentials were
	// accepted: a SOAP answer or a SOAP fault (a listener rejecting them answers 401).
	onAuth func()
	// pre is the connection Collect established before the credential's turn: the
	// first connection of whichever client carries the requests.
	pre *preConn

	mu         sync.Mutex
	ctx        context.Context
	emptyPolls int
}

func (t *transport) setContext(ctx context.Context) {
	t.mu.Lock()
	t.ctx = ctx
	t.mu.Unlock()
}

func (t *transport) context() context.Context {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx == nil {
		return context.Background()
	}
	return t.ctx
}

// Transport builds the HTTP transport. No proxy is used: WinRM goes straight to the
// host (an HTTPS_PROXY meant for the internet must not capture it, and loopback tests
// must not depend on NO_PROXY).
//
// With auth ntlm the password must never leave as Basic. Our NTLM client (ntlmHTTP,
// HTTPS and HTTP) never builds a Basic header, reads the offered schemes from an
// anonymous request first (a host configured for Basic alone, or an impostor when
// certificate checks are off, gets no credentials), sends one AUTHENTICATE at most
// until a logon succeeded, sends DOMAIN\user in its domain, and over plain HTTP seals
// every SOAP message.
func (t *transport) Transport(ep *masterzen.Endpoint) error {
	addr := net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port))
	var tlsConf *tls.Config
	if ep.HTTPS || !t.ntlm {
		if t.tlsErr != nil {
			return t.tlsErr
		}
		tlsConf = t.tls
	}
	if t.ntlm {
		// tlsConf nil (plain HTTP): message encryption.
		t.ntlmc = newNTLMHTTP(t.url, addr, t.user, t.pass, t.dial, tlsConf, ep.Timeout, t.maxBody)
		t.ntlmc.pre = t.pre
		return nil
	}
	dial := t.dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	}
	if t.krb != nil {
		if !ep.HTTPS {
			tlsConf = nil
		}
		t.kerb = &krbHTTP{
			url: t.url, host: addr, addr: addr, spn: t.spn, login: t.krb, dial: dial, tls: tlsConf,
			timeout: ep.Timeout, maxBody: t.maxBody, pre: t.pre,
		}
		return nil
	}
	// Basic: net/http, its first connection the one Collect established; others are
	// dialed (and over HTTPS shaken hands) as dialListener does.
	if !ep.HTTPS {
		tlsConf = nil
	}
	first := func(ctx context.Context, _, addr string) (net.Conn, error) {
		if nc := t.pre.take(); nc != nil {
			return nc, nil
		}
		return dialListener(ctx, dial, addr, tlsConf)
	}
	ht := &http.Transport{
		Proxy:                 nil,
		DialContext:           first,
		ResponseHeaderTimeout: ep.Timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
	}
	if tlsConf != nil {
		ht.DialTLSContext = first
	}
	t.httpClient = &http.Client{Transport: ht}
	return nil
}

// baseTLS is the TLS configuration of a collector's listeners: TLS 1.2 or later, the
// CAs of the bundle (else the system's), the configured server name (else, per
// connection, the address dialed). New builds it once: the bundle is parsed once per
// collector, not per host attempt. A bundle in which Go finds no certificate makes
// every host attempt fail with the error (a listener cannot be verified against it).
func baseTLS(opts Options, ca []byte) (*tls.Config, error) {
	conf := &tls.Config{ServerName: opts.TLSServerName, InsecureSkipVerify: opts.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // explicit opt-in only
	if len(ca) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, errors.New("no certificate found in the CA bundle")
		}
		conf.RootCAs = pool
	}
	return conf, nil
}

// sessionCacheSize bounds the TLS sessions a collector keeps (one per listener, a few
// KiB each): a session is only resumed while its host is being collected (a second
// connection, a retry), so the bound only needs to exceed the hosts in flight.
const sessionCacheSize = 1024

// listenerSessions is the collector's TLS session cache as the connections to one
// listener see it. crypto/tls keys sessions by server name, which every listener shares
// when the certificates are checked against one configured name (TLSServerName), or
// which is the same for listeners on one address: the key also carries the address
// dialed, so a session ticket is only ever offered to the listener that issued it.
type listenerSessions struct {
	cache tls.ClientSessionCache
	addr  string // host:port dialed
}

func (s listenerSessions) Get(key string) (*tls.ClientSessionState, bool) {
	return s.cache.Get(s.addr + " " + key)
}

func (s listenerSessions) Put(key string, cs *tls.ClientSessionState) {
	s.cache.Put(s.addr+" "+key, cs)
}

func (t *transport) close() {
	if t.ntlmc != nil {
		t.ntlmc.close()
	}
	if t.kerb != nil {
		t.kerb.close()
	}
	if t.httpClient != nil {
		t.httpClient.CloseIdleConnections()
	}
}

// Post sends one request and returns the body of a 200 answer; any fault becomes a
// *WSManFault, any other status an *HTTPError.
func (t *transport) Post(c *masterzen.Client, msg *soap.SoapMessage) (string, error) {
	ctx := t.context()
	reqText := msg.String()
	var (
		body string
		err  error
	)
	switch {
	case t.ntlmc != nil:
		body, err = t.ntlmc.Post(ctx, reqText)
	case t.kerb != nil:
		body, err = t.kerb.Post(ctx, reqText)
	default:
		body, err = t.postHTTP(ctx, reqText)
	}
	var fault *WSManFault
	if (err == nil || errors.As(err, &fault)) && t.onAuth != nil {
		t.onAuth()
	}
	if err != nil {
		if fault == nil && phaseOf(err) == "" {
			err = &phaseError{Phase: PhaseOperation + " " + actionName(reqText), Err: err}
		}
		return "", err
	}
	return t.checkBody(ctx, reqText, body, http.StatusOK)
}

func (t *transport) postHTTP(ctx context.Context, reqText string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, strings.NewReader(reqText))
	if err != nil {
		return "", fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Content-Type", "application/soap+xml;charset=UTF-8")
	req.SetBasicAuth(t.user, t.pass) // auth basic only: NTLM and Kerberos have clients of their own
	resp, err := t.httpClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, t.maxBody+1))
	if err != nil {
		return "", fmt.Errorf("read response: %w", err)
	}
	if int64(len(b)) > t.maxBody {
		return "", fmt.Errorf("%w: response larger than %d bytes", ErrProtocol, t.maxBody)
	}
	return soapAnswer(resp.StatusCode, resp.Header.Get("Content-Type"), b)
}

// soapAnswer is the SOAP text of an answer: a 200 of type application/soap+xml; the
// fault of any other status, else an *HTTPError.
func soapAnswer(status int, contentType string, body []byte) (string, error) {
	if status != http.StatusOK {
		if f := parseFault(string(body), status); f != nil {
			return "", f
		}
		return "", &HTTPError{Status: status, ContentType: contentType}
	}
	if !strings.Contains(contentType, "application/soap+xml") {
		return "", &HTTPError{Status: status, ContentType: contentType}
	}
	return string(body), nil
}

// actionName is the short name of a request's WS-Man action (Create, Command,
// Receive, Send, Signal, Delete), "request" if it has none.
func actionName(reqText string) string {
	i := strings.Index(reqText, "Action")
	if i < 0 {
		return "request"
	}
	rest := reqText[i:]
	gt, lt := strings.IndexByte(rest, '>'), strings.Index(rest, "</")
	if gt < 0 || lt < gt {
		return "request"
	}
	v := rest[gt+1 : lt]
	if j := strings.LastIndexByte(v, '/'); j >= 0 {
		v = v[j+1:]
	}
	if v == "" || len(v) > 32 {
		return "request"
	}
	return v
}

// streamWithData matches an output stream element carrying data.
var streamWithData = regexp.MustCompile(`<(?:\w+:)?Stream\b[^>]*[^/]>[^<]+<`)

// checkBody finds faults in "successful" bodies, checks that a Create answer names a
// shell, and slows down a Receive loop that gets neither output nor a final state.
func (t *transport) checkBody(ctx context.Context, reqText, body string, status int) (string, error) {
	if err := checkXMLDepth(body); err != nil {
		return "", err
	}
	if f := parseFault(body, status); f != nil {
		return "", f
	}
	switch {
	case strings.Contains(reqText, "/transfer/Create<"):
		if !strings.Contains(body, "ShellId") {
			return "", fmt.Errorf("%w: create response without ShellId", ErrProtocol)
		}
	case strings.Contains(reqText, "/shell/Receive<"):
		if strings.Contains(body, "CommandState/Done") || streamWithData.MatchString(body) {
			t.emptyPolls = 0
			break
		}
		t.emptyPolls++
		if t.emptyPolls > 3 {
			d := min(time.Duration(t.emptyPolls)*50*time.Millisecond, time.Second)
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
	}
	return body, nil
}

// Classify maps an error of a WinRM collection to its failure class. It is the ONE
// place that interprets errors, including masterzen/winrm's untyped ones by their text:
//   - "http response error: 401 - invalid content type" (clientRequest.Post: a 401 has
//     no SOAP content type), "http error 401" (masterzen's NTLM encryption handshake)
//     and "request returned: 401" (masterzen's Kerberos) are authentication failures
//     (the last two are no longer used by rdsaudit);
//   - "Command has already been closed" with no other cause means a refused Create
//     slipped through (protocol fault);
//   - gokrb5 flattens the KDC's refusal of a logon into text: the KRB-ERROR names
//     krb.Refusal looks for are authentication failures (a failed logon at the KDC, counted
//     for lockout like a 401; winrm_kerberos.go also wraps them in ErrAuth).
func Classify(err error) evidence.FailureClass {
	if err == nil {
		return ""
	}
	var (
		dnsErr  *net.DNSError
		netErr  net.Error
		certErr *tls.CertificateVerificationError
		recErr  tls.RecordHeaderError
		unkAuth x509.UnknownAuthorityError
		hostErr x509.HostnameError
		invErr  x509.CertificateInvalidError
	)
	msg := err.Error()
	switch {
	case errors.Is(err, context.Canceled):
		return evidence.FailCanceled
	case errors.Is(err, ErrAuth),
		strings.Contains(msg, "http response error: 401"),
		strings.Contains(msg, "http error 401"),
		strings.Contains(msg, "request returned: 401"),
		krb.Refusal(msg) != "":
		return evidence.FailAuth
	case errors.Is(err, ErrAccessDenied):
		return evidence.FailAccessDenied
	case errors.Is(err, ErrQuota):
		return evidence.FailQuota
	case errors.Is(err, ErrUnsupportedOS):
		return evidence.FailUnsupported
	case errors.Is(err, ErrScript):
		return evidence.FailScript
	case errors.Is(err, ErrBadOutput):
		return evidence.FailBadOutput
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrTimeout):
		return evidence.FailTimeout
	case errors.As(err, &dnsErr):
		return evidence.FailDNS
	case errors.As(err, &certErr), errors.As(err, &recErr), errors.As(err, &unkAuth),
		errors.As(err, &hostErr), errors.As(err, &invErr),
		strings.Contains(msg, "tls: "), strings.Contains(msg, "x509: "):
		return evidence.FailTLS
	case errors.As(err, &netErr) && netErr.Timeout():
		return evidence.FailTimeout
	case errors.Is(err, ErrShellNotFound), errors.Is(err, ErrProtocol):
		return evidence.FailProtocol
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return evidence.FailConnect
	}
	var opErr *net.OpError
	var urlErr *url.Error
	if errors.As(err, &opErr) || errors.As(err, &urlErr) || strings.Contains(msg, "connection reset") || strings.Contains(msg, "EOF") {
		return evidence.FailConnect
	}
	return evidence.FailProtocol
}

// transient says which classes are worth another attempt. Authentication never is: a
// retry only brings the account closer to lockout.
func transient(c evidence.FailureClass) bool {
	switch c {
	case evidence.FailConnect, evidence.FailTimeout, evidence.FailQuota:
		return true
	}
	return false
}
