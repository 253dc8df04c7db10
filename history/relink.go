package history

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/rdsaudit/rdsaudit/rules"
)

// relinkTx recomputes what depends on the order of runs after the run id (evaluated at
// evalAt) was inserted: for each run evaluated later, oldest first, every finding's
// first-seen and new/persisting status from the run now before it (a finding of that run
// too: persisting, first seen when it was there; else new, first seen at the run's own
// evaluation time). With self (an imported run, whose report's first-seen came from
// another store or none) the run itself is relinked first, when a run precedes it. A run
// with no run before it keeps what it recorded (its report may know of runs this store
// lacks). Waived findings keep status waived; last-seen never changes.
//
// The result is the same whatever the order in which runs were recorded: each run's
// findings depend only on the run before it, recomputed in timeline order.
func (s *Store) relinkTx(ctx context.Context, tx *sql.Tx, id string, evalAt time.Time, self bool) error {
	later, err := runsAfter(ctx, tx, evalAt, id)
	if err != nil {
		return err
	}
	if self {
		later = append([]timelineRun{{id, evalAt}}, later...)
	}
	if len(later) == 0 {
		return nil
	}
	up, err := tx.PrepareContext(ctx, "UPDATE findings SET first_seen = ?, status = ? WHERE run_id = ? AND finding_id = ?")
	if err != nil {
		return err
	}
	defer up.Close()
	relinked := 0
	for _, r := range later {
		prevID, _, err := latestBefore(ctx, tx, r.at, r.id)
		if err != nil {
			return err
		}
		if prevID == "" {
			continue
		}
		prev, err := findingsOf(ctx, tx, prevID)
		if err != nil {
			return err
		}
		cur, err := findingList(ctx, tx, r.id)
		if err != nil {
			return err
		}
		for _, f := range cur {
			first, status := r.at, rules.StatusNew
			if p, ok := prev[f.ID]; ok {
				first, status = *p.FirstSeen, rules.StatusPersisting
			}
			if f.Waived {
				status = rules.StatusWaived
			}
			if first.Equal(*f.FirstSeen) && status == f.Status {
				continue
			}
			if _, err := up.ExecContext(ctx, ts(first), status, r.id, f.ID); err != nil {
				return fmt.Errorf("relink finding %s of run %s: %w", f.ID, r.id, err)
			}
		}
		relinked++
		s.hook("relinked", relinked)
	}
	return nil
}

// timelineRun is a run's ID and evaluation time.
type timelineRun struct {
	id string
	at time.Time
}

// runsAfter lists the runs evaluated after t (excluding runID), oldest first.
func runsAfter(ctx context.Context, q querier, t time.Time, runID string) ([]timelineRun, error) {
	rows, err := q.QueryContext(ctx, `SELECT run_id, evaluated_at FROM runs WHERE evaluated_at > ? AND run_id <> ?
		ORDER BY evaluated_at, run_id`, ts(t), runID)
	if err != nil {
		return nil, fmt.Errorf("find later runs: %w", err)
	}
	defer rows.Close()
	var out []timelineRun
	for rows.Next() {
		var id, at string
		if err := rows.Scan(&id, &at); err != nil {
			return nil, fmt.Errorf("find later runs: %w", err)
		}
		t, err := parseTS(at)
		if err != nil {
			return nil, fmt.Errorf("run %s: bad evaluated_at %q", id, at)
		}
		out = append(out, timelineRun{id, t})
	}
	return out, rows.Err()
}

// Findings returns a recorded run's findings (outcome fail or error, waived included)
// ordered by rule, subject and key, with the first-seen, last-seen and lifecycle the
// history holds now. An unknown run is an error wrapping ErrUnknownRun.
func (s *Store) Findings(ctx context.Context, runID string) ([]rules.Result, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM runs WHERE run_id = ?", runID).Scan(&n); err != nil {
		return nil, fmt.Errorf("read run %s from %s: %w", runID, s.path, err)
	}
	if n == 0 {
		return nil, fmt.Errorf("run %s: %w (%s)", runID, ErrUnknownRun, s.path)
	}
	list, err := findingList(ctx, s.db, runID)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.path, err)
	}
	out := make([]rules.Result, len(list))
	for i, f := range list {
		out[i] = f.Result
	}
	return out, nil
}
