package evidence

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
)

// Registry keys and values rdsaudit reads (domain.md §1, §7). Paths carry the hive as
// "HKLM\" and are matched case-insensitively. Every collector reads the same list, and
// the WinRM collector sends it to the collection script as data, never as code.
const (
	KeyLicensingCore     = `HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\RCM\Licensing Core`
	KeyPolicy            = `HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services`
	KeyLocalLS           = `HKLM\SYSTEM\CurrentControlSet\Services\TermService\Parameters\LicenseServers`
	KeyLocalLSSubkey     = `HKLM\SYSTEM\CurrentControlSet\Services\TermService\Parameters\LicenseServers\SpecifiedLicenseServers`
	KeyGracePeriod       = `HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\RCM\GracePeriod`
	KeyRCM               = `HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\RCM`
	KeyMisplacedCore     = `HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\Licensing Core` // tamper artefact: no RCM in the path
	KeyClientHardwareID  = `HKLM\SOFTWARE\Microsoft\MSLicensing\HardwareID`
	KeyClientStore       = `HKLM\SOFTWARE\Microsoft\MSLicensing\Store`
	ValLicensingMode     = "LicensingMode"
	ValLicenseServers    = "LicenseServers"
	ValSpecifiedLS       = "SpecifiedLicenseServers"
	ValTooltip           = "fDisableTerminalServerTooltip"
	ValPreventUpgrade    = "fPreventLicenseUpgrade"
	ValSecureLicensing   = "fSecureLicensing"
	ValTimebomb          = "L$RTMTIMEBOMB_1320153D-8DA3-4e8e-B27B-0D888223A588"
	ValTimebombBeta      = "L$GracePeriodTimeBomb_1320153D-8DA3-4e8e-B27B-0D888223A588"
	ValTimebombPlain     = "L$RTMTIMEBOMB" // tamper artefact
	ValX509Certificate   = "X509 Certificate"
	ValCertificate       = "Certificate"
	ValX509CertificateID = "X509 Certificate ID"
	ValX509Certificate2  = "X509 Certificate2"
	ValClientHWID        = "ClientHWID"
)

// KeyRequest is one key the collection script reads.
type KeyRequest struct {
	Path string `json:"path"`
	// Redact: binary data is reported as length and SHA-256 only (timebomb, certificates,
	// CAL tokens): rdsaudit never carries secrets or licence tokens in its reports.
	Redact bool `json:"redact,omitempty"`
	// Subkeys: also read each direct subkey as its own key (MSLicensing\Store\LICENSE000…).
	Subkeys bool `json:"subkeys,omitempty"`
	// OnlyValues, when set, limits the values read to these names (the RCM key holds
	// unrelated configuration).
	OnlyValues []string `json:"only_values,omitempty"`
}

// KeysFor returns the keys to read for a host with the given inventory roles, in a
// stable order.
func KeysFor(roles []string) []KeyRequest {
	h := HostRef{Roles: roles}
	var ks []KeyRequest
	if h.HasRole(RoleSessionHost) || h.HasRole(RoleLicenseServer) {
		ks = append(ks,
			KeyRequest{Path: KeyLicensingCore},
			KeyRequest{Path: KeyPolicy},
			KeyRequest{Path: KeyLocalLS},
			KeyRequest{Path: KeyLocalLSSubkey},
			KeyRequest{Path: KeyGracePeriod, Redact: true},
			KeyRequest{Path: KeyRCM, Redact: true, OnlyValues: []string{ValX509Certificate, ValCertificate, ValX509CertificateID, ValX509Certificate2}},
			KeyRequest{Path: KeyMisplacedCore},
		)
	}
	if h.HasRole(RoleClient) {
		ks = append(ks,
			KeyRequest{Path: KeyClientHardwareID, Redact: true},
			KeyRequest{Path: KeyClientStore, Redact: true, Subkeys: true},
		)
	}
	return ks
}

// SelectKeys returns the registry keys reqs ask for, in request order, as the collection
// script reports them. read returns the key at a path as the host holds it, with all
// its values (Exists false when the host has no such key). Each key is reported at the
// requested path, its values limited to OnlyValues (compared case-insensitively) and
// redacted (RegValue.Redact) when the request says Redact; a Subkeys request adds each
// direct subkey of an existing key after it, read with the same request. Keys nobody
// requested are never read.
func SelectKeys(reqs []KeyRequest, read func(path string) RegKey) []RegKey {
	var out []RegKey
	for _, r := range reqs {
		k := r.selectKey(r.Path, read)
		out = append(out, k)
		if r.Subkeys && k.Exists {
			for _, sub := range k.Subkeys {
				out = append(out, r.selectKey(r.Path+`\`+sub, read))
			}
		}
	}
	return out
}

// selectKey reads the key at path and keeps the values r asks for, redacted as r says.
func (r KeyRequest) selectKey(path string, read func(path string) RegKey) RegKey {
	k := read(path)
	k.Path = path
	values := k.Values
	k.Values = nil
	for _, v := range values {
		if len(r.OnlyValues) > 0 && !slices.ContainsFunc(r.OnlyValues, func(n string) bool { return strings.EqualFold(n, v.Name) }) {
			continue
		}
		if r.Redact {
			v = v.Redact()
		}
		k.Values = append(k.Values, v)
	}
	return k
}

// Redact returns v as a Redact request reports it: binary data (a value carrying Hex or
// SHA256) is reduced to its Length and SHA256, with Hex empty and Redacted set; strings
// and numbers are returned unchanged. This is the one place that redacts registry data.
func (v RegValue) Redact() RegValue {
	if v.Hex == "" && v.SHA256 == "" {
		return v
	}
	if raw, err := hex.DecodeString(v.Hex); err == nil && v.Hex != "" {
		sum := sha256.Sum256(raw)
		v.Length = len(raw)
		v.SHA256 = hex.EncodeToString(sum[:])
	}
	v.Hex = ""
	v.Redacted = true
	return v
}
