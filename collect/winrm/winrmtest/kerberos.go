package winrmtest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"

	"github.com/jcmturner/gokrb5/v8/credentials"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/service"
	"github.com/jcmturner/gokrb5/v8/spnego"
)

// KerberosOptions make a host authenticate with Kerberos over SPNEGO
// ("Authorization: Negotiate <token>" carrying an AP-REQ), like a domain-joined Windows
// listener with Basic off: a request without a token gets 401 offering Negotiate and
// Kerberos; a token is verified with gokrb5's acceptor against the service key in the
// keytab (the ticket must decrypt with it: a ticket for another service principal, a
// tampered or replayed token is refused). An accepted token authenticates the TCP
// connection. Users is not consulted: the KDC decides who the users are.
//
// Over plain HTTP the SOAP messages are served unencrypted (a listener with
// AllowUnencrypted=true); Windows' default would require Kerberos message encryption.
type KerberosOptions struct {
	KeytabPath string // keytab holding SPN's key (kdctest.KDC.AddService); empty: Kerberos off
	SPN        string // service principal, e.g. "HTTP/localhost"
}

// KerberosFailure is one refused Kerberos token.
type KerberosFailure struct {
	Host   string
	Reason string
}

// kerberosAcceptor verifies SPNEGO tokens for one service principal.
type kerberosAcceptor struct {
	kt  *keytab.Keytab
	spn string
}

func newKerberosAcceptor(o KerberosOptions) (*kerberosAcceptor, error) {
	if o.SPN == "" {
		return nil, errors.New("kerberos needs the SPN")
	}
	kt, err := keytab.Load(o.KeytabPath)
	if err != nil {
		return nil, fmt.Errorf("kerberos keytab: %w", err)
	}
	return &kerberosAcceptor{kt: kt, spn: o.SPN}, nil
}

// accept verifies one Negotiate token and returns the client principal (user@REALM).
func (a *kerberosAcceptor) accept(token []byte) (string, error) {
	var st spnego.SPNEGOToken
	if err := st.Unmarshal(token); err != nil {
		// A raw KRB5 GSS token (no SPNEGO wrapper), as some clients send.
		var k5 spnego.KRB5Token
		if k5.Unmarshal(token) != nil {
			return "", fmt.Errorf("not an SPNEGO or Kerberos token: %v", err)
		}
		st = spnego.SPNEGOToken{Init: true}
		st.NegTokenInit.MechTypes = append(st.NegTokenInit.MechTypes, k5.OID)
		st.NegTokenInit.MechTokenBytes = token
	}
	if st.Init && len(st.NegTokenInit.MechTypes) == 0 {
		return "", errors.New("SPNEGO token without mechanism")
	}
	svc := spnego.SPNEGOService(a.kt,
		service.KeytabPrincipal(a.spn), // the ticket must decrypt with this key
		service.DecodePAC(false),       // MIT tickets carry no logon-info PAC
		service.Logger(log.New(io.Discard, "", 0)),
	)
	ok, ctx, status := svc.AcceptSecContext(&st)
	if !ok {
		return "", fmt.Errorf("%s", status.Message)
	}
	creds, _ := ctx.Value(spnegoCredentialsKey).(*credentials.Credentials)
	if creds == nil || !creds.Authenticated() {
		return "", errors.New("no authenticated identity")
	}
	return creds.UserName() + "@" + creds.Domain(), nil
}

// spnegoCredentialsKey is the context key under which gokrb5's acceptor puts the
// client's credentials (spnego.ctxCredentials, an untyped string constant).
const spnegoCredentialsKey = "github.com/jcmturner/gokrb5/v8/ctxCredentials"

// negotiateToken returns the decoded token of an "Authorization: Negotiate <b64>" or
// "Kerberos <b64>" header; present reports whether such a header was sent at all.
func negotiateToken(r *http.Request) (token []byte, present bool) {
	for _, v := range r.Header.Values("Authorization") {
		s, data, _ := strings.Cut(strings.TrimSpace(v), " ")
		if !strings.EqualFold(s, "Negotiate") && !strings.EqualFold(s, "Kerberos") {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(data))
		if err != nil || len(b) == 0 {
			return nil, true
		}
		return b, true
	}
	return nil, false
}

// authenticateKerberos returns true when the request may be served (its token was
// accepted, or its connection was authenticated before); otherwise it has answered 401.
func (h *Handler) authenticateKerberos(w http.ResponseWriter, r *http.Request, f Faults) bool {
	cs := connFrom(r)
	if cs == nil {
		h.unauthorized(w, f)
		return false
	}
	tok, present := negotiateToken(r)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if !present {
		if cs.authenticated && !f.Unauthorized {
			return true
		}
		h.unauthorized(w, f)
		return false
	}
	cs.authenticated, cs.user = false, ""
	var (
		user string
		err  = errors.New("undecodable Negotiate header")
	)
	if tok != nil {
		if bytes.HasPrefix(tok, []byte(ntlmSignature)) {
			err = errors.New("NTLM token: this host accepts Kerberos only")
		} else {
			user, err = h.krb.accept(tok)
		}
	}
	if err == nil && f.Unauthorized {
		err = errors.New("logon refused (Unauthorized fault)")
	}
	if err != nil {
		h.count("KerberosFailed")
		h.st.mu.Lock()
		h.st.krbFailures = append(h.st.krbFailures, KerberosFailure{Host: h.Host, Reason: err.Error()})
		h.st.mu.Unlock()
		h.unauthorized(w, f)
		return false
	}
	cs.authenticated, cs.user = true, user
	h.count("KerberosAuthenticated")
	return true
}

func (st *state) krbFailuresCopy() []KerberosFailure {
	st.mu.Lock()
	defer st.mu.Unlock()
	return append([]KerberosFailure(nil), st.krbFailures...)
}

// KerberosFailures lists the Kerberos tokens refused.
func (s *Server) KerberosFailures() []KerberosFailure { return s.st.krbFailuresCopy() }

// KerberosFailures lists the Kerberos tokens refused across the fleet.
func (f *Fleet) KerberosFailures() []KerberosFailure { return f.st.krbFailuresCopy() }
