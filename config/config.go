// Package config loads, layers, checks and describes rdsaudit's configuration.
//
// Sources, lowest precedence first: built-in defaults, the YAML file, RDSAUDIT_*
// environment variables (nested keys joined with "_": RDSAUDIT_COLLECTION_CONCURRENCY),
// then command-line flags (see BindFlags). A local viper instance does the layering; the
// YAML file itself is decoded strictly so that an unknown key, a duplicate key or a value
// of the wrong type is an error naming the file, the line and the field.
//
// Relative paths written in the file resolve against the file's directory; relative paths
// given by environment or flag stay relative to the working directory, as a shell user
// expects.
//
// Secrets never live in the configuration: a credential names an environment variable
// (password_env) or a file (password_file), and ResolvePassword reads it at the moment the
// collector needs it. No String, GoString or Canonical output can contain a password.
package config

import (
	"path/filepath"
	"time"

	"github.com/rdsaudit/rdsaudit/collect/winrm"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// Enumerations accepted by the configuration.
const (
	SchemeHTTPS = "https"
	SchemeHTTP  = "http"

	AuthBasic    = "basic"
	AuthNTLM     = "ntlm"
	AuthKerberos = "kerberos"

	SourceWinRM   = "winrm"
	SourceOffline = "offline"
	SourceBundles = "bundles" // evidence bundles of site collectors (bundles.go)

	FormatAuto    = "auto"
	FormatConsole = "console"
	FormatJSON    = "json"
)

// Limits and derived values the collector relies on.
const (
	// HTTPTimeoutMargin is added to collection.operation_timeout (the WS-Man
	// OperationTimeout, Parameters.Timeout) to get the HTTP timeout per POST
	// (Endpoint.Timeout). The HTTP timeout must outlast the operation timeout, or a
	// Receive that the server is legitimately holding open is cut off as a network error.
	HTTPTimeoutMargin = winrm.HTTPTimeoutMargin

	// DefaultConcurrency is how many hosts are collected at once. 16 keeps the burst of
	// NTLM/Kerberos authentications against domain controllers and of WMI queries
	// against the license server modest, while a 1,000-host fleet at ~20 s per host
	// still finishes in about 20 minutes. Raise it for large fleets.
	DefaultConcurrency = 16
	MaxConcurrency     = 256
	MaxRetries         = 10

	// MaxOutputLockWait bounds output_lock_wait.
	MaxOutputLockWait = 24 * time.Hour

	// HistoryFileName is the history store's file name inside output_dir when
	// history.path is not set.
	HistoryFileName = "history.db"
)

// Roles returns the valid inventory roles, in documentation order.
func Roles() []string {
	return []string{evidence.RoleSessionHost, evidence.RoleLicenseServer, evidence.RoleClient}
}

// LogLevels returns the accepted values of log.level.
func LogLevels() []string { return []string{"trace", "debug", "info", "warn", "error"} }

// Config is the effective configuration after layering. Paths are resolved: relative
// paths from the file are joined to the file's directory.
type Config struct {
	Inventory         Inventory    `mapstructure:"inventory" json:"inventory"`
	Credentials       []Credential `mapstructure:"credentials" json:"credentials"`
	DefaultCredential string       `mapstructure:"default_credential" json:"default_credential"`
	Transport         Transport    `mapstructure:"transport" json:"transport"`
	Collection        Collection   `mapstructure:"collection" json:"collection"`
	RulesFile         string       `mapstructure:"rules_file" json:"rules_file" rdsaudit:"path"`
	EntitlementsFile  string       `mapstructure:"entitlements_file" json:"entitlements_file" rdsaudit:"path"`
	OutputDir         string       `mapstructure:"output_dir" json:"output_dir" rdsaudit:"path"`
	History           History      `mapstructure:"history" json:"history"`
	Schedule          string       `mapstructure:"schedule" json:"schedule"`
	Scheduler         Scheduler    `mapstructure:"scheduler" json:"scheduler"`
	Signing           Signing      `mapstructure:"signing" json:"signing"`
	Log               Log          `mapstructure:"log" json:"log"`
	Metrics           Metrics      `mapstructure:"metrics" json:"metrics"`
	Notify            Notify       `mapstructure:"notify" json:"notify"`
	Directory         Directory    `mapstructure:"directory" json:"directory"`
	Site              Site         `mapstructure:"site" json:"site"`
	Bundles           Bundles      `mapstructure:"bundles" json:"bundles"`

	// OutputLockWait is how long a run waits while another holds output_dir's lock
	// (0: refuse at once, exit 6).
	OutputLockWait time.Duration `mapstructure:"output_lock_wait" json:"output_lock_wait"`

	file    string            // config file path as given to Load ("" if none)
	dir     string            // directory relative paths in the file resolve against
	lines   map[string]int    // field path → line in the file
	origins map[string]string // field path → "env VAR" / "flag --x" when not from the file
	hosts   []Host            // resolved by Validate
}

// Inventory lists the hosts to audit: inline, from a CSV file, or both.
type Inventory struct {
	// File is an optional CSV with a header row and the columns
	// name,address,port,roles,group,tags,credential (only name is required; roles and
	// tags are ';'-separated).
	File  string      `mapstructure:"file" json:"file" rdsaudit:"path"`
	Hosts []HostEntry `mapstructure:"hosts" json:"hosts"`
}

// HostEntry is one inline inventory host as written in the file.
type HostEntry struct {
	Name       string   `mapstructure:"name" json:"name"`
	Address    string   `mapstructure:"address" json:"address,omitempty"`
	Port       int      `mapstructure:"port" json:"port,omitempty"`
	Roles      []string `mapstructure:"roles" json:"roles"`
	Group      string   `mapstructure:"group" json:"group,omitempty"`
	Tags       []string `mapstructure:"tags" json:"tags,omitempty"`
	Credential string   `mapstructure:"credential" json:"credential,omitempty"`
}

// Host is a resolved inventory host: defaults applied, roles checked.
type Host struct {
	Name       string   `json:"name"`
	Address    string   `json:"address"` // defaults to Name
	Port       int      `json:"port"`    // defaults to the transport port
	Roles      []string `json:"roles"`
	Group      string   `json:"group,omitempty"`
	Tags       []string `json:"tags,omitempty"`
	Credential string   `json:"credential,omitempty"` // defaults to default_credential
	// Source is where the host was defined, "FILE:LINE", for messages.
	Source string `json:"-"`

	loc location // where the host's credential is (or would be) written, for Validate
}

type location struct {
	file, field string
	line        int
}

// Ref returns the host as the evidence model names it.
func (h Host) Ref() evidence.HostRef {
	return evidence.HostRef{
		Name: h.Name, Address: h.Address, Port: h.Port, Group: h.Group,
		Roles: append([]string(nil), h.Roles...), Tags: append([]string(nil), h.Tags...),
	}
}

// HasRole reports whether the host has the given role.
func (h Host) HasRole(role string) bool { return h.Ref().HasRole(role) }

// Credential is a WinRM account. It holds references to the password, never the
// password itself: exactly one of PasswordEnv and PasswordFile is set (neither, when
// Kerberos authenticates from transport.kerberos.ccache).
type Credential struct {
	Name         string `mapstructure:"name" json:"name"`
	Username     string `mapstructure:"username" json:"username"`
	PasswordEnv  string `mapstructure:"password_env" json:"password_env,omitempty"`
	PasswordFile string `mapstructure:"password_file" json:"password_file,omitempty" rdsaudit:"path"`
}

// Transport holds the WinRM connection settings shared by every host.
type Transport struct {
	Scheme             string   `mapstructure:"scheme" json:"scheme"`
	Auth               string   `mapstructure:"auth" json:"auth"`
	Port               int      `mapstructure:"port" json:"port"` // 0: 5986 for https, 5985 for http
	CABundle           string   `mapstructure:"ca_bundle" json:"ca_bundle" rdsaudit:"path"`
	ServerName         string   `mapstructure:"server_name" json:"server_name"`
	InsecureSkipVerify bool     `mapstructure:"insecure_skip_verify" json:"insecure_skip_verify"`
	AllowBasicOverHTTP bool     `mapstructure:"allow_basic_over_http" json:"allow_basic_over_http"`
	Kerberos           Kerberos `mapstructure:"kerberos" json:"kerberos"`
}

// EffectivePort is Port, or the WinRM default port of the scheme when Port is 0.
func (t Transport) EffectivePort() int {
	switch {
	case t.Port != 0:
		return t.Port
	case t.Scheme == SchemeHTTP:
		return 5985
	default:
		return 5986
	}
}

// Kerberos settings, used when transport.auth is kerberos.
type Kerberos struct {
	Krb5Conf string `mapstructure:"krb5_conf" json:"krb5_conf" rdsaudit:"path"`
	Realm    string `mapstructure:"realm" json:"realm"`
	SPN      string `mapstructure:"spn" json:"spn"`                       // default HTTP/<address>
	CCache   string `mapstructure:"ccache" json:"ccache" rdsaudit:"path"` // optional credential cache instead of a password
}

// Collection controls how evidence is gathered.
type Collection struct {
	Source           string        `mapstructure:"source" json:"source"`
	EvidenceDir      string        `mapstructure:"evidence_dir" json:"evidence_dir" rdsaudit:"path"`
	Bundles          []string      `mapstructure:"bundles" json:"bundles,omitempty" rdsaudit:"path"` // source bundles: bundle directories, or directories of bundles
	Concurrency      int           `mapstructure:"concurrency" json:"concurrency"`
	HostTimeout      time.Duration `mapstructure:"host_timeout" json:"host_timeout"`
	OperationTimeout time.Duration `mapstructure:"operation_timeout" json:"operation_timeout"`
	Retries          int           `mapstructure:"retries" json:"retries"`
	RetryBackoff     time.Duration `mapstructure:"retry_backoff" json:"retry_backoff"`
	// AuthFailureLimit: after this many hosts fail authentication with one credential,
	// the credential is not used again in the run (account lockout protection).
	AuthFailureLimit  int   `mapstructure:"auth_failure_limit" json:"auth_failure_limit"`
	MaxOutputBytes    int64 `mapstructure:"max_output_bytes" json:"max_output_bytes"`
	MaxIssuedLicenses int   `mapstructure:"max_issued_licenses" json:"max_issued_licenses"`
	// KeyMetadata: read registry key LastWriteTime through the script's in-memory
	// P/Invoke stub (Reflection.Emit). false sends the script without it; rules that
	// need key times then report not evaluable.
	KeyMetadata bool `mapstructure:"key_metadata" json:"key_metadata"`
	// StopGrace is how long hosts in flight may finish after SIGINT/SIGTERM before
	// they are canceled; OnStop says what becomes of a stopped run (publish|discard).
	StopGrace time.Duration `mapstructure:"stop_grace" json:"stop_grace"`
	OnStop    string        `mapstructure:"on_stop" json:"on_stop"`
}

// HTTPTimeout is the per-POST HTTP timeout (winrm Endpoint.Timeout): the WS-Man
// operation timeout plus HTTPTimeoutMargin.
func (c Collection) HTTPTimeout() time.Duration { return c.OperationTimeout + HTTPTimeoutMargin }

// History configures the run history store.
type History struct {
	Path            string `mapstructure:"path" json:"path" rdsaudit:"path"`         // default <output_dir>/history.db
	RetentionRuns   int    `mapstructure:"retention_runs" json:"retention_runs"`     // 0 = keep all
	RetentionMonths int    `mapstructure:"retention_months" json:"retention_months"` // 0 = keep all
}

// Signing configures the optional ed25519 signature of each run's manifest.
type Signing struct {
	KeyFile string `mapstructure:"key_file" json:"key_file" rdsaudit:"path"` // "" = unsigned
}

// Log configures logging to stderr.
type Log struct {
	Level  string `mapstructure:"level" json:"level"`
	Format string `mapstructure:"format" json:"format"` // auto: console on a terminal, JSON otherwise
}

// File returns the configuration file path as given to Load ("" if none).
func (c *Config) File() string { return c.file }

// Dir returns the directory that relative paths in the file resolve against.
func (c *Config) Dir() string { return c.dir }

// defaults returns the built-in defaults keyed by viper key. Every scalar key has an
// entry, so that every key can be overridden from the environment. Relative default
// paths are relative to the config file's directory.
func defaults(dir string) map[string]any {
	return map[string]any{
		"inventory.file":                  "",
		"default_credential":              "",
		"transport.scheme":                SchemeHTTPS,
		"transport.auth":                  AuthNTLM,
		"transport.port":                  0,
		"transport.ca_bundle":             "",
		"transport.server_name":           "",
		"transport.insecure_skip_verify":  false,
		"transport.allow_basic_over_http": false,
		"transport.kerberos.krb5_conf":    "/etc/krb5.conf",
		"transport.kerberos.realm":        "",
		"transport.kerberos.spn":          "",
		"transport.kerberos.ccache":       "",
		"collection.source":               SourceWinRM,
		"collection.evidence_dir":         "",
		"collection.concurrency":          DefaultConcurrency,
		"collection.host_timeout":         5 * time.Minute,
		"collection.operation_timeout":    60 * time.Second,
		"collection.retries":              2,
		"collection.retry_backoff":        2 * time.Second,
		"collection.auth_failure_limit":   3,
		"collection.max_output_bytes":     int64(64 << 20),
		"collection.max_issued_licenses":  winrm.DefaultMaxIssued,
		"collection.key_metadata":         true,
		"collection.stop_grace":           DefaultStopGrace,
		"collection.on_stop":              OnStopPublish,
		"rules_file":                      "",
		"entitlements_file":               "",
		"output_dir":                      filepath.Join(dir, "out"),
		"output_lock_wait":                time.Duration(0),
		"history.path":                    "",
		"history.retention_runs":          0,
		"history.retention_months":        0,
		"schedule":                        "",
		"scheduler.timezone":              "Local",
		"scheduler.random_delay":          time.Duration(0),
		"scheduler.run_at_start":          false,
		"signing.key_file":                "",
		"log.level":                       "info",
		"log.format":                      FormatAuto,
		"metrics.textfile":                "",
		"notify.webhook_url":              "",
		"notify.secret_header":            DefaultWebhookHeader,
		"notify.secret_env":               "",
		"notify.secret_file":              "",
		"notify.timeout":                  DefaultWebhookTimeout,
		"directory.page_size":             DefaultDirectoryPageSize,
		"directory.timeout":               DefaultDirectoryTimeout,
		"directory.max_entries":           DefaultDirectoryMaxEntries,
		"directory.max_bytes":             DefaultDirectoryMaxBytes,
		"directory.reclaim_after":         DefaultReclaimAfter,
		"directory.pseudonymise":          false,
		"directory.pseudonym_key_env":     "",
		"directory.pseudonym_key_file":    "",
		"directory.evidence_dir":          "",
		"site.name":                       "",
		"bundles.max_age":                 time.Duration(0),
	}
}
