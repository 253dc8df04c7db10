package config

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"
)

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// conventionalEnvRE is the usual shape of an environment variable name (RDSAUDIT_PASSWORD).
// Messages name a referenced variable only in this shape: anything else may be the
// secret itself, typed where its reference belongs.
var conventionalEnvRE = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

// envRefProblem says what is wrong with a *_env reference that is no variable name,
// without repeating it: the value may be the secret itself.
func envRefProblem(what string) string {
	return "must name an environment variable (letters, digits, _), not hold the " + what + " itself (the value is not shown)"
}

// envRefName is how messages name the variable env: by name when it has the usual
// shape, otherwise as "the environment variable named in field".
func envRefName(env, field string) string {
	if conventionalEnvRE.MatchString(env) {
		return "environment variable " + env
	}
	return "the environment variable named in " + field + " (name not shown: it may be the secret itself)"
}

// Validate checks the whole configuration, including the inventory (it reads the
// inventory CSV), and returns every problem found, one per line, each naming the file,
// line and field path it concerns (or the environment variable or flag the value came
// from). It does no network I/O and does not read secrets (see CheckSecrets). Load calls
// it; call it again after changing a Config by hand.
func (c *Config) Validate() error {
	var probs problems
	at := func(field, format string, args ...any) {
		p := Problem{Field: field, Origin: c.origins[field], Msg: fmt.Sprintf(format, args...)}
		if p.Origin == "" {
			p.File = c.file
			p.Line = c.lines[field]
		}
		probs.add(p)
	}
	oneOf := func(field, got string, valid ...string) bool {
		if contains(valid, got) {
			return true
		}
		at(field, "must be one of %s, got %q", strings.Join(valid, ", "), got)
		return false
	}
	winrm := c.Collection.Source == SourceWinRM

	// Inventory first: it is what most files get wrong.
	c.hosts = nil
	hosts, hprobs := c.resolveHosts()
	probs = append(probs, hprobs...)
	if len(hosts) == 0 && len(hprobs) == 0 {
		at("inventory", "no hosts: add inventory.hosts or inventory.file")
	}

	// Credentials.
	creds := map[string]bool{}
	for i, cr := range c.Credentials {
		base := fmt.Sprintf("credentials[%d]", i)
		switch {
		case cr.Name == "":
			at(base+".name", "required")
		case creds[cr.Name]:
			at(base+".name", "duplicate credential %q", cr.Name)
		default:
			creds[cr.Name] = true
		}
		if cr.Username == "" && !(c.Transport.Auth == AuthKerberos && c.Transport.Kerberos.CCache != "") {
			at(base+".username", "required")
		}
		switch {
		case cr.PasswordEnv != "" && cr.PasswordFile != "":
			at(base, "set only one of password_env and password_file")
		case cr.PasswordEnv == "" && cr.PasswordFile == "":
			if !(c.Transport.Auth == AuthKerberos && c.Transport.Kerberos.CCache != "") {
				at(base, "set password_env: VAR or password_file: PATH")
			}
		case cr.PasswordEnv != "" && !envNameRE.MatchString(cr.PasswordEnv):
			at(base+".password_env", "%s", envRefProblem("password"))
		}
	}
	if c.DefaultCredential != "" && !creds[c.DefaultCredential] {
		at("default_credential", "unknown credential %q", c.DefaultCredential)
	}
	for _, h := range hosts {
		p := Problem{File: h.loc.file, Line: h.loc.line, Field: h.loc.field}
		switch {
		case h.Credential != "" && !creds[h.Credential]:
			if h.Credential == c.DefaultCredential {
				continue // reported once, at default_credential
			}
			p.Msg = fmt.Sprintf("host %s: unknown credential %q", h.Name, h.Credential)
			probs.add(p)
		case h.Credential == "" && winrm:
			p.Msg = fmt.Sprintf("host %s: no credential; set credential or default_credential", h.Name)
			probs.add(p)
		}
	}

	// Transport. Enumerations always; file checks only when collecting over WinRM.
	t := c.Transport
	okScheme := oneOf("transport.scheme", t.Scheme, SchemeHTTPS, SchemeHTTP)
	okAuth := oneOf("transport.auth", t.Auth, AuthBasic, AuthNTLM, AuthKerberos)
	if t.Port < 0 || t.Port > 65535 {
		at("transport.port", "must be between 1 and 65535 (or 0 for the scheme's default), got %d", t.Port)
	}
	if okScheme && okAuth && t.Scheme == SchemeHTTP {
		switch {
		case t.Auth == AuthBasic && !t.AllowBasicOverHTTP:
			at("transport.auth", "basic over http sends the password in clear text; use scheme https, or set transport.allow_basic_over_http: true")
		case t.Auth == AuthKerberos:
			at("transport.auth", "kerberos over http is not supported (the WinRM client has no Kerberos message encryption); use scheme https, or auth ntlm")
		}
	}
	if winrm {
		if t.CABundle != "" {
			checkFile(at, "transport.ca_bundle", t.CABundle)
		}
		if t.Auth == AuthKerberos && t.Scheme == SchemeHTTPS {
			checkFile(at, "transport.kerberos.krb5_conf", t.Kerberos.Krb5Conf)
		}
	}

	// Collection.
	col := c.Collection
	if oneOf("collection.source", col.Source, SourceWinRM, SourceOffline, SourceBundles) && col.Source == SourceOffline {
		if col.EvidenceDir == "" {
			at("collection.evidence_dir", "required when collection.source is offline")
		} else if fi, err := os.Stat(col.EvidenceDir); err != nil {
			at("collection.evidence_dir", "%v", err)
		} else if !fi.IsDir() {
			at("collection.evidence_dir", "%s is not a directory", col.EvidenceDir)
		}
	}
	intRange(at, "collection.concurrency", col.Concurrency, 1, MaxConcurrency)
	intRange(at, "collection.retries", col.Retries, 0, MaxRetries)
	intRange(at, "collection.auth_failure_limit", col.AuthFailureLimit, 1, 100)
	intRange(at, "collection.max_issued_licenses", col.MaxIssuedLicenses, 1, 10_000_000)
	if col.MaxOutputBytes < 1<<20 || col.MaxOutputBytes > 1<<30 {
		at("collection.max_output_bytes", "must be between 1048576 (1 MiB) and 1073741824 (1 GiB), got %d", col.MaxOutputBytes)
	}
	opOK := durRange(at, "collection.operation_timeout", col.OperationTimeout, time.Second, time.Hour)
	if durRange(at, "collection.host_timeout", col.HostTimeout, time.Second, 24*time.Hour) && opOK &&
		col.HostTimeout <= col.HTTPTimeout() {
		at("collection.host_timeout", "must exceed collection.operation_timeout (%s) plus the %s HTTP margin, got %s",
			col.OperationTimeout, HTTPTimeoutMargin, col.HostTimeout)
	}
	durRange(at, "collection.retry_backoff", col.RetryBackoff, 0, 5*time.Minute)

	// Files and output.
	if c.OutputDir == "" {
		at("output_dir", "required")
	}
	durRange(at, "output_lock_wait", c.OutputLockWait, 0, MaxOutputLockWait)
	if c.History.RetentionRuns < 0 {
		at("history.retention_runs", "must be 0 (keep all) or more, got %d", c.History.RetentionRuns)
	}
	if c.History.RetentionMonths < 0 {
		at("history.retention_months", "must be 0 (keep all) or more, got %d", c.History.RetentionMonths)
	}
	c.validateSchedule(at, oneOf)

	c.validateMonitor(at)
	c.validateDirectory(at, creds)
	c.validateBundles(at)

	// Logging.
	oneOf("log.level", c.Log.Level, LogLevels()...)
	oneOf("log.format", c.Log.Format, FormatAuto, FormatConsole, FormatJSON)

	if err := c.sorted(probs).err(); err != nil {
		return err
	}
	c.hosts = hosts
	return nil
}

type atFunc func(field, format string, args ...any)

func intRange(at atFunc, field string, v, lo, hi int) {
	if v < lo || v > hi {
		at(field, "must be between %d and %d, got %d", lo, hi, v)
	}
}

func durRange(at atFunc, field string, v, lo, hi time.Duration) bool {
	if v < lo || v > hi {
		at(field, "must be between %s and %s, got %s", lo, hi, v)
		return false
	}
	return true
}

func checkFile(at atFunc, field, path string) {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		at(field, "%v", err)
	case fi.IsDir():
		at(field, "%s is a directory, not a file", path)
	}
}

// sorted orders problems for reading: file by file (the config file first, then others
// in order of first mention), by line within a file (problems without a line last),
// then problems from the environment and flags; otherwise in check order.
func (c *Config) sorted(ps problems) problems {
	rank := map[string]int{c.file: 0}
	for _, p := range ps {
		if _, ok := rank[p.File]; !ok && p.Origin == "" {
			rank[p.File] = len(rank)
		}
	}
	key := func(p Problem) (int, int) {
		if p.Origin != "" {
			return len(rank), 0
		}
		if p.Line == 0 {
			return rank[p.File], math.MaxInt
		}
		return rank[p.File], p.Line
	}
	out := append(problems(nil), ps...)
	sort.SliceStable(out, func(i, j int) bool {
		fi, li := key(out[i])
		fj, lj := key(out[j])
		if fi != fj {
			return fi < fj
		}
		return li < lj
	})
	return out
}

// ResolveCredentials resolves every credential reference of the configuration, as a
// WinRM collection would, and discards the values: each credential's password_env (set
// and not empty) or password_file (readable, not empty), transport.kerberos.ccache
// (readable) with Kerberos, and the webhook secret (notify.secret_env / secret_file).
// Every problem is located at the key holding the reference and says what to do; none
// prints a secret, nor a reference that may be one (see ResolvePassword). With an
// offline source passwords are never used and only the webhook secret is checked.
// Group- or world-readable secret files are warnings, not problems (Warnings,
// SecretFileWarnings).
func (c *Config) ResolveCredentials() error {
	var probs problems
	at := func(field, format string, args ...any) {
		probs.add(Problem{File: c.file, Line: c.lines[field], Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if c.Collection.Source == SourceWinRM {
		used := map[string]bool{}
		hosts, herr := c.Hosts()
		for _, h := range hosts {
			used[h.Credential] = true
		}
		for i, cr := range c.Credentials {
			field := fmt.Sprintf("credentials[%d].password_env", i)
			hint := "set it in the environment rdsaudit runs in (a systemd unit: Environment= or LoadCredential= with password_file)"
			if cr.PasswordEnv == "" {
				field = fmt.Sprintf("credentials[%d].password_file", i)
				hint = "check the path and that the account running rdsaudit can read it"
			}
			if cr.PasswordEnv != "" && cr.PasswordFile != "" || cr.PasswordEnv != "" && !envNameRE.MatchString(cr.PasswordEnv) {
				continue // Validate reports the reference itself
			}
			if _, err := ResolvePassword(cr); err != nil {
				unused := ""
				if herr == nil && cr.Name != "" && !used[cr.Name] {
					unused = " (no host uses this credential; remove it, or fix it)"
				}
				at(field, "%v; %s%s", err, hint, unused)
			}
		}
		k := c.Transport.Kerberos
		if c.Transport.Auth == AuthKerberos && k.CCache != "" {
			if f, err := os.Open(k.CCache); err != nil {
				at("transport.kerberos.ccache", "%v; run kinit (or the keytab renewal) as the account running rdsaudit, or fix the path", err)
			} else {
				f.Close()
			}
		}
	}
	n := c.Notify
	if n.WebhookURL != "" && !(n.SecretEnv != "" && n.SecretFile != "") && (n.SecretEnv == "" || envNameRE.MatchString(n.SecretEnv)) {
		if _, err := ResolveWebhookSecret(n); err != nil {
			field := "notify.secret_env"
			if n.SecretEnv == "" {
				field = "notify.secret_file"
			}
			at(field, "%v", err)
		}
	}
	return c.sorted(probs).err()
}

// SecretFileWarnings lists the secret files (transport.kerberos.ccache,
// notify.secret_file, the signing key signing.key_file) that other users can read;
// Warnings covers password files.
func (c *Config) SecretFileWarnings() []string {
	if runtime.GOOS == "windows" {
		return nil
	}
	var w []string
	for _, f := range []struct{ key, path string }{
		{"transport.kerberos.ccache", c.Transport.Kerberos.CCache},
		{"notify.secret_file", c.Notify.SecretFile},
		{"signing.key_file", c.Signing.KeyFile},
	} {
		if f.path == "" {
			continue
		}
		if fi, err := os.Stat(f.path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			w = append(w, fmt.Sprintf("%s: %s is accessible to other users (mode %04o); chmod 600 it", f.key, f.path, fi.Mode().Perm()))
		}
	}
	return w
}

// Where locates a field path for a message: "FILE:LINE" when the field was written in
// the configuration file, "FILE" otherwise ("" with no file).
func (c *Config) Where(field string) string {
	if c.file == "" {
		return ""
	}
	if l := c.lines[field]; l > 0 && c.origins[field] == "" {
		return fmt.Sprintf("%s:%d", c.file, l)
	}
	return c.file
}
