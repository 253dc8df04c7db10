package history

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
	"github.com/rdsaudit/rdsaudit/report"
	"github.com/rdsaudit/rdsaudit/rules"
)

// Import loads an earlier run's report.json from runDir into the store (backfill from
// archived evidence) and returns the run's ID. The run lands at its evaluation time
// (run.evaluated_at, signed in the manifest; a report written before it existed: its
// started_at), whatever the time of the import; when runs evaluated later are already in
// the store, what depends on the order is recomputed for them in the same transaction
// (Record). The hosts are the report's coverage list
// (every targeted host with its collection status); each host's facts come from its
// evidence file in runDir when present and matching the SHA-256 the report lists
// (interpreted as the run would have), else from the report's host row, which lacks the
// timebomb hash. The findings' first-seen and new/persisting status are recomputed from
// the run evaluated before it in the store; with none, they keep what the report carries.
// Import does not take the run lock.
//
// The run directory is verified first (verifyImport): a run that fails verification is
// refused; one whose authenticity cannot be proven is refused unless opts.Unverified,
// and then recorded with origin OriginImportUnverified. A ".partial" directory (a run
// killed before it was published) is refused too. When the run has a manifest, every
// file Import reads after verification (report.json, each evidence file) is hashed as
// read against the verified manifest (report.Checked), never against a list in
// report.json: a file changed since verification is a *report.VerifyError, wrapped.
func (s *Store) Import(ctx context.Context, runDir string, opts ImportOptions) (string, error) {
	if report.IsPartial(filepath.Base(filepath.Clean(runDir))) {
		return "", fmt.Errorf("import %s: not a published run (a run killed before publishing leaves such a directory)", runDir)
	}
	origin, checked, err := verifyImport(runDir, opts)
	if err != nil {
		return "", err
	}
	if testHookAfterVerify != nil {
		testHookAfterVerify(runDir)
	}
	file := filepath.Join(runDir, "report.json")
	data, err := readRunFile(runDir, "report.json", checked)
	if err != nil {
		return "", fmt.Errorf("import %s: %w", runDir, err)
	}
	rep, err := report.Decode(bytes.NewReader(data))
	if err != nil {
		return "", fmt.Errorf("import %s: %w", file, err)
	}
	run := rep.Run
	if run.ID == "" || run.StartedAt.IsZero() {
		return "", fmt.Errorf("import %s: report has no run ID or start time", file)
	}
	evalAt := run.EvaluatedAt
	if evalAt.IsZero() { // a report written before evaluated_at existed
		evalAt = run.StartedAt
	}
	rec := RunRecord{ID: run.ID, Started: run.StartedAt, Ended: run.FinishedAt, ToolVersion: run.ToolVersion,
		EvaluatedAt: evalAt, Pinned: run.Pinned, Window: run.CollectionWindow,
		RuleSetHash: run.RuleSetHash, ConfigHash: run.ConfigHash, Origin: OriginImport, Results: rep.Results,
		Coverage: Coverage{Targeted: rep.Coverage.Targeted, Collected: rep.Coverage.Collected,
			Failed: rep.Coverage.Failed + rep.Coverage.Skipped}}
	rec.Origin = origin
	if checked != nil && checked.Run.ID != run.ID {
		return "", fmt.Errorf("import %s: %w", runDir, &report.VerifyError{Dir: runDir, Problems: []string{
			fmt.Sprintf("report.json: report of run %q, but %s is of run %q", run.ID, report.ManifestName, checked.Run.ID)}})
	}
	rows := map[string]report.Host{}
	for _, h := range rep.Hosts {
		rows[strings.ToLower(h.Name)] = h
	}
	evidence := map[string]report.EvidenceRef{}
	for _, e := range rep.Evidence {
		evidence[strings.ToLower(e.Host)] = e
	}
	statuses := rep.Coverage.Hosts
	if len(statuses) == 0 { // a report without a coverage list: take the host rows
		for _, h := range rep.Hosts {
			statuses = append(statuses, report.HostStatus{Name: h.Name, Group: h.Group, Status: h.Status})
		}
	}
	for _, hs := range statuses {
		key := strings.ToLower(hs.Name)
		h := HostRecord{Name: hs.Name, Group: hs.Group, Status: string(hs.Status)}
		if hs.FailureClass != "" {
			h.Failure = string(hs.FailureClass)
			if hs.Message != "" {
				h.Failure += ": " + hs.Message
			}
		}
		facts, err := evidenceFacts(runDir, evidence[key], checked)
		if err != nil {
			return "", fmt.Errorf("import %s: %w", runDir, err)
		}
		if facts != nil {
			h.Snapshot = SnapshotOf(run.ID, evalAt, facts)
		} else {
			h.Snapshot = snapshotOfRow(run.ID, evalAt, hs, rows[key])
		}
		rec.Hosts = append(rec.Hosts, h)
	}
	if err := s.Record(ctx, rec); err != nil {
		return "", fmt.Errorf("import %s: %w", file, err)
	}
	return run.ID, nil
}

// testHookAfterVerify, when set (by tests), runs between the verification of the run
// directory and Import's reading of its files.
var testHookAfterVerify func(runDir string)

// readRunFile reads the run file rel (slash-separated) for Import. With a verified
// manifest (ck not nil) the bytes read must be the file it lists, same size and
// SHA-256: the file is read again after verification, and a file changed since (or
// not listed) is a *report.VerifyError. Without one (an unverified import of a run
// without manifest) the file is read as it is.
func readRunFile(runDir, rel string, ck *report.Checked) ([]byte, error) {
	name := filepath.Join(runDir, filepath.FromSlash(rel))
	if ck == nil {
		return os.ReadFile(name)
	}
	mf, ok := ck.File(rel)
	if !ok {
		return nil, ck.Match(rel, nil) // not listed
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, &report.VerifyError{Dir: runDir, Problems: []string{fmt.Sprintf("%s: verified, but cannot be read now: %v", rel, err)}}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, mf.Size+1))
	if err != nil {
		return nil, &report.VerifyError{Dir: runDir, Problems: []string{fmt.Sprintf("%s: verified, but cannot be read now: %v", rel, err)}}
	}
	if err := ck.Match(rel, data); err != nil {
		return nil, err
	}
	return data, nil
}

// evidenceFacts interprets the host's evidence file, or returns nil when there is none
// or it does not match the hash the report lists. With a verified manifest (ck), the
// file must be the one the manifest lists (readRunFile): one changed since verification
// is the error; one the manifest does not list is absent from the run (none).
func evidenceFacts(runDir string, ref report.EvidenceRef, ck *report.Checked) (*facts.Facts, error) {
	if ref.Path == "" {
		return nil, nil
	}
	if ck != nil {
		if _, ok := ck.File(ref.Path); !ok {
			return nil, nil
		}
	}
	b, err := readRunFile(runDir, ref.Path, ck)
	if ck != nil && err != nil {
		return nil, err
	}
	if err != nil {
		return nil, nil
	}
	if sum := sha256.Sum256(b); ref.SHA256 != "" && !strings.EqualFold(hex.EncodeToString(sum[:]), ref.SHA256) {
		return nil, nil
	}
	ev, err := evidence.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, nil
	}
	return facts.Interpret(ev), nil
}

// snapshotOfRow is the snapshot a report's coverage entry and host row allow (no
// timebomb hash).
func snapshotOfRow(runID string, at time.Time, hs report.HostStatus, h report.Host) rules.HostSnapshot {
	sn := rules.HostSnapshot{RunID: runID, At: at.UTC(), Collected: hs.Status == evidence.StatusCollected}
	if !sn.Collected {
		return sn
	}
	if !hs.CollectedAt.IsZero() {
		c := hs.CollectedAt.UTC()
		sn.CollectedAt = &c
	}
	sn.Mode, sn.ModeSource = copyInt(h.Mode), h.ModeSource
	if len(h.LicenseServers) > 0 {
		sn.LicenseServers = append([]string(nil), h.LicenseServers...)
	}
	sn.GraceDays, sn.GraceKeyWritten = copyInt(h.GraceDays), copyTime(h.GraceKeyWritten)
	sn.OSBuild, sn.InstallDate = h.OSBuild, copyTime(h.InstallDate)
	return sn
}
