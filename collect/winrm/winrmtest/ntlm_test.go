package winrmtest_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"strings"
	"testing"

	ntlmssp "github.com/Azure/go-ntlmssp"

	"github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest"
)

// tamperRT sits under go-ntlmssp's Negotiator and lets a test alter the
// AUTHENTICATE_MESSAGE (type 3) before it leaves, or record it.
type tamperRT struct {
	base   http.RoundTripper
	tamper func(msg []byte) []byte
}

func (t tamperRT) RoundTrip(req *http.Request) (*http.Response, error) {
	if v := req.Header.Get("Authorization"); v != "" {
		scheme, data, _ := strings.Cut(v, " ")
		if b, err := base64.StdEncoding.DecodeString(data); err == nil && len(b) > 12 && binary.LittleEndian.Uint32(b[8:]) == 3 && t.tamper != nil {
			b = t.tamper(append([]byte(nil), b...))
			req.Header.Set("Authorization", scheme+" "+base64.StdEncoding.EncodeToString(b))
		}
	}
	return t.base.RoundTrip(req)
}

// ntResponse returns the offset and length of the NtChallengeResponse field.
func ntResponse(msg []byte) (off, l int) {
	return int(binary.LittleEndian.Uint32(msg[24:])), int(binary.LittleEndian.Uint16(msg[20:]))
}

func ntlmServer(t *testing.T) (*winrmtest.Server, func(tamper func([]byte) []byte) *http.Client) {
	t.Helper()
	s := winrmtest.NewTLSServer("h1", sampleHost(), winrmtest.ServerOptions{
		// buditor has the same password: altering "auditor" into it must still fail.
		Users: map[string]string{`LAB\auditor`: "pw", `LAB\buditor`: "pw"}, NTLM: winrmtest.NTLMOptions{Enabled: true},
	})
	t.Cleanup(s.Close)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CACertPEM())
	return s, func(tamper func([]byte) []byte) *http.Client {
		base := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
		t.Cleanup(base.CloseIdleConnections)
		return &http.Client{Transport: ntlmssp.Negotiator{RoundTripper: tamperRT{base, tamper}}}
	}
}

// post sends a body the listener cannot parse: 500 (a SOAP fault) proves the logon
// succeeded, 401 that it was refused.
func post(t *testing.T, c *http.Client, url, user, pass string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("not soap"))
	req.Header.Set("Content-Type", "application/soap+xml;charset=UTF-8")
	req.SetBasicAuth(user, pass) // the Negotiator takes the credentials from here
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestNTLMVerificationIsReal: the listener accepts the genuine AUTHENTICATE_MESSAGE and
// refuses it when one bit of the NTProofStr, of the client blob it covers, or of the
// user name changes (to another account with the same password), and when the password
// is wrong. (The user name's case may change: NTOWFv2 hashes it upper-cased.)
func TestNTLMVerificationIsReal(t *testing.T) {
	s, client := ntlmServer(t)
	if code := post(t, client(nil), s.URL, `LAB\auditor`, "pw"); code != http.StatusInternalServerError {
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
		if code := post(t, client(tamper), s.URL, `LAB\auditor`, "pw"); code != http.StatusUnauthorized {
			t.Errorf("%s altered: status %d, want 401", name, code)
		}
		if f := s.NTLMFailures(); len(f) != before+1 || !strings.Contains(f[len(f)-1].Reason, "NTProofStr") {
			t.Errorf("%s altered: failures %+v", name, f)
		}
	}
	if code := post(t, client(nil), s.URL, `LAB\auditor`, "pW"); code != http.StatusUnauthorized {
		t.Errorf("wrong password: status %d", code)
	}
	if code := post(t, client(nil), s.URL, `LAB\nobody`, "pw"); code != http.StatusUnauthorized {
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
	s, client := ntlmServer(t)
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
		if code := post(t, client(tc.tamper), s.URL, `LAB\auditor`, "pw"); code != http.StatusUnauthorized {
			t.Errorf("%s: status %d", name, code)
		}
		if f := s.NTLMFailures(); len(f) == 0 || !strings.Contains(f[len(f)-1].Reason, tc.reason) {
			t.Errorf("%s: failures %+v", name, f)
		}
	}
	var recorded []byte
	if code := post(t, client(func(m []byte) []byte { recorded = append([]byte(nil), m...); return m }), s.URL, `LAB\auditor`, "pw"); code != http.StatusInternalServerError || recorded == nil {
		t.Fatalf("genuine logon: status %d", code)
	}
	// Replayed in a new handshake: the server challenge differs.
	if code := post(t, client(func([]byte) []byte { return recorded }), s.URL, `LAB\auditor`, "pw"); code != http.StatusUnauthorized {
		t.Errorf("replayed AUTHENTICATE accepted: status %d", code)
	}
	if f := s.NTLMFailures(); !strings.Contains(f[len(f)-1].Reason, "NTProofStr") {
		t.Errorf("replay: %+v", f[len(f)-1])
	}
}
