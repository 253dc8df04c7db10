// Package offline reads host evidence from files instead of hosts, for air-gapped sites
// and for replaying recorded fleets: evidence JSON snapshots, and regedit exports with
// their host files.
//
//   - <dir>/<host>.json: an evidence document (evidence.Encode output, e.g. a previous
//     run's raw evidence), read with evidence.Decode. Collector "snapshot".
//   - <dir>/<host>.reg + <dir>/<host>.host.yaml: a regedit export plus the host file
//     (hostfile.go). Collector "regfile". The registry keys reported are exactly those
//     evidence.KeysFor(host roles) requests, as the WinRM script would report them.
//
// File names match the inventory host name case-insensitively; for an FQDN inventory name
// (rdsh-a01.corp.example) the short name (rdsh-a01) is tried next. Host identity always
// comes from the inventory, never from the file. A host without files is failed with
// class no_evidence; an unreadable or invalid file (or a .reg without its host file) is
// failed with class bad_evidence and a message naming the file and line.
package offline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rdsaudit/rdsaudit/evidence"
)

// Collector names of the offline sources.
const (
	CollectorSnapshot = "snapshot"
	CollectorRegFile  = "regfile"
)

// File suffixes of the offline sources.
const (
	SuffixSnapshot = ".json"
	SuffixReg      = ".reg"
	SuffixHostFile = ".host.yaml"
)

// Collector reads host evidence from files in Dir. It implements collect.Collector and is
// safe for concurrent use (it only reads). It lists Dir once, at its first host: use a
// new Collector for each run.
type Collector struct {
	Dir string
	// Snapshots and RegFiles select the sources; with both, <host>.json wins over
	// <host>.reg + <host>.host.yaml.
	Snapshots bool
	RegFiles  bool
	// Now stamps CollectedAt of failures and of host files without collected_at.
	// Default time.Now.
	Now func() time.Time

	listOnce sync.Once
	files    map[string]string // lower-case name -> name in Dir
	listErr  error
}

// list returns Dir's files by lower-case name, listing the directory only once.
func (c *Collector) list() (map[string]string, error) {
	c.listOnce.Do(func() { c.files, c.listErr = listDir(c.Dir) })
	return c.files, c.listErr
}

// NewSnapshot reads <dir>/<host>.json evidence documents.
func NewSnapshot(dir string) *Collector {
	return &Collector{Dir: dir, Snapshots: true}
}

// NewRegFile reads <dir>/<host>.reg + <dir>/<host>.host.yaml.
func NewRegFile(dir string) *Collector {
	return &Collector{Dir: dir, RegFiles: true}
}

// New reads <host>.json if present, else <host>.reg + <host>.host.yaml.
func New(dir string) *Collector {
	return &Collector{Dir: dir, Snapshots: true, RegFiles: true}
}

func (c *Collector) now() time.Time {
	if c.Now != nil {
		return c.Now().UTC()
	}
	return time.Now().UTC()
}

// Name implements collect.Collector: the source recorded in reports. Each evidence
// document names the reader that produced it ("snapshot" or "regfile").
func (c *Collector) Name() string { return "offline" }

func (c *Collector) name() string {
	if c.Snapshots && !c.RegFiles {
		return CollectorSnapshot
	}
	return CollectorRegFile
}

// Collect implements collect.Collector.
func (c *Collector) Collect(ctx context.Context, host evidence.HostRef) *evidence.Evidence {
	if err := ctx.Err(); err != nil {
		return evidence.NewFailure(host, c.name(), c.now(), evidence.StatusSkipped, evidence.FailCanceled, err.Error())
	}
	files, err := c.list()
	if err != nil {
		return evidence.NewFailure(host, c.name(), c.now(), evidence.StatusFailed, evidence.FailNoEvidence, err.Error())
	}
	for _, base := range candidateNames(host.Name) {
		if c.Snapshots {
			if f, ok := files[strings.ToLower(base+SuffixSnapshot)]; ok {
				ev, err := readSnapshot(filepath.Join(c.Dir, f))
				if err != nil {
					return evidence.NewFailure(host, CollectorSnapshot, c.now(), evidence.StatusFailed, evidence.FailBadEvidence, err.Error())
				}
				ev.Host = host
				ev.Collector = CollectorSnapshot
				return ev
			}
		}
		if c.RegFiles {
			regName, hasReg := files[strings.ToLower(base+SuffixReg)]
			hfName, hasHF := files[strings.ToLower(base+SuffixHostFile)]
			if !hasReg && !hasHF {
				continue
			}
			if !hasHF {
				return evidence.NewFailure(host, CollectorRegFile, c.now(), evidence.StatusFailed, evidence.FailBadEvidence,
					fmt.Sprintf("%s: no host file %s beside it", regName, base+SuffixHostFile))
			}
			regPath := ""
			if hasReg {
				regPath = filepath.Join(c.Dir, regName)
			}
			ev, err := readRegEvidence(host, regPath, filepath.Join(c.Dir, hfName), c.now())
			if err != nil {
				return evidence.NewFailure(host, CollectorRegFile, c.now(), evidence.StatusFailed, evidence.FailBadEvidence, err.Error())
			}
			return ev
		}
	}
	var want []string
	if c.Snapshots {
		want = append(want, host.Name+SuffixSnapshot)
	}
	if c.RegFiles {
		want = append(want, host.Name+SuffixReg+" + "+host.Name+SuffixHostFile)
	}
	return evidence.NewFailure(host, c.name(), c.now(), evidence.StatusFailed, evidence.FailNoEvidence,
		fmt.Sprintf("no evidence file for %s in %s (looked for %s)", host.Name, c.Dir, strings.Join(want, " or ")))
}

// candidateNames returns the file base names tried for a host name.
func candidateNames(name string) []string {
	out := []string{name}
	if short, _, ok := strings.Cut(name, "."); ok && short != "" {
		out = append(out, short)
	}
	return out
}

// listDir maps lower-case file names to their names on disk. Two names differing only
// in case are an error (the match would be ambiguous).
func listDir(dir string) (map[string]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read evidence directory: %w", err)
	}
	m := make(map[string]string, len(ents))
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		lk := strings.ToLower(e.Name())
		if prev, ok := m[lk]; ok {
			return nil, fmt.Errorf("read evidence directory %s: %s and %s differ only in case", dir, prev, e.Name())
		}
		m[lk] = e.Name()
	}
	return m, nil
}

func readSnapshot(path string) (*evidence.Evidence, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ev, err := evidence.Decode(strings.NewReader(string(data)))
	if err != nil {
		return nil, fmt.Errorf("%s:%d: %w", filepath.Base(path), jsonErrorLine(data, err), err)
	}
	return ev, nil
}

// jsonErrorLine returns the 1-based line of a JSON decode error's offset (1 if unknown).
func jsonErrorLine(data []byte, err error) int {
	var off int64
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	default:
		if m := unknownFieldRE.FindStringSubmatch(err.Error()); m != nil {
			if i := strings.Index(string(data), `"`+m[1]+`"`); i >= 0 {
				off = int64(i)
			}
		}
	}
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	return 1 + strings.Count(string(data[:off]), "\n")
}

// readRegEvidence builds a host's evidence from its .reg (regPath may be empty for a
// failed/skipped host) and host file.
func readRegEvidence(host evidence.HostRef, regPath, hfPath string, now time.Time) (*evidence.Evidence, error) {
	hfData, err := os.ReadFile(hfPath)
	if err != nil {
		return nil, err
	}
	hf, err := ParseHostFile(filepath.Base(hfPath), hfData)
	if err != nil {
		return nil, err
	}
	var rf *RegFile
	if regPath != "" {
		data, err := os.ReadFile(regPath)
		if err != nil {
			return nil, err
		}
		if rf, err = ParseRegFile(filepath.Base(regPath), data); err != nil {
			return nil, err
		}
	}
	return RegEvidence(host, rf, hf, filepath.Base(hfPath), now)
}

// RegEvidence combines a parsed .reg (nil if none) and host file into one host's
// evidence. Registry keys are those evidence.KeysFor(host.Roles) requests; registry_meta entries
// are merged into them by path. hfName names the host file in errors; now is used when
// the host file has no collected_at.
func RegEvidence(host evidence.HostRef, rf *RegFile, hf *HostFile, hfName string, now time.Time) (*evidence.Evidence, error) {
	ev := &evidence.Evidence{
		Schema:           evidence.Schema,
		Host:             host,
		Collector:        CollectorRegFile,
		CollectedAt:      now.UTC(),
		Status:           evidence.StatusCollected,
		Failure:          hf.Failure,
		OS:               hf.OS,
		TerminalServices: hf.TerminalServices,
		Deployment:       hf.Deployment,
		LicenseServer:    hf.LicenseServer,
		Errors:           hf.Errors,
	}
	if hf.CollectedAt != nil {
		ev.CollectedAt = hf.CollectedAt.UTC()
	}
	if hf.Status != "" {
		ev.Status = hf.Status
	}
	if rf == nil {
		if ev.Status == evidence.StatusCollected {
			return nil, fmt.Errorf("%s: status collected but no .reg file", hfName)
		}
		if len(hf.RegistryMeta) > 0 {
			return nil, fmt.Errorf("%s: registry_meta without a .reg file", hfName)
		}
		return ev, nil
	}
	reqs := evidence.KeysFor(host.Roles)
	ev.Registry = rf.RegKeys(reqs)
	known := evidence.KeysFor([]string{evidence.RoleSessionHost, evidence.RoleLicenseServer, evidence.RoleClient})
	for i, m := range hf.RegistryMeta {
		path, _ := normaliseKeyPath(m.Path)
		k := ev.Key(path)
		if k == nil {
			if !knownKey(known, path) {
				return nil, fmt.Errorf("%s: registry_meta[%d].path: %s is not a key rdsaudit reads", hfName, i, m.Path)
			}
			continue // a key this host's roles do not read
		}
		if !k.Exists && (m.LastWriteTime != nil || m.Owner != "") {
			return nil, fmt.Errorf("%s: registry_meta[%d]: key %s is absent from %s", hfName, i, m.Path, rf.Name)
		}
		if m.LastWriteTime != nil {
			t := m.LastWriteTime.UTC()
			k.LastWriteTime = &t
		}
		if m.Owner != "" {
			k.Owner = m.Owner
		}
		if m.Error != "" {
			k.Error = m.Error
		}
	}
	return ev, nil
}

// knownKey reports whether path is a requested key or a direct subkey of a key read
// with its subkeys.
func knownKey(reqs []evidence.KeyRequest, path string) bool {
	for _, r := range reqs {
		if strings.EqualFold(r.Path, path) {
			return true
		}
		if r.Subkeys && len(path) > len(r.Path)+1 && strings.EqualFold(path[:len(r.Path)+1], r.Path+`\`) &&
			!strings.Contains(path[len(r.Path)+1:], `\`) {
			return true
		}
	}
	return false
}

// LoadFleet reads every host in dir — <host>.json, or <host>.reg + <host>.host.yaml — and
// returns its full evidence keyed by lower-case host name (the file's base name). For
// .reg hosts the host file's host.roles select the registry keys (evidence.KeysFor) and
// host.name/group/tags fill HostRef (name defaults to the file's base name). Any invalid
// file is an error: the WinRM simulator serves this as its virtual fleet.
func LoadFleet(dir string) (map[string]*evidence.Evidence, error) {
	files, err := listDir(dir)
	if err != nil {
		return nil, err
	}
	bases := map[string]string{} // lower base → base as on disk
	for _, f := range files {
		lf := strings.ToLower(f)
		for _, suf := range []string{SuffixHostFile, SuffixReg, SuffixSnapshot} {
			if strings.HasSuffix(lf, suf) {
				b := f[:len(f)-len(suf)]
				if _, ok := bases[strings.ToLower(b)]; !ok {
					bases[strings.ToLower(b)] = b
				}
				break
			}
		}
	}
	keys := make([]string, 0, len(bases))
	for k := range bases {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fleet := make(map[string]*evidence.Evidence, len(keys))
	for _, lb := range keys {
		base := bases[lb]
		if f, ok := files[lb+SuffixSnapshot]; ok {
			ev, err := readSnapshot(filepath.Join(dir, f))
			if err != nil {
				return nil, fmt.Errorf("load fleet: %w", err)
			}
			if ev.Host.Name == "" {
				ev.Host.Name = base
			}
			fleet[lb] = ev
			continue
		}
		hfName, ok := files[lb+SuffixHostFile]
		if !ok {
			return nil, fmt.Errorf("load fleet: %s: no host file %s beside it", files[lb+SuffixReg], base+SuffixHostFile)
		}
		data, err := os.ReadFile(filepath.Join(dir, hfName))
		if err != nil {
			return nil, fmt.Errorf("load fleet: %w", err)
		}
		hf, err := ParseHostFile(hfName, data)
		if err != nil {
			return nil, fmt.Errorf("load fleet: %w", err)
		}
		host := evidence.HostRef{Name: base}
		if hf.Host != nil {
			host = *hf.Host
			if host.Name == "" {
				host.Name = base
			}
		}
		if len(host.Roles) == 0 {
			return nil, fmt.Errorf("load fleet: %s: host.roles: required", hfName)
		}
		var rf *RegFile
		if regName, ok := files[lb+SuffixReg]; ok {
			rd, err := os.ReadFile(filepath.Join(dir, regName))
			if err != nil {
				return nil, fmt.Errorf("load fleet: %w", err)
			}
			if rf, err = ParseRegFile(regName, rd); err != nil {
				return nil, fmt.Errorf("load fleet: %w", err)
			}
		}
		ev, err := RegEvidence(host, rf, hf, hfName, time.Time{})
		if err != nil {
			return nil, fmt.Errorf("load fleet: %w", err)
		}
		fleet[lb] = ev
	}
	return fleet, nil
}
