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
// by default. Over HTTPS the client is go-ntlmssp's Negotiator under our transport;
// over plain HTTP it is this package's own message-encryption client (winrm_ntlmhttp.go,
// bodgit/ntlmssp security contexts).

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
// NTLMv2 handshake, without a Basic header ever reaching the listener; with either
// scheme the listener may offer.
func TestWinRMNTLMCollected(t *testing.T) {
	for _, offerNTLM := range []bool{false, true} {
		env := newNTLMEnv(t, true, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, map[string]winrmtest.Faults{"h": {OfferNTLM: offerNTLM}})
		c := ntlmCollector(t, env, testUser, testPassword, winrm.Options{})
		ev := c.Collect(context.Background(), env.hosts["h"])
		if ev.Status != evidence.StatusCollected {
			t.Fatalf("offerNTLM=%v: %s %+v", offerNTLM, ev.Status, ev.Failure)
		}
		if ev.OS == nil || ev.OS.ComputerName != "H" {
			t.Errorf("offerNTLM=%v: evidence not from the host: %+v", offerNTLM, ev.OS)
		}
		st := env.fleet.Stats()
		scheme := "Negotiate"
		if offerNTLM {
			scheme = "NTLM"
		}
		if st["NTLMAuthenticated"] < 1 || st["NTLMFailed"] != 0 || st["NTLMChallenge:"+scheme] != st["NTLMChallenge"] {
			t.Errorf("offerNTLM=%v: requests %v; want NTLM (%s) logons and no failure", offerNTLM, st, scheme)
		}
		// One logon per TCP connection, not per request: later requests ride on the
		// authenticated connection.
		if st["NTLMAuthenticated"] >= st["Create"]+st["Command"]+st["Receive"]+st["Signal"]+st["Delete"] {
			t.Errorf("offerNTLM=%v: requests %v; every request needed its own handshake", offerNTLM, st)
		}
		if n := env.fleet.BasicAuthRequests(); n != 0 {
			t.Errorf("offerNTLM=%v: %d Basic requests reached the listener", offerNTLM, n)
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

// TestWinRMNTLMUserForms: the user names rdsaudit accepts, as go-ntlmssp sends them.
// DOMAIN\user and a bare user are sent as user "auditor" in the domain the listener
// named in its CHALLENGE (go-ntlmssp does not send the configured domain, see
// TestWinRMNTLMOtherDomain); a UPN is sent whole with an empty domain, and the hash is
// computed over it that way, which the listener resolves as a DC does.
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
		if !strings.Contains(user, "@") {
			wantUser, wantDomain = user[strings.LastIndexByte(user, '\\')+1:], "LAB"
		}
		if fails[0].User != wantUser || fails[0].Domain != wantDomain {
			t.Errorf("user %q sent as user %q domain %q; want %q %q", user, fails[0].User, fails[0].Domain, wantUser, wantDomain)
		}
	}
}

// TestWinRMNTLMOtherDomain pins a limitation of go-ntlmssp (the HTTPS client): it
// drops the domain of DOMAIN\user and authenticates in the domain the listener names in
// its CHALLENGE. An account of another (trusted) domain therefore cannot log on over
// HTTPS; Windows would look up LAB\auditor, as the simulator does. If this test fails
// because the logon succeeds, go-ntlmssp now sends the configured domain.
func TestWinRMNTLMOtherDomain(t *testing.T) {
	env := startFleet(t, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, winrmtest.FleetServerOptions{
		TLS: true, Users: map[string]string{`OTHER\auditor`: testPassword},
		NTLM: winrmtest.NTLMOptions{Enabled: true, Domain: "LAB"},
	})
	c := ntlmCollector(t, env, `OTHER\auditor`, testPassword, winrm.Options{})
	if ev := c.Collect(context.Background(), env.hosts["h"]); ev.Failure == nil || ev.Failure.Class != evidence.FailAuth {
		t.Fatalf("want auth, got %s %+v", ev.Status, ev.Failure)
	}
	if fails := env.fleet.NTLMFailures(); len(fails) != 1 || fails[0].Domain != "LAB" || fails[0].User != "auditor" {
		t.Errorf("failed logons %+v; want auditor in LAB (the configured OTHER dropped)", fails)
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

// TestWinRMNTLMEncryptedHTTPOtherDomain: over HTTP the domain of DOMAIN\user is sent
// (unlike go-ntlmssp over HTTPS, TestWinRMNTLMOtherDomain): an account of another
// domain logs on.
func TestWinRMNTLMEncryptedHTTPOtherDomain(t *testing.T) {
	env := startFleet(t, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, winrmtest.FleetServerOptions{
		Users: map[string]string{`OTHER\auditor`: testPassword},
		NTLM:  winrmtest.NTLMOptions{Enabled: true, Domain: "LAB"},
	})
	c := ntlmHTTPCollector(t, `OTHER\auditor`, testPassword)
	if ev := c.Collect(context.Background(), env.hosts["h"]); ev.Status != evidence.StatusCollected {
		t.Fatalf("%s %+v (failed logons %+v)", ev.Status, ev.Failure, env.fleet.NTLMFailures())
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
// time (Receive in its own goroutine). Concurrent requests each get an authenticated
// connection of their own and the answers unseal (each a sealed "shell not found"
// fault, typed); with a wrong password, concurrent first requests still send ONE
// AUTHENTICATE in all: one failed logon, every request class auth.
func TestNTLMHTTPConcurrentRequests(t *testing.T) {
	const n = 12
	env := newNTLMEnv(t, false, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, nil)
	h := env.hosts["h"]
	addr := net.JoinHostPort(h.Address, strconv.Itoa(h.Port))
	url := "http://" + addr + "/wsman"
	params := *masterzen.DefaultParameters
	run := func(password string) ([]error, int) {
		cl := winrm.NewNTLMHTTPForTest(url, addr, testUser, password)
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
			t.Errorf("request %d: %v; want the sealed shell-not-found fault", i, err)
		}
	}
	st := env.fleet.Stats()
	if st["Signal"] != n || st["Encrypted"] != n || st["Unencrypted"] != 0 || st["DecryptFailed"] != 0 || st["NTLMFailed"] != 0 {
		t.Errorf("requests %v", st)
	}
	if logons < 1 || logons > n || st["NTLMAuthenticated"] != logons {
		t.Errorf("%d logons sent, server %v", logons, st)
	}

	errs, logons = run("wrong")
	for i, err := range errs {
		if winrm.Classify(err) != evidence.FailAuth {
			t.Errorf("wrong password, request %d: %v; want auth", i, err)
		}
	}
	if fails := env.fleet.NTLMFailures(); logons != 1 || len(fails) != 1 {
		t.Errorf("wrong password: %d AUTHENTICATE sent, failed logons %+v; want exactly one", logons, fails)
	}
}
