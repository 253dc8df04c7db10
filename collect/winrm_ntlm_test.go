package collect_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/collect/winrmtest"
)

// NTLM end to end: the real collector (auth ntlm, the default) against simulated hosts
// that verify NTLMv2 for real (winrmtest/ntlm.go) and refuse Basic, as Windows does
// by default. Over HTTPS the client is go-ntlmssp's Negotiator under our transport.

// newNTLMEnv starts an NTLM fleet (domain LAB, DNS domain lab.test) whose only account
// is LAB\auditor with testPassword.
func newNTLMEnv(t testing.TB, tls bool, evs map[string]*collect.Evidence, faults map[string]winrmtest.Faults) *testEnv {
	t.Helper()
	f, err := winrmtest.NewFleet(evs, winrmtest.FleetServerOptions{
		TLS: tls, Users: map[string]string{testUser: testPassword}, Faults: faults,
		NTLM: winrmtest.NTLMOptions{Enabled: true, Domain: "LAB", DNSDomain: "lab.test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{fleet: f, hosts: map[string]collect.HostRef{}}
	for name := range evs {
		h, err := f.HostRef(name, collect.RoleSessionHost)
		if err != nil {
			t.Fatal(err)
		}
		env.hosts[name] = h
	}
	t.Cleanup(func() {
		f.Close()
		if n := f.OpenShells(); n != 0 {
			t.Errorf("%d shells left open", n)
		}
	})
	return env
}

func ntlmCollector(t testing.TB, env *testEnv, user, password string, opts collect.WinRMOptions) *collect.WinRMCollector {
	t.Helper()
	opts.Auth = collect.AuthNTLM
	opts.Scheme = "https"
	opts.CAPEM = env.fleet.CACertPEM()
	if opts.RetryBackoff == 0 {
		opts.RetryBackoff = 5 * time.Millisecond
	}
	if opts.HostTimeout == 0 {
		opts.HostTimeout = 20 * time.Second
	}
	c, err := collect.NewWinRMCollector(opts, collect.CredentialMap{"*": {Name: "lab", Username: user, Password: password}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestWinRMNTLMCollected: the default auth collects a host over HTTPS, through a real
// NTLMv2 handshake, without a Basic header ever reaching the listener; with either
// scheme the listener may offer.
func TestWinRMNTLMCollected(t *testing.T) {
	for _, offerNTLM := range []bool{false, true} {
		env := newNTLMEnv(t, true, map[string]*collect.Evidence{"h": virtualHost("h", false, 0)}, map[string]winrmtest.Faults{"h": {OfferNTLM: offerNTLM}})
		c := ntlmCollector(t, env, testUser, testPassword, collect.WinRMOptions{})
		ev := c.Collect(context.Background(), env.hosts["h"])
		if ev.Status != collect.StatusCollected {
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
	env := newNTLMEnv(t, true, map[string]*collect.Evidence{"h": virtualHost("h", false, 0)}, nil)
	c := ntlmCollector(t, env, testUser, "wrong-"+testPassword, collect.WinRMOptions{})
	ev := c.Collect(context.Background(), env.hosts["h"])
	if ev.Failure == nil || ev.Failure.Class != collect.FailAuth || ev.Failure.Attempts != 1 {
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
		env := newNTLMEnv(t, true, map[string]*collect.Evidence{"h": virtualHost("h", false, 0)}, nil)
		c := ntlmCollector(t, env, user, testPassword, collect.WinRMOptions{})
		if ev := c.Collect(context.Background(), env.hosts["h"]); ev.Status != collect.StatusCollected {
			t.Errorf("user %q: %s %+v (server: %+v)", user, ev.Status, ev.Failure, env.fleet.NTLMFailures())
		}
		// And the same form with a wrong password fails, with the names as sent.
		env = newNTLMEnv(t, true, map[string]*collect.Evidence{"h": virtualHost("h", false, 0)}, nil)
		c = ntlmCollector(t, env, user, "wrong", collect.WinRMOptions{})
		if ev := c.Collect(context.Background(), env.hosts["h"]); ev.Failure == nil || ev.Failure.Class != collect.FailAuth {
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
	f, err := winrmtest.NewFleet(map[string]*collect.Evidence{"h": virtualHost("h", false, 0)}, winrmtest.FleetServerOptions{
		TLS: true, Users: map[string]string{`OTHER\auditor`: testPassword},
		NTLM: winrmtest.NTLMOptions{Enabled: true, Domain: "LAB"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, _ := f.HostRef("h", collect.RoleSessionHost)
	env := &testEnv{fleet: f, hosts: map[string]collect.HostRef{"h": h}}
	c := ntlmCollector(t, env, `OTHER\auditor`, testPassword, collect.WinRMOptions{})
	if ev := c.Collect(context.Background(), h); ev.Failure == nil || ev.Failure.Class != collect.FailAuth {
		t.Fatalf("want auth, got %s %+v", ev.Status, ev.Failure)
	}
	if fails := f.NTLMFailures(); len(fails) != 1 || fails[0].Domain != "LAB" || fails[0].User != "auditor" {
		t.Errorf("failed logons %+v; want auditor in LAB (the configured OTHER dropped)", fails)
	}
}

// TestWinRMNTLMLockout: with NTLM too, a wrong password reaches only LockoutThreshold
// hosts, however many run at once: counted on the listeners as verified, failed logons.
func TestWinRMNTLMLockout(t *testing.T) {
	const n = 8
	evs := map[string]*collect.Evidence{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("rdsh%02d", i)
		evs[name] = virtualHost(name, false, 0)
	}
	env := newNTLMEnv(t, true, evs, nil)
	c := ntlmCollector(t, env, testUser, "wrong-"+testPassword, collect.WinRMOptions{})
	var hosts []collect.HostRef
	for name := range evs {
		hosts = append(hosts, env.hosts[name])
	}
	got := map[collect.FailureClass]int{}
	collect.RunFleet(context.Background(), c, hosts, collect.FleetOptions{Concurrency: n}, func(ev *collect.Evidence) {
		if ev.Failure == nil {
			t.Errorf("%s collected with a wrong password", ev.Host.Name)
			return
		}
		got[ev.Failure.Class]++
	})
	if got[collect.FailAuth] != collect.DefaultLockoutThreshold || got[collect.FailCredential] != n-collect.DefaultLockoutThreshold {
		t.Errorf("classes %v; want %d auth and the rest credential_locked", got, collect.DefaultLockoutThreshold)
	}
	if fails := env.fleet.NTLMFailures(); len(fails) != collect.DefaultLockoutThreshold {
		t.Errorf("%d failed logons on the listeners, want %d: %+v", len(fails), collect.DefaultLockoutThreshold, fails)
	}
	if st := env.fleet.Stats(); st["NTLMAuthenticated"] != 0 || st["Create"] != 0 {
		t.Errorf("requests %v", st)
	}
}

// TestWinRMNTLMHostRefusesBasic: an NTLM host has Basic off, as Windows by default: the
// collector with auth basic is refused (class auth) although the password is right, and
// its 401s do not offer Basic.
func TestWinRMNTLMHostRefusesBasic(t *testing.T) {
	env := newNTLMEnv(t, true, map[string]*collect.Evidence{"h": virtualHost("h", false, 0)}, nil)
	c := newCollector(t, env, collect.WinRMOptions{Auth: collect.AuthBasic, HostTimeout: 10 * time.Second}, zerolog.Nop())
	ev := c.Collect(context.Background(), env.hosts["h"])
	if ev.Failure == nil || ev.Failure.Class != collect.FailAuth {
		t.Fatalf("want auth, got %s %+v", ev.Status, ev.Failure)
	}
	if env.fleet.BasicAuthRequests() == 0 {
		t.Error("the Basic request never reached the listener")
	}
	if st := env.fleet.Stats(); st["Create"] != 0 || st["NTLMAuthenticated"] != 0 {
		t.Errorf("requests %v", st)
	}
}

func ntlmHTTPCollector(t testing.TB, user, password string) *collect.WinRMCollector {
	t.Helper()
	c, err := collect.NewWinRMCollector(collect.WinRMOptions{Scheme: "http", Auth: collect.AuthNTLM, RetryBackoff: 5 * time.Millisecond, HostTimeout: 20 * time.Second},
		collect.CredentialMap{"*": {Name: "lab", Username: user, Password: password}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestWinRMNTLMEncryptedHTTP: over plain HTTP, auth ntlm goes through masterzen's
// message encryption (bodgit/ntlmssp): every SOAP message is sealed and signed with the
// session's keys, and the listener (AllowUnencrypted=false) unseals, verifies and seals
// its answers; an unencrypted message would be refused.
func TestWinRMNTLMEncryptedHTTP(t *testing.T) {
	for _, user := range []string{testUser, "auditor@lab.test"} {
		env := newNTLMEnv(t, false, map[string]*collect.Evidence{"h": virtualHost("h", false, 0)}, nil)
		c := ntlmHTTPCollector(t, user, testPassword)
		ev := c.Collect(context.Background(), env.hosts["h"])
		if ev.Status != collect.StatusCollected {
			t.Fatalf("user %q: %s %+v (server %v %+v)", user, ev.Status, ev.Failure, env.fleet.Stats(), env.fleet.NTLMFailures())
		}
		st := env.fleet.Stats()
		soap := st["Create"] + st["Command"] + st["Receive"] + st["Signal"] + st["Delete"]
		if st["Encrypted"] != soap || soap < 4 || st["Unencrypted"] != 0 || st["DecryptFailed"] != 0 || st["NTLMFailed"] != 0 {
			t.Errorf("user %q: requests %v; want every SOAP message sealed", user, st)
		}
		if n := env.fleet.BasicAuthRequests(); n != 0 {
			t.Errorf("user %q: %d Basic requests", user, n)
		}
	}
}

// TestWinRMNTLMEncryptedHTTPWrongPassword: over HTTP a wrong password is class auth,
// and the lockout gate still stops at LockoutThreshold hosts. But each attempt costs
// TWO failed logons: when masterzen's encryption handshake (bodgit/ntlmssp) is refused,
// Encryption.Post falls back to its plain NTLM transporter (go-ntlmssp Negotiator, not
// reachable from rdsaudit), which logs on again with the same password (and would send
// the SOAP message unencrypted). rdsaudit's lockout accounting assumes one failed logon
// per host: over HTTP a wrong password costs 2 x LockoutThreshold failed logons. This
// test pins that count; fix the transport, then lower it.
func TestWinRMNTLMEncryptedHTTPWrongPassword(t *testing.T) {
	const n = 6
	evs := map[string]*collect.Evidence{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("rdsh%02d", i)
		evs[name] = virtualHost(name, false, 0)
	}
	env := newNTLMEnv(t, false, evs, nil)
	c := ntlmHTTPCollector(t, testUser, "wrong-"+testPassword)
	var hosts []collect.HostRef
	for name := range evs {
		hosts = append(hosts, env.hosts[name])
	}
	got := map[collect.FailureClass]int{}
	collect.RunFleet(context.Background(), c, hosts, collect.FleetOptions{Concurrency: n}, func(ev *collect.Evidence) {
		if ev.Failure == nil {
			t.Errorf("%s collected with a wrong password", ev.Host.Name)
			return
		}
		if ev.Failure.Class == collect.FailAuth && ev.Failure.Attempts != 1 {
			t.Errorf("%s: auth retried (%d attempts)", ev.Host.Name, ev.Failure.Attempts)
		}
		got[ev.Failure.Class]++
	})
	if got[collect.FailAuth] != collect.DefaultLockoutThreshold || got[collect.FailCredential] != n-collect.DefaultLockoutThreshold {
		t.Errorf("classes %v; want %d auth and the rest credential_locked", got, collect.DefaultLockoutThreshold)
	}
	fails := env.fleet.NTLMFailures()
	for _, f := range fails {
		if !strings.Contains(f.Reason, "NTProofStr") {
			t.Errorf("failed logon for another reason: %+v", f)
		}
	}
	if len(fails) != 2*collect.DefaultLockoutThreshold {
		t.Errorf("%d failed logons on the listeners; pinned at %d (two per attempt, see above)", len(fails), 2*collect.DefaultLockoutThreshold)
	}
	if st := env.fleet.Stats(); st["Create"] != 0 || st["Encrypted"] != 0 {
		t.Errorf("requests %v", st)
	}
}
