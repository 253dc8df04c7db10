package redact

import "testing"

func TestSecrets(t *testing.T) {
	for _, tc := range []struct {
		msg     string
		secrets []string
		want    string
	}{
		// a short password is not redacted at all: "x509" stays "x509"
		{"tls: x509: certificate signed by unknown authority", []string{"x"}, "tls: x509: certificate signed by unknown authority"},
		{"tls: x509: certificate signed by unknown authority", []string{"x509"}, "tls: x509: certificate signed by unknown authority"},
		// a real password in a message is hidden
		{`logon failed for bob with "S3cret!pw"`, []string{"S3cret!pw"}, `logon failed for bob with "[REDACTED]"`},
		{"S3cretpw", []string{"S3cretpw"}, "[REDACTED]"},
		{"a=S3cretpw&b=S3cretpw.", []string{"S3cretpw"}, "a=[REDACTED]&b=[REDACTED]."},
		// not inside a longer word
		{"Secret123456 and Secret1234", []string{"Secret1234"}, "Secret123456 and [REDACTED]"},
		{"xSecret1234", []string{"Secret1234"}, "xSecret1234"},
		// a secret that begins or ends with punctuation is hidden next to letters too
		{"pw:!hunter2!x", []string{"!hunter2!"}, "pw:[REDACTED]x"},
		// the longer of two overlapping secrets wins; the base64 form is hidden
		{"Authorization: Basic Ym9iOlMzY3JldHB3", []string{"S3cretpw", "Ym9iOlMzY3JldHB3"}, "Authorization: Basic [REDACTED]"},
		{"überpass1 ok", []string{"überpass1"}, "[REDACTED] ok"},
		{"nothing here", []string{"", "S3cretpw"}, "nothing here"},
	} {
		if got := Secrets(tc.msg, tc.secrets...); got != tc.want {
			t.Errorf("Secrets(%q, %q) = %q, want %q", tc.msg, tc.secrets, got, tc.want)
		}
	}
}
