package monitor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/internal/audit"
	"github.com/rdsaudit/rdsaudit/internal/monitor"
	"github.com/rdsaudit/rdsaudit/report"
	"github.com/rdsaudit/rdsaudit/rules"
)

var (
	t0    = time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	t1    = t0.Add(95 * time.Second)
	build = monitor.BuildInfo{Version: "v1.2.3", Revision: "0123456789abcdef", GoVersion: "go1.26.8"}
)

func i64(v int64) *int64 { return &v }

// sampleResult is a published run: 10 hosts targeted, 7 collected (2 auth, 1 timeout),
// findings of three severities (one waived, one blocking high), one rule result not
// checked, and a CAL position with a shortfall and a surplus.
func sampleResult() *audit.Result {
	rep := &report.Report{
		Run: report.Run{ID: "20261201T060000Z", FailOn: rules.SevHigh},
		Coverage: report.Coverage{Targeted: 10, Collected: 7, Failed: 3,
			ByClass: []report.ClassCount{{Class: evidence.FailAuth, Count: 2}, {Class: evidence.FailTimeout, Count: 1}}},
		Results: []rules.Result{
			{RuleID: "A", Severity: rules.SevHigh, Outcome: rules.Fail},
			{RuleID: "B", Severity: rules.SevMedium, Outcome: rules.Fail},
			{RuleID: "B", Severity: rules.SevMedium, Outcome: rules.Fail},
			{RuleID: "C", Severity: rules.SevCritical, Outcome: rules.Fail, Waived: true},
			{RuleID: "D", Severity: rules.SevLow, Outcome: rules.Error},
			{RuleID: "E", Severity: rules.SevLow, Outcome: rules.Pass},
		},
		Severities: []report.SeverityCount{
			{Severity: rules.SevCritical, Waived: 1}, {Severity: rules.SevHigh, Findings: 1},
			{Severity: rules.SevMedium, Findings: 2}, {Severity: rules.SevLow}, {Severity: rules.SevInfo},
		},
		Score: report.Score{Passed: 1, Failed: 3, Errors: 1, Waived: 1},
		Position: []report.PositionRow{
			{CALType: "per_user", Version: "2022", Shortfall: i64(5)},
			{CALType: "per_device", Version: "2019", Shortfall: i64(-8)},
			{CALType: "per_device", Version: "2016"}, // unknown: no series
		},
	}
	return &audit.Result{RunID: rep.Run.ID, Dir: "/srv/rdsaudit/out/" + rep.Run.ID, Report: rep, Recorded: true}
}

// parse reads a textfile with the Prometheus text parser, independently of the package.
func parse(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return mfs
}

// value returns the gauge of family name whose labels include want; ok false if none.
func value(mfs map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				continue next
			}
		}
		return m.GetGauge().GetValue(), true
	}
	return 0, false
}

func TestTextfileCompleteRun(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rdsaudit.prom")
	if err := monitor.WriteTextfile(path, build, monitor.Outcome{Started: t0, Finished: t1, Result: sampleResult()}); err != nil {
		t.Fatal(err)
	}
	mfs := parse(t, path)
	for name, mf := range mfs {
		if !strings.HasPrefix(name, "rdsaudit_") {
			t.Errorf("metric %s lacks the rdsaudit_ prefix", name)
		}
		if mf.GetType() != dto.MetricType_GAUGE {
			t.Errorf("%s is a %s, want a gauge", name, mf.GetType())
		}
		if mf.GetHelp() == "" {
			t.Errorf("%s has no help", name)
		}
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"rdsaudit_build_info", []string{"version", "v1.2.3", "revision", "0123456789abcdef", "goversion", "go1.26.8"}, 1},
		{"rdsaudit_last_run_timestamp_seconds", nil, float64(t1.Unix())},
		{"rdsaudit_last_run_duration_seconds", nil, 95},
		{"rdsaudit_last_run_success", nil, 1},
		{"rdsaudit_last_success_timestamp_seconds", nil, float64(t1.Unix())},
		{"rdsaudit_last_run_verdict", []string{"verdict", "incomplete"}, 1},
		{"rdsaudit_last_run_verdict", []string{"verdict", "pass"}, 0},
		{"rdsaudit_last_run_verdict", []string{"verdict", "fail"}, 0},
		{"rdsaudit_hosts_targeted", nil, 10},
		{"rdsaudit_hosts_collected", nil, 7},
		{"rdsaudit_hosts_failed", []string{"class", "auth"}, 2},
		{"rdsaudit_hosts_failed", []string{"class", "timeout"}, 1},
		{"rdsaudit_findings", []string{"severity", "critical"}, 0},
		{"rdsaudit_findings", []string{"severity", "high"}, 1},
		{"rdsaudit_findings", []string{"severity", "medium"}, 2},
		{"rdsaudit_findings", []string{"severity", "low"}, 0},
		{"rdsaudit_findings", []string{"severity", "info"}, 0},
		{"rdsaudit_findings_waived", []string{"severity", "critical"}, 1},
		{"rdsaudit_findings_blocking", nil, 1},
		{"rdsaudit_results_not_checked", nil, 1},
		{"rdsaudit_cal_shortfall", []string{"cal_type", "per_user", "version", "2022"}, 5},
		{"rdsaudit_cal_shortfall", []string{"cal_type", "per_device", "version", "2019"}, -8},
	} {
		got, ok := value(mfs, c.name, c.labels...)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if n := len(mfs["rdsaudit_cal_shortfall"].GetMetric()); n != 2 {
		t.Errorf("rdsaudit_cal_shortfall has %d series, want 2 (a row without a shortfall has none)", n)
	}
	if n := len(mfs["rdsaudit_hosts_failed"].GetMetric()); n != 2 {
		t.Errorf("rdsaudit_hosts_failed has %d series, want 2", n)
	}

	// Prometheus naming conventions (units, suffixes, snake case).
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.New(bytes.NewReader(data)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}

	// Mode 0640, and nothing left behind but the file.
	if runtime.GOOS != "windows" {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("mode %v, %v; want 0640", fi.Mode().Perm(), err)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the textfile", len(ents))
	}
}

func TestTextfileFailedRunKeepsLastSuccess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rdsaudit.prom")
	if err := monitor.WriteTextfile(path, build, monitor.Outcome{Started: t0, Finished: t1, Result: sampleResult()}); err != nil {
		t.Fatal(err)
	}
	later := t1.Add(30 * 24 * time.Hour)
	failed := monitor.Outcome{Started: later.Add(-2 * time.Second), Finished: later, Err: errors.New("open history: locked")}
	if err := monitor.WriteTextfile(path, build, failed); err != nil {
		t.Fatal(err)
	}
	mfs := parse(t, path)
	for name, want := range map[string]float64{
		"rdsaudit_last_run_success":               0,
		"rdsaudit_last_run_timestamp_seconds":     float64(later.Unix()),
		"rdsaudit_last_run_duration_seconds":      2,
		"rdsaudit_last_success_timestamp_seconds": float64(t1.Unix()),
		"rdsaudit_build_info":                     1,
	} {
		if got, ok := value(mfs, name); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	for _, name := range []string{"rdsaudit_hosts_targeted", "rdsaudit_findings", "rdsaudit_last_run_verdict", "rdsaudit_cal_shortfall"} {
		if mfs[name] != nil {
			t.Errorf("a failed run reports %s", name)
		}
	}

	// The first run ever, failed: no success yet.
	fresh := filepath.Join(t.TempDir(), "rdsaudit.prom")
	if err := monitor.WriteTextfile(fresh, build, failed); err != nil {
		t.Fatal(err)
	}
	if got, ok := value(parse(t, fresh), "rdsaudit_last_success_timestamp_seconds"); !ok || got != 0 {
		t.Errorf("last success = %v (present %v), want 0", got, ok)
	}
}

func TestTextfileErrors(t *testing.T) {
	var logs bytes.Buffer
	log := zerolog.New(&logs)
	missing := filepath.Join(t.TempDir(), "no-such-dir", "rdsaudit.prom")
	// AfterRun logs the failure and returns.
	monitor.AfterRun(context.Background(), monitor.Settings{Textfile: missing, Build: build},
		monitor.Outcome{Started: t0, Finished: t1, Result: sampleResult()}, log)
	if !strings.Contains(logs.String(), "metrics textfile not written") {
		t.Errorf("log: %s", logs.String())
	}
}

// hook is a local webhook endpoint answering with the given statuses in turn (200 once
// they run out).
type hook struct {
	mu       sync.Mutex
	statuses []int
	delay    time.Duration
	bodies   [][]byte
	headers  []http.Header
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.bodies = append(h.bodies, body)
	h.headers = append(h.headers, r.Header.Clone())
	status := http.StatusOK
	if len(h.statuses) > 0 {
		status, h.statuses = h.statuses[0], h.statuses[1:]
	}
	delay := h.delay
	h.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	w.WriteHeader(status)
}

func (h *hook) calls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.bodies)
}

const secret = "Bearer hunter2-s3cret"

func webhook(t *testing.T, url string) monitor.Webhook {
	t.Setenv("RDSAUDIT_TEST_WEBHOOK_SECRET", secret)
	return monitor.Webhook{URL: url + "/hooks/T0KEN-in-path?key=T0KEN", Header: "X-Rdsaudit-Token",
		SecretEnv: "RDSAUDIT_TEST_WEBHOOK_SECRET", Timeout: 2 * time.Second, RetryDelay: 10 * time.Millisecond}
}

func checkLogs(t *testing.T, logs string) {
	t.Helper()
	for _, s := range []string{"hunter2", "T0KEN"} {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain %q:\n%s", s, logs)
		}
	}
}

func TestWebhookRetriesOnce(t *testing.T) {
	h := &hook{statuses: []int{http.StatusServiceUnavailable}}
	srv := httptest.NewServer(h)
	defer srv.Close()
	var logs bytes.Buffer
	s := monitor.Settings{Webhook: webhook(t, srv.URL), Build: build, Host: "audit-01"}
	monitor.AfterRun(context.Background(), s, monitor.Outcome{Started: t0, Finished: t1, Result: sampleResult()}, zerolog.New(&logs))
	if h.calls() != 2 {
		t.Fatalf("%d requests, want 2 (one retry after a 503)\n%s", h.calls(), logs.String())
	}
	if !strings.Contains(logs.String(), "webhook delivered") || !strings.Contains(logs.String(), "retrying once") {
		t.Errorf("log:\n%s", logs.String())
	}
	checkLogs(t, logs.String())
	hd := h.headers[1]
	if hd.Get("X-Rdsaudit-Token") != secret || hd.Get("Content-Type") != "application/json" || hd.Get("User-Agent") != "rdsaudit/v1.2.3" {
		t.Errorf("headers: %v", hd)
	}
	var got monitor.Summary
	if err := json.Unmarshal(h.bodies[1], &got); err != nil {
		t.Fatal(err)
	}
	if got.Schema != "rdsaudit.notify/v1" || got.Status != "complete" || got.Host != "audit-01" || got.RunID != "20261201T060000Z" ||
		got.DurationSeconds != 95 || !got.StartedAt.Equal(t0) || !got.Recorded || got.Error != "" {
		t.Errorf("summary: %s", h.bodies[1])
	}
	if got.Verdict == nil || got.Verdict.Status != "incomplete" || got.Verdict.FailOn != "high" || got.Verdict.Blocking != 1 {
		t.Errorf("verdict: %+v", got.Verdict)
	}
	if got.Coverage == nil || got.Coverage.Targeted != 10 || got.Coverage.Collected != 7 || got.Coverage.ByClass["auth"] != 2 {
		t.Errorf("coverage: %+v", got.Coverage)
	}
	if got.Findings["high"] != 1 || got.Findings["medium"] != 2 || got.Findings["critical"] != 0 || len(got.Findings) != 5 ||
		got.Waived != 1 || got.NotChecked != 1 {
		t.Errorf("findings: %v waived %d not checked %d", got.Findings, got.Waived, got.NotChecked)
	}
	if len(got.CALShortfall) != 2 || got.CALShortfall[0] != (monitor.SummaryShortfall{CALType: "per_user", Version: "2022", Shortfall: 5}) {
		t.Errorf("cal_shortfall: %+v", got.CALShortfall)
	}
	if strings.Contains(string(h.bodies[1]), "hunter2") {
		t.Error("the body holds the secret")
	}
}

func TestWebhookFailures(t *testing.T) {
	for _, tc := range []struct {
		name     string
		h        *hook
		calls    int
		contains string
	}{
		{"server error twice", &hook{statuses: []int{500, 502}}, 2, "attempt 2: POST http://127.0.0.1"},
		{"client error not retried", &hook{statuses: []int{400}}, 1, "400 Bad Request"},
		{"rate limited", &hook{statuses: []int{429, 429}}, 2, "429 Too Many Requests"},
		{"timeout", &hook{delay: 5 * time.Second}, 2, "no response within 200ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.h)
			defer srv.Close()
			w := webhook(t, srv.URL)
			w.Timeout = 200 * time.Millisecond
			var logs bytes.Buffer
			start := time.Now()
			monitor.AfterRun(context.Background(), monitor.Settings{Webhook: w, Build: build},
				monitor.Outcome{Started: t0, Finished: t1, Err: errors.New("publish run: disk full")}, zerolog.New(&logs))
			if time.Since(start) > 3*time.Second {
				t.Errorf("AfterRun took %s", time.Since(start))
			}
			if tc.h.calls() != tc.calls {
				t.Errorf("%d requests, want %d", tc.h.calls(), tc.calls)
			}
			if !strings.Contains(logs.String(), "webhook not delivered") || !strings.Contains(logs.String(), tc.contains) {
				t.Errorf("log lacks %q:\n%s", tc.contains, logs.String())
			}
			checkLogs(t, logs.String())
			var got monitor.Summary
			if err := json.Unmarshal(tc.h.bodies[0], &got); err != nil || got.Status != "failed" ||
				got.Error != "publish run: disk full" || got.Verdict != nil || got.Coverage != nil {
				t.Errorf("summary of a failed run: %s (%v)", tc.h.bodies[0], err)
			}
		})
	}
}

func TestWebhookNoRedirect(t *testing.T) {
	elsewhere := &hook{}
	other := httptest.NewServer(elsewhere)
	defer other.Close()
	srv := httptest.NewServer(http.RedirectHandler(other.URL+"/steal", http.StatusTemporaryRedirect))
	defer srv.Close()
	var logs bytes.Buffer
	monitor.AfterRun(context.Background(), monitor.Settings{Webhook: webhook(t, srv.URL), Build: build},
		monitor.Outcome{Started: t0, Finished: t1, Result: sampleResult()}, zerolog.New(&logs))
	if elsewhere.calls() != 0 {
		t.Error("the redirect was followed: the secret header went to another address")
	}
	if !strings.Contains(logs.String(), "307 Temporary Redirect") {
		t.Errorf("log:\n%s", logs.String())
	}
	checkLogs(t, logs.String())
}

func TestWebhookUnreachableAndCanceled(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	var logs bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a stopped run still notifies: only the webhook's own timeouts bound it
	monitor.AfterRun(ctx, monitor.Settings{Webhook: webhook(t, url), Build: build},
		monitor.Outcome{Started: t0, Finished: t1, Result: sampleResult()}, zerolog.New(&logs))
	if strings.Count(logs.String(), "connection refused") < 2 || !strings.Contains(logs.String(), "webhook not delivered") {
		t.Errorf("want two refused attempts, logged:\n%s", logs.String())
	}
	checkLogs(t, logs.String())
}

func TestWebhookSecretMissing(t *testing.T) {
	h := &hook{}
	srv := httptest.NewServer(h)
	defer srv.Close()
	w := webhook(t, srv.URL)
	w.SecretEnv = "RDSAUDIT_TEST_WEBHOOK_SECRET_UNSET"
	var logs bytes.Buffer
	monitor.AfterRun(context.Background(), monitor.Settings{Webhook: w, Build: build},
		monitor.Outcome{Started: t0, Finished: t1, Result: sampleResult()}, zerolog.New(&logs))
	if h.calls() != 0 || !strings.Contains(logs.String(), "RDSAUDIT_TEST_WEBHOOK_SECRET_UNSET is not set") {
		t.Errorf("%d requests; log:\n%s", h.calls(), logs.String())
	}
}

func TestPartialRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rdsaudit.prom")
	if err := monitor.WriteTextfile(path, build, monitor.Outcome{Started: t0, Finished: t1, Result: sampleResult()}); err != nil {
		t.Fatal(err)
	}
	res := sampleResult()
	res.Report.Run.Partial = &report.Partial{Reason: "stopped by SIGTERM", StoppedAt: t1, NotStarted: 3}
	later := t1.Add(time.Hour)
	o := monitor.Outcome{Started: t1, Finished: later, Result: res}
	if err := monitor.WriteTextfile(path, build, o); err != nil {
		t.Fatal(err)
	}
	mfs := parse(t, path)
	for name, want := range map[string]float64{
		"rdsaudit_last_run_success":               0,
		"rdsaudit_last_run_partial":               1,
		"rdsaudit_last_success_timestamp_seconds": float64(t1.Unix()), // the complete run before
		"rdsaudit_hosts_targeted":                 10,
	} {
		if got, ok := value(mfs, name); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	sum := monitor.NewSummary(o, build, "h")
	if sum.Status != "partial" || sum.Partial == nil || sum.Partial.NotStarted != 3 || sum.RunID == "" {
		t.Errorf("summary of a partial run: %+v", sum)
	}
	// A complete run says partial 0.
	if err := monitor.WriteTextfile(path, build, monitor.Outcome{Started: t0, Finished: t1, Result: sampleResult()}); err != nil {
		t.Fatal(err)
	}
	if got, ok := value(parse(t, path), "rdsaudit_last_run_partial"); !ok || got != 0 {
		t.Errorf("rdsaudit_last_run_partial = %v (present %v) after a complete run", got, ok)
	}
}
