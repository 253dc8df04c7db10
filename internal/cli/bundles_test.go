package cli

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/collect/bundle"
	"github.com/rdsaudit/rdsaudit/collect/offline"
	"github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest"
	"github.com/rdsaudit/rdsaudit/report"
)

// resultSet is every result of a report as "rule subject key outcome waived".
func resultSet(rep *report.Report) []string {
	out := make([]string, 0, len(rep.Results))
	for _, r := range rep.Results {
		out = append(out, strings.Join([]string{r.RuleID, r.Subject.String(), r.Key, string(r.Outcome), fmt.Sprint(r.Waived), r.Observed}, "|"))
	}
	sort.Strings(out)
	return out
}

func diffSets(t *testing.T, what string, want, got []string) {
	t.Helper()
	w, g := map[string]bool{}, map[string]bool{}
	for _, s := range want {
		w[s] = true
	}
	for _, s := range got {
		g[s] = true
	}
	for s := range w {
		if !g[s] {
			t.Errorf("%s: result of the ordinary run missing: %s", what, s)
		}
	}
	for s := range g {
		if !w[s] {
			t.Errorf("%s: result not in the ordinary run: %s", what, s)
		}
	}
	if len(want) != len(got) {
		t.Errorf("%s: %d results, ordinary run %d", what, len(got), len(want))
	}
}

// shardedRun collects cfg's inventory in n shards, each shard a site with its own key
// (site.name and signing.key_file from the environment, as a pod's would be), into one
// bundle directory, then runs centrally with central (a config trusting those keys,
// written by the callback) and returns the central report and run directory.
func shardedRun(t *testing.T, cfg string, n int, central func(trusted string) string) (*report.Report, string) {
	t.Helper()
	work := t.TempDir()
	bundles := filepath.Join(work, "bundles")
	var trusted strings.Builder
	for k := 1; k <= n; k++ {
		site := fmt.Sprintf("pod-%d", k)
		prefix := filepath.Join(work, site)
		if code, _, stderr := rdsaudit(t, sampleNow, "keygen", "--out", prefix); code != ExitOK {
			t.Fatalf("keygen: %s", stderr)
		}
		fmt.Fprintf(&trusted, "    - {site: %s, public_key_file: %s}\n", site, prefix+".pub")
		t.Setenv("RDSAUDIT_SITE_NAME", site)
		t.Setenv("RDSAUDIT_SIGNING_KEY_FILE", prefix+".key")
		code, stdout, stderr := rdsaudit(t, sampleNow, "collect", "--config", cfg, "--bundle", bundles, "--shard", fmt.Sprintf("%d/%d", k, n))
		if code != ExitOK || !strings.Contains(stdout, "bundle "+site+"_") {
			t.Fatalf("collect shard %d/%d: exit %d\n%s\n%s", k, n, code, stdout, stderr)
		}
	}
	t.Setenv("RDSAUDIT_SITE_NAME", "")
	t.Setenv("RDSAUDIT_SIGNING_KEY_FILE", "")
	out := filepath.Join(work, "central")
	code, stdout, stderr := rdsaudit(t, sampleNow, "run", "--config", central(trusted.String()), "--bundles", bundles, "--output-dir", out)
	if code != ExitCoverage { // the sample fleet has two hosts that cannot be collected
		t.Fatalf("central run: exit %d, want %d\n%s\n%s", code, ExitCoverage, stdout, stderr)
	}
	dirs := runDirs(t, out)
	if len(dirs) != 1 {
		t.Fatalf("central run directories %v", dirs)
	}
	if code, _, stderr := rdsaudit(t, sampleNow, "verify", dirs[0]); code != ExitOK {
		t.Errorf("verify central run: %s", stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "history.db")); err != nil {
		t.Errorf("central run not recorded in history: %v", err)
	}
	rep := readReport(t, dirs[0])
	checkTrace(t, rep, dirs[0], bundles, n)
	return rep, dirs[0]
}

// checkTrace: every host's evidence names its bundle; the central run directory holds
// each bundle's signed manifest (hashed in its own manifest), and each host's evidence
// is byte for byte the evidence the site signed.
func checkTrace(t *testing.T, rep *report.Report, dir, bundles string, n int) {
	t.Helper()
	bc := rep.Coverage.Bundles
	if bc == nil || len(bc.Bundles) != n || len(bc.Conflicts) != 0 || len(bc.NotInInventory) != 0 {
		t.Fatalf("coverage.bundles = %+v, want %d bundles and no anomaly", bc, n)
	}
	byID := map[string]report.BundleInfo{}
	for _, b := range bc.Bundles {
		byID[b.ID] = b
		for _, f := range b.Files {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("bundle %s: %v", b.ID, err)
			}
		}
	}
	ref := map[string]report.EvidenceRef{}
	for _, e := range rep.Evidence {
		ref[e.Host] = e
	}
	for _, h := range rep.Coverage.Hosts {
		id, ok := strings.CutPrefix(h.Collector, bundle.CollectorPrefix+strings.SplitN(strings.TrimPrefix(h.Collector, bundle.CollectorPrefix), "/", 2)[0]+"/")
		b, found := byID[id]
		if !ok || !found {
			t.Errorf("%s: collector %q does not name a bundle of the run", h.Name, h.Collector)
			continue
		}
		central, err := os.ReadFile(filepath.Join(dir, ref[h.Name].Path))
		if err != nil {
			t.Fatal(err)
		}
		site, err := os.ReadFile(filepath.Join(bundles, b.ID, ref[h.Name].Path))
		if err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		if !bytes.Equal(central, site) {
			t.Errorf("%s: central evidence differs from the evidence bundle %s signed", h.Name, b.ID)
		}
	}
}

func centralConfig(t *testing.T, trusted string, extra string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "central.yaml")
	writeFile(t, p, fmt.Sprintf(`inventory: {file: %s}
rules_file: %s
entitlements_file: %s
bundles:
  trusted_keys:
%s%s`, mustAbs(t, "samples/inventory.csv"), mustAbs(t, "samples/rules.yaml"), mustAbs(t, "samples/entitlements.csv"), trusted, extra))
	return p
}

// sampleDirectory is samples/config.yaml's directory section, read offline from the
// sample fleet's directory evidence.
func sampleDirectory(t *testing.T) string {
	return fmt.Sprintf(`credentials:
  - {name: audit, username: 'CORP\svc-rdsaudit', password_env: RDSAUDIT_PASSWORD}
directory:
  evidence_dir: %s
  domains:
    - {name: corp.example.com, urls: ["ldaps://dc1.corp.example.com"], base_dn: "DC=corp,DC=example,DC=com", credential: audit}
  reclaim_after: 2160h
`, mustAbs(t, "samples/fleet"))
}

// TestBundlesMatchOrdinaryRun is issue 16's acceptance: the sample fleet split into 2
// and 3 shards, each collected offline into a bundle and evaluated centrally, gives
// exactly the results of one ordinary run.
func TestBundlesMatchOrdinaryRun(t *testing.T) {
	chdirRoot(t)
	out := t.TempDir()
	if code, stdout, stderr := rdsaudit(t, sampleNow, "run", "--config", "samples/config.yaml", "--output-dir", out); code != ExitCoverage {
		t.Fatalf("ordinary run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	direct := readReport(t, runDirs(t, out)[0])
	want := resultSet(direct)
	for _, n := range []int{1, 2, 3} {
		// The central run reads the directory's evidence offline, as the ordinary
		// offline run does (directory.evidence_dir: the directory is central, not a site's).
		rep, _ := shardedRun(t, "samples/config.yaml", n, func(trusted string) string { return centralConfig(t, trusted, sampleDirectory(t)) })
		diffSets(t, fmt.Sprintf("%d shards", n), want, resultSet(rep))
		if rep.Coverage.Targeted != direct.Coverage.Targeted || rep.Coverage.Collected != direct.Coverage.Collected {
			t.Errorf("%d shards: coverage %d/%d, ordinary %d/%d", n, rep.Coverage.Collected, rep.Coverage.Targeted,
				direct.Coverage.Collected, direct.Coverage.Targeted)
		}
	}
}

// TestBundlesOverWinRM: the same over WinRM against the simulator (HTTPS, NTLMv2):
// shard collectors each collect their hosts from the simulator's listeners.
func TestBundlesOverWinRM(t *testing.T) {
	chdirRoot(t)
	fleetEv, err := offline.LoadFleet("samples/fleet")
	if err != nil {
		t.Fatal(err)
	}
	const user, password = `LAB\auditor`, "bundle-test-password"
	fleet, err := winrmtest.NewFleet(fleetEv, winrmtest.FleetServerOptions{TLS: true,
		Users: map[string]string{user: password}, NTLM: winrmtest.NTLMOptions{Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	work := t.TempDir()
	ca := filepath.Join(work, "ca.pem")
	writeFile(t, ca, string(fleet.CACertPEM()))
	closed, err := closedLoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	// The sample inventory, every host pointed at its simulator listener (a host the
	// fleet has no evidence for at a closed loopback port).
	eps := parseEndpoints(fleet.Endpoints())
	raw, err := os.ReadFile("samples/inventory.csv")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var inv bytes.Buffer
	w := csv.NewWriter(&inv)
	for i, r := range recs {
		if i > 0 {
			r[1], r[2] = "127.0.0.1", fmt.Sprint(closed)
			if ep, ok := eps[strings.ToLower(r[0])]; ok {
				r[2] = fmt.Sprint(ep.port)
			}
		}
		_ = w.Write(r)
	}
	w.Flush()
	invPath := filepath.Join(work, "inventory.csv")
	writeFile(t, invPath, inv.String())
	t.Setenv("BUNDLE_TEST_PW", password)
	common := fmt.Sprintf(`credentials:
  - {name: audit, username: '%s', password_env: BUNDLE_TEST_PW}
default_credential: audit
transport: {scheme: https, auth: ntlm, ca_bundle: %s}
collection: {source: winrm, retries: 0}
`, user, ca)
	site := filepath.Join(work, "site.yaml")
	writeFile(t, site, fmt.Sprintf("inventory: {file: %s}\nrules_file: %s\nentitlements_file: %s\n%s",
		invPath, mustAbs(t, "samples/rules.yaml"), mustAbs(t, "samples/entitlements.csv"), common))

	out := t.TempDir()
	if code, stdout, stderr := rdsaudit(t, sampleNow, "run", "--config", site, "--output-dir", out); code != ExitCoverage {
		t.Fatalf("ordinary WinRM run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	ordinary := readReport(t, runDirs(t, out)[0])
	if ordinary.Run.Collector != "winrm" || ordinary.Coverage.Collected != 22 {
		t.Fatalf("ordinary run: collector %q, %d hosts collected; want winrm, 22", ordinary.Run.Collector, ordinary.Coverage.Collected)
	}
	want := resultSet(ordinary)
	for _, n := range []int{2, 3} {
		rep, _ := shardedRun(t, site, n, func(trusted string) string {
			p := filepath.Join(t.TempDir(), "central.yaml")
			writeFile(t, p, fmt.Sprintf("inventory: {file: %s}\nrules_file: %s\nentitlements_file: %s\nbundles:\n  trusted_keys:\n%s",
				invPath, mustAbs(t, "samples/rules.yaml"), mustAbs(t, "samples/entitlements.csv"), trusted))
			return p
		})
		diffSets(t, fmt.Sprintf("WinRM, %d shards", n), want, resultSet(rep))
	}
	if n := fleet.OpenShells(); n != 0 {
		t.Errorf("%d shells left open", n)
	}
}

// TestBundleRefusedExit: a central run given a tampered bundle, or one signed by a key
// it does not trust, publishes nothing and exits 5 naming the bundle.
func TestBundleRefusedExit(t *testing.T) {
	chdirRoot(t)
	work := t.TempDir()
	prefix := filepath.Join(work, "site-a")
	other := filepath.Join(work, "other")
	for _, p := range []string{prefix, other} {
		if code, _, stderr := rdsaudit(t, sampleNow, "keygen", "--out", p); code != ExitOK {
			t.Fatal(stderr)
		}
	}
	t.Setenv("RDSAUDIT_SITE_NAME", "site-a")
	t.Setenv("RDSAUDIT_SIGNING_KEY_FILE", prefix+".key")
	bundles := filepath.Join(work, "bundles")
	if code, stdout, stderr := rdsaudit(t, sampleNow, "collect", "--config", "samples/config.yaml", "--bundle", bundles); code != ExitOK {
		t.Fatalf("collect: %d\n%s\n%s", code, stdout, stderr)
	}
	dirs := runDirs(t, bundles)
	if code, stdout, _ := rdsaudit(t, sampleNow, "verify", dirs[0], "--pubkey", prefix+".pub"); code != ExitOK || !strings.Contains(stdout, "signature valid") {
		t.Errorf("verify bundle: exit %d: %s", code, stdout)
	}
	out := filepath.Join(work, "central")
	untrusted := centralConfig(t, "    - {site: site-a, public_key_file: "+other+".pub}\n", "")
	code, _, stderr := rdsaudit(t, sampleNow, "run", "--config", untrusted, "--bundles", bundles, "--output-dir", out)
	if code != ExitVerifyFail || !strings.Contains(stderr, filepath.Base(dirs[0])) || !strings.Contains(stderr, "not a trusted key") {
		t.Errorf("untrusted key: exit %d, want %d naming the bundle and key\n%s", code, ExitVerifyFail, stderr)
	}
	ev := filepath.Join(dirs[0], "evidence", "rdsh-a01.json")
	data, _ := os.ReadFile(ev)
	writeFile(t, ev, strings.Replace(string(data), "\"collected\"", "\"failed\"", 1))
	trusted := centralConfig(t, "    - {site: site-a, public_key_file: "+prefix+".pub}\n", "")
	code, _, stderr = rdsaudit(t, sampleNow, "run", "--config", trusted, "--bundles", bundles, "--output-dir", out)
	if code != ExitVerifyFail || !strings.Contains(stderr, "evidence/rdsh-a01.json: altered") {
		t.Errorf("tampered bundle: exit %d, want %d naming the file\n%s", code, ExitVerifyFail, stderr)
	}
	if _, err := os.Stat(out); err == nil && len(runDirs(t, out)) > 0 {
		t.Error("a run was published from a refused bundle")
	}
	for _, bad := range [][]string{{"--shard", "4/3"}, {"--shard", "0/3"}, {"--shard", "x"}, {"--shard-index", "3/3"},
		{"--shard-index", "-1/3"}, {"--shard", "1/2", "--shard-index", "0/2"}} {
		args := append([]string{"collect", "--config", "samples/config.yaml", "--bundle", bundles}, bad...)
		if code, _, stderr := rdsaudit(t, sampleNow, args...); code != ExitUsage || !strings.Contains(stderr, "--shard") {
			t.Errorf("%v: exit %d, want %d: %s", bad, code, ExitUsage, stderr)
		}
	}
	// --shard-index I/N is --shard I+1/N.
	for _, tc := range []struct{ index, shard string }{{"0/3", "1/3"}, {"2/3", "3/3"}, {"0/1", "1/1"}} {
		a, err1 := parseShardFlag("", tc.index)
		b, err2 := parseShardFlag(tc.shard, "")
		if err1 != nil || err2 != nil || a != b {
			t.Errorf("--shard-index %s = %v (%v), --shard %s = %v (%v)", tc.index, a, err1, tc.shard, b, err2)
		}
	}
}

// TestBundleAnomaliesReported: through the command line and into report.json, a host in
// two bundles (the newer used, a conflict listed), inventory hosts in no bundle
// (missing_bundle: not collected, exit 3), a bundle host the inventory lacks (listed,
// not evaluated), and a stale bundle.
func TestBundleAnomaliesReported(t *testing.T) {
	chdirRoot(t)
	work := t.TempDir()
	bundles := filepath.Join(work, "bundles")
	var trusted strings.Builder
	collectAs := func(site string, now time.Time, cfg string, args ...string) {
		t.Helper()
		prefix := filepath.Join(work, site)
		if _, err := os.Stat(prefix + ".key"); err != nil {
			if code, _, stderr := rdsaudit(t, sampleNow, "keygen", "--out", prefix); code != ExitOK {
				t.Fatal(stderr)
			}
			fmt.Fprintf(&trusted, "    - {site: %s, public_key_file: %s}\n", site, prefix+".pub")
		}
		t.Setenv("RDSAUDIT_SITE_NAME", site)
		t.Setenv("RDSAUDIT_SIGNING_KEY_FILE", prefix+".key")
		code, stdout, stderr := rdsaudit(t, now, append([]string{"collect", "--config", cfg, "--bundle", bundles}, args...)...)
		if code != ExitOK {
			t.Fatalf("collect %s %v: exit %d\n%s\n%s", site, args, code, stdout, stderr)
		}
	}
	// Site A: farm A, two days before the central run. Site B: RDSH-A01 again (the
	// conflict) and the license servers, an hour before. Site C: a host the central
	// inventory does not have.
	collectAs("site-a", sampleNow.Add(-48*time.Hour), "samples/config.yaml", "--group", "farm-a")
	collectAs("site-b", sampleNow.Add(-time.Hour), "samples/config.yaml", "--hosts", "RDSH-A01,LS0*")
	extra := filepath.Join(work, "extra.yaml")
	writeFile(t, extra, fmt.Sprintf("inventory:\n  hosts:\n    - {name: RDSH-Z99, roles: [session_host]}\ncollection: {source: offline, evidence_dir: %s}\n", mustAbs(t, "samples/fleet")))
	collectAs("site-c", sampleNow.Add(-time.Hour), extra)

	out := filepath.Join(work, "central")
	code, stdout, stderr := rdsaudit(t, sampleNow, "run", "--config", centralConfig(t, trusted.String(), "  max_age: 24h\n"), "--bundles", bundles, "--output-dir", out)
	if code != ExitCoverage {
		t.Fatalf("central run: exit %d, want %d\n%s\n%s", code, ExitCoverage, stdout, stderr)
	}
	if !strings.Contains(stdout, "bundles: 3 read (1 stale, 0 superseded); 1 hosts in more than one bundle; 1 bundle hosts not in the inventory") {
		t.Errorf("summary lacks the bundles line:\n%s", stdout)
	}
	rep := readReport(t, runDirs(t, out)[0])
	bc := rep.Coverage.Bundles
	if bc == nil {
		t.Fatal("no coverage.bundles")
	}
	if len(bc.Conflicts) != 1 || bc.Conflicts[0].Host != "RDSH-A01" || !strings.HasPrefix(bc.Conflicts[0].Used, "site-b_") ||
		len(bc.Conflicts[0].Ignored) != 1 || !strings.HasPrefix(bc.Conflicts[0].Ignored[0], "site-a_") {
		t.Errorf("conflicts = %+v", bc.Conflicts)
	}
	if len(bc.NotInInventory) != 1 || bc.NotInInventory[0].Host != "RDSH-Z99" {
		t.Errorf("not_in_inventory = %+v", bc.NotInInventory)
	}
	stale := map[string]bool{}
	for _, b := range bc.Bundles {
		stale[b.Site] = b.Stale
	}
	if !stale["site-a"] || stale["site-b"] || stale["site-c"] {
		t.Errorf("stale = %v, want site-a only", stale)
	}
	// farm A (8), the conflict host once, LS01 and LS02 collected; every other host
	// of the inventory is missing_bundle and RDSH-Z99 is not evaluated.
	missing := 0
	for _, h := range rep.Coverage.Hosts {
		switch {
		case h.Name == "RDSH-Z99":
			t.Error("a host outside the inventory was evaluated")
		case h.FailureClass == "missing_bundle":
			missing++
			if h.Collector != bundle.CollectorName {
				t.Errorf("%s: collector %q", h.Name, h.Collector)
			}
		case h.Name == "RDSH-A01" && !strings.HasPrefix(h.Collector, "bundle:site-b/site-b_"):
			t.Errorf("RDSH-A01 collector %q, want the newer bundle of site-b", h.Collector)
		}
	}
	if want := rep.Coverage.Targeted - 10; missing != want || rep.Coverage.Collected != 10 {
		t.Errorf("missing_bundle %d (want %d), collected %d (want 10)", missing, want, rep.Coverage.Collected)
	}
	for _, r := range rep.Results {
		if r.Subject.Name == "RDSH-Z99" {
			t.Errorf("result for a host outside the inventory: %s", r.RuleID)
		}
	}
}
