package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const monitorBase = `inventory:
  hosts:
    - {name: RDSH-A01, roles: [session_host]}
credentials:
  - {name: audit, username: 'CONTOSO\svc-rdsaudit', password_env: RDSAUDIT_TEST_PASSWORD}
default_credential: audit
`

func loadMonitor(t *testing.T, extra string) (*Config, error) {
	t.Helper()
	clearEnv(t)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "textfile"), 0o750); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "rdsaudit.yaml")
	writeFile(t, path, monitorBase+extra)
	return Load(path, nil)
}

func TestMonitorDefaults(t *testing.T) {
	cfg, err := loadMonitor(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Metrics.Textfile != "" || cfg.Notify.WebhookURL != "" || cfg.Notify.SecretHeader != "Authorization" ||
		cfg.Notify.Timeout != 10*time.Second {
		t.Errorf("defaults: %+v %+v", cfg.Metrics, cfg.Notify)
	}
}

func TestMonitorValid(t *testing.T) {
	cfg, err := loadMonitor(t, `metrics: {textfile: textfile/rdsaudit.prom}
notify:
  webhook_url: https://hooks.example.test/rdsaudit?channel=ops
  secret_header: X-Rdsaudit-Token
  secret_file: secrets/hook
  timeout: 3s
`)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Metrics.Textfile != filepath.Join(cfg.Dir(), "textfile", "rdsaudit.prom") {
		t.Errorf("textfile = %q", cfg.Metrics.Textfile)
	}
	if cfg.Notify.SecretFile != filepath.Join(cfg.Dir(), "secrets", "hook") {
		t.Errorf("secret_file = %q (not resolved against the config directory)", cfg.Notify.SecretFile)
	}
	if strings.Contains(cfg.String(), "hook-secret") {
		t.Error("canonical config holds a secret")
	}
}

func TestMonitorEnv(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "rdsaudit.yaml")
	writeFile(t, path, monitorBase)
	t.Setenv("RDSAUDIT_METRICS_TEXTFILE", filepath.Join(dir, "m.prom"))
	t.Setenv("RDSAUDIT_NOTIFY_WEBHOOK_URL", "http://127.0.0.1:9/hook")
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Metrics.Textfile != filepath.Join(dir, "m.prom") || cfg.Notify.WebhookURL != "http://127.0.0.1:9/hook" {
		t.Errorf("from env: %+v %+v", cfg.Metrics, cfg.Notify)
	}
}

func TestMonitorInvalid(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"metrics: {textfile: textfile/rdsaudit.txt}\n", `metrics.textfile: must end in .prom`},
		{"metrics: {textfile: missing/rdsaudit.prom}\n", `metrics.textfile: directory`},
		{"notify: {webhook_url: 'ftp://example.test/x'}\n", `notify.webhook_url: must be an http or https URL, got scheme "ftp"`},
		{"notify: {webhook_url: 'https:///x'}\n", `notify.webhook_url: must name a host`},
		{"notify: {webhook_url: 'https://u:topsecret@example.test/x'}\n", `notify.webhook_url: must not carry user information`},
		{"notify: {webhook_url: 'https://example.test/%zz?token=topsecret'}\n", `notify.webhook_url: not a URL`},
		{"notify: {webhook_url: 'https://example.test/', secret_env: A, secret_file: b}\n", `notify: set only one of secret_env and secret_file`},
		{"notify: {webhook_url: 'https://example.test/', secret_env: 'A-B'}\n", `notify.secret_env: must name an environment variable (letters, digits, _), not hold the secret itself (the value is not shown)`},
		{"notify: {secret_env: HOOK}\n", `notify: a webhook secret is set but notify.webhook_url is empty`},
		{"notify: {webhook_url: 'http://example.test/', secret_env: HOOK}\n", `notify.webhook_url: a secret header is only sent over https`},
		{"notify: {webhook_url: 'HTTP://example.test/', secret_file: hook}\n", `notify.webhook_url: a secret header is only sent over https`},
		{"notify: {secret_header: 'X Token'}\n", `notify.secret_header: must be an HTTP header name`},
		{"notify: {timeout: 0s}\n", `notify.timeout: must be between 1s and 5m0s, got 0s`},
		{"notify: {timeout: 10}\n", `notify.timeout: invalid duration`},
		{"notify: {url: x}\n", `unknown key "notify.url"`},
	} {
		_, err := loadMonitor(t, tc.yaml)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.yaml, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("%q: error repeats the URL's secret: %v", tc.yaml, err)
		}
	}
}

func TestResolveWebhookSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "hook")
	writeFile(t, file, "Bearer s3cret-value\r\n")
	two := filepath.Join(dir, "two")
	writeFile(t, two, "Bearer s3cret-value\nInjected: yes\n")
	empty := filepath.Join(dir, "empty")
	writeFile(t, empty, "\n")
	t.Setenv("RDSAUDIT_TEST_HOOK", "Bearer s3cret-value")
	t.Setenv("RDSAUDIT_TEST_HOOK_EMPTY", "")

	for _, tc := range []struct {
		n         Notify
		want, err string
	}{
		{Notify{}, "", ""},
		{Notify{SecretEnv: "RDSAUDIT_TEST_HOOK"}, "Bearer s3cret-value", ""},
		{Notify{SecretFile: file}, "Bearer s3cret-value", ""},
		{Notify{SecretEnv: "RDSAUDIT_TEST_HOOK_UNSET"}, "", "environment variable RDSAUDIT_TEST_HOOK_UNSET is not set"},
		{Notify{SecretEnv: "RDSAUDIT_TEST_HOOK_EMPTY"}, "", "environment variable RDSAUDIT_TEST_HOOK_EMPTY is empty"},
		{Notify{SecretFile: empty}, "", "is empty"},
		{Notify{SecretFile: two}, "", "holds a control character"},
		{Notify{SecretFile: filepath.Join(dir, "none")}, "", "read secret file"},
	} {
		got, err := ResolveWebhookSecret(tc.n)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("%+v: %q, %v", tc.n, got, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%+v: err = %v, want %q", tc.n, err, tc.err)
		case err != nil && strings.Contains(err.Error(), "s3cret"):
			t.Errorf("%+v: error holds the secret: %v", tc.n, err)
		}
	}
}
