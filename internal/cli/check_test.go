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
	"github.com/rdsaudit/rdsaudit/directory/slapdtest"
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

// TestCheckDirectory: `rdsaudit check` also checks every directory domain against a
// real slapd — TLS, bind and a read of the base DN — one line per domain: a passing
// domain, a wrong password (auth, not retried against the domain's second URL), a
// directory that refuses StartTLS (tls) and one that is down (connect). A failed
// domain alone makes check exit 3; no password is printed.
func TestCheckDirectory(t *testing.T) {
	const pw = "Check-S3cret-never-print"
	t.Setenv("CHECK_PW", pw)
	ntlm := winrmtest.NTLMOptions{Enabled: true, Domain: "LAB", DNSDomain: "lab.test"}
	fleet, err := winrmtest.NewFleet(map[string]*evidence.Evidence{"good": {Schema: evidence.Schema, Host: evidence.HostRef{Name: "good"}, Status: evidence.StatusCollected}},
		winrmtest.FleetServerOptions{TLS: true, Users: map[string]string{`LAB\auditor`: pw}, NTLM: ntlm})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	s := slapdtest.Start(t, slapdtest.Options{Users: []slapdtest.User{{CN: "u1", Attrs: map[string]string{"msTSLicenseVersion": "393218"}}}})
	plain := slapdtest.Start(t, slapdtest.Options{NoTLS: true})
	t.Setenv("CHECK_LDAP_PW", s.ReaderPassword)
	t.Setenv("CHECK_LDAP_BAD", "wrong-S3cret-never-print")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	writeFile(t, ca, string(fleet.CACertPEM()))
	domain := func(name, urls, cred string) string {
		return fmt.Sprintf("    - {name: %s, urls: [%s], base_dn: %q, credential: %s, ca_bundle: %s}\n", name, urls, slapdtest.BaseDN, cred, s.CAFile)
	}
	cfg := func(domains string) string {
		c := fmt.Sprintf("inventory:\n  hosts:\n    - {name: good, address: 127.0.0.1, port: %d, roles: [session_host]}\n", fleet.Server("good").Port) +
			"credentials:\n  - {name: lab, username: 'LAB\\auditor', password_env: CHECK_PW}\n" +
			"  - {name: reader, username: '" + s.ReaderDN + "', password_env: CHECK_LDAP_PW}\n" +
			"  - {name: badreader, username: '" + s.ReaderDN + "', password_env: CHECK_LDAP_BAD}\n" +
			"default_credential: lab\n" +
			"transport: {scheme: https, auth: ntlm, ca_bundle: " + ca + "}\n" +
			"collection: {source: winrm, concurrency: 1, retries: 0}\n" +
			"directory:\n  timeout: 10s\n  domains:\n" + domains +
			"output_dir: " + filepath.Join(dir, "out") + "\n"
		path := filepath.Join(dir, "config.yaml")
		writeFile(t, path, c)
		return path
	}

	code, stdout, stderr := rdsaudit(t, sampleNow, "check", "--config", cfg(domain("corp.example.com", s.LDAPSURL+", "+s.LDAPURL, "reader")))
	if code != ExitOK || !regexp.MustCompile(`(?m)^directory corp\.example\.com\s+ok\s+connect, tls, bind, read base DN via ldaps://`).MatchString(stdout) ||
		!strings.Contains(stdout, "check: all 1 hosts passed, 1 of 1 directory domains passed") {
		t.Fatalf("passing domain: exit %d\n%s\n%s", code, stdout, stderr)
	}

	code, stdout, stderr = rdsaudit(t, sampleNow, "check", "--config", cfg(
		domain("bad.example.com", s.LDAPSURL+", "+s.LDAPURL, "badreader")+
			domain("plain.example.com", plain.LDAPURL, "reader")+
			domain("down.example.com", "ldaps://"+dead, "reader")))
	t.Logf("exit %d\n%s", code, stdout)
	if code != ExitCoverage {
		t.Errorf("exit %d, want %d\n%s", code, ExitCoverage, stderr)
	}
	for _, out := range []string{stdout, stderr} {
		if strings.Contains(out, pw) || strings.Contains(out, "wrong-S3cret") || strings.Contains(out, s.ReaderPassword) {
			t.Fatal("a password reached the output")
		}
	}
	for name, wants := range map[string][]string{
		"bad.example.com":   {"FAIL", "[auth] " + s.LDAPSURL, "Invalid Credentials (LDAP 49); not retried", "check the credential's username"},
		"plain.example.com": {"FAIL", "[tls]", "StartTLS refused or failed, and plain LDAP is not allowed", "give the DC a certificate"},
		"down.example.com":  {"FAIL", "[connect]", "connect: connection refused; check the domain controller listens"},
	} {
		m := regexp.MustCompile(`(?m)^directory ` + regexp.QuoteMeta(name) + `\s+(.*)$`).FindStringSubmatch(stdout)
		if m == nil {
			t.Errorf("no line for %s", name)
			continue
		}
		for _, w := range wants {
			if !strings.Contains(m[1], w) {
				t.Errorf("%s: line lacks %q: %s", name, w, m[1])
			}
		}
		if name == "bad.example.com" && strings.Contains(m[1], "URLs tried") {
			t.Errorf("a refused bind was retried against the next URL: %s", m[1])
		}
	}
	if !strings.Contains(stdout, "check: 0 of 1 hosts failed, 0 of 3 directory domains passed") {
		t.Errorf("summary:\n%s", stdout)
	}
}
