package winrmtest_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/spnego"

	"github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest"
	"github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest/kdctest"
)

// krbServer starts a realm (user auditor, services HTTP/localhost and HTTP/other) and
// an HTTPS host verifying tickets for HTTP/localhost.
func krbServer(t *testing.T) (*kdctest.KDC, *winrmtest.Server, string) {
	t.Helper()
	kdc := kdctest.Start(t, "RDSAUDIT.TEST")
	pw := kdctest.RandomPassword()
	kdc.AddUser("auditor", pw)
	kt := kdc.AddService("HTTP/localhost")
	kdc.AddService("HTTP/other")
	s := winrmtest.NewTLSServer("h", sampleHost(), winrmtest.ServerOptions{Kerberos: winrmtest.KerberosOptions{KeytabPath: kt, SPN: "HTTP/localhost"}})
	t.Cleanup(s.Close)
	return kdc, s, pw
}

func krbClient(t *testing.T, kdc *kdctest.KDC, user, pw string) *client.Client {
	t.Helper()
	cfg, err := config.Load(kdc.Krb5Conf)
	if err != nil {
		t.Fatal(err)
	}
	return client.NewWithPassword(user, kdc.Realm, pw, cfg, client.DisablePAFXFAST(true))
}

func httpsClient(t *testing.T, s *winrmtest.Server, keepAlive bool) *http.Client {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CACertPEM()) {
		t.Fatal("no CA")
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: !keepAlive}}
}

// krbPost sends a (non-SOAP) body with the Authorization header auth ("" for none) and
// returns the status: 401 refused, 400/500 (a fault for the bad body) authenticated.
func krbPost(t *testing.T, hc *http.Client, s *winrmtest.Server, auth string) (int, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL, strings.NewReader("<not-soap/>"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/soap+xml;charset=UTF-8")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// negotiateHeader is a fresh "Negotiate <token>" for spn.
func negotiateHeader(t *testing.T, cl *client.Client, spn string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "https://localhost/wsman", nil)
	if err := spnego.SetSPNEGOHeader(cl, req, spn); err != nil {
		t.Fatal(err)
	}
	return req.Header.Get("Authorization")
}

// TestKerberosHost: the Kerberos host answers 401 Negotiate without a token, accepts a
// ticket for its SPN (and then the connection), and refuses a ticket for another SPN,
// a tampered token, a replayed token and an NTLM token. A wrong password never gets a
// ticket: the KDC refuses the logon.
func TestKerberosHost(t *testing.T) {
	kdc, s, pw := krbServer(t)
	hc := httpsClient(t, s, false)

	code, h := krbPost(t, hc, s, "")
	if code != http.StatusUnauthorized || !strings.EqualFold(strings.Join(h.Values("WWW-Authenticate"), ","), "Negotiate,Kerberos") {
		t.Fatalf("no token: %d %v; want 401 offering Negotiate and Kerberos", code, h.Values("WWW-Authenticate"))
	}

	if err := krbClient(t, kdc, "auditor", "wrong-"+pw).Login(); err == nil || !strings.Contains(err.Error(), "KDC_ERR_PREAUTH_FAILED") {
		t.Errorf("wrong password: login %v; want KDC_ERR_PREAUTH_FAILED", err)
	}

	cl := krbClient(t, kdc, "auditor", pw)
	if err := cl.Login(); err != nil {
		t.Fatal(err)
	}
	good := negotiateHeader(t, cl, "HTTP/localhost")
	if code, _ := krbPost(t, hc, s, good); code == http.StatusUnauthorized {
		t.Fatalf("valid ticket refused: %+v", s.KerberosFailures())
	}
	if code, _ := krbPost(t, hc, s, good); code != http.StatusUnauthorized {
		t.Errorf("replayed token: %d, want 401", code)
	}

	// A real ticket from the same KDC, for another service: it does not decrypt with
	// the host's key.
	if code, _ := krbPost(t, hc, s, negotiateHeader(t, cl, "HTTP/other")); code != http.StatusUnauthorized {
		t.Errorf("ticket for HTTP/other: %d, want 401", code)
	}

	// Tampered: one bit flipped at the end of the token (the encrypted authenticator)
	// and in the middle (the ticket).
	for _, where := range []string{"end", "middle"} {
		b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(negotiateHeader(t, cl, "HTTP/localhost"), "Negotiate "))
		if err != nil {
			t.Fatal(err)
		}
		i := len(b) - 1
		if where == "middle" {
			i = len(b) / 2
		}
		b[i] ^= 0x01
		if code, _ := krbPost(t, hc, s, "Negotiate "+base64.StdEncoding.EncodeToString(b)); code != http.StatusUnauthorized {
			t.Errorf("token tampered at the %s: %d, want 401", where, code)
		}
	}

	// An NTLM NEGOTIATE is not a Kerberos token.
	ntlmNeg := "Negotiate " + base64.StdEncoding.EncodeToString(append([]byte("NTLMSSP\x00\x01\x00\x00\x00"), make([]byte, 28)...))
	if code, _ := krbPost(t, hc, s, ntlmNeg); code != http.StatusUnauthorized {
		t.Errorf("NTLM token: %d, want 401", code)
	}

	fails := s.KerberosFailures()
	if len(fails) != 5 {
		t.Errorf("refused tokens %d, want 5 (replay, other SPN, 2 tampered, NTLM): %+v", len(fails), fails)
	} else if !strings.Contains(fails[0].Reason, "replay") {
		t.Errorf("replay refused for %q", fails[0].Reason)
	}
	for _, f := range fails {
		t.Logf("refused: %s", f.Reason)
	}
	if st := s.Stats(); st["KerberosAuthenticated"] != 1 {
		t.Errorf("stats %v; want one accepted token", st)
	}

	// The accepted token authenticates its TCP connection, as HTTP.sys does.
	ka := httpsClient(t, s, true)
	if code, _ := krbPost(t, ka, s, negotiateHeader(t, cl, "HTTP/localhost")); code == http.StatusUnauthorized {
		t.Fatal("valid ticket refused")
	}
	if code, _ := krbPost(t, ka, s, ""); code == http.StatusUnauthorized {
		t.Error("authenticated connection refused a request without a token")
	}
	if code, _ := krbPost(t, hc, s, ""); code != http.StatusUnauthorized {
		t.Error("a new connection without a token was accepted")
	}
}
