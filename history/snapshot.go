package history

import (
	"time"

	"github.com/rdsaudit/rdsaudit/facts"
	"github.com/rdsaudit/rdsaudit/rules"
)

// HostRecord is one host's entry in a run: its name (rules.HostSnapshot does not carry
// one), inventory group, collection status, and the facts compared over time.
type HostRecord struct {
	Name     string
	Group    string
	Status   string // collect.Status: collected, failed, skipped
	Failure  string // failure class and message when not collected
	Snapshot rules.HostSnapshot
}

// SnapshotOf extracts from a host's interpreted facts what later runs compare: effective
// licensing mode and its source, effective license servers, grace days left, the
// GracePeriod key's LastWriteTime, the timebomb value's SHA-256, OS build and install
// date, and when the evidence was collected. at is the run's evaluation time; both are
// stored in UTC.
func SnapshotOf(runID string, at time.Time, f *facts.Facts) rules.HostSnapshot {
	s := rules.HostSnapshot{RunID: runID, At: at.UTC()}
	if f == nil {
		return s
	}
	s.Collected = f.Collected()
	if !s.Collected {
		// A host not collected has no evidence time: its collected_at is when the
		// attempt failed, which for a backfill is the day of the backfill.
		return s
	}
	if !f.CollectedAt.IsZero() {
		c := f.CollectedAt.UTC()
		s.CollectedAt = &c
	}
	s.Mode = copyInt(f.Mode.Effective)
	s.ModeSource = f.Mode.EffectiveSource
	if len(f.LicenseServers.Effective) > 0 {
		s.LicenseServers = append([]string(nil), f.LicenseServers.Effective...)
	}
	s.GraceDays = copyInt(f.Grace.DaysLeft)
	s.GraceKeyWritten = copyTime(f.Grace.KeyWritten)
	if f.Grace.Timebomb != nil {
		s.TimebombSHA256 = f.Grace.Timebomb.SHA256
	}
	s.OSBuild = f.OS.Build
	s.InstallDate = copyTime(f.OS.InstallDate)
	return s
}

// HostOf builds a run's host entry from the host's facts; at is the run's evaluation time.
func HostOf(runID string, at time.Time, f *facts.Facts) HostRecord {
	h := HostRecord{Snapshot: SnapshotOf(runID, at, f)}
	if f == nil {
		return h
	}
	h.Name, h.Group, h.Status = f.Host.Name, f.Host.Group, string(f.Status)
	if f.Failure != nil {
		h.Failure = string(f.Failure.Class)
		if f.Failure.Message != "" {
			h.Failure += ": " + f.Failure.Message
		}
	}
	return h
}

func copyInt(p *int64) *int64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func copyTime(p *time.Time) *time.Time {
	if p == nil {
		return nil
	}
	v := p.UTC()
	return &v
}
