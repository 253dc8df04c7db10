package directory_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/rdsaudit/rdsaudit/directory"
	"github.com/rdsaudit/rdsaudit/directory/slapdtest"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// evalAt is the evaluation time the generated fleet is built around.
var evalAt = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

const (
	lsA = "00252-11111-22222-AT477"
	lsB = "00252-33333-44444-AT478"
)

// fleetSize is above the server's size limit (500) and page size (1000) several times.
const fleetSize = 2600

// fleet generates the holders (and 40 users without msTS attributes, which the search
// must not return). Patterns, by index i:
//   - slot 1 on every i%40 != 5: version versions[i%5], license server lsA on even i,
//     lsB on odd; expired when i%3 == 0 (30 days ago), else active (60 days ahead)
//   - i%100 == 1: slot 2 with the same version from the other license server (one user,
//     one version, two license servers: counted once)
//   - i%250 == 2: msTSLicenseVersion3 and msTSManagingLS3 without msTSExpireDate3 (not a CAL)
//   - i%40 == 5: no slot 1; slot 4 only (2012, lsA, active)
//   - disabled (userAccountControl 514) when i%50 == 0
//   - lastLogonTimestamp 200 days ago when i%7 == 0, absent when i%11 == 0, else yesterday
func fleet() []slapdtest.User {
	versions := []string{"393216", "393218", "393218", "7", "C50-6.0x-S"}
	var us []slapdtest.User
	for i := 0; i < fleetSize; i++ {
		a := map[string]string{
			"userPrincipalName":  fmt.Sprintf("u%05d@corp.example.com", i),
			"userAccountControl": "512",
		}
		if i%50 == 0 {
			a["userAccountControl"] = "514"
		}
		switch {
		case i%11 == 0:
		case i%7 == 0:
			a["lastLogonTimestamp"] = slapdtest.FileTime(evalAt.Add(-200 * 24 * time.Hour))
		default:
			a["lastLogonTimestamp"] = slapdtest.FileTime(evalAt.Add(-24 * time.Hour))
		}
		exp := slapdtest.GeneralizedTime(evalAt.Add(60 * 24 * time.Hour))
		if i%3 == 0 {
			exp = slapdtest.GeneralizedTime(evalAt.Add(-30 * 24 * time.Hour))
		}
		ls, other := lsA, lsB
		if i%2 == 1 {
			ls, other = lsB, lsA
		}
		if i%40 != 5 {
			a["msTSLicenseVersion"], a["msTSExpireDate"], a["msTSManagingLS"] = versions[i%5], exp, ls
		} else {
			a["msTSLicenseVersion4"], a["msTSExpireDate4"], a["msTSManagingLS4"] = "393218", slapdtest.GeneralizedTime(evalAt.Add(10*24*time.Hour)), lsA
		}
		if i%100 == 1 {
			a["msTSLicenseVersion2"], a["msTSExpireDate2"], a["msTSManagingLS2"] = versions[i%5], exp, other
		}
		if i%250 == 2 {
			a["msTSLicenseVersion3"], a["msTSManagingLS3"] = "393218", lsA
		}
		us = append(us, slapdtest.User{CN: fmt.Sprintf("u%05d", i), Attrs: a})
	}
	for i := 0; i < 40; i++ {
		us = append(us, slapdtest.User{CN: fmt.Sprintf("plain%03d", i), Attrs: map[string]string{"userAccountControl": "512"}})
	}
	return us
}

// server starts the fleet's slapd for one test.
func server(t *testing.T) *slapdtest.Server {
	t.Helper()
	s := slapdtest.Start(t, slapdtest.Options{Users: fleet()})
	t.Logf("slapd with %d users ready in %s", fleetSize+40, s.Setup)
	return s
}

func target(s *slapdtest.Server, url string) directory.Target {
	return directory.Target{
		Name: "corp.example.com", BaseDN: slapdtest.BaseDN, URLs: []string{url},
		BindName: s.ReaderDN, Password: func() (string, error) { return s.ReaderPassword, nil },
		RootCAs: s.CA, PageSize: 1000, MaxEntries: 100_000, MaxBytes: 64 << 20, Timeout: 30 * time.Second,
		Now: func() time.Time { return evalAt },
	}
}

func TestCollectLDAPSPaged(t *testing.T) {
	s := server(t)
	ev := directory.Collect(context.Background(), target(s, s.LDAPSURL))
	if !ev.Collected() {
		t.Fatalf("coverage %+v", ev.Coverage)
	}
	if len(ev.Users) != fleetSize {
		t.Fatalf("read %d holders, want %d (the 40 users without msTS attributes excluded)", len(ev.Users), fleetSize)
	}
	if ev.Pages != 3 || ev.Server != s.LDAPSURL {
		t.Errorf("pages %d, server %s; want 3 pages of at most 1000", ev.Pages, ev.Server)
	}
	// Every value round-trips exactly: what was written is what was read.
	want := map[string]slapdtest.User{}
	for _, u := range fleet() {
		want["cn="+strings.ToLower(u.CN)+",ou=users,"+strings.ToLower(slapdtest.BaseDN)] = u
	}
	for _, u := range ev.Users {
		w, ok := want[strings.ToLower(u.DN)]
		if !ok {
			t.Fatalf("unexpected entry %s", u.DN)
		}
		if u.SAMAccountName != w.CN || u.UserPrincipalName != w.Attrs["userPrincipalName"] || u.UserAccountControl != w.Attrs["userAccountControl"] ||
			u.LastLogonTimestamp != w.Attrs["lastLogonTimestamp"] {
			t.Fatalf("%s: read %+v, wrote %+v", u.DN, u, w.Attrs)
		}
		n := 0
		for _, sl := range u.Slots {
			suf := ""
			if sl.Slot > 1 {
				suf = strconv.Itoa(sl.Slot)
			}
			if sl.LicenseVersion != w.Attrs["msTSLicenseVersion"+suf] || sl.ManagingLS != w.Attrs["msTSManagingLS"+suf] ||
				sl.ExpireDate != w.Attrs["msTSExpireDate"+suf] {
				t.Fatalf("%s slot %d: read %+v, wrote %+v", u.DN, sl.Slot, sl, w.Attrs)
			}
			n++
		}
		slots := 0
		for k := 1; k <= 4; k++ {
			suf := ""
			if k > 1 {
				suf = strconv.Itoa(k)
			}
			if w.Attrs["msTSLicenseVersion"+suf] != "" || w.Attrs["msTSExpireDate"+suf] != "" {
				slots++
			}
		}
		if n != slots {
			t.Fatalf("%s: %d slots read, %d written", u.DN, n, slots)
		}
	}
}

// TestUnpagedHitsServerLimit shows the server limit is below the fleet: only paging reads it.
func TestUnpagedHitsServerLimit(t *testing.T) {
	s := server(t)
	c, err := ldap.DialURL(s.LDAPURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Bind(s.ReaderDN, s.ReaderPassword); err != nil {
		t.Fatal(err)
	}
	res, err := c.Search(ldap.NewSearchRequest(slapdtest.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		directory.Filter, []string{"cn"}, nil))
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) || len(res.Entries) != 500 {
		t.Fatalf("unpaged search: %d entries, %v; want 500 and sizeLimitExceeded", len(res.Entries), err)
	}
	// The reader cannot write: the account is read-only, as rdsaudit's should be.
	err = c.Modify(&ldap.ModifyRequest{DN: "CN=u00001,OU=Users," + slapdtest.BaseDN,
		Changes: []ldap.Change{{Operation: ldap.ReplaceAttribute, Modification: ldap.PartialAttribute{Type: "msTSLicenseVersion", Vals: []string{"1"}}}}})
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights) {
		t.Errorf("reader modify: %v, want insufficientAccessRights", err)
	}
}

func TestCollectStartTLSAndPageOverflow(t *testing.T) {
	s := server(t)
	tg := target(s, s.LDAPURL)
	tg.ServerName = "localhost"
	tg.PageSize = 5000 // above the server's 1000: the server caps pages, paging still reads all
	ev := directory.Collect(context.Background(), tg)
	if !ev.Collected() || len(ev.Users) != fleetSize {
		t.Fatalf("StartTLS: %+v, %d users", ev.Coverage, len(ev.Users))
	}
	if ev.Pages < 3 || ev.PageSize > 1000 {
		t.Errorf("pages %d of %d: the server's page cap was not exercised", ev.Pages, ev.PageSize)
	}
}

func TestCollectFailures(t *testing.T) {
	s := server(t)
	plain := slapdtest.Start(t, slapdtest.Options{NoTLS: true, Users: fleet()[:3]})
	for _, tt := range []struct {
		name  string
		mod   func(*directory.Target)
		class evidence.FailureClass
		text  string
		tries int
	}{
		{"wrong password", func(tg *directory.Target) {
			tg.Password = func() (string, error) { return "wrong", nil }
			tg.URLs = append(tg.URLs, s.LDAPURL) // a second URL must not be tried
		}, evidence.FailAuth, "Invalid Credentials (LDAP 49); not retried", 1},
		{"empty password", func(tg *directory.Target) { tg.Password = func() (string, error) { return "", nil } }, evidence.FailAuth, "no bind name or password", 1},
		{"unreachable", func(tg *directory.Target) { tg.URLs = []string{"ldaps://127.0.0.1:1"} }, evidence.FailConnect, "connection refused", 1},
		{"dns", func(tg *directory.Target) { tg.URLs = []string{"ldaps://no-such-dc.invalid"} }, evidence.FailDNS, "resolve no-such-dc.invalid", 1},
		{"untrusted certificate", func(tg *directory.Target) { tg.RootCAs = nil }, evidence.FailTLS, "certificate not trusted", 1},
		{"StartTLS refused", func(tg *directory.Target) {
			tg.URLs = []string{plain.LDAPURL}
			tg.BindName, tg.Password = plain.ReaderDN, func() (string, error) { return plain.ReaderPassword, nil }
		}, evidence.FailTLS, "StartTLS refused or failed, and plain LDAP is not allowed", 1},
		{"max entries", func(tg *directory.Target) { tg.MaxEntries = 1500 }, directory.FailSizeLimit, "more than 1500 user objects", 1},
		{"max bytes", func(tg *directory.Target) { tg.MaxBytes = 200_000 }, directory.FailSizeLimit, "directory.max_bytes", 1},
		{"failover after connect", func(tg *directory.Target) {
			tg.URLs = []string{"ldaps://127.0.0.1:1", "ldaps://127.0.0.1:2"}
		}, evidence.FailConnect, "(2 URLs tried)", 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tg := target(s, s.LDAPSURL)
			tt.mod(&tg)
			ev := directory.Collect(context.Background(), tg)
			if ev.Collected() || ev.Coverage.Class != tt.class || !strings.Contains(ev.Coverage.Message, tt.text) || len(ev.Coverage.Attempts) != tt.tries {
				t.Fatalf("coverage %+v; want class %s with %q after %d attempts", ev.Coverage, tt.class, tt.text, tt.tries)
			}
			if len(ev.Users) != 0 {
				t.Errorf("a failed domain kept %d users", len(ev.Users))
			}
			if strings.Contains(ev.Coverage.Message, s.ReaderPassword) {
				t.Errorf("password in message")
			}
		})
	}
	t.Run("server total limit", func(t *testing.T) {
		capped := slapdtest.Start(t, slapdtest.Options{Users: fleet(), PagedTotal: 1200})
		tg := target(capped, capped.LDAPSURL)
		ev := directory.Collect(context.Background(), tg)
		if ev.Collected() || ev.Coverage.Class != directory.FailSizeLimit || !strings.Contains(ev.Coverage.Message, "figures unknown") {
			t.Fatalf("server prtotal 1200: %+v", ev.Coverage)
		}
	})
	t.Run("plain allowed", func(t *testing.T) {
		tg := target(s, plain.LDAPURL)
		tg.BindName, tg.Password = plain.ReaderDN, func() (string, error) { return plain.ReaderPassword, nil }
		tg.AllowPlainLDAP = true
		if ev := directory.Collect(context.Background(), tg); !ev.Collected() || len(ev.Users) != 3 {
			t.Fatalf("allow_plain_ldap: %+v %d", ev.Coverage, len(ev.Users))
		}
	})
}

func TestCollectPseudonymised(t *testing.T) {
	s := server(t)
	tg := target(s, s.LDAPSURL)
	tg.PseudonymKey = []byte("k1")
	ev := directory.Collect(context.Background(), tg)
	if !ev.Collected() || !ev.Pseudonymised {
		t.Fatal(ev.Coverage)
	}
	for _, u := range ev.Users {
		if strings.Contains(strings.ToLower(u.DN+u.SAMAccountName+u.UserPrincipalName), "u0") {
			t.Fatalf("name survived: %+v", u)
		}
	}
	want := directory.Pseudonym([]byte("k1"), "CN=u00001,OU=Users,"+slapdtest.BaseDN)
	found := false
	for _, u := range ev.Users {
		found = found || u.DN == want
	}
	if !found {
		t.Errorf("no user with the keyed hash of u00001's DN %s", want)
	}
	s2 := summaryOf(t, []*directory.Evidence{ev})
	if s2.Versions[0].Active == 0 {
		t.Errorf("pseudonymised evidence counts nothing: %+v", s2.Versions)
	}
}

func summaryOf(t *testing.T, docs []*directory.Evidence) *directory.Summary {
	t.Helper()
	return directory.Summarise(docs, evalAt, 90*24*time.Hour)
}

func TestCollectTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // accepts and never answers, as a hung domain controller
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for _, scheme := range []string{"ldaps", "ldap"} {
		tg := directory.Target{Name: "corp.example.com", BaseDN: slapdtest.BaseDN, URLs: []string{scheme + "://" + l.Addr().String()},
			BindName: "x", Password: func() (string, error) { return "y", nil }, Timeout: 500 * time.Millisecond}
		ev := directory.Collect(context.Background(), tg)
		if ev.Coverage.Class != evidence.FailTimeout {
			t.Errorf("%s: %+v, want timeout", scheme, ev.Coverage)
		}
	}
}
