package cli

import (
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/rdsaudit/rdsaudit/config"
	"github.com/rdsaudit/rdsaudit/directory"
)

// directorySource maps directory: to the audit's directory source (nil without
// domains): offline evidence from <dir>/directory/ when offlineDir is set (an offline
// collection, or the demo), else live LDAP. Problems a user must fix before any domain
// is contacted (an unreadable CA bundle, a pseudonym key not set) are errors.
func directorySource(cfg *config.Config, offlineDir string, now func() time.Time) (directory.Source, error) {
	d := cfg.Directory
	if len(d.Domains) == 0 {
		return nil, nil
	}
	key, err := cfg.ResolvePseudonymKey()
	if err != nil {
		return nil, err
	}
	if offlineDir != "" {
		o := directory.Offline{Dir: offlineDir, PseudonymKey: []byte(key), Now: now}
		for _, dom := range d.Domains {
			o.Domains = append(o.Domains, directory.OfflineDomain{Name: dom.Name, BaseDN: dom.BaseDN})
		}
		return o, nil
	}
	var live directory.Live
	for i, dom := range d.Domains {
		cred, ok := cfg.DirectoryCredential(dom)
		if !ok {
			return nil, fmt.Errorf("directory.domains[%d]: unknown credential %q", i, dom.Credential)
		}
		t := directory.Target{Name: dom.Name, BaseDN: dom.BaseDN, URLs: dom.URLs, BindName: cred.Username,
			Password:   func() (string, error) { return config.ResolvePassword(cred) },
			ServerName: dom.ServerName, AllowPlainLDAP: dom.AllowPlainLDAP,
			PageSize: d.PageSize, MaxEntries: d.MaxEntries, MaxBytes: d.MaxBytes, Timeout: d.Timeout,
			PseudonymKey: []byte(key), Now: now}
		if len(key) == 0 {
			t.PseudonymKey = nil
		}
		if dom.Auth == config.DirectoryAuthKerberos {
			k := cfg.Transport.Kerberos
			t.Kerberos = &directory.Kerberos{Krb5Conf: k.Krb5Conf, Realm: k.Realm, CCache: k.CCache, SPN: dom.SPN}
			if cred.PasswordEnv == "" && cred.PasswordFile == "" {
				t.Password = nil // the credential cache's TGT
			}
		}
		if dom.CABundle != "" {
			pem, err := os.ReadFile(dom.CABundle)
			if err != nil {
				return nil, fmt.Errorf("directory.domains[%d].ca_bundle: %w", i, err)
			}
			t.RootCAs = x509.NewCertPool()
			if !t.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("directory.domains[%d].ca_bundle: %s holds no PEM certificate", i, dom.CABundle)
			}
		}
		live.Targets = append(live.Targets, t)
	}
	return live, nil
}
