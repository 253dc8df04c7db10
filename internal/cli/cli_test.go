package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/history"
	"github.com/rdsaudit/rdsaudit/report"
	"github.com/rdsaudit/rdsaudit/rules"
)

// sampleNow is the fixed clock the sample fleet was written against (samples/README.md).
var sampleNow = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func fixedClock(t time.Time) Clock { return func() time.Time { return t } }

// rdsaudit runs the command line in-process from the repository root and returns the
// exit code, stdout and stderr.
func rdsaudit(t *testing.T, now time.Time, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, &out, &errb, fixedClock(now))
	return code, out.String(), errb.String()
}

func chdirRoot(t *testing.T) {
	t.Helper()
	t.Chdir(filepath.Join("..", ".."))
	if _, err := os.Stat("samples/config.yaml"); err != nil {
		t.Fatalf("not at the repository root: %v", err)
	}
}

func readReport(t *testing.T, dir string) *report.Report {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := report.Decode(f)
	if err != nil {
		t.Fatalf("decode %s/report.json: %v", dir, err)
	}
	return rep
}

// runDirOf returns the single run directory under out.
func runDirs(t *testing.T, out string) []string {
	t.Helper()
	ents, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			dirs = append(dirs, filepath.Join(out, e.Name()))
		}
	}
	sort.Strings(dirs)
	return dirs
}

// failing returns "RULE host" for every unwaived failing result.
func failing(rep *report.Report) map[string]bool {
	m := map[string]bool{}
	for _, r := range rep.Results {
		if r.Outcome == rules.Fail && !r.Waived {
			m[r.RuleID+" "+r.Subject.Name] = true
		}
	}
	return m
}

// TestSampleRun runs the README's sample command (`rdsaudit run --config
// samples/config.yaml`, output redirected to a temporary directory) with the clock the
// samples were written against, and asserts the findings the sample fleet must produce.
func TestSampleRun(t *testing.T) {
	chdirRoot(t)
	out := t.TempDir()
	code, stdout, stderr := rdsaudit(t, sampleNow, "run", "--config", "samples/config.yaml", "--output-dir", out)
	// Two inventory hosts are not collected (RDSH-B09 has no evidence, OLD-2008R2 runs
	// PowerShell 2.0): an incomplete audit exits 3, ahead of the findings' exit 1.
	if code != ExitCoverage {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, ExitCoverage, stdout, stderr)
	}
	dirs := runDirs(t, out)
	if len(dirs) != 1 {
		t.Fatalf("run directories %v, want one", dirs)
	}
	for _, f := range []string{"report.json", "report.xlsx", "manifest.json", "evidence/rdsh-a01.json", "evidence/ls01.json"} {
		if _, err := os.Stat(filepath.Join(dirs[0], f)); err != nil {
			t.Errorf("run directory lacks %s: %v", f, err)
		}
	}
	if !strings.Contains(stdout, "coverage: 22 of 24 hosts collected") {
		t.Errorf("summary lacks the coverage line:\n%s", stdout)
	}
	rep := readReport(t, dirs[0])
	if rep.Coverage.Targeted != 24 || rep.Coverage.Collected != 22 {
		t.Errorf("coverage %d/%d, want 22/24", rep.Coverage.Collected, rep.Coverage.Targeted)
	}
	got := failing(rep)
	// From samples/README.md's host table.
	want := []string{
		"RDS-MODE-001 RDSH-A07", "RDS-MODE-001 RDSH-B07",
		"RDS-MODE-002 RDSH-A04",
		"RDS-MODE-003 RDSH-B05",
		"RDS-MODE-004 farm-a", "RDS-MODE-004 farm-b",
		"RDS-MODE-005 RDSH-A08",
		"RDS-MODE-007 RDSH-C01",
		"RDS-LS-001 RDSH-B07",
		"RDS-LS-003 farm-a", "RDS-LS-003 farm-b",
		"RDS-LS-004 RDSH-B05", "RDS-LS-004 RDSH-A06",
		"RDS-LS-005 LS02",
		"RDS-LS-006 RDSH-A05", "RDS-LS-006 RDSH-B06",
		"RDS-GRACE-001 RDSH-A05", "RDS-GRACE-001 RDSH-A07",
		"RDS-GRACE-002 RDSH-A05",
		"RDS-GRACE-004 RDSH-A05", "RDS-GRACE-004 RDSH-A07",
		"RDS-GRACE-006 RDSH-A05", "RDS-GRACE-006 RDSH-B08",
		"RDS-GRACE-007 RDSH-A05",
		"RDS-GRACE-009 RDSH-B07",
		"RDS-CAL-001 RDSH-B04", "RDS-CAL-001 RDSH-C01",
		"RDS-CLIENT-001 CLIENT-02", "RDS-CLIENT-002 CLIENT-01",
		"RDS-CAL-001 RDSH-A08",
		"RDS-COLLECT-001 RDSH-B09",
		"RDS-COLLECT-002 OLD-2008R2",
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("missing finding %s", w)
		}
	}
	// Clean hosts stay clean of mode and license-server findings.
	for k := range got {
		for _, clean := range []string{"RDSH-A01", "RDSH-A02", "RDSH-B01", "RDSH-B02"} {
			if strings.HasSuffix(k, " "+clean) && (strings.HasPrefix(k, "RDS-MODE") || strings.HasPrefix(k, "RDS-LS")) {
				t.Errorf("clean host has finding %s", k)
			}
		}
	}
	// The waiver on RDSH-B05's LS-002 applies: reported as waived, not hidden.
	waived := false
	for _, r := range rep.Results {
		if r.RuleID == "RDS-LS-002" && r.Subject.Name == "RDSH-B05" {
			waived = r.Waived && r.Outcome == rules.Fail
		}
	}
	if !waived {
		t.Error("RDS-LS-002 on RDSH-B05 is not reported as a waived failure")
	}
	// The history recorded the run.
	if _, err := os.Stat(filepath.Join(out, "history.db")); err != nil {
		t.Errorf("history store not written: %v", err)
	}
	// The evidence is verifiable against the manifest.
	if code, _, stderr := rdsaudit(t, sampleNow, "verify", dirs[0]); code != ExitOK {
		t.Errorf("verify exit %d: %s", code, stderr)
	}
}

// TestDemoMatchesOffline runs the demo (the simulator and the real WinRM client over
// HTTPS) and the offline run with the same clock: the results must be the same.
func TestDemoMatchesOffline(t *testing.T) {
	chdirRoot(t)
	offline, demo := t.TempDir(), t.TempDir()
	if code, stdout, stderr := rdsaudit(t, sampleNow, "run", "--config", "samples/config.yaml", "--output-dir", offline); code != ExitCoverage {
		t.Fatalf("run exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr := rdsaudit(t, sampleNow, "demo", "--out", demo)
	if code != ExitCoverage {
		t.Fatalf("demo exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "report.xlsx") {
		t.Errorf("demo does not say where the workbook is:\n%s", stdout)
	}
	a, b := readReport(t, runDirs(t, offline)[0]), readReport(t, runDirs(t, demo)[0])
	if a.Run.Collector == b.Run.Collector {
		t.Errorf("both runs report collector %q", a.Run.Collector)
	}
	key := func(r rules.Result) string {
		return strings.Join([]string{r.ID, r.RuleID, r.Subject.String(), string(r.Outcome), r.Severity.String(), r.Observed}, "|")
	}
	set := func(rep *report.Report) map[string]bool {
		m := map[string]bool{}
		for _, r := range rep.Results {
			if r.RuleID == "RDS-COLLECT-001" {
				// The offline source says no_evidence where WinRM says connect: same
				// finding, different observed class.
				r.Observed = ""
			}
			m[key(r)] = true
		}
		return m
	}
	sa, sb := set(a), set(b)
	for k := range sa {
		if !sb[k] {
			t.Errorf("offline result missing from the demo: %s", k)
		}
	}
	for k := range sb {
		if !sa[k] {
			t.Errorf("demo result missing from the offline run: %s", k)
		}
	}
}

// TestValidateInvalidConfigs runs `rdsaudit validate` on each config/testdata/invalid-*
// file: exit 2 and exactly the expected error. The fixtures are about the file: the
// variables they reference are set, so that validate's credential resolution adds
// nothing (validate_test.go tests it).
func TestValidateInvalidConfigs(t *testing.T) {
	t.Chdir(filepath.Join("..", "..", "config"))
	for _, v := range []string{"RDSAUDIT_TEST_PASSWORD", "RDSAUDIT_PASSWORD", "RDSAUDIT_TEST_WEBHOOK_SECRET"} {
		t.Setenv(v, "x")
	}
	files, err := filepath.Glob("testdata/invalid-*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid configs: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(f, ".yaml") + ".err")
			if err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := rdsaudit(t, sampleNow, "validate", "--config", f)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d; stdout %q", code, ExitUsage, stdout)
			}
			if got, want := stderr, "rdsaudit: "+strings.TrimRight(string(want), "\n")+"\n"; got != want {
				t.Errorf("stderr:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestValidateSamples(t *testing.T) {
	chdirRoot(t)
	code, stdout, stderr := rdsaudit(t, sampleNow, "validate", "--config", "samples/config.yaml")
	if code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	// The sample rule set carries an expired waiver on purpose (RDS-WAIVER-001).
	if !strings.Contains(stdout, "warning: samples/rules.yaml:") || !strings.Contains(stdout, "ok: samples/config.yaml: 24 hosts") {
		t.Errorf("stdout %q", stdout)
	}
	if code, _, _ := rdsaudit(t, sampleNow, "validate", "--strict", "--config", "samples/config.yaml"); code != ExitUsage {
		t.Errorf("--strict with an expired waiver: exit %d, want 2", code)
	}
}

func TestValidateLintsWaivers(t *testing.T) {
	dir := t.TempDir()
	chdirRoot(t)
	waiver := func(id, rule, host, approver, expires string) string {
		return "  - {id: " + id + ", rule: " + rule + ", scope: {host: " + host + "}, justification: test, owner: o," +
			approver + " ticket: T-1, expires: " + expires + "}\n"
	}
	cfg := "inventory: {file: " + filepath.Join(mustAbs(t, "samples"), "inventory.csv") + "}\n" +
		"collection: {source: offline, evidence_dir: " + filepath.Join(mustAbs(t, "samples"), "fleet") + "}\n" +
		"rules_file: rules.yaml\n"
	writeFile(t, filepath.Join(dir, "config.yaml"), cfg)

	// An unknown rule ID makes the rule set unusable.
	writeFile(t, filepath.Join(dir, "rules.yaml"), "version: 1\nwaivers:\n"+waiver("W-1", "RDS-NOPE-001", "RDSH-A01", " approver: a,", "2027-01-31"))
	code, _, stderr := rdsaudit(t, sampleNow, "validate", "--config", filepath.Join(dir, "config.yaml"))
	if code != ExitUsage || !strings.Contains(stderr, "RDS-NOPE-001") {
		t.Fatalf("unknown rule: exit %d, want 2: %s", code, stderr)
	}
	// A scope matching no host, a missing approver and a past expiry are lint warnings.
	writeFile(t, filepath.Join(dir, "rules.yaml"), "version: 1\nwaivers:\n"+waiver("W-2", "RDS-MODE-001", "NO-SUCH-HOST", "", "2026-01-31"))
	code, stdout, stderr := rdsaudit(t, sampleNow, "validate", "--config", filepath.Join(dir, "config.yaml"))
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"NO-SUCH-HOST", "approver", "2026-01-31"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("validate output lacks %q:\n%s", want, stdout)
		}
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestRulesCommand(t *testing.T) {
	code, stdout, _ := rdsaudit(t, sampleNow, "rules")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	flat := strings.Join(strings.Fields(stdout), " ")
	for _, r := range rules.Rules() {
		if !strings.Contains(stdout, r.ID) {
			t.Errorf("catalogue lacks %s", r.ID)
		}
		// The whole rationale is printed (issue 11: RDS-CAL-007 was cut at "(e.g.").
		if !strings.Contains(flat, strings.Join(strings.Fields(r.Rationale), " ")) {
			t.Errorf("catalogue cuts the rationale of %s", r.ID)
		}
	}
	code, stdout, _ = rdsaudit(t, sampleNow, "rules", "RDS-GRACE-003")
	if code != ExitOK || !strings.Contains(stdout, "Rationale:") || !strings.Contains(stdout, "Remediation:") {
		t.Errorf("rules RDS-GRACE-003: exit %d\n%s", code, stdout)
	}
	if code, _, stderr := rdsaudit(t, sampleNow, "rules", "RDS-NOPE-999"); code != ExitUsage || !strings.Contains(stderr, "RDS-NOPE-999") {
		t.Errorf("unknown rule: exit %d, %s", code, stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"run"}, {"run", "--no-such-flag"}, {"verify"}, {"run", "--config", "x.yaml", "--as-of", "yesterday"}, {"run", "--config", "x.yaml", "--record"}} {
		if code, _, stderr := rdsaudit(t, sampleNow, args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, stderr)
		}
	}
	code, version, _ := rdsaudit(t, sampleNow, "version")
	if code != ExitOK || !strings.HasPrefix(version, "rdsaudit "+ToolVersion()) || !strings.Contains(version, runtime.Version()) {
		t.Errorf("version: %d %q", code, version)
	}
	if code, stdout, _ := rdsaudit(t, sampleNow, "--version"); code != ExitOK || stdout != version {
		t.Errorf("--version: %d %q, want %q", code, stdout, version)
	}
}

// TestSignedRunVerify signs a run's manifest with a key from keygen and checks that
// verify accepts it and names a tampered file.
func TestSignedRunVerify(t *testing.T) {
	chdirRoot(t)
	out, keys := t.TempDir(), t.TempDir()
	prefix := filepath.Join(keys, "audit")
	if code, stdout, stderr := rdsaudit(t, sampleNow, "keygen", "--out", prefix); code != ExitOK {
		t.Fatalf("keygen exit %d\n%s%s", code, stdout, stderr)
	}
	if code, _, _ := rdsaudit(t, sampleNow, "keygen", "--out", prefix); code != ExitUsage {
		t.Errorf("keygen overwrote an existing key (exit %d)", code)
	}
	t.Setenv("RDSAUDIT_SIGNING_KEY_FILE", prefix+".key")
	if code, stdout, stderr := rdsaudit(t, sampleNow, "run", "--config", "samples/config.yaml", "--output-dir", out); code != ExitCoverage {
		t.Fatalf("run exit %d\n%s%s", code, stdout, stderr)
	}
	dir := runDirs(t, out)[0]
	if _, err := os.Stat(filepath.Join(dir, "manifest.sig")); err != nil {
		t.Fatalf("no signature: %v", err)
	}
	if code, stdout, stderr := rdsaudit(t, sampleNow, "verify", dir, "--pubkey", prefix+".pub"); code != ExitOK || !strings.Contains(stdout, "signature valid") {
		t.Fatalf("verify exit %d\n%s%s", code, stdout, stderr)
	}
	ev := filepath.Join(dir, "evidence", "rdsh-a05.json")
	b, err := os.ReadFile(ev)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, ev, strings.Replace(string(b), "140", "100", 1))
	code, _, stderr := rdsaudit(t, sampleNow, "verify", dir, "--pubkey", prefix+".pub")
	if code != ExitVerifyFail || !strings.Contains(stderr, "rdsh-a05.json") {
		t.Errorf("tampered run: exit %d, stderr %s", code, stderr)
	}
}

// TestHistoryCommands records two runs a month apart and reads them back through the
// history commands.
func TestHistoryCommands(t *testing.T) {
	chdirRoot(t)
	out := t.TempDir()
	first, second := sampleNow, sampleNow.AddDate(0, 1, 0)
	for _, now := range []time.Time{first, second} {
		if code, stdout, stderr := rdsaudit(t, now, "run", "--config", "samples/config.yaml", "--output-dir", out); code != ExitCoverage {
			t.Fatalf("run at %s: exit %d\n%s%s", now, code, stdout, stderr)
		}
	}
	db := filepath.Join(out, "history.db")
	dirs := runDirs(t, out)
	if len(dirs) != 2 {
		t.Fatalf("run dirs %v", dirs)
	}
	a, b := filepath.Base(dirs[0]), filepath.Base(dirs[1])
	code, stdout, stderr := rdsaudit(t, second, "history", "--db", db)
	if code != ExitOK || !strings.Contains(stdout, a) || !strings.Contains(stdout, b) {
		t.Errorf("history: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = rdsaudit(t, second, "history", "host", "RDSH-A05", "--db", db)
	if code != ExitOK || !strings.Contains(stdout, "140") {
		t.Errorf("history host: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr = rdsaudit(t, second, "diff", a, b, "--db", db); code != ExitOK {
		t.Errorf("diff: exit %d\n%s%s", code, stdout, stderr)
	}
	// The second run knows the first: its findings persist, with first-seen carried.
	rep := readReport(t, dirs[1])
	if rep.Drift == nil || rep.Drift.PreviousRunID != a {
		t.Fatalf("second run's drift %+v, want previous run %s", rep.Drift, a)
	}
	for _, r := range rep.Results {
		if r.RuleID == "RDS-GRACE-002" && r.Subject.Name == "RDSH-A05" {
			if r.Lifecycle != rules.StatusPersisting || r.FirstSeen == nil || !r.FirstSeen.Equal(first) {
				t.Errorf("GRACE-002 on RDSH-A05: lifecycle %q first seen %v, want persisting since %s", r.Lifecycle, r.FirstSeen, first)
			}
		}
	}
	// Backfill: import the first run into a fresh store.
	fresh := filepath.Join(t.TempDir(), "h.db")
	if code, stdout, stderr = rdsaudit(t, second, "import", dirs[0], "--db", fresh, "--unverified"); code != ExitOK || !strings.Contains(stdout, a) {
		t.Errorf("import: exit %d\n%s%s", code, stdout, stderr)
	}
	// An altered run directory is refused, naming the file.
	ev := filepath.Join(dirs[1], "evidence", "rdsh-a05.json")
	raw, err := os.ReadFile(ev)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, ev, string(raw)+" ")
	if code, _, stderr = rdsaudit(t, second, "import", dirs[1], "--db", fresh); code == ExitOK || !strings.Contains(stderr, "rdsh-a05.json") {
		t.Errorf("import of an altered run: exit %d, stderr %s", code, stderr)
	}
}

// TestAsOfReevaluation: --as-of evaluates as of a past time and can be repeated; it
// never writes the history timeline.
func TestAsOfReevaluation(t *testing.T) {
	chdirRoot(t)
	out := t.TempDir()
	wall := sampleNow.AddDate(0, 2, 0)
	for i := 0; i < 2; i++ {
		code, stdout, stderr := rdsaudit(t, wall, "run", "--config", "samples/config.yaml", "--output-dir", out, "--as-of", "2026-11-01T00:00:00Z")
		if code != ExitCoverage || !strings.Contains(stdout, "not recorded in history") {
			t.Fatalf("run %d with --as-of: exit %d\n%s%s", i, code, stdout, stderr)
		}
	}
	dirs := runDirs(t, out)
	if len(dirs) != 2 {
		t.Fatalf("run dirs %v, want two distinct runs", dirs)
	}
	// Evaluated as of the samples' date, not the wall clock two months later.
	rep := readReport(t, dirs[1])
	for _, r := range rep.Results {
		if r.RuleID == "RDS-CAL-007" && r.Subject.Name == "LS01" && r.Outcome == rules.Fail && strings.Contains(r.Message, "expired") {
			t.Errorf("CAL-007 judged against the wall clock: %s", r.Message)
		}
	}
	if !failing(rep)["RDS-CAL-007 LS01"] {
		t.Error("CAL-007 on LS01 (pack 6 expires 2026-12-15) missing")
	}
	code, stdout, _ := rdsaudit(t, wall, "history", "--db", filepath.Join(out, "history.db"))
	if code != ExitOK || strings.Contains(stdout, filepath.Base(dirs[0])) {
		t.Errorf("--as-of runs reached the history:\n%s", stdout)
	}
}

// TestSecondRunRefused: a run while another holds the history lock exits 6 with a clear
// message, before contacting any host.
func TestSecondRunRefused(t *testing.T) {
	chdirRoot(t)
	out := t.TempDir()
	s, err := history.Open(context.Background(), filepath.Join(out, "history.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	release, err := s.AcquireRunLock(context.Background(), "holder")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	code, _, stderr := rdsaudit(t, sampleNow, "run", "--config", "samples/config.yaml", "--output-dir", out)
	if code != ExitLocked || !strings.Contains(stderr, "locked by") {
		t.Errorf("exit %d, want %d: %s", code, ExitLocked, stderr)
	}
	if dirs := runDirs(t, out); len(dirs) != 0 {
		t.Errorf("a refused run published %v", dirs)
	}
}

// TestBadSigningKeyFailsEarly: a configured but unreadable signing key is a
// configuration error found before any host is collected.
func TestBadSigningKeyFailsEarly(t *testing.T) {
	chdirRoot(t)
	out := t.TempDir()
	t.Setenv("RDSAUDIT_SIGNING_KEY_FILE", filepath.Join(out, "missing.key"))
	code, _, stderr := rdsaudit(t, sampleNow, "run", "--config", "samples/config.yaml", "--output-dir", out)
	if code != ExitUsage || !strings.Contains(stderr, "signing.key_file") {
		t.Errorf("exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "history.db")); err == nil {
		t.Error("the run went as far as opening history")
	}
}
