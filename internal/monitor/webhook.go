package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/config"
	"github.com/rdsaudit/rdsaudit/report"
	"github.com/rdsaudit/rdsaudit/rules"
)

// SummarySchema names the webhook body's format.
const SummarySchema = "rdsaudit.notify/v1"

// Defaults of the webhook.
const (
	DefaultTimeout    = config.DefaultWebhookTimeout
	DefaultRetryDelay = 2 * time.Second
	maxResponseBytes  = 64 << 10 // read (and discarded) from a response, to reuse the connection
)

// Summary is the JSON body POSTed to the webhook.
type Summary struct {
	Schema string `json:"schema"`
	// Status is "complete" (published and recorded), "partial" (stopped by a signal and
	// published marked partial: Partial says what was stopped) or "failed".
	Status          string    `json:"status"`
	Host            string    `json:"host,omitempty"`
	ToolVersion     string    `json:"tool_version"`
	Revision        string    `json:"revision,omitempty"`
	StartedAt       time.Time `json:"started_at"`
	FinishedAt      time.Time `json:"finished_at"`
	DurationSeconds float64   `json:"duration_seconds"`
	// Error is the audit's error when it failed.
	Error string `json:"error,omitempty"`

	// The rest describes the published run (absent when nothing was published).
	RunID      string          `json:"run_id,omitempty"`
	Dir        string          `json:"dir,omitempty"`
	Recorded   bool            `json:"recorded"`
	Partial    *report.Partial `json:"partial,omitempty"`
	Verdict    *SummaryVerdict `json:"verdict,omitempty"`
	Coverage   *SummaryCover   `json:"coverage,omitempty"`
	Findings   map[string]int  `json:"findings,omitempty"` // unwaived, by severity
	Waived     int             `json:"waived"`
	NotChecked int             `json:"not_checked"` // rule results with evidence missing
	// CALShortfall lists the CAL position rows with a shortfall (positive) or surplus
	// (negative).
	CALShortfall []SummaryShortfall `json:"cal_shortfall,omitempty"`
}

// SummaryVerdict is the run's verdict.
type SummaryVerdict struct {
	Status   string `json:"status"` // pass | fail | incomplete
	Reason   string `json:"reason"`
	FailOn   string `json:"fail_on"`
	Blocking int    `json:"blocking"`
}

// SummaryCover is the run's coverage.
type SummaryCover struct {
	Targeted  int            `json:"targeted"`
	Collected int            `json:"collected"`
	Failed    int            `json:"failed"`
	Skipped   int            `json:"skipped"`
	ByClass   map[string]int `json:"by_class"`
}

// SummaryShortfall is one CAL position row.
type SummaryShortfall struct {
	CALType   string `json:"cal_type"`
	Version   string `json:"version"`
	Shortfall int64  `json:"shortfall"`
}

// NewSummary describes o for the webhook.
func NewSummary(o Outcome, b BuildInfo, host string) Summary {
	s := Summary{
		Schema: SummarySchema, Status: "failed", Host: host,
		ToolVersion: b.Version, Revision: b.Revision,
		StartedAt: o.Started.UTC(), FinishedAt: o.Finished.UTC(),
		DurationSeconds: max(o.Finished.Sub(o.Started).Seconds(), 0),
	}
	if o.Complete() {
		s.Status = "complete"
	}
	if o.Err != nil {
		s.Error = o.Err.Error()
	}
	r := o.Result
	if r == nil || r.Report == nil {
		return s
	}
	rep := r.Report
	s.RunID, s.Dir, s.Recorded = r.RunID, r.Dir, r.Recorded
	if o.Partial() {
		s.Status, s.Partial = "partial", rep.Run.Partial
	}
	v := rep.Verdict()
	s.Verdict = &SummaryVerdict{Status: string(v.Status), Reason: v.Reason(), FailOn: v.FailOn.String(), Blocking: v.Blocking}
	c := rep.Coverage
	s.Coverage = &SummaryCover{Targeted: c.Targeted, Collected: c.Collected, Failed: c.Failed, Skipped: c.Skipped,
		ByClass: map[string]int{}}
	for _, cc := range c.ByClass {
		s.Coverage.ByClass[string(cc.Class)] = cc.Count
	}
	s.Findings = map[string]int{}
	for sev := rules.SevInfo; sev <= rules.SevCritical; sev++ {
		s.Findings[sev.String()] = 0
	}
	for _, sc := range rep.Severities {
		s.Findings[sc.Severity.String()] += sc.Findings
		s.Waived += sc.Waived
	}
	s.NotChecked = rep.Score.Errors
	for _, p := range rep.Position {
		if p.Shortfall != nil {
			s.CALShortfall = append(s.CALShortfall, SummaryShortfall{CALType: p.CALType, Version: p.Version, Shortfall: *p.Shortfall})
		}
	}
	return s
}

// Notify POSTs sum to the webhook: at most two attempts, each within w.Timeout, the
// second after w.RetryDelay and only after a network error, a timeout or a 408, 429 or
// 5xx response. Redirects are not followed (the secret header must not travel to
// another address). Every failure is logged; none is returned. Log lines and errors
// name the webhook by scheme and host only (a path or query may hold a token) and never
// contain the secret.
func Notify(ctx context.Context, w Webhook, sum Summary, log zerolog.Logger) {
	target := redactURL(w.URL)
	log = log.With().Str("webhook", target).Logger()
	if err := notify(ctx, w, sum, log); err != nil {
		log.Error().Err(err).Msg("webhook not delivered (the audit's outcome is unaffected)")
	}
}

func notify(ctx context.Context, w Webhook, sum Summary, log zerolog.Logger) error {
	secret, err := config.ResolveWebhookSecret(config.Notify{SecretEnv: w.SecretEnv, SecretFile: w.SecretFile})
	if err != nil {
		return err
	}
	body, err := json.Marshal(sum)
	if err != nil {
		return fmt.Errorf("encode summary: %w", err)
	}
	timeout, delay := w.Timeout, w.RetryDelay
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if delay <= 0 {
		delay = DefaultRetryDelay
	}
	client := &http.Client{
		Transport: http.DefaultTransport.(*http.Transport).Clone(),
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	defer client.CloseIdleConnections()
	header := w.Header
	if header == "" {
		header = config.DefaultWebhookHeader
	}
	var last error
	for attempt := 1; attempt <= 2; attempt++ {
		if attempt == 2 {
			log.Warn().Err(last).Dur("retry_in", delay).Msg("webhook attempt failed; retrying once")
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return errors.Join(last, ctx.Err())
			case <-t.C:
			}
		}
		status, err := post(ctx, client, w.URL, header, secret, body, timeout, sum.ToolVersion)
		if err == nil {
			log.Info().Int("status", status).Int("attempt", attempt).Msg("webhook delivered")
			return nil
		}
		last = fmt.Errorf("attempt %d: %w", attempt, err)
		if !retryable(status) {
			break
		}
	}
	return last
}

// post makes one attempt; status is the response's code, 0 when there was none.
func post(ctx context.Context, client *http.Client, rawURL, header, secret string, body []byte, timeout time.Duration, version string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return -1, fmt.Errorf("POST %s: %w", redactURL(rawURL), unwrapURLError(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "rdsaudit/"+version)
	if secret != "" {
		req.Header.Set(header, secret)
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return 0, fmt.Errorf("POST %s: no response within %s", redactURL(rawURL), timeout)
		}
		return 0, fmt.Errorf("POST %s: %w", redactURL(rawURL), unwrapURLError(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("POST %s: %s", redactURL(rawURL), resp.Status)
	}
	return resp.StatusCode, nil
}

// retryable says whether an attempt that ended with status (0: no response, -1: no
// request) is worth one more try.
func retryable(status int) bool {
	return status == 0 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

// unwrapURLError drops *url.Error's copy of the URL, which may hold a token.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// redactURL is the URL's scheme and host: its path and query may hold a token.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(webhook URL)"
	}
	return u.Scheme + "://" + u.Host
}
