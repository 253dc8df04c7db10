package winrm_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	masterzen "github.com/masterzen/winrm"
	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/collect/winrm"
	"github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// NTLM end to end: the real collector (auth ntlm, the default) against simulated hosts
// that verify NTLMv2 for real (winrmtest/ntlm.go) and refuse Basic, as Windows does
// by default. Over HTTPS and plain HTTP the client is this package's own
// (winrm_ntlmhttp.go, bodgit/ntlmssp): over HTTPS the SOAP messages travel in clear
// inside TLS, over plain HTTP each is sealed.

// newNTLMEnv starts an NTLM fleet (domain LAB, DNS domain lab.test) whose only account
// is LAB\auditor with testPassword.
func newNTLMEnv(t testing.TB, tls bool, evs map[string]*evidence.Evidence, faults map[string]winrmtest.Faults) *testEnv {
	t.Helper()
	return startFleet(t, evs, winrmtest.FleetServerOptions{
		TLS: tls, Users: map[string]string{testUser: testPassword}, Faults: faults,
		NTLM: winrmtest.NTLMOptions{Enabled: true, Domain: "LAB", DNSDomain: "lab.test"},
	})
}

func ntlmCollector(t testing.TB, env *testEnv, user, password string, opts winrm.Options) *winrm.Collector {
	t.Helper()
	opts.Auth = winrm.AuthNTLM
	opts.Scheme = "https"
	opts.CAPEM = env.fleet.CACertPEM()
	return labCollector(t, user, password, opts)
}

// TestWinRMNTLMCollected: the default auth collects a host over HTTPS, through a real
// NTLMv2 handshake, without a Basic header ever reaching the listener; with the
// schemes a listener may offer (Negotiate is preferred when both are).
func TestWinRMNTLMCollected(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults winrmtest.Faults
		scheme string
	}{
		{"Negotiate", winrmtest.Faults{}, "Negotiate"},
		{"Negotiate and NTLM", winrmtest.Faults{OfferNTLM: true}, "Negotiate"},
		{"NTLM alone", winrmtest.Faults{OnlyNTLMScheme: true}, "NTLM"},
	} {
		env := newNTLMEnv(t, true, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, map[string]winrmtest.Faults{"h": tc.faults})
		c := ntlmCollector(t, env, testUser, testPassword, winrm.Options{})
		ev := c.Collect(context.Background(), env.hosts["h"])
		if ev.Status != evidence.StatusCollected {
			t.Fatalf("%s: %s %+v", tc.name, ev.Status, ev.Failure)
		}
		if ev.OS == nil || ev.OS.ComputerName != "H" {
			t.Errorf("%s: evidence not from the host: %+v", tc.name, ev.OS)
		}
		st := env.fleet.Stats()
		if st["NTLMAuthenticated"] < 1 || st["NTLMFailed"] != 0 || st["NTLMChallenge:"+tc.scheme] != st["NTLMChallenge"] {
			t.Errorf("%s: requests %v; want NTLM (%s) logons and no failure", tc.name, st, tc.scheme)
		}
		// One logon per TCP connection, not per request: later requests ride on the
		// authenticated connection.
		if st["NTLMAuthenticated"] >= soapRequests(st) {
			t.Errorf("%s: requests %v; every request needed its own handshake", tc.name, st)
		}
		if n := env.fleet.BasicAuthRequests(); n != 0 {
			t.Errorf("%s: %d Basic requests reached the listener", tc.name, n)
		}
	}
}

// TestWinRMNTLMWrongPassword: a wrong password is one failed logon (the listener
// verified the NTLMv2 response and refused it), class auth, no retry, no shell.
func TestWinRMNTLMWrongPassword(t *testing.T) {
	env := newNTLMEnv(t, true, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, nil)
	c := ntlmCollector(t, env, testUser, "wrong-"+testPassword, winrm.Options{})
	ev := c.Collect(context.Background(), env.hosts["h"])
	if ev.Failure == nil || ev.Failure.Class != evidence.FailAuth || ev.Failure.Attempts != 1 {
		t.Fatalf("want auth after one attempt, got %s %+v", ev.Status, ev.Failure)
	}
	if strings.Contains(ev.Failure.Message, testPassword) {
		t.Error("password in message")
	}
	fails := env.fleet.NTLMFailures()
	if len(fails) != 1 || !strings.Contains(fails[0].Reason, "NTProofStr") || fails[0].User != "auditor" || fails[0].Domain != "LAB" {
		t.Errorf("failed logons %+v; want one, refused for its NTProofStr", fails)
	}
	if st := env.fleet.Stats(); st["Create"] != 0 || st["NTLMAuthenticated"] != 0 {
		t.Errorf("requests %v; want no logon and no Create", st)
	}
}

// TestWinRMNTLMUserForms: the user names rdsaudit accepts, as they are sent over HTTPS.
// DOMAIN\user is sent as the user in the domain typed (its case kept), a bare user
// with an empty domain, a UPN whole with an empty domain; the hash is computed over
// exactly those fields, which the listener resolves as a DC does.
func TestWinRMNTLMUserForms(t *testing.T) {
	for _, user := range []string{`LAB\auditor`, `lab\AUDITOR`, "auditor@lab.test", "auditor@LAB", "auditor"} {
		env := newNTLMEnv(t, true, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, nil)
		c := ntlmCollector(t, env, user, testPassword, winrm.Options{})
		if ev := c.Collect(context.Background(), env.hosts["h"]); ev.Status != evidence.StatusCollected {
			t.Errorf("user %q: %s %+v (server: %+v)", user, ev.Status, ev.Failure, env.fleet.NTLMFailures())
		}
		// And the same form with a wrong password fails, with the names as sent.
		env = newNTLMEnv(t, true, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, nil)
		c = ntlmCollector(t, env, user, "wrong", winrm.Options{})
		if ev := c.Collect(context.Background(), env.hosts["h"]); ev.Failure == nil || ev.Failure.Class != evidence.FailAuth {
			t.Errorf("user %q, wrong password: %s %+v", user, ev.Status, ev.Failure)
		}
		fails := env.fleet.NTLMFailures()
		if len(fails) != 1 || !strings.Contains(fails[0].Reason, "NTProofStr") {
			t.Errorf("user %q, wrong password: failed logons %+v", user, fails)
			continue
		}
		wantUser, wantDomain := user, ""
		if d, u, ok := strings.Cut(user, `\`); ok {
			wantUser, wantDomain = u, d
		}
		if fails[0].User != wantUser || fails[0].Domain != wantDomain {
			t.Errorf("user %q sent as user %q domain %q; want %q %q", user, fails[0].User, fails[0].Domain, wantUser, wantDomain)
		}
	}
}

// TestWinRMNTLMOtherDomain (issue 13): an account of another, trusted domain
// (OTHER\auditor; the listener is in LAB) logs on over HTTPS and plain HTTP: the
// domain of DOMAIN\user is sent, and the listener verifies the NTLMv2 response over
// that user and domain, as Windows passes the logon to the trusted domain's DC.
// (go-ntlmssp, the former HTTPS client, sent LAB: the account could not log on.) A
// wrong password fails as OTHER\auditor; the listener's own LAB\auditor is another
// account.
func TestWinRMNTLMOtherDomain(t *testing.T) {
	for _, tls := range []bool{true, false} {
		users := map[string]string{`OTHER\auditor`: testPassword, `LAB\auditor`: "lab-" + testPassword}
		env := startFleet(t, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, winrmtest.FleetServerOptions{
			TLS: tls, Users: users, NTLM: winrmtest.NTLMOptions{Enabled: true, Domain: "LAB"},
		})
		collector := func(password string) *winrm.Collector {
			if tls {
				return ntlmCollector(t, env, `OTHER\auditor`, password, winrm.Options{})
			}
			return ntlmHTTPCollector(t, `OTHER\auditor`, password)
		}
		if ev := collector(testPassword).Collect(context.Background(), env.hosts["h"]); ev.Status != evidence.StatusCollected {
			t.Fatalf("tls=%v: %s %+v (failed logons %+v)", tls, ev.Status, ev.Failure, env.fleet.NTLMFailures())
		}
		if st := env.fleet.Stats(); st["NTLMAuthenticated"] < 1 || st[`NTLMAuthenticated:OTHER\auditor`] != st["NTLMAuthenticated"] || st["NTLMFailed"] != 0 {
			t.Errorf("tls=%v: requests %v; want every logon as OTHER\\auditor", tls, st)
		}
		if ev := collector("wrong").Collect(context.Background(), env.hosts["h"]); ev.Failure == nil || ev.Failure.Class != evidence.FailAuth {
			t.Errorf("tls=%v, wrong password: %s %+v", tls, ev.Status, ev.Failure)
		}
		if fails := env.fleet.NTLMFailures(); len(fails) != 1 || fails[0].User != "auditor" || fails[0].Domain != "OTHER" || !strings.Contains(fails[0].Reason, "NTProofStr") {
			t.Errorf("tls=%v, wrong password: failed logons %+v; want one, as auditor in OTHER", tls, fails)
		}
	}
}

// TestWinRMNTLMLockout: with NTLM too, a wrong password reaches only LockoutThreshold
// hosts, however many run at once: counted on the listeners as verified, failed logons.
func TestWinRMNTLMLockout(t *testing.T) {
	env := newNTLMEnv(t, true, sessionHosts(8), nil)
	runLockout(t, ntlmCollector(t, env, testUser, "wrong-"+testPassword, winrm.Options{}), env.list())
	if fails := env.fleet.NTLMFailures(); len(fails) != winrm.DefaultLockoutThreshold {
		t.Errorf("%d failed logons on the listeners, want %d: %+v", len(fails), winrm.DefaultLockoutThreshold, fails)
	}
	if st := env.fleet.Stats(); st["NTLMAuthenticated"] != 0 || st["Create"] != 0 {
		t.Errorf("requests %v", st)
	}
}

// TestWinRMNTLMHostRefusesBasic: an NTLM host has Basic off, as Windows by default: the
// collector with auth basic is refused (class auth) although the password is right, and
// its 401s do not offer Basic.
func TestWinRMNTLMHostRefusesBasic(t *testing.T) {
	env := newNTLMEnv(t, true, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, nil)
	c := newCollector(t, env, winrm.Options{Auth: winrm.AuthBasic, HostTimeout: 10 * time.Second}, zerolog.Nop())
	ev := c.Collect(context.Background(), env.hosts["h"])
	if ev.Failure == nil || ev.Failure.Class != evidence.FailAuth {
		t.Fatalf("want auth, got %s %+v", ev.Status, ev.Failure)
	}
	if env.fleet.BasicAuthRequests() == 0 {
		t.Error("the Basic request never reached the listener")
	}
	if st := env.fleet.Stats(); st["Create"] != 0 || st["NTLMAuthenticated"] != 0 {
		t.Errorf("requests %v", st)
	}
}

// TestWinRMNTLMHTTPSFaults: over HTTPS, whatever happens on an NTLM host (healthy,
// wrong password, refused logon, a dropped connection, a fault or a reset answering
// the Create that travelled with the AUTHENTICATE), the class is the one the other
// transports give, each host attempt sends one AUTHENTICATE (a refused logon is one
// failed logon), no Basic header arrives and nothing is sealed (TLS protects the
// messages).
func TestWinRMNTLMHTTPSFaults(t *testing.T) {
	for _, tc := range []struct {
		name     string
		password string
		faults   winrmtest.Faults
		drop     int                   // connections closed on accept
		want     evidence.FailureClass // "" collected
		attempts int
	}{
		{name: "healthy", password: testPassword, attempts: 1},
		{name: "wrong password", password: "wrong", want: evidence.FailAuth, attempts: 1},
		{name: "logon refused", password: testPassword, faults: winrmtest.Faults{Unauthorized: true}, want: evidence.FailAuth, attempts: 1},
		{name: "first connection dropped", password: testPassword, drop: 1, attempts: 2},
		{name: "access denied", password: testPassword, faults: winrmtest.Faults{AccessDenied: true}, want: evidence.FailAccessDenied, attempts: 1},
		{name: "reset on create", password: testPassword, faults: winrmtest.Faults{ResetOnCreate: true}, want: evidence.FailConnect, attempts: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newNTLMEnv(t, true, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, map[string]winrmtest.Faults{"h": tc.faults})
			h := env.hosts["h"]
			if tc.drop > 0 {
				h.Port = flakyForwarder(t, net.JoinHostPort(h.Address, strconv.Itoa(h.Port)), tc.drop, 0)
			}
			c := ntlmCollector(t, env, testUser, tc.password, winrm.Options{Retries: 1})
			ev := c.Collect(context.Background(), h)
			switch {
			case tc.want == "" && ev.Status != evidence.StatusCollected:
				t.Errorf("want collected, got %s %+v", ev.Status, ev.Failure)
			case tc.want != "" && (ev.Failure == nil || ev.Failure.Class != tc.want || ev.Failure.Attempts != tc.attempts):
				t.Errorf("want %s after %d attempts, got %s %+v", tc.want, tc.attempts, ev.Status, ev.Failure)
			}
			st := env.fleet.Stats()
			logons := st["NTLMAuthenticated"] + st["NTLMFailed"]
			if tc.want != "" && logons != tc.attempts || tc.want == "" && logons < 1 {
				t.Errorf("requests %v; want one AUTHENTICATE per attempt (%d)", st, tc.attempts)
			}
			if tc.want == evidence.FailAuth && len(env.fleet.NTLMFailures()) != 1 {
				t.Errorf("failed logons %+v; want one", env.fleet.NTLMFailures())
			}
			if st["Encrypted"] != 0 || st["DecryptFailed"] != 0 {
				t.Errorf("requests %v; want nothing sealed over TLS", st)
			}
			if n := env.fleet.BasicAuthRequests(); n != 0 {
				t.Errorf("%d Basic requests", n)
			}
		})
	}
}

// TestWinRMNTLMHTTPSChecksCertificates: NTLM over HTTPS checks the listener's
// certificate as the other transports do (CA bundle, server name) before any NTLM
// message leaves: a wrong CA or name is class tls with no handshake at the listener;
// insecure_skip_verify, set explicitly, connects.
func TestWinRMNTLMHTTPSChecksCertificates(t *testing.T) {
	env := newNTLMEnv(t, true, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, nil)
	other, err := winrmtest.NewFleet(map[string]*evidence.Evidence{"x": nil}, winrmtest.FleetServerOptions{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for name, opts := range map[string]winrm.Options{
		"wrong CA":   {CAPEM: other.CACertPEM()},
		"wrong name": {CAPEM: env.fleet.CACertPEM(), TLSServerName: "wrong.example"},
	} {
		opts.Auth, opts.Scheme = winrm.AuthNTLM, "https"
		c := labCollector(t, testUser, testPassword, opts)
		if ev := c.Collect(context.Background(), env.hosts["h"]); ev.Failure == nil || ev.Failure.Class != evidence.FailTLS || ev.Failure.Attempts != 1 {
			t.Errorf("%s: want tls, got %s %+v", name, ev.Status, ev.Failure)
		}
	}
	if st := env.fleet.Stats(); len(st) != 0 {
		t.Errorf("requests %v; want none past a failed TLS handshake", st)
	}
	c := labCollector(t, testUser, testPassword, winrm.Options{Auth: winrm.AuthNTLM, Scheme: "https", InsecureSkipVerify: true})
	if ev := c.Collect(context.Background(), env.hosts["h"]); ev.Status != evidence.StatusCollected {
		t.Errorf("insecure_skip_verify: %s %+v", ev.Status, ev.Failure)
	}
}

// TestWinRMNTLMHTTPSUsesDialer: NTLM over HTTPS dials through Options.DialContext: the
// host's address does not resolve, only the dialer knows where it is; TLS checks the
// configured name.
func TestWinRMNTLMHTTPSUsesDialer(t *testing.T) {
	env := newNTLMEnv(t, true, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, nil)
	dial, dials := redirectDial(env.hosts["h"], "rdsh.invalid:5986")
	c := ntlmCollector(t, env, testUser, testPassword, winrm.Options{DialContext: dial, TLSServerName: "localhost"})
	ev := c.Collect(context.Background(), evidence.HostRef{Name: "h", Address: "rdsh.invalid", Port: 5986, Roles: []string{evidence.RoleSessionHost}})
	if ev.Status != evidence.StatusCollected {
		t.Fatalf("%s %+v", ev.Status, ev.Failure)
	}
	if st := env.fleet.Stats(); dials.Load() < 1 || int(dials.Load()) > st["NTLMAuthenticated"]+1 {
		t.Errorf("%d dials, requests %v; want one connection per logon (plus the probe's, if closed)", dials.Load(), st)
	}
}

// TestWinRMNTLMHTTPSHonoursContext: over HTTPS a Create that is never answered (it
// travels with the AUTHENTICATE) ends with the host deadline, and a cancelled run
// ends at once.
func TestWinRMNTLMHTTPSHonoursContext(t *testing.T) {
	env := newNTLMEnv(t, true, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, map[string]winrmtest.Faults{"h": {Hang: true}})
	checkHonoursContext(t, env.hosts["h"], func(opts winrm.Options) *winrm.Collector {
		return ntlmCollector(t, env, testUser, testPassword, opts)
	})
}

func ntlmHTTPCollector(t testing.TB, user, password string) *winrm.Collector {
	t.Helper()
	return ntlmHTTPCollectorOpts(t, user, password, winrm.Options{})
}

func ntlmHTTPCollectorOpts(t testing.TB, user, password string, opts winrm.Options) *winrm.Collector {
	t.Helper()
	opts.Scheme, opts.Auth = "http", winrm.AuthNTLM
	return labCollector(t, user, password, opts)
}

// soapRequests counts the SOAP requests a fleet served.
func soapRequests(st winrmtest.Stats) int {
	return st["Create"] + st["Command"] + st["Send"] + st["Receive"] + st["Signal"] + st["Delete"]
}

// TestWinRMNTLMEncryptedHTTP: over plain HTTP, auth ntlm seals every SOAP message with
// the session keys of its connection (this package's own client over bodgit/ntlmssp), and
// the listener (AllowUnencrypted=false) unseals, verifies and seals its answers; an
// unencrypted message would be refused. DOMAIN\user is sent in its domain, a UPN whole.
// Later requests ride on authenticated connections: fewer logons than requests.
func TestWinRMNTLMEncryptedHTTP(t *testing.T) {
	for _, user := range []string{testUser, "auditor@lab.test", "auditor"} {
		env := newNTLMEnv(t, false, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, nil)
		c := ntlmHTTPCollector(t, user, testPassword)
		ev := c.Collect(context.Background(), env.hosts["h"])
		if ev.Status != evidence.StatusCollected {
			t.Fatalf("user %q: %s %+v (server %v %+v)", user, ev.Status, ev.Failure, env.fleet.Stats(), env.fleet.NTLMFailures())
		}
		st := env.fleet.Stats()
		soap := soapRequests(st)
		if st["Encrypted"] != soap || soap < 4 || st["Unencrypted"] != 0 || st["DecryptFailed"] != 0 || st["NTLMFailed"] != 0 {
			t.Errorf("user %q: requests %v; want every SOAP message sealed", user, st)
		}
		if st["NTLMAuthenticated"] < 1 || st["NTLMAuthenticated"] >= soap {
			t.Errorf("user %q: requests %v; want logons, fewer than requests (connections reused)", user, st)
		}
		if n := env.fleet.BasicAuthRequests(); n != 0 {
			t.Errorf("user %q: %d Basic requests", user, n)
		}
	}
}

// TestWinRMNTLMEncryptedHTTPWrongPassword: over HTTP a wrong password is class auth
// after ONE failed logon per host: the logon is refused, no second AUTHENTICATE is
// sent in the host attempt (masterzen's Encryption used to retry through a plain NTLM
// transporter: two failed logons per host, 2 x LockoutThreshold in all), and the
// lockout gate stops at LockoutThreshold hosts.
func TestWinRMNTLMEncryptedHTTPWrongPassword(t *testing.T) {
	env := newNTLMEnv(t, false, sessionHosts(6), nil)
	runLockout(t, ntlmHTTPCollector(t, testUser, "wrong-"+testPassword), env.list())
	fails := env.fleet.NTLMFailures()
	hostsFailed := map[string]int{}
	for _, f := range fails {
		hostsFailed[f.Host]++
		if !strings.Contains(f.Reason, "NTProofStr") || f.User != "auditor" || f.Domain != "LAB" {
			t.Errorf("failed logon for another reason or name: %+v", f)
		}
	}
	if len(fails) != winrm.DefaultLockoutThreshold || len(hostsFailed) != winrm.DefaultLockoutThreshold {
		t.Errorf("%d failed logons on %d hosts; want exactly one on each of %d hosts: %+v", len(fails), len(hostsFailed), winrm.DefaultLockoutThreshold, fails)
	}
	if st := env.fleet.Stats(); st["Create"] != 0 || st["Encrypted"] != 0 || st["Unencrypted"] != 0 {
		t.Errorf("requests %v", st)
	}
	if n := env.fleet.BasicAuthRequests(); n != 0 {
		t.Errorf("%d Basic requests", n)
	}
}

// authenticateB64 starts the base64 of every NTLM AUTHENTICATE_MESSAGE
// ("NTLMSSP\x00" and type 3).
const authenticateB64 = "TlRMTVNTUAADAAAA"

// flakyForwarder forwards TCP connections to target byte for byte, except that it
// closes the first dropAccept connections at once (a listener restarting) and then
// the first dropAuth connections that carry an NTLM AUTHENTICATE, before the
// AUTHENTICATE reaches the listener (a connection lost mid-handshake).
func flakyForwarder(t *testing.T, target string, dropAccept, dropAuth int) (port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	var accepted, authDrops atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if accepted.Add(1) <= int64(dropAccept) {
				_ = c.Close()
				continue
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() {
					defer u.Close()
					defer c.Close()
					var tail []byte // the end of the previous read: a token may span reads
					buf := make([]byte, 32<<10)
					for {
						n, err := c.Read(buf)
						if n > 0 {
							window := append(tail, buf[:n]...)
							if strings.Contains(string(window), authenticateB64) && authDrops.Add(1) <= int64(dropAuth) {
								return
							}
							tail = append([]byte(nil), window[max(0, len(window)-len(authenticateB64)):]...)
							if _, werr := u.Write(buf[:n]); werr != nil {
								return
							}
						}
						if err != nil {
							return
						}
					}
				}()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestWinRMNTLMEncryptedHTTPNeverUnencrypted: whatever happens on an NTLM host over
// plain HTTP (healthy, wrong password, refused logon, a dropped connection, a
// connection lost with the AUTHENTICATE, a reset during Create), the listener never
// receives a SOAP body in clear: its Unencrypted counter (a non-empty message that is
// not multipart/encrypted) stays 0, every SOAP request it served was sealed, and no
// Basic header arrives. (masterzen's Encryption re-sent the message unencrypted
// through go-ntlmssp whenever its encrypted handshake failed, e.g. when the connection
// was lost during it.) A refused logon is one failed logon.
func TestWinRMNTLMEncryptedHTTPNeverUnencrypted(t *testing.T) {
	for _, tc := range []struct {
		name     string
		password string
		faults   winrmtest.Faults
		drop     int                   // connections closed on accept
		dropAuth int                   // connections closed with their AUTHENTICATE
		want     evidence.FailureClass // "" collected
	}{
		{name: "healthy", password: testPassword},
		{name: "wrong password", password: "wrong", want: evidence.FailAuth},
		{name: "logon refused", password: testPassword, faults: winrmtest.Faults{Unauthorized: true}, want: evidence.FailAuth},
		{name: "first connection dropped", password: testPassword, drop: 1},
		{name: "connection lost with the AUTHENTICATE", password: testPassword, dropAuth: 1},
		{name: "reset on create", password: testPassword, faults: winrmtest.Faults{ResetOnCreate: true}, want: evidence.FailConnect},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newNTLMEnv(t, false, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, map[string]winrmtest.Faults{"h": tc.faults})
			h := env.hosts["h"]
			if tc.drop > 0 || tc.dropAuth > 0 {
				h.Port = flakyForwarder(t, net.JoinHostPort(h.Address, strconv.Itoa(h.Port)), tc.drop, tc.dropAuth)
			}
			c := ntlmHTTPCollectorOpts(t, testUser, tc.password, winrm.Options{Retries: 1})
			ev := c.Collect(context.Background(), h)
			switch {
			case tc.want == "" && ev.Status != evidence.StatusCollected:
				t.Errorf("want collected, got %s %+v", ev.Status, ev.Failure)
			case tc.want != "" && (ev.Failure == nil || ev.Failure.Class != tc.want):
				t.Errorf("want %s, got %s %+v", tc.want, ev.Status, ev.Failure)
			}
			st := env.fleet.Stats()
			if st["Unencrypted"] != 0 || st["DecryptFailed"] != 0 || st["Encrypted"] != soapRequests(st) {
				t.Errorf("requests %v; want every SOAP message sealed, none in clear", st)
			}
			if n := env.fleet.BasicAuthRequests(); n != 0 {
				t.Errorf("%d Basic requests", n)
			}
			if tc.want == evidence.FailAuth && len(env.fleet.NTLMFailures()) != 1 {
				t.Errorf("failed logons %+v; want one", env.fleet.NTLMFailures())
			}
		})
	}
}

// TestWinRMNTLMEncryptedHTTPUsesDialer: NTLM over HTTP dials through
// Options.DialContext (masterzen's Encryption used its own HTTP client): the
// host's address does not resolve, only the dialer knows where it is.
func TestWinRMNTLMEncryptedHTTPUsesDialer(t *testing.T) {
	env := newNTLMEnv(t, false, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, nil)
	dial, dials := redirectDial(env.hosts["h"], "rdsh.invalid:5985")
	c := ntlmHTTPCollectorOpts(t, testUser, testPassword, winrm.Options{DialContext: dial})
	ev := c.Collect(context.Background(), evidence.HostRef{Name: "h", Address: "rdsh.invalid", Port: 5985, Roles: []string{evidence.RoleSessionHost}})
	if ev.Status != evidence.StatusCollected {
		t.Fatalf("%s %+v", ev.Status, ev.Failure)
	}
	if st := env.fleet.Stats(); dials.Load() < 1 || int(dials.Load()) > st["NTLMAuthenticated"]+1 {
		t.Errorf("%d dials, requests %v; want one connection per logon (plus the probe's, if closed)", dials.Load(), st)
	}
}

// TestWinRMNTLMEncryptedHTTPHonoursContext: a Create that is never answered ends with
// the host deadline, and a cancelled run ends at once.
func TestWinRMNTLMEncryptedHTTPHonoursContext(t *testing.T) {
	env := newNTLMEnv(t, false, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, map[string]winrmtest.Faults{"h": {Hang: true}})
	checkHonoursContext(t, env.hosts["h"], func(opts winrm.Options) *winrm.Collector {
		return ntlmHTTPCollectorOpts(t, testUser, testPassword, opts)
	})
}

// TestNTLMHTTPConcurrentRequests: masterzen may send requests of one host at the same
// time (Receive in its own goroutine). Over HTTPS and plain HTTP, concurrent requests
// each get an authenticated connection of their own and the answers arrive (each a
// "shell not found" fault, typed; sealed over HTTP); with a wrong password,
// concurrent first requests still send ONE AUTHENTICATE in all: one failed logon,
// every request class auth.
func TestNTLMHTTPConcurrentRequests(t *testing.T) {
	const n = 12
	for _, tls := range []bool{true, false} {
		env := newNTLMEnv(t, tls, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, nil)
		h := env.hosts["h"]
		addr := net.JoinHostPort(h.Address, strconv.Itoa(h.Port))
		url := "http://" + addr + "/wsman"
		if tls {
			url = "https://" + addr + "/wsman"
		}
		params := *masterzen.DefaultParameters
		run := func(password string) ([]error, int) {
			cl := winrm.NewNTLMHTTPForTest(url, addr, testUser, password, env.fleet.CACertPEM())
			defer cl.Close()
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					msg := masterzen.NewSignalRequest(url, fmt.Sprintf("00000000-0000-0000-0000-%012d", i), "C", &params)
					_, errs[i] = cl.Post(context.Background(), msg.String())
				}()
			}
			wg.Wait()
			return errs, cl.Logons()
		}

		errs, logons := run(testPassword)
		for i, err := range errs {
			if !errors.Is(err, winrm.ErrShellNotFound) {
				t.Errorf("tls=%v: request %d: %v; want the shell-not-found fault", tls, i, err)
			}
		}
		st := env.fleet.Stats()
		sealed := n
		if tls {
			sealed = 0
		}
		if st["Signal"] != n || st["Encrypted"] != sealed || st["Unencrypted"] != 0 || st["DecryptFailed"] != 0 || st["NTLMFailed"] != 0 {
			t.Errorf("tls=%v: requests %v", tls, st)
		}
		if logons < 1 || logons > n || st["NTLMAuthenticated"] != logons {
			t.Errorf("tls=%v: %d logons sent, server %v", tls, logons, st)
		}

		errs, logons = run("wrong")
		for i, err := range errs {
			if winrm.Classify(err) != evidence.FailAuth {
				t.Errorf("tls=%v: wrong password, request %d: %v; want auth", tls, i, err)
			}
		}
		if fails := env.fleet.NTLMFailures(); logons != 1 || len(fails) != 1 {
			t.Errorf("tls=%v: wrong password: %d AUTHENTICATE sent, failed logons %+v; want exactly one", tls, logons, fails)
		}
	}
}
