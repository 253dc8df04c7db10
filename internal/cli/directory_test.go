package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/collect/offline"
	"github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest/kdctest"
	"github.com/rdsaudit/rdsaudit/directory"
	"github.com/rdsaudit/rdsaudit/directory/slapdtest"
	"github.com/rdsaudit/rdsaudit/history"
	"github.com/rdsaudit/rdsaudit/report"
	"github.com/rdsaudit/rdsaudit/rules"
	"github.com/xuri/excelize/v2"
)

const (
	e2eLS1 = "00252-70000-00001-AT001" // LS01 in samples/rules.yaml's RDS-PU-002 mapping
	e2eLS2 = "00252-70000-00002-AT002" // LS02
)

// e2eUsers is 2,600 holders: 2012 CALs (393218) from LS01's ID on i%4 != 3, else raw
// "7" (unknown version); expired when i%5 == 0; disabled when i%100 == 2; every
// i%500 == 1 also holds the same version from LS02's ID in slot 2 (counted once).
func e2eUsers() []slapdtest.User {
	active := slapdtest.GeneralizedTime(sampleNow.Add(60 * 24 * time.Hour))
	expired := slapdtest.GeneralizedTime(sampleNow.Add(-10 * 24 * time.Hour))
	var us []slapdtest.User
	for i := 0; i < 2600; i++ {
		v := "393218"
		if i%4 == 3 {
			v = "7"
		}
		exp := active
		if i%5 == 0 {
			exp = expired
		}
		a := map[string]string{"userAccountControl": "512", "lastLogonTimestamp": slapdtest.FileTime(sampleNow.Add(-48 * time.Hour)),
			"msTSLicenseVersion": v, "msTSExpireDate": exp, "msTSManagingLS": e2eLS1}
		if i%100 == 2 {
			a["userAccountControl"] = "514"
		}
		if i%500 == 1 {
			a["msTSLicenseVersion2"], a["msTSExpireDate2"], a["msTSManagingLS2"] = v, exp, e2eLS2
		}
		us = append(us, slapdtest.User{CN: fmt.Sprintf("e2e%05d", i), Attrs: a})
	}
	return us
}

// e2eConfig writes a copy of the sample configuration whose directory is the given
// domain block, output into out.
func e2eConfig(t *testing.T, out, domain, extra string) string {
	t.Helper()
	data, err := os.ReadFile("samples/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(data)
	i := strings.Index(cfg, "directory:\n")
	j := strings.Index(cfg, "rules_file:")
	root, _ := filepath.Abs("samples")
	cfg = cfg[:i] + "directory:\n  domains:\n" + domain + extra + "\n" + cfg[j:]
	cfg = strings.ReplaceAll(cfg, "inventory.csv", filepath.Join(root, "inventory.csv"))
	cfg = strings.ReplaceAll(cfg, "rules_file: rules.yaml", "rules_file: "+filepath.Join(root, "rules.yaml"))
	cfg = strings.ReplaceAll(cfg, "entitlements_file: entitlements.csv", "entitlements_file: "+filepath.Join(root, "entitlements.csv"))
	cfg = strings.ReplaceAll(cfg, "output_dir: ../out", "output_dir: "+out)
	cfg = strings.ReplaceAll(cfg, "source: offline ", "source: winrm   ")
	cfg = strings.Replace(cfg, "default_credential: audit", "  - name: reader\n    username: 'CN=rdsaudit-reader,OU=Service,"+slapdtest.BaseDN+"'\n    password_env: E2E_LDAP_PASSWORD\ndefault_credential: audit", 1)
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRunDirectoryEndToEnd runs `rdsaudit run` with hosts from the sample evidence and
// the directory read live from slapd: counts, de-duplication, the PU rules, the sheet,
// the evidence in the manifest; then a wrong password, an unreachable directory and
// pseudonymisation.
func TestRunDirectoryEndToEnd(t *testing.T) {
	chdirRoot(t)
	s := slapdtest.Start(t, slapdtest.Options{Users: e2eUsers()})
	t.Setenv("RDSAUDIT_PASSWORD", "unused")
	t.Setenv("E2E_LDAP_PASSWORD", s.ReaderPassword)
	fleetDir, _ := filepath.Abs("samples/fleet")
	h := &hooks{wrap: func(collect.Collector) collect.Collector { return offline.New(fleetDir) }}
	run := func(cfg string) (int, string) {
		var out, errb bytes.Buffer
		code := Run(withHooks(context.Background(), h), []string{"run", "--config", cfg, "--log-format", "json"}, &out, &errb, fixedClock(sampleNow))
		return code, errb.String()
	}
	domain := func(url string) string {
		return fmt.Sprintf("    - name: corp.example.com\n      urls: [%q]\n      base_dn: %q\n      credential: reader\n      ca_bundle: %s\n",
			url, slapdtest.BaseDN, s.CAFile)
	}

	t.Run("collected", func(t *testing.T) {
		out := t.TempDir()
		code, stderr := run(e2eConfig(t, out, domain(s.LDAPSURL), "  page_size: 1000\n"))
		if code != 3 { // the sample fleet has hosts without evidence: coverage < 100%
			t.Fatalf("exit %d: %s", code, stderr)
		}
		dirs := runDirs(t, out)
		rep := readReport(t, dirs[0])
		pu := rep.PerUser
		if pu == nil || !pu.Known() || pu.Domains[0].Holders != 2600 || pu.Domains[0].Collector != "ldap" {
			t.Fatalf("per_user %+v", pu)
		}
		want := map[string][2]int{} // version → active, expired; computed from e2eUsers' pattern
		for i := 0; i < 2600; i++ {
			v := "2012"
			if i%4 == 3 {
				v = "unknown version (7)"
			}
			c := want[v]
			if i%5 == 0 {
				c[1]++
			} else {
				c[0]++
			}
			want[v] = c
		}
		for _, v := range pu.Versions {
			if w := want[v.Version]; v.Active != w[0] || v.Expired != w[1] {
				t.Errorf("%s: active %d expired %d, want %v (each user once across slots and servers)", v.Version, v.Active, v.Expired, w)
			}
		}
		results := map[string]rules.Outcome{}
		for _, r := range rep.Results {
			results[r.RuleID+" "+r.Subject.Name] = r.Outcome
		}
		for k, o := range map[string]rules.Outcome{
			"RDS-PU-001 per_user/2012":                rules.Fail, // 1560 active, none entitled in the sample ledger
			"RDS-PU-001 per_user/unknown version (7)": rules.Error,
			"RDS-PU-002 license_server/" + e2eLS1:     rules.Pass,
			"RDS-PU-002 license_server/" + e2eLS2:     rules.Pass,
			"RDS-PU-004 directory/corp.example.com":   rules.Fail,
			"RDS-CAL-005 per_user/2012":               rules.Fail,
		} {
			if results[k] != o {
				t.Errorf("%s: %s, want %s", k, results[k], o)
			}
		}
		for _, p := range rep.Position {
			if p.CALType == "per_user" && p.Version == "2012" && (p.Used == nil || *p.Used != int64(want["2012"][0]) || p.UsageSource != "directory (AD msTS attributes)") {
				t.Errorf("position per_user/2012: %+v", p)
			}
		}
		man, _ := os.ReadFile(filepath.Join(dirs[0], "manifest.json"))
		if !strings.Contains(string(man), "evidence/directory/corp.example.com.directory.json") {
			t.Error("directory evidence not in the manifest")
		}
		doc, err := os.ReadFile(filepath.Join(dirs[0], "evidence", "directory", "corp.example.com.directory.json"))
		if err != nil {
			t.Fatal(err)
		}
		if ev, err := directory.Decode(doc); err != nil || len(ev.Users) != 2600 || ev.Pages != 3 {
			t.Errorf("staged evidence: %v, %d users", err, len(ev.Users))
		}
		if err := report.Verify(dirs[0], nil); err != nil {
			t.Error(err)
		}
		st, err := history.Open(context.Background(), filepath.Join(out, "history.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		counts, err := st.PerUserCounts(context.Background())
		if err != nil || len(counts) != 2 || counts[0].Version != "2012" || counts[0].Active != want["2012"][0] || !counts[0].Complete {
			t.Errorf("history per-user counts %+v, %v", counts, err)
		}
		st.Close()

		// Later the same directory, read again: the CALs have expired since, and the
		// Drift shows the change against the counts history kept of the first run.
		later := sampleNow.Add(75 * 24 * time.Hour) // past the active CALs' expiry (+60 days)
		var o2, e2 bytes.Buffer
		if code := Run(withHooks(context.Background(), h), []string{"run", "--config", e2eConfig(t, out, domain(s.LDAPSURL), ""), "--log-format", "json"},
			&o2, &e2, fixedClock(later)); code != 3 {
			t.Fatalf("second run: exit %d: %s", code, e2.String())
		}
		dirs = runDirs(t, out)
		rep2 := readReport(t, dirs[len(dirs)-1])
		var v2012 *directory.VersionTotal
		for i := range rep2.PerUser.Versions {
			if rep2.PerUser.Versions[i].Version == "2012" {
				v2012 = &rep2.PerUser.Versions[i]
			}
		}
		if v2012 == nil || v2012.Active >= want["2012"][0] {
			t.Fatalf("later, 2012 holders %+v: want fewer active than %d", v2012, want["2012"][0])
		}
		var change *report.Change
		for i := range rep2.Changes {
			if c := &rep2.Changes[i]; c.Kind == report.ChangePerUser && c.Subject == "Per User CALs in Active Directory, Windows Server 2012" {
				change = c
			}
		}
		wantBefore := fmt.Sprintf("%d active, %d expired users", want["2012"][0], counts[0].Expired)
		wantAfter := fmt.Sprintf("%d active, %d expired users", v2012.Active, v2012.Expired)
		if change == nil || change.Before != wantBefore || change.After != wantAfter {
			t.Errorf("drift of 2012 holders: %+v, want %q → %q (changes %+v)", change, wantBefore, wantAfter, rep2.Changes)
		}
		// `rdsaudit history per-user` shows the same change month over month.
		var ho, he bytes.Buffer
		if code := Run(context.Background(), []string{"history", "per-user", "--db", filepath.Join(out, "history.db")}, &ho, &he, fixedClock(later)); code != 0 {
			t.Fatalf("history per-user: exit %d: %s", code, he.String())
		}
		lines := strings.Split(strings.TrimSpace(ho.String()), "\n")
		last2012 := ""
		for _, l := range lines {
			if f := strings.Fields(l); len(f) > 4 && f[3] == "2012" {
				last2012 = l
			}
		}
		if f := strings.Fields(last2012); len(lines) != 5 || len(f) < 6 || f[4] != strconv.Itoa(v2012.Active) || f[5] != fmt.Sprintf("%+d", v2012.Active-want["2012"][0]) {
			t.Errorf("history per-user:\n%s", ho.String())
		}
	})

	for _, tt := range []struct {
		name, url, password, class string
	}{
		{"wrong password", s.LDAPSURL, "wrong", "auth"},
		{"unreachable", "ldaps://127.0.0.1:1", s.ReaderPassword, "connect"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("E2E_LDAP_PASSWORD", tt.password)
			out := t.TempDir()
			code, stderr := run(e2eConfig(t, out, domain(tt.url), ""))
			if code != 3 {
				t.Fatalf("exit %d (a failed directory must not fail the run otherwise): %s", code, stderr)
			}
			rep := readReport(t, runDirs(t, out)[0])
			pu := rep.PerUser
			if pu.Known() || pu.Domains[0].Class != tt.class || len(pu.Versions) != 0 {
				t.Fatalf("per_user %+v", pu.Domains)
			}
			// The verdict names the domain not read: figures unknown, the audit incomplete.
			if v := rep.Verdict(); v.Status != report.VerdictIncomplete || v.DomainsRead != 0 || v.Domains != 1 ||
				!strings.Contains(strings.Join(v.Reasons(), "; "), "not read: corp.example.com ("+tt.class+")") {
				t.Errorf("verdict %+v: %v", v, v.Reasons())
			}
			for _, r := range rep.Results {
				if strings.HasPrefix(r.RuleID, "RDS-PU-") && (r.Outcome != rules.Error || !strings.Contains(r.Message, "unknown")) {
					t.Errorf("%s %s: %s %s; want error, figures unknown", r.RuleID, r.Subject.Name, r.Outcome, r.Message)
				}
				if r.RuleID == "RDS-CAL-005" && r.Subject.Name == "per_user/2012" {
					t.Errorf("position took directory figures from a failed domain: %s", r.Message)
				}
			}
			if strings.Contains(stderr, s.ReaderPassword) {
				t.Error("password in the log")
			}
		})
	}

	t.Run("pseudonymised", func(t *testing.T) {
		t.Setenv("E2E_PSEUDONYM_KEY", "k-e2e")
		out := t.TempDir()
		code, stderr := run(e2eConfig(t, out, domain(s.LDAPSURL), "  pseudonymise: true\n  pseudonym_key_env: E2E_PSEUDONYM_KEY\n"))
		if code != 3 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		dir := runDirs(t, out)[0]
		err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err != nil || fi.IsDir() {
				return err
			}
			b, _ := os.ReadFile(p)
			if bytes.Contains(b, []byte("e2e00102")) {
				t.Errorf("%s holds a user name", p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// The xlsx is compressed: read its cells.
		x, err := excelize.OpenFile(filepath.Join(dir, "report.xlsx"))
		if err != nil {
			t.Fatal(err)
		}
		defer x.Close()
		for _, sh := range x.GetSheetList() {
			rows, _ := x.GetRows(sh)
			for _, r := range rows {
				if strings.Contains(strings.Join(r, "|"), "e2e00102") {
					t.Errorf("sheet %s holds a user name: %v", sh, r)
				}
			}
		}
		rep := readReport(t, dir)
		want := directory.Pseudonym([]byte("k-e2e"), "e2e00102")
		found := false
		for _, c := range rep.PerUser.Reclaim {
			found = found || c.User == want
		}
		if !found || strings.Contains(stderr, "e2e00102") {
			t.Errorf("disabled holder e2e00102 not listed under its pseudonym %s", want)
		}
	})
}

// TestRunDirectoryKerberos: `rdsaudit run` with a domain bound by Kerberos (auth:
// kerberos, transport.kerberos.krb5_conf) against slapd and a real MIT KDC reads the
// same Per User figures as the simple bind; the evidence records the bind.
func TestRunDirectoryKerberos(t *testing.T) {
	chdirRoot(t)
	kdc := kdctest.Start(t, "CORP.EXAMPLE.COM")
	s := slapdtest.Start(t, slapdtest.Options{Users: e2eUsers(), KDC: kdc})
	t.Setenv("RDSAUDIT_PASSWORD", "unused")
	t.Setenv("E2E_LDAP_PASSWORD", s.ReaderPassword)
	fleetDir, _ := filepath.Abs("samples/fleet")
	h := &hooks{wrap: func(collect.Collector) collect.Collector { return offline.New(fleetDir) }}
	out := t.TempDir()
	path := e2eConfig(t, out, fmt.Sprintf("    - name: corp.example.com\n      urls: [%q]\n      base_dn: %q\n      credential: reader\n      ca_bundle: %s\n      auth: kerberos\n",
		s.LDAPSURL, slapdtest.BaseDN, s.CAFile), "")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(data), "username: 'CN=rdsaudit-reader,OU=Service,"+slapdtest.BaseDN+"'", "username: rdsaudit-reader@corp.example.com", 1)
	cfg = strings.Replace(cfg, "  auth: ntlm\n", "  auth: ntlm\n  kerberos: {krb5_conf: "+kdc.Krb5Conf+"}\n", 1)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var o, e bytes.Buffer
	if code := Run(withHooks(context.Background(), h), []string{"run", "--config", path, "--log-format", "json"}, &o, &e, fixedClock(sampleNow)); code != 3 {
		t.Fatalf("exit %d: %s", code, e.String())
	}
	dir := runDirs(t, out)[0]
	rep := readReport(t, dir)
	if !rep.PerUser.Known() {
		t.Fatalf("per_user %+v", rep.PerUser.Domains)
	}
	got := map[string]int{}
	for _, v := range rep.PerUser.Versions {
		got[v.Version] = v.Active
	}
	want2012 := 0 // e2eUsers' pattern: 2012 unless i%4 == 3, expired when i%5 == 0
	for i := 0; i < 2600; i++ {
		if i%4 != 3 && i%5 != 0 {
			want2012++
		}
	}
	if got["2012"] != want2012 {
		t.Errorf("2012 active %d, want %d", got["2012"], want2012)
	}
	doc, err := os.ReadFile(filepath.Join(dir, "evidence", "directory", "corp.example.com.directory.json"))
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := directory.Decode(doc); err != nil || ev.Bind != "kerberos" {
		t.Errorf("evidence bind %q, %v", ev.Bind, err)
	}
	if strings.Contains(e.String(), s.ReaderPassword) {
		t.Error("password in the log")
	}
}
