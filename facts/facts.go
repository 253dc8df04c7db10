// Package facts turns a host's raw evidence (package evidence) into the facts the rules
// read: licensing mode, license servers, grace period, certificate, OS release, license
// server holdings and client tokens, with whatever the evidence does not establish left
// explicitly unknown.
package facts

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rdsaudit/rdsaudit/evidence"
)

// Facts is what the rules read about one host: the raw evidence interpreted in Go
// (domain.md). A fact that the evidence does not establish stays unknown (nil pointer,
// Known false, or an "unknown(n)" name); nothing is coerced to a default.
type Facts struct {
	Host   evidence.HostRef
	Status evidence.Status
	// CollectedAt is when the evidence was collected (evidence collected_at, UTC): the
	// time the facts describe, which history rules compare across audits.
	CollectedAt time.Time
	Failure     *evidence.Failure
	Errors      []evidence.SectionError

	OS             OSFacts
	Mode           ModeFacts
	LicenseServers LSFacts
	Grace          GraceFacts
	Certificate    CertFacts
	Policy         PolicyFacts
	// AppServer: Win32_TerminalServiceSetting.TerminalServerMode == 1 (RDSH role
	// installed); nil when WMI did not say.
	AppServer *bool
	// Artefacts lists tampering artefacts found in the registry (domain.md §1): they have
	// no effect but reveal intent.
	Artefacts []string

	Holdings *Holdings    // license servers only
	Client   *ClientFacts // client devices only
}

// Collected reports whether evidence was read for the host.
func (f *Facts) Collected() bool { return f.Status == evidence.StatusCollected }

// Licensing modes (registry LicensingMode and WMI LicensingType, domain.md §1-2).
const (
	ModePersonalTS int64 = 0
	ModeAdminOnly  int64 = 1
	ModePerDevice  int64 = 2
	ModePerUser    int64 = 4
	ModeNotConfig  int64 = 5
	ModeAADPerUser int64 = 6
	SourcePolicy         = "policy"
	SourceLocal          = "local"
	SourceNone           = "none"
	SourceWMI            = "wmi"
	SourceUnknown        = "unknown"
	CALPerDevice         = "per_device"
	CALPerUser           = "per_user"
	releaseUnknown       = ""
	unlimitedCount int64 = 4294967295
)

// ModeName names a licensing mode value; unknown values stay visible as "unknown(n)".
func ModeName(m *int64) string {
	if m == nil {
		return "absent"
	}
	switch *m {
	case ModePersonalTS:
		return "Personal Terminal Server (0)"
	case ModeAdminOnly:
		return "Remote Desktop for Administration (1)"
	case ModePerDevice:
		return "Per Device (2)"
	case ModePerUser:
		return "Per User (4)"
	case ModeNotConfig:
		return "Not configured (5)"
	case ModeAADPerUser:
		return "AAD Per User (6)"
	}
	return fmt.Sprintf("unknown(%d)", *m)
}

// ModeCALType is the CAL type a licensing mode consumes: per_device, per_user, or "".
func ModeCALType(m *int64) string {
	if m == nil {
		return ""
	}
	switch *m {
	case ModePerDevice:
		return CALPerDevice
	case ModePerUser, ModeAADPerUser:
		return CALPerUser
	}
	return ""
}

// ModeFacts holds the three views of the licensing mode and the effective one by
// registry precedence (Group Policy wins over the local value).
type ModeFacts struct {
	Known     bool   // both registry keys were read
	Policy    *int64 // HKLM\SOFTWARE\Policies\...\Terminal Services LicensingMode
	Local     *int64 // ...\RCM\Licensing Core LicensingMode
	WMI       *int64 // Win32_TerminalServiceSetting.LicensingType
	WMISource *int64 // PolicySourceLicensingType: 0 server, 1 group policy
	// Effective is the mode by precedence; nil when neither source sets one.
	Effective       *int64
	EffectiveSource string // policy, local or none
	// Invalid notes a LicensingMode value of the wrong registry type (it is then ignored
	// as Windows would, and reported).
	Invalid []string
}

// LSFacts holds the license-server configuration.
type LSFacts struct {
	Known      bool
	Policy     []string // policy LicenseServers, comma separated
	Local      []string // SpecifiedLicenseServers, value or subkey shape
	LocalShape string   // "value", "subkey", "" (absent)
	Effective  []string // policy if set, else local
	Source     string   // policy, local, none
	WMI        []string // GetSpecifiedLicenseServerList
	WMIOK      bool
	WMISource  *int64 // PolicySourceConfiguredLicenseServers
	// Connectivity per server the host was asked about.
	Connectivity []Connectivity
}

// Connectivity is the host's view of one license server.
type Connectivity struct {
	Server  string
	Status  *int64 // nil when the call failed
	Healthy bool   // 9 or 11
	Error   string
}

// ConnectivityName names a TsToLsConnectivityStatus value.
func ConnectivityName(s *int64) string {
	if s == nil {
		return "unknown (call failed)"
	}
	names := map[int64]string{0: "unknown", 1: "valid (2008 R2)", 2: "valid (2008)", 3: "beta/RTM mismatch",
		4: "lower version", 5: "not in TS group", 6: "not connectable", 7: "unknown validity",
		8: "access denied", 9: "valid (VDI)", 10: "feature not supported", 11: "valid"}
	if n, ok := names[*s]; ok {
		return fmt.Sprintf("%s (%d)", n, *s)
	}
	return fmt.Sprintf("unknown(%d)", *s)
}

// GraceFacts holds the grace-period evidence (domain.md §3).
type GraceFacts struct {
	// DaysLeft from GetGracePeriodDays when the call succeeded.
	DaysLeft     *int64
	MethodCalled bool
	MethodFailed bool // called and failed: evidence in itself (key deleted, service not restarted)
	MethodError  string
	KeyKnown     bool // the key's existence (and metadata) was read
	KeyExists    bool
	// ValuesUnknown: the key exists but its values could not be read (its ACL refused
	// the collector); Timebomb and ExtraValues are then unknown, not absent.
	ValuesUnknown bool
	ValuesError   string
	KeyWritten    *time.Time
	KeyOwner      string
	Timebomb      *evidence.RegValue // the standard (or beta) timebomb value, if present
	// ExtraValues names values in the GracePeriod key other than the timebomb.
	ExtraValues []string
}

// CertFacts: does the host hold a licensing certificate (RCM X509 Certificate)?
type CertFacts struct {
	Known   bool
	Present bool
	Values  []string // certificate value names present
}

// PolicyFacts holds the other licensing policies (nil = not set).
type PolicyFacts struct {
	TooltipHidden   *bool
	PreventUpgrade  *bool
	SecureLicensing *bool
}

// OSFacts holds operating-system facts with the Windows Server release derived.
type OSFacts struct {
	Known        bool
	Caption      string
	Version      string
	Build        string
	Release      string // "2008 R2", "2012", "2012 R2", "2016", "2019", "2022", "2025"; "" unknown
	Server       bool   // a server edition by caption
	InstallDate  *time.Time
	LastBoot     *time.Time
	DateErrors   []string
	Domain       string
	PartOfDomain *bool
	Roles        []string
}

// Supported reports whether the collector supports the release (Server 2012 and newer).
// A release that could not be derived is not reported as unsupported.
func (o OSFacts) Supported() bool {
	switch o.Release {
	case "2008", "2008 R2":
		return false
	}
	if strings.HasPrefix(o.Version, "6.0") || strings.HasPrefix(o.Version, "6.1") || strings.HasPrefix(o.Version, "5.") {
		return false
	}
	return true
}

// Count is a licence count as read: Unlimited for 4294967295 or -1, Known false when
// absent.
type Count struct {
	Value     int64
	Unlimited bool
	Known     bool
}

func (c Count) String() string {
	switch {
	case !c.Known:
		return "unknown"
	case c.Unlimited:
		return "unlimited"
	}
	return strconv.FormatInt(c.Value, 10)
}

func countOf(p *int64) Count {
	if p == nil {
		return Count{}
	}
	if *p == unlimitedCount || *p == -1 {
		return Count{Unlimited: true, Known: true}
	}
	return Count{Value: *p, Known: true}
}

// Holdings is what a license server holds.
type Holdings struct {
	Activation      *int64 // 0 activated, 1 not activated, 2 unknown; nil when the call failed
	ActivationError string
	KeyPacks        []KeyPackFacts
	Issued          []IssuedFacts
	IssuedTotal     int
	IssuedTruncated bool
	Reports         []evidence.LicenseReport
}

// KeyPackFacts is a key pack interpreted.
type KeyPackFacts struct {
	ID           int64
	Description  string
	TypeAndModel string
	PackType     *int64
	PackTypeName string
	Temporary    bool
	BuiltIn      bool
	CALType      string // per_device, per_user, or unknown(n)
	VersionID    *int64
	Version      string // Windows Server release the CALs are for, "" unknown
	Total        Count
	Issued       Count
	Available    Count
	Expires      *time.Time
	ExpiresRaw   string
	DateError    string
}

// IssuedFacts is one issued Per Device CAL interpreted.
type IssuedFacts struct {
	LicenseID  int64
	KeyPackID  int64
	User       string
	Computer   string
	HardwareID string
	Status     *int64
	StatusName string
	Temporary  bool
	Issued     *time.Time
	Expires    *time.Time
	DateError  string
}

// ClientFacts is an RDP client device's CAL token store (domain.md §7).
type ClientFacts struct {
	Known        bool
	HardwareID   bool
	StoreExists  bool
	Tokens       []ClientToken
	StoreWritten *time.Time // latest LastWriteTime of the Store key and its subkeys
}

// ClientToken is one LICENSE00n subkey of the Store.
type ClientToken struct {
	Name    string
	Size    int
	SHA256  string
	Written *time.Time
}

// Interpret derives the facts from one host's evidence. It never fails: what it cannot
// interpret stays unknown and is noted.
func Interpret(ev *evidence.Evidence) *Facts {
	f := &Facts{Host: ev.Host, Status: ev.Status, CollectedAt: ev.CollectedAt.UTC(), Failure: ev.Failure, Errors: ev.Errors}
	if ev.Status != evidence.StatusCollected {
		return f
	}
	locale := ""
	if ev.OS != nil {
		locale = ev.OS.Locale
	}
	f.OS = interpretOS(ev.OS)
	f.Mode = interpretMode(ev)
	f.LicenseServers = interpretLS(ev)
	f.Grace = interpretGrace(ev)
	f.Certificate = interpretCert(ev)
	f.Policy = interpretPolicy(ev)
	if ts := ev.TerminalServices; ts != nil && ts.TerminalServerMode != nil {
		b := *ts.TerminalServerMode == 1
		f.AppServer = &b
	}
	f.Artefacts = artefacts(ev)
	if ev.Host.HasRole(evidence.RoleLicenseServer) || ev.LicenseServer != nil {
		f.Holdings = interpretHoldings(ev.LicenseServer, locale)
	}
	if ev.Host.HasRole(evidence.RoleClient) {
		f.Client = interpretClient(ev)
	}
	return f
}

// dword returns the value as a number when it is a DWORD/QWORD, else nil and a note.
func dword(k *evidence.RegKey, name string) (*int64, string) {
	v := k.Value(name)
	if v == nil {
		return nil, ""
	}
	if (v.Type == evidence.RegDWord || v.Type == evidence.RegQWord || v.Type == evidence.RegDWordBE) && v.Number != nil {
		n := int64(*v.Number)
		return &n, ""
	}
	return nil, fmt.Sprintf("%s\\%s has type %s, not REG_DWORD", k.Path, name, v.Type)
}

func flag(k *evidence.RegKey, name string) *bool {
	n, _ := dword(k, name)
	if n == nil {
		return nil
	}
	b := *n != 0
	return &b
}

func keyRead(k *evidence.RegKey) bool { return k != nil && k.Error == "" }

func interpretMode(ev *evidence.Evidence) ModeFacts {
	var m ModeFacts
	pol, loc := ev.Key(evidence.KeyPolicy), ev.Key(evidence.KeyLicensingCore)
	m.Known = keyRead(pol) && keyRead(loc)
	var note string
	if keyRead(pol) {
		if m.Policy, note = dword(pol, evidence.ValLicensingMode); note != "" {
			m.Invalid = append(m.Invalid, note)
		}
	}
	if keyRead(loc) {
		if m.Local, note = dword(loc, evidence.ValLicensingMode); note != "" {
			m.Invalid = append(m.Invalid, note)
		}
	}
	if ts := ev.TerminalServices; ts != nil {
		m.WMI, m.WMISource = ts.LicensingType, ts.PolicySourceLicensingType
	}
	switch {
	case m.Policy != nil:
		m.Effective, m.EffectiveSource = m.Policy, SourcePolicy
	case !keyRead(pol):
		m.EffectiveSource = SourceUnknown
	case m.Local != nil:
		m.Effective, m.EffectiveSource = m.Local, SourceLocal
	case !keyRead(loc):
		m.EffectiveSource = SourceUnknown
	default:
		m.EffectiveSource = SourceNone
	}
	return m
}

// SplitServers splits a comma/semicolon separated server list, trimming blanks.
func SplitServers(s string) []string {
	var out []string
	for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' }) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ServerKey normalises a server name for comparison: lower case, no trailing dot.
func ServerKey(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
}

// ShortName is the first DNS label of a server name, lower case.
func ShortName(s string) string {
	s = ServerKey(s)
	if i := strings.IndexByte(s, '.'); i > 0 {
		return s[:i]
	}
	return s
}

func interpretLS(ev *evidence.Evidence) LSFacts {
	var l LSFacts
	pol, loc, sub := ev.Key(evidence.KeyPolicy), ev.Key(evidence.KeyLocalLS), ev.Key(evidence.KeyLocalLSSubkey)
	// The subkey shape is read only to find servers; a failed read of it leaves the list
	// unknown rather than empty.
	l.Known = keyRead(pol) && keyRead(loc) && (sub == nil || keyRead(sub))
	if v := pol.Value(evidence.ValLicenseServers); v != nil {
		switch {
		case v.String != nil:
			l.Policy = SplitServers(*v.String)
		case len(v.Strings) > 0:
			for _, s := range v.Strings {
				l.Policy = append(l.Policy, SplitServers(s)...)
			}
		}
	}
	if v := loc.Value(evidence.ValSpecifiedLS); v != nil {
		l.LocalShape = "value"
		for _, s := range v.Strings {
			l.Local = append(l.Local, SplitServers(s)...)
		}
		if v.String != nil {
			l.Local = append(l.Local, SplitServers(*v.String)...)
		}
	}
	// UNSURE shape (domain.md §1): a SpecifiedLicenseServers subkey. Accept server names
	// as its subkeys, as string data of its values, or as names of data-less values.
	if l.LocalShape == "" && sub != nil && sub.Exists {
		l.LocalShape = "subkey"
		l.Local = append(l.Local, sub.Subkeys...)
		for _, v := range sub.Values {
			switch {
			case len(v.Strings) > 0:
				for _, s := range v.Strings {
					l.Local = append(l.Local, SplitServers(s)...)
				}
			case v.String != nil && *v.String != "":
				l.Local = append(l.Local, SplitServers(*v.String)...)
			case v.Name != "":
				l.Local = append(l.Local, v.Name)
			}
		}
	}
	l.Local = dedupe(l.Local)
	l.Policy = dedupe(l.Policy)
	switch {
	case len(l.Policy) > 0:
		l.Effective, l.Source = l.Policy, SourcePolicy
	case len(l.Local) > 0:
		l.Effective, l.Source = l.Local, SourceLocal
	case l.Known:
		l.Source = SourceNone
	default:
		l.Source = SourceUnknown
	}
	if ts := ev.TerminalServices; ts != nil {
		l.WMISource = ts.PolicySourceConfiguredLicenseServers
		if ts.SpecifiedLicenseServers.OK() {
			l.WMIOK = true
			l.WMI = dedupe(ts.SpecifiedLicenseServers.Servers)
		}
		for _, c := range ts.Connectivity {
			cf := Connectivity{Server: c.Server, Error: c.Error}
			if c.OK() && c.Status != nil {
				cf.Status = c.Status
				cf.Healthy = *c.Status == 9 || *c.Status == 11
			} else if cf.Error == "" && c.ReturnValue != nil {
				cf.Error = fmt.Sprintf("GetTStoLSConnectivityStatus returned %d", *c.ReturnValue)
			}
			l.Connectivity = append(l.Connectivity, cf)
		}
	}
	return l
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		s = strings.TrimSpace(s)
		if s == "" || seen[ServerKey(s)] {
			continue
		}
		seen[ServerKey(s)] = true
		out = append(out, s)
	}
	return out
}

func interpretGrace(ev *evidence.Evidence) GraceFacts {
	var g GraceFacts
	if ts := ev.TerminalServices; ts != nil {
		gp := ts.GracePeriod
		g.MethodCalled = gp.Called
		if gp.OK() && gp.DaysLeft != nil {
			g.DaysLeft = gp.DaysLeft
		} else if gp.Called {
			g.MethodFailed = true
			g.MethodError = gp.Error
			if g.MethodError == "" && gp.ReturnValue != nil {
				g.MethodError = fmt.Sprintf("GetGracePeriodDays returned %d", *gp.ReturnValue)
			}
		}
	}
	k := ev.Key(evidence.KeyGracePeriod)
	if k != nil && k.Exists && k.Error != "" {
		// The collector proved the key exists and read what its ACL allowed (owner,
		// LastWriteTime) but not the values.
		g.KeyKnown, g.KeyExists, g.ValuesUnknown, g.ValuesError = true, true, true, k.Error
		g.KeyWritten, g.KeyOwner = k.LastWriteTime, k.Owner
	}
	if keyRead(k) {
		g.KeyKnown, g.KeyExists = true, k.Exists
		g.KeyWritten, g.KeyOwner = k.LastWriteTime, k.Owner
		for i := range k.Values {
			v := &k.Values[i]
			switch {
			case g.Timebomb == nil && (evidence.EqualName(v.Name, evidence.ValTimebomb) || evidence.EqualName(v.Name, evidence.ValTimebombBeta)):
				g.Timebomb = v
			default:
				g.ExtraValues = append(g.ExtraValues, v.Name)
			}
		}
	}
	return g
}

func interpretCert(ev *evidence.Evidence) CertFacts {
	k := ev.Key(evidence.KeyRCM)
	if !keyRead(k) {
		return CertFacts{}
	}
	c := CertFacts{Known: true}
	for _, name := range []string{evidence.ValX509Certificate, evidence.ValCertificate, evidence.ValX509CertificateID, evidence.ValX509Certificate2} {
		if v := k.Value(name); v != nil {
			c.Values = append(c.Values, v.Name)
			if evidence.EqualName(name, evidence.ValX509Certificate) {
				c.Present = true
			}
		}
	}
	return c
}

func interpretPolicy(ev *evidence.Evidence) PolicyFacts {
	k := ev.Key(evidence.KeyPolicy)
	if !keyRead(k) {
		return PolicyFacts{}
	}
	return PolicyFacts{
		TooltipHidden:   flag(k, evidence.ValTooltip),
		PreventUpgrade:  flag(k, evidence.ValPreventUpgrade),
		SecureLicensing: flag(k, evidence.ValSecureLicensing),
	}
}

func artefacts(ev *evidence.Evidence) []string {
	var out []string
	if k := ev.Key(evidence.KeyMisplacedCore); k != nil && k.Exists {
		out = append(out, "key "+evidence.KeyMisplacedCore+" exists (a Licensing Core key outside RCM has no effect)")
	}
	for _, k := range ev.Registry {
		if !k.Exists {
			continue
		}
		for _, v := range k.Values {
			if evidence.EqualName(v.Name, evidence.ValTimebombPlain) {
				out = append(out, fmt.Sprintf("value %s\\%s (%s) is a reset-script artefact", k.Path, v.Name, v.Type))
			}
		}
	}
	return out
}

func interpretOS(o *evidence.OSInfo) OSFacts {
	if o == nil {
		return OSFacts{}
	}
	f := OSFacts{Known: true, Caption: o.Caption, Version: o.Version, Build: o.BuildNumber,
		Domain: o.Domain, PartOfDomain: o.PartOfDomain, Roles: o.Roles}
	f.Server = strings.Contains(strings.ToLower(o.Caption), "server")
	// Client editions share build numbers with server releases (Windows 10 1607 is build
	// 14393, like Server 2016): a release is derived only for a server caption, or when
	// no caption says otherwise.
	if f.Server || o.Caption == "" {
		f.Release = Release(o.Version, o.BuildNumber, o.Caption)
	}
	var err error
	if o.InstallDate != "" {
		if f.InstallDate, err = ParseDate(o.InstallDate, o.Locale); err != nil {
			f.DateErrors = append(f.DateErrors, "install_date: "+err.Error())
		}
	}
	if o.LastBootUpTime != "" {
		if f.LastBoot, err = ParseDate(o.LastBootUpTime, o.Locale); err != nil {
			f.DateErrors = append(f.DateErrors, "last_boot_up_time: "+err.Error())
		}
	}
	return f
}

// Release maps an OS version to a Windows Server release name ("" when unknown). The
// build number decides between releases sharing "10.0"; the caption is used only when
// the build is not a known server build.
func Release(version, build, caption string) string {
	parts := strings.Split(version, ".")
	if build == "" && len(parts) >= 3 {
		build = parts[2]
	}
	major := ""
	if len(parts) >= 2 {
		major = parts[0] + "." + parts[1]
	}
	switch major {
	case "6.0":
		return "2008"
	case "6.1":
		return "2008 R2"
	case "6.2":
		return "2012"
	case "6.3":
		return "2012 R2"
	}
	switch build {
	case "14393":
		return "2016"
	case "17763":
		return "2019"
	case "20348":
		return "2022"
	case "26100":
		return "2025"
	}
	c := strings.ToLower(caption)
	for _, r := range []string{"2025", "2022", "2019", "2016", "2012 R2", "2012", "2008 R2", "2008"} {
		if strings.Contains(c, "server "+strings.ToLower(r)) {
			return r
		}
	}
	return releaseUnknown
}

// CALVersionName names a ProductVersionID as its Windows Server release, or "" (CAL
// product version IDs: Win32_TSLicenseKeyPack.ProductVersionID, domain.md §4).
func CALVersionName(id *int64) string {
	if id == nil {
		return ""
	}
	switch *id {
	case 2:
		return "2008"
	case 3:
		return "2008 R2"
	case 4:
		return "2012"
	case 5:
		return "2016"
	case 6:
		return "2019"
	case 7:
		return "2022"
	case 8:
		return "2025"
	}
	return ""
}

// MinCALVersion is the lowest ProductVersionID whose CALs license a host of the release
// (domain.md §5: same version or newer); 0 when the release is unknown.
func MinCALVersion(release string) int64 {
	switch release {
	case "2008", "2008 R2":
		return 2
	case "2012", "2012 R2":
		return 4
	case "2016":
		return 5
	case "2019":
		return 6
	case "2022":
		return 7
	case "2025":
		return 8
	}
	return 0
}

// ReleaseCALVersion is the CAL ProductVersionID of a release (the newest CAL version a
// license server of that release can hold); 0 when unknown.
func ReleaseCALVersion(release string) int64 {
	switch release {
	case "2008":
		return 2
	case "2008 R2":
		return 3
	}
	return MinCALVersion(release)
}

// packTypeName names a Win32_TSLicenseKeyPack.KeyPackType, or "".
func packTypeName(t int64) string {
	switch t {
	case 0:
		return "unknown"
	case 1:
		return "retail"
	case 2:
		return "volume"
	case 3:
		return "concurrent"
	case 4:
		return "temporary"
	case 5:
		return "open license"
	case 6:
		return "not supported"
	case 7:
		return "type 7"
	}
	return ""
}

// licenseStatusName names a Win32_TSIssuedLicense.LicenseStatus, or "".
func licenseStatusName(s int64) string {
	switch s {
	case 0:
		return "unknown"
	case 1:
		return "temporary"
	case 2:
		return "active"
	case 3:
		return "upgrade"
	case 4:
		return "revoked"
	case 5:
		return "pending"
	case 6:
		return "concurrent"
	}
	return ""
}

// enumName names *p with name: "absent" for nil, "unknown(n)" where name has none.
func enumName(name func(int64) string, p *int64) string {
	if p == nil {
		return "absent"
	}
	if n := name(*p); n != "" {
		return n
	}
	return fmt.Sprintf("unknown(%d)", *p)
}

func interpretHoldings(ls *evidence.LicenseServerEvidence, locale string) *Holdings {
	h := &Holdings{}
	if ls == nil {
		return h
	}
	a := ls.ActivationStatus
	if a.OK() && a.Status != nil {
		h.Activation = a.Status
	} else if a.Called {
		h.ActivationError = a.Error
		if h.ActivationError == "" && a.ReturnValue != nil {
			h.ActivationError = fmt.Sprintf("GetActivationStatus returned %d", *a.ReturnValue)
		}
	}
	for _, kp := range ls.KeyPacks {
		k := KeyPackFacts{ID: kp.KeyPackID, Description: kp.Description, TypeAndModel: kp.TypeAndModel,
			PackType: kp.KeyPackType, PackTypeName: enumName(packTypeName, kp.KeyPackType),
			VersionID: kp.ProductVersionID, Version: CALVersionName(kp.ProductVersionID),
			Total: countOf(kp.TotalLicenses), Issued: countOf(kp.IssuedLicenses), Available: countOf(kp.AvailableLicenses),
			ExpiresRaw: kp.ExpirationDate}
		k.Temporary = kp.KeyPackType != nil && *kp.KeyPackType == 4
		k.BuiltIn = strings.HasPrefix(strings.ToLower(kp.TypeAndModel), "built-in") ||
			(kp.ProductType != nil && *kp.ProductType == 3)
		switch {
		case kp.ProductType == nil:
			k.CALType = "absent"
		case *kp.ProductType == 0:
			k.CALType = CALPerDevice
		case *kp.ProductType == 1:
			k.CALType = CALPerUser
		default:
			k.CALType = fmt.Sprintf("unknown(%d)", *kp.ProductType)
		}
		if kp.ExpirationDate != "" {
			t, err := ParseDate(kp.ExpirationDate, locale)
			k.Expires = t
			if err != nil {
				k.DateError = err.Error()
			}
		}
		h.KeyPacks = append(h.KeyPacks, k)
	}
	for _, il := range ls.IssuedLicenses {
		i := IssuedFacts{LicenseID: il.LicenseID, KeyPackID: il.KeyPackID, User: il.IssuedToUser,
			Computer: il.IssuedToComp, HardwareID: il.HardwareID, Status: il.LicenseStatus,
			StatusName: enumName(licenseStatusName, il.LicenseStatus)}
		i.Temporary = il.LicenseStatus != nil && *il.LicenseStatus == 1
		var errs []string
		if il.IssueDate != "" {
			t, err := ParseDate(il.IssueDate, locale)
			i.Issued = t
			if err != nil {
				errs = append(errs, "issue_date: "+err.Error())
			}
		}
		if il.ExpirationDate != "" {
			t, err := ParseDate(il.ExpirationDate, locale)
			i.Expires = t
			if err != nil {
				errs = append(errs, "expiration_date: "+err.Error())
			}
		}
		i.DateError = strings.Join(errs, "; ")
		h.Issued = append(h.Issued, i)
	}
	h.IssuedTotal, h.IssuedTruncated, h.Reports = ls.IssuedTotal, ls.IssuedTruncated, ls.Reports
	if h.IssuedTotal < len(h.Issued) {
		h.IssuedTotal = len(h.Issued)
	}
	return h
}

func interpretClient(ev *evidence.Evidence) *ClientFacts {
	hw, st := ev.Key(evidence.KeyClientHardwareID), ev.Key(evidence.KeyClientStore)
	c := &ClientFacts{Known: keyRead(hw) && keyRead(st)}
	c.HardwareID = hw != nil && hw.Exists && hw.Value(evidence.ValClientHWID) != nil
	if st == nil || !st.Exists {
		return c
	}
	c.StoreExists = true
	c.StoreWritten = st.LastWriteTime
	prefix := strings.ToLower(evidence.KeyClientStore) + `\`
	for _, k := range ev.Registry {
		if !k.Exists || !strings.HasPrefix(strings.ToLower(k.Path), prefix) {
			continue
		}
		tok := ClientToken{Name: k.Path[len(prefix):], Written: k.LastWriteTime}
		for _, v := range k.Values {
			tok.Size += v.Length
			if tok.SHA256 == "" {
				tok.SHA256 = v.SHA256
			}
		}
		c.Tokens = append(c.Tokens, tok)
		if k.LastWriteTime != nil && (c.StoreWritten == nil || k.LastWriteTime.After(*c.StoreWritten)) {
			c.StoreWritten = k.LastWriteTime
		}
	}
	sort.Slice(c.Tokens, func(i, j int) bool { return c.Tokens[i].Name < c.Tokens[j].Name })
	return c
}

// ParseDate parses the date shapes collectors print (domain.md §4): CIM datetime
// (20380101000000.000000-000, offset in minutes), ISO 8601, PowerShell's JSON
// "/Date(ms)/", and locale-formatted dates ("01/01/2036 00:00:00", "01.01.2036 00:00:00",
// "2036-01-01 00:00:00"). A day/month order that only the locale can decide is decided
// by it; with no locale such a date is an error, never a guess. Results are UTC; a
// locale-formatted date carries no zone and is taken as UTC (off by the host's offset
// at most, which no rule's day-granular threshold depends on).
func ParseDate(s, locale string) (*time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("empty date")
	}
	if t, ok := parseCIM(s); ok {
		return &t, nil
	}
	if strings.HasPrefix(s, "/Date(") || strings.HasPrefix(s, `\/Date(`) {
		inner := strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(s, `\`), "/Date("), `/`), `\`)
		inner = strings.TrimSuffix(inner, ")")
		if inner == "" {
			return nil, fmt.Errorf("date %q: bad /Date()/ value", s)
		}
		if i := strings.IndexAny(inner[1:], "+-"); i >= 0 {
			inner = inner[:i+1] // an offset suffix describes the local zone; the ms are UTC
		}
		ms, err := strconv.ParseInt(inner, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("date %q: bad /Date()/ value", s)
		}
		t := time.UnixMilli(ms).UTC()
		return &t, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			t = t.UTC()
			return &t, nil
		}
	}
	return parseLocaleDate(s, locale)
}

func parseCIM(s string) (time.Time, bool) {
	// yyyymmddHHMMSS.mmmmmmsUUU
	if len(s) != 25 || s[14] != '.' || (s[21] != '+' && s[21] != '-') {
		return time.Time{}, false
	}
	t, err := time.Parse("20060102150405", s[:14])
	if err != nil {
		return time.Time{}, false
	}
	// Both fields are digits only: strconv.Atoi would take "+00000" or "-0001" too, and
	// a signed microsecond field would move the time (found by FuzzParseDate).
	if !allDigits(s[15:21]) || !allDigits(s[22:25]) {
		return time.Time{}, false
	}
	micro, _ := strconv.Atoi(s[15:21])
	off, _ := strconv.Atoi(s[22:25])
	t = t.Add(time.Duration(micro) * time.Microsecond)
	if s[21] == '+' {
		off = -off
	}
	return t.Add(time.Duration(off) * time.Minute).UTC(), true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// dayFirst says whether a culture writes "a/b/yyyy" day first. Only the month-first
// cultures are listed; every other known culture is day first.
func dayFirst(locale string) (known, dayFirst bool) {
	l := strings.ToLower(locale)
	if l == "" {
		return false, false
	}
	for _, p := range []string{"en-us", "en-ph", "en-bz", "es-us", "fil"} {
		if strings.HasPrefix(l, p) {
			return true, false
		}
	}
	return true, true
}

func parseLocaleDate(s, locale string) (*time.Time, error) {
	datePart, timePart, _ := strings.Cut(s, " ")
	sep := ""
	for _, c := range []string{"/", ".", "-"} {
		if strings.Count(datePart, c) == 2 {
			sep = c
			break
		}
	}
	if sep == "" {
		return nil, fmt.Errorf("date %q: unrecognised format", s)
	}
	p := strings.Split(datePart, sep)
	a, err1 := strconv.Atoi(p[0])
	b, err2 := strconv.Atoi(p[1])
	y, err3 := strconv.Atoi(p[2])
	if err1 != nil || err2 != nil || err3 != nil || (y < 1601 && len(p[0]) != 4) {
		return nil, fmt.Errorf("date %q: unrecognised format", s)
	}
	var day, month int
	if len(p[0]) == 4 { // year first (ja-JP, zh-CN, ko-KR: 2036/02/01): always y/m/d
		y, month, day = a, b, y
		if y < 1601 {
			return nil, fmt.Errorf("date %q: unrecognised format", s)
		}
	}
	switch {
	case len(p[0]) == 4:
	case sep == ".": // de-DE, ru-RU, ...: always day first
		day, month = a, b
	case a > 12 && b <= 12:
		day, month = a, b
	case b > 12 && a <= 12:
		day, month = b, a
	case a == b:
		day, month = a, b
	default:
		known, df := dayFirst(locale)
		if !known {
			return nil, fmt.Errorf("date %q: day/month order ambiguous without the host locale", s)
		}
		if df {
			day, month = a, b
		} else {
			day, month = b, a
		}
	}
	var hh, mm, ss int
	if timePart = strings.TrimSpace(timePart); timePart != "" {
		pm := strings.HasSuffix(strings.ToUpper(timePart), "PM")
		am := strings.HasSuffix(strings.ToUpper(timePart), "AM")
		timePart = strings.TrimSpace(strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(timePart, "PM"), "AM"), "pm"), "am"))
		tp := strings.Split(timePart, ":")
		if len(tp) < 2 || len(tp) > 3 {
			return nil, fmt.Errorf("date %q: unrecognised time", s)
		}
		var err error
		if hh, err = strconv.Atoi(tp[0]); err == nil {
			if mm, err = strconv.Atoi(tp[1]); err == nil && len(tp) == 3 {
				ss, err = strconv.Atoi(tp[2])
			}
		}
		if err != nil {
			return nil, fmt.Errorf("date %q: unrecognised time", s)
		}
		if pm && hh < 12 {
			hh += 12
		}
		if am && hh == 12 {
			hh = 0
		}
	}
	t := time.Date(y, time.Month(month), day, hh, mm, ss, 0, time.UTC)
	if t.Day() != day || int(t.Month()) != month || hh > 23 || mm > 59 || ss > 59 {
		return nil, fmt.Errorf("date %q: out of range", s)
	}
	return &t, nil
}
