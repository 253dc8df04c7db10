package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// --hosts and --group narrow the audit to the hosts they select, on run and demo alike;
// a pattern matching no inventory host is a usage error, not a smaller audit.
func TestRunSelection(t *testing.T) {
	chdirRoot(t)
	for _, tc := range []struct {
		name  string
		args  []string
		hosts []string
	}{
		{"group", []string{"--group", "farm-a"},
			[]string{"RDSH-A01", "RDSH-A02", "RDSH-A03", "RDSH-A04", "RDSH-A05", "RDSH-A06", "RDSH-A07", "RDSH-A08"}},
		{"globs comma-separated and repeated", []string{"--hosts", "rdsh-b0[12],LS0*", "--hosts", "WG-01"},
			[]string{"LS01", "LS02", "RDSH-B01", "RDSH-B02", "WG-01"}},
		{"hosts within groups", []string{"--hosts", "*0[12]", "--group", "farm-*,infra"},
			[]string{"LS01", "LS02", "RDSH-A01", "RDSH-A02", "RDSH-B01", "RDSH-B02"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			code, stdout, stderr := rdsaudit(t, sampleNow, append([]string{"run", "--config", "samples/config.yaml", "--output-dir", out}, tc.args...)...)
			if code != ExitFindings && code != ExitOK {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			rep := readReport(t, runDirs(t, out)[0])
			var got []string
			for _, ev := range rep.Evidence {
				got = append(got, ev.Host)
			}
			if strings.Join(got, " ") != strings.Join(tc.hosts, " ") {
				t.Errorf("audited %v, want %v", got, tc.hosts)
			}
			if rep.Coverage.Targeted != len(tc.hosts) {
				t.Errorf("targeted %d, want %d", rep.Coverage.Targeted, len(tc.hosts))
			}
		})
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--hosts", "RDSH-Z*"}, `--hosts: no host name of the inventory matches RDSH-Z*`},
		{[]string{"--group", "farm-a,nope"}, `--group: no group of the inventory matches nope`},
		{[]string{"--hosts", "LS01", "--group", "farm-a"}, `no host of the inventory matches both`},
		{[]string{"--hosts", "[a-"}, `malformed pattern`},
	} {
		code, _, stderr := rdsaudit(t, sampleNow, append([]string{"run", "--config", "samples/config.yaml", "--output-dir", t.TempDir()}, tc.args...)...)
		if code != ExitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

func TestDemoSelection(t *testing.T) {
	chdirRoot(t)
	out := t.TempDir()
	code, stdout, stderr := rdsaudit(t, sampleNow, "demo", "--out", out, "--hosts", "RDSH-A01", "--group", "infra", "--hosts", "LS*")
	// LS01 and LS02 are in group infra; RDSH-A01 is not: the selection is the two
	// license servers.
	if code != ExitFindings && code != ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "coverage: 2 of 2 hosts collected") {
		t.Errorf("stdout:\n%s", stdout)
	}
}

// schedule applies --hosts to every audit it runs; a pattern matching no host refuses
// to start.
func TestScheduleSelection(t *testing.T) {
	dir := t.TempDir()
	cfg := scheduleConfig(t, dir, "", `schedule: "0 * * * *"
scheduler: {timezone: UTC, run_at_start: true}`)
	clock := newFakeClock(time.Date(2026, 11, 1, 0, 30, 0, 0, time.UTC))
	s := startCLI(t, clock, &hooks{}, "schedule", "--config", cfg, "--hosts", "rdsh-*")
	eventually(t, "the audit at start ends", func() bool { return s.finished() == 1 })
	ids := runIDs(t, filepath.Join(dir, "out"))
	if len(ids) != 1 {
		t.Fatalf("runs %v", ids)
	}
	rep := readReport(t, filepath.Join(dir, "out", ids[0]))
	if rep.Coverage.Targeted != 2 {
		t.Errorf("targeted %d, want the 2 RDSH hosts", rep.Coverage.Targeted)
	}

	var out, errb bytes.Buffer
	code := Run(context.Background(), []string{"schedule", "--config", cfg, "--group", "nope"}, &out, &errb, fixedClock(sampleNow))
	if code != ExitUsage || !strings.Contains(errb.String(), "--group: no group of the inventory matches nope") {
		t.Errorf("exit %d, stderr %s", code, errb.String())
	}
}
