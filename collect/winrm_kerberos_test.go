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

// Kerberos end to end: the real collector (auth kerberos: masterzen's ClientKerberos,
// gokrb5 client) gets its tickets from a real MIT KDC (winrmtest.StartKDC, a throwaway
// realm) and presents them over HTTPS to simulated hosts that verify them with the
// service keytab exported from that KDC (winrmtest/kerberos.go).

const (
	krbRealm = "RDSAUDIT.TEST"
	krbSPN   = "HTTP/localhost"
)

type krbEnv struct {
	*testEnv
	kdc      *winrmtest.KDC
	password string // auditor's password at the KDC
}

// newKerberosEnv starts a realm with the user auditor and the service HTTP/localhost,
// and an HTTPS fleet verifying tickets for HTTP/localhost.
func newKerberosEnv(t testing.TB, evs map[string]*collect.Evidence, faults map[string]winrmtest.Faults) *krbEnv {
	t.Helper()
	kdc := winrmtest.StartKDC(t, krbRealm)
	pw := winrmtest.RandomPassword()
	kdc.AddUser("auditor", pw)
	kt := kdc.AddService(krbSPN)
	t.Logf("KDC %s ready in %v", kdc.Addr, kdc.Setup)
	f, err := winrmtest.NewFleet(evs, winrmtest.FleetServerOptions{
		TLS: true, Faults: faults,
		Kerberos: winrmtest.KerberosOptions{KeytabPath: kt, SPN: krbSPN},
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
	return &krbEnv{testEnv: env, kdc: kdc, password: pw}
}

// kerberosCollector: auth kerberos over HTTPS to 127.0.0.1 (the address in the
// certificate), trusting the fleet's CA, with the test realm's krb5.conf and SPN.
func kerberosCollector(t testing.TB, env *krbEnv, user, password string, opts collect.WinRMOptions) *collect.WinRMCollector {
	t.Helper()
	opts.Auth = collect.AuthKerberos
	opts.Scheme = "https"
	opts.CAPEM = env.fleet.CACertPEM()
	opts.Krb5ConfPath = env.kdc.Krb5Conf
	if opts.KrbRealm == "" {
		opts.KrbRealm = krbRealm
	}
	if opts.KrbSPN == "" {
		opts.KrbSPN = krbSPN
	}
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

// TestWinRMKerberosCollected: the collector logs on at the KDC, presents a service
// ticket for HTTP/localhost and collects the host; the listener verified the tickets.
func TestWinRMKerberosCollected(t *testing.T) {
	env := newKerberosEnv(t, map[string]*collect.Evidence{"h": virtualHost("h", false, 0)}, nil)
	c := kerberosCollector(t, env, "auditor", env.password, collect.WinRMOptions{})
	ev := c.Collect(context.Background(), env.hosts["h"])
	if ev.Status != collect.StatusCollected {
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
	// masterzen's ClientKerberos builds a new gokrb5 client for every SOAP message: one
	// AS exchange (a logon at the KDC) and one TGS exchange per request.
	soap := st["Create"] + st["Command"] + st["Receive"] + st["Signal"] + st["Delete"]
	t.Logf("%d SOAP requests, %d AS exchanges, %d TGS exchanges", soap,
		strings.Count(env.kdc.Log(), "AS_REQ"), strings.Count(env.kdc.Log(), "TGS_REQ"))
	if !strings.Contains(env.kdc.Log(), "auditor@"+krbRealm+" for "+krbSPN+"@"+krbRealm) {
		t.Errorf("KDC issued no ticket for %s:\n%s", krbSPN, env.kdc.Log())
	}
}

// TestWinRMKerberosWrongPassword: the KDC refuses the pre-authentication; nothing
// reaches the listener; class auth after one attempt; the password is not printed.
func TestWinRMKerberosWrongPassword(t *testing.T) {
	env := newKerberosEnv(t, map[string]*collect.Evidence{"h": virtualHost("h", false, 0)}, nil)
	c := kerberosCollector(t, env, "auditor", "wrong-"+env.password, collect.WinRMOptions{})
	ev := c.Collect(context.Background(), env.hosts["h"])
	if ev.Failure == nil || ev.Failure.Class != collect.FailAuth || ev.Failure.Attempts != 1 {
		t.Fatalf("want auth after one attempt, got %s %+v", ev.Status, ev.Failure)
	}
	if strings.Contains(ev.Failure.Message, env.password) {
		t.Error("password in message")
	}
	if st := env.fleet.Stats(); len(st) != 0 {
		t.Errorf("requests %v reached the listener; the KDC should have refused the logon", st)
	}
	// gokrb5 (AssumePreAuthentication, set by masterzen) sends its encrypted timestamp
	// at once and, refused with PREAUTH_FAILED, tries once more with the KDC's salt: a
	// wrong password costs two failed pre-authentications per attempt.
	if k := strings.Count(env.kdc.Log(), "PREAUTH_FAILED"); k != 2 {
		t.Errorf("%d failed pre-authentications at the KDC, want 2:\n%s", k, env.kdc.Log())
	}
}

// TestWinRMKerberosWrongSPN: a ticket for another service principal (a real one, from
// the same KDC) is refused by the listener: class auth.
func TestWinRMKerberosWrongSPN(t *testing.T) {
	env := newKerberosEnv(t, map[string]*collect.Evidence{"h": virtualHost("h", false, 0)}, nil)
	env.kdc.AddService("HTTP/other.rdsaudit.test")
	c := kerberosCollector(t, env, "auditor", env.password, collect.WinRMOptions{KrbSPN: "HTTP/other.rdsaudit.test"})
	ev := c.Collect(context.Background(), env.hosts["h"])
	if ev.Failure == nil || ev.Failure.Class != collect.FailAuth || ev.Failure.Attempts != 1 {
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
// with a wrong password only LockoutThreshold hosts try it (each a failed
// pre-authentication at the KDC, two each: see TestWinRMKerberosWrongPassword), the
// others are skipped. Before Classify knew the KDC's errors, a refused logon was a
// protocol fault: not counted, every host tried the password.
func TestWinRMKerberosLockout(t *testing.T) {
	const n = 6
	evs := map[string]*collect.Evidence{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("rdsh%02d", i)
		evs[name] = virtualHost(name, false, 0)
	}
	env := newKerberosEnv(t, evs, nil)
	c := kerberosCollector(t, env, "auditor", "wrong-"+env.password, collect.WinRMOptions{})
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
	if k := strings.Count(env.kdc.Log(), "PREAUTH_FAILED"); k != 2*collect.DefaultLockoutThreshold {
		t.Errorf("%d failed pre-authentications at the KDC, want %d:\n%s", k, 2*collect.DefaultLockoutThreshold, env.kdc.Log())
	}
	if st := env.fleet.Stats(); len(st) != 0 {
		t.Errorf("requests %v reached the listeners", st)
	}
}

// TestWinRMKerberosUserForms: the user names a Credential documents (user, DOMAIN\user,
// user@REALM) all log on as auditor@RDSAUDIT.TEST; with user@realm the realm may come
// from the name alone (no KrbRealm).
func TestWinRMKerberosUserForms(t *testing.T) {
	env := newKerberosEnv(t, map[string]*collect.Evidence{"h": virtualHost("h", false, 0)}, nil)
	for _, tc := range []struct{ user, realm string }{
		{"auditor", krbRealm},
		{`RDSAUDIT\auditor`, krbRealm},
		{"auditor@" + krbRealm, krbRealm},
		{"auditor@rdsaudit.test", "-"},
	} {
		opts := collect.WinRMOptions{KrbRealm: tc.realm}
		c := kerberosCollector(t, env, tc.user, env.password, opts)
		if tc.realm == "-" {
			// kerberosCollector fills an empty KrbRealm; build this one without it.
			opts.Auth, opts.Scheme, opts.CAPEM, opts.Krb5ConfPath, opts.KrbRealm, opts.KrbSPN = collect.AuthKerberos, "https", env.fleet.CACertPEM(), env.kdc.Krb5Conf, "", krbSPN
			var err error
			if c, err = collect.NewWinRMCollector(opts, collect.CredentialMap{"*": {Name: "lab", Username: tc.user, Password: env.password}}, zerolog.Nop()); err != nil {
				t.Fatal(err)
			}
		}
		if ev := c.Collect(context.Background(), env.hosts["h"]); ev.Status != collect.StatusCollected {
			t.Errorf("user %q realm %q: %s %+v", tc.user, tc.realm, ev.Status, ev.Failure)
		}
	}
}

// TestClassifyKerberos: the KDC's refusals of a logon, as gokrb5 words them under
// masterzen's ClientKerberos, are authentication failures; a KDC that cannot be
// reached or a realm missing from krb5.conf is not (no logon happened).
func TestClassifyKerberos(t *testing.T) {
	pre := "create shell: unable to set SPNego Header: could not acquire client credential: could not get valid TGT for client's realm: [Root cause: KDC_Error] KDC_Error: AS Exchange Error: kerberos error response from KDC: "
	for msg, want := range map[string]collect.FailureClass{
		pre + "KRB Error: (24) KDC_ERR_PREAUTH_FAILED Pre-authentication information was invalid - PREAUTH_FAILED":   collect.FailAuth,
		pre + "KRB Error: (6) KDC_ERR_C_PRINCIPAL_UNKNOWN Client not found in Kerberos database - CLIENT_NOT_FOUND":  collect.FailAuth,
		pre + "KRB Error: (18) KDC_ERR_CLIENT_REVOKED Clients credentials have been revoked":                         collect.FailAuth,
		pre + "KRB Error: (23) KDC_ERR_KEY_EXPIRED Password has expired - change password to reset":                  collect.FailAuth,
		"AS Exchange Error: AS_REP is not valid or client password/keytab incorrect":                                 collect.FailAuth,
		"request returned: 401 - 401 Unauthorized. Response body:\n":                                                 collect.FailAuth,
		"[Root cause: Networking_Error] AS Exchange Error: no KDCs defined in configuration for realm rdsaudit.test": collect.FailProtocol,
	} {
		if got := collect.Classify(fmt.Errorf("%s", msg)); got != want {
			t.Errorf("Classify(%q) = %s, want %s", msg, got, want)
		}
	}
}
