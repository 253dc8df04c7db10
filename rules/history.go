package rules

import (
	"slices"
	"sort"
	"strings"
	"time"
)

// HostSnapshot is what an earlier run recorded about one host: the interpreted facts the
// history-dependent rules compare over time.
type HostSnapshot struct {
	RunID string `json:"run_id"`
	// At is the run's evaluation time (its --as-of time for a backfilled run), UTC: the
	// snapshot's place in the timeline.
	At time.Time `json:"at"`
	// CollectedAt is when this host's evidence was collected (its collected_at), UTC;
	// nil in runs recorded before it was kept. See EvidenceTime.
	CollectedAt     *time.Time `json:"collected_at,omitempty"`
	Collected       bool       `json:"collected"`
	Mode            *int64     `json:"mode,omitempty"`
	ModeSource      string     `json:"mode_source,omitempty"`
	LicenseServers  []string   `json:"license_servers,omitempty"`
	GraceDays       *int64     `json:"grace_days,omitempty"`
	GraceKeyWritten *time.Time `json:"grace_key_written,omitempty"`
	TimebombSHA256  string     `json:"timebomb_sha256,omitempty"`
	OSBuild         string     `json:"os_build,omitempty"`
	InstallDate     *time.Time `json:"install_date,omitempty"`
}

// EvidenceTime is when the snapshot's evidence describes the host: its collection time,
// else (older runs) the run's evaluation time.
func (s *HostSnapshot) EvidenceTime() time.Time {
	if s.CollectedAt != nil {
		return s.CollectedAt.UTC()
	}
	return s.At.UTC()
}

// History gives rules the earlier runs. Implementations load what they need before
// evaluation starts, so evaluation itself stays pure (no I/O).
type History interface {
	// Previous returns the host's snapshots from earlier runs evaluated at or after
	// since, newest first (by evaluation time). Host names compare case-insensitively.
	Previous(host string, since time.Time) []HostSnapshot
}

// MemHistory is an in-memory History keyed by host name.
type MemHistory map[string][]HostSnapshot

// Add records a snapshot for a host.
func (m MemHistory) Add(host string, s HostSnapshot) {
	k := strings.ToLower(host)
	m[k] = append(m[k], s)
}

// Previous implements History.
func (m MemHistory) Previous(host string, since time.Time) []HostSnapshot {
	var buf [64]byte
	all := m[string(appendLower(buf[:0], host))]
	n := 0
	for i := range all {
		if !all[i].At.Before(since) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]HostSnapshot, 0, n)
	for _, s := range all {
		if !s.At.Before(since) {
			out = append(out, s)
		}
	}
	// Snapshots are usually added newest first (history.Store.Load) or oldest first; a
	// strictly ascending list reversed is what the stable sort gives.
	desc, asc := true, true
	for i := 1; i < len(out) && (desc || asc); i++ {
		desc = desc && !out[i].At.After(out[i-1].At)
		asc = asc && out[i].At.After(out[i-1].At)
	}
	switch {
	case desc:
	case asc:
		slices.Reverse(out)
	default:
		sort.SliceStable(out, func(i, j int) bool { return out[i].At.After(out[j].At) })
	}
	return out
}

// Drift compares this run's findings with the previous run's (from history).
type Drift struct {
	PreviousRunID string    `json:"previous_run_id"`
	PreviousAt    time.Time `json:"previous_at"`
	// New and Persisting hold finding IDs of this run's findings.
	New        []string `json:"new"`
	Persisting []string `json:"persisting"`
	// Resolved holds the previous run's findings that are no longer findings.
	Resolved []Result `json:"resolved"`
}
