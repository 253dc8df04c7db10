package winrmtest_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/bodgit/ntlmssp"

	"github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest"
)

// ntResponse returns the offset and length of the NtChallengeResponse field.
func ntResponse(msg []byte) (off, l int) {
	return int(binary.LittleEndian.Uint32(msg[24:])), int(binary.LittleEndian.Uint16(msg[20:]))
}

func ntlmServer(t *testing.T) *winrmtest.Server {
	t.Helper()
	s := winrmtest.NewTLSServer("h1", sampleHost(), winrmtest.ServerOptions{
		// buditor has the same password: altering "auditor" into it must still fail.
		Users: map[string]string{`LAB\auditor`: "pw", `LAB\buditor`: "pw"}, NTLM: winrmtest.NTLMOptions{Enabled: true},
	})
	t.Cleanup(s.Close)
	return s
}

// logon logs on to the TLS server s as user in domain with bodgit/ntlmssp, on one
// connection: NEGOTIATE, CHALLENGE, then the AUTHENTICATE_MESSAGE (altered by tamper
// when set) with a body the listener cannot parse. It returns the status of that
// last answer: 500 (a SOAP fault) proves the logon succeeded, 401 that it was refused.
func logon(t *testing.T, s *winrmtest.Server, user, domain, pass string, tamper func(msg []byte) []byte) int {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CACertPEM())
	conn, err := tls.Dial("tcp", s.Addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	send := func(token []byte, body string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, s.URL, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/soap+xml;charset=UTF-8")
		req.Header.Set("Authorization", "Negotiate "+base64.StdEncoding.EncodeToString(token))
		if err := req.Write(conn); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	client, err := ntlmssp.NewClient(ntlmssp.SetUserInfo(user, pass), ntlmssp.SetDomain(domain), ntlmssp.SetVersion(ntlmssp.DefaultVersion()))
	if err != nil {
		t.Fatal(err)
	}
	negotiate, err := client.Authenticate(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp := send(negotiate, "")
	scheme, data, _ := strings.Cut(resp.Header.Get("WWW-Authenticate"), " ")
	challenge, err := base64.StdEncoding.DecodeString(data)
	if resp.StatusCode != http.StatusUnauthorized || scheme != "Negotiate" || err != nil {
		t.Fatalf("NEGOTIATE answered %d %q", resp.StatusCode, resp.Header.Values("WWW-Authenticate"))
	}
	authenticate, err := client.Authenticate(challenge, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tamper != nil {
		authenticate = tamper(append([]byte(nil), authenticate...))
	}
	return send(authenticate, "not soap").StatusCode
}

func utf16le(s string) []byte {
	var b []byte
	for _, r := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, r)
	}
	return b
}

// TestNTLMVerificationIsReal: the listener accepts the genuine AUTHENTICATE_MESSAGE and
// refuses it when one bit of the NTProofStr, of the client blob it covers, or of the
// user name changes (to another account with the same password), and when the password
// is wrong. (The user name's case may change: NTOWFv2 hashes it upper-cased.)
func TestNTLMVerificationIsReal(t *testing.T) {
	s := ntlmServer(t)
	if code := logon(t, s, "auditor", "LAB", "pw", nil); code != http.StatusInternalServerError {
		t.Fatalf("genuine logon: status %d", code)
	}
	for name, tamper := range map[string]func([]byte) []byte{
		"NTProofStr": func(m []byte) []byte { o, _ := ntResponse(m); m[o+3] ^= 1; return m },
		"blob":       func(m []byte) []byte { o, _ := ntResponse(m); m[o+16+20] ^= 1; return m }, // client challenge
		"timestamp":  func(m []byte) []byte { o, _ := ntResponse(m); m[o+16+9] ^= 1; return m },
		"user name": func(m []byte) []byte {
			i := bytes.Index(m, []byte{'a', 0, 'u', 0, 'd', 0})
			m[i] = 'b' // buditor: same password, but the hash covers the name
			return m
		},
	} {
		before := len(s.NTLMFailures())
		if code := logon(t, s, "auditor", "LAB", "pw", tamper); code != http.StatusUnauthorized {
			t.Errorf("%s altered: status %d, want 401", name, code)
		}
		if f := s.NTLMFailures(); len(f) != before+1 || !strings.Contains(f[len(f)-1].Reason, "NTProofStr") {
			t.Errorf("%s altered: failures %+v", name, f)
		}
	}
	if code := logon(t, s, "auditor", "LAB", "pW", nil); code != http.StatusUnauthorized {
		t.Errorf("wrong password: status %d", code)
	}
	if code := logon(t, s, "nobody", "LAB", "pw", nil); code != http.StatusUnauthorized {
		t.Errorf("unknown user: status %d", code)
	}
	if st := s.Stats(); st["NTLMAuthenticated"] != 1 || st["NTLMFailed"] != 6 {
		t.Errorf("stats %v", st)
	}
}

// TestNTLMRefusesV1AndReplay: an NTLMv1-sized (24-byte) or LM-only response is refused
// even if the rest is intact, and an AUTHENTICATE_MESSAGE recorded from a good logon
// does not log on again (its challenge was used up; a new one makes its proof wrong).
func TestNTLMRefusesV1AndReplay(t *testing.T) {
	s := ntlmServer(t)
	setNT := func(nt []byte) func([]byte) []byte {
		return func(m []byte) []byte {
			// Move the NtChallengeResponse to the end with the new content.
			binary.LittleEndian.PutUint16(m[20:], uint16(len(nt)))
			binary.LittleEndian.PutUint16(m[22:], uint16(len(nt)))
			binary.LittleEndian.PutUint32(m[24:], uint32(len(m)))
			return append(m, nt...)
		}
	}
	for name, tc := range map[string]struct {
		tamper func([]byte) []byte
		reason string
	}{
		"NTLMv1": {setNT(bytes.Repeat([]byte{7}, 24)), "NTLMv1"},
		"LM only": {func(m []byte) []byte {
			m = setNT(nil)(m)
			lm := bytes.Repeat([]byte{7}, 24)
			binary.LittleEndian.PutUint16(m[12:], 24)
			binary.LittleEndian.PutUint16(m[14:], 24)
			binary.LittleEndian.PutUint32(m[16:], uint32(len(m)))
			return append(m, lm...)
		}, "LM"},
	} {
		if code := logon(t, s, "auditor", "LAB", "pw", tc.tamper); code != http.StatusUnauthorized {
			t.Errorf("%s: status %d", name, code)
		}
		if f := s.NTLMFailures(); len(f) == 0 || !strings.Contains(f[len(f)-1].Reason, tc.reason) {
			t.Errorf("%s: failures %+v", name, f)
		}
	}
	var recorded []byte
	if code := logon(t, s, "auditor", "LAB", "pw", func(m []byte) []byte { recorded = append([]byte(nil), m...); return m }); code != http.StatusInternalServerError || recorded == nil {
		t.Fatalf("genuine logon: status %d", code)
	}
	// Replayed in a new handshake: the server challenge differs.
	if code := logon(t, s, "auditor", "LAB", "pw", func([]byte) []byte { return recorded }); code != http.StatusUnauthorized {
		t.Errorf("replayed AUTHENTICATE accepted: status %d", code)
	}
	if f := s.NTLMFailures(); !strings.Contains(f[len(f)-1].Reason, "NTProofStr") {
		t.Errorf("replay: %+v", f[len(f)-1])
	}
}

// TestNTLMVerifiesTheSentDomain: an account of another, trusted domain (OTHER\auditor,
// the listener being in LAB) logs on when the client sends that domain, and the
// listener computes NTOWFv2 over the user and domain the AUTHENTICATE_MESSAGE carries:
// the same response with its domain altered to TRUST (an account with the same
// password) is refused for its NTProofStr. The listener's own LAB\auditor (another
// password) is a different account, and an unknown domain has no account.
func TestNTLMVerifiesTheSentDomain(t *testing.T) {
	s := winrmtest.NewTLSServer("h1", sampleHost(), winrmtest.ServerOptions{
		Users: map[string]string{`OTHER\auditor`: "pw", `TRUST\auditor`: "pw", `LAB\auditor`: "lab-pw"},
		NTLM:  winrmtest.NTLMOptions{Enabled: true, Domain: "LAB"},
	})
	defer s.Close()
	if code := logon(t, s, "auditor", "OTHER", "pw", nil); code != http.StatusInternalServerError {
		t.Fatalf("OTHER\\auditor: status %d, failures %+v", code, s.NTLMFailures())
	}
	if st := s.Stats(); st["NTLMAuthenticated"] != 1 || st[`NTLMAuthenticated:OTHER\auditor`] != 1 {
		t.Errorf("stats %v; want one logon as OTHER\\auditor", st)
	}
	toTrust := func(m []byte) []byte {
		i := bytes.Index(m, utf16le("OTHER"))
		copy(m[i:], utf16le("TRUST")) // the DomainName field: same length
		return m
	}
	for _, tc := range []struct {
		name, domain, pass string
		tamper             func([]byte) []byte
		reason             string
	}{
		{"domain altered", "OTHER", "pw", toTrust, "NTProofStr"},
		{"wrong password", "OTHER", "pw-wrong", nil, "NTProofStr"},
		{"the listener's account", "LAB", "pw", nil, "NTProofStr"},
		{"unknown domain", "NOWHERE", "pw", nil, "no such account"},
	} {
		before := len(s.NTLMFailures())
		if code := logon(t, s, "auditor", tc.domain, tc.pass, tc.tamper); code != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", tc.name, code)
		}
		f := s.NTLMFailures()
		if len(f) != before+1 || !strings.Contains(f[len(f)-1].Reason, tc.reason) || f[len(f)-1].User != "auditor" {
			t.Errorf("%s: failures %+v; want one more, for %q", tc.name, f, tc.reason)
			continue
		}
		sent := tc.domain
		if tc.tamper != nil {
			sent = "TRUST"
		}
		if f[len(f)-1].Domain != sent {
			t.Errorf("%s: refused logon recorded in domain %q, want %q", tc.name, f[len(f)-1].Domain, sent)
		}
	}
}
