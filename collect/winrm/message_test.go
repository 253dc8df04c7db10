package winrm_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/collect/winrm"
	"github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// TestFailureMessagesNameTheRemedy: each failure class's message, from the real client
// against the simulator, names the host, the endpoint, the user, what failed and what
// to check; none carries the password.
func TestFailureMessagesNameTheRemedy(t *testing.T) {
	evs := map[string]*evidence.Evidence{}
	faults := map[string]winrmtest.Faults{
		"unauthorized": {Unauthorized: true},
		"denied":       {AccessDenied: true},
		"quota":        {QuotaExceeded: true},
		"lost":         {LoseShell: true},
		"hang":         {Hang: true},
	}
	for n := range faults {
		evs[n] = virtualHost(n, false, 0)
	}
	evs["ok"] = virtualHost("ok", false, 0)
	env := newEnv(t, true, evs, faults)
	other, err := winrmtest.NewFleet(map[string]*evidence.Evidence{"x": nil}, winrmtest.FleetServerOptions{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	opts := winrm.Options{Retries: -1, HostTimeout: 3 * time.Second}
	c := newCollector(t, env, opts, zerolog.Nop())
	wrongCA := opts
	wrongCA.CAPEM = other.CACertPEM()
	wrongName := opts
	wrongName.TLSServerName = "wrong.example"
	dead := evidence.HostRef{Name: "dead", Address: "127.0.0.1", Port: deadListener(t)}

	for _, tc := range []struct {
		name  string
		c     *winrm.Collector
		host  evidence.HostRef
		class evidence.FailureClass
		want  []string
	}{
		{"401", c, env.hosts["unauthorized"], evidence.FailAuth,
			[]string{"401: credentials rejected for " + testUser + " via Basic", "check the password, the account's lockout state", "accepts Basic"}},
		{"access denied", c, env.hosts["denied"], evidence.FailAccessDenied,
			[]string{testUser + " authenticated but was denied access", "Remote Management Users"}},
		{"quota", c, env.hosts["quota"], evidence.FailQuota, []string{"quota", "MaxShellsPerUser"}},
		{"lost shell", c, env.hosts["lost"], evidence.FailProtocol, []string{"the host lost the shell", "shell was not found on the server"}},
		{"unknown CA", newCollector(t, env, wrongCA, zerolog.Nop()), env.hosts["ok"], evidence.FailTLS,
			[]string{"signed by an authority this machine does not trust", "transport.ca_bundle"}},
		{"wrong name", newCollector(t, env, wrongName, zerolog.Nop()), env.hosts["ok"], evidence.FailTLS,
			[]string{"not valid for wrong.example", "transport.server_name"}},
		{"refused", c, evidence.HostRef{Name: "refused", Address: "127.0.0.1", Port: closedPort(t)}, evidence.FailConnect,
			[]string{"cannot connect to 127.0.0.1:", "firewalls"}},
		{"dns", c, evidence.HostRef{Name: "nx", Address: "rdsaudit-no-such-host.invalid", Port: 5986}, evidence.FailDNS,
			[]string{"cannot resolve rdsaudit-no-such-host.invalid", "DNS"}},
		{"hang", c, env.hosts["hang"], evidence.FailTimeout,
			[]string{"host_timeout (3s) reached during WS-Man Create", "the WinRM service did not answer in time"}},
		{"dead", c, dead, evidence.FailTimeout,
			[]string{"host_timeout (3s) reached during TLS handshake", "accepted TCP", "did not complete TLS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := tc.c.Collect(context.Background(), tc.host)
			if ev.Failure == nil || ev.Failure.Class != tc.class {
				t.Fatalf("want %s, got %s %+v", tc.class, ev.Status, ev.Failure)
			}
			msg := ev.Failure.Message
			if strings.Contains(msg, testPassword) {
				t.Fatalf("password in message")
			}
			ep := "https://" + tc.host.Address + ":"
			for _, w := range append([]string{"collect " + tc.host.Name + " (" + ep, "as " + testUser + " via Basic", " — "}, tc.want...) {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q:\n%s", w, msg)
				}
			}
		})
	}
}

// TestKerberosSPNFromInventoryName: with the address an IP and no transport.kerberos.spn,
// the SPN is HTTP/<inventory name>; a host known only by its IP fails with class auth
// saying transport.kerberos.spn is needed, without a logon at the KDC.
func TestKerberosSPNFromInventoryName(t *testing.T) {
	env := newKerberosEnv(t, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, nil)
	c, err := winrm.New(winrm.Options{
		Auth: winrm.AuthKerberos, Scheme: "https", CAPEM: env.fleet.CACertPEM(),
		Krb5ConfPath: env.kdc.Krb5Conf, KrbRealm: krbRealm, Retries: -1, HostTimeout: 20 * time.Second,
	}, winrm.CredentialMap{"*": {Name: "krb", Username: "auditor", Password: env.password}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	h := env.hosts["h"]
	h.Name = strings.TrimPrefix(krbSPN, "HTTP/") // the inventory name; the address stays 127.0.0.1
	if ev := c.Collect(context.Background(), h); ev.Status != evidence.StatusCollected {
		t.Fatalf("SPN from the inventory name: %s %+v", ev.Status, ev.Failure)
	}
	h.Name = "127.0.0.1"
	ev := c.Collect(context.Background(), h)
	if ev.Failure == nil || ev.Failure.Class != evidence.FailAuth || !strings.Contains(ev.Failure.Message, "transport.kerberos.spn") {
		t.Fatalf("IP only: want auth naming transport.kerberos.spn, got %s %+v", ev.Status, ev.Failure)
	}
	for i := 0; i < winrm.DefaultLockoutThreshold; i++ { // no logon sent: never retired
		if ev := c.Collect(context.Background(), h); ev.Status == evidence.StatusSkipped {
			t.Fatalf("retired after SPN errors: %+v", ev.Failure)
		}
	}
}

// TestNTLMRefusalMessage: the example, over NTLM.
func TestNTLMRefusalMessage(t *testing.T) {
	env := newNTLMEnv(t, true, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, nil)
	c := ntlmCollector(t, env, testUser, "wrong-"+testPassword, winrm.Options{Retries: -1})
	ev := c.Collect(context.Background(), env.hosts["h"])
	if ev.Failure == nil || ev.Failure.Class != evidence.FailAuth {
		t.Fatalf("want auth, got %s %+v", ev.Status, ev.Failure)
	}
	want := "401: credentials rejected for " + testUser + " via NTLM"
	remedy := "check the password, the account's lockout state, and that the host accepts NTLM"
	if msg := ev.Failure.Message; !strings.Contains(msg, want) || !strings.Contains(msg, remedy) || strings.Contains(msg, testPassword) {
		t.Errorf("message %q; want %q and %q, never the password", msg, want, remedy)
	}
}
