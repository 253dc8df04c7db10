package winrmtest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
// the truncated flag. ev is not modified.
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
	requested := map[string]bool{}
	for _, kr := range p.Keys {
		requested[strings.ToLower(kr.Path)] = true
		out.Registry = append(out.Registry, readKey(src, kr.Path, kr))
		if kr.Subkeys {
			if k := src.Key(kr.Path); k != nil && k.Exists {
				for _, sub := range k.Subkeys {
					path := kr.Path + `\` + sub
					requested[strings.ToLower(path)] = true
					out.Registry = append(out.Registry, readKey(src, path, kr))
				}
			}
		}
	}
	if hasRole(p.Roles, evidence.RoleLicenseServer) && src.LicenseServer != nil {
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

func readKey(src *evidence.Evidence, path string, kr evidence.KeyRequest) evidence.RegKey {
	k := src.Key(path)
	if k == nil {
		return evidence.RegKey{Path: path, Exists: false}
	}
	rk := *k
	rk.Path = path
	rk.Values = nil
	for _, v := range k.Values {
		if len(kr.OnlyValues) > 0 && !containsFold(kr.OnlyValues, v.Name) {
			continue
		}
		if kr.Redact && v.Hex != "" {
			if raw, err := hex.DecodeString(v.Hex); err == nil {
				sum := sha256.Sum256(raw)
				v.Length = len(raw)
				v.SHA256 = hex.EncodeToString(sum[:])
			}
			v.Hex = ""
			v.Redacted = true
		}
		rk.Values = append(rk.Values, v)
	}
	return rk
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func hasRole(roles []string, r string) bool {
	for _, x := range roles {
		if x == r {
			return true
		}
	}
	return false
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
