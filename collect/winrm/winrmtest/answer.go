package winrmtest

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/rdsaudit/rdsaudit/collect/winrm"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// Answer is what the collection script would print on a host holding ev when run with
// parameters p: registry keys exactly as requested (a key not requested is absent, a
// requested key the host lacks reads as not existing), values limited by OnlyValues,
// binary data redacted where requested, license-server sections only for the
// license_server role, the issued-licence list bounded by MaxIssued with the total and
// the truncated flag, no key LastWriteTime with the script without key metadata. ev is
// not modified.
func Answer(ev *evidence.Evidence, host string, p winrm.ScriptParams) *evidence.Evidence {
	src := deepCopy(ev)
	out := &evidence.Evidence{
		Schema:      evidence.Schema,
		Host:        evidence.HostRef{Name: host},
		Collector:   "winrm",
		CollectedAt: time.Now().UTC(),
		Status:      evidence.StatusCollected,
	}
	if src == nil {
		return out
	}
	if src.OS != nil && src.OS.ComputerName != "" {
		out.Host.Name = src.OS.ComputerName
	}
	out.OS = src.OS
	out.TerminalServices = src.TerminalServices
	if src.TerminalServices != nil && src.TerminalServices.NamespacePresent {
		out.Deployment = src.Deployment
	}
	out.Registry = evidence.SelectKeys(p.Keys, func(path string) evidence.RegKey {
		if k := src.Key(path); k != nil {
			return *k
		}
		return evidence.RegKey{Path: path}
	})
	if p.NoKeyMetadata {
		// The script without key metadata reads no LastWriteTime (no P/Invoke) and hashes
		// nothing: binary values travel as hex, redacted ones too (the collector redacts
		// them); a value the host holds only as a hash stays so.
		for i := range out.Registry {
			k := &out.Registry[i]
			k.LastWriteTime = nil
			for j, v := range k.Values {
				if h := src.Key(k.Path); h != nil && v.Redacted {
					for _, raw := range h.Values {
						if raw.Name == v.Name && raw.Hex != "" {
							v = raw
						}
					}
				}
				if v.Hex != "" {
					v.SHA256, v.Redacted = "", false
				}
				k.Values[j] = v
			}
		}
	}
	requested := map[string]bool{}
	for _, k := range out.Registry {
		requested[strings.ToLower(k.Path)] = true
	}
	if slices.Contains(p.Roles, evidence.RoleLicenseServer) && src.LicenseServer != nil {
		ls := src.LicenseServer
		total := max(ls.IssuedTotal, len(ls.IssuedLicenses))
		ls.IssuedTotal = total
		maxIssued := max(p.MaxIssued, 0)
		if len(ls.IssuedLicenses) > maxIssued {
			ls.IssuedLicenses = ls.IssuedLicenses[:maxIssued]
		}
		ls.IssuedTruncated = total > len(ls.IssuedLicenses)
		if len(ls.IssuedLicenses) == 0 {
			ls.IssuedLicenses = nil
		}
		out.LicenseServer = ls
	}
	for _, e := range src.Errors {
		if path, ok := strings.CutPrefix(e.Section, "registry:"); ok && !requested[strings.ToLower(path)] {
			continue
		}
		if strings.HasPrefix(e.Section, "wmi:Win32_TSLicense") && out.LicenseServer == nil {
			continue
		}
		out.Errors = append(out.Errors, e)
	}
	return out
}

func deepCopy(ev *evidence.Evidence) *evidence.Evidence {
	if ev == nil {
		return nil
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return nil
	}
	var out evidence.Evidence
	if err := json.Unmarshal(b, &out); err != nil {
		return nil
	}
	return &out
}
