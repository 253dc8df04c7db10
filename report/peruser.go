package report

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rdsaudit/rdsaudit/directory"
)

// DirectoryEvidenceDir is where a run directory keeps the directory evidence documents:
// evidence/directory/<domain>.directory.json (the same layout an offline evidence
// directory uses, so a run's evidence/ can be audited again offline).
const DirectoryEvidenceDir = EvidenceDir + "/directory"

// PerUser is the Per User CALs section (issue 15): the directory summary and the staged
// evidence of each domain. Absent (nil) when no directory is configured.
type PerUser struct {
	*directory.Summary
	Evidence []EvidenceRef `json:"evidence"`
}

// AddDirectoryEvidence writes one domain's directory evidence document to
// evidence/directory/<domain>.directory.json and lists it for the manifest.
func (s *Stage) AddDirectoryEvidence(doc *directory.Evidence) (EvidenceRef, error) {
	name := strings.ToLower(doc.Domain)
	if err := directory.CheckDomainName(doc.Domain); err != nil {
		return EvidenceRef{}, fmt.Errorf("publish: directory evidence of domain: %v", err)
	}
	var buf bytes.Buffer
	if err := directory.Encode(&buf, doc); err != nil {
		return EvidenceRef{}, fmt.Errorf("publish: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(filepath.Join(s.dir, filepath.FromSlash(DirectoryEvidenceDir)), 0o750); err != nil {
		return EvidenceRef{}, fmt.Errorf("publish: %w", err)
	}
	rel := DirectoryEvidenceDir + "/" + name + directory.FileSuffix
	mf, err := s.write(rel, buf.Bytes())
	if err != nil {
		return EvidenceRef{}, err
	}
	return EvidenceRef{Host: "directory:" + doc.Domain, Path: rel, SHA256: mf.SHA256, Size: mf.Size}, nil
}
