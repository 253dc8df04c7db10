package history

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/rdsaudit/rdsaudit/rules"
)

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// latestBefore returns the latest run evaluated before t (excluding runID) and its
// evaluation time, or "". Runs evaluated at the same time are none before the other; among
// them the greatest run ID is the latest.
func latestBefore(ctx context.Context, q querier, t time.Time, runID string) (string, time.Time, error) {
	var id, started string
	err := q.QueryRowContext(ctx, `SELECT run_id, evaluated_at FROM runs WHERE evaluated_at < ? AND run_id <> ?
		ORDER BY evaluated_at DESC, run_id DESC LIMIT 1`, ts(t), runID).Scan(&id, &started)
	if errors.Is(err, sql.ErrNoRows) {
		return "", time.Time{}, nil
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("find previous run: %w", err)
	}
	at, err := parseTS(started)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("run %s: bad evaluated_at %q", id, started)
	}
	return id, at, nil
}

// Load preloads, for the history-dependent rules, the host snapshots of the runs
// evaluated in [now-window, now), and always those of the latest run before now even when
// it is older than the window (RDS-GRACE-003 and -005 compare with the previous audit
// however long ago it was). A window of zero or less loads only the latest run. The
// rules then filter by their own window through rules.History.Previous.
func (s *Store) Load(ctx context.Context, now time.Time, window time.Duration) (rules.History, error) {
	hist := rules.MemHistory{}
	latest, _, err := latestBefore(ctx, s.db, now, "")
	if err != nil {
		return nil, fmt.Errorf("load history from %s: %w", s.path, err)
	}
	if latest == "" {
		return hist, nil
	}
	ids := []string{latest}
	if window > 0 {
		rows, err := s.db.QueryContext(ctx, `SELECT run_id FROM runs WHERE evaluated_at >= ? AND evaluated_at < ? AND run_id <> ?
			ORDER BY evaluated_at DESC, run_id DESC`, ts(now.Add(-window)), ts(now), latest)
		if err != nil {
			return nil, fmt.Errorf("load history from %s: %w", s.path, err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("load history from %s: %w", s.path, err)
			}
			ids = append(ids, id)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("load history from %s: %w", s.path, err)
		}
	}
	for _, id := range ids {
		hosts, err := hostsOf(ctx, s.db, id)
		if err != nil {
			return nil, fmt.Errorf("load history from %s: run %s: %w", s.path, id, err)
		}
		for _, h := range hosts {
			hist.Add(h.Name, h.Snapshot)
		}
	}
	return hist, nil
}

// hostsOf reads a run's host entries, sorted by host key.
func hostsOf(ctx context.Context, q querier, runID string) ([]HostRecord, error) {
	rows, err := q.QueryContext(ctx, `SELECT h.name, h.grp, h.status, h.failure, h.collected, h.mode, h.mode_source,
		h.license_servers, h.grace_days, h.grace_key_written, h.timebomb_sha256, h.os_build, h.install_date, h.collected_at,
		r.evaluated_at FROM hosts h JOIN runs r ON r.run_id = h.run_id WHERE h.run_id = ? ORDER BY h.host`, runID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []HostRecord
	for rows.Next() {
		h, err := scanHost(rows, runID)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

type scanner interface{ Scan(dest ...any) error }

func scanHost(sc scanner, runID string) (HostRecord, error) {
	var (
		h                                    HostRecord
		mode, grace                          sql.NullInt64
		ls, evaluated                        string
		keyWritten, installedDate, collected sql.NullString
	)
	sn := &h.Snapshot
	if err := sc.Scan(&h.Name, &h.Group, &h.Status, &h.Failure, &sn.Collected, &mode, &sn.ModeSource, &ls,
		&grace, &keyWritten, &sn.TimebombSHA256, &sn.OSBuild, &installedDate, &collected, &evaluated); err != nil {
		return h, err
	}
	sn.RunID = runID
	var err error
	if sn.At, err = parseTS(evaluated); err != nil {
		return h, fmt.Errorf("bad evaluated_at %q", evaluated)
	}
	if sn.CollectedAt, err = parseNullTS(collected); err != nil {
		return h, fmt.Errorf("host %s: bad collected_at: %w", h.Name, err)
	}
	if mode.Valid {
		sn.Mode = &mode.Int64
	}
	if grace.Valid {
		sn.GraceDays = &grace.Int64
	}
	if ls != "" {
		if err := json.Unmarshal([]byte(ls), &sn.LicenseServers); err != nil {
			return h, fmt.Errorf("host %s: bad license_servers %q", h.Name, ls)
		}
	}
	if sn.GraceKeyWritten, err = parseNullTS(keyWritten); err != nil {
		return h, fmt.Errorf("host %s: bad grace_key_written: %w", h.Name, err)
	}
	if sn.InstallDate, err = parseNullTS(installedDate); err != nil {
		return h, fmt.Errorf("host %s: bad install_date: %w", h.Name, err)
	}
	return h, nil
}

// findingRow is a stored finding.
type findingRow struct {
	rules.Result
	Status string
}

const findingCols = `finding_id, rule_id, subject_kind, subject_name, subject_group, key, severity, outcome,
	status, waived, message, first_seen, last_seen`

func scanFinding(sc scanner) (findingRow, error) {
	var (
		f           findingRow
		kind, out   string
		sev         int
		first, last string
	)
	if err := sc.Scan(&f.ID, &f.RuleID, &kind, &f.Subject.Name, &f.Subject.Group, &f.Key, &sev, &out,
		&f.Status, &f.Waived, &f.Message, &first, &last); err != nil {
		return f, err
	}
	f.Subject.Kind, f.Severity, f.Outcome = rules.SubjectKind(kind), rules.Severity(sev), rules.Outcome(out)
	if f.Status == rules.StatusNew || f.Status == rules.StatusPersisting {
		f.Lifecycle = f.Status
	}
	fs, err := parseTS(first)
	if err != nil {
		return f, fmt.Errorf("finding %s: bad first_seen %q", f.ID, first)
	}
	ls, err := parseTS(last)
	if err != nil {
		return f, fmt.Errorf("finding %s: bad last_seen %q", f.ID, last)
	}
	f.FirstSeen, f.LastSeen = &fs, &ls
	return f, nil
}

// findingsOf reads a run's findings by finding ID.
func findingsOf(ctx context.Context, q querier, runID string) (map[string]findingRow, error) {
	list, err := findingList(ctx, q, runID)
	if err != nil {
		return nil, err
	}
	m := make(map[string]findingRow, len(list))
	for _, f := range list {
		m[f.ID] = f
	}
	return m, nil
}

// findingList reads a run's findings ordered by rule, subject and key.
func findingList(ctx context.Context, q querier, runID string) ([]findingRow, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+findingCols+` FROM findings WHERE run_id = ?
		ORDER BY rule_id, subject_key, key, finding_id`, runID)
	if err != nil {
		return nil, fmt.Errorf("read findings of run %s: %w", runID, err)
	}
	defer rows.Close()
	var out []findingRow
	for rows.Next() {
		f, err := scanFinding(rows)
		if err != nil {
			return nil, fmt.Errorf("read findings of run %s: %w", runID, err)
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// Annotate compares this run's findings (results with outcome fail or error) with the
// latest run evaluated before at (the run's evaluation time). A finding that was a finding in that run is persisting
// and keeps its first-seen; any other is new, first seen at. LastSeen is at for both.
// Pass and not-applicable results are left alone. Results without an ID get
// rules.FindingID. The drift lists new and persisting finding IDs and the previous run's
// findings that are no longer findings (resolved, including those whose subject is no
// longer in the run). With no earlier run every finding is new and nothing is resolved.
func (s *Store) Annotate(ctx context.Context, results []rules.Result, at time.Time) (*rules.Drift, error) {
	at = at.UTC()
	prevID, prevAt, err := latestBefore(ctx, s.db, at, "")
	if err != nil {
		return nil, fmt.Errorf("annotate findings from %s: %w", s.path, err)
	}
	prev := map[string]findingRow{}
	if prevID != "" {
		if prev, err = findingsOf(ctx, s.db, prevID); err != nil {
			return nil, fmt.Errorf("annotate findings from %s: %w", s.path, err)
		}
	}
	d := &rules.Drift{PreviousRunID: prevID, PreviousAt: prevAt, New: []string{}, Persisting: []string{}, Resolved: []rules.Result{}}
	current := map[string]bool{}
	for i := range results {
		r := &results[i]
		if r.ID == "" {
			r.ID = rules.FindingID(r.RuleID, r.Subject, r.Key)
		}
		if !r.IsFinding() {
			continue
		}
		current[r.ID] = true
		last := at
		r.LastSeen = &last
		if p, ok := prev[r.ID]; ok {
			first := *p.FirstSeen
			r.FirstSeen, r.Lifecycle = &first, rules.StatusPersisting
			d.Persisting = append(d.Persisting, r.ID)
		} else {
			first := at
			r.FirstSeen, r.Lifecycle = &first, rules.StatusNew
			d.New = append(d.New, r.ID)
		}
	}
	for id, p := range prev {
		if !current[id] {
			d.Resolved = append(d.Resolved, p.Result)
		}
	}
	sort.Strings(d.New)
	sort.Strings(d.Persisting)
	sort.Slice(d.Resolved, func(i, j int) bool {
		a, b := d.Resolved[i], d.Resolved[j]
		if a.RuleID != b.RuleID {
			return a.RuleID < b.RuleID
		}
		if a.Subject.Name != b.Subject.Name {
			return a.Subject.Name < b.Subject.Name
		}
		return a.ID < b.ID
	})
	return d, nil
}
