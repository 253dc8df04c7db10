package config

import (
	"errors"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // scheduler.timezone resolves on hosts without a zoneinfo database (Windows, scratch images)

	"github.com/robfig/cron/v3"
)

// What becomes of a run stopped by SIGINT/SIGTERM (collection.on_stop).
const (
	// OnStopPublish publishes the run, every host accounted for, marked partial.
	OnStopPublish = "publish"
	// OnStopDiscard publishes nothing: the staging directory is removed.
	OnStopDiscard = "discard"
)

// Limits of the scheduler and of a graceful stop.
const (
	// DefaultStopGrace is how long hosts in flight may finish after a stop signal.
	DefaultStopGrace = 30 * time.Second
	MaxStopGrace     = time.Hour
	// MaxRandomDelay bounds scheduler.random_delay.
	MaxRandomDelay = 24 * time.Hour
)

// Scheduler configures `rdsaudit schedule`, which runs the audit on the cron
// expression of the top-level schedule key.
type Scheduler struct {
	// Timezone is the IANA zone the cron expression is read in ("Local": the host's).
	Timezone string `mapstructure:"timezone" json:"timezone"`
	// RandomDelay: each run starts after a random delay in [0, RandomDelay) past its
	// scheduled time, so that many instances do not start at once. 0 = none.
	RandomDelay time.Duration `mapstructure:"random_delay" json:"random_delay"`
	// RunAtStart runs one audit as soon as the scheduler starts (and after nothing else).
	RunAtStart bool `mapstructure:"run_at_start" json:"run_at_start"`
}

// cronParser reads standard 5-field cron expressions (minute hour day-of-month month
// day-of-week, names allowed) and the @ descriptors (@monthly, @every 1h, …).
func cronParser() cron.Parser {
	return cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
}

// ParseSchedule parses a cron expression as the schedule key accepts it. A CRON_TZ= or
// TZ= prefix is refused: the zone is scheduler.timezone.
func ParseSchedule(expr string) (cron.Schedule, error) {
	expr = strings.TrimSpace(expr)
	if expr == "" {
		return nil, errors.New("empty cron expression")
	}
	if strings.HasPrefix(expr, "CRON_TZ=") || strings.HasPrefix(expr, "TZ=") {
		return nil, fmt.Errorf("%q: set the time zone with scheduler.timezone, not in the expression", expr)
	}
	s, err := cronParser().Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("%q: %v (want 5 fields: minute hour day-of-month month day-of-week, or a descriptor such as @monthly)", expr, err)
	}
	return s, nil
}

// Location is the time zone of the schedule (scheduler.timezone).
func (s Scheduler) Location() (*time.Location, error) {
	switch s.Timezone {
	case "", "Local":
		return time.Local, nil
	case "UTC":
		return time.UTC, nil
	}
	return time.LoadLocation(s.Timezone)
}

// validateSchedule checks schedule, scheduler.* and the graceful-stop keys.
func (c *Config) validateSchedule(at atFunc, oneOf func(field, got string, valid ...string) bool) {
	if c.Schedule != "" {
		if _, err := ParseSchedule(c.Schedule); err != nil {
			at("schedule", "%v", err)
		}
	}
	if _, err := c.Scheduler.Location(); err != nil {
		at("scheduler.timezone", "unknown time zone %q (want an IANA name such as Europe/Berlin, UTC or Local)", c.Scheduler.Timezone)
	}
	durRange(at, "scheduler.random_delay", c.Scheduler.RandomDelay, 0, MaxRandomDelay)
	durRange(at, "collection.stop_grace", c.Collection.StopGrace, 0, MaxStopGrace)
	oneOf("collection.on_stop", c.Collection.OnStop, OnStopPublish, OnStopDiscard)
}
