package monitor

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rdsaudit/rdsaudit/report"
	"github.com/rdsaudit/rdsaudit/rules"
)

// Metric names. Every name starts with rdsaudit_; times are Unix seconds.
const (
	MetricBuildInfo          = "rdsaudit_build_info"
	MetricLastRunTimestamp   = "rdsaudit_last_run_timestamp_seconds"
	MetricLastRunDuration    = "rdsaudit_last_run_duration_seconds"
	MetricLastRunSuccess     = "rdsaudit_last_run_success"
	MetricLastSuccessTime    = "rdsaudit_last_success_timestamp_seconds"
	MetricLastRunVerdict     = "rdsaudit_last_run_verdict"
	MetricLastRunPartial     = "rdsaudit_last_run_partial"
	MetricHostsTargeted      = "rdsaudit_hosts_targeted"
	MetricHostsCollected     = "rdsaudit_hosts_collected"
	MetricHostsFailed        = "rdsaudit_hosts_failed"
	MetricFindings           = "rdsaudit_findings"
	MetricFindingsWaived     = "rdsaudit_findings_waived"
	MetricFindingsBlocking   = "rdsaudit_findings_blocking"
	MetricResultsNotChecked  = "rdsaudit_results_not_checked"
	MetricCALShortfall       = "rdsaudit_cal_shortfall"
	textfileMode             = 0o640
	textfileStagePattern     = ".*.tmp" // after the file's name: does not end in .prom, the collector ignores it
	verdictLabel, classLabel = "verdict", "class"
)

// Verdicts lists the values of rdsaudit_last_run_verdict's label, one of which is 1.
func Verdicts() []report.VerdictStatus {
	return []report.VerdictStatus{report.VerdictPass, report.VerdictFail, report.VerdictIncomplete}
}

// Registry builds the metrics of one run's outcome in a new registry. lastSuccess is
// the finish time (Unix seconds) of the last complete run before this one, 0 if none: a
// failed run keeps it, so that "no complete audit for 35 days" can be alerted on.
// The per-run figures (hosts, findings, CAL shortfall) are present only when the run
// was published.
func Registry(b BuildInfo, o Outcome, lastSuccess float64) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		reg.MustRegister(g)
		return g
	}
	vec := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		reg.MustRegister(g)
		return g
	}
	vec(MetricBuildInfo, "rdsaudit build information; the value is always 1.", "version", "revision", "goversion").
		WithLabelValues(b.Version, b.Revision, b.GoVersion).Set(1)

	gauge(MetricLastRunTimestamp, "When the last run (complete or failed) finished, in Unix seconds.").
		Set(unix(o.Finished))
	gauge(MetricLastRunDuration, "How long the last run took, in seconds.").
		Set(max(o.Finished.Sub(o.Started).Seconds(), 0))
	success := gauge(MetricLastRunSuccess, "1 when the last run was published complete and recorded (whatever its verdict), "+
		"0 when it failed or was stopped.")
	last := gauge(MetricLastSuccessTime, "When the last complete run finished, in Unix seconds; 0 if none yet.")
	last.Set(lastSuccess)
	if o.Complete() {
		success.Set(1)
		last.Set(unix(o.Finished))
	}

	r := o.Result
	if r == nil || r.Report == nil {
		return reg
	}
	rep := r.Report
	gauge(MetricLastRunPartial, "1 when the last published run was stopped before every host was collected (published partial), else 0.").
		Set(b2f(o.Partial()))
	v := rep.Verdict()
	verdict := vec(MetricLastRunVerdict, "The last published run's verdict: 1 for the verdict label it had, 0 for the others.", verdictLabel)
	for _, s := range Verdicts() {
		verdict.WithLabelValues(string(s)).Set(b2f(s == v.Status))
	}

	c := rep.Coverage
	gauge(MetricHostsTargeted, "Inventory hosts the last published run targeted.").Set(float64(c.Targeted))
	gauge(MetricHostsCollected, "Hosts the last published run collected evidence from.").Set(float64(c.Collected))
	failed := vec(MetricHostsFailed, "Hosts the last published run did not collect (failed or skipped), by failure class.", classLabel)
	for _, cc := range c.ByClass {
		failed.WithLabelValues(string(cc.Class)).Set(float64(cc.Count))
	}

	findings := vec(MetricFindings, "Unwaived findings (failed rule results) of the last published run, by severity.", "severity")
	waived := vec(MetricFindingsWaived, "Waived findings of the last published run, by severity.", "severity")
	for s := rules.SevInfo; s <= rules.SevCritical; s++ {
		findings.WithLabelValues(s.String())
		waived.WithLabelValues(s.String())
	}
	for _, sc := range rep.Severities {
		findings.WithLabelValues(sc.Severity.String()).Set(float64(sc.Findings))
		waived.WithLabelValues(sc.Severity.String()).Set(float64(sc.Waived))
	}
	gauge(MetricFindingsBlocking, "Unwaived findings at or above the rule set's fail_on in the last published run.").
		Set(float64(v.Blocking))
	gauge(MetricResultsNotChecked, "Rule results of the last published run that could not be checked (evidence missing).").
		Set(float64(rep.Score.Errors))

	short := vec(MetricCALShortfall, "CAL shortfall of the last published run by CAL type and version: "+
		"positive when usage exceeds the entitlement, negative for a surplus.", "cal_type", "version")
	for _, p := range rep.Position {
		if p.Shortfall != nil {
			short.WithLabelValues(p.CALType, p.Version).Add(float64(*p.Shortfall))
		}
	}
	return reg
}

// WriteTextfile writes the metrics of o to path atomically, with mode 0640: gathered
// from the registry and encoded in the text format into a staging file next to it (a
// name the textfile collector ignores) that is 0640 before it holds anything, synced,
// then renamed once onto path. (Not prometheus.WriteToTextfile: its file is 0644 until
// renamed, so it would be world-readable for a moment, and it does not sync.) The last
// success time is carried over from the file being replaced.
func WriteTextfile(path string, b BuildInfo, o Outcome) (err error) {
	reg := Registry(b, o, LastSuccess(path))
	mfs, err := reg.Gather()
	if err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+textfileStagePattern)
	if err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	stage := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(stage)
			err = fmt.Errorf("write metrics: %w", err)
		}
	}()
	if err := f.Chmod(textfileMode); err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(stage, path)
}

// LastSuccess reads rdsaudit_last_success_timestamp_seconds from an existing textfile,
// or 0 when there is none (or it cannot be parsed).
func LastSuccess(path string) float64 {
	mfs, err := ParseTextfile(path)
	if err != nil {
		return 0
	}
	if mf := mfs[MetricLastSuccessTime]; mf != nil && len(mf.GetMetric()) == 1 {
		return mf.GetMetric()[0].GetGauge().GetValue()
	}
	return 0
}

// ParseTextfile parses a textfile with the Prometheus text parser.
func ParseTextfile(path string) (map[string]*MetricFamily, error) {
	f, err := os.Open(filepath.Clean(path))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(f)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("parse %s", path), err)
	}
	return mfs, nil
}

// MetricFamily is a parsed metric family.
type MetricFamily = dto.MetricFamily

// unix is t in Unix seconds (millisecond precision), 0 for the zero time.
func unix(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixMilli()) / 1000
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
