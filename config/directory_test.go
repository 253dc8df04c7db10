package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDirectoryDefaultsAndDomain(t *testing.T) {
	cfg, err := loadMonitor(t, `directory:
  domains:
    - name: corp.example.com
      urls: [ldaps://dc1.corp.example.com, ldap://dc2.corp.example.com:389]
      base_dn: DC=corp,DC=example,DC=com
      credential: audit
`)
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Directory
	if d.PageSize != 1000 || d.Timeout != 2*time.Minute || d.MaxEntries != DefaultDirectoryMaxEntries ||
		d.MaxBytes != DefaultDirectoryMaxBytes || d.ReclaimAfter != 90*24*time.Hour || d.Pseudonymise {
		t.Errorf("defaults: %+v", d)
	}
	if len(d.Domains) != 1 || len(d.Domains[0].URLs) != 2 || d.Domains[0].AllowPlainLDAP {
		t.Errorf("domains: %+v", d.Domains)
	}
	if cr, ok := cfg.DirectoryCredential(d.Domains[0]); !ok || cr.Username != `CONTOSO\svc-rdsaudit` {
		t.Errorf("credential: %+v %v", cr, ok)
	}
}

func TestDirectoryProblems(t *testing.T) {
	_, err := loadMonitor(t, `directory:
  page_size: 0
  pseudonymise: true
  domains:
    - name: "bad/name"
      urls: [https://dc1, "ldap://user:pw@dc2", "ldaps://dc3/DC=x"]
      credential: nobody
    - name: corp.example.com
      urls: []
      base_dn: DC=corp
      credential: audit
    - name: CORP.example.com
      urls: [ldaps://dc]
      base_dn: DC=corp
      credential: audit
`)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{
		"directory.page_size: must be between 1 and 100000, got 0",
		"directory.pseudonymise: needs a key",
		`directory.domains[0].name: "bad/name" is not a DNS name`,
		`directory.domains[0].urls[0]: must be an ldaps:// or ldap:// URL, got "https://dc1"`,
		"directory.domains[0].urls[1]: must not carry user information",
		"directory.domains[0].urls[2]: must be scheme://host[:port] only",
		"directory.domains[0].base_dn: required",
		`directory.domains[0].credential: unknown credential "nobody"`,
		"directory.domains[1].urls: required",
		`directory.domains[2].name: duplicate domain "CORP.example.com"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "pw@") || strings.Contains(msg, ":pw") {
		t.Errorf("user information echoed: %s", msg)
	}
}

// The bind method: simple by default, kerberos with transport.kerberos.krb5_conf; an
// unknown method, a kerberos domain without krb5_conf, an spn that is not service/host
// or an spn on a simple bind are errors naming the key.
func TestDirectoryAuthKeys(t *testing.T) {
	krb5 := filepath.Join(t.TempDir(), "krb5.conf")
	writeFile(t, krb5, "[libdefaults]\n default_realm = CORP.EXAMPLE.COM\n")
	cfg, err := loadMonitor(t, `transport: {kerberos: {krb5_conf: `+krb5+`}}
directory:
  domains:
    - {name: corp.example.com, urls: [ldaps://dc1.corp.example.com], base_dn: "DC=corp", credential: audit, auth: kerberos, spn: ldap/dc1.corp.example.com}
`)
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.Directory.Domains[0]; d.Auth != DirectoryAuthKerberos || d.SPN != "ldap/dc1.corp.example.com" {
		t.Errorf("domain %+v", d)
	}
	_, err = loadMonitor(t, `transport: {kerberos: {krb5_conf: ""}}
directory:
  domains:
    - {name: a.example.com, urls: [ldaps://dc1], base_dn: "DC=a", credential: audit, auth: ntlm}
    - {name: b.example.com, urls: [ldaps://dc1], base_dn: "DC=b", credential: audit, auth: kerberos, spn: dc1}
    - {name: c.example.com, urls: [ldaps://dc1], base_dn: "DC=c", credential: audit, spn: ldap/dc1}
`)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`directory.domains[0].auth: must be simple or kerberos, got "ntlm"`,
		"transport.kerberos.krb5_conf: required by directory.domains[1].auth: kerberos",
		`directory.domains[1].spn: must be service/host, e.g. ldap/dc1.corp.example.com, got "dc1"`,
		"directory.domains[2].spn: applies to auth: kerberos only",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}
