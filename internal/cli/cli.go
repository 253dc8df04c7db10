// Package cli is the rdsaudit command line: every command is a function of its
// arguments, output streams and clock, so tests run it exactly as a user does.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/rdsaudit/rdsaudit/history"
	"github.com/rdsaudit/rdsaudit/internal/audit"
)

// Exit codes (README.md documents them).
const (
	ExitOK         = 0 // audit complete, no unwaived finding at or above fail_on
	ExitFindings   = 1 // findings at or above fail_on
	ExitUsage      = 2 // usage, configuration, rules or inventory error
	ExitCoverage   = 3 // the audit ran but some hosts were not collected (takes precedence over 1)
	ExitInternal   = 4 // internal failure: reports or history could not be written
	ExitVerifyFail = 5 // rdsaudit verify: a run directory does not match its manifest
	ExitLocked     = 6 // another rdsaudit run holds the output directory's or the history store's lock
	// ExitStopped: the audit was stopped by SIGINT/SIGTERM before every host was
	// collected; the run was published marked partial (run.partial in report.json,
	// "Run status: PARTIAL" on the workbook's Summary) or, with collection.on_stop:
	// discard, nothing was published. It takes precedence over 3 and 1.
	ExitStopped = 7
	// ExitStale: rdsaudit status found no recent complete run (none, older than
	// --max-age, or history holds a newer run than latest.json).
	ExitStale = 8
)

// The soft memory limit, unless GOMEMLIMIT says otherwise: 160 MiB, raised for an
// audit to sit above the live heap of its fleet (memoryLimitFor), so that the garbage
// collector never runs continuously against a limit the fleet's live data exceeds.
const (
	defaultMemoryLimit = 160 << 20
	// The live heap of an audit: about 16 MiB plus 21 KiB per host at its peak (rule
	// results, facts, report rows; docs/benchmarks.md). The limit leaves headroom.
	memoryLimitBase    = 64 << 20
	memoryLimitPerHost = 24 << 10
)

// memoryLimitFor is the soft memory limit for an audit of n hosts.
func memoryLimitFor(n int) int64 {
	return max(defaultMemoryLimit, memoryLimitBase+int64(n)*memoryLimitPerHost)
}

// setMemoryLimit sets the soft memory limit for an audit of n hosts, unless the user
// set GOMEMLIMIT.
func setMemoryLimit(n int) {
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(memoryLimitFor(n))
	}
}

// Clock returns the current time; tests pin it.
type Clock func() time.Time

// SystemClock is the real clock.
func SystemClock() time.Time { return time.Now() }

// ToolVersion is the version recorded in reports: the module version the binary was
// built from (go install …@v1.2.3), else 0.1.0-dev.
func ToolVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "0.1.0-dev"
}

// Errors that map to exit codes. Commands wrap them; exitCode maps them in one place.
var (
	errUsage    = errors.New("usage error")
	errFindings = errors.New("findings at or above fail_on")
	errCoverage = errors.New("coverage below 100%")
	errVerify   = errors.New("verification failed")
)

// usageErr marks err as a usage/configuration error (exit 2).
func usageErr(err error) error {
	if err == nil {
		return nil
	}
	return &codedError{err: err, code: errUsage}
}

type codedError struct {
	err  error
	code error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() []error {
	return []error{e.err, e.code}
}

func exitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case stoppedErr(err):
		return ExitStopped
	case errors.Is(err, errUsage):
		return ExitUsage
	case errors.Is(err, errCoverage):
		return ExitCoverage
	case errors.Is(err, errFindings):
		return ExitFindings
	case errors.Is(err, errVerify):
		return ExitVerifyFail
	case errors.Is(err, history.ErrLocked), errors.Is(err, audit.ErrOutputLocked):
		return ExitLocked
	case errors.Is(err, errStale):
		return ExitStale
	}
	return ExitInternal
}

// env is what every command gets: streams, clock and logger.
type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
	now    Clock
	log    zerolog.Logger
	// stop, when set, stops the audit gracefully (SIGINT/SIGTERM; signals.go).
	stop *audit.Stopper
	// logLevel and logFormat come from flags; the config may set them too.
	logLevel  string
	logFormat string
	// directoryDir, when set, is where directory evidence is read offline (the demo).
	directoryDir string
}

// Run runs the rdsaudit command line with args (without the program name) and returns
// the process exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, now Clock) int {
	setMemoryLimit(0)
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr, now: now}
	root := newRoot(e)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err != nil {
		if strings.HasPrefix(err.Error(), "unknown command ") { // cobra's own, for the root
			err = usageErr(err)
		}
		code := exitCode(err)
		// Findings and coverage gaps are outcomes, already summarised on stdout.
		if code != ExitFindings && code != ExitCoverage {
			fmt.Fprintf(stderr, "rdsaudit: %v\n", err)
		}
		return code
	}
	return ExitOK
}

// args marks cobra's argument-count errors as usage errors (exit 2).
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error { return usageErr(check(cmd, a)) }
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "rdsaudit",
		Short: "Audit Remote Desktop Services CAL licensing across a Windows Server fleet",
		Long: `rdsaudit collects the RDS licensing configuration of every targeted host over WinRM
(strictly read-only), evaluates it against a versioned rule set and writes an Excel
workbook, a JSON report, the raw evidence and a manifest of hashes.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			lg, err := newLogger(e.stderr, e.logLevel, e.logFormat)
			if err != nil {
				return usageErr(err)
			}
			e.log = lg
			return nil
		},
	}
	root.Version = versionLine()
	root.SetVersionTemplate("rdsaudit {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr(err) })
	root.PersistentFlags().StringVar(&e.logLevel, "log-level", "", "log level: debug, info, warn, error (default from config, else info)")
	root.PersistentFlags().StringVar(&e.logFormat, "log-format", "", "log format: auto, console, json (default auto: console on a terminal)")
	root.AddCommand(
		newRunCmd(e),
		newCollectCmd(e),
		newScheduleCmd(e),
		newValidateCmd(e),
		newCheckCmd(e),
		newRulesCmd(e),
		newVersionCmd(e),
		newDemoCmd(e),
		newSimulateCmd(e),
		newKeygenCmd(e),
		newVerifyCmd(e),
		newStatusCmd(e),
		newScriptCmd(e),
	)
	root.AddCommand(newHistoryCmds(e)...)
	return root
}

// newLogger returns a zerolog logger on w: console format on a terminal, JSON otherwise.
func newLogger(w io.Writer, level, format string) (zerolog.Logger, error) {
	lvl := zerolog.InfoLevel
	if level != "" {
		l, err := zerolog.ParseLevel(strings.ToLower(level))
		if err != nil || level == "" {
			return zerolog.Nop(), fmt.Errorf("--log-level: unknown level %q (want debug, info, warn, error)", level)
		}
		lvl = l
	}
	var out io.Writer = w
	switch format {
	case "", "auto":
		if isTerminal(w) {
			out = zerolog.ConsoleWriter{Out: clearLine{w}, TimeFormat: time.TimeOnly}
		}
	case "console":
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, NoColor: true}
	case "json":
	default:
		return zerolog.Nop(), fmt.Errorf("--log-format: unknown format %q (want auto, console, json)", format)
	}
	// Hosts are collected concurrently and log as they finish: serialise the writes.
	return zerolog.New(zerolog.SyncWriter(out)).Level(lvl).With().Timestamp().Logger(), nil
}

// clearLine erases the terminal line before each log line, so a log line never lands
// behind the collection progress bar (which redraws itself on its next update).
type clearLine struct{ w io.Writer }

func (c clearLine) Write(p []byte) (int, error) {
	if _, err := io.WriteString(c.w, "\r\x1b[K"); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the rdsaudit version, the commit it was built from and the Go toolchain",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(e.stdout, "rdsaudit %s\n", versionLine())
			return nil
		},
	}
}

// versionLine is the version with what the build info says of the build: the VCS
// revision and time (go build in a checkout records them; go install module@version
// records the module version), whether the tree was modified, and the toolchain.
func versionLine() string {
	v := ToolVersion()
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	var rev, at, goos, goarch string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			goarch = s.Value
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v += " (commit " + rev
		if at != "" {
			v += ", " + at
		}
		if modified {
			v += ", modified"
		}
		v += ")"
	}
	return strings.TrimSpace(fmt.Sprintf("%s %s %s/%s", v, bi.GoVersion, goos, goarch))
}
