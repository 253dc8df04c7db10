package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validate resolves the credentials a WinRM run would use: an unset variable or a
// missing password file fails validation (exit 2) with the key's file and line; a set
// one passes; the password is never printed.
func TestValidateResolvesCredentials(t *testing.T) {
	dir := t.TempDir()
	chdirRoot(t)
	inv := filepath.Join(mustAbs(t, "samples"), "inventory.csv")
	cfg := filepath.Join(dir, "config.yaml")
	writeFile(t, cfg, "inventory: {file: "+inv+"}\n"+
		"credentials:\n"+
		"  - {name: audit, username: 'CONTOSO\\svc-rdsaudit', password_env: RDSAUDIT_TEST_CLI_PASSWORD}\n"+
		"  - {name: ls, username: 'CONTOSO\\svc-ls', password_file: ls.pw}\n"+
		"default_credential: audit\n"+
		"output_dir: out\n")
	t.Setenv("RDSAUDIT_TEST_CLI_PASSWORD", "")
	os.Unsetenv("RDSAUDIT_TEST_CLI_PASSWORD")
	code, stdout, stderr := rdsaudit(t, sampleNow, "validate", "--config", cfg)
	if code != ExitUsage {
		t.Fatalf("exit %d, want 2\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		cfg + ":3: credentials[0].password_env: credential \"audit\": environment variable RDSAUDIT_TEST_CLI_PASSWORD is not set",
		cfg + ":4: credentials[1].password_file: credential \"ls\": read password file named in password_file (not shown): no such file or directory",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}

	const secret = "Corr3ct-Horse-Canary"
	t.Setenv("RDSAUDIT_TEST_CLI_PASSWORD", secret)
	writeFile(t, filepath.Join(dir, "ls.pw"), secret+"\n")
	if err := os.Chmod(filepath.Join(dir, "ls.pw"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = rdsaudit(t, sampleNow, "validate", "--config", cfg)
	if code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "ok: "+cfg+": 24 hosts, 2 credential(s) resolved") ||
		!strings.Contains(stdout, "warning: "+cfg+":4: credentials[1].password_file: "+filepath.Join(dir, "ls.pw")+" is accessible to other users (mode 0644)") {
		t.Errorf("stdout:\n%s", stdout)
	}
	if strings.Contains(stdout+stderr, secret) {
		t.Errorf("validate printed the password:\n%s\n%s", stdout, stderr)
	}
}
