package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/collect/winrm"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite testdata/invalid-*.err from the current messages (review the diff)")

// clearEnv unsets every RDSAUDIT_* override for the test, so the developer's
// environment cannot change the outcome.
func clearEnv(t *testing.T) {
	t.Helper()
	for k := range defaults(".") {
		name := EnvVar(k)
		if _, ok := os.LookupEnv(name); ok {
			t.Setenv(name, "") // restores the old value after the test; "" means unset to viper
		}
	}
}

// TestInvalidConfigs loads every testdata/invalid-*.yaml and compares the error with the
// sibling .err file, byte for byte. The CLI's `validate` prints the same text (run from
// the config directory, file paths read "testdata/...").
func TestInvalidConfigs(t *testing.T) {
	clearEnv(t)
	files, err := filepath.Glob("testdata/invalid-*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid configs: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			_, err := Load(file, nil)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not match ErrInvalid: %v", err)
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".err"
			if *update {
				if err := os.WriteFile(golden, []byte(err.Error()+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, rerr := os.ReadFile(golden)
			if rerr != nil {
				t.Fatalf("%v (run go test ./config -run TestInvalidConfigs -update and review)", rerr)
			}
			if got := err.Error(); got != strings.TrimSuffix(string(want), "\n") {
				t.Errorf("error mismatch\n got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestInvalidCoverage pins which problems the invalid fixtures exercise, so a fixture
// cannot silently stop testing what its name says.
func TestInvalidCoverage(t *testing.T) {
	clearEnv(t)
	tests := []struct {
		file string
		want string // substring of the error
	}{
		{"invalid-unknown-key", `testdata/invalid-unknown-key.yaml:7: unknown key "colection"`},
		{"invalid-unknown-key", `testdata/invalid-unknown-key.yaml:10: unknown key "collection.concurency"`},
		{"invalid-inline-password", `testdata/invalid-inline-password.yaml:7: credentials[0].password: inline passwords are not accepted; set password_env: VAR or password_file: PATH`},
		{"invalid-both-passwords", `credentials[0]: set only one of password_env and password_file`},
		{"invalid-both-passwords", `credentials[1]: set password_env: VAR or password_file: PATH`},
		{"invalid-bad-role", `testdata/invalid-bad-role.yaml:3: inventory.hosts[0].roles: unknown role "sesion_host" (valid: session_host, license_server, client)`},
		{"invalid-bad-role", `inventory.hosts[2].roles: at least one role required`},
		{"invalid-unknown-credential", `inventory.hosts[1].credential: host RDSH-A02: unknown credential "adit"`},
		{"invalid-unknown-credential", `default_credential: unknown credential "auditor"`},
		{"invalid-bad-scheme", `transport.scheme: must be one of https, http, got "wsman"`},
		{"invalid-basic-over-http", `transport.auth: basic over http sends the password in clear text`},
		{"invalid-webhook-secret-over-http", `testdata/invalid-webhook-secret-over-http.yaml:8: notify.webhook_url: a secret header is only sent over https; use https or drop notify.secret_*`},
		{"invalid-kerberos-over-http", `transport.auth: kerberos over http is not supported`},
		{"invalid-concurrency-zero", `collection.concurrency: must be between 1 and 256, got 0`},
		{"invalid-concurrency-zero", `collection.retries: must be between 0 and 10, got 11`},
		{"invalid-bad-duration", `collection.host_timeout: invalid duration "5 minutes"`},
		{"invalid-bad-duration", `collection.operation_timeout: invalid duration "60"`},
		{"invalid-timeout-order", `collection.host_timeout: must exceed collection.operation_timeout (1m0s) plus the 15s HTTP margin, got 1m0s`},
		{"invalid-bad-schedule", `schedule: "0 24 1 * *": end of range (24) above maximum (23)`},
		{"invalid-schedule-fields", `schedule: "monthly on the 1st": expected exactly 5 fields`},
		{"invalid-duplicate-host", `inventory.hosts[1].name: duplicate host "rdsh-a01" (first defined at testdata/invalid-duplicate-host.yaml:4)`},
		{"invalid-duplicate-host", `testdata/inventory.csv:4: name: duplicate host "RDSH-B02" (first defined at testdata/invalid-duplicate-host.yaml:6)`},
		{"invalid-csv-line", `testdata/invalid-csv-line.csv:7: roles: unknown role "sesion_host"`},
		{"invalid-csv-line", `testdata/invalid-csv-line.csv:6: port: expected an integer, got "59x6"`},
		{"invalid-csv-line", `testdata/invalid-csv-line.csv:8: expected 7 fields like the header, got 5`},
		{"invalid-csv-header", `testdata/invalid-csv-header.csv:1: unknown column "hostname"`},
		{"invalid-csv-missing", `testdata/invalid-csv-missing.yaml:2: inventory.file: open testdata/no-such-inventory.csv: no such file or directory`},
		{"invalid-no-hosts", `testdata/invalid-no-hosts.yaml:1: inventory: no hosts: add inventory.hosts or inventory.file`},
		{"invalid-no-credential", `host RDSH-A01: no credential; set credential or default_credential`},
		{"invalid-offline-no-evidence-dir", `collection.evidence_dir: required when collection.source is offline`},
		{"invalid-duplicate-key", `testdata/invalid-duplicate-key.yaml:10: collection.retries: duplicate key (first at line 8)`},
		{"invalid-wrong-types", `inventory.hosts[0].roles: expected a list, got a mapping`},
		{"invalid-wrong-types", `collection.concurrency: expected an integer, got "eight"`},
		{"invalid-log", `log.level: must be one of trace, debug, info, warn, error, got "verbose"`},
		{"invalid-yaml-syntax", `testdata/invalid-yaml-syntax.yaml:3: invalid YAML: did not find expected ',' or '}'`},
		{"invalid-bad-host-name", `invalid host name "../etc/passwd"`},
		{"invalid-bad-host-name", `inventory.hosts[1].name: required`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", tt.file+".yaml"), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error\n%v\ndoes not contain\n%s", err, tt.want)
			}
		})
	}
}

func TestValidConfig(t *testing.T) {
	clearEnv(t)
	cfg, err := Load("testdata/valid.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File() != "testdata/valid.yaml" || cfg.Dir() != "testdata" {
		t.Errorf("File, Dir = %q, %q", cfg.File(), cfg.Dir())
	}
	c := cfg.Collection
	if c.Concurrency != 8 || c.HostTimeout != 4*time.Minute || c.OperationTimeout != 45*time.Second ||
		c.Retries != 3 || c.RetryBackoff != time.Second || c.MaxOutputBytes != 64<<20 {
		t.Errorf("collection = %+v", c)
	}
	if c.HTTPTimeout() != 60*time.Second {
		t.Errorf("HTTPTimeout = %s", c.HTTPTimeout())
	}
	if cfg.Transport.EffectivePort() != 5986 || cfg.Log.Level != "debug" || cfg.Log.Format != "json" {
		t.Errorf("transport/log = %+v %+v", cfg.Transport, cfg.Log)
	}
	if cfg.History.RetentionRuns != 24 || cfg.Schedule != "0 6 1 * *" {
		t.Errorf("history/schedule = %+v %q", cfg.History, cfg.Schedule)
	}

	hosts, err := cfg.Hosts()
	if err != nil {
		t.Fatal(err)
	}
	want := []Host{
		{Name: "RDSH-A01", Address: "10.10.1.11", Port: 5986, Roles: []string{"session_host"}, Group: "farm-a", Tags: []string{"prod"}, Credential: "audit", Source: "testdata/valid.yaml:5"},
		{Name: "RDSH-A02", Address: "RDSH-A02", Port: 5986, Roles: []string{"session_host"}, Group: "farm-a", Credential: "audit", Source: "testdata/valid.yaml:6"},
		{Name: "LIC-01", Address: "LIC-01", Port: 5986, Roles: []string{"license_server"}, Credential: "audit", Source: "testdata/valid.yaml:9"},
		{Name: "RDSH-B01", Address: "10.10.2.11", Port: 5986, Roles: []string{"session_host"}, Group: "farm-b", Tags: []string{"prod", "citrix-free"}, Credential: "audit", Source: "testdata/inventory.csv:3"},
		{Name: "RDSH-B02", Address: "10.10.2.12", Port: 5986, Roles: []string{"session_host"}, Group: "farm-b", Tags: []string{"prod"}, Credential: "lab", Source: "testdata/inventory.csv:4"},
		{Name: "WKS-0042", Address: "WKS-0042", Port: 5986, Roles: []string{"client"}, Tags: []string{"kiosk"}, Credential: "audit", Source: "testdata/inventory.csv:5"},
	}
	if len(hosts) != len(want) {
		t.Fatalf("got %d hosts, want %d: %+v", len(hosts), len(want), hosts)
	}
	for i := range want {
		h := hosts[i]
		h.loc = location{}
		if !reflect.DeepEqual(h, want[i]) {
			t.Errorf("host %d:\n got %+v\nwant %+v", i, h, want[i])
		}
	}
	if !hosts[0].HasRole("session_host") || hosts[2].HasRole("session_host") {
		t.Error("HasRole")
	}
	if ref := hosts[5].Ref(); ref.Name != "WKS-0042" || ref.Roles[0] != "client" {
		t.Errorf("Ref = %+v", ref)
	}
	// Hosts returns a copy.
	hosts[0].Roles[0] = "x"
	again, _ := cfg.Hosts()
	if again[0].Roles[0] != "session_host" {
		t.Error("Hosts shares slices with the config")
	}
}

func TestDefaults(t *testing.T) {
	clearEnv(t)
	cfg, err := Load("testdata/minimal.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Collection
	if c.Source != SourceWinRM || c.Concurrency != DefaultConcurrency || c.HostTimeout != 5*time.Minute ||
		c.OperationTimeout != time.Minute || c.Retries != 2 || c.RetryBackoff != 2*time.Second ||
		c.AuthFailureLimit != 3 || c.MaxIssuedLicenses != 100000 {
		t.Errorf("collection defaults = %+v", c)
	}
	// One default for the issued-licence bound: config's is the collector's.
	if c.MaxIssuedLicenses != winrm.DefaultMaxIssued {
		t.Errorf("max_issued_licenses default %d, collect.DefaultMaxIssued %d", c.MaxIssuedLicenses, winrm.DefaultMaxIssued)
	}
	tr := cfg.Transport
	if tr.Scheme != SchemeHTTPS || tr.Auth != AuthNTLM || tr.EffectivePort() != 5986 || tr.Kerberos.Krb5Conf != "/etc/krb5.conf" {
		t.Errorf("transport defaults = %+v", tr)
	}
	if cfg.OutputDir != filepath.Join("testdata", "out") || cfg.History.Path != filepath.Join("testdata", "out", "history.db") {
		t.Errorf("output_dir %q, history.path %q", cfg.OutputDir, cfg.History.Path)
	}
	if cfg.Log.Level != "info" || cfg.Log.Format != FormatAuto || cfg.Schedule != "" {
		t.Errorf("log %+v schedule %q", cfg.Log, cfg.Schedule)
	}
	if (Transport{Scheme: SchemeHTTP}).EffectivePort() != 5985 || (Transport{Port: 15986}).EffectivePort() != 15986 {
		t.Error("EffectivePort")
	}
}

func TestRelativePaths(t *testing.T) {
	clearEnv(t)
	cfg, err := Load("testdata/valid.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	j := filepath.Join
	for field, got := range map[string]string{
		"inventory.file":          cfg.Inventory.File,
		"transport.ca_bundle":     cfg.Transport.CABundle,
		"collection.evidence_dir": cfg.Collection.EvidenceDir,
		"rules_file":              cfg.RulesFile,
		"entitlements_file":       cfg.EntitlementsFile,
		"output_dir":              cfg.OutputDir,
		"history.path":            cfg.History.Path,
		"signing.key_file":        cfg.Signing.KeyFile,
		"password_file":           cfg.Credentials[1].PasswordFile,
		"krb5_conf":               cfg.Transport.Kerberos.Krb5Conf,
	} {
		want := map[string]string{
			"inventory.file":          j("testdata", "inventory.csv"),
			"transport.ca_bundle":     j("testdata", "ca.pem"),
			"collection.evidence_dir": j("testdata", "evidence"),
			"rules_file":              j("testdata", "rules.yaml"),
			"entitlements_file":       j("testdata", "entitlements.csv"),
			"output_dir":              j("testdata", "out"),
			"history.path":            j("testdata", "out", "history.db"),
			"signing.key_file":        j("testdata", "keys", "manifest.key"),
			"password_file":           j("testdata", "secrets", "lab.pw"),
			"krb5_conf":               "/etc/krb5.conf", // absolute: unchanged
		}[field]
		if got != want {
			t.Errorf("%s = %q, want %q", field, got, want)
		}
	}

	// A config in another directory, loaded by absolute path, resolves against that
	// directory; values from env and flags stay relative to the working directory.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "sub", "c.yaml"), "inventory:\n  hosts: [{name: H1, roles: [client]}]\n"+
		"credentials: [{name: a, username: u, password_file: ../pw}]\ndefault_credential: a\noutput_dir: reports\n")
	t.Setenv("RDSAUDIT_RULES_FILE", "my-rules.yaml")
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	BindFlags(fs)
	if err := fs.Parse([]string{"--evidence-dir", "ev"}); err != nil {
		t.Fatal(err)
	}
	cfg, err = Load(filepath.Join(dir, "sub", "c.yaml"), fs)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OutputDir != filepath.Join(dir, "sub", "reports") || cfg.Credentials[0].PasswordFile != filepath.Join(dir, "pw") {
		t.Errorf("file paths: output_dir %q, password_file %q", cfg.OutputDir, cfg.Credentials[0].PasswordFile)
	}
	if cfg.RulesFile != "my-rules.yaml" || cfg.Collection.EvidenceDir != "ev" {
		t.Errorf("env/flag paths: rules_file %q, evidence_dir %q", cfg.RulesFile, cfg.Collection.EvidenceDir)
	}
}

func TestEnvOverride(t *testing.T) {
	clearEnv(t)
	// Keys present in the file and keys present only as defaults.
	t.Setenv("RDSAUDIT_COLLECTION_CONCURRENCY", "32")        // in valid.yaml
	t.Setenv("RDSAUDIT_OUTPUT_DIR", "/srv/rdsaudit")         // in valid.yaml
	t.Setenv("RDSAUDIT_TRANSPORT_KERBEROS_REALM", "CONTOSO") // default only, nested twice
	t.Setenv("RDSAUDIT_COLLECTION_AUTH_FAILURE_LIMIT", "5")  // in file
	t.Setenv("RDSAUDIT_HISTORY_RETENTION_MONTHS", "36")      // default only
	t.Setenv("RDSAUDIT_COLLECTION_HOST_TIMEOUT", "10m")      // duration
	t.Setenv("RDSAUDIT_TRANSPORT_INSECURE_SKIP_VERIFY", "true")
	cfg, err := Load("testdata/valid.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Collection.Concurrency != 32 || cfg.OutputDir != "/srv/rdsaudit" || cfg.Transport.Kerberos.Realm != "CONTOSO" ||
		cfg.Collection.AuthFailureLimit != 5 || cfg.History.RetentionMonths != 36 ||
		cfg.Collection.HostTimeout != 10*time.Minute || !cfg.Transport.InsecureSkipVerify {
		t.Errorf("env not applied: %+v", cfg)
	}
	if cfg.History.Path != "/srv/rdsaudit/history.db" {
		t.Errorf("history.path = %q, want it under the overridden output_dir", cfg.History.Path)
	}
	if w := cfg.Warnings(); len(w) != 1 || !strings.HasPrefix(w[0], "transport.insecure_skip_verify:") {
		t.Errorf("Warnings = %q", w)
	}

	// A bad env value names the variable, not the file.
	t.Setenv("RDSAUDIT_COLLECTION_CONCURRENCY", "many")
	_, err = Load("testdata/valid.yaml", nil)
	if want := `collection.concurrency: expected an integer, got "many" (from env RDSAUDIT_COLLECTION_CONCURRENCY)`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
	// An out-of-range env value is reported by Validate, also naming the variable.
	t.Setenv("RDSAUDIT_COLLECTION_CONCURRENCY", "0")
	_, err = Load("testdata/valid.yaml", nil)
	if want := `collection.concurrency: must be between 1 and 256, got 0 (from env RDSAUDIT_COLLECTION_CONCURRENCY)`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

func TestFlagOverride(t *testing.T) {
	clearEnv(t)
	t.Setenv("RDSAUDIT_COLLECTION_CONCURRENCY", "32")
	t.Setenv("RDSAUDIT_LOG_LEVEL", "warn")
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	BindFlags(fs)
	BindLogFlags(fs)
	if err := fs.Parse([]string{"--concurrency", "4", "--output-dir", "elsewhere"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load("testdata/valid.yaml", fs)
	if err != nil {
		t.Fatal(err)
	}
	// Flags beat env and file; unset flags do not override anything (log.level from env,
	// log.format from the file, source from the file, not the flags' defaults).
	if cfg.Collection.Concurrency != 4 || cfg.OutputDir != "elsewhere" || cfg.Log.Level != "warn" ||
		cfg.Log.Format != "json" || cfg.Collection.Source != SourceWinRM {
		t.Errorf("concurrency %d, output_dir %q, log %+v, source %q",
			cfg.Collection.Concurrency, cfg.OutputDir, cfg.Log, cfg.Collection.Source)
	}

	// A bad flag value is reported naming the flag.
	fs = pflag.NewFlagSet("run", pflag.ContinueOnError)
	BindFlags(fs)
	BindLogFlags(fs)
	_ = fs.Parse([]string{"--log-format", "xml"})
	_, err = Load("testdata/valid.yaml", fs)
	if want := `log.format: must be one of auto, console, json, got "xml" (from flag --log-format)`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}

	// A caller-defined subset of the flags binds by name.
	fs = pflag.NewFlagSet("validate", pflag.ContinueOnError)
	fs.String("log-level", "info", "")
	_ = fs.Parse([]string{"--log-level=trace"})
	if cfg, err = Load("testdata/valid.yaml", fs); err != nil || cfg.Log.Level != "trace" {
		t.Errorf("caller-defined flag: %v %+v", err, cfg)
	}
}

func TestNoFile(t *testing.T) {
	clearEnv(t)
	_, err := Load("", nil)
	if want := "inventory: no hosts: add inventory.hosts or inventory.file"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v", err)
	}
	_, err = Load("testdata/does-not-exist.yaml", nil)
	if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "read config: open testdata/does-not-exist.yaml") {
		t.Errorf("err = %v", err)
	}
}

func TestResolvePassword(t *testing.T) {
	clearEnv(t)
	t.Setenv("RDSAUDIT_TEST_PASSWORD", "s3cr3t-from-env")
	pw, err := ResolvePassword(Credential{Name: "audit", PasswordEnv: "RDSAUDIT_TEST_PASSWORD"})
	if err != nil || pw != "s3cr3t-from-env" {
		t.Errorf("env: %q, %v", pw, err)
	}
	pw, err = ResolvePassword(Credential{Name: "lab", PasswordFile: "testdata/secrets/lab.pw"})
	if err != nil || pw != "lab-secret-pw" {
		t.Errorf("file: %q, %v", pw, err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "crlf.pw"), "p@ss word\r\n")
	writeFile(t, filepath.Join(dir, "empty.pw"), "\n")
	if pw, err = ResolvePassword(Credential{Name: "c", PasswordFile: filepath.Join(dir, "crlf.pw")}); err != nil || pw != "p@ss word" {
		t.Errorf("crlf: %q, %v", pw, err)
	}
	for _, tt := range []struct {
		cred Credential
		want string
	}{
		{Credential{Name: "a", PasswordEnv: "RDSAUDIT_TEST_UNSET_VAR"}, `credential "a": environment variable RDSAUDIT_TEST_UNSET_VAR is not set`},
		{Credential{Name: "b", PasswordFile: filepath.Join(dir, "none.pw")}, `credential "b": read password file named in password_file (not shown): no such file or directory`},
		{Credential{Name: "c", PasswordFile: filepath.Join(dir, "empty.pw")}, `credential "c": password file ` + filepath.Join(dir, "empty.pw") + ` is empty`},
	} {
		if _, err := ResolvePassword(tt.cred); err == nil || err.Error() != tt.want {
			t.Errorf("err = %v, want %s", err, tt.want)
		}
	}
	t.Setenv("RDSAUDIT_TEST_EMPTY", "")
	if _, err := ResolvePassword(Credential{Name: "d", PasswordEnv: "RDSAUDIT_TEST_EMPTY"}); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty env: %v", err)
	}
}

func TestCheckSecrets(t *testing.T) {
	clearEnv(t)
	cfg, err := Load("testdata/valid.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("RDSAUDIT_TEST_PASSWORD", "") // restored after the test
	os.Unsetenv("RDSAUDIT_TEST_PASSWORD")
	if err := cfg.CheckSecrets(); err == nil || err.Error() != `credential "audit": environment variable RDSAUDIT_TEST_PASSWORD is not set` {
		t.Errorf("CheckSecrets = %v", err)
	}
	t.Setenv("RDSAUDIT_TEST_PASSWORD", "x")
	if err := cfg.CheckSecrets(); err != nil {
		t.Errorf("CheckSecrets = %v", err)
	}
}

// TestNoSecretInOutput resolves the passwords, then checks that no rendering of the
// config or its credentials contains them.
func TestNoSecretInOutput(t *testing.T) {
	clearEnv(t)
	const envSecret = "Sup3r-Secret-From-Env"
	t.Setenv("RDSAUDIT_TEST_PASSWORD", envSecret)
	cfg, err := Load("testdata/valid.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	var secrets []string
	for _, cr := range cfg.Credentials {
		pw, err := ResolvePassword(cr)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, pw)
	}
	if secrets[0] != envSecret || secrets[1] != "lab-secret-pw" {
		t.Fatalf("resolved %q", secrets)
	}
	outputs := []string{
		cfg.String(), cfg.GoString(), string(cfg.Canonical()),
		fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%s", cfg),
		fmt.Sprintf("%v", *cfg), fmt.Sprintf("%+v", cfg.Credentials), fmt.Sprintf("%#v", cfg.Credentials),
		fmt.Sprint(cfg.Redacted()), strings.Join(cfg.Warnings(), "\n"),
	}
	for _, cr := range cfg.Credentials {
		outputs = append(outputs, cr.String(), cr.GoString(), fmt.Sprintf("%v %+v %#v", cr, cr, cr))
	}
	for i, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("output %d contains a secret: %s", i, out)
			}
		}
	}
	if s := cfg.Credentials[0].String(); s != `audit (CONTOSO\svc-rdsaudit, password from env RDSAUDIT_TEST_PASSWORD)` {
		t.Errorf("Credential.String = %s", s)
	}
}

func TestCanonical(t *testing.T) {
	clearEnv(t)
	a, err := Load("testdata/valid.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Load("testdata/valid.yaml", nil)
	if string(a.Canonical()) != string(b.Canonical()) {
		t.Error("Canonical is not deterministic")
	}
	for _, want := range []string{`"host_timeout":"4m0s"`, `"effective_hosts":[`, `"name":"WKS-0042"`} {
		if !strings.Contains(string(a.Canonical()), want) {
			t.Errorf("Canonical lacks %s", want)
		}
	}
	if got := a.Redacted()["inventory"].(map[string]any)["file"]; got != "inventory.csv" {
		t.Errorf("inventory.file = %v, want it relative to the config directory", got)
	}
	if got := a.Redacted()["transport"].(map[string]any)["kerberos"].(map[string]any)["krb5_conf"]; got != "/etc/krb5.conf" {
		t.Errorf("krb5_conf = %v, want it absolute", got)
	}
	if len(a.Hash()) != 64 || a.Hash() != b.Hash() {
		t.Errorf("Hash = %q", a.Hash())
	}
	// The same config copied elsewhere hashes the same (checkout-independent).
	dir0 := t.TempDir()
	for _, f := range []string{"valid.yaml", "inventory.csv", "ca.pem", "secrets/lab.pw", "evidence/.keep"} {
		data, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir0, f), string(data))
	}
	moved, err := Load(filepath.Join(dir0, "valid.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if moved.Hash() != a.Hash() {
		t.Errorf("hash depends on the checkout location:\n%s\n%s", moved.Canonical(), a.Canonical())
	}
	// Reordering keys and comments does not change it; a setting does.
	dir := t.TempDir()
	base := "credentials: [{name: a, username: u, password_env: X}]\ndefault_credential: a\n"
	writeFile(t, filepath.Join(dir, "1.yaml"), "inventory: {hosts: [{name: H, roles: [client]}]}\n"+base)
	writeFile(t, filepath.Join(dir, "2.yaml"), "# comment\n"+base+"inventory:\n  hosts:\n    - name: H\n      roles: [client]\n")
	writeFile(t, filepath.Join(dir, "3.yaml"), "inventory: {hosts: [{name: H, roles: [client]}]}\n"+base+"collection: {retries: 3}\n")
	c1, err1 := Load(filepath.Join(dir, "1.yaml"), nil)
	c2, err2 := Load(filepath.Join(dir, "2.yaml"), nil)
	c3, err3 := Load(filepath.Join(dir, "3.yaml"), nil)
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	if string(c1.Canonical()) != string(c2.Canonical()) || string(c1.Canonical()) == string(c3.Canonical()) {
		t.Error("Canonical depends on layout, or ignores a setting")
	}
}

func TestWarnings(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pw"), "x\n")
	if err := os.Chmod(filepath.Join(dir, "pw"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "sign.key"), "k\n")
	if err := os.Chmod(filepath.Join(dir, "sign.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "c.yaml"), "inventory: {hosts: [{name: H, roles: [client]}]}\n"+
		"credentials: [{name: a, username: u, password_file: pw}]\ndefault_credential: a\n"+
		"transport: {scheme: http, auth: basic, allow_basic_over_http: true, server_name: h}\n"+
		"signing: {key_file: sign.key}\n")
	cfg, err := Load(filepath.Join(dir, "c.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(cfg.Warnings(), "\n")
	for _, want := range []string{
		"transport.allow_basic_over_http: passwords are sent in clear text over http",
		"transport.server_name: ignored with scheme http",
		"credentials[0].password_file: " + filepath.Join(dir, "pw") + " is accessible to other users (mode 0644); chmod 600 it",
		"signing.key_file: " + filepath.Join(dir, "sign.key") + " is accessible to other users (mode 0644); chmod 600 it",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings\n%s\nlack\n%s", got, want)
		}
	}
}

func TestCron(t *testing.T) {
	for _, ok := range []string{"0 6 1 * *", "*/15 * * * *", "0 6 1-7 jan,apr,jul,oct mon", "30 2 * * 0,6", "@monthly", "0 0 1 */3 *", "@every 1h"} {
		if _, err := ParseSchedule(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for expr, want := range map[string]string{
		"0 6 1 *":                        `"0 6 1 *": expected exactly 5 fields, found 4: [0 6 1 *]`,
		"60 6 1 * *":                     `"60 6 1 * *": end of range (60) above maximum (59): 60`,
		"0 6 1 13 *":                     `"0 6 1 13 *": end of range (13) above maximum (12): 13`,
		"@fortnightly":                   `"@fortnightly": unrecognized descriptor: @fortnightly`,
		"0 6 1 * * *":                    `"0 6 1 * * *": expected exactly 5 fields, found 6: [0 6 1 * * *]`,
		"CRON_TZ=Europe/Paris 0 6 1 * *": `"CRON_TZ=Europe/Paris 0 6 1 * *": set the time zone with scheduler.timezone, not in the expression`,
		"":                               `empty cron expression`,
	} {
		_, err := ParseSchedule(expr)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: got %v, want %s", expr, err, want)
		}
	}
}

// TestScheduleKeys checks scheduler.*, collection.stop_grace and collection.on_stop.
func TestScheduleKeys(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	base := "inventory: {hosts: [{name: a, roles: [session_host]}]}\ncredentials: [{name: c, username: u, password_env: X}]\ndefault_credential: c\n"
	path := filepath.Join(dir, "c.yaml")
	writeFile(t, path, base+"schedule: \"0 6 1 * *\"\nscheduler: {timezone: Europe/Berlin, random_delay: 10m, run_at_start: true}\ncollection: {stop_grace: 5s, on_stop: discard}\n")
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	loc, err := cfg.Scheduler.Location()
	if err != nil || loc.String() != "Europe/Berlin" || cfg.Scheduler.RandomDelay != 10*time.Minute || !cfg.Scheduler.RunAtStart {
		t.Errorf("scheduler %+v (%v, %v)", cfg.Scheduler, loc, err)
	}
	if cfg.Collection.StopGrace != 5*time.Second || cfg.Collection.OnStop != OnStopDiscard {
		t.Errorf("collection %+v", cfg.Collection)
	}
	writeFile(t, path, base+"schedule: \"0 6 1 *\"\nscheduler: {timezone: Mars/Olympus, random_delay: 48h}\ncollection: {stop_grace: -1s, on_stop: keep}\n")
	_, err = Load(path, nil)
	if err == nil {
		t.Fatal("bad scheduler keys accepted")
	}
	for _, want := range []string{"schedule: \"0 6 1 *\": expected exactly 5 fields", `scheduler.timezone: unknown time zone "Mars/Olympus"`,
		"scheduler.random_delay: must be between 0s and 24h0m0s, got 48h0m0s", "collection.stop_grace: must be between 0s and 1h0m0s, got -1s",
		`collection.on_stop: must be one of publish, discard, got "keep"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors\n%v\nlack %s", err, want)
		}
	}
}

func TestCSVInventory(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	cfgText := "inventory: {file: inv.csv}\ncredentials: [{name: a, username: u, password_env: X}]\ndefault_credential: a\n"
	for _, tt := range []struct {
		name, csv, want string
	}{
		{"bom and column order", "\xef\xbb\xbfroles,name\nlicense_server,LIC-01\n", ""},
		{"only name column", "name\nH1\n", "inv.csv:2: roles: at least one role required (session_host, license_server, client)"},
		{"empty", "", "inv.csv: empty inventory: a header row (name,address,port,roles,group,tags,credential) is required"},
		{"no name column", "address,roles\n10.0.0.1,client\n", "inv.csv:1: header has no name column (columns: name,address,port,roles,group,tags,credential)"},
		{"bad quote", "name,roles\nH1,client\nH2,cli\"ent\n", "inv.csv:3: bare \" in non-quoted-field"},
		{"duplicate case-insensitive", "name,roles\nH1,client\nh1,client\n", "inv.csv:3: name: duplicate host \"h1\" (first defined at " + filepath.Join(dir, "inv.csv") + ":2)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, filepath.Join(dir, "inv.csv"), tt.csv)
			writeFile(t, filepath.Join(dir, "c.yaml"), cfgText)
			cfg, err := Load(filepath.Join(dir, "c.yaml"), nil)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				hosts, _ := cfg.Hosts()
				if len(hosts) != 1 || hosts[0].Name != "LIC-01" || !hosts[0].HasRole("license_server") {
					t.Errorf("hosts = %+v", hosts)
				}
				return
			}
			if want := filepath.Join(dir, tt.want); err == nil || err.Error() != want {
				t.Errorf("err = %v\nwant %s", err, want)
			}
		})
	}
}

func TestOffline(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "evidence"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Offline collection needs no credential and ignores transport files.
	writeFile(t, filepath.Join(dir, "c.yaml"), "inventory: {hosts: [{name: H, roles: [session_host]}]}\n"+
		"collection: {source: offline, evidence_dir: evidence}\ntransport: {ca_bundle: missing.pem}\n")
	cfg, err := Load(filepath.Join(dir, "c.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CheckSecrets() != nil || cfg.Warnings() != nil {
		t.Error("offline config has secret checks or warnings")
	}
	hosts, _ := cfg.Hosts()
	if hosts[0].Credential != "" {
		t.Errorf("credential = %q", hosts[0].Credential)
	}
}

func TestKerberosCCache(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "krb5.conf"), "[libdefaults]\n")
	writeFile(t, filepath.Join(dir, "c.yaml"), "inventory: {hosts: [{name: H, roles: [session_host]}]}\n"+
		"credentials: [{name: k, username: svc@CONTOSO.COM}]\ndefault_credential: k\n"+
		"transport: {auth: kerberos, kerberos: {krb5_conf: krb5.conf, ccache: /tmp/krb5cc_1000, realm: CONTOSO.COM}}\n")
	cfg, err := Load(filepath.Join(dir, "c.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Transport.Kerberos.Krb5Conf != filepath.Join(dir, "krb5.conf") {
		t.Errorf("krb5_conf = %q", cfg.Transport.Kerberos.Krb5Conf)
	}
	if err := cfg.CheckSecrets(); err != nil {
		t.Errorf("CheckSecrets = %v", err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReference loads the documented reference configuration.
func TestReference(t *testing.T) {
	clearEnv(t)
	cfg, err := Load("testdata/reference.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Collection.Concurrency != DefaultConcurrency || cfg.OutputDir != filepath.Join("testdata", "out") {
		t.Errorf("reference differs from defaults: %+v", cfg)
	}
}

// TestDefaultsCoverSchema checks that every scalar key of Config has a default (so it
// can be overridden from the environment) and that every default names a real key.
func TestDefaultsCoverSchema(t *testing.T) {
	var keys []string
	lists := map[string]bool{} // list keys: no default, but a flag may set them
	var walk func(rt reflect.Type, prefix string)
	walk = func(rt reflect.Type, prefix string) {
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			tag := f.Tag.Get("mapstructure")
			if !f.IsExported() || tag == "" {
				continue
			}
			switch {
			case f.Type.Kind() == reflect.Struct && f.Type != durationType():
				walk(f.Type, join(prefix, tag))
			case f.Type.Kind() == reflect.Slice:
				// lists (inventory.hosts, credentials) come from the file (or a flag) only
				lists[join(prefix, tag)] = true
			default:
				keys = append(keys, join(prefix, tag))
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	defs := defaults(".")
	for _, k := range keys {
		if _, ok := defs[k]; !ok {
			t.Errorf("no default for %s", k)
		}
		delete(defs, k)
	}
	for k := range defs {
		t.Errorf("default for unknown key %s", k)
	}
	for name, key := range Flags() {
		if _, ok := defaults(".")[key]; !ok && !lists[key] {
			t.Errorf("flag --%s binds unknown key %s", name, key)
		}
	}
}

func TestYAMLSyntaxLines(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"a:\n  b: [1, 2\nc: 3\n", "2: invalid YAML: did not find expected ',' or ']'"},
		{"a: 1\nb: 2\n  c: 3\n", "3: invalid YAML: mapping values are not allowed in this context"},
		{"a: 1\n\tb: 2\n", "2: invalid YAML: found a tab character that violates indentation"},
		{"x: 1\ninventory:\n  hosts:\n    - {name: H, roles: [client]\n", "4: invalid YAML: did not find expected ',' or '}'"},
	} {
		var n yaml.Node
		line, msg := yamlSyntaxError(yaml.Unmarshal([]byte(tt.yaml), &n))
		if got := fmt.Sprintf("%d: invalid YAML: %s", line, msg); got != tt.want {
			t.Errorf("%q: got %s, want %s", tt.yaml, got, tt.want)
		}
	}
}

// TestCobraFlags mirrors the CLI: --log-level is a root persistent flag, the run
// command's own flags come from BindFlags, and Load gets the command's merged FlagSet.
func TestCobraFlags(t *testing.T) {
	clearEnv(t)
	var got *Config
	root := &cobra.Command{Use: "rdsaudit", SilenceUsage: true, SilenceErrors: true}
	root.PersistentFlags().String("log-level", "", "")
	run := &cobra.Command{Use: "run", RunE: func(cmd *cobra.Command, _ []string) error {
		var err error
		got, err = Load("testdata/valid.yaml", cmd.Flags())
		return err
	}}
	BindFlags(run.Flags())
	root.AddCommand(run)
	root.SetArgs([]string{"--log-level", "warn", "run", "--concurrency", "3"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Log.Level != "warn" || got.Collection.Concurrency != 3 || got.Log.Format != "json" {
		t.Errorf("log %+v, concurrency %d", got.Log, got.Collection.Concurrency)
	}
}
