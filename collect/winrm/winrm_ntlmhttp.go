package winrm

// NTLM over HTTPS, and over plain HTTP with WinRM message encryption (MS-WSMV 2.2.9.1):
// our own client, over bodgit/ntlmssp security contexts.
//
// Neither go-ntlmssp's Negotiator nor masterzen's winrm.Encryption is used.
// go-ntlmssp drops the domain of DOMAIN\user (it authenticates in the domain the
// listener names in its CHALLENGE: an account of another, trusted domain cannot log
// on), takes the credentials from a Basic header and re-sends that header when a 401
// offers neither NTLM nor Negotiate. masterzen's Encryption, when its encrypted
// handshake is refused, retries through a plain go-ntlmssp transporter, which logs on a
// second time with the same password (two failed logons per wrong-password attempt)
// and sends the SOAP message unencrypted; its HTTP takes no context, ignores our
// dialer and reads the proxy from the environment.
//
// ntlmHTTP speaks HTTP/1.1 itself on connections it dials (through our dialer; over
// HTTPS with the collector's TLS configuration, handshake completed under the request's
// context), so that the handshake and the messages of a security context are
// guaranteed to travel on the same TCP connection (a Windows listener binds the NTLM
// context to the connection; so does winrmtest):
//
//  1. once per host attempt, an anonymous empty POST: its 401 must offer Negotiate or
//     NTLM (else ErrNTLMNotOffered, nothing sent);
//  2. per connection, NEGOTIATE (empty body) -> 401 with a CHALLENGE; over plain HTTP
//     it must grant signing, sealing and extended session security (else we stop
//     before the AUTHENTICATE: no credentials sent);
//  3. over plain HTTP, AUTHENTICATE (empty body) -> 200, then every SOAP message sealed
//     as multipart/encrypted with the connection's SecuritySession; an answer that is
//     not sealed is never used;
//  4. over HTTPS, the AUTHENTICATE carries the connection's first SOAP message (as
//     every HTTPS NTLM client sends it) and its answer is that message's; later
//     messages go on the authenticated connection without Authorization. TLS protects
//     them: nothing is sealed, the CHALLENGE's flags are not checked.
//
// DOMAIN\user is sent as user in DOMAIN, a UPN whole with an empty domain, a bare user
// with an empty domain (splitNTLMUser), over either scheme.
//
// Lockout: until one logon succeeded, at most one handshake runs at a time and at most
// one AUTHENTICATE is ever sent: a refused logon is remembered (logonErr) and every
// later request of the host attempt fails with it. A wrong password therefore costs
// exactly one failed logon per host attempt. Basic is never sent (no Basic header is
// ever built).
//
// Concurrency: masterzen may run Receive while Send, Signal or Delete go out. Each
// request takes an idle authenticated connection or opens (and authenticates) a new
// one; a connection carries one request at a time, so its sequence numbers stay in
// order. Connections go back to the pool after a complete answer.
//
// Network failures (dial, TLS handshake, request, answer) are reported as net/http's
// client reports them: Post "<url>": <error>.
//
// bodgit/ntlmssp's own http.Client was not used: it keeps one security context for a
// pooled http.Client (concurrent requests may leave on a connection the context does
// not belong to), understands only the Negotiate scheme, and sends the request body
// unsealed during the handshake.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bodgit/ntlmssp"
)

const (
	encProtocol    = "application/HTTP-SPNEGO-session-encrypted"
	encContentType = `multipart/encrypted;protocol="` + encProtocol + `";boundary="Encrypted Boundary"`
	encBoundary    = "--Encrypted Boundary"
	soapType       = "application/soap+xml;charset=UTF-8"
)

// NTLM negotiate flags required for message encryption (MS-NLMP 2.2.2.5).
const (
	ntlmFlagSign = 0x00000010
	ntlmFlagSeal = 0x00000020
	ntlmFlagESS  = 0x00080000
)

// errNTLMRefused: the listener offered NTLM or Negotiate but did not answer our
// NEGOTIATE with a CHALLENGE. No credentials were sent (not a failed logon).
var errNTLMRefused = fmt.Errorf("%w (the listener answered the NTLM NEGOTIATE without a CHALLENGE)", ErrNTLMNotOffered)

// errNoSealing: the CHALLENGE does not grant what message encryption needs; the
// AUTHENTICATE (the credentials) is not sent.
var errNoSealing = fmt.Errorf("%w: the listener's NTLM CHALLENGE does not grant signing, sealing and extended session security; over plain HTTP the messages must be encrypted (use https)", ErrProtocol)

// ntlmHTTP is the NTLM client of one host attempt (see the file comment).
type ntlmHTTP struct {
	url        string // http(s)://host:port/wsman
	host       string // Host header
	addr       string // host:port to dial
	user       string // as sent in the AUTHENTICATE: "user" or a whole UPN
	domain     string // the domain of DOMAIN\user, else ""
	pass       string
	dial       func(ctx context.Context, network, addr string) (net.Conn, error)
	tls        *tls.Config   // HTTPS: messages in clear over TLS; nil: plain HTTP, every message sealed
	timeout    time.Duration // one exchange (request and answer); > OperationTimeout
	maxBody    int64
	logonToken chan struct{} // one handshake at a time until a logon succeeded
	pre        *preConn      // the connection Collect established before the credential's turn

	pool     connPool[*ntlmConn]
	mu       sync.Mutex
	scheme   string // "Negotiate" or "NTLM", once the listener's 401 was read
	loggedOn bool   // a logon succeeded in this host attempt
	logonErr error  // a logon failed: no other AUTHENTICATE is sent
	logons   int    // AUTHENTICATE messages sent (tests)
}

// splitNTLMUser returns the user and domain fields of the AUTHENTICATE_MESSAGE:
// DOMAIN\user is sent as user in DOMAIN; a UPN is sent whole with an empty domain (as
// Windows clients do: its suffix need not be a domain name); a bare user with an empty
// domain (the listener's domain).
func splitNTLMUser(u string) (user, domain string) {
	if d, name, ok := strings.Cut(u, `\`); ok {
		return name, d
	}
	return u, ""
}

// newNTLMHTTP returns the client of one host attempt: over HTTPS when tlsConf is set
// (the collector's, see baseTLS), else over plain HTTP with message encryption.
func newNTLMHTTP(url, addr, user, pass string, dial func(ctx context.Context, network, addr string) (net.Conn, error), tlsConf *tls.Config, timeout time.Duration, maxBody int64) *ntlmHTTP {
	u, d := splitNTLMUser(user)
	if dial == nil {
		dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	if timeout <= 0 {
		timeout = DefaultOperationTimeout + HTTPTimeoutMargin
	}
	return &ntlmHTTP{
		url: url, host: addr, addr: addr, user: u, domain: d, pass: pass, dial: dial, tls: tlsConf,
		timeout: timeout, maxBody: maxBody, logonToken: make(chan struct{}, 1),
	}
}

// ntlmConn is one TCP (or TLS) connection and, once authenticated over plain HTTP,
// its security context.
type ntlmConn struct {
	pooledConn
	session *ntlmssp.SecuritySession // plain HTTP only
}

// exchange sends req on c and reads the whole answer (see roundTrip).
func (t *ntlmHTTP) exchange(ctx context.Context, c *ntlmConn, req *http.Request) (*http.Response, []byte, error) {
	resp, body, err := roundTrip(ctx, &c.pooledConn, req, t.timeout, t.maxBody)
	if err != nil {
		return nil, nil, t.postErr(err)
	}
	return resp, body, nil
}

// postErr reports a network failure of a request as net/http's client does:
// Post "<url>": err (errors.Is and errors.As see err).
func (t *ntlmHTTP) postErr(err error) error {
	return &url.Error{Op: "Post", URL: t.url, Err: err}
}

// roundTrip sends req on c and reads the whole answer (at most maxBody bytes) under ctx
// and timeout (one exchange: request and answer). On error the connection must be
// closed.
func roundTrip(ctx context.Context, c *pooledConn, req *http.Request, timeout time.Duration, maxBody int64) (*http.Response, []byte, error) {
	conn, br, bw := c.conn, c.br, c.bw
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	fail := func(err error) (*http.Response, []byte, error) {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, err
	}
	if err := req.Write(bw); err != nil {
		return fail(err)
	}
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return fail(err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	_ = resp.Body.Close()
	if err != nil {
		return fail(fmt.Errorf("read response: %w", err))
	}
	if int64(len(body)) > maxBody {
		return nil, nil, fmt.Errorf("%w: response larger than %d bytes", ErrProtocol, maxBody)
	}
	_ = conn.SetDeadline(time.Time{})
	return resp, body, nil
}

// newRequest builds a POST to the listener; body nil is an empty body.
func (t *ntlmHTTP) newRequest(ctx context.Context, body []byte, contentType, auth string) (*http.Request, error) {
	return newPost(ctx, t.url, t.host, body, contentType, auth)
}

// newPost builds a POST to url with the Host header host; body nil is an empty body,
// auth "" sends no Authorization header.
func newPost(ctx context.Context, url, host string, body []byte, contentType, auth string) (*http.Request, error) {
	var r io.Reader = http.NoBody
	if len(body) > 0 {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, r)
	if err != nil {
		return nil, fmt.Errorf("new request: %w", err)
	}
	req.Host = host
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "rdsaudit")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return req, nil
}

// errContextLost: the listener answered 401 on a connection whose logon succeeded: it
// no longer accepts its context (not a failed logon).
var errContextLost = fmt.Errorf("%w: the listener refused a request on an authenticated connection (http status 401)", ErrProtocol)

// Post sends one SOAP request on an authenticated connection (sealed over plain HTTP)
// and returns the answer of a 200, or the fault / HTTP error.
func (t *ntlmHTTP) Post(ctx context.Context, reqText string) (string, error) {
	if t.tls != nil {
		return t.postTLS(ctx, reqText)
	}
	c, _, _, err := t.conn(ctx, nil)
	if err != nil {
		return "", err
	}
	sealed, err := sealMessage(c.session, []byte(reqText))
	if err != nil {
		c.close()
		return "", err
	}
	req, err := t.newRequest(ctx, sealed, encContentType, "")
	if err != nil {
		c.close()
		return "", err
	}
	resp, body, err := t.exchange(ctx, c, req)
	if err != nil {
		c.close()
		return "", err
	}
	ct := resp.Header.Get("Content-Type")
	if !isEncrypted(ct) {
		c.close()
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			return "", errContextLost
		case http.StatusOK:
			return "", fmt.Errorf("%w: unencrypted answer to an encrypted request (content type %q): not used", ErrProtocol, ct)
		}
		return "", &HTTPError{Status: resp.StatusCode, ContentType: ct}
	}
	plain, err := unsealMessage(c.session, body)
	if err != nil {
		c.close()
		return "", err
	}
	t.pool.put(c, resp)
	if resp.StatusCode != http.StatusOK {
		if f := parseFault(string(plain), resp.StatusCode); f != nil {
			return "", f
		}
		return "", &HTTPError{Status: resp.StatusCode, ContentType: ct}
	}
	return string(plain), nil
}

// postTLS is Post over HTTPS: the message in clear, on a new connection with its
// AUTHENTICATE, else on an idle authenticated one.
func (t *ntlmHTTP) postTLS(ctx context.Context, reqText string) (string, error) {
	msg := []byte(reqText)
	c, resp, body, err := t.conn(ctx, msg)
	if err != nil {
		return "", err
	}
	if resp == nil { // an idle authenticated connection
		req, err := t.newRequest(ctx, msg, soapType, "")
		if err != nil {
			c.close()
			return "", err
		}
		if resp, body, err = t.exchange(ctx, c, req); err != nil {
			c.close()
			return "", err
		}
		if resp.StatusCode == http.StatusUnauthorized {
			c.close()
			return "", errContextLost
		}
	}
	t.pool.put(c, resp)
	return soapAnswer(resp.StatusCode, resp.Header.Get("Content-Type"), body)
}

// conn returns an authenticated connection: an idle one, else a new one. Over HTTPS
// a new connection's AUTHENTICATE carries first, and resp and body are its answer
// (nil for an idle connection, and always over plain HTTP).
func (t *ntlmHTTP) conn(ctx context.Context, first []byte) (c *ntlmConn, resp *http.Response, body []byte, err error) {
	for {
		t.mu.Lock()
		if t.logonErr != nil {
			err := t.logonErr
			t.mu.Unlock()
			return nil, nil, nil, err
		}
		loggedOn := t.loggedOn
		t.mu.Unlock()
		if t.pool.isClosed() {
			return nil, nil, nil, errors.New("ntlm transport closed")
		}
		if c, ok := t.pool.get(); ok {
			return c, nil, nil, nil
		}
		if loggedOn {
			return t.logon(ctx, first)
		}
		// Until one logon succeeded, one handshake at a time.
		select {
		case t.logonToken <- struct{}{}:
		case <-ctx.Done():
			return nil, nil, nil, ctx.Err()
		}
		t.mu.Lock()
		again := t.loggedOn || t.logonErr != nil
		t.mu.Unlock()
		again = again || t.pool.hasIdle()
		if again {
			<-t.logonToken
			continue
		}
		c, resp, body, err := t.logon(ctx, first)
		<-t.logonToken
		return c, resp, body, err
	}
}

// offeredScheme returns the scheme to use from a 401's WWW-Authenticate values:
// Negotiate (what WinRM offers) before NTLM; "" when neither is offered.
func offeredScheme(values []string) string {
	scheme := ""
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			s, _, _ := strings.Cut(strings.TrimSpace(part), " ")
			switch {
			case strings.EqualFold(s, "Negotiate"):
				return "Negotiate"
			case strings.EqualFold(s, "NTLM"):
				scheme = "NTLM"
			}
		}
	}
	return scheme
}

// challengeToken returns the NTLMSSP token of a "scheme <base64>" WWW-Authenticate
// value, nil if there is none.
func challengeToken(values []string, scheme string) []byte {
	for _, v := range values {
		s, data, ok := strings.Cut(strings.TrimSpace(v), " ")
		if !ok || !strings.EqualFold(s, scheme) {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(data))
		if err == nil && len(b) >= 24 && bytes.HasPrefix(b, []byte("NTLMSSP\x00")) && binary.LittleEndian.Uint32(b[8:12]) == 2 {
			return b
		}
	}
	return nil
}

// logon dials a connection and authenticates it (see the file comment). Over HTTPS
// the AUTHENTICATE carries first and its answer is returned with the connection.
func (t *ntlmHTTP) logon(ctx context.Context, first []byte) (_ *ntlmConn, _ *http.Response, _ []byte, err error) {
	dial := func() (*ntlmConn, error) {
		if nc := t.pre.take(); nc != nil {
			return &ntlmConn{pooledConn: newPooledConn(nc)}, nil
		}
		nc, err := dialListener(ctx, t.dial, t.addr, t.tls)
		if err != nil {
			return nil, t.postErr(err)
		}
		return &ntlmConn{pooledConn: newPooledConn(nc)}, nil
	}
	c, err := dial()
	if err != nil {
		return nil, nil, nil, err
	}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	t.mu.Lock()
	scheme := t.scheme
	t.mu.Unlock()
	if scheme == "" {
		// Which scheme, if any: an anonymous empty POST (no credentials).
		req, err := t.newRequest(ctx, nil, soapType, "")
		if err != nil {
			return nil, nil, nil, err
		}
		resp, _, err := t.exchange(ctx, c, req)
		if err != nil {
			return nil, nil, nil, err
		}
		if resp.StatusCode != http.StatusUnauthorized {
			return nil, nil, nil, fmt.Errorf("%w (the listener answered an anonymous request with http status %d)", ErrNTLMNotOffered, resp.StatusCode)
		}
		if scheme = offeredScheme(resp.Header.Values("WWW-Authenticate")); scheme == "" {
			return nil, nil, nil, ErrNTLMNotOffered
		}
		t.mu.Lock()
		t.scheme = scheme
		t.mu.Unlock()
		if resp.Close {
			nc, err := dial()
			if err != nil {
				return nil, nil, nil, err
			}
			c.close()
			c = nc
		}
	}
	client, err := ntlmssp.NewClient(ntlmssp.SetUserInfo(t.user, t.pass), ntlmssp.SetDomain(t.domain), ntlmssp.SetVersion(ntlmssp.DefaultVersion()))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("ntlm client: %w", err)
	}
	negotiate, err := client.Authenticate(nil, nil)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("ntlm negotiate: %w", err)
	}
	req, err := t.newRequest(ctx, nil, soapType, scheme+" "+base64.StdEncoding.EncodeToString(negotiate))
	if err != nil {
		return nil, nil, nil, err
	}
	resp, _, err := t.exchange(ctx, c, req)
	if err != nil {
		return nil, nil, nil, err
	}
	challenge := challengeToken(resp.Header.Values("WWW-Authenticate"), scheme)
	if resp.StatusCode != http.StatusUnauthorized || challenge == nil {
		return nil, nil, nil, errNTLMRefused
	}
	if resp.Close {
		return nil, nil, nil, fmt.Errorf("%w: the listener closed the connection after its NTLM CHALLENGE", ErrProtocol)
	}
	const need = ntlmFlagSign | ntlmFlagSeal | ntlmFlagESS
	if t.tls == nil && binary.LittleEndian.Uint32(challenge[20:24])&need != need {
		return nil, nil, nil, errNoSealing
	}

	// The AUTHENTICATE: the one logon attempt. From here on, any failure before a
	// logon succeeded is final for this host attempt.
	t.mu.Lock()
	if t.logonErr != nil || t.pool.isClosed() {
		err := t.logonErr
		t.mu.Unlock()
		if err == nil {
			err = errors.New("ntlm transport closed")
		}
		return nil, nil, nil, err
	}
	t.logons++
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if err == nil {
			t.loggedOn = true
		} else if !t.loggedOn && t.logonErr == nil {
			t.logonErr = err // also when ctx ended: the listener may have counted it
		}
	}()
	authenticate, err := client.Authenticate(challenge, nil)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: ntlm authenticate: %v", ErrProtocol, err)
	}
	var body []byte // over plain HTTP the AUTHENTICATE carries no message: it could not be sealed yet
	if t.tls != nil {
		body = first
	} else if client.SecuritySession() == nil {
		return nil, nil, nil, errNoSealing
	}
	req, err = t.newRequest(ctx, body, soapType, scheme+" "+base64.StdEncoding.EncodeToString(authenticate))
	if err != nil {
		return nil, nil, nil, err
	}
	resp, answer, err := t.exchange(ctx, c, req)
	if err != nil {
		return nil, nil, nil, err
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, nil, nil, fmt.Errorf("ntlm logon refused: %w", &HTTPError{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type")})
	case t.tls != nil:
		// Logged on; the answer is the first message's, whatever its status.
		return c, resp, answer, nil
	case resp.StatusCode != http.StatusOK:
		return nil, nil, nil, &HTTPError{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type")}
	case resp.Close:
		return nil, nil, nil, fmt.Errorf("%w: the listener closed the connection after the NTLM logon", ErrProtocol)
	}
	c.session = client.SecuritySession()
	return c, nil, nil, nil
}

// close closes the idle connections; connections in use are closed when returned.
func (t *ntlmHTTP) close() { t.pool.close() }

func isEncrypted(contentType string) bool {
	ct := strings.ToLower(contentType)
	return strings.HasPrefix(ct, "multipart/encrypted") && strings.Contains(ct, strings.ToLower(`protocol="`+encProtocol+`"`))
}

// sealMessage wraps a SOAP message as WinRM expects (MS-WSMV 2.2.9.1.1):
//
//	--Encrypted Boundary\r\n
//	\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n
//	\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=N\r\n
//	--Encrypted Boundary\r\n
//	\tContent-Type: application/octet-stream\r\n
//	<uint32 LE signature length><signature><sealed message>--Encrypted Boundary--\r\n
func sealMessage(s *ntlmssp.SecuritySession, msg []byte) ([]byte, error) {
	if s == nil {
		return nil, errNoSealing
	}
	sealed, sig, err := s.Wrap(msg)
	if err != nil {
		return nil, fmt.Errorf("ntlm seal: %w", err)
	}
	if len(sig) != 16 || bytes.Equal(sealed, msg) && len(msg) > 0 {
		return nil, errNoSealing // never send the message in clear
	}
	var b bytes.Buffer
	b.WriteString(encBoundary + "\r\n\tContent-Type: " + encProtocol + "\r\n")
	b.WriteString("\tOriginalContent: type=" + soapType + ";Length=" + strconv.Itoa(len(msg)) + "\r\n")
	b.WriteString(encBoundary + "\r\n\tContent-Type: application/octet-stream\r\n")
	_ = binary.Write(&b, binary.LittleEndian, uint32(len(sig)))
	b.Write(sig)
	b.Write(sealed)
	b.WriteString(encBoundary + "--\r\n")
	return b.Bytes(), nil
}

// unsealMessage reads a sealed answer: the header part's Length says how many sealed
// bytes follow the signature (RC4 keeps the length), so the payload is cut by
// position, not by searching the boundary in ciphertext. The signature and sequence
// number are verified by the SecuritySession.
func unsealMessage(s *ntlmssp.SecuritySession, body []byte) ([]byte, error) {
	bad := func(why string) ([]byte, error) {
		return nil, fmt.Errorf("%w: encrypted answer: %s", ErrProtocol, why)
	}
	rest, ok := bytes.CutPrefix(body, []byte(encBoundary+"\r\n"))
	if !ok {
		return bad("no opening boundary")
	}
	hdr, rest, ok := bytes.Cut(rest, []byte(encBoundary+"\r\n"))
	if !ok {
		return bad("no second part")
	}
	if !bytes.Contains(bytes.ToLower(hdr), bytes.ToLower([]byte("Content-Type: "+encProtocol))) {
		return bad("first part is not " + encProtocol)
	}
	_, lenText, ok := bytes.Cut(hdr, []byte("Length="))
	if !ok {
		return bad("no Length")
	}
	if i := bytes.IndexAny(lenText, ";\r\n"); i >= 0 {
		lenText = lenText[:i]
	}
	length, err := strconv.Atoi(string(bytes.TrimSpace(lenText)))
	if err != nil || length < 0 {
		return bad("bad Length")
	}
	line, payload, ok := bytes.Cut(rest, []byte("\r\n"))
	if !ok || !bytes.Contains(bytes.ToLower(line), []byte("application/octet-stream")) {
		return bad("no octet-stream part")
	}
	if len(payload) < 4 {
		return bad("short payload")
	}
	sl := int(binary.LittleEndian.Uint32(payload))
	if sl != 16 || len(payload) < 4+sl+length {
		return bad("bad signature or payload length")
	}
	sig, sealed, trailer := payload[4:4+sl], payload[4+sl:4+sl+length], payload[4+sl+length:]
	if !bytes.HasPrefix(trailer, []byte(encBoundary+"--")) {
		return bad("no closing boundary after Length bytes")
	}
	msg, err := s.Unwrap(sealed, sig)
	if err != nil {
		return nil, fmt.Errorf("%w: encrypted answer: %v", ErrProtocol, err)
	}
	return msg, nil
}
