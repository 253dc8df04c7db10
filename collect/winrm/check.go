package winrm

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/rdsaudit/rdsaudit/evidence"
)

// Preflight steps, in order (Collector.Check).
const (
	StepDNS      = "dns"
	StepTCP      = "tcp"
	StepTLS      = "tls"
	StepIdentify = "identify"
	StepAuth     = "auth"
)

// CheckStep is one step of a host's preflight.
type CheckStep struct {
	Name   string // StepDNS, ...
	OK     bool
	Detail string // what was seen (on success), or the failure with its remedy
}

// CheckResult is a host's preflight: the steps run, up to the first that failed.
type CheckResult struct {
	Host     evidence.HostRef
	Steps    []CheckStep
	Class    evidence.FailureClass // of the failed step, "" when every step passed
	Message  string                // the failure with its remedy ("" when every step passed)
	Skipped  bool                  // the credential was retired (lockout protection): no logon tried
	Duration time.Duration
}

// OK reports whether every step passed.
func (r *CheckResult) OK() bool { return r.Class == "" }

// identifyRequest is the WS-Management Identify request (DSP0226 §11), sent
// unauthenticated as Test-WSMan does.
const identifyRequest = `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd"><s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>`

type identifyResponse struct {
	Body struct {
		Identify struct {
			ProtocolVersion string `xml:"ProtocolVersion"`
			ProductVendor   string `xml:"ProductVendor"`
			ProductVersion  string `xml:"ProductVersion"`
		} `xml:"IdentifyResponse"`
	} `xml:"Body"`
}

// Check is a read-only preflight of one host, within HostTimeout: DNS, TCP, TLS
// (certificate chain and name, over HTTPS), WS-Man Identify (unauthenticated), then
// authentication (a shell created and deleted, no command run). Authentication honours
// the lockout gate as Collect does: the probe turn until the credential has
// authenticated once, LockoutThreshold failed logons per account, a retired credential
// not tried (Skipped), the re-check of a proven credential's 401. It stops at the
// first failed step.
func (c *Collector) Check(ctx context.Context, host evidence.HostRef) *CheckResult {
	start := time.Now()
	r := &CheckResult{Host: host}
	defer func() { r.Duration = time.Since(start) }()
	log := c.log.With().Str("host", host.Name).Str("command", "check").Logger()
	cred, err := c.creds.CredentialFor(host)
	if err != nil {
		r.fail(StepAuth, evidence.FailInternal, err.Error())
		return r
	}
	deadline := time.Now().Add(c.opts.HostTimeout)
	hctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	ep := c.endpointOf(host)
	failed := func(step string, err error) *CheckResult {
		class := Classify(err)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			class = evidence.FailTimeout
		} else if ctx.Err() != nil {
			class = evidence.FailCanceled
		}
		r.fail(step, class, scrub(c.failureMessage(host, cred, class, err), cred))
		return r
	}

	// DNS (the dialer resolves again; this step says which name and what it gave).
	if isIP(ep.addr) {
		r.pass(StepDNS, ep.addr+" (an address)")
	} else if c.opts.DialContext != nil {
		r.pass(StepDNS, "resolved by the configured dialer")
	} else {
		addrs, err := net.DefaultResolver.LookupHost(hctx, ep.addr)
		if err != nil {
			return failed(StepDNS, err)
		}
		r.pass(StepDNS, ep.addr+" → "+strings.Join(addrs, ", "))
	}

	// TCP.
	nc, err := c.dialer()(hctx, "tcp", ep.hostPort())
	if err != nil {
		if hctx.Err() != nil {
			err = hctx.Err()
		}
		return failed(StepTCP, &phaseError{Phase: PhaseConnect, Err: err})
	}
	r.pass(StepTCP, ep.hostPort())
	defer func() { _ = nc.Close() }()

	// TLS.
	if ep.https {
		conf, err := c.listenerTLS(ep)
		if err != nil {
			return failed(StepTLS, &phaseError{Phase: PhaseTLS, Err: err})
		}
		if conf.ServerName == "" {
			conf.ServerName = ep.addr
		}
		tc := tls.Client(nc, conf)
		tctx, tcancel := context.WithTimeout(hctx, tlsHandshakeTimeout)
		err = tc.HandshakeContext(tctx)
		tcancel()
		if err != nil {
			if hctx.Err() != nil {
				err = hctx.Err()
			}
			return failed(StepTLS, &phaseError{Phase: PhaseTLS, Err: err})
		}
		nc = tc
		st := tc.ConnectionState()
		detail := tls.VersionName(st.Version)
		if len(st.PeerCertificates) > 0 {
			cert := st.PeerCertificates[0]
			detail += fmt.Sprintf(", certificate %q valid until %s, checked for %s", cert.Subject.CommonName, cert.NotAfter.UTC().Format(time.DateOnly), conf.ServerName)
		}
		if c.opts.InsecureSkipVerify {
			detail += " (NOT VERIFIED: insecure_skip_verify)"
		}
		r.pass(StepTLS, detail)
	}

	// WS-Man Identify, unauthenticated, on the same connection.
	resp, body, err := identify(hctx, nc, ep, c.opts.OperationTimeout+HTTPTimeoutMargin)
	if err != nil {
		return failed(StepIdentify, err)
	}
	var id identifyResponse
	switch {
	case resp.StatusCode == http.StatusOK && xml.Unmarshal(body, &id) == nil && id.Body.Identify.ProtocolVersion != "":
		v := id.Body.Identify
		r.pass(StepIdentify, strings.TrimSpace(v.ProductVendor+" "+v.ProductVersion))
	default:
		// A listener may refuse unauthenticated Identify: it answered, which is what
		// this step needs to know; authentication comes next.
		r.pass(StepIdentify, fmt.Sprintf("answered http status %d (no anonymous Identify)", resp.StatusCode))
	}

	// Authentication, through the lockout gate.
	g := c.gate(cred)
	release, err := g.enter(hctx)
	if err != nil {
		if errors.Is(err, errCredentialRetired) {
			ev := c.gateRefused(host, cred, g, time.Now(), err, 0, log)
			r.Skipped = true
			r.fail(StepAuth, evidence.FailCredential, ev.Failure.Message)
			return r
		}
		return failed(StepAuth, &phaseError{Phase: PhaseProbeTurn, Err: err})
	}
	// The shell's Create ends cleanupReserve before the host's deadline, as in Collect;
	// its Delete gets the rest: check holds host_timeout too.
	wctx, wcancel := context.WithDeadline(hctx, deadline.Add(-cleanupReserve(c.opts.HostTimeout)))
	err = c.authenticate(wctx, deadline, host, cred, func() { g.markOpen(host) })
	wcancel()
	if err != nil && Classify(err) == evidence.FailAuth && !noLogonSent(err) {
		err = c.authRefused(hctx, g, host, cred, err, log)
	}
	release()
	if err != nil {
		return failed(StepAuth, err)
	}
	r.pass(StepAuth, fmt.Sprintf("%s via %s (shell created and deleted)", userOrEntry(cred), authName(c.opts.Auth)))
	return r
}

func (r *CheckResult) pass(step, detail string) {
	r.Steps = append(r.Steps, CheckStep{Name: step, OK: true, Detail: detail})
}

func (r *CheckResult) fail(step string, class evidence.FailureClass, msg string) {
	r.Steps = append(r.Steps, CheckStep{Name: step, Detail: msg})
	r.Class, r.Message = class, msg
}
