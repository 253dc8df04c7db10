package directory_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest/kdctest"
	"github.com/rdsaudit/rdsaudit/directory"
	"github.com/rdsaudit/rdsaudit/directory/slapdtest"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// TestCollectKerberos binds with SASL GSSAPI against a real slapd whose service key
// comes from a real MIT KDC: over ldaps:// and over ldap:// + StartTLS it reads the same
// holders as a simple bind. A wrong password is one refused logon at the KDC (auth, not
// retried against the second URL); an SPN the KDC does not know says to set spn.
func TestCollectKerberos(t *testing.T) {
	kdc := kdctest.Start(t, "CORP.EXAMPLE.COM")
	s := slapdtest.Start(t, slapdtest.Options{Users: fleet()[:300], KDC: kdc})
	krb := func(url, pw string, spn string) directory.Target {
		tg := target(s, url)
		tg.BindName = "rdsaudit-reader@corp.example.com"
		tg.Password = func() (string, error) { return pw, nil }
		tg.Kerberos = &directory.Kerberos{Krb5Conf: kdc.Krb5Conf, SPN: spn}
		return tg
	}
	simple := directory.Collect(context.Background(), target(s, s.LDAPSURL))
	if !simple.Collected() {
		t.Fatalf("simple bind: %+v", simple.Coverage)
	}
	// ldaps://localhost: the SPN is ldap/localhost by default; ldap://127.0.0.1 (StartTLS)
	// needs the spn set: an IP address is no Kerberos service name.
	for url, spn := range map[string]string{s.LDAPSURL: "", s.LDAPURL: "ldap/localhost"} {
		ev := directory.Collect(context.Background(), krb(url, s.ReaderPassword, spn))
		if !ev.Collected() || len(ev.Users) != len(simple.Users) || len(ev.Users) == 0 || ev.Bind != "kerberos" || simple.Bind != "simple" {
			t.Fatalf("kerberos over %s: %+v, %d holders, want %d", url, ev.Coverage, len(ev.Users), len(simple.Users))
		}
	}
	if !strings.Contains(kdc.Log(), "ldap/localhost@CORP.EXAMPLE.COM") {
		t.Errorf("no service ticket for ldap/localhost in the KDC log:\n%s", kdc.Log())
	}

	before := strings.Count(kdc.Log(), "PREAUTH_FAILED")
	bad := krb(s.LDAPSURL, "Wrong-S3cret-never-print", "")
	bad.URLs = []string{s.LDAPSURL, s.LDAPURL}
	ev := directory.Collect(context.Background(), bad)
	if ev.Collected() || ev.Coverage.Class != evidence.FailAuth || !strings.Contains(ev.Coverage.Message, "refused by the KDC") ||
		strings.Contains(ev.Coverage.Message, "Wrong-S3cret") {
		t.Errorf("wrong password: %+v", ev.Coverage)
	}
	time.Sleep(100 * time.Millisecond) // the KDC's log is written after its answer
	if n := strings.Count(kdc.Log(), "PREAUTH_FAILED") - before; n != 1 {
		t.Errorf("%d refused logons at the KDC for two URLs, want 1", n)
	}

	for _, tg := range []directory.Target{krb(s.LDAPSURL, s.ReaderPassword, "ldap/dc9.corp.example.com"), krb(s.LDAPURL, s.ReaderPassword, "")} {
		ev = directory.Collect(context.Background(), tg)
		if ev.Collected() || ev.Coverage.Class != evidence.FailAuth || !strings.Contains(ev.Coverage.Message, "set the domain's spn") {
			t.Errorf("unknown SPN: %+v", ev.Coverage)
		}
	}

	// check's probe takes the same Kerberos bind.
	if r := directory.Check(context.Background(), krb(s.LDAPSURL, s.ReaderPassword, "")); !r.OK {
		t.Errorf("check with kerberos: %+v", r)
	}
}
