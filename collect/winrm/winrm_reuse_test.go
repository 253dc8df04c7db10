package winrm_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/collect/winrm"
	"github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// What a collector builds once and shares between its hosts: the command line per
// distinct parameters, the parsed CA bundle, the TLS sessions of its listeners.

// TestCollectorBuildsCommandOncePerParameters: hosts with the same roles run one
// command line, built once per collector; another role set gets its own.
func TestCollectorBuildsCommandOncePerParameters(t *testing.T) {
	evs := sessionHosts(6)
	evs["lic"] = virtualHost("lic", true, 3)
	env := newEnv(t, false, evs, nil)
	c := newCollector(t, env, winrm.Options{}, zerolog.Nop())
	if n := collectAll(t, c, env.list()); n != len(evs) {
		t.Fatalf("collected %d of %d hosts", n, len(evs))
	}
	if n := c.CommandBuilds(); n != 2 {
		t.Errorf("%d command lines built for 2 role sets", n)
	}
	if r := env.fleet.Rejected(); len(r) != 0 {
		t.Errorf("commands rejected: %+v", r)
	}
	collectAll(t, c, env.list())
	if n := c.CommandBuilds(); n != 2 {
		t.Errorf("second run: %d command lines built for 2 role sets", n)
	}
	// A collector with another issued-licence bound builds its own.
	other := newCollector(t, env, winrm.Options{MaxIssuedLicenses: 1}, zerolog.Nop())
	if ev := other.Collect(context.Background(), env.hosts["lic"]); ev.Status != evidence.StatusCollected || len(ev.LicenseServer.IssuedLicenses) != 1 {
		t.Fatalf("max issued 1: %s %+v", ev.Status, ev.Failure)
	}
	if n := other.CommandBuilds(); n != 1 {
		t.Errorf("%d command lines built", n)
	}
}

// TestCollectorReadsCABundleOnce: the bundle file is read (and parsed) by New; hosts
// collected later do not need it. A file without a PEM certificate is refused by New,
// and a bundle Go cannot read fails every host attempt, as before.
func TestCollectorReadsCABundleOnce(t *testing.T) {
	env := newNTLMEnv(t, true, sessionHosts(3), nil)
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, env.fleet.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	c := labCollector(t, testUser, testPassword, winrm.Options{Auth: winrm.AuthNTLM, Scheme: "https", CABundlePath: path})
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if n := collectAll(t, c, env.list()); n != 3 {
		t.Fatalf("collected %d of 3 hosts", n)
	}

	if err := os.WriteFile(path, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := winrm.New(winrm.Options{CABundlePath: path}, winrm.CredentialMap{}, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "CA bundle holds no PEM certificate") {
		t.Errorf("bundle without PEM: New: %v", err)
	}
	bad := []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
	for _, auth := range []string{winrm.AuthNTLM, winrm.AuthBasic} {
		c := labCollector(t, testUser, testPassword, winrm.Options{Auth: auth, Scheme: "https", CAPEM: bad, Retries: -1})
		for _, h := range env.list()[:2] {
			ev := c.Collect(context.Background(), h)
			if ev.Status != evidence.StatusFailed || ev.Failure.Class != evidence.FailProtocol ||
				!strings.Contains(ev.Failure.Message, "no certificate found in the CA bundle") {
				t.Errorf("%s, unreadable bundle: %s %+v", auth, ev.Status, ev.Failure)
			}
		}
	}
}

// TestCollectorResumesTLSSessions: a host's later connections (here its retries, each
// on a new connection) resume the TLS session of its first, with NTLM and with Basic;
// a session is never offered to another host, also when every host is checked against
// the same configured server name.
func TestCollectorResumesTLSSessions(t *testing.T) {
	for _, auth := range []string{winrm.AuthNTLM, winrm.AuthBasic} {
		t.Run(auth, func(t *testing.T) {
			faults := map[string]winrmtest.Faults{"rdsh00": {ResetOnCreate: true}}
			opts := winrmtest.FleetServerOptions{TLS: true, Users: map[string]string{testUser: testPassword}, Faults: faults}
			if auth == winrm.AuthNTLM {
				opts.NTLM = winrmtest.NTLMOptions{Enabled: true, Domain: "LAB", DNSDomain: "lab.test"}
			}
			env := startFleet(t, sessionHosts(1), opts)
			c := labCollector(t, testUser, testPassword, winrm.Options{Auth: auth, Scheme: "https", CAPEM: env.fleet.CACertPEM(), Retries: 2})
			ev := c.Collect(context.Background(), env.hosts["rdsh00"])
			if ev.Status != evidence.StatusFailed || ev.Failure.Class != evidence.FailConnect || ev.Failure.Attempts != 3 {
				t.Fatalf("%s %+v", ev.Status, ev.Failure)
			}
			if st := env.fleet.TLSStats(); st != (winrmtest.TLSStats{Full: 1, Resumed: 2}) {
				t.Errorf("3 attempts: TLS handshakes %+v, want 1 full and 2 resumed", st)
			}
		})
	}
	t.Run("not across hosts", func(t *testing.T) {
		env := newNTLMEnv(t, true, sessionHosts(8), nil)
		for _, name := range []string{"", "localhost"} {
			before := env.fleet.TLSStats()
			c := ntlmCollector(t, env, testUser, testPassword, winrm.Options{TLSServerName: name})
			collect.RunFleet(context.Background(), c, env.list(), collect.FleetOptions{Concurrency: 1}, func(ev *evidence.Evidence) {
				if ev.Status != evidence.StatusCollected {
					t.Errorf("server name %q: %s: %s %+v", name, ev.Host.Name, ev.Status, ev.Failure)
				}
			})
			st := env.fleet.TLSStats()
			if got := (winrmtest.TLSStats{Full: st.Full - before.Full, Resumed: st.Resumed - before.Resumed, Foreign: st.Foreign - before.Foreign}); got != (winrmtest.TLSStats{Full: 8}) {
				t.Errorf("server name %q: 8 hosts, one connection each: TLS handshakes %+v, want 8 full, no ticket offered to another host", name, got)
			}
		}
	})
}
