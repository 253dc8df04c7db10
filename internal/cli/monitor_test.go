package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rdsaudit/rdsaudit/internal/monitor"
)

// TestRunMonitoring runs the sample audit with the metrics textfile and the webhook set
// from the environment, then a run that fails, and reads both back: the textfile with
// the Prometheus text parser, the webhook bodies from a local HTTP server.
func TestRunMonitoring(t *testing.T) {
	chdirRoot(t)
	var mu sync.Mutex
	var bodies [][]byte
	var tokens []string
	// https: a secret header is only sent over https (config refuses http with a secret).
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, b)
		tokens = append(tokens, r.Header.Get("Authorization"))
		mu.Unlock()
	}))
	defer srv.Close()
	// The webhook's client is a clone of http.DefaultTransport: trust the test server.
	dt := http.DefaultTransport.(*http.Transport)
	tlsConfig := dt.TLSClientConfig
	dt.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig
	t.Cleanup(func() { dt.TLSClientConfig = tlsConfig })
	dir := t.TempDir()
	textfile := filepath.Join(dir, "rdsaudit.prom")
	secretFile := filepath.Join(dir, "hook.secret")
	if err := os.WriteFile(secretFile, []byte("Bearer cli-s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RDSAUDIT_METRICS_TEXTFILE", textfile)
	t.Setenv("RDSAUDIT_NOTIFY_WEBHOOK_URL", srv.URL+"/rdsaudit")
	t.Setenv("RDSAUDIT_NOTIFY_SECRET_FILE", secretFile)

	out := filepath.Join(dir, "out")
	code, stdout, stderr := rdsaudit(t, sampleNow, "run", "--config", "samples/config.yaml", "--output-dir", out, "--log-format", "json")
	if code != ExitCoverage {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	mfs := parseTextfile(t, textfile)
	gauge := func(name string) float64 {
		t.Helper()
		mf := mfs[name]
		if mf == nil || len(mf.GetMetric()) != 1 {
			t.Fatalf("%s missing", name)
		}
		return mf.GetMetric()[0].GetGauge().GetValue()
	}
	if gauge("rdsaudit_last_run_success") != 1 || gauge("rdsaudit_hosts_targeted") != 24 || gauge("rdsaudit_hosts_collected") != 22 ||
		gauge("rdsaudit_last_success_timestamp_seconds") != float64(sampleNow.Unix()) || gauge("rdsaudit_findings_blocking") == 0 {
		t.Errorf("metrics of the sample run:\n%s", readFile(t, textfile))
	}
	if mfs["rdsaudit_build_info"] == nil || mfs["rdsaudit_cal_shortfall"] == nil || mfs["rdsaudit_hosts_failed"] == nil {
		t.Errorf("metrics lack build info, CAL shortfall or failed hosts:\n%s", readFile(t, textfile))
	}

	// A run that cannot publish (the output directory is a file) is reported as failed.
	blocked := filepath.Join(dir, "blocked")
	if err := os.WriteFile(blocked, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr2 := rdsaudit(t, sampleNow, "run", "--config", "samples/config.yaml", "--output-dir", blocked, "--log-format", "json")
	if code == ExitOK || code == ExitCoverage || code == ExitFindings {
		t.Fatalf("exit %d for an unwritable output directory\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr2)
	}
	mfs = parseTextfile(t, textfile)
	if gauge("rdsaudit_last_run_success") != 0 || gauge("rdsaudit_last_success_timestamp_seconds") != float64(sampleNow.Unix()) ||
		mfs["rdsaudit_hosts_targeted"] != nil {
		t.Errorf("metrics of the failed run:\n%s", readFile(t, textfile))
	}

	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 2 {
		t.Fatalf("%d webhook requests, want 2", len(bodies))
	}
	var ok, failed monitor.Summary
	if err := json.Unmarshal(bodies[0], &ok); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(bodies[1], &failed); err != nil {
		t.Fatal(err)
	}
	if ok.Status != "complete" || ok.Verdict == nil || ok.Verdict.Status != "incomplete" || ok.Coverage.Collected != 22 ||
		ok.Dir == "" || !strings.HasPrefix(ok.Dir, out) {
		t.Errorf("summary of the sample run: %s", bodies[0])
	}
	if failed.Status != "failed" || failed.Error == "" || failed.RunID != "" {
		t.Errorf("summary of the failed run: %s", bodies[1])
	}
	if tokens[0] != "Bearer cli-s3cret" || tokens[1] != "Bearer cli-s3cret" {
		t.Errorf("secret header %q", tokens)
	}
	for _, s := range []string{stdout, stderr, stderr2} {
		if strings.Contains(s, "cli-s3cret") {
			t.Errorf("output holds the webhook secret:\n%s", s)
		}
	}
}

func parseTextfile(t *testing.T, path string) map[string]*monitor.MetricFamily {
	t.Helper()
	mfs, err := monitor.ParseTextfile(path)
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
