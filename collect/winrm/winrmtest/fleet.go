package winrmtest

import (
	"fmt"
	"net"
	"sort"
	"strconv"

	"github.com/rdsaudit/rdsaudit/evidence"
)

// FleetServerOptions configure a Fleet.
type FleetServerOptions struct {
	TLS        bool              // HTTPS with a throwaway CA (CACertPEM), certificate valid for 127.0.0.1 and localhost
	Users      map[string]string // credentials accepted by every host; for Basic, empty accepts any
	NTLM       NTLMOptions       // every host authenticates with NTLMv2 instead of Basic
	Kerberos   KerberosOptions   // every host authenticates with Kerberos (one SPN, one keytab)
	ListenHost string            // default 127.0.0.1
	BasePort   int               // 0: ephemeral ports; else hosts in sorted order get BasePort, BasePort+1, ...
	// Faults per host name. A host without an entry whose evidence records a failure
	// (Status failed) gets FaultsForFailure(class), so it fails the same way over WinRM.
	Faults map[string]Faults
}

// Fleet is a set of virtual hosts, one Server (listener) each, sharing counters.
type Fleet struct {
	servers map[string]*Server
	st      *state
	ca      *authority
}

// NewFleet starts one simulator per virtual host.
func NewFleet(evidences map[string]*evidence.Evidence, opts FleetServerOptions) (*Fleet, error) {
	host := opts.ListenHost
	if host == "" {
		host = "127.0.0.1"
	}
	f := &Fleet{servers: map[string]*Server{}, st: newState()}
	if opts.TLS {
		ca, err := newAuthority(host)
		if err != nil {
			return nil, fmt.Errorf("new fleet: %w", err)
		}
		f.ca = ca
	}
	names := make([]string, 0, len(evidences))
	for n := range evidences {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, name := range names {
		port := 0
		if opts.BasePort > 0 {
			port = opts.BasePort + i
		}
		ev := evidences[name]
		faults, ok := opts.Faults[name]
		if !ok && ev != nil && ev.Status == evidence.StatusFailed && ev.Failure != nil {
			faults = FaultsForFailure(ev.Failure.Class)
		}
		s, err := startServer(name, ev, opts.Users, opts.NTLM, opts.Kerberos, faults, net.JoinHostPort(host, strconv.Itoa(port)), f.ca, f.st, nil)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("new fleet: host %s: %w", name, err)
		}
		f.servers[name] = s
	}
	return f, nil
}

// Endpoints maps each virtual host name to its "address:port".
func (f *Fleet) Endpoints() map[string]string {
	out := make(map[string]string, len(f.servers))
	for n, s := range f.servers {
		out[n] = s.Addr
	}
	return out
}

// Server returns the virtual host's server, or nil.
func (f *Fleet) Server(host string) *Server { return f.servers[host] }

// HostRef returns a HostRef for the virtual host that dials its endpoint.
func (f *Fleet) HostRef(host string, roles ...string) (evidence.HostRef, error) {
	s := f.servers[host]
	if s == nil {
		return evidence.HostRef{}, fmt.Errorf("%w: %s", errNoHost, host)
	}
	h, _, _ := net.SplitHostPort(s.Addr)
	return evidence.HostRef{Name: host, Address: h, Port: s.Port, Roles: roles}, nil
}

// SetFaults replaces one host's injected faults.
func (f *Fleet) SetFaults(host string, faults Faults) error {
	s := f.servers[host]
	if s == nil {
		return fmt.Errorf("%w: %s", errNoHost, host)
	}
	s.SetFaults(faults)
	return nil
}

// CACertPEM is the PEM of the throwaway CA (nil without TLS).
func (f *Fleet) CACertPEM() []byte {
	if f.ca == nil {
		return nil
	}
	return f.ca.certPEM
}

// OpenShells counts shells created and not deleted across the fleet.
func (f *Fleet) OpenShells() int { return int(f.st.open.Load()) }

// MaxOpenShells is the largest number of shells open at the same time across the fleet.
func (f *Fleet) MaxOpenShells() int { return int(f.st.maxOpen.Load()) }

// Rejected lists every command refused across the fleet.
func (f *Fleet) Rejected() []Rejection { return f.st.rejectedCopy() }

// Stats returns request counts by action across the fleet.
func (f *Fleet) Stats() Stats { return f.st.statsCopy() }

// NTLMFailures lists the AUTHENTICATE messages refused across the fleet.
func (f *Fleet) NTLMFailures() []NTLMFailure { return f.st.ntlmFailuresCopy() }

// TLSStats counts the TLS handshakes across the fleet. Each host's server issues session
// tickets of its own: a ticket only resumes at the host that issued it.
func (f *Fleet) TLSStats() TLSStats { return f.st.tlsStats() }

// BasicAuthRequests counts the requests across the fleet that carried an
// Authorization: Basic header, i.e. that handed a listener a password.
func (f *Fleet) BasicAuthRequests() int { return int(f.st.basic.Load()) }

// Close stops every server.
func (f *Fleet) Close() {
	for _, s := range f.servers {
		s.Close()
	}
}
