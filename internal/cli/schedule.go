package cli

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"syscall"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rdsaudit/rdsaudit/config"
	"github.com/rdsaudit/rdsaudit/internal/audit"
)

// maxSleep bounds one wait of the scheduler: it looks at the wall clock again at least
// this often, so a suspended host or a clock step delays a run by at most this much.
const maxSleep = time.Minute

// timerClock is the scheduler's clock: the time and one-shot timers. Tests inject a
// fake one (hooks.clock).
type timerClock interface {
	Now() time.Time
	// NewTimer fires once on the returned channel after d; stop cancels it.
	NewTimer(d time.Duration) (c <-chan time.Time, stop func())
}

type realClock struct{ now Clock }

func (c realClock) Now() time.Time { return c.now() }
func (realClock) NewTimer(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}

func newScheduleCmd(e *env) *cobra.Command {
	var path string
	var sel selectionFlags
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Run the audit on the configuration's cron schedule until stopped (SIGHUP reloads the configuration)",
		Long: `schedule stays in the foreground and runs the same audit as "run" on the cron expression
of the configuration's schedule key, read in scheduler.timezone, each run after a random
delay of up to scheduler.random_delay, and once at start with scheduler.run_at_start.
Never two audits at once: a tick while an audit runs is skipped and logged.

SIGHUP re-reads the configuration; it replaces the running one only if it is valid
(otherwise the old one stays and the error is logged). SIGINT/SIGTERM stop the scheduler:
an audit in progress stops gracefully (collection.stop_grace, collection.on_stop) and
the scheduler exits 7 if that run was stopped before every host was collected, else 0.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s := &scheduler{e: e, path: path, fs: cmd.Flags(), sel: &sel}
			return s.run()
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "configuration file (YAML); re-read on SIGHUP")
	config.BindFlags(cmd.Flags())
	sel.bind(cmd.Flags())
	return cmd
}

// scheduler is one `rdsaudit schedule` process.
type scheduler struct {
	e    *env
	path string
	fs   *pflag.FlagSet
	sel  *selectionFlags // --hosts/--group, applied to every (re)loaded configuration

	clock  timerClock
	jitter func(time.Duration) time.Duration

	cfg   *config.Config
	sched cron.Schedule
	loc   *time.Location
}

// scheduleOf checks what the scheduler needs of a (valid) configuration.
func scheduleOf(cfg *config.Config) (cron.Schedule, *time.Location, error) {
	if cfg.Schedule == "" {
		return nil, nil, errors.New("schedule: required by rdsaudit schedule (a cron expression, e.g. \"0 6 1 * *\")")
	}
	sched, err := config.ParseSchedule(cfg.Schedule)
	if err != nil {
		return nil, nil, fmt.Errorf("schedule: %w", err)
	}
	loc, err := cfg.Scheduler.Location()
	if err != nil {
		return nil, nil, fmt.Errorf("scheduler.timezone: %w", err)
	}
	return sched, loc, nil
}

// load reads and checks the configuration; on success it replaces the running one and
// the logger follows its log settings.
func (s *scheduler) load() error {
	if s.path == "" {
		return usageErr(errors.New("--config: a configuration file is required (see samples/config.yaml)"))
	}
	cfg, err := config.Load(s.path, s.fs)
	if err != nil {
		return usageErr(err)
	}
	sched, loc, err := scheduleOf(cfg)
	if err != nil {
		return usageErr(err)
	}
	lg, err := s.e.configLogger(cfg)
	if err != nil {
		return usageErr(err)
	}
	if s.sel != nil {
		if err := s.sel.apply(s.e, cfg); err != nil {
			return err
		}
	}
	s.e.log = lg
	s.cfg, s.sched, s.loc = cfg, sched, loc
	return nil
}

// next is the time of the first tick after t (in the configured zone) and the time
// the audit of that tick starts (the tick plus the random delay).
func (s *scheduler) next(t time.Time) (tick, start time.Time) {
	tick = s.sched.Next(t.In(s.loc))
	start = tick
	if d := s.cfg.Scheduler.RandomDelay; d > 0 {
		start = tick.Add(s.jitter(d))
	}
	return tick, start
}

// outcome is how one scheduled audit ended.
type outcome struct {
	runID string
	err   error
}

func (s *scheduler) run() error {
	h := hooksOf(s.e.ctx)
	s.clock = h.clock
	if s.clock == nil {
		s.clock = realClock{now: s.e.now}
	}
	s.jitter = h.jitter
	if s.jitter == nil {
		s.jitter = func(max time.Duration) time.Duration { return rand.N(max) }
	}
	if err := s.load(); err != nil {
		return err
	}
	sigs, stopNotify := notifySignals(s.e)
	defer stopNotify()

	var (
		done     chan outcome   // the audit in progress, nil when idle
		stopper  *audit.Stopper // its stopper
		stopping bool           // SIGINT/SIGTERM received: exit when the audit ends
	)
	start := func(why string) {
		cfg := s.cfg
		col, err := collectorFor(s.e, cfg)
		if err != nil {
			s.e.log.Error().Err(err).Str("trigger", why).Int("exit_code", exitCode(err)).Msg("scheduled audit not started")
			return
		}
		stopper = audit.NewStopper()
		re := *s.e // the audit's own view: the logger and stopper of its start
		re.stop = stopper
		c := make(chan outcome, 1)
		done = c
		s.e.log.Info().Str("trigger", why).Msg("scheduled audit starting")
		go func() {
			res, err := runAudit(&re, cfg, col, time.Time{})
			if err == nil {
				err = verdictErr(res)
			}
			o := outcome{err: err}
			if res != nil {
				o.runID = res.RunID
			}
			c <- o
		}()
	}

	tick, at := s.next(s.clock.Now())
	s.logNext(tick, at)
	if s.cfg.Scheduler.RunAtStart {
		start("run_at_start")
	}
	for {
		wait := min(at.Sub(s.clock.Now()), maxSleep)
		timer, stopTimer := s.clock.NewTimer(max(wait, 0))
		select {
		case <-timer:
			if s.clock.Now().Before(at) {
				break // a bounded wait: look again
			}
			if done != nil {
				s.e.log.Warn().Time("tick", tick).Msg("scheduled audit skipped: the previous audit is still running")
			} else if !stopping {
				start("schedule")
			}
			tick, at = s.next(tick)
			if n := s.clock.Now(); !tick.After(n) {
				tick, at = s.next(n)
			}
			s.logNext(tick, at)

		case o := <-done:
			done = nil
			ev := s.e.log.Info()
			if o.err != nil && exitCode(o.err) != ExitFindings && exitCode(o.err) != ExitCoverage {
				ev = s.e.log.Error().Err(o.err)
			}
			ev.Str("run_id", o.runID).Int("exit_code", exitCode(o.err)).Msg("scheduled audit finished")
			if stopping {
				stopTimer()
				if stoppedErr(o.err) {
					return o.err
				}
				return nil
			}

		case sig := <-sigs:
			switch {
			case sig == syscall.SIGHUP:
				s.reload()
				if n := s.clock.Now(); !tick.After(n) {
					// Inside the random delay: the tick has passed (cron's Next from now
					// would skip it), its audit still starts at its delayed time.
					s.e.log.Info().Str("tick", tick.Format(time.RFC3339)).Str("next_start", at.Format(time.RFC3339)).
						Msg("reload: the pending tick has passed, its audit still starts at its delayed time")
				} else {
					tick, at = s.next(n)
					s.logNext(tick, at)
				}
			case isStopSignal(sig):
				reason := "stopped by " + signalName(sig)
				if done == nil {
					stopTimer()
					s.e.log.Info().Str("signal", signalName(sig)).Msg("scheduler stopped")
					return nil
				}
				if stopping {
					stopper.Hurry(reason, s.e.now())
				} else {
					stopping = true
					s.e.log.Warn().Str("signal", signalName(sig)).Msg("stop requested: stopping the audit in progress (send it again to cancel the hosts in flight now)")
					stopper.Stop(reason, s.e.now())
				}
			}

		case <-s.e.ctx.Done():
			stopTimer()
			if done != nil {
				stopper.Hurry("stopped: "+s.e.ctx.Err().Error(), s.e.now())
				<-done
			}
			return s.e.ctx.Err()
		}
		stopTimer()
	}
}

// reload re-reads the configuration on SIGHUP: a configuration that does not load, does
// not validate or has no valid schedule leaves the running one in place.
func (s *scheduler) reload() {
	old := s.cfg
	if err := s.load(); err != nil {
		s.e.log.Error().Str("config", s.path).Str("error", err.Error()).Msg("configuration reload failed: keeping the running configuration")
		return
	}
	s.e.log.Info().Str("config", s.path).Str("schedule", s.cfg.Schedule).Str("timezone", s.loc.String()).
		Bool("changed", old.Hash() != s.cfg.Hash()).Msg("configuration reloaded")
}

func (s *scheduler) logNext(tick, at time.Time) {
	s.e.log.Info().Str("schedule", s.cfg.Schedule).Str("timezone", s.loc.String()).
		Str("next_tick", tick.Format(time.RFC3339)).Str("next_start", at.Format(time.RFC3339)).Msg("next scheduled audit")
}
