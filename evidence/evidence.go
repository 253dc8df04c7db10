// Package evidence is the evidence document: what a collector read from one host,
// exactly as read, with the registry keys every collector requests and the one place
// that redacts binary registry data.
//
// The model is the contract between every collector (WinRM, snapshot files, .reg
// exports) and everything downstream. No interpretation happens here (package facts
// does that). It uses the standard library only.
package evidence

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Schema is the version tag of the evidence document. Bump it on any change that
// an older reader would misread.
const Schema = "rdsaudit.evidence/v1"

// Roles a host can have in the inventory (domain.md §1, §4, §7).
const (
	RoleSessionHost   = "session_host"
	RoleLicenseServer = "license_server"
	RoleClient        = "client"
)

// Status says whether a host's evidence was collected.
type Status string

const (
	StatusCollected Status = "collected" // evidence was read (sections may still carry errors)
	StatusFailed    Status = "failed"    // nothing usable was read; Failure says why
	StatusSkipped   Status = "skipped"   // not attempted (e.g. credential locked out); Failure says why
)

// FailureClass classifies why a host could not be collected.
type FailureClass string

const (
	FailDNS          FailureClass = "dns"
	FailConnect      FailureClass = "connect"
	FailTLS          FailureClass = "tls"
	FailAuth         FailureClass = "auth"
	FailAccessDenied FailureClass = "access_denied"
	FailQuota        FailureClass = "quota"
	FailTimeout      FailureClass = "timeout"
	FailProtocol     FailureClass = "protocol_fault"
	FailScript       FailureClass = "script_error"
	FailBadOutput    FailureClass = "bad_output"
	FailNoEvidence   FailureClass = "no_evidence"  // offline collectors: no file for this host
	FailBadEvidence  FailureClass = "bad_evidence" // offline collectors: file unreadable or invalid
	FailCredential   FailureClass = "credential_locked"
	FailUnsupported  FailureClass = "unsupported_os"
	FailCanceled     FailureClass = "canceled"
	FailInternal     FailureClass = "internal"
)

// Failure is the classified reason a host has no (or no complete) evidence.
type Failure struct {
	Class   FailureClass `json:"class"`
	Message string       `json:"message"`
	// Attempts is how many collection attempts were made (retries included).
	Attempts int `json:"attempts,omitempty"`
}

// HostRef identifies the targeted host as the inventory names it.
type HostRef struct {
	Name    string   `json:"name"`
	Address string   `json:"address,omitempty"`
	Port    int      `json:"port,omitempty"`
	Group   string   `json:"group,omitempty"`
	Roles   []string `json:"roles,omitempty"`
	Tags    []string `json:"tags,omitempty"`
}

// HasRole reports whether the host has the given inventory role.
func (h HostRef) HasRole(role string) bool {
	for _, r := range h.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// Evidence is one targeted host's record. Every targeted host has exactly one, collected
// or not.
type Evidence struct {
	Schema      string    `json:"schema"`
	Host        HostRef   `json:"host"`
	Collector   string    `json:"collector"` // "winrm", "snapshot", "regfile"
	CollectedAt time.Time `json:"collected_at"`
	// Duration of the collection in milliseconds (0 for offline sources).
	DurationMS int64    `json:"duration_ms,omitempty"`
	Status     Status   `json:"status"`
	Failure    *Failure `json:"failure,omitempty"`

	OS               *OSInfo                `json:"os,omitempty"`
	Registry         []RegKey               `json:"registry,omitempty"`
	TerminalServices *TerminalServices      `json:"terminal_services,omitempty"`
	Deployment       *DeploymentLicensing   `json:"deployment_licensing,omitempty"`
	LicenseServer    *LicenseServerEvidence `json:"license_server,omitempty"`

	// Errors lists sections that failed while others were read.
	Errors []SectionError `json:"errors,omitempty"`
}

// SectionError records a failing section of an otherwise collected host.
type SectionError struct {
	Section string `json:"section"` // e.g. "registry:HKLM\\...\\GracePeriod", "wmi:Win32_TSLicenseKeyPack"
	Message string `json:"message"`
}

// OSInfo holds the operating-system facts as the host reported them (Win32_OperatingSystem,
// Win32_ComputerSystem, Get-WindowsFeature). Dates are kept as the raw strings read (CIM
// datetime or locale formatted); package facts parses them.
type OSInfo struct {
	ComputerName   string   `json:"computer_name,omitempty"`
	Caption        string   `json:"caption,omitempty"`
	Version        string   `json:"version,omitempty"` // e.g. "10.0.20348"
	BuildNumber    string   `json:"build_number,omitempty"`
	InstallDate    string   `json:"install_date,omitempty"`
	LastBootUpTime string   `json:"last_boot_up_time,omitempty"`
	Domain         string   `json:"domain,omitempty"`
	PartOfDomain   *bool    `json:"part_of_domain,omitempty"`
	DomainRole     *int64   `json:"domain_role,omitempty"`
	Roles          []string `json:"roles,omitempty"` // installed Windows features, e.g. "RDS-RD-Server", "RDS-Licensing"
	PSVersion      string   `json:"ps_version,omitempty"`
	// Locale is the host's culture name (e.g. "de-DE"); it disambiguates dates that a
	// collector printed locale-formatted (01/02/2036).
	Locale string `json:"locale,omitempty"`
}

// Registry value types as regedit and the Win32 API name them.
const (
	RegNone     = "REG_NONE"
	RegSZ       = "REG_SZ"
	RegExpandSZ = "REG_EXPAND_SZ"
	RegBinary   = "REG_BINARY"
	RegDWord    = "REG_DWORD"
	RegDWordBE  = "REG_DWORD_BIG_ENDIAN"
	RegMultiSZ  = "REG_MULTI_SZ"
	RegQWord    = "REG_QWORD"
)

// RegKey is one registry key as read. Path is the full path with the hive as "HKLM\...".
type RegKey struct {
	Path          string     `json:"path"`
	Exists        bool       `json:"exists"`
	LastWriteTime *time.Time `json:"last_write_time,omitempty"` // UTC, from RegQueryInfoKey
	Owner         string     `json:"owner,omitempty"`
	Subkeys       []string   `json:"subkeys,omitempty"` // names of direct subkeys
	Values        []RegValue `json:"values,omitempty"`
	// Error says reading failed. With Exists false, existence is unknown too. With
	// Exists true the key exists but its values and subkeys could not be read (ACL):
	// Values/Subkeys are unknown, not absent; LastWriteTime and Owner, when set, are real.
	Error string `json:"error,omitempty"`
}

// RegValue is one value. Exactly one of String, Strings, Number, Hex carries the data,
// according to Type; Length and SHA256 describe the raw bytes where the collector had
// them. Secrets such as the grace timebomb or CAL tokens are collected as Length+SHA256
// only (Hex empty, Redacted true).
type RegValue struct {
	Name     string   `json:"name"` // "" is the key's default value
	Type     string   `json:"type"` // REG_SZ, REG_DWORD, ... or "REG_UNKNOWN(n)"
	String   *string  `json:"string,omitempty"`
	Strings  []string `json:"strings,omitempty"`
	Number   *uint64  `json:"number,omitempty"`
	Hex      string   `json:"hex,omitempty"`
	Length   int      `json:"length"`
	SHA256   string   `json:"sha256,omitempty"`
	Redacted bool     `json:"redacted,omitempty"`
}

// Key returns the key with the given path (case-insensitive), or nil.
func (e *Evidence) Key(path string) *RegKey {
	for i := range e.Registry {
		if EqualName(e.Registry[i].Path, path) {
			return &e.Registry[i]
		}
	}
	return nil
}

// Value returns the named value of the key (case-insensitive), or nil.
func (k *RegKey) Value(name string) *RegValue {
	if k == nil {
		return nil
	}
	for i := range k.Values {
		if EqualName(k.Values[i].Name, name) {
			return &k.Values[i]
		}
	}
	return nil
}

// MethodResult is the outcome of one WMI method call. A failing call is evidence (e.g.
// GetGracePeriodDays fails after the GracePeriod key was deleted), so it is recorded
// here rather than only as a section error.
type MethodResult struct {
	Called      bool   `json:"called"`
	ReturnValue *int64 `json:"return_value,omitempty"`
	Error       string `json:"error,omitempty"`
}

// OK reports whether the method was called and returned 0.
func (m *MethodResult) OK() bool {
	return m != nil && m.Called && m.Error == "" && m.ReturnValue != nil && *m.ReturnValue == 0
}

// TerminalServices is Win32_TerminalServiceSetting in root\cimv2\TerminalServices and
// its method results (domain.md §2).
type TerminalServices struct {
	NamespacePresent                     bool   `json:"namespace_present"`
	TerminalServerMode                   *int64 `json:"terminal_server_mode,omitempty"`
	LicensingType                        *int64 `json:"licensing_type,omitempty"`
	LicensingName                        string `json:"licensing_name,omitempty"`
	LicensingDescription                 string `json:"licensing_description,omitempty"`
	PolicySourceLicensingType            *int64 `json:"policy_source_licensing_type,omitempty"`
	PolicySourceConfiguredLicenseServers *int64 `json:"policy_source_configured_license_servers,omitempty"`

	GracePeriod struct {
		MethodResult
		DaysLeft *int64 `json:"days_left,omitempty"`
	} `json:"grace_period"`
	SpecifiedLicenseServers struct {
		MethodResult
		Servers []string `json:"servers,omitempty"`
	} `json:"specified_license_servers"`
	Connectivity []LSConnectivity `json:"connectivity,omitempty"`
}

// LSConnectivity is GetTStoLSConnectivityStatus for one license server.
type LSConnectivity struct {
	Server string `json:"server"`
	MethodResult
	Status *int64 `json:"status,omitempty"` // TsToLsConnectivityStatus, 9 and 11 healthy
}

// DeploymentLicensing is Win32_TSDeploymentLicensing (broker deployments).
type DeploymentLicensing struct {
	UseCentralLicensingSettings *bool    `json:"use_central_licensing_settings,omitempty"`
	LicenseServers              []string `json:"license_servers,omitempty"`
	LicensingType               *int64   `json:"licensing_type,omitempty"`
}

// LicenseServerEvidence is what a license server holds (domain.md §4).
type LicenseServerEvidence struct {
	ActivationStatus struct {
		MethodResult
		Status *int64 `json:"status,omitempty"` // 0 activated, 1 not activated, 2 unknown
	} `json:"activation_status"`
	KeyPacks []KeyPack `json:"key_packs,omitempty"`
	// IssuedLicenses is bounded by the collector; IssuedTotal is the count the server
	// reported and IssuedTruncated says whether the list is shorter than that.
	IssuedLicenses  []IssuedLicense `json:"issued_licenses,omitempty"`
	IssuedTotal     int             `json:"issued_total"`
	IssuedTruncated bool            `json:"issued_truncated,omitempty"`
	Reports         []LicenseReport `json:"reports,omitempty"`
}

// KeyPack is one Win32_TSLicenseKeyPack instance as read. Counts are kept as read:
// 4294967295 and -1 both mean unlimited (package facts).
type KeyPack struct {
	KeyPackID         int64  `json:"key_pack_id"`
	Description       string `json:"description,omitempty"`
	KeyPackType       *int64 `json:"key_pack_type,omitempty"`
	ProductType       *int64 `json:"product_type,omitempty"`
	ProductVersion    string `json:"product_version,omitempty"` // localized, informational
	ProductVersionID  *int64 `json:"product_version_id,omitempty"`
	TotalLicenses     *int64 `json:"total_licenses,omitempty"`
	IssuedLicenses    *int64 `json:"issued_licenses,omitempty"`
	AvailableLicenses *int64 `json:"available_licenses,omitempty"`
	ExpirationDate    string `json:"expiration_date,omitempty"` // CIM datetime or locale formatted
	TypeAndModel      string `json:"type_and_model,omitempty"`
}

// IssuedLicense is one Win32_TSIssuedLicense (Per Device CAL) as read.
type IssuedLicense struct {
	LicenseID      int64  `json:"license_id"`
	KeyPackID      int64  `json:"key_pack_id"`
	IssuedToUser   string `json:"issued_to_user,omitempty"`
	IssuedToComp   string `json:"issued_to_computer,omitempty"`
	HardwareID     string `json:"hardware_id,omitempty"`
	IssueDate      string `json:"issue_date,omitempty"`
	ExpirationDate string `json:"expiration_date,omitempty"`
	LicenseStatus  *int64 `json:"license_status,omitempty"` // 1 temporary, 2 active, ...
}

// LicenseReport is an existing Win32_TSLicenseReport (never generated by rdsaudit unless
// the user opts in) with its summary entries.
type LicenseReport struct {
	FileName      string               `json:"file_name,omitempty"`
	GeneratedDate string               `json:"generated_date,omitempty"`
	ScopeType     *int64               `json:"scope_type,omitempty"`
	Summary       []LicenseReportEntry `json:"summary,omitempty"`
}

// LicenseReportEntry is one FetchReportSummaryEntries row: usage per product version.
type LicenseReportEntry struct {
	ProductVersionID  *int64 `json:"product_version_id,omitempty"`
	ProductVersion    string `json:"product_version,omitempty"`
	InstalledLicenses *int64 `json:"installed_licenses,omitempty"`
	IssuedLicenses    *int64 `json:"issued_licenses,omitempty"`
	TSCALType         *int64 `json:"cal_type,omitempty"` // 0 per device, 1 per user
}

// NewFailure returns the record of a host that could not be collected.
func NewFailure(host HostRef, collector string, at time.Time, status Status, class FailureClass, msg string) *Evidence {
	return &Evidence{
		Schema:      Schema,
		Host:        host,
		Collector:   collector,
		CollectedAt: at.UTC(),
		Status:      status,
		Failure:     &Failure{Class: class, Message: msg},
	}
}

// Decode reads one evidence document strictly: unknown fields, a wrong schema
// tag or trailing data are errors.
func Decode(r io.Reader) (*Evidence, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var ev Evidence
	if err := dec.Decode(&ev); err != nil {
		return nil, fmt.Errorf("decode evidence: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("decode evidence: trailing data after document")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("decode evidence: trailing data after document")
	}
	if ev.Schema != Schema {
		return nil, fmt.Errorf("decode evidence: schema %q, want %q", ev.Schema, Schema)
	}
	return &ev, nil
}

// Encode writes the document as indented JSON.
func Encode(w io.Writer, ev *Evidence) error {
	// The document is written whole or not at all: encoded into a buffer first (the
	// caller's, when it gives one).
	if b, ok := w.(*bytes.Buffer); ok {
		n := b.Len()
		if err := encodeTo(b, ev); err != nil {
			b.Truncate(n)
			return err
		}
		return nil
	}
	var buf bytes.Buffer
	if err := encodeTo(&buf, ev); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

func encodeTo(buf *bytes.Buffer, ev *Evidence) error {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(ev); err != nil {
		return fmt.Errorf("encode evidence %s: %w", ev.Host.Name, err)
	}
	return nil
}

// EqualName reports whether two registry key paths or value names are the same name:
// Windows compares them case-insensitively.
func EqualName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		ca, cb := a[i], b[i]
		if 'A' <= ca && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if 'A' <= cb && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca != cb {
			return false
		}
	}
	return true
}

// WindowsDeviceName reports whether stem (lower case, the part of a file name before
// its first dot) is a Windows device name — CON, PRN, AUX, NUL, COM0-9, LPT0-9 — which
// Windows opens as the device, not a file, whatever extension follows.
func WindowsDeviceName(stem string) bool {
	switch stem {
	case "con", "prn", "aux", "nul":
		return true
	}
	return len(stem) == 4 && (strings.HasPrefix(stem, "com") || strings.HasPrefix(stem, "lpt")) && stem[3] >= '0' && stem[3] <= '9'
}
