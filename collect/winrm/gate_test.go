package winrm

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/evidence"
)

// TestCredGate drives the gate's states directly: one probe at a time, waiters honour
// their context, opening admits everyone, retiring refuses everyone.
func TestCredGate(t *testing.T) {
	g := newCredGate()
	release, err := g.enter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.enter(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("second probe while the first is out: %v, want context.Canceled", err)
	}
	release()
	release() // idempotent: must not free a slot it does not hold
	r2, err := g.enter(context.Background())
	if err != nil {
		t.Fatalf("probe after release: %v", err)
	}
	waiting := make(chan error)
	go func() { _, err := g.enter(context.Background()); waiting <- err }()
	g.markOpen(evidence.HostRef{})
	if err := <-waiting; err != nil {
		t.Fatalf("waiter after open: %v", err)
	}
	r2()
	for i := 0; i < 3; i++ { // open: no limit, no wait (even on a done context)
		if _, err := g.enter(ctx); err != nil {
			t.Fatal(err)
		}
	}

	g = newCredGate()
	r3, _ := g.enter(context.Background())
	go func() { _, err := g.enter(context.Background()); waiting <- err }()
	g.retire("")
	if err := <-waiting; !errors.Is(err, errCredentialRetired) {
		t.Fatalf("waiter after retire: %v", err)
	}
	r3()
	g.markOpen(evidence.HostRef{})
	if _, err := g.enter(context.Background()); !errors.Is(err, errCredentialRetired) {
		t.Fatalf("retired and open: %v, want retired", err)
	}
}

// TestAccountKey: the spellings of one account give one key; different accounts, and
// a bare user against a DOMAIN\user, stay apart.
func TestAccountKey(t *testing.T) {
	same := [][]string{
		{`CONTOSO\svc`, `contoso\SVC`, `svc@CONTOSO`, `SVC@contoso`, ` CONTOSO\svc `},
		{`svc@contoso.example`, `svc@CONTOSO.EXAMPLE`, `CONTOSO.EXAMPLE\Svc`},
		{`svc`, `SVC`},
	}
	seen := map[string]string{}
	for _, group := range same {
		k := accountKey(group[0])
		for _, u := range group[1:] {
			if got := accountKey(u); got != k {
				t.Errorf("accountKey(%q) = %q, accountKey(%q) = %q: want one account", group[0], k, u, got)
			}
		}
		if prev, ok := seen[k]; ok {
			t.Errorf("%q and %q share key %q", prev, group[0], k)
		}
		seen[k] = group[0]
	}
	for _, u := range []string{`CONTOSO\other`, `FABRIKAM\svc`, `other`} {
		if prev, ok := seen[accountKey(u)]; ok {
			t.Errorf("%q shares key %q with %q", u, accountKey(u), prev)
		}
	}
	if a, b := (Credential{Name: "a"}).key(), (Credential{Name: "b"}).key(); a == b {
		t.Errorf("entries without a user name share key %q", a)
	}
	if a, b := (Credential{Name: "a", Username: `CONTOSO\svc`}).key(), (Credential{Name: "b", Username: `contoso\SVC`}).key(); a != b {
		t.Errorf("one account, two entries: keys %q and %q", a, b)
	}
}

// TestAccountKerberos: with Kerberos the account is the principal asked of the KDC, so
// a bare user, DOMAIN\user and user@REALM in the collector's realm are one account.
func TestAccountKerberos(t *testing.T) {
	c, err := New(Options{Auth: AuthKerberos, Krb5ConfPath: "krb5.conf", KrbRealm: "CONTOSO.EXAMPLE"}, CredentialMap{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{`svc`, `CONTOSO\svc`, `svc@contoso.example`, `SVC`} {
		if got := c.account(Credential{Name: u, Username: u}); got != "svc@contoso.example" {
			t.Errorf("kerberos account(%q) = %q, want svc@contoso.example", u, got)
		}
	}
	if a, b := c.gate(Credential{Name: "a", Username: "svc", Password: "p"}), c.gate(Credential{Name: "b", Username: `CONTOSO\SVC`, Password: "q"}); a == b || a.acct != b.acct {
		t.Error("two passwords of one account: want two password gates sharing one account gate")
	}
}

// Redaction is by token: a short password never turns "x509" into "[REDACTED]509"
// (which would give it away); a real one is hidden wherever it stands whole.
func TestScrubByToken(t *testing.T) {
	if got := scrub("tls: x509: certificate signed by unknown authority", Credential{Username: "u", Password: "x"}); got != "tls: x509: certificate signed by unknown authority" {
		t.Errorf("short password: %q", got)
	}
	pw := "Winter2026!x"
	got := scrub(`auth "`+pw+`" refused; query p=`+url.QueryEscape(pw), Credential{Username: `LAB\u`, Password: pw})
	if strings.Contains(got, pw) || strings.Contains(got, url.QueryEscape(pw)) || !strings.Contains(got, "[REDACTED]") {
		t.Errorf("password not hidden: %q", got)
	}
}

// TestCredGateSuspect: while a proven password is re-checked, new hosts wait (their
// context bounds the wait); the re-check's end lets them in; retiring refuses them.
func TestCredGateSuspect(t *testing.T) {
	g := newCredGate()
	g.markOpen(evidence.HostRef{Name: "a"})
	g.mu.Lock()
	g.suspect = true
	g.broadcast()
	g.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.enter(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("suspect gate: %v, want to wait (context.Canceled)", err)
	}
	waiting := make(chan error)
	go func() { _, err := g.enter(context.Background()); waiting <- err }()
	g.mu.Lock()
	g.suspect = false
	g.broadcast()
	g.mu.Unlock()
	if err := <-waiting; err != nil {
		t.Fatalf("after the re-check: %v", err)
	}
	g.mu.Lock()
	g.suspect = true
	g.broadcast()
	g.mu.Unlock()
	go func() { _, err := g.enter(context.Background()); waiting <- err }()
	g.retire("changed")
	if err := <-waiting; !errors.Is(err, errCredentialRetired) {
		t.Fatalf("retired while suspect: %v", err)
	}
	// Proven hosts are remembered, most recent last, bounded, without repeats.
	for _, n := range []string{"b", "c", "a", "d", "e"} {
		g.markOpen(evidence.HostRef{Name: n})
	}
	var names []string
	for _, h := range g.hosts {
		names = append(names, h.Name)
	}
	if got := strings.Join(names, ","); got != "c,a,d,e" {
		t.Errorf("proven hosts %s, want c,a,d,e", got)
	}
}

// TestParseFaultPrefersSpecificMessage: Windows' shell-not-found fault carries the
// subcode's generic s:Reason and the specific f:Message; the message is kept.
func TestParseFaultPrefersSpecificMessage(t *testing.T) {
	body := `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"><s:Body><s:Fault>` +
		`<s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>w:InvalidSelectors</s:Value></s:Subcode></s:Code>` +
		`<s:Reason><s:Text xml:lang="en-US">The WS-Management service cannot process the request because the request contained invalid selectors for the resource. </s:Text></s:Reason>` +
		`<s:Detail><f:WSManFault Code="2150858843" Machine="h"><f:Message>The request for the Windows Remote Shell with ShellId 1 failed because the shell was not found on the server. </f:Message></f:WSManFault></s:Detail>` +
		`</s:Fault></s:Body></s:Envelope>`
	f := parseFault(body, 500)
	if f == nil || !strings.Contains(f.Error(), "shell was not found") || !errors.Is(f, ErrShellNotFound) {
		t.Fatalf("fault %v", f)
	}
}
