package history

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/rdsaudit/rdsaudit/report"
)

// Per User CAL counts per run, read from Active Directory (issue 15), so month-over-month
// change can be shown. They are part of the run (RunRecord.PerUser): written in the
// run's transaction, placed in the timeline by the run's evaluation time, and deleted
// with the run (table per_user_counts, schema version 3).

// PerUserCount is one run's count of users holding CALs of one version.
type PerUserCount struct {
	RunID string `json:"run_id"`
	// Started and EvaluatedAt are the run's (read from it, not stored with the counts):
	// when it was made, and its place in the timeline.
	Started     time.Time `json:"started_at"`
	EvaluatedAt time.Time `json:"evaluated_at"`
	Version     string    `json:"version"`
	VersionID   int64     `json:"version_id,omitempty"`
	Active      int       `json:"active"`
	Expired     int       `json:"expired"`
	Unknown     int       `json:"unknown_expiry"`
	// Complete: every configured domain was read; otherwise the counts are lower bounds.
	Complete bool `json:"complete"`
}

// PerUserOf is a run's Per User counts per version, for RunRecord.PerUser: nil without a
// directory (pu or its summary nil), so that the run records none.
func PerUserOf(pu *report.PerUser) []PerUserCount {
	if pu == nil || pu.Summary == nil {
		return nil
	}
	counts := make([]PerUserCount, 0, len(pu.Versions))
	for _, v := range pu.Versions {
		counts = append(counts, PerUserCount{Version: v.Version, VersionID: v.VersionID,
			Active: v.Active, Expired: v.Expired, Unknown: v.Unknown, Complete: pu.Known()})
	}
	return counts
}

// insertPerUserTx writes a run's Per User counts inside the transaction that records it.
func insertPerUserTx(ctx context.Context, tx *sql.Tx, runID string, counts []PerUserCount) error {
	if len(counts) == 0 {
		return nil
	}
	st, err := tx.PrepareContext(ctx, `INSERT INTO per_user_counts (run_id, version, version_id, active, expired, unknown, complete)
		VALUES (?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, c := range counts {
		if c.Version == "" {
			return fmt.Errorf("per-user count with no version")
		}
		if _, err := st.ExecContext(ctx, runID, c.Version, c.VersionID, c.Active, c.Expired, c.Unknown, c.Complete); err != nil {
			return fmt.Errorf("insert per-user count of version %s: %w", c.Version, err)
		}
	}
	return nil
}

// PerUserCounts returns every recorded run's Per User counts in timeline order (by the
// run's evaluation time, then run ID, as Runs), versions of known ID first by ID.
func (s *Store) PerUserCounts(ctx context.Context) ([]PerUserCount, error) {
	return s.perUserCounts(ctx, "")
}

// PerUserCountsOf returns one run's Per User counts (none when it recorded none: it
// had no directory), versions of known ID first by ID.
func (s *Store) PerUserCountsOf(ctx context.Context, runID string) ([]PerUserCount, error) {
	if runID == "" {
		return nil, nil
	}
	return s.perUserCounts(ctx, runID)
}

func (s *Store) perUserCounts(ctx context.Context, runID string) ([]PerUserCount, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT p.run_id, r.started_at, r.evaluated_at, p.version, p.version_id, p.active, p.expired, p.unknown, p.complete
		FROM per_user_counts p JOIN runs r ON r.run_id = p.run_id
		WHERE ? = '' OR p.run_id = ?
		ORDER BY r.evaluated_at, r.run_id, p.version_id = 0, p.version_id, p.version`, runID, runID)
	if err != nil {
		return nil, fmt.Errorf("read per-user counts: %w", err)
	}
	defer rows.Close()
	var out []PerUserCount
	for rows.Next() {
		var c PerUserCount
		var started, evaluated string
		if err := rows.Scan(&c.RunID, &started, &evaluated, &c.Version, &c.VersionID, &c.Active, &c.Expired, &c.Unknown, &c.Complete); err != nil {
			return nil, fmt.Errorf("read per-user counts: %w", err)
		}
		if c.Started, err = parseTS(started); err != nil {
			return nil, fmt.Errorf("read per-user counts: run %s: %w", c.RunID, err)
		}
		if c.EvaluatedAt, err = parseTS(evaluated); err != nil {
			return nil, fmt.Errorf("read per-user counts: run %s: bad evaluated_at: %w", c.RunID, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ReportCounts is counts as the report's drift takes them (report.PerUserCount).
func ReportCounts(counts []PerUserCount) []report.PerUserCount {
	if len(counts) == 0 {
		return nil
	}
	out := make([]report.PerUserCount, len(counts))
	for i, c := range counts {
		out[i] = report.PerUserCount{Version: c.Version, Active: c.Active, Expired: c.Expired, Unknown: c.Unknown, Complete: c.Complete}
	}
	return out
}
