package history

import (
	"context"
	"fmt"
	"time"
)

// Per User CAL counts per run, read from Active Directory (issue 15), so month-over-month
// change can be shown. Kept in their own table, created on first use outside the
// numbered migrations (another change owns those): rows of runs that retention removed
// are dropped when the next counts are recorded.

// PerUserCount is one run's count of users holding CALs of one version.
type PerUserCount struct {
	RunID     string    `json:"run_id"`
	Started   time.Time `json:"started_at"`
	Version   string    `json:"version"`
	VersionID int64     `json:"version_id,omitempty"`
	Active    int       `json:"active"`
	Expired   int       `json:"expired"`
	Unknown   int       `json:"unknown_expiry"`
	// Complete: every configured domain was read; otherwise the counts are lower bounds.
	Complete bool `json:"complete"`
}

const perUserTable = `CREATE TABLE IF NOT EXISTS per_user_counts (
	run_id     TEXT NOT NULL,
	started_at TEXT NOT NULL,
	version    TEXT NOT NULL,
	version_id INTEGER NOT NULL DEFAULT 0,
	active     INTEGER NOT NULL,
	expired    INTEGER NOT NULL,
	unknown    INTEGER NOT NULL,
	complete   INTEGER NOT NULL,
	PRIMARY KEY (run_id, version)
)`

// RecordPerUser stores a recorded run's Per User counts (replacing any for the run).
func (s *Store) RecordPerUser(ctx context.Context, runID string, started time.Time, counts []PerUserCount) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record per-user counts of run %s in %s: %w", runID, s.path, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, perUserTable); err != nil {
		return fmt.Errorf("record per-user counts: %w", err)
	}
	var known int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM runs WHERE run_id = ?", runID).Scan(&known); err != nil {
		return fmt.Errorf("record per-user counts: %w", err)
	}
	if known == 0 {
		return fmt.Errorf("record per-user counts: run %s is not recorded in %s", runID, s.path)
	}
	for _, q := range []string{
		"DELETE FROM per_user_counts WHERE run_id = ?",
		"DELETE FROM per_user_counts WHERE run_id NOT IN (SELECT run_id FROM runs) AND run_id <> ?",
	} {
		if _, err := tx.ExecContext(ctx, q, runID); err != nil {
			return fmt.Errorf("record per-user counts: %w", err)
		}
	}
	for _, c := range counts {
		if _, err := tx.ExecContext(ctx, `INSERT INTO per_user_counts (run_id, started_at, version, version_id, active, expired, unknown, complete)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, runID, ts(started), c.Version, c.VersionID, c.Active, c.Expired, c.Unknown, c.Complete); err != nil {
			return fmt.Errorf("record per-user counts: %w", err)
		}
	}
	return tx.Commit()
}

// PerUserCounts returns every recorded run's Per User counts, oldest run first, for
// runs still in the history.
func (s *Store) PerUserCounts(ctx context.Context) ([]PerUserCount, error) {
	if _, err := s.db.ExecContext(ctx, perUserTable); err != nil {
		return nil, fmt.Errorf("read per-user counts: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT p.run_id, p.started_at, p.version, p.version_id, p.active, p.expired, p.unknown, p.complete
		FROM per_user_counts p JOIN runs r ON r.run_id = p.run_id ORDER BY p.started_at, p.run_id, p.version_id = 0, p.version_id, p.version`)
	if err != nil {
		return nil, fmt.Errorf("read per-user counts: %w", err)
	}
	defer rows.Close()
	var out []PerUserCount
	for rows.Next() {
		var c PerUserCount
		var started string
		if err := rows.Scan(&c.RunID, &started, &c.Version, &c.VersionID, &c.Active, &c.Expired, &c.Unknown, &c.Complete); err != nil {
			return nil, fmt.Errorf("read per-user counts: %w", err)
		}
		if c.Started, err = parseTS(started); err != nil {
			return nil, fmt.Errorf("read per-user counts: run %s: %w", c.RunID, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
