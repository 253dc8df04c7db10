package winrmtest

// Server side of NTLMv2 (MS-NLMP) over HTTP, as a Windows WinRM listener with Basic
// disabled: raw NTLMSSP tokens in "Authorization: Negotiate|NTLM <base64>", one
// handshake per TCP connection (NEGOTIATE -> 401 with a CHALLENGE -> AUTHENTICATE), the
// connection authenticated afterwards. The AUTHENTICATE_MESSAGE is verified for real:
// NTOWFv2 from the account's password, NTProofStr over the server challenge and the
// client's blob, the MIC when the client says it sent one. NTLMv1, LM and anonymous
// responses are refused. The password is looked up by the user and domain the client
// sent, but the hash is always computed from exactly those fields, as a DC does.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/rc4"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf16"

	"golang.org/x/crypto/md4" //nolint:staticcheck // NTLM is defined over MD4
)

// NTLM negotiate flags (MS-NLMP 2.2.2.5) the simulator reads or sets.
const (
	flagUnicode      = 0x00000001
	flagOEM          = 0x00000002
	flagRequestTgt   = 0x00000004
	flagSign         = 0x00000010
	flagSeal         = 0x00000020
	flagLMKey        = 0x00000080
	flagNTLM         = 0x00000200
	flagAnonymous    = 0x00000800
	flagAlwaysSign   = 0x00008000
	flagTargetDomain = 0x00010000
	flagESS          = 0x00080000 // extended session security
	flagTargetInfo   = 0x00800000
	flagVersion      = 0x02000000
	flag128          = 0x20000000
	flagKeyExch      = 0x40000000
	flag56           = 0x80000000
)

// AV pair ids (MS-NLMP 2.2.2.1).
const (
	avEOL           = 0
	avNbComputer    = 1
	avNbDomain      = 2
	avDNSComputer   = 3
	avDNSDomain     = 4
	avDNSTree       = 5
	avFlags         = 6
	avTimestamp     = 7
	avFlagMICNeeded = 0x2
)

// ntlmSignature starts every NTLMSSP message.
const ntlmSignature = "NTLMSSP\x00"

// ntlmMaxSkew is how far the client's blob timestamp may be from the server's clock
// (Windows' MaxLifetime for NTLMv2 responses is 36 hours).
const ntlmMaxSkew = 36 * time.Hour

// NTLMFailure records an AUTHENTICATE_MESSAGE the simulator refused.
type NTLMFailure struct {
	Host   string
	User   string // user name as sent
	Domain string // domain as sent
	Reason string // e.g. "wrong NTProofStr (wrong password)", "NTLMv1 response"
}

// ntlmIdentity is the listener's identity in CHALLENGE_MESSAGEs.
type ntlmIdentity struct {
	domain      string // NetBIOS domain (TargetName, MsvAvNbDomainName)
	dnsDomain   string
	computer    string // NetBIOS computer name
	dnsComputer string
}

// connState is the NTLM state of one TCP connection (http.Server.ConnContext).
type connState struct {
	mu            sync.Mutex
	negotiate     []byte // NEGOTIATE_MESSAGE of the pending handshake
	challenge     []byte // CHALLENGE_MESSAGE sent (nil: no handshake pending)
	serverChal    []byte
	authenticated bool
	user          string   // DOMAIN\user (as sent) once authenticated
	session       *session // sealing keys (message encryption over HTTP)
}

type connStateKey struct{}

// authUser is the authenticated DOMAIN\user of the connection.
func (cs *connState) authUser() string {
	if cs == nil {
		return ""
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.user
}

func withConnState(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connStateKey{}, &connState{})
}

func connFrom(r *http.Request) *connState {
	cs, _ := r.Context().Value(connStateKey{}).(*connState)
	return cs
}

// ntlmToken returns the scheme and decoded NTLMSSP token of an Authorization header
// "Negotiate <b64>" or "NTLM <b64>" (nil token when there is none).
func ntlmToken(r *http.Request) (scheme string, token []byte) {
	for _, v := range r.Header.Values("Authorization") {
		s, data, _ := strings.Cut(strings.TrimSpace(v), " ")
		if !strings.EqualFold(s, "Negotiate") && !strings.EqualFold(s, "NTLM") {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(data))
		if err != nil || len(b) < 12 || string(b[:8]) != ntlmSignature {
			return s, []byte{} // present but not an NTLMSSP token
		}
		return s, b
	}
	return "", nil
}

// authenticateNTLM runs the server side of the handshake. It returns true when the
// request may be served (the connection is authenticated); otherwise it has answered.
// logon is true when this request carried the AUTHENTICATE_MESSAGE.
func (h *Handler) authenticateNTLM(w http.ResponseWriter, r *http.Request, f Faults) (ok, logon bool) {
	cs := connFrom(r)
	scheme, tok := ntlmToken(r)
	if cs == nil { // not served by Server/Fleet: no connection to keep state on
		h.unauthorized(w, f)
		return false, false
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if tok == nil {
		if cs.authenticated {
			return true, false
		}
		h.unauthorized(w, f)
		return false, false
	}
	if len(tok) < 12 {
		h.unauthorized(w, f)
		return false, false
	}
	switch binary.LittleEndian.Uint32(tok[8:12]) {
	case 1: // NEGOTIATE: (re)start the handshake on this connection
		cs.authenticated, cs.user, cs.session = false, "", nil
		chal, serverChal, err := h.challengeFor(tok)
		if err != nil {
			h.unauthorized(w, f)
			return false, false
		}
		cs.negotiate, cs.challenge, cs.serverChal = tok, chal, serverChal
		h.count("NTLMChallenge")
		h.count("NTLMChallenge:" + scheme)
		w.Header()["WWW-Authenticate"] = []string{scheme + " " + base64.StdEncoding.EncodeToString(chal)}
		w.Header()["Server"] = []string{"Microsoft-HTTPAPI/2.0"}
		w.Header()["Content-Type"] = nil
		w.WriteHeader(http.StatusUnauthorized)
		return false, false
	case 3: // AUTHENTICATE
		neg, chal, serverChal := cs.negotiate, cs.challenge, cs.serverChal
		cs.negotiate, cs.challenge, cs.serverChal = nil, nil, nil // a challenge answers once
		res := h.verifyAuthenticate(tok, neg, chal, serverChal)
		if res.err == nil && f.Unauthorized {
			res.err = errors.New("logon refused (Unauthorized fault)")
		}
		if res.err != nil {
			cs.authenticated = false
			h.ntlmFailed(NTLMFailure{Host: h.Host, User: res.user, Domain: res.domain, Reason: res.err.Error()})
			h.unauthorized(w, f)
			return false, false
		}
		cs.authenticated, cs.user = true, res.domain+`\`+res.user
		if res.domain == "" {
			cs.user = res.user
		}
		cs.session = res.session
		h.count("NTLMAuthenticated")
		h.count("NTLMAuthenticated:" + cs.user)
		return true, true
	}
	h.unauthorized(w, f)
	return false, false
}

// challengeFor builds the CHALLENGE_MESSAGE answering a NEGOTIATE_MESSAGE.
func (h *Handler) challengeFor(neg []byte) (msg, serverChal []byte, err error) {
	if len(neg) < 16 {
		return nil, nil, errors.New("short NEGOTIATE_MESSAGE")
	}
	cf := binary.LittleEndian.Uint32(neg[12:16])
	// Unicode strings when the client offers them, else OEM (MS-NLMP 3.2.5.1.1;
	// ntlm-auth, under pywinrm, offers OEM alone in its NEGOTIATE).
	charset := uint32(flagUnicode)
	switch {
	case cf&flagUnicode != 0:
	case cf&flagOEM != 0:
		charset = flagOEM
	default:
		return nil, nil, errors.New("client offers neither Unicode nor OEM strings")
	}
	// Windows answers with the client's flags it supports; never LM_KEY (v1).
	flags := charset | flagRequestTgt | flagNTLM | flagTargetDomain | flagTargetInfo | flagVersion
	flags |= cf & (flagSign | flagSeal | flagAlwaysSign | flagESS | flag128 | flag56 | flagKeyExch)
	serverChal = make([]byte, 8)
	if _, err := rand.Read(serverChal); err != nil {
		return nil, nil, err
	}
	id := h.ntlmID
	var ti bytes.Buffer
	for _, av := range []struct {
		id uint16
		v  []byte
	}{
		{avNbDomain, utf16le(id.domain)},
		{avNbComputer, utf16le(id.computer)},
		{avDNSDomain, utf16le(id.dnsDomain)},
		{avDNSComputer, utf16le(id.dnsComputer)},
		{avDNSTree, utf16le(id.dnsDomain)},
		{avTimestamp, fileTime(time.Now())},
		{avEOL, nil},
	} {
		_ = binary.Write(&ti, binary.LittleEndian, av.id)
		_ = binary.Write(&ti, binary.LittleEndian, uint16(len(av.v)))
		ti.Write(av.v)
	}
	target := utf16le(id.domain)
	if charset == flagOEM {
		target = []byte(id.domain) // AV pairs stay Unicode
	}
	const hdr = 56
	var b bytes.Buffer
	b.WriteString(ntlmSignature)
	_ = binary.Write(&b, binary.LittleEndian, uint32(2))
	writeVarField(&b, len(target), hdr)
	_ = binary.Write(&b, binary.LittleEndian, flags)
	b.Write(serverChal)
	b.Write(make([]byte, 8)) // reserved
	writeVarField(&b, ti.Len(), hdr+len(target))
	b.Write([]byte{10, 0, 0x7c, 0x4f, 0, 0, 0, 15}) // version 10.0.20348, NTLMSSP_REVISION_W2K3
	b.Write(target)
	b.Write(ti.Bytes())
	return b.Bytes(), serverChal, nil
}

type authResult struct {
	user, domain string
	session      *session
	err          error
}

// verifyAuthenticate checks an AUTHENTICATE_MESSAGE against the handshake's messages.
func (h *Handler) verifyAuthenticate(msg, neg, chal, serverChal []byte) (res authResult) {
	fail := func(format string, a ...any) authResult {
		res.err = fmt.Errorf(format, a...)
		return res
	}
	if chal == nil {
		return fail("AUTHENTICATE without a pending challenge on this connection")
	}
	if len(msg) < 64 {
		return fail("short AUTHENTICATE_MESSAGE")
	}
	field := func(off int) ([]byte, error) {
		l := int(binary.LittleEndian.Uint16(msg[off:]))
		o := int(binary.LittleEndian.Uint32(msg[off+4:]))
		if l == 0 {
			return nil, nil
		}
		if o < 0 || o+l > len(msg) || o < 64 {
			return nil, errors.New("field outside the message")
		}
		return msg[o : o+l], nil
	}
	flags := binary.LittleEndian.Uint32(msg[60:64])
	lm, err1 := field(12)
	nt, err2 := field(20)
	dom, err3 := field(28)
	usr, err4 := field(36)
	encKey, err5 := field(52)
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return fail("malformed AUTHENTICATE_MESSAGE: %v", err)
	}
	switch {
	case flags&flagUnicode != 0:
		res.user, res.domain = fromUTF16le(usr), fromUTF16le(dom)
	case flags&flagOEM != 0 && binary.LittleEndian.Uint32(chal[20:24])&flagOEM != 0:
		res.user, res.domain = string(usr), string(dom) // OEM as negotiated: ASCII here
	default:
		return fail("AUTHENTICATE_MESSAGE strings in a charset not negotiated")
	}
	switch {
	case flags&flagAnonymous != 0 || (len(nt) == 0 && len(res.user) == 0):
		return fail("anonymous logon refused")
	case len(nt) == 0 && len(lm) > 0:
		return fail("LM response refused (NTLMv2 only)")
	case len(nt) == 24:
		return fail("NTLMv1 response refused (NTLMv2 only)")
	case len(nt) < 16+28:
		return fail("malformed NTLMv2 response (%d bytes)", len(nt))
	}
	proof, blob := nt[:16], nt[16:]
	if blob[0] != 1 || blob[1] != 1 {
		return fail("NTLMv2 blob version %d.%d", blob[0], blob[1])
	}
	password, ok := h.ntlmPassword(res.user, res.domain)
	if !ok {
		return fail("no such account")
	}
	key := ntowfV2(password, res.user, res.domain)
	want := hmacMD5(key, serverChal, blob)
	if !hmac.Equal(proof, want) {
		return fail("wrong NTProofStr (wrong password or altered response)")
	}
	// Checked only once the proof holds (the blob is authenticated by it).
	if ts, ok := fromFileTime(blob[8:16]); !ok || time.Since(ts) > ntlmMaxSkew || time.Until(ts) > ntlmMaxSkew {
		return fail("NTLMv2 blob timestamp %s outside the allowed skew", ts.UTC().Format(time.RFC3339))
	}
	// Session keys (MS-NLMP 3.3.2): KeyExchangeKey = SessionBaseKey for NTLMv2.
	sessionBaseKey := hmacMD5(key, proof)
	exported := sessionBaseKey
	if flags&flagKeyExch != 0 {
		if len(encKey) != 16 {
			return fail("KEY_EXCH without a 16-byte EncryptedRandomSessionKey")
		}
		exported = rc4Once(sessionBaseKey, encKey)
	}
	if avFlagsOf(blob[28:])&avFlagMICNeeded != 0 {
		// The MIC follows the Version field; it is computed over all three messages
		// with the MIC zeroed.
		if len(msg) < 88 {
			return fail("MIC announced but absent")
		}
		mic := append([]byte(nil), msg[72:88]...)
		zeroed := append([]byte(nil), msg...)
		copy(zeroed[72:88], make([]byte, 16))
		if !hmac.Equal(mic, hmacMD5(exported, neg, chal, zeroed)) {
			return fail("wrong MIC (messages altered)")
		}
	}
	if flags&(flagSign|flagSeal) != 0 {
		res.session = newServerSession(flags, exported)
	}
	return res
}

// avFlagsOf returns MsvAvFlags from an AV pair list (0 if absent or malformed).
func avFlagsOf(b []byte) uint32 {
	for len(b) >= 4 {
		id, l := binary.LittleEndian.Uint16(b), int(binary.LittleEndian.Uint16(b[2:]))
		if id == avEOL || 4+l > len(b) {
			return 0
		}
		if id == avFlags && l == 4 {
			return binary.LittleEndian.Uint32(b[4:])
		}
		b = b[4+l:]
	}
	return 0
}

// ntlmPassword finds the password of the account the client named. Users keys are
// "DOMAIN\user", "user@dnsdomain" or "user" (any domain). A UPN sent as the user name
// with an empty domain, or a domain sent as the DNS name, resolves to this listener's
// domain, as a domain controller resolves them; any other domain names itself (an
// account of a trusted domain: "OTHER\user" is found only when OTHER was sent).
func (h *Handler) ntlmPassword(user, domain string) (string, bool) {
	if domain == "" {
		if u, d, ok := strings.Cut(user, "@"); ok {
			user, domain = u, d
		}
	}
	ours := func(d string) bool {
		return d == "" || strings.EqualFold(d, h.ntlmID.domain) || strings.EqualFold(d, h.ntlmID.dnsDomain)
	}
	sameDomain := func(a, b string) bool { return strings.EqualFold(a, b) || (ours(a) && ours(b)) }
	keys := make([]string, 0, len(h.Users))
	for k := range h.Users {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ku, kd := k, ""
		if d, u, ok := strings.Cut(k, `\`); ok {
			ku, kd = u, d
		} else if u, d, ok := strings.Cut(k, "@"); ok {
			ku, kd = u, d
		} else if strings.EqualFold(ku, user) {
			return h.Users[k], true // no domain: any domain
		}
		if strings.EqualFold(ku, user) && sameDomain(kd, domain) {
			return h.Users[k], true
		}
	}
	return "", false
}

// ntlmFailed records a refused AUTHENTICATE_MESSAGE.
func (h *Handler) ntlmFailed(f NTLMFailure) {
	h.st.mu.Lock()
	h.st.stats["NTLMFailed"]++
	h.st.ntlmFailures = append(h.st.ntlmFailures, f)
	h.st.mu.Unlock()
}

// defaultNTLMIdentity derives the listener's names: the domain is the option, else the
// domain of the first DOMAIN\user in users, else WORKGROUP.
func defaultNTLMIdentity(host, domain, dnsDomain string, users map[string]string) ntlmIdentity {
	if domain == "" {
		keys := make([]string, 0, len(users))
		for k := range users {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if d, _, ok := strings.Cut(k, `\`); ok && d != "" {
				domain = d
				break
			}
		}
	}
	if domain == "" {
		domain = "WORKGROUP"
	}
	domain = strings.ToUpper(domain)
	if dnsDomain == "" {
		dnsDomain = strings.ToLower(domain) + ".test"
	}
	computer := strings.ToUpper(host)
	if i := strings.IndexByte(computer, '.'); i > 0 {
		computer = computer[:i]
	}
	if len(computer) > 15 {
		computer = computer[:15]
	}
	return ntlmIdentity{domain: domain, dnsDomain: dnsDomain, computer: computer, dnsComputer: strings.ToLower(computer) + "." + dnsDomain}
}

// ntowfV2 = HMAC_MD5(MD4(UTF16LE(password)), UTF16LE(UPPER(user) + domain)).
func ntowfV2(password, user, domain string) []byte {
	h := md4.New()
	h.Write(utf16le(password))
	return hmacMD5(h.Sum(nil), utf16le(strings.ToUpper(user)+domain))
}

func hmacMD5(key []byte, data ...[]byte) []byte {
	m := hmac.New(md5.New, key)
	for _, d := range data {
		m.Write(d)
	}
	return m.Sum(nil)
}

func rc4Once(key, data []byte) []byte {
	c, _ := rc4.NewCipher(key)
	out := make([]byte, len(data))
	c.XORKeyStream(out, data)
	return out
}

func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		binary.LittleEndian.PutUint16(b[2*i:], r)
	}
	return b
}

func fromUTF16le(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

func fileTime(t time.Time) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, uint64(t.UnixNano()/100)+116444736000000000)
	return b
}

// fromFileTime reads a FILETIME (100 ns since 1601); ok is false before 1970 or
// after 2200.
func fromFileTime(b []byte) (time.Time, bool) {
	const epoch, max = 116444736000000000, 116444736000000000 + 230*365*24*3600*10000000
	ft := binary.LittleEndian.Uint64(b)
	if ft < epoch || ft > max {
		return time.Time{}, false
	}
	d := ft - epoch
	return time.Unix(int64(d/10000000), int64(d%10000000)*100), true
}

func writeVarField(b *bytes.Buffer, l, off int) {
	_ = binary.Write(b, binary.LittleEndian, uint16(l))
	_ = binary.Write(b, binary.LittleEndian, uint16(l))
	_ = binary.Write(b, binary.LittleEndian, uint32(off))
}
