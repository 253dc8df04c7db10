package report

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/rules"
)

// benchReport is a synthetic run of hosts session hosts with perHost findings each.
// bench/xlsxwriter_bench.py writes the same rows with XlsxWriter.
func benchReport(hosts, perHost int) *Report {
	r := Build(BuildInput{Run: RunInfo{ID: "bench", StartedAt: t0(), FinishedAt: t1(), ToolVersion: "bench"}})
	sev := []rules.Severity{rules.SevCritical, rules.SevHigh, rules.SevMedium, rules.SevLow, rules.SevInfo}
	r.Results = make([]rules.Result, 0, hosts*perHost)
	for i := 0; i < hosts; i++ {
		name := fmt.Sprintf("rdsh-%05d.corp.example", i)
		group := fmt.Sprintf("farm-%02d", i%20)
		mode, days := int64(4), int64(i%121)
		written := t0().Add(-time.Duration(i) * time.Hour)
		inst := t0().AddDate(-2, 0, -i%700)
		r.Hosts = append(r.Hosts, Host{Name: name, Group: group, Roles: []string{evidence.RoleSessionHost}, Status: evidence.StatusCollected,
			Mode: &mode, ModeName: "Per User (4)", ModeSource: "policy", PolicyMode: &mode, LocalMode: &mode, WMIMode: &mode,
			LicenseServers: []string{"ls-01.corp.example"}, LicenseServerSource: "policy", PolicyLicenseServers: []string{"ls-01.corp.example"},
			WMILicenseServers: []string{"ls-01.corp.example"}, GraceDays: &days, GraceKeyWritten: &written,
			OSCaption: "Microsoft Windows Server 2022 Datacenter", OSVersion: "10.0.20348", OSBuild: "20348", Release: "2022",
			InstallDate: &inst, Domain: "corp.example"})
		r.Coverage.Hosts = append(r.Coverage.Hosts, HostStatus{Name: name, Group: group, Roles: []string{evidence.RoleSessionHost},
			Status: evidence.StatusCollected, Collector: "winrm", CollectedAt: t0()})
		r.Evidence = append(r.Evidence, EvidenceRef{Host: name, Path: "evidence/" + name + ".json",
			SHA256: fmt.Sprintf("%064x", i), Size: 20000 + int64(i)})
		for j := 0; j < perHost; j++ {
			rule := "RDS-R" + strconv.Itoa(10+j)
			s := rules.Subject{Kind: rules.SubjectHost, Name: name, Group: group}
			first, last := t0().AddDate(0, -j, 0), t0()
			r.Results = append(r.Results, rules.Result{ID: rules.FindingID(rule, s, ""), RuleID: rule, Severity: sev[(i+j)%5],
				Outcome: rules.Fail, Subject: s, Message: fmt.Sprintf("finding %d on host %s: observed value differs from the expected value", j, name),
				Observed: "observed " + strconv.Itoa(i*perHost+j), Expected: "expected value", Source: "policy",
				Lifecycle: rules.StatusPersisting, FirstSeen: &first, LastSeen: &last})
		}
	}
	r.Coverage.Targeted, r.Coverage.Collected = hosts, hosts
	for j := 0; j < perHost; j++ {
		r.Catalogue = append(r.Catalogue, RuleInfo{ID: "RDS-R" + strconv.Itoa(10+j), Severity: sev[j%5], Title: "rule " + strconv.Itoa(j),
			Remediation: "Fix the configuration by Group Policy and re-run the audit."})
	}
	r.score()
	r.RuleCoverage = nil
	r.ruleCoverage()
	return r
}

// BenchmarkWrite10k writes 10,000 hosts and 100,000 findings as xlsx and json to files
// in a temp dir (or $RDSAUDIT_BENCH_OUT). Run it through bench/report.sh for peak
// RSS and the XlsxWriter comparison.
func BenchmarkWrite10k(b *testing.B) {
	r := benchReport(10000, 10)
	dir := os.Getenv("RDSAUDIT_BENCH_OUT")
	if dir == "" {
		dir = b.TempDir()
	}
	level := 0
	if v := os.Getenv("RDSAUDIT_BENCH_LEVEL"); v != "" {
		level, _ = strconv.Atoi(v)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, w := range []struct {
			name string
			w    Writer
		}{{"report.xlsx", XLSX{CompressionLevel: level}}, {"report.json", JSON{}}} {
			start := time.Now()
			f, err := os.Create(dir + "/" + w.name)
			if err != nil {
				b.Fatal(err)
			}
			if err := w.w.Write(context.Background(), f, r); err != nil {
				b.Fatal(err)
			}
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
			st, _ := os.Stat(dir + "/" + w.name)
			b.ReportMetric(time.Since(start).Seconds(), w.name[7:]+"-s")
			b.ReportMetric(float64(st.Size())/1e6, w.name[7:]+"-MB")
		}
	}
}

func TestBenchReportIsValid(t *testing.T) {
	r := benchReport(20, 10)
	writeJSON(t, r)
	f := openXLSX(t, writeXLSX(t, r))
	if n := len(rows(t, f, SheetFindings)); n != 201 {
		t.Errorf("findings rows %d", n)
	}
	_ = io.Discard
}
