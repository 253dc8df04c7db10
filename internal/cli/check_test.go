package cli

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// TestCheckEndToEnd runs `rdsaudit check` against simulated NTLM hosts over HTTPS: a
// healthy host, four hosts whose credential has the wrong password, a host whose
// certificate comes from a CA outside transport.ca_bundle and a host that is down.
// One line per host, each failure with its remedy; the wrong password is tried on
// auth_failure_limit hosts only (the fourth is skipped); exit 3; no password printed.
// --hosts narrows the check (exit 0 when the selected hosts pass); a --hosts pattern
// matching nothing is a usage error (exit 2).
func TestCheckEndToEnd(t *testing.T) {
	const pw, wrong = "Check-S3cret-never-print", "Wrong-S3cret-never-print"
	t.Setenv("CHECK_PW", pw)
	t.Setenv("CHECK_BAD_PW", wrong)
	ntlm := winrmtest.NTLMOptions{Enabled: true, Domain: "LAB", DNSDomain: "lab.test"}
	users := map[string]string{`LAB\auditor`: pw}
	evs := map[string]*evidence.Evidence{}
	for _, n := range []string{"good", "wrongpw1", "wrongpw2", "wrongpw3", "wrongpw4"} {
		evs[n] = &evidence.Evidence{Schema: evidence.Schema, Host: evidence.HostRef{Name: n}, Status: evidence.StatusCollected}
	}
	fleet, err := winrmtest.NewFleet(evs, winrmtest.FleetServerOptions{TLS: true, Users: users, NTLM: ntlm})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	other, err := winrmtest.NewFleet(map[string]*evidence.Evidence{"badca": evs["good"]}, winrmtest.FleetServerOptions{TLS: true, Users: users, NTLM: ntlm})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, fleet.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	var inv strings.Builder
	host := func(name string, s *winrmtest.Server, port int, cred string) {
		if s != nil {
			port = s.Port
		}
		fmt.Fprintf(&inv, "    - {name: %s, address: 127.0.0.1, port: %d, roles: [session_host], group: %s%s}\n", name, port, strings.TrimRight(name, "0123456789"), cred)
	}
	host("good", fleet.Server("good"), 0, "")
	for i := 1; i <= 4; i++ {
		n := fmt.Sprintf("wrongpw%d", i)
		host(n, fleet.Server(n), 0, ", credential: bad")
	}
	host("badca", other.Server("badca"), 0, "")
	host("dead", nil, deadPort, "")
	cfg := "inventory:\n  hosts:\n" + inv.String() +
		"credentials:\n  - {name: lab, username: 'LAB\\auditor', password_env: CHECK_PW}\n  - {name: bad, username: 'LAB\\auditor', password_env: CHECK_BAD_PW}\n" +
		"default_credential: lab\n" +
		"transport: {scheme: https, auth: ntlm, ca_bundle: " + ca + "}\n" +
		"collection: {source: winrm, concurrency: 1, retries: 0}\n" +
		"output_dir: " + filepath.Join(dir, "out") + "\n"
	path := filepath.Join(dir, "config.yaml")
	writeFile(t, path, cfg)

	code, stdout, stderr := rdsaudit(t, sampleNow, "check", "--config", path)
	t.Logf("exit %d\n%s", code, stdout)
	if code != ExitCoverage {
		t.Errorf("exit %d, want %d\n%s", code, ExitCoverage, stderr)
	}
	for _, s := range []string{stdout, stderr} {
		if strings.Contains(s, pw) || strings.Contains(s, wrong) {
			t.Fatal("a password reached the output")
		}
	}
	line := func(name string) string {
		m := regexp.MustCompile(`(?m)^` + name + `\s+(.*)$`).FindStringSubmatch(stdout)
		if m == nil {
			t.Fatalf("no line for %s:\n%s", name, stdout)
		}
		return m[1]
	}
	expect := map[string][]string{
		"good":     {"ok", "dns, tcp, tls, identify, auth"},
		"wrongpw1": {"FAIL", "auth [auth]", "401: credentials rejected for LAB\\auditor via NTLM", "check the password, the account's lockout state"},
		"wrongpw2": {"FAIL", "auth [auth]"},
		"wrongpw3": {"FAIL", "auth [auth]"},
		"wrongpw4": {"SKIPPED", "auth [credential_locked]", "account lockout protection"},
		"badca":    {"FAIL", "tls [tls]", "transport.ca_bundle"},
		"dead":     {"FAIL", "tcp [connect]", "cannot connect to 127.0.0.1:", "firewalls"},
	}
	for name, wants := range expect {
		l := line(name)
		for _, w := range wants {
			if !strings.Contains(l, w) {
				t.Errorf("%s: line lacks %q: %s", name, w, l)
			}
		}
	}
	if !strings.Contains(stdout, "check: 6 of 7 hosts failed") {
		t.Errorf("summary missing:\n%s", stdout)
	}
	if n := len(fleet.NTLMFailures()); n != 3 {
		t.Errorf("%d failed NTLM logons at the hosts, want 3 (auth_failure_limit)", n)
	}
	if st := fleet.Stats(); st["Command"] != 0 || fleet.OpenShells() != 0 {
		t.Errorf("check ran a command or left a shell: %v, %d open", st, fleet.OpenShells())
	}

	code, stdout, _ = rdsaudit(t, sampleNow, "check", "--config", path, "--hosts", "good", "--group", "good")
	if code != ExitOK || !strings.Contains(stdout, "check: all 1 hosts passed") {
		t.Errorf("--hosts good: exit %d\n%s", code, stdout)
	}
	code, _, stderr = rdsaudit(t, sampleNow, "check", "--config", path, "--hosts", "nosuch*")
	if code != ExitUsage || !strings.Contains(stderr, "nosuch*") {
		t.Errorf("--hosts nosuch*: exit %d, want 2: %s", code, stderr)
	}
}
