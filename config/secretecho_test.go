package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A secret typed where its reference belongs is never printed back: not by validation,
// not when resolving it (issue 14, defect 3).
func TestSecretReferencesNotEchoed(t *testing.T) {
	clearEnv(t)
	_, err := Load("testdata/invalid-secret-in-reference.yaml", nil)
	if err == nil || strings.Contains(err.Error(), "canary") {
		t.Errorf("Load error echoes the secret: %v", err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		cred   Credential
		secret string
	}{
		{Credential{Name: "a", PasswordEnv: "Winter2026canary"}, "Winter2026canary"},        // a valid name, not set
		{Credential{Name: "b", PasswordFile: "Tr0ub4dor&3canary"}, "Tr0ub4dor&3canary"},     // no such file
		{Credential{Name: "c", PasswordFile: filepath.Join(dir, "pw canary")}, "pw canary"}, // no such file, absolute
	} {
		_, err := ResolvePassword(tc.cred)
		if err == nil || strings.Contains(err.Error(), tc.secret) || !strings.Contains(err.Error(), `credential "`+tc.cred.Name+`"`) {
			t.Errorf("ResolvePassword(%s) error %v: must fail without printing %q", tc.cred.Name, err, tc.secret)
		}
	}
	if _, err := ResolveWebhookSecret(Notify{SecretEnv: "hookcanary"}); err == nil || strings.Contains(err.Error(), "hookcanary") {
		t.Errorf("webhook env: %v", err)
	}
	if _, err := ResolveWebhookSecret(Notify{SecretFile: "hook canary"}); err == nil || strings.Contains(err.Error(), "hook canary") {
		t.Errorf("webhook file: %v", err)
	}
	// A conventional variable name is still named: it cannot be mistaken for a secret.
	os.Unsetenv("RDSAUDIT_TEST_UNSET_VAR2")
	if _, err := ResolvePassword(Credential{Name: "d", PasswordEnv: "RDSAUDIT_TEST_UNSET_VAR2"}); err == nil || !strings.Contains(err.Error(), "environment variable RDSAUDIT_TEST_UNSET_VAR2 is not set") {
		t.Errorf("conventional name: %v", err)
	}
}
