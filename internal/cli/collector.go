package cli

import (
	"crypto/ed25519"
	"fmt"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/collect/offline"
	"github.com/rdsaudit/rdsaudit/collect/winrm"
	"github.com/rdsaudit/rdsaudit/config"
	"github.com/rdsaudit/rdsaudit/report"
)

// collectorFor builds the collector the configuration asks for.
func collectorFor(e *env, cfg *config.Config) (collect.Collector, error) {
	switch cfg.Collection.Source {
	case config.SourceOffline:
		c := offline.New(cfg.Collection.EvidenceDir)
		c.Now = e.now
		return c, nil
	case config.SourceBundles:
		return openBundles(e, cfg)
	case config.SourceWinRM:
		return winrmCollector(e, cfg)
	}
	return nil, usageErr(fmt.Errorf("collection.source: unknown source %q", cfg.Collection.Source))
}

// winrmCollector is the configuration's WinRM collector: its warnings logged, its
// secrets resolved (a missing one is a usage error, before any host is contacted).
func winrmCollector(e *env, cfg *config.Config) (*winrm.Collector, error) {
	for _, w := range cfg.Warnings() {
		e.log.Warn().Msg(w)
	}
	if err := cfg.CheckSecrets(); err != nil {
		return nil, usageErr(err)
	}
	creds, err := credentialsFor(cfg)
	if err != nil {
		return nil, usageErr(err)
	}
	c, err := winrm.New(winrmOptions(cfg), creds, e.log)
	if err != nil {
		return nil, usageErr(err)
	}
	return c, nil
}

// winrmOptions maps the configuration to the collector's plain option values.
func winrmOptions(cfg *config.Config) winrm.Options {
	t, c := cfg.Transport, cfg.Collection
	retries := c.Retries
	if retries == 0 {
		retries = -1 // the collector reads 0 as "default"; the configuration means none
	}
	return winrm.Options{
		Scheme:             t.Scheme,
		Port:               t.EffectivePort(),
		Auth:               t.Auth,
		CABundlePath:       t.CABundle,
		TLSServerName:      t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify,
		AllowBasicOverHTTP: t.AllowBasicOverHTTP,
		Krb5ConfPath:       t.Kerberos.Krb5Conf,
		KrbRealm:           t.Kerberos.Realm,
		KrbSPN:             t.Kerberos.SPN,
		KrbCCachePath:      t.Kerberos.CCache,
		HostTimeout:        c.HostTimeout,
		OperationTimeout:   c.OperationTimeout,
		Retries:            retries,
		RetryBackoff:       c.RetryBackoff,
		MaxOutputBytes:     c.MaxOutputBytes,
		MaxIssuedLicenses:  c.MaxIssuedLicenses,
		NoKeyMetadata:      !c.KeyMetadata,
		LockoutThreshold:   c.AuthFailureLimit,
	}
}

// credentialsFor resolves the password of every credential a host uses and maps hosts
// to them. Passwords live only in the returned map, never in errors or logs.
func credentialsFor(cfg *config.Config) (winrm.CredentialMap, error) {
	hosts, err := cfg.Hosts()
	if err != nil {
		return nil, err
	}
	resolved := map[string]winrm.Credential{}
	m := winrm.CredentialMap{}
	for _, h := range hosts {
		cred, ok := resolved[h.Credential]
		if !ok {
			cc, found := cfg.Credential(h.Credential)
			if !found {
				return nil, fmt.Errorf("host %s: credential %q is not defined", h.Name, h.Credential)
			}
			pw := ""
			if cc.PasswordEnv != "" || cc.PasswordFile != "" {
				if pw, err = config.ResolvePassword(cc); err != nil {
					return nil, err
				}
			}
			cred = winrm.Credential{Name: cc.Name, Username: cc.Username, Password: pw}
			resolved[h.Credential] = cred
		}
		m[h.Name] = cred
	}
	return m, nil
}

// loadSigner reads the manifest signing key, if one is configured.
func loadSigner(cfg *config.Config) (ed25519.PrivateKey, error) {
	if cfg.Signing.KeyFile == "" {
		return nil, nil
	}
	k, err := report.LoadPrivateKey(cfg.Signing.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("signing.key_file: %w", err)
	}
	return k, nil
}
