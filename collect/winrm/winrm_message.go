package winrm

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/internal/krb"
)

// failureMessage is the message of a host's failure: the host, its endpoint and the
// user (never the password: the caller also scrubs), what failed, the error, and what
// to check. One function per failure class keeps the remedies in one place (Remedy).
func (c *Collector) failureMessage(host evidence.HostRef, cred Credential, class evidence.FailureClass, err error) string {
	ep := c.endpointOf(host)
	what, remedy := c.explain(host, cred, class, err)
	var b strings.Builder
	fmt.Fprintf(&b, "collect %s (%s as %s via %s): ", host.Name, ep.URL(), userOrEntry(cred), authName(c.opts.Auth))
	if what != "" {
		b.WriteString(what)
		b.WriteString(": ")
	}
	b.WriteString(err.Error())
	if remedy != "" {
		b.WriteString(" — ")
		b.WriteString(remedy)
	}
	return b.String()
}

func userOrEntry(cred Credential) string {
	if cred.Username != "" {
		return cred.Username
	}
	return "the credential cache of " + strconv.Quote(cred.Name)
}

func authName(auth string) string {
	switch auth {
	case AuthNTLM:
		return "NTLM"
	case AuthBasic:
		return "Basic"
	case AuthKerberos:
		return "Kerberos"
	}
	return auth
}

// explain says what failed and what to check, per failure class.
func (c *Collector) explain(host evidence.HostRef, cred Credential, class evidence.FailureClass, err error) (what, remedy string) {
	ep := c.endpointOf(host)
	user, auth := userOrEntry(cred), authName(c.opts.Auth)
	port := strconv.Itoa(ep.port)
	switch class {
	case evidence.FailAuth:
		var refusal *hostRefusal
		switch {
		case errors.Is(err, ErrNTLMNotOffered):
			return "the listener does not offer NTLM", "check the listener's authentication settings (winrm get winrm/config/service/auth: Negotiate = true) or set transport.auth to a scheme it offers"
		case errors.Is(err, ErrNoSPN):
			return "no Kerberos service principal", "set transport.kerberos.spn, or give the host its DNS name in the inventory"
		case errors.As(err, &refusal):
			return "401: credentials rejected by this host for " + user + " via " + auth,
				"they still work on " + refusal.on + ": check this host's trust with the domain, that the account may log on to it from the network (and is in Remote Management Users), and that it accepts " + auth
		case c.opts.Auth == AuthKerberos && krb.Refusal(err.Error()) != "":
			return "the KDC refused the logon of " + user, "check the password, the account's lockout and expiry state, and transport.kerberos.realm"
		case c.opts.Auth == AuthKerberos:
			spn, _ := c.spnFor(host)
			return "401: the host refused the Kerberos service ticket for " + spn,
				"check that " + spn + " is registered to this host (setspn -Q " + spn + "; set transport.kerberos.spn if not), the clock skew (at most 5 minutes), and that the host is in the realm"
		case c.opts.Auth == AuthBasic:
			return "401: credentials rejected for " + user + " via Basic", "check the password, the account's lockout state, and that the host accepts Basic (off by default on Windows: winrm get winrm/config/service/auth) — Basic needs a local account"
		}
		return "401: credentials rejected for " + user + " via " + auth, "check the password, the account's lockout state, and that the host accepts " + auth
	case evidence.FailAccessDenied:
		return user + " authenticated but was denied access", "make the account a member of Remote Management Users (or Administrators) on the host, and of Administrators on a license server"
	case evidence.FailQuota:
		return "the host's WinRM quota for " + user + " is exhausted", "close the account's shells on the host (MaxShellsPerUser, 30 by default) or raise the quota; rdsaudit opens one shell per host"
	case evidence.FailDNS:
		return "cannot resolve " + ep.addr, "check the host's address in the inventory and this machine's DNS servers"
	case evidence.FailConnect:
		return "cannot connect to " + ep.hostPort(), "check that the host is up, that a WinRM " + strings.ToUpper(schemeOf(ep)) + " listener runs on port " + port + " (winrm enumerate winrm/config/listener), and that firewalls let TCP " + port + " through"
	case evidence.FailTLS:
		return c.explainTLS(ep, err)
	case evidence.FailTimeout:
		return c.explainTimeout(ep, err)
	case evidence.FailProtocol:
		if errors.Is(err, ErrShellNotFound) {
			return "the host lost the shell", "WinRM may have restarted, or the shell outlived its idle timeout; run again"
		}
		return "unexpected WinRM answer", "check that " + ep.URL() + " is a WinRM listener and nothing else answers on port " + port
	case evidence.FailScript:
		return "the collection script failed", "the error above comes from the host's PowerShell; check the host's PowerShell and event log"
	case evidence.FailUnsupported:
		return "", "the host needs Windows PowerShell 3.0 or later (Windows Server 2012 or later)"
	case evidence.FailBadOutput:
		return "the host's output is not the collection document", "check the host's PowerShell profile and that nothing writes to the output stream"
	}
	return "", ""
}

func schemeOf(ep endpoint) string {
	if ep.https {
		return "https"
	}
	return "http"
}

func (c *Collector) explainTLS(ep endpoint, err error) (what, remedy string) {
	var (
		unk  x509.UnknownAuthorityError
		host x509.HostnameError
		inv  x509.CertificateInvalidError
	)
	name := c.opts.TLSServerName
	if name == "" {
		name = ep.addr
	}
	switch {
	case errors.As(err, &unk) || strings.Contains(err.Error(), "unknown authority"):
		return "the listener's certificate is signed by an authority this machine does not trust",
			"set transport.ca_bundle to the PEM of the CA that issued the host's WinRM certificate (or install it in the system trust store)"
	case errors.As(err, &host) || strings.Contains(err.Error(), "certificate is valid for") || strings.Contains(err.Error(), "doesn't contain any IP SANs"):
		return "the listener's certificate is not valid for " + name,
			"set transport.server_name to a name the certificate carries, or address the host by a name in its certificate"
	case errors.As(err, &inv) && (inv.Reason == x509.Expired):
		return "the listener's certificate has expired or is not yet valid", "renew the host's WinRM certificate, and check this machine's clock"
	case strings.Contains(err.Error(), "CA bundle"):
		return "the CA bundle is unusable", "check transport.ca_bundle: a PEM file of CA certificates"
	}
	return "TLS with the listener failed", "check the host's WinRM HTTPS certificate binding (winrm enumerate winrm/config/listener); rdsaudit needs TLS 1.2 or later"
}

func (c *Collector) explainTimeout(ep endpoint, err error) (what, remedy string) {
	phase := phaseOf(err)
	if phase == "" {
		phase = "the collection"
	}
	port := strconv.Itoa(ep.port)
	deadline := "no answer"
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		deadline = "host_timeout (" + c.opts.HostTimeout.String() + ") reached"
	case errors.As(err, &ne) && ne.Timeout():
		deadline = "timed out"
	}
	what = deadline + " during " + phase
	switch {
	case phase == PhaseConnect:
		remedy = "the host did not accept TCP " + port + ": check that it is up and that firewalls let the port through"
	case phase == PhaseTLS:
		remedy = "the host accepted TCP " + port + " but did not complete TLS: check its WinRM HTTPS listener and certificate binding (winrm enumerate winrm/config/listener), and that nothing else listens there"
	case phase == PhaseProbeTurn:
		remedy = "other hosts held the credential's first logon for this long: raise collection.host_timeout, or check the hosts that failed first"
	case strings.HasPrefix(phase, PhaseOperation):
		remedy = "the WinRM service did not answer in time: check the host's load and its WinRM service; for large license servers raise collection.host_timeout or collection.operation_timeout"
	default:
		remedy = "raise collection.host_timeout if the host is just slow"
	}
	return what, remedy
}

// noLogonSent reports whether an auth failure happened before any credential was
// sent: not a failed logon, not counted for lockout.
func noLogonSent(err error) bool {
	return errors.Is(err, ErrNTLMNotOffered) || errors.Is(err, ErrNoSPN)
}
