// Package monitor tells monitoring how each run went: it writes the Prometheus textfile
// (metrics.textfile) and POSTs the JSON summary to the webhook (notify.webhook_url).
// Drivers (`run`, `schedule`) call AfterRun once after every run, complete or failed.
// Nothing here can fail the audit: every problem is logged, and secrets (the webhook's
// header value) never reach a log line or an error.
package monitor

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/config"
	"github.com/rdsaudit/rdsaudit/internal/audit"
)

// Settings say where the outcome of a run goes. The zero value does nothing.
type Settings struct {
	// Textfile is the Prometheus textfile to write ("" = none).
	Textfile string
	Webhook  Webhook
	Build    BuildInfo
	// Host names the machine in the webhook summary (default os.Hostname).
	Host string
}

// Webhook is the optional HTTP notification.
type Webhook struct {
	URL string // "" = no webhook
	// Header carries the secret read from SecretEnv or SecretFile (see
	// config.ResolveWebhookSecret) at send time; neither set: no secret header.
	Header     string
	SecretEnv  string
	SecretFile string
	// Timeout bounds each attempt (default 10s).
	Timeout time.Duration
	// RetryDelay is the pause before the one retry (default 2s).
	RetryDelay time.Duration
}

// BuildInfo labels rdsaudit_build_info and the webhook summary.
type BuildInfo struct {
	Version   string // module version (cli.ToolVersion)
	Revision  string // VCS revision, "" when unknown
	GoVersion string
}

// Outcome is what one run came to.
type Outcome struct {
	Started, Finished time.Time
	// Result is the published run; nil when the audit failed before publishing.
	Result *audit.Result
	// Err is the audit's error; nil for a complete run.
	Err error
}

// Complete reports whether the run was published and recorded without error, and not
// stopped before every host was collected (a partial run).
func (o Outcome) Complete() bool {
	return o.Err == nil && o.Result != nil && (o.Result.Report == nil || o.Result.Report.Run.Partial == nil)
}

// Partial reports whether the run was stopped (SIGINT/SIGTERM) and published partial.
func (o Outcome) Partial() bool {
	return o.Result != nil && o.Result.Report != nil && o.Result.Report.Run.Partial != nil
}

// SettingsFrom maps the configuration's metrics and notify keys to Settings; version is
// the tool version recorded in reports (cli.ToolVersion).
func SettingsFrom(cfg *config.Config, version string) Settings {
	return Settings{
		Textfile: cfg.Metrics.Textfile,
		Webhook: Webhook{
			URL:        cfg.Notify.WebhookURL,
			Header:     cfg.Notify.SecretHeader,
			SecretEnv:  cfg.Notify.SecretEnv,
			SecretFile: cfg.Notify.SecretFile,
			Timeout:    cfg.Notify.Timeout,
		},
		Build: CurrentBuild(version),
	}
}

// CurrentBuild is version with the running binary's VCS revision and Go toolchain.
func CurrentBuild(version string) BuildInfo {
	b := BuildInfo{Version: version, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				b.Revision = s.Value
			}
		}
	}
	return b
}

// AfterRun reports one run's outcome: it writes the metrics textfile, then POSTs the
// webhook summary (at most two attempts, each within Webhook.Timeout). It returns when
// both are done; failures are logged at error level and never returned. The webhook is
// sent even when ctx is already canceled (a stopped run is news too); only its own
// timeouts bound it.
func AfterRun(ctx context.Context, s Settings, o Outcome, log zerolog.Logger) {
	if s.Textfile != "" {
		if err := WriteTextfile(s.Textfile, s.Build, o); err != nil {
			log.Error().Err(err).Str("path", s.Textfile).Msg("metrics textfile not written")
		} else {
			log.Debug().Str("path", s.Textfile).Msg("metrics textfile written")
		}
	}
	if s.Webhook.URL != "" {
		host := s.Host
		if host == "" {
			host, _ = os.Hostname()
		}
		sum := NewSummary(o, s.Build, host)
		Notify(context.WithoutCancel(ctx), s.Webhook, sum, log)
	}
}
