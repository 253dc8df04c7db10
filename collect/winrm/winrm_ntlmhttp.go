package winrm

// NTLM over plain HTTP with WinRM message encryption (MS-WSMV 2.2.9.1), our own client.
//
// masterzen's winrm.Encryption is not used: when its encrypted handshake is refused it
// retries through a plain go-ntlmssp transporter, which logs on a second time with
// the same password (two failed logons per wrong-password attempt) and sends the SOAP
// message unencrypted; its HTTP takes no context, ignores our dialer and reads the
// proxy from the environment.
//
// ntlmHTTP speaks HTTP/1.1 itself on connections it dials, so that the handshake and
// the sealed messages of a security context are guaranteed to travel on the same TCP
// connection (a Windows listener binds the NTLM context to the connection; so does
// winrmtest):
//
//  1. once per host attempt, an anonymous empty POST: its 401 must offer Negotiate or
//     NTLM (else ErrNTLMNotOffered, nothing sent);
//  2. per connection, NEGOTIATE (empty body) -> 401 with a CHALLENGE that must grant
//     signing, sealing and extended session security (else we stop before the
//     AUTHENTICATE: no credentials sent), then AUTHENTICATE (empty body) -> 200;
//  3. every SOAP message sealed as multipart/encrypted with the connection's
//     SecuritySession (bodgit/ntlmssp); an answer that is not sealed is never used.
//
// Lockout: until one logon succeeded, at most one handshake runs at a time and at most
// one AUTHENTICATE is ever sent: a refused logon is remembered (logonErr) and every
// later request of the host attempt fails with it. A wrong password therefore costs
// exactly one failed logon per host attempt. Basic is never sent.
//
// Concurrency: masterzen may run Receive while Send, Signal or Delete go out. Each
// request takes an idle authenticated connection or opens (and authenticates) a new
// one; a connection carries one request at a time, so its sequence numbers stay in
// order. Connections go back to the pool after a complete answer.
//
// bodgit/ntlmssp's own http.Client was not used: it keeps one security context for a
// pooled http.Client (concurrent requests may leave on a connection the context does
// not belong to), understands only the Negotiate scheme, and sends the request body
// unsealed during the handshake.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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

// ntlmHTTP is the NTLM message-encryption client of one host attempt.
type ntlmHTTP struct {
	url        string // http://host:port/wsman
	host       string // Host header
	addr       string // host:port to dial
	user       string // as sent in the AUTHENTICATE: "user" or a whole UPN
	domain     string // the domain of DOMAIN\user, else ""
	pass       string
	dial       func(ctx context.Context, network, addr string) (net.Conn, error)
	timeout    time.Duration // one exchange (request and answer); > OperationTimeout
	maxBody    int64
	logonToken chan struct{} // one handshake at a time until a logon succeeded

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

func newNTLMHTTP(url, addr, user, pass string, dial func(ctx context.Context, network, addr string) (net.Conn, error), timeout time.Duration, maxBody int64) *ntlmHTTP {
	u, d := splitNTLMUser(user)
	if dial == nil {
		dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	if timeout <= 0 {
		timeout = DefaultOperationTimeout + HTTPTimeoutMargin
	}
	return &ntlmHTTP{
		url: url, host: addr, addr: addr, user: u, domain: d, pass: pass, dial: dial,
		timeout: timeout, maxBody: maxBody, logonToken: make(chan struct{}, 1),
	}
}

// ntlmConn is one TCP connection and, once authenticated, its security context.
type ntlmConn struct {
	pooledConn
	session *ntlmssp.SecuritySession
}

// exchange sends req on c and reads the whole answer (see roundTrip).
func (t *ntlmHTTP) exchange(ctx context.Context, c *ntlmConn, req *http.Request) (*http.Response, []byte, error) {
	return roundTrip(ctx, c.conn, c.br, req, t.timeout, t.maxBody)
}

// roundTrip sends req on conn and reads the whole answer (at most maxBody bytes) from
// br under ctx and timeout (one exchange: request and answer). On error the connection
// must be closed.
func roundTrip(ctx context.Context, conn net.Conn, br *bufio.Reader, req *http.Request, timeout time.Duration, maxBody int64) (*http.Response, []byte, error) {
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
	bw := bufio.NewWriter(conn)
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

// Post seals one SOAP request, sends it on an authenticated connection and returns
// the unsealed answer of a 200, or the fault / HTTP error.
func (t *ntlmHTTP) Post(ctx context.Context, reqText string) (string, error) {
	c, err := t.conn(ctx)
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
			// The logon of this connection succeeded: the listener no longer accepts
			// its context (not a failed logon).
			return "", fmt.Errorf("%w: the listener refused a sealed message on an authenticated connection (http status 401)", ErrProtocol)
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

// conn returns an authenticated connection: an idle one, else a new one.
func (t *ntlmHTTP) conn(ctx context.Context) (*ntlmConn, error) {
	for {
		t.mu.Lock()
		if t.logonErr != nil {
			err := t.logonErr
			t.mu.Unlock()
			return nil, err
		}
		loggedOn := t.loggedOn
		t.mu.Unlock()
		if t.pool.isClosed() {
			return nil, errors.New("ntlm transport closed")
		}
		if c, ok := t.pool.get(); ok {
			return c, nil
		}
		if loggedOn {
			return t.logon(ctx)
		}
		// Until one logon succeeded, one handshake at a time.
		select {
		case t.logonToken <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		t.mu.Lock()
		again := t.loggedOn || t.logonErr != nil
		t.mu.Unlock()
		again = again || t.pool.hasIdle()
		if again {
			<-t.logonToken
			continue
		}
		c, err := t.logon(ctx)
		<-t.logonToken
		return c, err
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

// logon dials a connection and authenticates it (see the file comment).
func (t *ntlmHTTP) logon(ctx context.Context) (_ *ntlmConn, err error) {
	dial := func() (*ntlmConn, error) {
		nc, err := t.dial(ctx, "tcp", t.addr)
		if err != nil {
			return nil, err
		}
		return &ntlmConn{pooledConn: newPooledConn(nc)}, nil
	}
	c, err := dial()
	if err != nil {
		return nil, err
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
			return nil, err
		}
		resp, _, err := t.exchange(ctx, c, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusUnauthorized {
			return nil, fmt.Errorf("%w (the listener answered an anonymous request with http status %d)", ErrNTLMNotOffered, resp.StatusCode)
		}
		if scheme = offeredScheme(resp.Header.Values("WWW-Authenticate")); scheme == "" {
			return nil, ErrNTLMNotOffered
		}
		t.mu.Lock()
		t.scheme = scheme
		t.mu.Unlock()
		if resp.Close {
			nc, err := dial()
			if err != nil {
				return nil, err
			}
			c.close()
			c = nc
		}
	}
	client, err := ntlmssp.NewClient(ntlmssp.SetUserInfo(t.user, t.pass), ntlmssp.SetDomain(t.domain), ntlmssp.SetVersion(ntlmssp.DefaultVersion()))
	if err != nil {
		return nil, fmt.Errorf("ntlm client: %w", err)
	}
	negotiate, err := client.Authenticate(nil, nil)
	if err != nil {
		return nil, fmt.Errorf("ntlm negotiate: %w", err)
	}
	req, err := t.newRequest(ctx, nil, soapType, scheme+" "+base64.StdEncoding.EncodeToString(negotiate))
	if err != nil {
		return nil, err
	}
	resp, _, err := t.exchange(ctx, c, req)
	if err != nil {
		return nil, err
	}
	challenge := challengeToken(resp.Header.Values("WWW-Authenticate"), scheme)
	if resp.StatusCode != http.StatusUnauthorized || challenge == nil {
		return nil, errNTLMRefused
	}
	if resp.Close {
		return nil, fmt.Errorf("%w: the listener closed the connection after its NTLM CHALLENGE", ErrProtocol)
	}
	const need = ntlmFlagSign | ntlmFlagSeal | ntlmFlagESS
	if binary.LittleEndian.Uint32(challenge[20:24])&need != need {
		return nil, errNoSealing
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
		return nil, err
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
		return nil, fmt.Errorf("%w: ntlm authenticate: %v", ErrProtocol, err)
	}
	if client.SecuritySession() == nil {
		return nil, errNoSealing
	}
	req, err = t.newRequest(ctx, nil, soapType, scheme+" "+base64.StdEncoding.EncodeToString(authenticate))
	if err != nil {
		return nil, err
	}
	resp, _, err = t.exchange(ctx, c, req)
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, fmt.Errorf("ntlm logon refused: %w", &HTTPError{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type")})
	case resp.StatusCode != http.StatusOK:
		return nil, &HTTPError{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type")}
	case resp.Close:
		return nil, fmt.Errorf("%w: the listener closed the connection after the NTLM logon", ErrProtocol)
	}
	c.session = client.SecuritySession()
	return c, nil
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
