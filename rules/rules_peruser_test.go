package rules

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/directory"
	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
)

const (
	testLSID  = "00252-11111-22222-AT477"
	otherLSID = "00252-99999-99999-AT999"
)

// dirUsers builds a directory summary at now(): n users holding an active CAL of raw
// version ver from license server ls, the first disabled of them disabled.
func dirUsers(ver, ls string, n, disabled int) func(*fleet) {
	return func(f *fleet) {
		active := now().Add(30*24*time.Hour).UTC().Format("20060102150405") + ".0Z"
		doc := &directory.Evidence{Schema: directory.Schema, Domain: "corp.example.com", Collector: "test", CollectedAt: now(),
			Coverage: directory.Coverage{Status: directory.StatusCollected}}
		for i := 0; i < n; i++ {
			name := "u" + strconv.Itoa(i)
			u := directory.User{SAMAccountName: name, DN: "CN=" + name,
				UserAccountControl: "512", LastLogonTimestamp: fileTime(now().Add(-24 * time.Hour)),
				Slots: []directory.Slot{{Slot: 1, LicenseVersion: ver, ExpireDate: active, ManagingLS: ls}}}
			if i < disabled {
				u.UserAccountControl = "514"
			}
			doc.Users = append(doc.Users, u)
		}
		f.perUser = directory.Summarise([]*directory.Evidence{doc}, now(), 90*24*time.Hour)
	}
}

// withUnreadableExpiry adds n users of version ver whose msTSExpireDate cannot be read.
func withUnreadableExpiry(ver, ls string, active, n int) func(*fleet) {
	return func(f *fleet) {
		exp := now().Add(30*24*time.Hour).UTC().Format("20060102150405") + ".0Z"
		doc := &directory.Evidence{Schema: directory.Schema, Domain: "corp.example.com", Collector: "test", CollectedAt: now(),
			Coverage: directory.Coverage{Status: directory.StatusCollected}}
		for i := 0; i < active+n; i++ {
			name := "u" + strconv.Itoa(i)
			e := exp
			if i >= active {
				e = "not a date"
			}
			doc.Users = append(doc.Users, directory.User{SAMAccountName: name, DN: "CN=" + name, UserAccountControl: "512",
				LastLogonTimestamp: fileTime(now().Add(-24 * time.Hour)),
				Slots:              []directory.Slot{{Slot: 1, LicenseVersion: ver, ExpireDate: e, ManagingLS: ls}}})
		}
		f.perUser = directory.Summarise([]*directory.Evidence{doc}, now(), 90*24*time.Hour)
	}
}

func fileTime(t time.Time) string {
	return strconv.FormatInt(t.UTC().UnixNano()/100+116444736000000000, 10)
}

func dirFailed(f *fleet) {
	f.perUser = directory.Summarise([]*directory.Evidence{
		directory.Failed("corp.example.com", "DC=corp", "ldap", now(), evidence.FailAuth, "bind: Invalid Credentials (LDAP 49)", nil)}, now(), 90*24*time.Hour)
}

func perUserReport(issued int64) func(*fleet) {
	return func(f *fleet) {
		f.host("LS01").LicenseServer.Reports = []evidence.LicenseReport{{FileName: "r.xml", GeneratedDate: "20261001000000.000000-000",
			Summary: []evidence.LicenseReportEntry{{ProductVersionID: p64(4), IssuedLicenses: p64(issued), TSCALType: p64(1)}}}}
	}
}

func mapLS(pairs string) func(*fleet) {
	return func(f *fleet) {
		rs := DefaultRuleSet()
		rs.Rules = map[string]RuleConfig{"RDS-PU-002": {Params: map[string]any{"license_server_ids": pairs}}}
		f.rs = rs
	}
}

func perUserCases() []ruleCase {
	return []ruleCase{
		// PU-001
		{rule: "RDS-PU-001", name: "no directory", subject: "directory", want: NotApplicable},
		{rule: "RDS-PU-001", name: "within", subject: "per_user/2012", want: Pass, setup: both(dirUsers("393218", testLSID, 10, 0), ledger(ent("per_user", 4, 10, 100)))},
		// Holders whose expiry cannot be read may be active: not a pass (review of issue 15).
		{rule: "RDS-PU-001", name: "unreadable expiries could exceed", subject: "per_user/2012", want: Error, contains: "exceeded by up to 2",
			setup: both(withUnreadableExpiry("393218", testLSID, 9, 3), ledger(ent("per_user", 4, 10, 100)))},
		{rule: "RDS-PU-001", name: "unreadable expiries within", subject: "per_user/2012", want: Pass,
			setup: both(withUnreadableExpiry("393218", testLSID, 5, 3), ledger(ent("per_user", 4, 10, 100)))},
		{rule: "RDS-PU-001", name: "over", subject: "per_user/2012", want: Fail, contains: "shortfall 2", setup: both(dirUsers("393218", testLSID, 12, 0), ledger(ent("per_user", 4, 10, 100)))},
		{rule: "RDS-PU-001", name: "unknown version never guessed", subject: "per_user/unknown version (C50-6.0x-S)", want: Error, contains: "maps to no confirmed CAL version",
			setup: both(dirUsers("C50-6.0x-S", testLSID, 3, 0), ledger(ent("per_user", 4, 10, 100)))},
		{rule: "RDS-PU-001", name: "directory failed: unknown, not zero", subject: "directory", want: Error, contains: "per-user figures unknown", setup: both(dirFailed, ledger(ent("per_user", 4, 10, 100)))},
		// PU-002
		{rule: "RDS-PU-002", name: "no directory", subject: "directory", want: NotApplicable},
		{rule: "RDS-PU-002", name: "mapped to inventory", subject: "license_server/" + testLSID, want: Pass, setup: both(dirUsers("393218", testLSID, 2, 0), mapLS(testLSID+"=LS01"))},
		{rule: "RDS-PU-002", name: "host name in the inventory", subject: "license_server/LS01", want: Pass, setup: dirUsers("393218", "LS01", 2, 0)},
		{rule: "RDS-PU-002", name: "mapped outside the inventory", subject: "license_server/" + otherLSID, want: Fail, setup: both(dirUsers("393218", otherLSID, 2, 0), mapLS(otherLSID+"=LS-OLD"))},
		{rule: "RDS-PU-002", name: "unmapped ID stays unknown", subject: "license_server/" + otherLSID, want: Error, contains: "unknown", setup: dirUsers("393218", otherLSID, 2, 0)},
		// PU-003
		{rule: "RDS-PU-003", name: "no report", subject: "per_user reports", want: NotApplicable, setup: dirUsers("393218", testLSID, 10, 0)},
		{rule: "RDS-PU-003", name: "agree within tolerance", subject: "per_user/2012", want: Pass, setup: both(dirUsers("393218", testLSID, 10, 0), perUserReport(11))},
		{rule: "RDS-PU-003", name: "disagree", subject: "per_user/2012", want: Fail, contains: "beyond 10%", setup: both(dirUsers("393218", testLSID, 10, 0), perUserReport(20))},
		{rule: "RDS-PU-003", name: "directory failed", subject: "directory", want: Error, setup: both(dirFailed, perUserReport(20))},
		// PU-004
		{rule: "RDS-PU-004", name: "no directory", subject: "directory", want: NotApplicable},
		{rule: "RDS-PU-004", name: "none", subject: "directory/corp.example.com", want: Pass, setup: dirUsers("393218", testLSID, 5, 0)},
		{rule: "RDS-PU-004", name: "disabled holders", subject: "directory/corp.example.com", want: Fail, wantSev: sev(SevInfo), contains: "disabled (2)", setup: dirUsers("393218", testLSID, 5, 2)},
	}
}

// TestDirectoryUsageLowerBound: the CAL position's Per User usage from the directory is
// marked a lower bound, with what it leaves out, whenever holders could not be placed:
// an unreadable expiry of the same version, or any CAL of an unmapped version.
func TestDirectoryUsageLowerBound(t *testing.T) {
	row := func(setup func(*fleet)) *PositionRow {
		t.Helper()
		f := baseFleet()
		setup(f)
		ev := f.evaluate()
		for i := range ev.Position {
			if p := &ev.Position[i]; p.CALType == facts.CALPerUser && p.VersionID == 4 && p.UsageSource == dirPositionSource {
				return p
			}
		}
		t.Fatalf("no directory per_user/2012 row in %+v", ev.Position)
		return nil
	}
	if r := row(dirUsers("393218", testLSID, 10, 0)); r.UsageLowerBound || *r.Used != 10 || strings.Contains(strings.Join(r.Notes, ";"), "lower bound") {
		t.Errorf("all placed: %+v", r)
	}
	r := row(withUnreadableExpiry("393218", testLSID, 9, 3))
	if !r.UsageLowerBound || *r.Used != 9 || !strings.Contains(strings.Join(r.Notes, ";"), "in use is at least 9, a lower bound: not counted are 3 users of this version with an unreadable msTSExpireDate") {
		t.Errorf("unreadable expiries: %+v", r)
	}
	r = row(func(f *fleet) { dirUsersVersions(f, map[string]int{"393218": 10, "C50-6.0x-S": 2}) })
	if !r.UsageLowerBound || *r.Used != 10 || !strings.Contains(strings.Join(r.Notes, ";"), "2 active or unreadable CALs of a msTSLicenseVersion mapped to no CAL release (C50-6.0x-S; possibly this version)") {
		t.Errorf("unmapped version: %+v", r)
	}
}

// dirUsersVersions replaces f's directory summary by one domain whose users hold one
// active CAL each, n of them per raw version.
func dirUsersVersions(f *fleet, n map[string]int) {
	active := now().Add(30*24*time.Hour).UTC().Format("20060102150405") + ".0Z"
	doc := &directory.Evidence{Schema: directory.Schema, Domain: "corp.example.com", Collector: "test", CollectedAt: now(),
		Coverage: directory.Coverage{Status: directory.StatusCollected}}
	i := 0
	for ver, k := range n {
		for range k {
			name := "u" + strconv.Itoa(i)
			i++
			doc.Users = append(doc.Users, directory.User{SAMAccountName: name, DN: "CN=" + name, UserAccountControl: "512",
				LastLogonTimestamp: fileTime(now().Add(-24 * time.Hour)),
				Slots:              []directory.Slot{{Slot: 1, LicenseVersion: ver, ExpireDate: active, ManagingLS: testLSID}}})
		}
	}
	f.perUser = directory.Summarise([]*directory.Evidence{doc}, now(), 90*24*time.Hour)
}
