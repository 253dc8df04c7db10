package directory

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rdsaudit/rdsaudit/evidence"
)

// Source yields one evidence document per configured domain, in configuration order.
// It never fails: a domain that cannot be read is a failed document.
type Source interface {
	Documents(ctx context.Context) []*Evidence
}

// Live reads each domain over LDAP, one after the other.
type Live struct{ Targets []Target }

// Documents implements Source.
func (l Live) Documents(ctx context.Context) []*Evidence {
	out := make([]*Evidence, 0, len(l.Targets))
	for _, t := range l.Targets {
		out = append(out, Collect(ctx, t))
	}
	return out
}

// SubDir is the directory evidence's subdirectory of an offline evidence directory
// (and of a run's evidence/): <dir>/directory/<domain>.directory.json.
const SubDir = "directory"

// Offline reads each domain's document from Dir/directory/<domain>.directory.json, as
// a live run writes it; a missing file is no_evidence, an invalid one bad_evidence.
type Offline struct {
	Dir     string
	Domains []OfflineDomain
	// PseudonymKey, when set, pseudonymises documents that are not yet.
	PseudonymKey []byte
	Now          func() time.Time
}

// OfflineDomain names a configured domain.
type OfflineDomain struct{ Name, BaseDN string }

// FileName is a domain's evidence file name.
func FileName(domain string) string { return strings.ToLower(domain) + FileSuffix }

// Documents implements Source.
func (o Offline) Documents(ctx context.Context) []*Evidence {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	out := make([]*Evidence, 0, len(o.Domains))
	for _, d := range o.Domains {
		path := filepath.Join(o.Dir, SubDir, FileName(d.Name))
		fail := func(class evidence.FailureClass, msg string) {
			out = append(out, Failed(d.Name, d.BaseDN, "offline", now(), class, msg, nil))
		}
		fi, err := os.Stat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fail(evidence.FailNoEvidence, fmt.Sprintf("no directory evidence file %s", path))
			continue
		case err != nil:
			fail(evidence.FailBadEvidence, err.Error())
			continue
		case fi.Size() > MaxDocumentBytes:
			fail(evidence.FailBadEvidence, fmt.Sprintf("%s: %d bytes, more than %d", path, fi.Size(), MaxDocumentBytes))
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			fail(evidence.FailBadEvidence, err.Error())
			continue
		}
		doc, err := Decode(data)
		if err != nil {
			fail(evidence.FailBadEvidence, fmt.Sprintf("%s: %v", path, err))
			continue
		}
		if !strings.EqualFold(doc.Domain, d.Name) {
			fail(evidence.FailBadEvidence, fmt.Sprintf("%s holds domain %q, not %q", path, doc.Domain, d.Name))
			continue
		}
		Pseudonymise(doc, o.PseudonymKey)
		out = append(out, doc)
	}
	return out
}

// CheckDomainName returns what is wrong with a domain's DNS name, or nil. The name
// becomes a file name (<name>.directory.json, in every run's evidence and in offline
// evidence directories), so it must be a DNS name — labels of letters, digits and
// hyphens, at most 63 characters each, 253 in all — whose first label is no Windows
// device name (CON, NUL, COM1…, which Windows opens as a device whatever follows).
func CheckDomainName(name string) error {
	if name == "" {
		return errors.New("empty")
	}
	if len(name) > 253 {
		return fmt.Errorf("%d characters, more than the 253 of a DNS name", len(name))
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("%q is not a DNS name (labels of 1 to 63 letters, digits and hyphens, separated by dots)", name)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("%q is not a DNS name (labels of 1 to 63 letters, digits and hyphens, separated by dots)", name)
			}
		}
	}
	if evidence.WindowsDeviceName(strings.ToLower(labels[0])) {
		return fmt.Errorf("%q begins with a Windows device name, which cannot name a file on Windows", name)
	}
	return nil
}
