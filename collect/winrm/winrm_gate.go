package winrm

// The credential (lockout) gate. See Collect for what it guarantees.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rdsaudit/rdsaudit/evidence"
)

// errCredentialRetired is returned by credGate.enter once the credential is retired.
var errCredentialRetired = errors.New("credential retired")

// accountGate is the lockout state of one account in one run, shared by every
// credential entry that logs on as it (Credential.key): the domain counts failed
// logons per account, whichever entry sent them. At most one host at a time probes the
// account with a password not yet proven (probe), and after LockoutThreshold hosts
// failed authentication as it, the account is retired for every entry.
type accountGate struct {
	probe      chan struct{} // one slot: the host trying an unproven password of the account
	retired    chan struct{} // closed when the account is retired
	retireOnce sync.Once
	why        string          // why it was retired (set before retired is closed)
	failed     map[string]bool // hosts that failed authentication (under Collector.mu)
}

func newAccountGate() *accountGate {
	return &accountGate{probe: make(chan struct{}, 1), retired: make(chan struct{}), failed: map[string]bool{}}
}

// gateState is where a password stands in the run.
type gateState int

const (
	gateUnproven gateState = iota // never authenticated: one host at a time (the account's probe slot)
	gateOpen                      // authenticated: every host at once
	gateSuspect                   // authenticated, then refused by a host: a re-check runs, new logons wait
	gateRetired                   // the account is retired: no host tries it again
)

// provenHosts bounds the hosts a gate remembers as having accepted the password.
const provenHosts = 4

// recheckTimeout bounds the re-check of a proven credential's 401 on a host that
// accepted it (TCP, TLS, Identify, Create, Delete: about a second on a healthy host).
const recheckTimeout = 20 * time.Second

// credGate is the lockout guard of one password of an account in one run. Until the
// password has authenticated once, at most one host at a time may try it, or any other
// unproven password of the account (the account's probe slot): a wrong password then
// costs at most LockoutThreshold failed logons of the account, however many hosts and
// credential entries run in parallel. A proven password does not open the gate for
// another password of the same account.
//
// A proven password refused by a host (401) is suspect until one re-check on a host
// that accepted it tells whether the password changed (recheck): meanwhile no new
// logon starts with it.
type credGate struct {
	acct *accountGate

	mu      sync.Mutex
	proven  bool
	suspect bool
	changed chan struct{}      // closed and replaced at every change of proven/suspect
	hosts   []evidence.HostRef // where the password authenticated, most recent last
	rc      *recheckRun        // the re-check in flight, if any
}

// recheckRun is one re-check, shared by the hosts refused while it runs.
type recheckRun struct {
	done    chan struct{}
	verdict recheckVerdict
	on      string // the host re-checked
	err     error  // its error, when refused or inconclusive
}

type recheckVerdict int

const (
	recheckInconclusive recheckVerdict = iota // no other proven host, or it failed otherwise
	recheckAccepted                           // the password still works: the refusal is the host's
	recheckRefused                            // refused there too: the password changed
)

func newCredGate() *credGate { return newPasswordGate(newAccountGate()) }

func newPasswordGate(a *accountGate) *credGate {
	return &credGate{acct: a, changed: make(chan struct{})}
}

// broadcast wakes every waiter (g.mu held).
func (g *credGate) broadcast() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// markOpen records that the password authenticated on host (any host when host is
// the zero HostRef).
func (g *credGate) markOpen(host evidence.HostRef) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if host.Name != "" {
		i := 0
		for _, h := range g.hosts {
			if h.Name != host.Name {
				g.hosts[i] = h
				i++
			}
		}
		g.hosts = append(g.hosts[:i], host)
		if len(g.hosts) > provenHosts {
			g.hosts = g.hosts[1:]
		}
	}
	if !g.proven {
		g.proven = true
		g.broadcast()
	}
}

// retire retires the account; why says why, for the hosts then skipped ("" for the
// LockoutThreshold count).
func (g *credGate) retire(why string) {
	g.acct.retireOnce.Do(func() { g.acct.why = why; close(g.acct.retired) })
}

func (g *credGate) isRetired() bool { return isClosed(g.acct.retired) }
func (g *credGate) isOpen() bool    { return g.state() == gateOpen }

func (g *credGate) state() gateState {
	st, _ := g.stateAndWait()
	return st
}

func (g *credGate) stateAndWait() (gateState, chan struct{}) {
	if g.isRetired() {
		return gateRetired, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.suspect:
		return gateSuspect, g.changed
	case g.proven:
		return gateOpen, g.changed
	}
	return gateUnproven, g.changed
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// enter waits until the caller may try the credential and returns the function that
// gives its turn back (idempotent; a no-op once the gate is open). It fails with
// errCredentialRetired, or with ctx's error while waiting.
func (g *credGate) enter(ctx context.Context) (release func(), err error) {
	noop := func() {}
	for {
		st, changed := g.stateAndWait()
		switch st {
		case gateRetired:
			return nil, errCredentialRetired
		case gateOpen:
			return noop, nil
		case gateSuspect:
			select {
			case <-g.acct.retired:
			case <-changed:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			continue
		}
		select {
		case <-g.acct.retired:
			continue
		case <-changed:
			continue
		case <-ctx.Done():
			return nil, ctx.Err()
		case g.acct.probe <- struct{}{}:
			// select picks at random among ready cases: look again before probing.
			if g.state() != gateUnproven {
				<-g.acct.probe
				continue
			}
			var once sync.Once
			return func() { once.Do(func() { <-g.acct.probe }) }, nil
		}
	}
}

// wasProven reports whether the password authenticated in this run.
func (g *credGate) wasProven() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.proven
}

// gate returns the gate of the credential's password, created on first use, sharing
// its account's lockout count with every other entry for the same account.
func (c *Collector) gate(cred Credential) *credGate {
	acct := c.account(cred)
	sum := sha256.Sum256([]byte(acct + "\x00" + cred.Password))
	key := string(sum[:])
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.gates[key]
	if g == nil {
		a := c.accounts[acct]
		if a == nil {
			a = newAccountGate()
			c.accounts[acct] = a
		}
		g = newPasswordGate(a)
		c.gates[key] = g
	}
	return g
}

// recordAuthFailure counts a host that failed authentication with the credential and
// retires the credential at LockoutThreshold hosts. It returns the count.
func (c *Collector) recordAuthFailure(g *credGate, host string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	g.acct.failed[host] = true
	n := len(g.acct.failed)
	if n >= c.opts.LockoutThreshold {
		g.retire("")
	}
	return n
}

// recheck decides what a 401 from host means for a password that authenticated
// before in this run: it logs on once more at a host that accepted it (the most recent
// other than host; create and delete a shell, no command). Accepted there: the refusal
// is host's own (trust, local policy, NTLM disabled), not a failed password logon.
// Refused there too: the password changed during the run, and the account is retired.
// Anything else (no other proven host, the re-check failed otherwise) is inconclusive:
// the caller counts the 401 as a failed logon, as for an unproven password. While the
// re-check runs the gate is suspect (no new logon starts with the password); hosts
// refused meanwhile share its verdict. It is bounded by ctx (the refused host's
// deadline).
func (c *Collector) recheck(ctx context.Context, g *credGate, host evidence.HostRef, cred Credential) *recheckRun {
	g.mu.Lock()
	if rc := g.rc; rc != nil {
		g.mu.Unlock()
		select {
		case <-rc.done:
			return rc
		case <-ctx.Done():
			return &recheckRun{verdict: recheckInconclusive, err: ctx.Err()}
		}
	}
	var on evidence.HostRef
	for i := len(g.hosts) - 1; i >= 0; i-- {
		if g.hosts[i].Name != host.Name {
			on = g.hosts[i]
			break
		}
	}
	if on.Name == "" {
		g.mu.Unlock()
		return &recheckRun{verdict: recheckInconclusive, err: errors.New("no other host has accepted the credential in this run")}
	}
	rc := &recheckRun{done: make(chan struct{}), on: on.Name}
	g.rc, g.suspect = rc, true
	g.broadcast()
	g.mu.Unlock()

	// The re-check has a short bound of its own: the host it runs on may have gone
	// since, and new logons with this credential wait for it meanwhile.
	rctx, rcancel := context.WithTimeout(ctx, recheckTimeout)
	by, _ := rctx.Deadline()
	wctx, wcancel := context.WithDeadline(rctx, by.Add(-cleanupReserve(recheckTimeout)))
	err := c.authenticate(wctx, by, on, cred, func() { g.markOpen(on) })
	wcancel()
	rcancel()
	switch {
	case err == nil:
		rc.verdict = recheckAccepted
	case Classify(err) == evidence.FailAuth && !errors.Is(err, ErrNTLMNotOffered):
		rc.verdict, rc.err = recheckRefused, err
		g.retire(fmt.Sprintf("refused by %s and then by %s, which had accepted it earlier in this run: the password changed during the run", host.Name, on.Name))
	default:
		rc.verdict, rc.err = recheckInconclusive, err
	}
	g.mu.Lock()
	g.rc, g.suspect = nil, false
	g.broadcast()
	g.mu.Unlock()
	close(rc.done)
	return rc
}
