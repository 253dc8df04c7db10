package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/report"
)

// fakeClock is the scheduler's injected clock: time moves only when the test says.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*fakeTimer]bool // live timers
}

type fakeTimer struct {
	at time.Time
	c  chan time.Time
}

func newFakeClock(t time.Time) *fakeClock {
	return &fakeClock{now: t, timers: map[*fakeTimer]bool{}}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) NewTimer(d time.Duration) (<-chan time.Time, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{at: f.now.Add(d), c: make(chan time.Time, 1)}
	if !t.at.After(f.now) {
		t.c <- f.now
	} else {
		f.timers[t] = true
	}
	return t.c, func() {
		f.mu.Lock()
		delete(f.timers, t)
		f.mu.Unlock()
	}
}

// live is the number of timers armed and not fired or stopped.
func (f *fakeClock) live() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// advance sets the clock to to and fires the timers due, then waits until the
// scheduler waits again on a timer.
func (f *fakeClock) advance(t *testing.T, to time.Time) {
	t.Helper()
	f.mu.Lock()
	f.now = to
	for tm := range f.timers {
		if !tm.at.After(to) {
			tm.c <- to
			delete(f.timers, tm)
		}
	}
	f.mu.Unlock()
	eventually(t, "the scheduler waits on a timer", func() bool { return f.live() > 0 })
}

// logLine reports whether a line of logs has every one of parts.
func logLine(logs string, parts ...string) bool {
	for _, l := range strings.Split(logs, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return true
		}
	}
	return false
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// scheduleConfig writes a configuration of three offline sample hosts collected one
// at a time into dir, with more collection keys (flow style, "k: v, …") and more YAML,
// and returns its path.
func scheduleConfig(t *testing.T, dir, collection, extra string) string {
	t.Helper()
	fleet, err := filepath.Abs(filepath.Join("..", "..", "samples", "fleet"))
	if err != nil {
		t.Fatal(err)
	}
	if collection != "" {
		collection = ", " + collection
	}
	text := fmt.Sprintf(`inventory:
  hosts:
    - {name: LS01, roles: [license_server]}
    - {name: RDSH-A01, roles: [session_host]}
    - {name: RDSH-A02, roles: [session_host]}
credentials: [{name: audit, username: u, password_env: RDSAUDIT_TEST_UNUSED}]
default_credential: audit
collection: {source: offline, evidence_dir: %q, concurrency: 1%s}
output_dir: out
log: {level: info, format: json}
%s
`, fleet, collection, extra)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// scheduled is a `rdsaudit schedule` (or `run`) running in-process with hooks.
type scheduled struct {
	clock  *fakeClock
	sigs   chan os.Signal
	stdout *syncBuffer
	stderr *syncBuffer
	code   chan int
}

func startCLI(t *testing.T, clock *fakeClock, h *hooks, args ...string) *scheduled {
	t.Helper()
	s := &scheduled{clock: clock, sigs: make(chan os.Signal, 4), stdout: &syncBuffer{}, stderr: &syncBuffer{}, code: make(chan int, 1)}
	h.signals = s.sigs
	h.clock = clock
	ctx, cancel := context.WithCancel(withHooks(context.Background(), h))
	go func() { s.code <- Run(ctx, args, s.stdout, s.stderr, clock.Now) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.code:
		case <-time.After(20 * time.Second):
			t.Error("rdsaudit did not end")
		}
	})
	return s
}

func (s *scheduled) finished() int {
	return strings.Count(s.stderr.String(), `"message":"scheduled audit finished"`)
}

func (s *scheduled) exit(t *testing.T) int {
	t.Helper()
	select {
	case c := <-s.code:
		s.code <- c // for the cleanup
		return c
	case <-time.After(20 * time.Second):
		t.Fatalf("rdsaudit did not exit\nstderr:\n%s", s.stderr.String())
	}
	return -1
}

// runIDs lists the run directories' names under out.
func runIDs(t *testing.T, out string) []string {
	t.Helper()
	if _, err := os.Stat(out); os.IsNotExist(err) {
		return nil
	}
	var ids []string
	for _, d := range runDirs(t, out) {
		ids = append(ids, filepath.Base(d))
	}
	return ids
}

// TestScheduleTimesInZone: runs start at the cron times read in scheduler.timezone
// (across a DST change), after the random delay, and not a second earlier.
func TestScheduleTimesInZone(t *testing.T) {
	dir := t.TempDir()
	cfg := scheduleConfig(t, dir, "", `schedule: "0 6 1 * *"
scheduler: {timezone: America/New_York, random_delay: 30m}`)
	clock := newFakeClock(time.Date(2026, 9, 30, 12, 0, 0, 0, time.UTC))
	s := startCLI(t, clock, &hooks{jitter: func(max time.Duration) time.Duration { return max / 2 }}, "schedule", "--config", cfg)
	eventually(t, "the scheduler waits", func() bool { return clock.live() > 0 })
	out := filepath.Join(dir, "out")

	// 1 October 06:00 EDT (UTC-4) + 15 minutes.
	clock.advance(t, time.Date(2026, 10, 1, 10, 14, 59, 0, time.UTC))
	if ids := runIDs(t, out); len(ids) != 0 || s.finished() != 0 {
		t.Fatalf("audit before its time: %v", ids)
	}
	clock.advance(t, time.Date(2026, 10, 1, 10, 15, 0, 0, time.UTC))
	eventually(t, "the first audit ends", func() bool { return s.finished() == 1 })
	// 1 November 06:00 EST (UTC-5, DST ended at 02:00 that day) + 15 minutes.
	clock.advance(t, time.Date(2026, 11, 1, 10, 15, 0, 0, time.UTC))
	if s.finished() != 1 {
		t.Fatal("audit at 06:15 EDT on the day DST ended")
	}
	clock.advance(t, time.Date(2026, 11, 1, 11, 14, 59, 0, time.UTC))
	clock.advance(t, time.Date(2026, 11, 1, 11, 15, 0, 0, time.UTC))
	eventually(t, "the second audit ends", func() bool { return s.finished() == 2 })
	if got, want := strings.Join(runIDs(t, out), " "), "20261001T101500Z 20261101T111500Z"; got != want {
		t.Errorf("runs %s, want %s", got, want)
	}
	if !strings.Contains(s.stderr.String(), `"next_start":"2026-10-01T06:15:00-04:00"`) {
		t.Errorf("log lacks the next start in the zone:\n%s", s.stderr.String())
	}
	s.sigs <- syscall.SIGTERM // idle: exits 0
	if code := s.exit(t); code != ExitOK {
		t.Errorf("exit %d after SIGTERM while idle, want 0\n%s", code, s.stderr.String())
	}
}

// blockFirst wraps collectors so that every audit's first host waits until release
// returns (the test decides); entered hears of each such host.
func blockFirst(entered chan<- string, release func(ctx context.Context)) func(collect.Collector) collect.Collector {
	return func(c collect.Collector) collect.Collector {
		return collect.Func(c.Name(), func(ctx context.Context, h evidence.HostRef) *evidence.Evidence {
			if h.Name == "LS01" {
				entered <- h.Name
				release(ctx)
				if ctx.Err() != nil {
					return evidence.NewFailure(h, c.Name(), time.Now(), evidence.StatusFailed, evidence.FailCanceled, "collect LS01: canceled")
				}
			}
			return c.Collect(ctx, h)
		})
	}
}

// TestScheduleOverlapSkipped: a tick while the audit runs is skipped and logged.
func TestScheduleOverlapSkipped(t *testing.T) {
	dir := t.TempDir()
	cfg := scheduleConfig(t, dir, "", `schedule: "*/10 * * * *"
scheduler: {timezone: UTC}`)
	clock := newFakeClock(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	entered := make(chan string, 4)
	gate := make(chan struct{})
	var once sync.Once
	var later atomic.Bool
	h := &hooks{wrap: blockFirst(entered, func(ctx context.Context) {
		if !later.Swap(true) {
			select {
			case <-gate:
			case <-ctx.Done():
			}
		}
	})}
	s := startCLI(t, clock, h, "schedule", "--config", cfg)
	eventually(t, "the scheduler waits", func() bool { return clock.live() > 0 })
	clock.advance(t, time.Date(2026, 11, 1, 0, 10, 0, 0, time.UTC))
	<-entered
	clock.advance(t, time.Date(2026, 11, 1, 0, 20, 0, 0, time.UTC))
	defer func() {
		if t.Failed() {
			t.Logf("stderr:\n%s", s.stderr.String())
		}
	}()
	eventually(t, "the skip is logged", func() bool {
		return logLine(s.stderr.String(), `"message":"scheduled audit skipped: the previous audit is still running"`, `"tick":"2026-11-01T00:20:00Z"`)
	})
	once.Do(func() { close(gate) })
	eventually(t, "the first audit ends", func() bool { return s.finished() == 1 })
	clock.advance(t, time.Date(2026, 11, 1, 0, 30, 0, 0, time.UTC))
	<-entered
	eventually(t, "the second audit ends", func() bool { return s.finished() == 2 })
	if got, want := strings.Join(runIDs(t, filepath.Join(dir, "out")), " "), "20261101T001000Z 20261101T003000Z"; got != want {
		t.Errorf("runs %s, want %s", got, want)
	}
}

// TestScheduleReload: SIGHUP with a broken configuration keeps the running one (and
// says why); SIGHUP with a valid one replaces it.
func TestScheduleReload(t *testing.T) {
	dir := t.TempDir()
	cfg := scheduleConfig(t, dir, "", `schedule: "0 * * * *"
scheduler: {timezone: UTC}`)
	clock := newFakeClock(time.Date(2026, 11, 1, 0, 30, 0, 0, time.UTC))
	s := startCLI(t, clock, &hooks{}, "schedule", "--config", cfg)
	eventually(t, "the scheduler waits", func() bool { return clock.live() > 0 })

	scheduleConfig(t, dir, "", `schedule: "0 6 1 *"
scheduler: {timezone: UTC}`)
	s.sigs <- syscall.SIGHUP
	eventually(t, "the failed reload is logged", func() bool {
		return strings.Contains(s.stderr.String(), "configuration reload failed: keeping the running configuration")
	})
	if !strings.Contains(s.stderr.String(), `expected exactly 5 fields, found 4`) {
		t.Errorf("the failed reload does not say why:\n%s", s.stderr.String())
	}
	clock.advance(t, time.Date(2026, 11, 1, 1, 0, 0, 0, time.UTC))
	eventually(t, "the audit on the old schedule ends", func() bool { return s.finished() == 1 })

	scheduleConfig(t, dir, "", `schedule: "30 * * * *"
scheduler: {timezone: UTC}`)
	s.sigs <- syscall.SIGHUP
	eventually(t, "the reload is logged", func() bool {
		return strings.Contains(s.stderr.String(), `"message":"configuration reloaded"`)
	})
	clock.advance(t, time.Date(2026, 11, 1, 1, 30, 0, 0, time.UTC))
	eventually(t, "the audit on the new schedule ends", func() bool { return s.finished() == 2 })
	if got, want := strings.Join(runIDs(t, filepath.Join(dir, "out")), " "), "20261101T010000Z 20261101T013000Z"; got != want {
		t.Errorf("runs %s, want %s", got, want)
	}
}

// TestScheduleReloadInDelay: a SIGHUP after a tick but before its delayed start keeps
// that audit: it runs once, at its delayed time (cron's next tick from the reload's
// time would skip it).
func TestScheduleReloadInDelay(t *testing.T) {
	dir := t.TempDir()
	cfg := scheduleConfig(t, dir, "", `schedule: "0 * * * *"
scheduler: {timezone: UTC, random_delay: 30m}`)
	clock := newFakeClock(time.Date(2026, 11, 1, 0, 30, 0, 0, time.UTC))
	s := startCLI(t, clock, &hooks{jitter: func(max time.Duration) time.Duration { return max / 2 }}, "schedule", "--config", cfg)
	defer func() {
		if t.Failed() {
			t.Logf("stderr:\n%s", s.stderr.String())
		}
	}()
	eventually(t, "the scheduler waits", func() bool { return clock.live() > 0 })

	// The 01:00 tick has passed, its audit starts at 01:15.
	clock.advance(t, time.Date(2026, 11, 1, 1, 5, 0, 0, time.UTC))
	s.sigs <- syscall.SIGHUP
	const kept = `"message":"reload: the pending tick has passed, its audit still starts at its delayed time"`
	eventually(t, "the reload's schedule is logged", func() bool {
		_, after, ok := strings.Cut(s.stderr.String(), `"message":"configuration reloaded"`)
		return ok && (strings.Contains(after, kept) || strings.Contains(after, `"message":"next scheduled audit"`))
	})
	if !logLine(s.stderr.String(), kept, `"tick":"2026-11-01T01:00:00Z"`, `"next_start":"2026-11-01T01:15:00Z"`) {
		t.Error("the reload does not log that it keeps the 01:00 tick starting at 01:15")
	}
	clock.advance(t, time.Date(2026, 11, 1, 1, 14, 59, 0, time.UTC))
	if ids := runIDs(t, filepath.Join(dir, "out")); len(ids) != 0 || s.finished() != 0 {
		t.Fatalf("audit before its delayed time: %v", ids)
	}
	clock.advance(t, time.Date(2026, 11, 1, 1, 15, 0, 0, time.UTC))
	eventually(t, "the delayed audit ends", func() bool { return s.finished() == 1 })
	if !logLine(s.stderr.String(), `"message":"next scheduled audit"`, `"next_tick":"2026-11-01T02:00:00Z"`) {
		t.Error("the next tick after the delayed audit is not 02:00")
	}
	clock.advance(t, time.Date(2026, 11, 1, 2, 14, 59, 0, time.UTC))
	if got, want := strings.Join(runIDs(t, filepath.Join(dir, "out")), " "), "20261101T011500Z"; got != want || s.finished() != 1 {
		t.Errorf("runs %s (%d finished), want %s once", got, s.finished(), want)
	}
}

// checkPartial checks the one published run under out is complete and marked partial.
func checkPartial(t *testing.T, out string) {
	t.Helper()
	dirs := runDirs(t, out)
	if len(dirs) != 1 {
		t.Fatalf("run directories %v, want one", dirs)
	}
	if err := report.Verify(dirs[0], nil); err != nil {
		t.Errorf("partial run does not verify: %v", err)
	}
	rep := readReport(t, dirs[0])
	p := rep.Run.Partial
	if p == nil || p.Reason != "stopped by SIGTERM" || p.NotStarted != 2 || p.Canceled != 1 {
		t.Fatalf("run.partial = %+v", p)
	}
	if rep.Coverage.Targeted != 3 || rep.Coverage.Collected != 0 || len(rep.Coverage.ByClass) != 1 ||
		rep.Coverage.ByClass[0] != (report.ClassCount{Class: evidence.FailCanceled, Count: 3}) {
		t.Errorf("coverage %+v", rep.Coverage)
	}
}

// TestScheduleSIGTERMMidRun: SIGTERM while an audit runs stops it gracefully: the host
// in flight is canceled after stop_grace, the others are not started, the run is
// published marked partial and the scheduler exits 7.
func TestScheduleSIGTERMMidRun(t *testing.T) {
	dir := t.TempDir()
	cfg := scheduleConfig(t, dir, "stop_grace: 50ms", `schedule: "@monthly"
scheduler: {timezone: UTC, run_at_start: true}`)
	clock := newFakeClock(time.Date(2026, 11, 1, 0, 30, 0, 0, time.UTC))
	entered := make(chan string, 4)
	s := startCLI(t, clock, &hooks{wrap: blockFirst(entered, func(ctx context.Context) { <-ctx.Done() })}, "schedule", "--config", cfg)
	<-entered
	s.sigs <- syscall.SIGTERM
	if code := s.exit(t); code != ExitStopped {
		t.Fatalf("exit %d, want %d\nstderr:\n%s", code, ExitStopped, s.stderr.String())
	}
	checkPartial(t, filepath.Join(dir, "out"))
	if !strings.Contains(s.stdout.String(), "run is PARTIAL: stopped by SIGTERM at 2026-11-01 00:30:00 UTC; 2 hosts not started, 1 canceled in flight") {
		t.Errorf("stdout:\n%s", s.stdout.String())
	}
}

// TestRunSIGTERM: `run` stops the same way (exit 7, partial run), or with
// collection.on_stop: discard publishes nothing (exit 7).
func TestRunSIGTERM(t *testing.T) {
	for _, onStop := range []string{"publish", "discard"} {
		t.Run(onStop, func(t *testing.T) {
			dir := t.TempDir()
			cfg := scheduleConfig(t, dir, "stop_grace: 50ms, on_stop: "+onStop, "")
			clock := newFakeClock(sampleNow)
			entered := make(chan string, 4)
			s := startCLI(t, clock, &hooks{wrap: blockFirst(entered, func(ctx context.Context) { <-ctx.Done() })}, "run", "--config", cfg)
			<-entered
			s.sigs <- syscall.SIGTERM
			if code := s.exit(t); code != ExitStopped {
				t.Fatalf("exit %d, want %d\nstderr:\n%s", code, ExitStopped, s.stderr.String())
			}
			out := filepath.Join(dir, "out")
			if onStop == "publish" {
				checkPartial(t, out)
				return
			}
			if ids := runIDs(t, out); len(ids) != 0 {
				t.Errorf("discarded run published %v", ids)
			}
			if !strings.Contains(s.stderr.String(), "nothing published (collection.on_stop: discard)") {
				t.Errorf("stderr:\n%s", s.stderr.String())
			}
		})
	}
}

// TestScheduleNeedsSchedule: schedule without a schedule key is a usage error.
func TestScheduleNeedsSchedule(t *testing.T) {
	dir := t.TempDir()
	cfg := scheduleConfig(t, dir, "", "")
	var out, errb bytes.Buffer
	code := Run(context.Background(), []string{"schedule", "--config", cfg}, &out, &errb, fixedClock(sampleNow))
	if code != ExitUsage || !strings.Contains(errb.String(), "schedule: required by rdsaudit schedule") {
		t.Errorf("exit %d, stderr %s", code, errb.String())
	}
}
