package config

import (
	"fmt"
	"os"
	"regexp"
	"time"
)

// Site names the collector of a site or shard (`rdsaudit collect`): it is recorded in
// every bundle the collector writes and selects the public key the central run checks
// the bundle's signature with (bundles.trusted_keys).
type Site struct {
	Name string `mapstructure:"name" json:"name"`
}

// Bundles is the central run's side of evidence bundles (collection.source: bundles).
type Bundles struct {
	// TrustedKeys are the public keys each site signs its bundles with. A bundle whose
	// site has no key here, or that is signed by another key, is refused.
	TrustedKeys []TrustedKey `mapstructure:"trusted_keys" json:"trusted_keys,omitempty"`
	// MaxAge, when not 0, reports bundles that finished collecting longer ago.
	MaxAge time.Duration `mapstructure:"max_age" json:"max_age"`
}

// TrustedKey is one site's bundle-signing public key (the .pub file of rdsaudit keygen).
type TrustedKey struct {
	Site          string `mapstructure:"site" json:"site"`
	PublicKeyFile string `mapstructure:"public_key_file" json:"public_key_file" rdsaudit:"path"`
}

// siteNameRE is what a site name may be: it is part of bundle directory names.
var siteNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// ValidSiteName says name can name a site.
func ValidSiteName(name string) bool { return siteNameRE.MatchString(name) }

func (c *Config) validateBundles(at atFunc) {
	const siteRule = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters"
	if n := c.Site.Name; n != "" && !ValidSiteName(n) {
		at("site.name", "%q is not a valid site name (%s)", n, siteRule)
	}
	if c.Bundles.MaxAge < 0 {
		at("bundles.max_age", "must be 0 (no check) or more, got %s", c.Bundles.MaxAge)
	}
	for i, k := range c.Bundles.TrustedKeys {
		base := fmt.Sprintf("bundles.trusted_keys[%d]", i)
		if !ValidSiteName(k.Site) {
			at(base+".site", "%q is not a valid site name (%s)", k.Site, siteRule)
		}
		if k.PublicKeyFile == "" {
			at(base+".public_key_file", "required (the site's .pub file from rdsaudit keygen)")
		} else {
			checkFile(at, base+".public_key_file", k.PublicKeyFile)
		}
	}
	if c.Collection.Source != SourceBundles {
		return
	}
	if len(c.Collection.Bundles) == 0 {
		at("collection.bundles", "required when collection.source is bundles: bundle directories, or directories holding bundles (or give --bundles)")
	}
	for i, d := range c.Collection.Bundles {
		field := fmt.Sprintf("collection.bundles[%d]", i)
		if fi, err := os.Stat(d); err != nil {
			at(field, "%v", err)
		} else if !fi.IsDir() {
			at(field, "%s is not a directory", d)
		}
	}
	if len(c.Bundles.TrustedKeys) == 0 {
		at("bundles.trusted_keys", "required when collection.source is bundles: each site's public key ({site: NAME, public_key_file: PATH}); unsigned or unknown bundles are refused")
	}
}
