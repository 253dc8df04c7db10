package directory_test

import (
	"context"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/directory"
	"github.com/rdsaudit/rdsaudit/directory/slapdtest"
	"github.com/rdsaudit/rdsaudit/evidence"
)

func doc(users ...directory.User) *directory.Evidence {
	return &directory.Evidence{Schema: directory.Schema, Domain: "corp.example.com", Collector: "offline",
		Coverage: directory.Coverage{Status: directory.StatusCollected}, Users: users}
}

func TestSummariseByHand(t *testing.T) {
	active := slapdtest.GeneralizedTime(evalAt.Add(time.Hour))
	expired := slapdtest.GeneralizedTime(evalAt.Add(-time.Hour))
	recent := slapdtest.FileTime(evalAt.Add(-24 * time.Hour))
	old := slapdtest.FileTime(evalAt.Add(-100 * 24 * time.Hour))
	d := doc(
		// two license servers, two slots, one version: one 2012 user.
		directory.User{SAMAccountName: "alice", DN: "CN=alice", UserAccountControl: "512", LastLogonTimestamp: recent, Slots: []directory.Slot{
			{Slot: 1, LicenseVersion: "393218", ExpireDate: active, ManagingLS: lsA},
			{Slot: 2, LicenseVersion: "393218", ExpireDate: expired, ManagingLS: lsB}}},
		// disabled holder of an active 2008 CAL: reclaim candidate.
		directory.User{SAMAccountName: "bob", DN: "CN=bob", UserAccountControl: "514", LastLogonTimestamp: recent, Slots: []directory.Slot{
			{Slot: 1, LicenseVersion: "393216", ExpireDate: active, ManagingLS: lsA}}},
		// unknown format, old logon; a version3 leftover without an expiry is not a CAL.
		directory.User{SAMAccountName: "carol", DN: "CN=carol", UserAccountControl: "512", LastLogonTimestamp: old, Slots: []directory.Slot{
			{Slot: 1, LicenseVersion: "C50-6.0x-S", ExpireDate: active, ManagingLS: lsA},
			{Slot: 3, LicenseVersion: "393218", ManagingLS: lsA}}},
		// expired only; never logged on (not a candidate: nothing active to reclaim).
		directory.User{SAMAccountName: "dave", DN: "CN=dave", UserAccountControl: "512", Slots: []directory.Slot{
			{Slot: 4, LicenseVersion: "393218", ExpireDate: expired, ManagingLS: lsB}}},
		// unreadable expiry.
		directory.User{SAMAccountName: "erin", DN: "CN=erin", UserAccountControl: "512", LastLogonTimestamp: recent, Slots: []directory.Slot{
			{Slot: 1, LicenseVersion: "393218", ExpireDate: "soon", ManagingLS: lsA}}},
	)
	s := directory.Summarise([]*directory.Evidence{d}, evalAt, 90*24*time.Hour)
	if !s.Known() || s.IgnoredSlots != 1 {
		t.Fatalf("known %v ignored %d", s.Known(), s.IgnoredSlots)
	}
	got := map[string]directory.VersionTotal{}
	for _, v := range s.Versions {
		got[v.Version] = v
	}
	if v := got["2012"]; v.Active != 1 || v.Expired != 1 || v.Unknown != 1 || v.VersionID != 4 {
		t.Errorf("2012: %+v; want alice active once (two servers), dave expired, erin unknown", v)
	}
	if v := got["2008"]; v.Active != 1 || v.VersionID != 2 {
		t.Errorf("2008: %+v", v)
	}
	if v := got["unknown version (C50-6.0x-S)"]; v.Active != 1 || v.VersionID != 0 || v.RawVersions[0] != "C50-6.0x-S" {
		t.Errorf("unknown: %+v (all: %+v)", v, s.Versions)
	}
	if m := s.ActiveByVersionID(); m[4] != 1 || m[2] != 1 || len(m) != 2 {
		t.Errorf("ActiveByVersionID %v", m)
	}
	rows := map[[3]string]int{}
	for _, r := range s.Rows {
		rows[[3]string{r.RawVersion, r.LicenseServer, r.State}] = r.Users
	}
	if rows[[3]string{"393218", lsA, "active"}] != 1 || rows[[3]string{"393218", lsB, "expired"}] != 2 ||
		rows[[3]string{"393218", lsA, "unknown expiry"}] != 1 || len(rows) != 5 {
		t.Errorf("rows %v", rows)
	}
	if len(s.Reclaim) != 2 || s.Reclaim[0].User != "bob" || !s.Reclaim[0].Disabled || s.Reclaim[1].User != "carol" {
		t.Errorf("reclaim %+v", s.Reclaim)
	}
}

func TestSummariseFailedDomainIsUnknown(t *testing.T) {
	ok := doc(directory.User{DN: "CN=a", Slots: []directory.Slot{{Slot: 1, LicenseVersion: "393218", ExpireDate: slapdtest.GeneralizedTime(evalAt.Add(time.Hour))}}})
	failed := directory.Failed("other.example.com", "DC=other", "ldap", evalAt, evidence.FailConnect, "connect: refused", nil)
	s := directory.Summarise([]*directory.Evidence{ok, failed}, evalAt, 90*24*time.Hour)
	if s.Known() || s.Complete || len(s.Domains) != 2 || s.Domains[1].Class != "connect" {
		t.Fatalf("a failed domain must make figures unknown: %+v", s)
	}
}

// TestSummariseFleet interprets the live fleet read from slapd.
func TestSummariseFleet(t *testing.T) {
	s := server(t)
	ev := directory.Collect(context.Background(), target(s, s.LDAPSURL))
	if !ev.Collected() {
		t.Fatal(ev.Coverage)
	}
	sum := directory.Summarise([]*directory.Evidence{ev}, evalAt, 90*24*time.Hour)
	// Expected from the generator's rules (see fleet): count each user × version once.
	type key struct{ version, state string }
	want := map[key]int{}
	reclaim := 0
	versions := []string{"2008", "2012", "2012", "unknown version (7)", "unknown version (C50-6.0x-S)"}
	for i := 0; i < fleetSize; i++ {
		var act []string
		if i%40 != 5 {
			st := "active"
			if i%3 == 0 {
				st = "expired"
			}
			want[key{versions[i%5], st}]++
			if st == "active" {
				act = append(act, versions[i%5])
			}
		} else {
			want[key{"2012", "active"}]++
			act = append(act, "2012")
		}
		if len(act) > 0 && (i%50 == 0 || i%11 == 0 || i%7 == 0) {
			reclaim++
		}
	}
	for _, v := range sum.Versions {
		if v.Active != want[key{v.Version, "active"}] || v.Expired != want[key{v.Version, "expired"}] || v.Unknown != 0 {
			t.Errorf("%s: %+v; want active %d expired %d", v.Version, v, want[key{v.Version, "active"}], want[key{v.Version, "expired"}])
		}
	}
	if len(sum.Versions) != 4 {
		t.Errorf("versions %+v", sum.Versions)
	}
	if len(sum.Reclaim) != reclaim || sum.IgnoredSlots != fleetSize/250+1 {
		t.Errorf("reclaim %d want %d; ignored %d", len(sum.Reclaim), reclaim, sum.IgnoredSlots)
	}
	// The user holding CALs from two license servers appears under both servers.
	servers := map[string]int{}
	for _, r := range sum.Rows {
		if r.RawVersion == "393218" && r.State == "active" {
			servers[r.LicenseServer] += r.Users
		}
	}
	if servers[lsA] == 0 || servers[lsB] == 0 {
		t.Errorf("rows by server %v", servers)
	}
}
