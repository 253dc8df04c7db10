package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rdsaudit/rdsaudit/facts"
	"github.com/rdsaudit/rdsaudit/history"
	"github.com/rdsaudit/rdsaudit/report"
	"github.com/rdsaudit/rdsaudit/rules"
)

// printRuns prints the recorded runs in timeline order (oldest evaluation time first):
// ID, when it was evaluated (pinned: by --as-of), when it was made, the collection window
// of its evidence, coverage, and failing findings by severity (waived and error findings
// counted apart).
func printRuns(w io.Writer, storePath string, runs []history.RunInfo) error {
	if len(runs) == 0 {
		_, err := fmt.Fprintf(w, "no runs recorded in %s\n", storePath)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tEVALUATED (UTC)\tPINNED\tMADE (UTC)\tEVIDENCE COLLECTED (UTC)\tORIGIN\tTARGETED\tCOLLECTED\tFAILED\tCRITICAL\tHIGH\tMEDIUM\tLOW\tINFO\tERRORS\tWAIVED")
	for _, r := range runs {
		pinned := "no"
		if r.Pinned {
			pinned = "as-of"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", r.ID, evaluated(r).Format(minute), pinned,
			r.Started.Format(minute), window(r.Window), r.Origin, r.Coverage.Targeted, r.Coverage.Collected, r.Coverage.Failed,
			r.BySeverity[rules.SevCritical], r.BySeverity[rules.SevHigh], r.BySeverity[rules.SevMedium],
			r.BySeverity[rules.SevLow], r.BySeverity[rules.SevInfo], r.Errors, r.Waived)
	}
	return tw.Flush()
}

// printPerUserCounts prints the Per User counts history keeps (timeline order): per
// run and version the users with an active, expired and unreadable CAL, the change of
// active users since the previous run that counted the version, and whether every
// domain was read (else the counts are lower bounds).
func printPerUserCounts(w io.Writer, storePath string, counts []history.PerUserCount) error {
	if len(counts) == 0 {
		_, err := fmt.Fprintf(w, "no Per User counts recorded in %s (runs with directory.domains record them)\n", storePath)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tEVALUATED (UTC)\tVERSION\tACTIVE\tCHANGE\tEXPIRED\tUNREADABLE\tALL DOMAINS READ")
	last := map[string]int{}
	for _, c := range counts {
		change := "-"
		if prev, ok := last[c.Version]; ok {
			change = fmt.Sprintf("%+d", c.Active-prev)
		}
		last[c.Version] = c.Active
		complete := "yes"
		if !c.Complete {
			complete = "no: lower bounds"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%d\t%s\n", c.RunID, c.EvaluatedAt.UTC().Format(minute), c.Version, c.Active, change, c.Expired, c.Unknown, complete)
	}
	return tw.Flush()
}

const minute = "2006-01-02 15:04"

// evaluated is a run's evaluation time (its start for a RunInfo without one).
func evaluated(r history.RunInfo) time.Time {
	if r.EvaluatedAt.IsZero() {
		return r.Started
	}
	return r.EvaluatedAt
}

// window renders a collection window to the minute: one time when it is one, "-" when
// unknown.
func window(w *report.Window) string {
	if w == nil {
		return "-"
	}
	a, b := w.Earliest.UTC().Format(minute), w.Latest.UTC().Format(minute)
	switch {
	case a == b:
		return a
	case a[:10] == b[:10]:
		return a + ".." + b[11:]
	}
	return a + ".." + b
}

// printTimeline prints one host's timeline, oldest evaluation first: when the run was
// evaluated and the host's evidence collected, collection status, licensing mode and
// source, grace days left, GracePeriod key LastWriteTime, and the findings of each run.
func printTimeline(w io.Writer, host string, tl []history.TimelineEntry) error {
	fmt.Fprintf(w, "host %s: %d runs\n", host, len(tl))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tEVALUATED (UTC)\tCOLLECTED (UTC)\tSTATUS\tMODE\tSOURCE\tGRACE DAYS\tKEY WRITTEN\tFINDINGS")
	for _, e := range tl {
		status, collected, mode, src, grace, written := "not targeted", "", "", "", "", ""
		if e.InRun {
			sn := e.Host.Snapshot
			collected = optional(sn.CollectedAt, func(t time.Time) string { return t.UTC().Format(minute) })
			status = e.Host.Status
			if status == "" {
				status = map[bool]string{true: "collected", false: "not collected"}[sn.Collected]
			}
			if sn.Collected {
				mode, src = facts.ModeName(sn.Mode), sn.ModeSource
				grace, written = optional(sn.GraceDays, formatInt), optional(sn.GraceKeyWritten, formatTime)
			}
		}
		var fs []string
		for _, f := range e.Findings {
			fs = append(fs, fmt.Sprintf("%s(%s,%s)", f.RuleID, f.Severity, findingStatus(f)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.RunID, e.At.Format(minute), dash(collected), status,
			dash(mode), dash(src), dash(grace), dash(written), dash(strings.Join(fs, " ")))
	}
	return tw.Flush()
}

// printDiff prints what changed from run A to run B: new, resolved and changed
// findings, hosts added and removed, and host fact changes.
func printDiff(w io.Writer, d *history.RunDiff) error {
	fmt.Fprintf(w, "diff %s (%s) -> %s (%s)\n", d.A.ID, evaluated(d.A).Format("2006-01-02"), d.B.ID, evaluated(d.B).Format("2006-01-02"))
	fmt.Fprintf(w, "coverage: targeted %d -> %d, collected %d -> %d, failed %d -> %d\n",
		d.A.Coverage.Targeted, d.B.Coverage.Targeted, d.A.Coverage.Collected, d.B.Coverage.Collected,
		d.A.Coverage.Failed, d.B.Coverage.Failed)
	section := func(title string, n int) {
		fmt.Fprintf(w, "\n%s (%d)\n", title, n)
	}
	printFindings := func(title string, fs []rules.Result) {
		section(title, len(fs))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, f := range fs {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", f.ID, f.RuleID, f.Severity, f.Subject, f.Message)
		}
		tw.Flush()
	}
	printFindings("new findings", d.New)
	printFindings("resolved findings", d.Resolved)
	section("changed findings", len(d.Changed))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range d.Changed {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s -> %s\n", c.ID, c.RuleID, c.Subject, c.Field, dash(c.A), dash(c.B))
	}
	tw.Flush()
	section("hosts added", len(d.HostsAdded))
	for _, h := range d.HostsAdded {
		fmt.Fprintf(w, "  %s\n", h)
	}
	section("hosts removed", len(d.HostsRemoved))
	for _, h := range d.HostsRemoved {
		fmt.Fprintf(w, "  %s\n", h)
	}
	section("host fact changes", len(d.HostChanges))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range d.HostChanges {
		fmt.Fprintf(tw, "  %s\t%s\t%s -> %s\n", c.Host, c.Field, dash(c.A), dash(c.B))
	}
	return tw.Flush()
}

// findingStatus is a finding's lifecycle in a timeline; an error has none.
func findingStatus(f rules.Result) string {
	if f.Outcome == rules.Error {
		return "error"
	}
	return f.Status()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// optional formats *p, or gives "" for nil.
func optional[T any](p *T, format func(T) string) string {
	if p == nil {
		return ""
	}
	return format(*p)
}

func formatInt(v int64) string { return strconv.FormatInt(v, 10) }

func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }
