package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"time"
)

// ResolvePassword reads the credential's password from the environment variable or the
// file it references, trimming one trailing newline (and CR) from a file. Errors never
// print the value, and name the reference only when it cannot be the password itself
// (see envRefName; a file path only once the file was read). A credential with neither reference (Kerberos
// from a credential cache) resolves to "".
func ResolvePassword(cred Credential) (string, error) {
	switch {
	case cred.PasswordEnv != "":
		v, ok := os.LookupEnv(cred.PasswordEnv)
		if !ok {
			return "", fmt.Errorf("credential %q: %s is not set", cred.Name, envRefName(cred.PasswordEnv, "password_env"))
		}
		if v == "" {
			return "", fmt.Errorf("credential %q: %s is empty", cred.Name, envRefName(cred.PasswordEnv, "password_env"))
		}
		return v, nil
	case cred.PasswordFile != "":
		data, err := os.ReadFile(cred.PasswordFile)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			// Not the path: a value that names no readable file may be the password itself.
			return "", fmt.Errorf("credential %q: read password file named in password_file (not shown): %w", cred.Name, err)
		}
		s := strings.TrimSuffix(string(data), "\n")
		s = strings.TrimSuffix(s, "\r")
		if s == "" {
			return "", fmt.Errorf("credential %q: password file %s is empty", cred.Name, cred.PasswordFile)
		}
		return s, nil
	}
	return "", nil
}

// Credential returns the credential with the given name.
func (c *Config) Credential(name string) (Credential, bool) {
	for _, cr := range c.Credentials {
		if cr.Name == name {
			return cr, true
		}
	}
	return Credential{}, false
}

// CheckSecrets resolves the password of every credential a host uses, discarding the
// values, and reports every one that cannot be read. Run it before a WinRM collection
// so that a missing variable fails the run up front rather than per host. With an
// offline source it checks nothing.
func (c *Config) CheckSecrets() error {
	if c.Collection.Source != SourceWinRM {
		return nil
	}
	hosts, err := c.Hosts()
	if err != nil {
		return err
	}
	used := map[string]bool{}
	var errs []error
	for _, h := range hosts {
		if used[h.Credential] {
			continue
		}
		used[h.Credential] = true
		cr, ok := c.Credential(h.Credential)
		if !ok {
			continue // Validate reports it
		}
		if _, err := ResolvePassword(cr); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Warnings lists settings that are allowed but weaken the audit's security: disabled
// certificate checks, Basic over HTTP, HTTPS-only options under http, and password
// files readable by other users. The CLI logs them at warn level.
func (c *Config) Warnings() []string {
	var w []string
	t := c.Transport
	if c.Collection.Source != SourceWinRM {
		return nil
	}
	if t.Scheme == SchemeHTTPS && t.InsecureSkipVerify {
		w = append(w, "transport.insecure_skip_verify: server certificates are not verified; anyone on the path can impersonate a host")
	}
	if t.Scheme == SchemeHTTP && t.Auth == AuthBasic && t.AllowBasicOverHTTP {
		w = append(w, "transport.allow_basic_over_http: passwords are sent in clear text over http")
	}
	if t.Scheme == SchemeHTTP {
		for _, f := range []struct {
			key string
			set bool
		}{{"transport.ca_bundle", t.CABundle != ""}, {"transport.server_name", t.ServerName != ""}, {"transport.insecure_skip_verify", t.InsecureSkipVerify}} {
			if f.set {
				w = append(w, f.key+": ignored with scheme http")
			}
		}
	}
	if runtime.GOOS != "windows" {
		for i, cr := range c.Credentials {
			if cr.PasswordFile == "" {
				continue
			}
			if fi, err := os.Stat(cr.PasswordFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
				w = append(w, fmt.Sprintf("credentials[%d].password_file: %s is accessible to other users (mode %04o); chmod 600 it",
					i, cr.PasswordFile, fi.Mode().Perm()))
			}
		}
		if k := c.Signing.KeyFile; k != "" {
			if fi, err := os.Stat(k); err == nil && fi.Mode().Perm()&0o077 != 0 {
				w = append(w, fmt.Sprintf("signing.key_file: %s is accessible to other users (mode %04o); chmod 600 it", k, fi.Mode().Perm()))
			}
		}
	}
	return w
}

// String describes the credential without any secret: name, user and where the
// password comes from.
func (cr Credential) String() string {
	src := "no password (Kerberos credential cache)"
	switch {
	case cr.PasswordEnv != "":
		src = "password from env " + cr.PasswordEnv
	case cr.PasswordFile != "":
		src = "password from file " + cr.PasswordFile
	}
	return fmt.Sprintf("%s (%s, %s)", cr.Name, cr.Username, src)
}

// GoString is String, so that %#v cannot print more than %v.
func (cr Credential) GoString() string { return "config.Credential{" + cr.String() + "}" }

// String is the canonical JSON of the effective configuration (see Canonical).
func (c *Config) String() string { return string(c.Canonical()) }

// GoString is String, so that %#v cannot print more than %v.
func (c *Config) GoString() string { return "config.Config" + c.String() }

// Redacted returns the effective configuration as nested maps keyed like the YAML, with
// durations as strings ("5m0s"), the resolved inventory under "effective_hosts", and
// paths in a checkout-independent form: relative to the config file's directory (with
// "/") when inside it, absolute otherwise. It never contains a secret: credentials are
// references only.
func (c *Config) Redacted() map[string]any {
	m := toMap(reflect.ValueOf(*c), c.canonicalPath).(map[string]any)
	if hosts, err := c.Hosts(); err == nil {
		hs := make([]any, len(hosts))
		for i, h := range hosts {
			hs[i] = map[string]any{
				"name": h.Name, "address": h.Address, "port": h.Port, "roles": strs(h.Roles),
				"group": h.Group, "tags": strs(h.Tags), "credential": h.Credential,
			}
		}
		m["effective_hosts"] = hs
	}
	return m
}

// canonicalPath renders p relative to the config directory when it lies inside it, so
// that the same configuration hashes the same in every checkout and working directory.
func (c *Config) canonicalPath(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	dir := c.dir
	if dir == "" {
		dir = "."
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return abs
	}
	if rel, err := filepath.Rel(absDir, abs); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return filepath.ToSlash(rel)
	}
	return abs
}

// Hash is the hex SHA-256 of Canonical: the config hash recorded with each run.
func (c *Config) Hash() string {
	sum := sha256.Sum256(c.Canonical())
	return hex.EncodeToString(sum[:])
}

// Canonical returns deterministic JSON of Redacted (sorted keys, no insignificant
// whitespace). Its SHA-256 is the run's config hash: it changes when any effective
// setting or inventory host changes, and not when only comments or key order do.
func (c *Config) Canonical() []byte {
	b, err := json.Marshal(c.Redacted())
	if err != nil { // only plain maps, slices, strings and numbers: cannot happen
		panic(fmt.Sprintf("config: canonical JSON: %v", err))
	}
	return b
}

func strs(s []string) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}

// toMap converts a config value to plain JSON-able data using the mapstructure tags.
func toMap(v reflect.Value, path func(string) string) any {
	switch {
	case v.Type() == durationType():
		return time.Duration(v.Int()).String()
	case v.Kind() == reflect.Struct:
		m := map[string]any{}
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			key := strings.Split(f.Tag.Get("mapstructure"), ",")[0]
			if !f.IsExported() || key == "" || key == "-" || f.Tag.Get("rdsaudit") == "secret" {
				continue
			}
			fv := v.Field(i)
			if f.Tag.Get("rdsaudit") == "path" && fv.String() != "" {
				m[key] = path(fv.String())
				continue
			}
			m[key] = toMap(fv, path)
		}
		return m
	case v.Kind() == reflect.Slice:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = toMap(v.Index(i), path)
		}
		return out
	}
	return v.Interface()
}
