package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/history"
	"github.com/rdsaudit/rdsaudit/internal/filelock"
	"github.com/rdsaudit/rdsaudit/report"
)

// The output directory, <output_dir>/, holds the run directories <run-id>/, and:
const (
	// LockName is the output directory's lock file. A run holds an exclusive OS lock on
	// it from before it chooses its run ID until after latest.json and retention, so
	// two runs never write into one output directory at once, whatever their history
	// stores. The OS releases it when the process dies.
	LockName = ".rdsaudit.lock"
	// LatestName is the summary of the last complete run (see Latest).
	LatestName = "latest.json"
	// LatestSchema is the version tag of latest.json.
	LatestSchema = "rdsaudit.latest/v1"
)

// ErrOutputLocked: another rdsaudit run holds the output directory's lock (and kept it
// beyond output_lock_wait).
var ErrOutputLocked = errors.New("another rdsaudit run is in progress on this output directory")

// lockOutputDir takes the output directory's lock, waiting up to o.OutputLockWait. A
// refusal names the holder (PID, host, start) and wraps ErrOutputLocked.
func lockOutputDir(ctx context.Context, o Options) (*filelock.Lock, error) {
	if o.Stop != nil { // a stop while waiting for the lock ends the wait
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-o.Stop.Done():
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	path := filepath.Join(o.OutputDir, LockName)
	l, holder, err := filelock.Acquire(ctx, path, filelock.Self("", time.Now()), o.OutputLockWait, func(h filelock.Owner) {
		o.Log.Info().Str("output_dir", o.OutputDir).Str("holder", h.String()).Stringer("wait", o.OutputLockWait).
			Msg("waiting for another run to release the output directory")
	})
	switch {
	case err != nil:
		return nil, fmt.Errorf("lock output directory %s: %w", o.OutputDir, err)
	case l == nil:
		return nil, fmt.Errorf("output directory %s is locked by %s (waited %s, output_lock_wait): %w",
			o.OutputDir, holder, o.OutputLockWait, ErrOutputLocked)
	}
	return l, nil
}

// claimOutputDir records the run ID in the output directory's lock and removes the
// staging directories (and latest.json temporaries) of dead runs: holding the lock, no
// other run is writing here.
func claimOutputDir(l *filelock.Lock, o Options, runID string, log zerolog.Logger) {
	l.SetRunID(runID)
	tmps, _ := filepath.Glob(filepath.Join(o.OutputDir, "."+LatestName+".*.tmp"))
	for _, p := range tmps {
		_ = os.Remove(p)
	}
	removed, err := report.CleanPartials(o.OutputDir, 0)
	for _, p := range removed {
		log.Info().Str("dir", p).Msg("removed the staging directory of a dead run")
	}
	if err != nil {
		log.Warn().Err(err).Msg("could not remove the staging directories of dead runs")
	}
}

// Latest is <output_dir>/latest.json: what the last complete run was and how it went,
// atomically replaced after each complete run (published and recorded in history). A
// file, not a symlink: symlinks need privilege on Windows. `rdsaudit status` reads it.
type Latest struct {
	Schema string `json:"schema"`
	RunID  string `json:"run_id"`
	// Dir is the run directory, relative to the output directory (its name).
	Dir         string          `json:"dir"`
	StartedAt   time.Time       `json:"started_at"`
	FinishedAt  time.Time       `json:"finished_at"`
	ToolVersion string          `json:"tool_version"`
	Verdict     LatestVerdict   `json:"verdict"`
	Coverage    LatestCoverage  `json:"coverage"`
	Partial     *report.Partial `json:"partial,omitempty"` // a run stopped early
}

// LatestVerdict is report.Verdict as latest.json writes it.
type LatestVerdict struct {
	Status   report.VerdictStatus `json:"status"` // pass | fail | incomplete
	Reason   string               `json:"reason"`
	FailOn   string               `json:"fail_on"`
	Blocking int                  `json:"blocking"` // unwaived failures at or above fail_on
}

// LatestCoverage is the run's coverage without the per-host rows.
type LatestCoverage struct {
	Targeted  int                 `json:"targeted"`
	Collected int                 `json:"collected"`
	Failed    int                 `json:"failed"`
	Skipped   int                 `json:"skipped"`
	ByClass   []report.ClassCount `json:"by_class"`
}

// LatestOf summarises a published run for latest.json.
func LatestOf(rep *report.Report) Latest {
	v := rep.Verdict()
	c := rep.Coverage
	by := c.ByClass
	if by == nil {
		by = []report.ClassCount{}
	}
	return Latest{
		Schema: LatestSchema, RunID: rep.Run.ID, Dir: rep.Run.ID,
		StartedAt: rep.Run.StartedAt.UTC(), FinishedAt: rep.Run.FinishedAt.UTC(), ToolVersion: rep.Run.ToolVersion,
		Verdict:  LatestVerdict{Status: v.Status, Reason: v.Reason(), FailOn: v.FailOn.String(), Blocking: v.Blocking},
		Coverage: LatestCoverage{Targeted: c.Targeted, Collected: c.Collected, Failed: c.Failed, Skipped: c.Skipped, ByClass: by},
		Partial:  rep.Run.Partial,
	}
}

// WriteLatest atomically replaces <outDir>/latest.json: a temporary file in the same
// directory, synced, renamed over the old one, and the directory synced.
func WriteLatest(outDir string, l Latest) error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	tmp, err := os.CreateTemp(outDir, "."+LatestName+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Chmod(0o640)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(outDir, LatestName)); err != nil {
		return err
	}
	if d, err := os.Open(outDir); err == nil {
		_ = d.Sync() // not supported for directories on Windows; the rename is done
		d.Close()
	}
	return nil
}

// ReadLatest reads <outDir>/latest.json. A missing file is an error matching
// fs.ErrNotExist: no complete run was published there.
func ReadLatest(outDir string) (*Latest, error) {
	b, err := os.ReadFile(filepath.Join(outDir, LatestName))
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var l Latest
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(outDir, LatestName), err)
	}
	if l.Schema != LatestSchema {
		return nil, fmt.Errorf("%s: schema %q, want %q", filepath.Join(outDir, LatestName), l.Schema, LatestSchema)
	}
	return &l, nil
}

// finishOutputDir runs after a published and recorded run, still under the output
// directory's lock: it replaces latest.json (a run stopped early says so there), then,
// after a complete run only, applies the retention to the run directories, so that
// stopped runs never push complete ones out. A retention failure is logged; it does
// not fail the run.
func finishOutputDir(o Options, rep *report.Report, now time.Time, log zerolog.Logger) error {
	if err := WriteLatest(o.OutputDir, LatestOf(rep)); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(o.OutputDir, LatestName), err)
	}
	if rep.Run.Partial != nil {
		log.Info().Msg("run directory retention not applied: the run was stopped early")
		return nil
	}
	removed, err := PruneRunDirs(o.OutputDir, rep.Run.ID, o.Retention, now)
	for _, p := range removed {
		log.Info().Str("dir", p).Msg("removed a run directory outside the retention")
	}
	if err != nil {
		log.Warn().Err(err).Msg("run directory retention")
	}
	return nil
}

// PruneRunDirs removes the run directories of outDir outside the retention, with
// history's rule (history.Retention): the newest KeepRuns runs and the runs started in
// the last KeepMonths months before now are kept; when both are set a run goes only
// when outside both; both zero keeps all. A run directory is a directory with a
// readable manifest.json (its run's start time orders it); anything else is left
// alone, and so is keep, the run just written. Each doomed directory is first renamed
// to a .partial name, so that a crash mid-removal leaves a staging leftover (cleaned
// by the next run), never a half-deleted run under its name. It returns the removed
// paths. Call it holding the output directory's lock.
func PruneRunDirs(outDir, keep string, r history.Retention, now time.Time) ([]string, error) {
	if r.KeepRuns < 0 || r.KeepMonths < 0 {
		return nil, fmt.Errorf("negative retention (runs %d, months %d)", r.KeepRuns, r.KeepMonths)
	}
	if r.KeepRuns == 0 && r.KeepMonths == 0 {
		return nil, nil
	}
	entries, err := os.ReadDir(outDir)
	if err != nil {
		return nil, err
	}
	type run struct {
		name    string
		started time.Time
	}
	var runs []run
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") { // staging leftovers, hidden entries
			continue
		}
		started, ok := manifestStart(filepath.Join(outDir, e.Name()))
		if !ok {
			continue
		}
		runs = append(runs, run{e.Name(), started})
	}
	sort.Slice(runs, func(i, j int) bool {
		if !runs[i].started.Equal(runs[j].started) {
			return runs[i].started.After(runs[j].started)
		}
		return runs[i].name > runs[j].name
	})
	cutoff := now.UTC().AddDate(0, -r.KeepMonths, 0)
	var removed []string
	var errs []error
	for i, rn := range runs {
		keepByCount := r.KeepRuns > 0 && i < r.KeepRuns
		keepByAge := r.KeepMonths > 0 && !rn.started.Before(cutoff)
		if keepByCount || keepByAge || rn.name == keep {
			continue
		}
		dir := filepath.Join(outDir, rn.name)
		doomed := filepath.Join(outDir, "."+rn.name+".pruned.partial")
		if err := os.Rename(dir, doomed); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.RemoveAll(doomed); err != nil {
			errs = append(errs, err) // the rest is a staging leftover: the next run removes it
			continue
		}
		removed = append(removed, dir)
	}
	return removed, errors.Join(errs...)
}

// manifestStart is the run start recorded in dir's manifest.json.
func manifestStart(dir string) (time.Time, bool) {
	b, err := os.ReadFile(filepath.Join(dir, report.ManifestName))
	if err != nil {
		return time.Time{}, false
	}
	var m report.Manifest
	if json.Unmarshal(b, &m) != nil || m.Schema != report.ManifestSchema || m.Run.StartedAt.IsZero() {
		return time.Time{}, false
	}
	return m.Run.StartedAt, true
}
