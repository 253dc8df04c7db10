package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Metrics configures the Prometheus textfile written after every run (for the node
// exporter's textfile collector).
type Metrics struct {
	// Textfile is the file written atomically after every run, complete or failed;
	// "" = none. It must end in ".prom" (the textfile collector reads nothing else).
	Textfile string `mapstructure:"textfile" json:"textfile" rdsaudit:"path"`
}

// Notify configures the optional webhook POSTed after every run.
type Notify struct {
	// WebhookURL receives a JSON summary of each run; "" = no webhook.
	WebhookURL string `mapstructure:"webhook_url" json:"webhook_url"`
	// SecretHeader is the request header that carries the secret (when one is set).
	SecretHeader string `mapstructure:"secret_header" json:"secret_header"`
	// SecretEnv and SecretFile reference the header's value, never the value itself: at
	// most one is set (neither: no secret header).
	SecretEnv  string `mapstructure:"secret_env" json:"secret_env,omitempty"`
	SecretFile string `mapstructure:"secret_file" json:"secret_file,omitempty" rdsaudit:"path"`
	// Timeout bounds each of the (at most two) attempts.
	Timeout time.Duration `mapstructure:"timeout" json:"timeout"`
}

// Defaults of the notify keys.
const (
	DefaultWebhookHeader  = "Authorization"
	DefaultWebhookTimeout = 10 * time.Second
	MetricsSuffix         = ".prom"
)

// headerNameRE is an HTTP header field name (RFC 9110 token).
var headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// validateMonitor checks the metrics and notify keys. It reads no secret.
func (c *Config) validateMonitor(at atFunc) {
	if p := c.Metrics.Textfile; p != "" {
		if !strings.HasSuffix(p, MetricsSuffix) {
			at("metrics.textfile", "must end in %s (the node exporter's textfile collector reads only *%s files), got %q",
				MetricsSuffix, MetricsSuffix, p)
		}
		if fi, err := os.Stat(filepath.Dir(p)); err != nil {
			at("metrics.textfile", "directory %s: %v", filepath.Dir(p), errors.Unwrap(err))
		} else if !fi.IsDir() {
			at("metrics.textfile", "%s is not a directory", filepath.Dir(p))
		}
	}
	n := c.Notify
	if n.WebhookURL != "" {
		u, err := url.Parse(n.WebhookURL)
		switch {
		case err != nil:
			// url.Parse's error repeats the URL, which may carry a token: keep only the reason.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			at("notify.webhook_url", "not a URL: %v", err)
		case u.Scheme != "https" && u.Scheme != "http":
			at("notify.webhook_url", "must be an http or https URL, got scheme %q", u.Scheme)
		case u.Host == "":
			at("notify.webhook_url", "must name a host")
		case u.User != nil:
			at("notify.webhook_url", "must not carry user information; put the secret in notify.secret_env or notify.secret_file")
		case u.Scheme == "http" && (n.SecretEnv != "" || n.SecretFile != ""):
			at("notify.webhook_url", "a secret header is only sent over https; use https or drop notify.secret_*")
		}
	}
	switch {
	case n.SecretEnv != "" && n.SecretFile != "":
		at("notify", "set only one of secret_env and secret_file")
	case n.SecretEnv != "" && !envNameRE.MatchString(n.SecretEnv):
		at("notify.secret_env", "%s", envRefProblem("secret"))
	}
	if (n.SecretEnv != "" || n.SecretFile != "") && n.WebhookURL == "" {
		at("notify", "a webhook secret is set but notify.webhook_url is empty")
	}
	if !headerNameRE.MatchString(n.SecretHeader) {
		at("notify.secret_header", "must be an HTTP header name, got %q", n.SecretHeader)
	}
	durRange(at, "notify.timeout", n.Timeout, time.Second, 5*time.Minute)
}

// ResolveWebhookSecret reads the webhook's secret header value from the environment
// variable or the file notify references (one trailing newline, and CR, trimmed from a
// file), or "" when none is configured. Errors never print the value, and name the
// reference only when it cannot be the secret itself (see envRefName; a file path only
// once the file was read).
func ResolveWebhookSecret(n Notify) (string, error) {
	switch {
	case n.SecretEnv != "":
		v, ok := os.LookupEnv(n.SecretEnv)
		if !ok {
			return "", fmt.Errorf("notify: %s is not set", envRefName(n.SecretEnv, "notify.secret_env"))
		}
		if v == "" {
			return "", fmt.Errorf("notify: %s is empty", envRefName(n.SecretEnv, "notify.secret_env"))
		}
		return v, checkHeaderValue(v, envRefName(n.SecretEnv, "notify.secret_env"))
	case n.SecretFile != "":
		data, err := os.ReadFile(n.SecretFile)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			// Not the path: a value that names no readable file may be the secret itself.
			return "", fmt.Errorf("notify: read secret file named in notify.secret_file (not shown): %w", err)
		}
		s := strings.TrimSuffix(string(data), "\n")
		s = strings.TrimSuffix(s, "\r")
		if s == "" {
			return "", fmt.Errorf("notify: secret file %s is empty", n.SecretFile)
		}
		return s, checkHeaderValue(s, "secret file "+n.SecretFile)
	}
	return "", nil
}

// checkHeaderValue rejects a value that cannot be sent as a header (control characters,
// such as a second line in the file), without quoting it.
func checkHeaderValue(v, from string) error {
	for _, r := range v {
		if r == '\t' {
			continue
		}
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("notify: %s holds a control character (a header value is one line)", from)
		}
	}
	return nil
}
