package winrmtest

// NTLM session security (MS-NLMP 3.4) with extended session security, and WinRM's
// HTTP message encryption over it (MS-WSMV 2.2.9.1): a request body
//
//	--Encrypted Boundary\r\n
//	\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n
//	\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=N\r\n
//	--Encrypted Boundary\r\n
//	\tContent-Type: application/octet-stream\r\n
//	<uint32 LE signature length><signature><sealed message>--Encrypted Boundary--\r\n
//
// sealed with the client's keys; the answer is sealed the same way with the server's.

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/rc4"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

const (
	encProtocol    = "application/HTTP-SPNEGO-session-encrypted"
	encContentType = `multipart/encrypted;protocol="` + encProtocol + `";boundary="Encrypted Boundary"`
	encBoundary    = "--Encrypted Boundary"
)

// session is the server end of an NTLM security context.
type session struct {
	mu         sync.Mutex
	flags      uint32
	inSignKey  []byte // client-to-server
	outSignKey []byte // server-to-client
	in, out    *rc4.Cipher
	inSeq      uint32
	outSeq     uint32
}

func newServerSession(flags uint32, exported []byte) *session {
	if flags&flagESS == 0 {
		return nil // NTLMv1-style session security is not offered
	}
	sealKey := func(magic string) []byte {
		k := exported
		switch {
		case flags&flag128 != 0:
		case flags&flag56 != 0:
			k = k[:7]
		default:
			k = k[:5]
		}
		s := md5.Sum(append(append([]byte(nil), k...), magic...))
		return s[:]
	}
	signKey := func(magic string) []byte {
		s := md5.Sum(append(append([]byte(nil), exported...), magic...))
		return s[:]
	}
	in, _ := rc4.NewCipher(sealKey("session key to client-to-server sealing key magic constant\x00"))
	out, _ := rc4.NewCipher(sealKey("session key to server-to-client sealing key magic constant\x00"))
	return &session{
		flags:      flags,
		inSignKey:  signKey("session key to client-to-server signing key magic constant\x00"),
		outSignKey: signKey("session key to server-to-client signing key magic constant\x00"),
		in:         in, out: out,
	}
}

// checksum is the 8-byte ESS checksum, RC4-encrypted with the sealing handle under
// KEY_EXCH.
func (s *session) checksum(key []byte, seq uint32, msg []byte, h *rc4.Cipher) []byte {
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], seq)
	c := hmacMD5(key, n[:], msg)[:8]
	if s.flags&flagKeyExch != 0 {
		h.XORKeyStream(c, c)
	}
	return c
}

// unseal decrypts a client message and checks its signature and sequence number.
func (s *session) unseal(sealed, sig []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(sig) != 16 || binary.LittleEndian.Uint32(sig) != 1 {
		return nil, errors.New("bad NTLM signature")
	}
	msg := make([]byte, len(sealed))
	s.in.XORKeyStream(msg, sealed)
	want := s.checksum(s.inSignKey, s.inSeq, msg, s.in)
	if !bytes.Equal(sig[4:12], want) {
		return nil, errors.New("NTLM signature checksum mismatch")
	}
	if binary.LittleEndian.Uint32(sig[12:]) != s.inSeq {
		return nil, errors.New("NTLM sequence number mismatch")
	}
	s.inSeq++
	return msg, nil
}

// seal encrypts a server message and signs it.
func (s *session) seal(msg []byte) (sealed, sig []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sealed = make([]byte, len(msg))
	s.out.XORKeyStream(sealed, msg)
	sig = make([]byte, 16)
	binary.LittleEndian.PutUint32(sig, 1)
	copy(sig[4:12], s.checksum(s.outSignKey, s.outSeq, msg, s.out))
	binary.LittleEndian.PutUint32(sig[12:], s.outSeq)
	s.outSeq++
	return sealed, sig
}

// decryptBody unwraps a multipart/encrypted request body.
func (s *session) decryptBody(body []byte) ([]byte, error) {
	parts := bytes.Split(body, []byte(encBoundary+"\r\n"))
	var nonEmpty [][]byte
	for _, p := range parts {
		if len(p) > 0 {
			nonEmpty = append(nonEmpty, p)
		}
	}
	if len(nonEmpty) != 2 {
		return nil, fmt.Errorf("encrypted body: %d parts, want 2", len(nonEmpty))
	}
	hdr, payload := nonEmpty[0], nonEmpty[1]
	if !bytes.Contains(hdr, []byte("Content-Type: "+encProtocol)) {
		return nil, errors.New("encrypted body: not " + encProtocol)
	}
	_, lenText, ok := bytes.Cut(hdr, []byte("Length="))
	if !ok {
		return nil, errors.New("encrypted body: no Length")
	}
	length, err := strconv.Atoi(string(bytes.TrimSpace(lenText)))
	if err != nil {
		return nil, fmt.Errorf("encrypted body: Length: %w", err)
	}
	payload, ok = bytes.CutSuffix(payload, []byte(encBoundary+"--\r\n"))
	if !ok {
		return nil, errors.New("encrypted body: no closing boundary")
	}
	payload, ok = bytes.CutPrefix(payload, []byte("\tContent-Type: application/octet-stream\r\n"))
	if !ok {
		return nil, errors.New("encrypted body: no octet-stream part")
	}
	if len(payload) < 4 {
		return nil, errors.New("encrypted body: short payload")
	}
	sl := int(binary.LittleEndian.Uint32(payload))
	if sl != 16 || len(payload) < 4+sl {
		return nil, errors.New("encrypted body: bad signature length")
	}
	msg, err := s.unseal(payload[4+sl:], payload[4:4+sl])
	if err != nil {
		return nil, err
	}
	if len(msg) != length {
		return nil, fmt.Errorf("encrypted body: %d bytes, Length says %d", len(msg), length)
	}
	return msg, nil
}

// encryptBody wraps a SOAP answer as Windows does.
func (s *session) encryptBody(msg []byte) []byte {
	sealed, sig := s.seal(msg)
	var b bytes.Buffer
	b.WriteString(encBoundary + "\r\n\tContent-Type: " + encProtocol + "\r\n")
	b.WriteString("\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=" + strconv.Itoa(len(msg)) + "\r\n")
	b.WriteString(encBoundary + "\r\n\tContent-Type: application/octet-stream\r\n")
	_ = binary.Write(&b, binary.LittleEndian, uint32(len(sig)))
	b.Write(sig)
	b.Write(sealed)
	b.WriteString(encBoundary + "--\r\n")
	return b.Bytes()
}

// unsealRequest handles a request of an NTLM-authenticated connection over plain HTTP,
// as a listener with AllowUnencrypted=false: every request must carry an NTLM token
// or be sealed. The request that completes the logon with an empty body (the client
// authenticating its connection before sending sealed messages) is answered 200
// without content; any other message that is not multipart/encrypted, or does not
// unseal and verify with the connection's session, is refused with 401. Otherwise it
// returns the plain SOAP request and a writer that seals the answer (flush it when
// done).
func (h *Handler) unsealRequest(w http.ResponseWriter, r *http.Request, body []byte, logon bool) (*sealingWriter, []byte, bool) {
	ct := r.Header.Get("Content-Type")
	encrypted := strings.HasPrefix(strings.ToLower(ct), "multipart/encrypted") && strings.Contains(ct, `protocol="`+encProtocol+`"`)
	switch {
	case len(body) == 0 && !encrypted && logon:
		w.Header().Set("Server", "Microsoft-HTTPAPI/2.0")
		w.WriteHeader(http.StatusOK)
		return nil, nil, false
	case !encrypted:
		if len(body) > 0 {
			h.count("Unencrypted") // a SOAP message in clear
		}
		h.unauthorized(w, *h.faults.Load())
		return nil, nil, false
	}
	cs := connFrom(r)
	var sess *session
	if cs != nil {
		cs.mu.Lock()
		sess = cs.session
		cs.mu.Unlock()
	}
	if sess == nil {
		h.count("DecryptFailed")
		h.unauthorized(w, *h.faults.Load())
		return nil, nil, false
	}
	plain, err := sess.decryptBody(body)
	if err != nil {
		_ = err // a wrong signature, sequence number or length
		h.count("DecryptFailed")
		h.unauthorized(w, *h.faults.Load())
		return nil, nil, false
	}
	h.count("Encrypted")
	return &sealingWriter{ResponseWriter: w, sess: sess}, plain, true
}

// sealingWriter buffers an answer and sends it sealed.
type sealingWriter struct {
	http.ResponseWriter
	sess     *session
	status   int
	buf      bytes.Buffer
	hijacked bool
}

func (s *sealingWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
}

func (s *sealingWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.buf.Write(b)
}

func (s *sealingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("not a hijacker")
	}
	s.hijacked = true
	return hj.Hijack()
}

func (s *sealingWriter) flush() {
	if s.hijacked || s.status == 0 {
		return // nothing answered (the request was abandoned or the connection reset)
	}
	out := s.sess.encryptBody(s.buf.Bytes())
	s.ResponseWriter.Header().Set("Content-Type", encContentType)
	s.ResponseWriter.Header().Set("Content-Length", strconv.Itoa(len(out)))
	s.ResponseWriter.WriteHeader(s.status)
	_, _ = s.ResponseWriter.Write(out)
}
