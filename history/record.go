package history

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/rdsaudit/rdsaudit/report"
	"github.com/rdsaudit/rdsaudit/rules"
)

// Origins of a recorded run.
const (
	OriginRun    = "run"    // recorded by the run itself
	OriginImport = "import" // backfilled from an archived report.json
	// OriginImportUnverified is an import allowed without proof of authenticity
	// (ImportOptions.Unverified): no manifest, or a signature not checked.
	OriginImportUnverified = "import-unverified"
)

// Imported reports whether a run of this origin was backfilled by Import (verified or not).
func Imported(origin string) bool {
	return origin == OriginImport || origin == OriginImportUnverified
}

// Coverage is how many hosts a run targeted, collected and failed to collect.
type Coverage struct {
	Targeted  int
	Collected int
	Failed    int
}

// Retention says which runs to keep: the newest KeepRuns runs and the runs of the last
// KeepMonths months. Zero means no limit of that kind; when both are set a run is pruned
// only when it is outside both (history is evidence: keep rather than lose).
type Retention struct {
	KeepRuns   int
	KeepMonths int
}

// RunRecord is one run as the history records it.
type RunRecord struct {
	ID      string
	Started time.Time // when the run was made (wall clock)
	Ended   time.Time // zero when unknown
	// EvaluatedAt is the time the run was evaluated as of: its place in the timeline.
	// Zero means Started. Pinned: EvaluatedAt was set by the user (--as-of).
	EvaluatedAt time.Time
	Pinned      bool
	// Window spans the collected_at times of the run's collected evidence; nil when
	// unknown (no host collected, or an older report).
	Window      *report.Window
	ToolVersion string
	RuleSetHash string
	ConfigHash  string
	Coverage    Coverage
	Origin      string // OriginRun (default), OriginImport or OriginImportUnverified
	Hosts       []HostRecord
	// Results are the run's rule results; only findings (fail, error) are stored, with
	// their first-seen carried from the latest earlier run when Annotate did not set it.
	Results []rules.Result
	// PerUser are the run's Per User CAL counts per version (PerUserOf); nil without a
	// directory. Written in the run's transaction, deleted with the run.
	PerUser []PerUserCount
	// Retention is applied in the same transaction, after the run is written; the run
	// just written is never pruned.
	Retention Retention
}

// evaluated is the run's place in the timeline.
func (r *RunRecord) evaluated() time.Time {
	if r.EvaluatedAt.IsZero() {
		return r.Started.UTC()
	}
	return r.EvaluatedAt.UTC()
}

// hook calls the store's test hook, if one is set, at a point inside Record's
// transaction (the kill test stops the process there).
func (s *Store) hook(stage string, n int) {
	if s.testHook != nil {
		s.testHook(stage, n)
	}
}

// Record writes the whole run in one transaction: the run, its hosts, its findings, the
// order-dependent state of the runs it lands before (relink), and retention pruning.
// Either all of it is committed or none of it is.
//
// A run lands at its evaluation time. When runs evaluated later are already recorded (a
// backfill of an older month), their findings' first-seen and new/persisting status are
// recomputed from the run now before each of them, in order; an imported run's own
// findings are recomputed the same way from the run before it, when there is one. What
// is derived from consecutive runs at read time (resolved findings, diffs, timelines)
// follows. The rule results the later runs recorded stay as they were evaluated.
func (s *Store) Record(ctx context.Context, run RunRecord) error {
	if run.ID == "" {
		return fmt.Errorf("record run: empty run ID")
	}
	if run.Started.IsZero() {
		return fmt.Errorf("record run %s: no start time", run.ID)
	}
	if run.Origin == "" {
		run.Origin = OriginRun
	}
	tx, err := s.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: waits up to BusyTimeout for another writer
	if err != nil {
		return fmt.Errorf("record run %s in %s: %w", run.ID, s.path, err)
	}
	defer tx.Rollback()
	if err := s.recordTx(ctx, tx, &run); err != nil {
		return fmt.Errorf("record run %s in %s: %w", run.ID, s.path, err)
	}
	s.hook("commit", 0)
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record run %s in %s: commit: %w", run.ID, s.path, err)
	}
	s.hook("committed", 0)
	return nil
}

func (s *Store) recordTx(ctx context.Context, tx *sql.Tx, run *RunRecord) error {
	var exists int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM runs WHERE run_id = ?", run.ID).Scan(&exists); err != nil {
		return err
	}
	if exists > 0 {
		return ErrRunExists
	}
	var ended any
	if !run.Ended.IsZero() {
		ended = ts(run.Ended)
	}
	evalAt := run.evaluated()
	var wEarliest, wLatest any
	if w := run.Window; w != nil {
		wEarliest, wLatest = ts(w.Earliest), ts(w.Latest)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO runs(run_id, started_at, ended_at, tool_version, ruleset_hash,
		config_hash, targeted, collected, failed, origin, recorded_at, evaluated_at, pinned, window_earliest, window_latest)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		run.ID, ts(run.Started), ended, run.ToolVersion, run.RuleSetHash, run.ConfigHash,
		run.Coverage.Targeted, run.Coverage.Collected, run.Coverage.Failed, run.Origin, ts(s.now()),
		ts(evalAt), run.Pinned, wEarliest, wLatest); err != nil {
		return fmt.Errorf("insert run: %w", err)
	}
	if err := insertPerUserTx(ctx, tx, run.ID, run.PerUser); err != nil {
		return err
	}
	s.hook("run", 0) // the run row and its Per User counts

	hs, err := tx.PrepareContext(ctx, `INSERT INTO hosts(run_id, host, name, grp, status, failure, collected, mode,
		mode_source, license_servers, grace_days, grace_key_written, timebomb_sha256, os_build, install_date, collected_at)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`)
	if err != nil {
		return err
	}
	defer hs.Close()
	seen := make(map[string]bool, len(run.Hosts))
	for i, h := range run.Hosts {
		key := strings.ToLower(h.Name)
		if key == "" {
			return fmt.Errorf("host %d has no name", i)
		}
		if seen[key] {
			return fmt.Errorf("host %s listed twice", h.Name)
		}
		seen[key] = true
		sn := h.Snapshot
		status := h.Status
		if status == "" && sn.Collected {
			status = "collected"
		}
		ls := ""
		if len(sn.LicenseServers) > 0 {
			b, _ := json.Marshal(sn.LicenseServers)
			ls = string(b)
		}
		if _, err := hs.ExecContext(ctx, run.ID, key, h.Name, h.Group, status, h.Failure, sn.Collected,
			nullInt(sn.Mode), sn.ModeSource, ls, nullInt(sn.GraceDays), nullTS(sn.GraceKeyWritten),
			sn.TimebombSHA256, sn.OSBuild, nullTS(sn.InstallDate), nullTS(sn.CollectedAt)); err != nil {
			return fmt.Errorf("insert host %s: %w", h.Name, err)
		}
		if i%1000 == 999 {
			s.hook("hosts", i+1)
		}
	}
	s.hook("hosts", len(run.Hosts))

	// First-seen of findings not annotated: carried from the latest earlier run.
	prevID, _, err := latestBefore(ctx, tx, evalAt, run.ID)
	if err != nil {
		return err
	}
	var prev map[string]findingRow
	fs, err := tx.PrepareContext(ctx, `INSERT INTO findings(run_id, finding_id, rule_id, subject_kind, subject_name,
		subject_key, subject_group, key, severity, outcome, status, waived, message, first_seen, last_seen)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`)
	if err != nil {
		return err
	}
	defer fs.Close()
	n := 0
	ids := map[string]bool{}
	for i := range run.Results {
		r := &run.Results[i]
		if !r.IsFinding() {
			continue
		}
		id := r.ID
		if id == "" {
			id = rules.FindingID(r.RuleID, r.Subject, r.Key)
		}
		if ids[id] {
			return fmt.Errorf("finding %s (%s on %s) listed twice", id, r.RuleID, r.Subject)
		}
		ids[id] = true
		first, last := r.FirstSeen, r.LastSeen
		lifecycle := r.Lifecycle
		if first == nil {
			if prev == nil && prevID != "" {
				if prev, err = findingsOf(ctx, tx, prevID); err != nil {
					return err
				}
			}
			t := evalAt
			lifecycle = rules.StatusNew
			if p, ok := prev[id]; ok {
				t, lifecycle = *p.FirstSeen, rules.StatusPersisting
			}
			first = &t
		}
		if last == nil {
			last = &evalAt
		}
		status := lifecycle
		if status == "" {
			status = rules.StatusNew
		}
		if r.Waived {
			status = rules.StatusWaived
		}
		if _, err := fs.ExecContext(ctx, run.ID, id, r.RuleID, string(r.Subject.Kind), r.Subject.Name,
			strings.ToLower(r.Subject.Name), r.Subject.Group, r.Key, int(r.Severity), string(r.Outcome),
			status, r.Waived, r.Message, ts(*first), ts(*last)); err != nil {
			return fmt.Errorf("insert finding %s: %w", id, err)
		}
		n++
		if n%1000 == 0 {
			s.hook("findings", n)
		}
	}
	s.hook("findings", n)

	if err := s.relinkTx(ctx, tx, run.ID, evalAt, Imported(run.Origin)); err != nil {
		return err
	}

	if run.Retention != (Retention{}) {
		if _, err := pruneTx(ctx, tx, run.Retention.KeepRuns, run.Retention.KeepMonths, s.now(), run.ID); err != nil {
			return err
		}
		s.hook("pruned", 0)
	}
	return nil
}

// Prune deletes runs outside the retention (see Retention) and returns how many it
// deleted. Zero limits mean no limit; with both zero nothing is deleted.
func (s *Store) Prune(ctx context.Context, keepRuns, keepMonths int, now time.Time) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("prune history store %s: %w", s.path, err)
	}
	defer tx.Rollback()
	n, err := pruneTx(ctx, tx, keepRuns, keepMonths, now, "")
	if err != nil {
		return 0, fmt.Errorf("prune history store %s: %w", s.path, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("prune history store %s: %w", s.path, err)
	}
	return n, nil
}

// pruneTx applies the retention by evaluation time (the newest runs are the latest
// evaluated); keep, when not "", is never pruned (the run just recorded).
func pruneTx(ctx context.Context, tx *sql.Tx, keepRuns, keepMonths int, now time.Time, keep string) (int, error) {
	if keepRuns < 0 || keepMonths < 0 {
		return 0, fmt.Errorf("negative retention (runs %d, months %d)", keepRuns, keepMonths)
	}
	if keepRuns == 0 && keepMonths == 0 {
		return 0, nil
	}
	rows, err := tx.QueryContext(ctx, "SELECT run_id, evaluated_at FROM runs ORDER BY evaluated_at DESC, run_id DESC")
	if err != nil {
		return 0, err
	}
	cutoff := now.UTC().AddDate(0, -keepMonths, 0)
	var doomed []string
	i := 0
	for rows.Next() {
		var id, started string
		if err := rows.Scan(&id, &started); err != nil {
			rows.Close()
			return 0, err
		}
		t, err := parseTS(started)
		if err != nil {
			rows.Close()
			return 0, fmt.Errorf("run %s: bad evaluated_at %q", id, started)
		}
		keepByCount := keepRuns > 0 && i < keepRuns
		keepByAge := keepMonths > 0 && !t.Before(cutoff)
		if !keepByCount && !keepByAge && id != keep {
			doomed = append(doomed, id)
		}
		i++
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return 0, err
	}
	rows.Close()
	for _, id := range doomed {
		if _, err := tx.ExecContext(ctx, "DELETE FROM runs WHERE run_id = ?", id); err != nil {
			return 0, fmt.Errorf("delete run %s: %w", id, err)
		}
	}
	return len(doomed), nil
}

func nullInt(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}
