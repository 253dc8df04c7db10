package history

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rdsaudit/rdsaudit/facts"
	"github.com/rdsaudit/rdsaudit/report"
	"github.com/rdsaudit/rdsaudit/rules"
)

// RunInfo is a recorded run's metadata with its finding counts.
type RunInfo struct {
	ID      string
	Started time.Time // when the run was made
	Ended   *time.Time
	// EvaluatedAt is the run's place in the timeline (its --as-of time when Pinned);
	// Window the collection window of its evidence (nil: unknown).
	EvaluatedAt time.Time
	Pinned      bool
	Window      *report.Window
	ToolVersion string
	RuleSetHash string
	ConfigHash  string
	Coverage    Coverage
	Origin      string
	// Failing findings (outcome fail, not waived) by severity; errors and waived apart.
	BySeverity map[rules.Severity]int
	Errors     int
	Waived     int
}

// Runs lists the recorded runs in timeline order: oldest evaluation time first.
func (s *Store) Runs(ctx context.Context) ([]RunInfo, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT run_id, started_at, ended_at, tool_version, ruleset_hash, config_hash,
		targeted, collected, failed, origin, evaluated_at, pinned, window_earliest, window_latest
		FROM runs ORDER BY evaluated_at, run_id`)
	if err != nil {
		return nil, fmt.Errorf("list runs in %s: %w", s.path, err)
	}
	var out []RunInfo
	idx := map[string]int{}
	for rows.Next() {
		var (
			r                    RunInfo
			started, evaluated   string
			ended, wEarly, wLate sql.NullString
		)
		if err := rows.Scan(&r.ID, &started, &ended, &r.ToolVersion, &r.RuleSetHash, &r.ConfigHash,
			&r.Coverage.Targeted, &r.Coverage.Collected, &r.Coverage.Failed, &r.Origin,
			&evaluated, &r.Pinned, &wEarly, &wLate); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list runs in %s: %w", s.path, err)
		}
		if r.Started, err = parseTS(started); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list runs in %s: run %s: bad started_at %q", s.path, r.ID, started)
		}
		if r.Ended, err = parseNullTS(ended); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list runs in %s: run %s: bad ended_at", s.path, r.ID)
		}
		if r.EvaluatedAt, err = parseTS(evaluated); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list runs in %s: run %s: bad evaluated_at %q", s.path, r.ID, evaluated)
		}
		early, err1 := parseNullTS(wEarly)
		late, err2 := parseNullTS(wLate)
		if err1 != nil || err2 != nil {
			rows.Close()
			return nil, fmt.Errorf("list runs in %s: run %s: bad collection window", s.path, r.ID)
		}
		if early != nil && late != nil {
			r.Window = &report.Window{Earliest: *early, Latest: *late}
		}
		r.BySeverity = map[rules.Severity]int{}
		idx[r.ID] = len(out)
		out = append(out, r)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("list runs in %s: %w", s.path, err)
	}
	rows, err = s.db.QueryContext(ctx, `SELECT run_id, outcome, waived, severity, COUNT(*) FROM findings
		GROUP BY run_id, outcome, waived, severity`)
	if err != nil {
		return nil, fmt.Errorf("count findings in %s: %w", s.path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, outcome string
			waived      bool
			sev, n      int
		)
		if err := rows.Scan(&id, &outcome, &waived, &sev, &n); err != nil {
			return nil, fmt.Errorf("count findings in %s: %w", s.path, err)
		}
		i, ok := idx[id]
		if !ok {
			continue
		}
		switch {
		case waived:
			out[i].Waived += n
		case outcome == string(rules.Error):
			out[i].Errors += n
		default:
			out[i].BySeverity[rules.Severity(sev)] += n
		}
	}
	return out, rows.Err()
}

// TimelineEntry is one run's view of a host.
type TimelineEntry struct {
	RunID    string
	At       time.Time // the run's evaluation time
	InRun    bool      // the host was targeted by the run
	Host     HostRecord
	Findings []rules.Result // the host's findings in that run (Lifecycle/FirstSeen set)
}

// Timeline returns the host's entries over all runs that targeted it or have a finding
// about it, oldest evaluation time first. A host in no run is an error wrapping ErrUnknownHost.
func (s *Store) Timeline(ctx context.Context, host string) ([]TimelineEntry, error) {
	key := strings.ToLower(strings.TrimSpace(host))
	runs, err := s.Runs(ctx)
	if err != nil {
		return nil, err
	}
	byRun := map[string]*TimelineEntry{}
	var out []*TimelineEntry
	entry := func(id string, at time.Time) *TimelineEntry {
		if e := byRun[id]; e != nil {
			return e
		}
		e := &TimelineEntry{RunID: id, At: at}
		byRun[id] = e
		out = append(out, e)
		return e
	}
	started := map[string]time.Time{}
	for _, r := range runs {
		started[r.ID] = r.EvaluatedAt
	}
	rows, err := s.db.QueryContext(ctx, `SELECT h.run_id, h.name, h.grp, h.status, h.failure, h.collected, h.mode, h.mode_source,
		h.license_servers, h.grace_days, h.grace_key_written, h.timebomb_sha256, h.os_build, h.install_date, h.collected_at,
		r.evaluated_at FROM hosts h JOIN runs r ON r.run_id = h.run_id WHERE h.host = ?`, key)
	if err != nil {
		return nil, fmt.Errorf("read timeline of %s from %s: %w", host, s.path, err)
	}
	for rows.Next() {
		var runID string
		h, err := scanHost(prefixScanner{rows, &runID}, "")
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("read timeline of %s from %s: %w", host, s.path, err)
		}
		h.Snapshot.RunID = runID
		e := entry(runID, started[runID])
		e.InRun, e.Host = true, h
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("read timeline of %s from %s: %w", host, s.path, err)
	}
	frows, err := s.db.QueryContext(ctx, `SELECT run_id, `+findingCols+` FROM findings WHERE subject_key = ?
		ORDER BY rule_id, key, finding_id`, key)
	if err != nil {
		return nil, fmt.Errorf("read timeline of %s from %s: %w", host, s.path, err)
	}
	defer frows.Close()
	for frows.Next() {
		var runID string
		f, err := scanFinding(prefixScanner{frows, &runID})
		if err != nil {
			return nil, fmt.Errorf("read timeline of %s from %s: %w", host, s.path, err)
		}
		if f.Subject.Kind != rules.SubjectHost {
			continue
		}
		e := entry(runID, started[runID])
		e.Findings = append(e.Findings, f.Result)
	}
	if err := frows.Err(); err != nil {
		return nil, fmt.Errorf("read timeline of %s from %s: %w", host, s.path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("host %s: %w (%s)", host, ErrUnknownHost, s.path)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.Before(out[j].At)
		}
		return out[i].RunID < out[j].RunID
	})
	res := make([]TimelineEntry, len(out))
	for i, e := range out {
		res[i] = *e
	}
	return res, nil
}

// prefixScanner scans a leading column into first and the rest into dest.
type prefixScanner struct {
	rows  *sql.Rows
	first any
}

func (p prefixScanner) Scan(dest ...any) error {
	return p.rows.Scan(append([]any{p.first}, dest...)...)
}

func intStr(p *int64) string {
	if p == nil {
		return ""
	}
	return strconv.FormatInt(*p, 10)
}

func timeStr(p *time.Time) string {
	if p == nil {
		return ""
	}
	return p.UTC().Format("2006-01-02 15:04:05")
}

// RunDiff is what changed between two runs.
type RunDiff struct {
	A, B         RunInfo
	New          []rules.Result // findings in B, not in A
	Resolved     []rules.Result // findings in A, not in B
	Changed      []FindingChange
	HostsAdded   []string
	HostsRemoved []string
	HostChanges  []FactChange
}

// FindingChange is a finding in both runs whose severity or outcome changed.
type FindingChange struct {
	ID, RuleID, Subject string
	Field, A, B         string
}

// FactChange is one host fact that differs between two runs.
type FactChange struct {
	Host, Field, A, B string
}

// DiffRuns compares two recorded runs.
func (s *Store) DiffRuns(ctx context.Context, runA, runB string) (*RunDiff, error) {
	runs, err := s.Runs(ctx)
	if err != nil {
		return nil, err
	}
	d := &RunDiff{}
	var okA, okB bool
	for _, r := range runs {
		if r.ID == runA {
			d.A, okA = r, true
		}
		if r.ID == runB {
			d.B, okB = r, true
		}
	}
	for _, m := range []struct {
		id string
		ok bool
	}{{runA, okA}, {runB, okB}} {
		if !m.ok {
			return nil, fmt.Errorf("diff: run %s: %w (%s)", m.id, ErrUnknownRun, s.path)
		}
	}
	fa, err := findingList(ctx, s.db, runA)
	if err != nil {
		return nil, err
	}
	fb, err := findingList(ctx, s.db, runB)
	if err != nil {
		return nil, err
	}
	ma, mb := map[string]findingRow{}, map[string]findingRow{}
	for _, f := range fa {
		ma[f.ID] = f
	}
	for _, f := range fb {
		mb[f.ID] = f
		a, ok := ma[f.ID]
		if !ok {
			d.New = append(d.New, f.Result)
			continue
		}
		if a.Severity != f.Severity {
			d.Changed = append(d.Changed, FindingChange{f.ID, f.RuleID, f.Subject.String(), "severity", a.Severity.String(), f.Severity.String()})
		}
		if a.Outcome != f.Outcome {
			d.Changed = append(d.Changed, FindingChange{f.ID, f.RuleID, f.Subject.String(), "outcome", string(a.Outcome), string(f.Outcome)})
		}
		if a.Waived != f.Waived {
			d.Changed = append(d.Changed, FindingChange{f.ID, f.RuleID, f.Subject.String(), "waived", strconv.FormatBool(a.Waived), strconv.FormatBool(f.Waived)})
		}
	}
	for _, f := range fa {
		if _, ok := mb[f.ID]; !ok {
			d.Resolved = append(d.Resolved, f.Result)
		}
	}
	ha, err := hostsOf(ctx, s.db, runA)
	if err != nil {
		return nil, fmt.Errorf("diff: run %s: %w", runA, err)
	}
	hb, err := hostsOf(ctx, s.db, runB)
	if err != nil {
		return nil, fmt.Errorf("diff: run %s: %w", runB, err)
	}
	hostA := map[string]HostRecord{}
	for _, h := range ha {
		hostA[strings.ToLower(h.Name)] = h
	}
	inB := map[string]bool{}
	for _, h := range hb {
		k := strings.ToLower(h.Name)
		inB[k] = true
		a, ok := hostA[k]
		if !ok {
			d.HostsAdded = append(d.HostsAdded, h.Name)
			continue
		}
		for _, c := range factChanges(a, h) {
			d.HostChanges = append(d.HostChanges, FactChange{Host: h.Name, Field: c[0], A: c[1], B: c[2]})
		}
	}
	for _, h := range ha {
		if !inB[strings.ToLower(h.Name)] {
			d.HostsRemoved = append(d.HostsRemoved, h.Name)
		}
	}
	return d, nil
}

// factChanges lists [field, a, b] for each compared fact that differs.
func factChanges(a, b HostRecord) [][3]string {
	sa, sb := a.Snapshot, b.Snapshot
	fields := []struct{ name, a, b string }{
		{"status", a.Status, b.Status},
		{"collected", strconv.FormatBool(sa.Collected), strconv.FormatBool(sb.Collected)},
		{"mode", modeStr(sa.Mode), modeStr(sb.Mode)},
		{"mode_source", sa.ModeSource, sb.ModeSource},
		{"license_servers", strings.Join(sa.LicenseServers, ","), strings.Join(sb.LicenseServers, ",")},
		{"grace_days", intStr(sa.GraceDays), intStr(sb.GraceDays)},
		{"grace_key_written", timeStr(sa.GraceKeyWritten), timeStr(sb.GraceKeyWritten)},
		{"timebomb_sha256", sa.TimebombSHA256, sb.TimebombSHA256},
		{"os_build", sa.OSBuild, sb.OSBuild},
		{"install_date", timeStr(sa.InstallDate), timeStr(sb.InstallDate)},
	}
	var out [][3]string
	for _, f := range fields {
		// Facts of a host not collected in one of the runs are unknown, not changed.
		if f.name != "status" && f.name != "collected" && (!sa.Collected || !sb.Collected) {
			continue
		}
		if f.a != f.b {
			out = append(out, [3]string{f.name, f.a, f.b})
		}
	}
	return out
}

func modeStr(m *int64) string {
	if m == nil {
		return ""
	}
	return facts.ModeName(m)
}
