package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/collect/winrm"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader at a time.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSimulateStandalone runs `rdsaudit simulate` on the built-in fleet, collects one
// printed endpoint with the real WinRM client over HTTPS (trusting the CA it wrote), and
// stops it.
func TestSimulateStandalone(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	t.Setenv("SIM_PASSWORD", "s3cret-for-test")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"simulate", "--ntlm", "--ca-out", ca, "--user", `LAB\auditor`, "--password-env", "SIM_PASSWORD"}, &out, &errb, fixedClock(sampleNow))
	}()
	re := regexp.MustCompile(`(?mi)^RDSH-A01\s+https://(127\.0\.0\.1:\d+)/wsman$`)
	var addr string
	for addr == "" {
		select {
		case code := <-done:
			t.Fatalf("simulate exited %d early\n%s\n%s", code, out.String(), errb.String())
		default:
		}
		if m := re.FindStringSubmatch(out.String()); m != nil && strings.Contains(out.String(), "serving") {
			addr = m[1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	if strings.Contains(out.String(), "s3cret-for-test") || strings.Contains(errb.String(), "s3cret-for-test") {
		t.Error("the password reached the output")
	}
	host, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	col, err := winrm.New(winrm.Options{Auth: winrm.AuthNTLM, CAPEM: pem, Retries: -1},
		winrm.CredentialMap{"*": {Name: "t", Username: `LAB\auditor`, Password: "s3cret-for-test"}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ev := col.Collect(ctx, evidence.HostRef{Name: "RDSH-A01", Address: host, Port: port, Roles: []string{evidence.RoleSessionHost}})
	if ev.Status != evidence.StatusCollected {
		t.Fatalf("RDSH-A01 over the standalone simulator: %s %+v", ev.Status, ev.Failure)
	}
	if ev.OS == nil || ev.Key(evidence.KeyPolicy) == nil {
		t.Errorf("evidence lacks OS or the policy key: %+v", ev)
	}
	wrong, _ := winrm.New(winrm.Options{Auth: winrm.AuthNTLM, CAPEM: pem, Retries: -1},
		winrm.CredentialMap{"*": {Name: "t", Username: `LAB\auditor`, Password: "wrong"}}, zerolog.Nop())
	if ev := wrong.Collect(ctx, evidence.HostRef{Name: "RDSH-A01", Address: host, Port: port, Roles: []string{evidence.RoleSessionHost}}); ev.Failure == nil || ev.Failure.Class != evidence.FailAuth {
		t.Errorf("wrong password: %+v", ev.Failure)
	}
	cancel()
	if code := <-done; code != ExitOK {
		t.Errorf("simulate exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "open shells 0") {
		t.Errorf("shells left open:\n%s", out.String())
	}
}

func TestSimulateRefusesNonLoopback(t *testing.T) {
	code, _, stderr := rdsaudit(t, sampleNow, "simulate", "--listen", "0.0.0.0:5986")
	if code != ExitUsage || !strings.Contains(stderr, "loopback") {
		t.Errorf("exit %d: %s", code, stderr)
	}
}

// TestSimulateScaled serves a generated fleet with a fault mix (`simulate --hosts`),
// takes the inventory it prints and audits it with `rdsaudit run` over HTTPS.
func TestSimulateScaled(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"simulate", "--hosts", "40", "--latency", "2ms", "--script-time", "20ms",
			"--faults", "script_error=10%,access_denied=0.1", "--ca-out", ca}, &out, &errb, fixedClock(sampleNow))
	}()
	for !strings.Contains(errb.String(), "serving") {
		select {
		case code := <-done:
			t.Fatalf("simulate exited %d early\n%s\n%s", code, out.String(), errb.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	inv := out.String()
	lines := strings.Split(strings.TrimSpace(inv), "\n")
	if len(lines) != 1+2+40 || lines[0] != "name,address,port,roles,group,tags" || !strings.HasPrefix(lines[3], "RDSH-00000,127.0.0.1,") {
		t.Fatalf("inventory:\n%s", inv)
	}
	if err := os.WriteFile(filepath.Join(dir, "inventory.csv"), []byte(inv), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := `inventory: {file: inventory.csv}
credentials: [{name: audit, username: 'LAB\auditor', password_env: SIM_PASSWORD}]
default_credential: audit
transport: {scheme: https, auth: basic, ca_bundle: ca.pem}
collection: {source: winrm, concurrency: 16, retries: 0}
output_dir: out
`
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SIM_PASSWORD", "any")
	code, stdout, stderr := rdsaudit(t, sampleNow, "run", "--config", filepath.Join(dir, "config.yaml"), "--log-level", "warn")
	if code != ExitCoverage {
		t.Fatalf("run: exit %d\n%s%s", code, stdout, stderr)
	}
	rep := readReport(t, runDirs(t, filepath.Join(dir, "out"))[0])
	classes := map[evidence.FailureClass]int{}
	for _, c := range rep.Coverage.ByClass {
		classes[c.Class] = c.Count
	}
	if rep.Coverage.Targeted != 42 || classes[evidence.FailScript] == 0 || classes[evidence.FailAccessDenied] == 0 ||
		len(classes) != 2 || rep.Coverage.Collected != 42-classes[evidence.FailScript]-classes[evidence.FailAccessDenied] {
		t.Errorf("coverage %+v", rep.Coverage.ByClass)
	}
	cancel()
	if code := <-done; code != ExitOK {
		t.Errorf("simulate exit %d: %s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "open shells 0") {
		t.Errorf("shells left open:\n%s", errb.String())
	}
}

func TestSimulateFaultMixErrors(t *testing.T) {
	for _, mix := range []string{"nosuch=1%", "timeout", "timeout=150%", "timeout=60%,auth=50%"} {
		code, _, stderr := rdsaudit(t, sampleNow, "simulate", "--hosts", "3", "--faults", mix)
		if code != ExitUsage || !strings.Contains(stderr, "--faults") {
			t.Errorf("%s: exit %d: %s", mix, code, stderr)
		}
	}
}
