package directory

import (
	"context"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/rdsaudit/rdsaudit/evidence"
)

// CheckResult is the preflight of one domain (rdsaudit check): reached, TLS, bound,
// and the base DN read — no user object is read.
type CheckResult struct {
	Domain string
	// URL is the URL that passed, or the last one tried.
	URL      string
	OK       bool
	Class    evidence.FailureClass
	Message  string // what failed and what to check; never a password
	Attempts []Attempt
	Duration time.Duration
}

// Check connects to the domain's URLs in order as Collect does (TCP, TLS or StartTLS,
// bind) and reads the base DN's entry alone (scope base, no attributes): proof that
// the bind account can reach base_dn. A refused bind is not retried against the next
// URL, as in Collect.
func Check(ctx context.Context, t Target) CheckResult {
	start := time.Now()
	if t.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.Timeout)
		defer cancel()
	}
	res := CheckResult{Domain: t.Name}
	if t.Kerberos != nil {
		k, aerr := t.Kerberos.logon(t)
		if aerr != nil {
			res.Class, res.Message, res.Duration = aerr.class, aerr.msg, time.Since(start)
			return res
		}
		defer k.cl.Destroy()
		t.Kerberos = k
	}
	var last *attemptError
	for _, raw := range t.URLs {
		res.URL = raw
		_, aerr := connectURL(ctx, t, raw, probe)
		if aerr == nil {
			res.OK, res.Duration = true, time.Since(start)
			return res
		}
		res.Attempts = append(res.Attempts, Attempt{URL: raw, Class: aerr.class, Message: aerr.msg})
		last = aerr
		if aerr.final || ctx.Err() != nil {
			break
		}
	}
	if last == nil {
		last = &attemptError{class: evidence.FailConnect, msg: "no URL configured"}
	}
	res.Class, res.Message, res.Duration = last.class, last.msg, time.Since(start)
	switch {
	case strings.Contains(last.msg, "allow_plain_ldap"):
		res.Message += "; give the DC a certificate (LDAP over TLS) or use its ldaps:// URL"
	case !strings.Contains(last.msg, "ca_bundle"):
		res.Message += remedy(last.class)
	}
	return res
}

// probe binds and reads the base DN's entry (attributes "1.1": none).
func probe(ctx context.Context, t Target, raw string, conn *ldap.Conn, cc *countingConn) (*Evidence, *attemptError) {
	if ae := bind(ctx, t, raw, conn, cc); ae != nil {
		return nil, ae
	}
	req := ldap.NewSearchRequest(t.BaseDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"1.1"}, nil)
	sr, err := conn.SearchWithPaging(req, 1)
	if err != nil {
		ae := classify(ctx, cc, err, "read base_dn")
		ae.final = true
		return nil, ae
	}
	if len(sr.Entries) == 0 {
		// AD and OpenLDAP answer an unreadable base with no entry rather than an error.
		return nil, &attemptError{class: evidence.FailAccessDenied, final: true,
			msg: "read base_dn: the bind account sees no entry at " + t.BaseDN}
	}
	_ = conn.Unbind()
	return &Evidence{}, nil
}

// remedy is what to check for a failure class.
func remedy(c evidence.FailureClass) string {
	switch c {
	case evidence.FailDNS:
		return "; check the URL's host name resolves from this machine"
	case evidence.FailConnect:
		return "; check the domain controller listens on that port (636 ldaps, 389 ldap) and no firewall is in between"
	case evidence.FailTLS:
		return "; check the DC's certificate chains to ca_bundle and names the URL's host (or server_name)"
	case evidence.FailAuth:
		return "; check the credential's username (UPN or DN) and password"
	case evidence.FailAccessDenied:
		return "; check base_dn and that the bind account may read it"
	case evidence.FailTimeout:
		return "; check the DC answers within directory.timeout"
	}
	return ""
}
