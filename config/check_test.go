package config

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// A file with problems of every stage (unknown key, bad value, bad enumerations) reports
// them all in one pass, in file order, each with its file and line.
func TestLoadReportsEveryProblem(t *testing.T) {
	clearEnv(t)
	_, err := Load("testdata/invalid-four-problems.yaml", nil)
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("Load = %v, want a config Error", err)
	}
	lines := []int{9, 10, 12, 14}
	if len(ce.Problems) != len(lines) {
		t.Fatalf("%d problems, want %d:\n%v", len(ce.Problems), len(lines), err)
	}
	for i, p := range ce.Problems {
		if p.File != "testdata/invalid-four-problems.yaml" || p.Line != lines[i] {
			t.Errorf("problem %d at %s:%d, want line %d: %s", i, p.File, p.Line, lines[i], p)
		}
	}
	// A bad environment value is reported along with the file's problems.
	t.Setenv("RDSAUDIT_COLLECTION_RETRIES", "many")
	_, err = Load("testdata/invalid-four-problems.yaml", nil)
	if err == nil || !errors.As(err, &ce) || len(ce.Problems) != 5 ||
		!strings.Contains(err.Error(), `collection.retries: expected an integer, got "many" (from env RDSAUDIT_COLLECTION_RETRIES)`) {
		t.Errorf("with a bad env value:\n%v", err)
	}
}

// A value dropped for its own problem does not also produce its consequences: a
// malformed inventory.hosts is one problem, not also "no hosts".
func TestLoadNoConsequentialProblems(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "c.yaml"), "inventory: {hosts: {name: H}}\n"+
		"credentials:\n  - 7\n  - {name: a, username: u}\ndefault_credential: a\n")
	_, err := Load(filepath.Join(dir, "c.yaml"), nil)
	want := []string{
		"c.yaml:1: inventory.hosts: expected a list, got a mapping",
		"c.yaml:3: credentials[0]: expected a mapping, got a single value",
		// The second item keeps its index and line although the first was dropped.
		"c.yaml:4: credentials[1]: set password_env: VAR or password_file: PATH",
	}
	got := ""
	if err != nil {
		got = err.Error()
	}
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("error lacks %q:\n%s", w, got)
		}
	}
	if strings.Contains(got, "no hosts") || strings.Count(got, "\n") != len(want)-1 {
		t.Errorf("consequential problems reported:\n%s", got)
	}
}

func TestSuggestKey(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	for _, tc := range []struct{ yaml, want string }{
		{"collection: {concurency: 4}", `unknown key "collection.concurency"; did you mean collection.concurrency?`},
		{"concurrency: 4", `unknown key "concurrency"; did you mean collection.concurrency?`},
		{"collection: {host-timeout: 1m}", `unknown key "collection.host-timeout"; did you mean collection.host_timeout?`},
		{"transport: {host_timeout: 1m}", `unknown key "transport.host_timeout"; did you mean collection.host_timeout?`},
		{"transport: {kerberos: {relm: X}}", `unknown key "transport.kerberos.relm"; did you mean transport.kerberos.realm?`},
		{"inventory: {hosts: [{name: H, roles: [client], adress: x}]}", `did you mean inventory.hosts[0].address?`},
		{"sheduler: {timezone: UTC}", `did you mean scheduler?`},
		{"frobnicate: 1", `unknown key "frobnicate"`},
	} {
		path := filepath.Join(dir, "c.yaml")
		writeFile(t, path, tc.yaml+"\n")
		_, err := Load(path, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.yaml, err, tc.want)
		}
		if tc.yaml == "frobnicate: 1" && err != nil && strings.Contains(err.Error(), "did you mean") {
			t.Errorf("%s: suggests a far key: %v", tc.yaml, err)
		}
	}
}

// A secret typed into the wrong place of a credential (or the webhook settings) is never
// printed back, whatever shape the mistake gives it.
func TestSecretInWrongFieldNotEchoed(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	const canary = "Wint3r2026Canary"
	base := "inventory: {hosts: [{name: H, roles: [client]}]}\n"
	for _, y := range []string{
		"credentials: " + canary + "\n",
		"credentials:\n  - " + canary + "\n",
		"credentials:\n  - {name: a, username: u, password_env:" + canary + "}\ndefault_credential: a\n",
		"credentials:\n  - {name: a, username: u, " + canary + ": x}\ndefault_credential: a\n",
		"credentials:\n  - {name: a, username: u, password_env: [" + canary + "]}\ndefault_credential: a\n",
		"credentials:\n  - {name: a, username: u, password: " + canary + "}\ndefault_credential: a\n",
		"credentials:\n  - {name: a, username: u, password_env: '" + canary + "!'}\ndefault_credential: a\n",
		"credentials:\n  - {name: a, username: u, password_file: '" + canary + "'}\ndefault_credential: a\n",
		"notify: " + canary + "\n",
		"notify: {webhook_url: 'https://h.example/x', secret_env: '" + canary + "!'}\n",
	} {
		path := filepath.Join(dir, "c.yaml")
		writeFile(t, path, base+y)
		_, err := Check(path, nil)
		if err == nil {
			t.Errorf("%q: Check succeeded", y)
			continue
		}
		if strings.Contains(strings.ToLower(err.Error()), strings.ToLower(canary)) {
			t.Errorf("%q: the error prints the secret:\n%v", y, err)
		}
	}
}

// Check resolves every credential reference: an unset or empty variable, a missing or
// empty password file, a missing Kerberos credential cache, an unreadable webhook
// secret are problems at the key naming them, with the next step, in the same pass as
// the file's other problems; the values are never printed.
func TestCheckResolvesCredentials(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "empty.pw"), "\n")
	writeFile(t, filepath.Join(dir, "good.pw"), "s3cretCanary\n")
	t.Setenv("RDSAUDIT_TEST_EMPTY", "")
	os.Unsetenv("RDSAUDIT_TEST_UNSET")
	t.Setenv("RDSAUDIT_TEST_SET", "s3cretCanary")
	cfgText := `inventory:
  hosts:
    - {name: H1, roles: [client], credential: unset}
    - {name: H2, roles: [client], credential: empty}
    - {name: H3, roles: [client], credential: nofile}
    - {name: H4, roles: [client], credential: emptyfile}
    - {name: H5, roles: [client], credential: good}
credentials:
  - {name: unset, username: u, password_env: RDSAUDIT_TEST_UNSET}
  - {name: empty, username: u, password_env: RDSAUDIT_TEST_EMPTY}
  - {name: nofile, username: u, password_file: no-such.pw}
  - {name: emptyfile, username: u, password_file: empty.pw}
  - {name: good, username: u, password_file: good.pw}
  - {name: spare, username: u, password_env: RDSAUDIT_TEST_UNSET}
  - {name: env, username: u, password_env: RDSAUDIT_TEST_SET}
collection: {concurrency: 0}
notify: {webhook_url: 'https://hooks.example/x', secret_file: no-such.secret}
`
	path := filepath.Join(dir, "c.yaml")
	writeFile(t, path, cfgText)
	if _, err := Load(path, nil); err == nil || strings.Count(err.Error(), "\n") != 0 {
		t.Fatalf("Load (no secrets read) = %v, want only the concurrency problem", err)
	}
	_, err := Check(path, nil)
	if err == nil {
		t.Fatal("Check succeeded")
	}
	got := err.Error()
	for _, want := range []string{
		`c.yaml:9: credentials[0].password_env: credential "unset": environment variable RDSAUDIT_TEST_UNSET is not set; set it in the environment`,
		`c.yaml:10: credentials[1].password_env: credential "empty": environment variable RDSAUDIT_TEST_EMPTY is empty`,
		`c.yaml:11: credentials[2].password_file: credential "nofile": read password file named in password_file (not shown): no such file or directory; check the path and that the account running rdsaudit can read it`,
		`c.yaml:12: credentials[3].password_file: credential "emptyfile": password file ` + filepath.Join(dir, "empty.pw") + ` is empty`,
		`c.yaml:14: credentials[5].password_env: credential "spare": environment variable RDSAUDIT_TEST_UNSET is not set; set it in the environment rdsaudit runs in (a systemd unit: Environment= or LoadCredential= with password_file) (no host uses this credential; remove it, or fix it)`,
		`c.yaml:16: collection.concurrency: must be between 1 and 256, got 0`,
		`c.yaml:17: notify.secret_file: notify: read secret file named in notify.secret_file (not shown): no such file or directory`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Check error lacks\n%s\ngot:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "\n") + 1; n != 7 {
		t.Errorf("%d problems, want 7:\n%s", n, got)
	}
	if strings.Contains(got, "s3cretCanary") || strings.Contains(got, "good.pw") || strings.Contains(got, `"env"`) {
		t.Errorf("Check error names a good credential or prints a secret:\n%s", got)
	}

	// Kerberos from a credential cache: the cache must be readable.
	writeFile(t, filepath.Join(dir, "krb5.conf"), "[libdefaults]\n")
	writeFile(t, path, "inventory: {hosts: [{name: H, roles: [client]}]}\n"+
		"credentials: [{name: k, username: u}]\ndefault_credential: k\n"+
		"transport: {auth: kerberos, kerberos: {krb5_conf: krb5.conf, ccache: no-such.ccache}}\n")
	if _, err := Check(path, nil); err == nil || !strings.Contains(err.Error(), "c.yaml:4: transport.kerberos.ccache: open "+filepath.Join(dir, "no-such.ccache")+": no such file or directory; run kinit") {
		t.Errorf("missing ccache: %v", err)
	}
}

func TestCheckOfflineAndWarnings(t *testing.T) {
	clearEnv(t)
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no Unix permission bits: the group/world-readable secret-file warnings this test expects are Unix-only")
	}
	dir := t.TempDir()
	os.Unsetenv("RDSAUDIT_TEST_UNSET")
	writeFile(t, filepath.Join(dir, "ev", ".keep"), "")
	writeFile(t, filepath.Join(dir, "cc"), "x")
	if err := os.Chmod(filepath.Join(dir, "cc"), 0o640); err != nil {
		t.Fatal(err)
	}
	// Offline: no password is ever used, so none is resolved.
	path := filepath.Join(dir, "c.yaml")
	writeFile(t, path, "inventory: {hosts: [{name: H, roles: [client]}]}\n"+
		"credentials: [{name: a, username: u, password_env: RDSAUDIT_TEST_UNSET}]\ndefault_credential: a\n"+
		"collection: {source: offline, evidence_dir: ev}\n")
	if _, err := Check(path, nil); err != nil {
		t.Errorf("offline Check = %v", err)
	}
	writeFile(t, filepath.Join(dir, "krb5.conf"), "")
	writeFile(t, path, "inventory: {hosts: [{name: H, roles: [client]}]}\n"+
		"credentials: [{name: k, username: u}]\ndefault_credential: k\n"+
		"transport: {auth: kerberos, kerberos: {krb5_conf: krb5.conf, ccache: cc}}\n")
	cfg, err := Check(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.SecretFileWarnings()
	if len(w) != 1 || w[0] != "transport.kerberos.ccache: "+filepath.Join(dir, "cc")+" is accessible to other users (mode 0640); chmod 600 it" {
		t.Errorf("warnings %q", w)
	}
	if got := cfg.Where("transport.kerberos.ccache"); got != path+":4" {
		t.Errorf("Where = %q", got)
	}
}
