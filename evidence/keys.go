package evidence

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
