package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/rdsaudit/rdsaudit/directory"
)

// Directory configures the optional read of Per User CAL assignments from Active
// Directory over LDAP (issue 15): one paged, read-only search per domain. With no
// domains nothing is read and the per-user figures are simply absent.
type Directory struct {
	Domains []DirectoryDomain `mapstructure:"domains" json:"domains"`
	// PageSize is the RFC 2696 page size asked for (AD's MaxPageSize is 1,000).
	PageSize int `mapstructure:"page_size" json:"page_size"`
	// Timeout bounds each domain's whole read (connect, bind, every page).
	Timeout time.Duration `mapstructure:"timeout" json:"timeout"`
	// MaxEntries and MaxBytes bound what one domain may return; beyond either the
	// domain's read stops with the failure class size_limit (figures unknown).
	MaxEntries int   `mapstructure:"max_entries" json:"max_entries"`
	MaxBytes   int64 `mapstructure:"max_bytes" json:"max_bytes"`
	// ReclaimAfter: a CAL holder with no logon for this long is a reclaim candidate
	// (lastLogonTimestamp replicates lazily, by up to 14 days: keep this well above).
	ReclaimAfter time.Duration `mapstructure:"reclaim_after" json:"reclaim_after"`
	// Pseudonymise replaces user names by a keyed hash (HMAC-SHA-256) in every output;
	// the key comes from PseudonymKeyEnv or PseudonymKeyFile (one of them required).
	Pseudonymise     bool   `mapstructure:"pseudonymise" json:"pseudonymise"`
	PseudonymKeyEnv  string `mapstructure:"pseudonym_key_env" json:"pseudonym_key_env,omitempty"`
	PseudonymKeyFile string `mapstructure:"pseudonym_key_file" json:"pseudonym_key_file,omitempty" rdsaudit:"path"`
	// EvidenceDir, when set, reads the domains' directory evidence offline from
	// <EvidenceDir>/directory/<domain>.directory.json instead of over LDAP, whatever
	// collection.source is: a central run from evidence bundles, or a re-evaluation of
	// archived evidence. Empty: offline with collection.source offline (its evidence_dir),
	// else live.
	EvidenceDir string `mapstructure:"evidence_dir" json:"evidence_dir,omitempty" rdsaudit:"path"`
}

// DirectoryDomain is one AD domain (Per User attributes are not in the Global Catalog:
// each domain is read from its own domain controllers).
type DirectoryDomain struct {
	// Name is the domain's DNS name; it names the evidence file (<name>.directory.json).
	Name string `mapstructure:"name" json:"name"`
	// URLs are tried in order: ldaps://host[:636] or ldap://host[:389] (StartTLS).
	URLs   []string `mapstructure:"urls" json:"urls"`
	BaseDN string   `mapstructure:"base_dn" json:"base_dn"`
	// Credential names an entry of credentials: its username is the bind name (a UPN
	// or a DN), its password_env/password_file the password. Simple bind, over TLS.
	Credential string `mapstructure:"credential" json:"credential"`
	CABundle   string `mapstructure:"ca_bundle" json:"ca_bundle,omitempty" rdsaudit:"path"`
	ServerName string `mapstructure:"server_name" json:"server_name,omitempty"`
	// AllowPlainLDAP lets an ldap:// URL bind without StartTLS, the password in clear
	// text. Off: an ldap:// server that refuses StartTLS is a tls failure.
	AllowPlainLDAP bool `mapstructure:"allow_plain_ldap" json:"allow_plain_ldap,omitempty"`
	// Auth is the bind: simple (default: the credential's name and password) or
	// kerberos (SASL GSSAPI with transport.kerberos.krb5_conf and realm; the password,
	// or transport.kerberos.ccache when the credential has none). TLS either way.
	Auth string `mapstructure:"auth" json:"auth,omitempty"`
	// SPN is the domain controllers' service principal for kerberos (default
	// ldap/<host of the URL tried>).
	SPN string `mapstructure:"spn" json:"spn,omitempty"`
}

// Directory bind methods.
const (
	DirectoryAuthSimple   = "simple"
	DirectoryAuthKerberos = "kerberos"
)

// Defaults and bounds of the directory keys.
const (
	DefaultDirectoryPageSize   = 1000
	DefaultDirectoryTimeout    = 2 * time.Minute
	DefaultDirectoryMaxEntries = 500_000
	DefaultDirectoryMaxBytes   = int64(256 << 20)
	DefaultReclaimAfter        = 90 * 24 * time.Hour
)

// validateDirectory checks the directory keys (no network I/O, no secret read).
func (c *Config) validateDirectory(at atFunc, creds map[string]bool) {
	d := c.Directory
	intRange(at, "directory.page_size", d.PageSize, 1, 100_000)
	durRange(at, "directory.timeout", d.Timeout, time.Second, 24*time.Hour)
	intRange(at, "directory.max_entries", d.MaxEntries, 1, 100_000_000)
	// At most 1 GiB: what is read must fit a directory evidence document that can be
	// read back (directory.MaxDocumentBytes, offline and for re-evaluation).
	if d.MaxBytes < 1<<20 || d.MaxBytes > 1<<30 {
		at("directory.max_bytes", "must be between 1048576 (1 MiB) and 1073741824 (1 GiB), got %d", d.MaxBytes)
	}
	durRange(at, "directory.reclaim_after", d.ReclaimAfter, 24*time.Hour, 10*365*24*time.Hour)
	switch {
	case d.PseudonymKeyEnv != "" && d.PseudonymKeyFile != "":
		at("directory", "set only one of pseudonym_key_env and pseudonym_key_file")
	case d.PseudonymKeyEnv != "" && !envNameRE.MatchString(d.PseudonymKeyEnv):
		at("directory.pseudonym_key_env", "%s", envRefProblem("key"))
	case d.Pseudonymise && d.PseudonymKeyEnv == "" && d.PseudonymKeyFile == "":
		at("directory.pseudonymise", "needs a key: set directory.pseudonym_key_env: VAR or directory.pseudonym_key_file: PATH")
	}
	if d.EvidenceDir != "" {
		if fi, err := os.Stat(d.EvidenceDir); err != nil {
			at("directory.evidence_dir", "%v", err)
		} else if !fi.IsDir() {
			at("directory.evidence_dir", "%s is not a directory", d.EvidenceDir)
		}
	}
	seen := map[string]bool{}
	for i, dom := range d.Domains {
		base := fmt.Sprintf("directory.domains[%d]", i)
		name := strings.ToLower(dom.Name)
		switch {
		case dom.Name == "":
			at(base+".name", "required (the domain's DNS name, e.g. corp.example.com)")
		case directory.CheckDomainName(dom.Name) != nil:
			at(base+".name", "%v; it names the evidence file <name>.directory.json", directory.CheckDomainName(dom.Name))
		case seen[name]:
			at(base+".name", "duplicate domain %q", dom.Name)
		}
		seen[name] = true
		if len(dom.URLs) == 0 {
			at(base+".urls", "required: ldaps://dc1.example.com, or ldap://dc1.example.com (StartTLS)")
		}
		for j, raw := range dom.URLs {
			if msg := checkLDAPURL(raw); msg != "" {
				at(fmt.Sprintf("%s.urls[%d]", base, j), "%s", msg)
			}
		}
		if dom.BaseDN == "" {
			at(base+".base_dn", "required (e.g. DC=corp,DC=example,DC=com)")
		}
		switch {
		case dom.Credential == "":
			at(base+".credential", "required: the name of a credentials entry (bind name and password reference)")
		case !creds[dom.Credential]:
			at(base+".credential", "unknown credential %q", dom.Credential)
		}
		if dom.CABundle != "" {
			checkFile(at, base+".ca_bundle", dom.CABundle)
		}
		switch dom.Auth {
		case "", DirectoryAuthSimple:
			if dom.SPN != "" {
				at(base+".spn", "applies to auth: kerberos only")
			}
		case DirectoryAuthKerberos:
			if c.Transport.Kerberos.Krb5Conf == "" {
				at("transport.kerberos.krb5_conf", "required by %s.auth: kerberos (the realm's KDCs)", base)
			}
			if cr, ok := c.Credential(dom.Credential); ok && cr.PasswordEnv == "" && cr.PasswordFile == "" && c.Transport.Kerberos.CCache == "" {
				at(base+".credential", "credential %q has no password_env or password_file: kerberos needs one, or transport.kerberos.ccache", dom.Credential)
			}
			if dom.SPN != "" && !strings.Contains(dom.SPN, "/") {
				at(base+".spn", "must be service/host, e.g. ldap/dc1.corp.example.com, got %q", dom.SPN)
			}
		default:
			at(base+".auth", "must be simple or kerberos, got %q", dom.Auth)
		}
	}
}

// checkLDAPURL returns what is wrong with an LDAP URL, or "".
func checkLDAPURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "not a URL (the value is not shown: it may carry a password)"
	}
	switch {
	case u.User != nil: // first: the message must not repeat a password
		return "must not carry user information; set the domain's credential"
	case u.Scheme != "ldaps" && u.Scheme != "ldap":
		return fmt.Sprintf("must be an ldaps:// or ldap:// URL, got %q", raw)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Sprintf("must name a domain controller, got %q", raw)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "":
		return fmt.Sprintf("must be scheme://host[:port] only (the base DN is base_dn), got %q", raw)
	}
	if p := u.Port(); p != "" {
		if _, err := net.LookupPort("tcp", p); err != nil {
			return fmt.Sprintf("invalid port in %q", raw)
		}
	}
	return ""
}

// DirectoryCredential returns the credential a domain binds with.
func (c *Config) DirectoryCredential(d DirectoryDomain) (Credential, bool) {
	return c.Credential(d.Credential)
}

// ResolvePseudonymKey reads directory.pseudonym_key_env or _file ("" when
// pseudonymise is off). The key is never printed.
func (c *Config) ResolvePseudonymKey() (string, error) {
	d := c.Directory
	if !d.Pseudonymise {
		return "", nil
	}
	k, err := ResolvePassword(Credential{Name: "directory pseudonym key", PasswordEnv: d.PseudonymKeyEnv, PasswordFile: d.PseudonymKeyFile})
	if err == nil && k == "" {
		err = fmt.Errorf("directory.pseudonymise: no key")
	}
	return k, err
}
