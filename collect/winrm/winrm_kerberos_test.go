package winrm_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/collect/winrm"
	"github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest"
	"github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest/kdctest"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// Kerberos end to end: the real collector (auth kerberos: our SPNEGO client,
// winrm_kerberos.go, with gokrb5) gets its tickets from a real MIT KDC
// (kdctest.Start, a throwaway realm) and presents them over HTTPS to simulated
// hosts that verify them with the service keytab exported from that KDC
// (winrmtest/kerberos.go). The KDC's log tells what happened at the KDC.

const (
	krbRealm = "RDSAUDIT.TEST"
	krbSPN   = "HTTP/localhost"
)

type krbEnv struct {
	*testEnv
	kdc      *kdctest.KDC
	password string // auditor's password at the KDC
}

// newKerberosEnv starts a realm with the user auditor and the service HTTP/localhost,
// and an HTTPS fleet verifying tickets for HTTP/localhost.
func newKerberosEnv(t testing.TB, evs map[string]*evidence.Evidence, faults map[string]winrmtest.Faults) *krbEnv {
	t.Helper()
	return newKerberosEnvTLS(t, true, evs, faults)
}

// newKerberosEnvTLS is newKerberosEnv with HTTPS (tls) or plain HTTP listeners.
func newKerberosEnvTLS(t testing.TB, tls bool, evs map[string]*evidence.Evidence, faults map[string]winrmtest.Faults) *krbEnv {
	t.Helper()
	kdc := kdctest.Start(t, krbRealm)
	pw := kdctest.RandomPassword()
	kdc.AddUser("auditor", pw)
	kt := kdc.AddService(krbSPN)
	t.Logf("KDC %s ready in %v", kdc.Addr, kdc.Setup)
	env := startFleet(t, evs, winrmtest.FleetServerOptions{
		TLS: tls, Faults: faults,
		Kerberos: winrmtest.KerberosOptions{KeytabPath: kt, SPN: krbSPN},
	})
	return &krbEnv{testEnv: env, kdc: kdc, password: pw}
}

// kerberosCollector: auth kerberos over HTTPS to 127.0.0.1 (the address in the
// certificate), trusting the fleet's CA, with the test realm's krb5.conf and SPN.
func kerberosCollector(t testing.TB, env *krbEnv, user, password string, opts winrm.Options) *winrm.Collector {
	t.Helper()
	opts.Auth = winrm.AuthKerberos
	opts.Scheme = "https"
	opts.CAPEM = env.fleet.CACertPEM()
	opts.Krb5ConfPath = env.kdc.Krb5Conf
	if opts.KrbRealm == "" {
		opts.KrbRealm = krbRealm
	}
	if opts.KrbSPN == "" {
		opts.KrbSPN = krbSPN
	}
	return labCollector(t, user, password, opts)
}

// TestWinRMKerberosCollected: the collector logs on at the KDC, presents a service
// ticket for HTTP/localhost and collects the host; the listener verified the tickets.
func TestWinRMKerberosCollected(t *testing.T) {
	env := newKerberosEnv(t, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, nil)
	c := kerberosCollector(t, env, "auditor", env.password, winrm.Options{})
	ev := c.Collect(context.Background(), env.hosts["h"])
	if ev.Status != evidence.StatusCollected {
		t.Fatalf("%s %+v\nKDC log:\n%s", ev.Status, ev.Failure, env.kdc.Log())
	}
	if ev.OS == nil || ev.OS.ComputerName != "H" {
		t.Errorf("evidence not from the host: %+v", ev.OS)
	}
	st := env.fleet.Stats()
	if st["KerberosAuthenticated"] < 1 || st["KerberosFailed"] != 0 || st["Unauthorized"] != 0 {
		t.Errorf("requests %v; want Kerberos logons and no failure", st)
	}
	if fails := env.fleet.KerberosFailures(); len(fails) != 0 {
		t.Errorf("refused tokens: %+v", fails)
	}
	if n := env.fleet.BasicAuthRequests(); n != 0 {
		t.Errorf("%d Basic requests reached the listener", n)
	}
	// One logon (TGT) and one service ticket for the host attempt, and a ticket only on
	// the first request of a connection (masterzen's ClientKerberos did an AS and a TGS
	// exchange and sent a ticket with every SOAP message).
	soap := st["Create"] + st["Command"] + st["Receive"] + st["Signal"] + st["Delete"]
	log := env.kdc.Log()
	t.Logf("%d SOAP requests, %d tickets accepted, %d TGTs, %d service tickets", soap, st["KerberosAuthenticated"], kdcIssued(log, "AS_REQ"), kdcIssued(log, "TGS_REQ"))
	if kdcIssued(log, "AS_REQ") != 1 || kdcIssued(log, "TGS_REQ") != 1 {
		t.Errorf("%d TGTs and %d service tickets issued, want one each:\n%s", kdcIssued(log, "AS_REQ"), kdcIssued(log, "TGS_REQ"), log)
	}
	if st["KerberosAuthenticated"] >= soap {
		t.Errorf("%d tickets for %d SOAP requests: want one per connection, not one per request", st["KerberosAuthenticated"], soap)
	}
	if !strings.Contains(env.kdc.Log(), "auditor@"+krbRealm+" for "+krbSPN+"@"+krbRealm) {
		t.Errorf("KDC issued no ticket for %s:\n%s", krbSPN, env.kdc.Log())
	}
}

// TestWinRMKerberosWrongPassword: the KDC refuses the pre-authentication; nothing
// reaches the listener; class auth after one attempt; the password is not printed.
func TestWinRMKerberosWrongPassword(t *testing.T) {
	env := newKerberosEnv(t, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, nil)
	c := kerberosCollector(t, env, "auditor", "wrong-"+env.password, winrm.Options{})
	ev := c.Collect(context.Background(), env.hosts["h"])
	if ev.Failure == nil || ev.Failure.Class != evidence.FailAuth || ev.Failure.Attempts != 1 {
		t.Fatalf("want auth after one attempt, got %s %+v", ev.Status, ev.Failure)
	}
	if strings.Contains(ev.Failure.Message, env.password) {
		t.Error("password in message")
	}
	if st := env.fleet.Stats(); len(st) != 0 {
		t.Errorf("requests %v reached the listener; the KDC should have refused the logon", st)
	}
	// No pre-authentication is assumed: the first AS-REQ carries no timestamp (the KDC
	// answers NEEDED_PREAUTH with the salt, no failed logon), the second the one that
	// fails. With gokrb5's AssumePreAuthentication (masterzen's setting) the first
	// guess with the default salt failed as well: two failed logons per attempt.
	if k := strings.Count(env.kdc.Log(), "PREAUTH_FAILED"); k != 1 {
		t.Errorf("%d failed pre-authentications at the KDC, want 1:\n%s", k, env.kdc.Log())
	}
}

// TestWinRMKerberosWrongSPN: a ticket for another service principal (a real one, from
// the same KDC) is refused by the listener: class auth.
func TestWinRMKerberosWrongSPN(t *testing.T) {
	env := newKerberosEnv(t, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, nil)
	env.kdc.AddService("HTTP/other.rdsaudit.test")
	c := kerberosCollector(t, env, "auditor", env.password, winrm.Options{KrbSPN: "HTTP/other.rdsaudit.test"})
	ev := c.Collect(context.Background(), env.hosts["h"])
	if ev.Failure == nil || ev.Failure.Class != evidence.FailAuth || ev.Failure.Attempts != 1 {
		t.Fatalf("want auth after one attempt, got %s %+v", ev.Status, ev.Failure)
	}
	fails := env.fleet.KerberosFailures()
	if len(fails) != 1 {
		t.Errorf("refused tokens %+v; want one", fails)
	}
	if st := env.fleet.Stats(); st["KerberosAuthenticated"] != 0 || st["Create"] != 0 {
		t.Errorf("requests %v", st)
	}
}

// TestWinRMKerberosLockout: Kerberos failures count for the lockout gate like NTLM's:
// with a wrong password LockoutThreshold hosts fail with class auth, the others are
// skipped. The KDC sees ONE failed pre-authentication in the whole run: the logon is
// the credential's, shared by its hosts, and once the KDC refused it no other host
// sends the password again. (masterzen's ClientKerberos: two per host, six in all;
// before Classify knew the KDC's errors, every host tried the password.)
func TestWinRMKerberosLockout(t *testing.T) {
	env, hosts := krbFleet(t, 6, nil)
	runLockout(t, kerberosCollector(t, env, "auditor", "wrong-"+env.password, winrm.Options{}), hosts)
	if k := strings.Count(env.kdc.Log(), "PREAUTH_FAILED"); k != 1 {
		t.Errorf("%d failed pre-authentications at the KDC, want 1 for the run:\n%s", k, env.kdc.Log())
	}
	if k := kdcCount(env.kdc.Log(), "AS_REQ", "NEEDED_PREAUTH"); k != 1 {
		t.Errorf("%d logons started at the KDC, want 1:\n%s", k, env.kdc.Log())
	}
	if st := env.fleet.Stats(); len(st) != 0 {
		t.Errorf("requests %v reached the listeners", st)
	}
}

// TestWinRMKerberosUserForms: the user names a Credential documents (user, DOMAIN\user,
// user@REALM) all log on as auditor@RDSAUDIT.TEST; with user@realm the realm may come
// from the name alone (no KrbRealm).
func TestWinRMKerberosUserForms(t *testing.T) {
	env := newKerberosEnv(t, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, nil)
	for _, tc := range []struct{ user, realm string }{
		{"auditor", krbRealm},
		{`RDSAUDIT\auditor`, krbRealm},
		{"auditor@" + krbRealm, krbRealm},
		{"auditor@rdsaudit.test", "-"},
	} {
		opts := winrm.Options{KrbRealm: tc.realm}
		c := kerberosCollector(t, env, tc.user, env.password, opts)
		if tc.realm == "-" {
			// kerberosCollector fills an empty KrbRealm; build this one without it.
			opts.Auth, opts.Scheme, opts.CAPEM, opts.Krb5ConfPath, opts.KrbRealm, opts.KrbSPN = winrm.AuthKerberos, "https", env.fleet.CACertPEM(), env.kdc.Krb5Conf, "", krbSPN
			var err error
			if c, err = winrm.New(opts, winrm.CredentialMap{"*": {Name: "lab", Username: tc.user, Password: env.password}}, zerolog.Nop()); err != nil {
				t.Fatal(err)
			}
		}
		if ev := c.Collect(context.Background(), env.hosts["h"]); ev.Status != evidence.StatusCollected {
			t.Errorf("user %q realm %q: %s %+v", tc.user, tc.realm, ev.Status, ev.Failure)
		}
	}
}

// TestClassifyKerberos: the KDC's refusals of a logon, as gokrb5 words them (also the
// messages of masterzen's ClientKerberos, no longer used), are authentication failures; a KDC that cannot be
// reached or a realm missing from krb5.conf is not (no logon happened).
func TestClassifyKerberos(t *testing.T) {
	pre := "create shell: unable to set SPNego Header: could not acquire client credential: could not get valid TGT for client's realm: [Root cause: KDC_Error] KDC_Error: AS Exchange Error: kerberos error response from KDC: "
	for msg, want := range map[string]evidence.FailureClass{
		pre + "KRB Error: (24) KDC_ERR_PREAUTH_FAILED Pre-authentication information was invalid - PREAUTH_FAILED":   evidence.FailAuth,
		pre + "KRB Error: (6) KDC_ERR_C_PRINCIPAL_UNKNOWN Client not found in Kerberos database - CLIENT_NOT_FOUND":  evidence.FailAuth,
		pre + "KRB Error: (18) KDC_ERR_CLIENT_REVOKED Clients credentials have been revoked":                         evidence.FailAuth,
		pre + "KRB Error: (23) KDC_ERR_KEY_EXPIRED Password has expired - change password to reset":                  evidence.FailAuth,
		"AS Exchange Error: AS_REP is not valid or client password/keytab incorrect":                                 evidence.FailAuth,
		"request returned: 401 - 401 Unauthorized. Response body:\n":                                                 evidence.FailAuth,
		"[Root cause: Networking_Error] AS Exchange Error: no KDCs defined in configuration for realm rdsaudit.test": evidence.FailProtocol,
	} {
		if got := winrm.Classify(fmt.Errorf("%s", msg)); got != want {
			t.Errorf("Classify(%q) = %s, want %s", msg, got, want)
		}
	}
}

// kdcCount counts the KDC log's lines of a request kind (AS_REQ, TGS_REQ) with a result
// (ISSUE, NEEDED_PREAUTH, PREAUTH_FAILED, ...).
func kdcCount(log, kind, result string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, kind+" ") && strings.Contains(l, ": "+result+":") {
			n++
		}
	}
	return n
}

// kdcIssued counts the tickets the KDC issued: TGTs (AS_REQ) or service tickets (TGS_REQ).
func kdcIssued(log, kind string) int { return kdcCount(log, kind, "ISSUE") }

// krbFleet is n Kerberos hosts rdshNN and their HostRefs.
func krbFleet(t *testing.T, n int, faults map[string]winrmtest.Faults) (*krbEnv, []evidence.HostRef) {
	t.Helper()
	env := newKerberosEnv(t, sessionHosts(n), faults)
	return env, env.list()
}

// TestWinRMKerberosOneLogonPerRun: n hosts collected in parallel with one credential
// cost ONE logon at the KDC (one AS exchange, one TGT) and one service ticket (they
// share the SPN), however many SOAP requests and connections.
func TestWinRMKerberosOneLogonPerRun(t *testing.T) {
	const n = 5
	env, hosts := krbFleet(t, n, nil)
	c := kerberosCollector(t, env, "auditor", env.password, winrm.Options{})
	if collected := collectAll(t, c, hosts); collected != n {
		t.Fatalf("%d of %d hosts collected\nKDC log:\n%s", collected, n, env.kdc.Log())
	}
	log := env.kdc.Log()
	if as, pre := kdcIssued(log, "AS_REQ"), kdcCount(log, "AS_REQ", "NEEDED_PREAUTH"); as != 1 || pre != 1 {
		t.Errorf("%d TGTs issued, %d logons started for %d hosts; want one logon for the run:\n%s", as, pre, n, log)
	}
	if tgs := kdcIssued(log, "TGS_REQ"); tgs != 1 {
		t.Errorf("%d service tickets issued for one SPN, want 1:\n%s", tgs, log)
	}
	st := env.fleet.Stats()
	if st["KerberosAuthenticated"] < n || st["KerberosFailed"] != 0 {
		t.Errorf("requests %v; want a ticket accepted on every host and none refused", st)
	}
}

// TestWinRMKerberosUsesDialer: the Kerberos HTTP dials through Options.DialContext
// (masterzen's ClientKerberos used its own http.Transport): the host's address does
// not resolve, only the dialer knows where it is; TLS checks the configured name.
func TestWinRMKerberosUsesDialer(t *testing.T) {
	env := newKerberosEnv(t, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, nil)
	dial, dials := redirectDial(env.hosts["h"], "rdsh.invalid:5986")
	c := kerberosCollector(t, env, "auditor", env.password, winrm.Options{DialContext: dial, TLSServerName: "localhost"})
	ev := c.Collect(context.Background(), evidence.HostRef{Name: "h", Address: "rdsh.invalid", Port: 5986, Roles: []string{evidence.RoleSessionHost}})
	if ev.Status != evidence.StatusCollected {
		t.Fatalf("%s %+v", ev.Status, ev.Failure)
	}
	if st := env.fleet.Stats(); dials.Load() < 1 || dials.Load() != int64(st["KerberosAuthenticated"]) {
		t.Errorf("%d dials, requests %v; want one connection per accepted ticket", dials.Load(), st)
	}
}

// TestWinRMKerberosHonoursContext: a Create that is never answered ends with the host
// deadline, and a cancelled run ends at once.
func TestWinRMKerberosHonoursContext(t *testing.T) {
	env := newKerberosEnv(t, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, map[string]winrmtest.Faults{"h": {Hang: true}})
	checkHonoursContext(t, env.hosts["h"], func(opts winrm.Options) *winrm.Collector {
		return kerberosCollector(t, env, "auditor", env.password, opts)
	})
}

// TestWinRMKerberosCCache: with KrbCCachePath the TGT comes from the credential cache
// (here written by MIT kinit): no logon at the KDC by the collector, and the
// credential's password (wrong here) is not used.
func TestWinRMKerberosCCache(t *testing.T) {
	kinit, err := exec.LookPath("kinit")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("MIT kinit not installed (Debian krb5-user); required when CI is set")
		}
		t.Skip("MIT kinit not installed (Debian krb5-user); required when CI is set")
	}
	env := newKerberosEnv(t, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, nil)
	cc := filepath.Join(t.TempDir(), "ccache")
	cmd := exec.Command(kinit, "-c", "FILE:"+cc, "auditor@"+krbRealm)
	cmd.Env = append(os.Environ(), "KRB5_CONFIG="+env.kdc.Krb5Conf)
	cmd.Stdin = strings.NewReader(env.password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kinit: %v\n%s", err, out)
	}
	before := kdcIssued(env.kdc.Log(), "AS_REQ")
	c := kerberosCollector(t, env, "auditor", "wrong-"+env.password, winrm.Options{KrbCCachePath: cc})
	ev := c.Collect(context.Background(), env.hosts["h"])
	if ev.Status != evidence.StatusCollected {
		t.Fatalf("%s %+v\nKDC log:\n%s", ev.Status, ev.Failure, env.kdc.Log())
	}
	log := env.kdc.Log()
	if kdcIssued(log, "AS_REQ") != before || strings.Contains(log, "PREAUTH_FAILED") {
		t.Errorf("the collector logged on at the KDC despite the credential cache:\n%s", log)
	}
	if kdcIssued(log, "TGS_REQ") != 1 {
		t.Errorf("want one service ticket from the cached TGT:\n%s", log)
	}
}

// TestWinRMKerberosPlainHTTP: Kerberos over plain HTTP goes through the same client
// (without TLS) to a listener that serves unencrypted SOAP (AllowUnencrypted).
func TestWinRMKerberosPlainHTTP(t *testing.T) {
	env := newKerberosEnvTLS(t, false, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, nil)
	opts := winrm.Options{
		Auth: winrm.AuthKerberos, Scheme: "http", Krb5ConfPath: env.kdc.Krb5Conf, KrbRealm: krbRealm, KrbSPN: krbSPN,
		HostTimeout: 20 * time.Second,
	}
	c, err := winrm.New(opts, winrm.CredentialMap{"*": {Name: "lab", Username: "auditor", Password: env.password}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if ev := c.Collect(context.Background(), env.hosts["h"]); ev.Status != evidence.StatusCollected {
		t.Fatalf("%s %+v", ev.Status, ev.Failure)
	}
	if st := env.fleet.Stats(); st["KerberosAuthenticated"] < 1 || st["KerberosFailed"] != 0 {
		t.Errorf("requests %v", st)
	}
}
