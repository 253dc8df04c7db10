// Package winrmtest is a WinRM (WS-Management shell) simulator: virtual Windows hosts
// that answer rdsaudit's collection script from recorded evidence, for tests, the demo
// and benchmarks, modelled on net/http/httptest.
//
// A Server answers as one virtual Windows host: it speaks the shell protocol of
// ../../../../shared/wsman.md (Create, Command, Send, Receive, Signal, Delete, SOAP 1.2
// faults), authenticates with HTTP Basic, reads the script from the command's stdin
// (Send, End="true"), accepts only rdsaudit's collection script (anything else exits
// 1 with stderr and is recorded in Rejected) and answers from the host's evidence, filtered to exactly what the request
// asked for. A Fleet runs one Server per virtual host.
//
// With the NTLM option a host authenticates like a Windows listener with Basic off
// (its default): NTLMv2 over Negotiate or NTLM, verified against the account's
// password, per TCP connection (ntlm.go). With the Kerberos option it verifies SPNEGO
// Kerberos tokens against a service keytab from a real KDC (kerberos.go; tests start
// the KDC with package kdctest, which the simulator itself does not import: the demo
// links this package, and the shipped binary carries no KDC launcher).
package winrmtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rdsaudit/rdsaudit/collect/winrm"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// Faults are injected per virtual host. The zero value is a healthy host.
type Faults struct {
	Latency        time.Duration // added to every POST before it is answered
	ScriptDelay    time.Duration // the script runs this long (Receive long-polls, then w:TimedOut)
	Unauthorized   bool          // 401 to every request, as a real listener rejecting credentials
	AccessDenied   bool          // Create fails with w:AccessDenied (WSMan code 5)
	QuotaExceeded  bool          // Create fails with w:QuotaLimit 2150859173 (MaxShellsPerUser)
	ResetOnCreate  bool          // the TCP connection is reset when Create arrives
	Hang           bool          // Create is never answered (until the client gives up)
	LoseShell      bool          // Receive answers "shell not found" and the shell is gone
	NonJSON        bool          // the script prints text that is not JSON
	Truncated      bool          // the script's JSON is cut in half
	HugeOutput     int           // the script prints this many bytes (JSON padded with spaces)
	ScriptError    bool          // the script fails: CLIXML on stderr, exit code 1
	WrongSchema    bool          // the document carries another schema tag
	ChunkSize      int           // stdout bytes per Receive (default 32 KiB)
	CreateFaultRaw bool          // Create fails with a fault lacking the WS-Man fault action (masterzen then sees success)
	PowerShell2    bool          // the host runs Windows PowerShell 2.0: the bootstrap does not parse
	BasicOnly      bool          // its 401s offer only Basic (a Basic-only host, or an impostor); Basic is accepted
	// OfferNTLM adds the NTLM scheme to the 401s of an NTLM host (WinRM offers only
	// Negotiate; IIS-style listeners offer both): some clients (go-ntlmssp) then answer
	// with "Authorization: NTLM", others (rdsaudit) keep "Negotiate".
	OfferNTLM bool
	// OnlyNTLMScheme makes the 401s of an NTLM host offer the NTLM scheme alone, without
	// Negotiate: a client must then answer with "Authorization: NTLM".
	OnlyNTLMScheme bool
	// WaitForShells, when > 0, makes the script finish only once this many shells have
	// been open at the same time across the Fleet (or after ScriptDelay, if set): a
	// structural check that a client really works on several hosts at once.
	WaitForShells int
}

// FaultsForFailure maps an offline evidence failure class to the fault that makes a
// WinRM client see the same class, so a sample fleet's unreachable hosts stay
// unreachable when simulated. Unknown classes map to a healthy host.
func FaultsForFailure(class evidence.FailureClass) Faults {
	switch class {
	case evidence.FailAuth, evidence.FailCredential:
		return Faults{Unauthorized: true}
	case evidence.FailAccessDenied:
		return Faults{AccessDenied: true}
	case evidence.FailQuota:
		return Faults{QuotaExceeded: true}
	case evidence.FailConnect, evidence.FailDNS, evidence.FailTLS:
		return Faults{ResetOnCreate: true}
	case evidence.FailTimeout:
		return Faults{Hang: true}
	case evidence.FailScript:
		return Faults{ScriptError: true}
	case evidence.FailUnsupported:
		return Faults{PowerShell2: true}
	case evidence.FailBadOutput, evidence.FailBadEvidence:
		return Faults{NonJSON: true}
	}
	return Faults{}
}

// Rejection records a command the simulator refused to run.
type Rejection struct {
	Host    string
	Command string
	Reason  string
}

// Stats counts requests by action (short name: Create, Command, Receive, ...), requests
// refused with 401 as "Unauthorized", Receives held for the full OperationTimeout and
// answered w:TimedOut as "TimedOut", and Receives the client abandoned while they were
// held (it closed the connection, e.g. its HTTP timeout fired) as "Abandoned".
// NTLM hosts also count "NTLMChallenge" (NEGOTIATE answered with a CHALLENGE; also
// by the client's scheme as "NTLMChallenge:Negotiate" or "NTLMChallenge:NTLM"),
// "NTLMAuthenticated" (AUTHENTICATE verified; also by the account as sent, as
// "NTLMAuthenticated:DOMAIN\user", or "NTLMAuthenticated:user" with an empty domain)
// and "NTLMFailed" (AUTHENTICATE refused: a failed logon, also counted as
// "Unauthorized"; see NTLMFailures).
type Stats map[string]int

// state is shared by every Server of a Fleet.
type state struct {
	open     atomic.Int64
	maxOpen  atomic.Int64 // high-water mark of open
	mu       sync.Mutex
	rejected []Rejection
	stats    Stats
	basic    atomic.Int64 // requests that carried an Authorization: Basic header

	ntlmFailures []NTLMFailure
	krbFailures  []KerberosFailure

	tlsFull    atomic.Int64 // TLS handshakes completed in full
	tlsResumed atomic.Int64 // TLS handshakes that resumed a session
	tlsForeign atomic.Int64 // session tickets offered that the server had not issued

	// commands are the collection stdin payloads accepted so far, with their
	// parameters: a fleet's hosts receive a handful of distinct payloads, each checked
	// once (ParseCollection is deterministic).
	commandsMu sync.Mutex
	commands   map[string]winrm.ScriptParams
}

func newState() *state { return &state{stats: Stats{}} }

// maxCachedCommands bounds state.commands; past it, commands are parsed every time.
const maxCachedCommands = 64

// parseCollection is winrm.ParseCollection, remembered for accepted payloads.
func (st *state) parseCollection(line string, stdin []byte) (winrm.ScriptParams, error) {
	if err := winrm.CheckCommandLine(line); err != nil {
		return winrm.ScriptParams{}, err
	}
	st.commandsMu.Lock()
	p, ok := st.commands[string(stdin)]
	st.commandsMu.Unlock()
	if ok {
		return p, nil
	}
	p, err := winrm.ParseCollection(line, stdin)
	if err != nil {
		return p, err
	}
	st.commandsMu.Lock()
	if st.commands == nil {
		st.commands = map[string]winrm.ScriptParams{}
	}
	if len(st.commands) < maxCachedCommands {
		st.commands[string(stdin)] = p
	}
	st.commandsMu.Unlock()
	return p, nil
}

// TLSStats count TLS handshakes of a server or a fleet.
type TLSStats struct {
	Full    int // handshakes completed in full
	Resumed int // handshakes that resumed a session the server had issued
	// Foreign counts the session tickets offered that the server had not issued
	// (another host's): each server has ticket keys of its own, as each Windows host,
	// so such a ticket never resumes, and a client offering it tells the server which
	// other server it talked to.
	Foreign int
}

func (st *state) tlsStats() TLSStats {
	return TLSStats{Full: int(st.tlsFull.Load()), Resumed: int(st.tlsResumed.Load()), Foreign: int(st.tlsForeign.Load())}
}

// countingTLS returns conf, with ticket keys of its own, counting handshakes and the
// tickets offered that it did not issue into st.
func countingTLS(conf *tls.Config, st *state) (*tls.Config, error) {
	// Fixed keys: http.Server serves a clone of conf, and a clone with automatic keys
	// generates keys of its own, which conf.DecryptTicket would not know.
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, err
	}
	conf.SetSessionTicketKeys([][32]byte{key})
	conf.VerifyConnection = func(cs tls.ConnectionState) error {
		if cs.DidResume {
			st.tlsResumed.Add(1)
		} else {
			st.tlsFull.Add(1)
		}
		return nil
	}
	conf.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		ss, err := conf.DecryptTicket(identity, cs)
		if ss == nil && err == nil {
			st.tlsForeign.Add(1)
		}
		return ss, err
	}
	return conf, nil
}

// opened counts a new shell and raises the high-water mark.
func (st *state) opened() {
	n := st.open.Add(1)
	for {
		m := st.maxOpen.Load()
		if n <= m || st.maxOpen.CompareAndSwap(m, n) {
			return
		}
	}
}

// Handler is the http.Handler of one virtual host; Server and Fleet wrap it.
type Handler struct {
	Host     string             // virtual host name (Machine in faults)
	Evidence *evidence.Evidence // what the virtual host holds
	Users    map[string]string  // credentials accepted; for Basic, empty accepts any

	ntlm   bool // NTLMv2 instead of Basic (ServerOptions.NTLM)
	ntlmID ntlmIdentity
	krb    *kerberosAcceptor // Kerberos instead of Basic (ServerOptions.Kerberos)
	st     *state
	faults atomic.Pointer[Faults]
	mu     sync.Mutex
	shells map[string]*shell
	// capture, when set, receives every request's SOAP text as the server read it
	// (unsealed, for NTLM over HTTP): tests decode what a client really sent.
	capture func(soap []byte)
	done    chan struct{} // closed by Close: releases hanging requests
	once    sync.Once
}

type shell struct {
	id       string
	commands map[string]*command
}

type command struct {
	mu sync.Mutex
	// stdin: the command line was the collection's; the script runs once its stdin
	// ended (Send with End="true"), as powershell.exe reads its input to the end.
	line     string
	stdin    []byte
	ended    bool
	stdout   []byte
	stderr   []byte
	exit     int
	readyAt  time.Time // zero: no time bound (only with waitFor)
	waitFor  int       // Faults.WaitForShells
	sentOut  int
	finished bool
}

func newHandler(host string, ev *evidence.Evidence, users map[string]string, st *state) *Handler {
	h := &Handler{Host: host, Evidence: ev, Users: users, st: st, shells: map[string]*shell{}, done: make(chan struct{})}
	h.faults.Store(&Faults{})
	return h
}

// SetFaults replaces the host's injected faults (safe while serving).
func (h *Handler) SetFaults(f Faults) { h.faults.Store(&f) }

func (h *Handler) close() { h.once.Do(func() { close(h.done) }) }

func (h *Handler) count(action string) {
	h.st.mu.Lock()
	h.st.stats[action]++
	h.st.mu.Unlock()
}

func shortAction(a string) string {
	if i := strings.LastIndexByte(a, '/'); i >= 0 {
		return a[i+1:]
	}
	return a
}

// ServeHTTP answers one WS-Man POST.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := *h.faults.Load()
	if r.Method != http.MethodPost || r.URL.Path != "/wsman" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if f.Latency > 0 {
		select {
		case <-time.After(f.Latency):
		case <-r.Context().Done():
			return
		case <-h.done:
			return
		}
	}
	if h.identify(w, r) {
		return
	}
	if hasBasic(r) {
		h.st.basic.Add(1)
	}
	owner, logon := "", false
	switch {
	case h.ntlm && !f.BasicOnly:
		var ok bool
		if ok, logon = h.authenticateNTLM(w, r, f); !ok {
			return
		}
		owner = connFrom(r).authUser()
	case h.krb != nil && !f.BasicOnly:
		if !h.authenticateKerberos(w, r, f) {
			return
		}
		owner = connFrom(r).authUser()
	case !h.authorized(r) || f.Unauthorized:
		h.unauthorized(w, f)
		return
	default:
		owner, _, _ = r.BasicAuth()
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	if h.ntlm && !f.BasicOnly && r.TLS == nil {
		// NTLM over plain HTTP: the messages must be sealed (AllowUnencrypted=false).
		sw, plain, ok := h.unsealRequest(w, r, body, logon)
		if !ok {
			return
		}
		defer sw.flush()
		w, body = sw, plain
	}
	if h.capture != nil {
		h.capture(body)
	}
	req, err := parseRequest(body)
	if err != nil {
		h.writeFault(w, "", FaultInvalidParameter())
		return
	}
	action := req.Header.Action
	h.count(shortAction(action))
	mid := req.Header.MessageID
	if uri := strings.TrimSpace(req.Header.ResourceURI); uri != resourceCmd {
		// The only resource this listener serves is the cmd shell (winrm identify and
		// WMI resources are not simulated): Windows answers an unknown one so.
		h.writeFault(w, mid, faultUnknownResource(uri))
		return
	}
	switch action {
	case actionCreate:
		h.create(w, r, req, f, owner)
	case actionCommand:
		h.command(w, req, f)
	case actionSend:
		h.send(w, req, f)
	case actionReceive:
		h.receive(w, r, req, f)
	case actionSignal:
		if _, ok := h.lookup(req.shellID()); !ok {
			h.writeFault(w, mid, faultShellNotFound(req.shellID()))
			return
		}
		h.write(w, envelope(actionSignal+"Response", mid, `<rsp:SignalResponse/>`))
	case actionDelete:
		id := req.shellID()
		h.mu.Lock()
		_, ok := h.shells[id]
		delete(h.shells, id)
		h.mu.Unlock()
		if !ok {
			h.writeFault(w, mid, faultShellNotFound(id))
			return
		}
		h.st.open.Add(-1)
		h.write(w, envelope(actionDelete+"Response", mid, ""))
	default:
		h.writeFault(w, mid, faultActionNotSupported(action))
	}
}

// unauthorized answers 401 as a real listener: no body, no Content-Type, every scheme
// it offers (an NTLM host has Basic off, as Windows by default).
func (h *Handler) unauthorized(w http.ResponseWriter, f Faults) {
	h.count("Unauthorized")
	switch {
	case f.BasicOnly:
		w.Header()["WWW-Authenticate"] = []string{`Basic realm="WSMAN"`}
	case h.ntlm && f.OnlyNTLMScheme:
		w.Header()["WWW-Authenticate"] = []string{"NTLM"}
	case h.ntlm && f.OfferNTLM:
		w.Header()["WWW-Authenticate"] = []string{"Negotiate", "NTLM", "Kerberos"}
	case h.ntlm, h.krb != nil:
		w.Header()["WWW-Authenticate"] = []string{"Negotiate", "Kerberos"}
	default:
		w.Header()["WWW-Authenticate"] = []string{"Negotiate", "Kerberos", `Basic realm="WSMAN"`, "CredSSP"}
	}
	w.Header()["Server"] = []string{"Microsoft-HTTPAPI/2.0"}
	w.Header()["Content-Type"] = nil
	w.WriteHeader(http.StatusUnauthorized)
}

func (h *Handler) authorized(r *http.Request) bool {
	if len(h.Users) == 0 {
		return true
	}
	u, p, ok := r.BasicAuth()
	if !ok {
		return false
	}
	want, ok := h.Users[u]
	return ok && want == p
}

// hasBasic reports whether the request carries an Authorization: Basic header.
func hasBasic(r *http.Request) bool {
	for _, v := range r.Header.Values("Authorization") {
		if len(v) >= 6 && strings.EqualFold(v[:6], "Basic ") {
			return true
		}
	}
	return false
}

func (h *Handler) write(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "application/soap+xml;charset=UTF-8")
	w.Header().Set("Server", "Microsoft-HTTPAPI/2.0")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, s)
}

func (h *Handler) writeFault(w http.ResponseWriter, relatesTo string, f Fault) {
	w.Header().Set("Content-Type", "application/soap+xml;charset=UTF-8")
	w.Header().Set("Server", "Microsoft-HTTPAPI/2.0")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = io.WriteString(w, f.render(relatesTo, h.Host))
}

func (h *Handler) lookup(id string) (*shell, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.shells[id]
	return s, ok
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request, req *request, f Faults, user string) {
	mid := req.Header.MessageID
	switch {
	case f.Hang:
		select {
		case <-r.Context().Done():
		case <-h.done:
		}
		return
	case f.ResetOnCreate:
		resetConnection(w)
		return
	case f.AccessDenied:
		h.writeFault(w, mid, FaultAccessDenied())
		return
	case f.QuotaExceeded:
		h.writeFault(w, mid, FaultQuotaShells())
		return
	case f.CreateFaultRaw:
		// A fault whose Action is not the WS-Man fault action: masterzen's parser then
		// finds no ShellId and reports no error (wsman.md, traps).
		s := FaultQuotaShells().render(mid, h.Host)
		s = strings.Replace(s, actionFault, "http://schemas.xmlsoap.org/ws/2004/08/addressing/fault", 1)
		w.Header().Set("Content-Type", "application/soap+xml;charset=UTF-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, s)
		return
	}
	id := strings.ToUpper(newGUID())
	h.mu.Lock()
	h.shells[id] = &shell{id: id, commands: map[string]*command{}}
	h.mu.Unlock()
	h.st.opened()
	clientIP, _, _ := net.SplitHostPort(r.RemoteAddr)
	addr := "http://" + r.Host + "/wsman"
	if r.TLS != nil {
		addr = "https://" + r.Host + "/wsman"
	}
	body := `<x:ResourceCreated><a:Address>` + esc(addr) + `</a:Address><a:ReferenceParameters><w:ResourceURI>` + resourceCmd +
		`</w:ResourceURI><w:SelectorSet><w:Selector Name="ShellId">` + id + `</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>` +
		`<rsp:Shell xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><rsp:ShellId>` + id + `</rsp:ShellId><rsp:ResourceUri>` + resourceCmd +
		`</rsp:ResourceUri><rsp:Owner>` + esc(user) + `</rsp:Owner><rsp:ClientIP>` + esc(clientIP) + `</rsp:ClientIP><rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut>` +
		`<rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams><rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime>` +
		`<rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity></rsp:Shell>`
	h.write(w, envelope(actionCreate+"Response", mid, body))
}

// resetConnection aborts the TCP connection with RST (SO_LINGER 0).
func resetConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	nc := conn
	if t, ok := conn.(interface{ NetConn() net.Conn }); ok {
		nc = t.NetConn()
	}
	if tcp, ok := nc.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = nc.Close()
}

func (h *Handler) command(w http.ResponseWriter, req *request, f Faults) {
	mid := req.Header.MessageID
	sh, ok := h.lookup(req.shellID())
	if !ok {
		h.writeFault(w, mid, faultShellNotFound(req.shellID()))
		return
	}
	if req.Body.CommandLine == nil {
		h.writeFault(w, mid, FaultInvalidParameter())
		return
	}
	line := strings.TrimSpace(req.Body.CommandLine.Command)
	for _, a := range req.Body.CommandLine.Arguments {
		line += " " + strings.TrimSpace(a)
	}
	if line == "" {
		h.writeFault(w, mid, FaultInvalidParameter())
		return
	}
	c := &command{line: line}
	if err := winrm.CheckCommandLine(line); err != nil {
		c = h.reject(line, nil, err) // not the collection: refused before any input
	}
	id := strings.ToUpper(newGUID())
	h.mu.Lock()
	sh.commands[id] = c
	h.mu.Unlock()
	h.write(w, envelope(actionCommand+"Response", mid, `<rsp:CommandResponse><rsp:CommandId>`+id+`</rsp:CommandId></rsp:CommandResponse>`))
}

// reject is a command refused (exit 1, stderr) because it is not the collection.
func (h *Handler) reject(line string, stdin []byte, err error) *command {
	h.st.mu.Lock()
	h.st.rejected = append(h.st.rejected, Rejection{Host: h.Host, Command: line, Reason: err.Error()})
	h.st.mu.Unlock()
	return &command{line: line, ended: true, exit: 1, readyAt: time.Now(),
		stderr: clixmlError("winrmtest: command rejected: only the rdsaudit collection script runs here")}
}

// run "executes" the collection once its stdin ended: only the exact collection
// (command line, parameters and embedded script) is accepted. It fills c.
func (h *Handler) run(c *command, f Faults) {
	c.ended = true
	c.readyAt = time.Now().Add(f.ScriptDelay)
	c.waitFor = f.WaitForShells
	if f.WaitForShells > 0 && f.ScriptDelay <= 0 {
		c.readyAt = time.Time{}
	}
	p, err := h.st.parseCollection(c.line, c.stdin)
	c.stdin = nil
	if err != nil {
		r := h.reject(c.line, c.stdin, err)
		c.exit, c.stderr, c.readyAt, c.waitFor = r.exit, r.stderr, r.readyAt, 0
		return
	}
	switch {
	case f.PowerShell2:
		// Windows PowerShell 2.0 runs the bootstrap, then the script fails at its first
		// PowerShell 3.0 cmdlet.
		c.exit = 1
		c.stderr = clixmlError("The term 'ConvertFrom-Json' is not recognized as the name of a cmdlet, function, script file, or operable program.")
		return
	case f.ScriptError:
		c.exit = 1
		c.stderr = clixmlError("Get-WmiObject : Invalid class \"Win32_TerminalServiceSetting\"")
		return
	case f.NonJSON:
		c.stdout = []byte("WARNING: this is not JSON\r\n")
		return
	}
	ev := Answer(h.Evidence, h.Host, p)
	if f.WrongSchema {
		ev.Schema = "rdsaudit.evidence/v0"
	}
	out, err := json.Marshal(ev)
	if err != nil {
		c.exit = 1
		c.stderr = clixmlError(err.Error())
		return
	}
	switch {
	case f.Truncated:
		out = out[:len(out)/2]
	case f.HugeOutput > len(out):
		out = append(out, bytes.Repeat([]byte(" "), f.HugeOutput-len(out))...)
	}
	c.stdout = out
}

// clixmlError renders an error the way encoded PowerShell writes it on stderr.
func clixmlError(msg string) []byte {
	return []byte("#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\">" +
		"<S S=\"Error\">" + esc(msg) + "_x000D__x000A_</S></Objs>")
}

// send takes stdin chunks (Send, any number, the last with End="true"), as Windows
// passes them to the process; at the end the collection runs.
func (h *Handler) send(w http.ResponseWriter, req *request, f Faults) {
	mid := req.Header.MessageID
	sh, ok := h.lookup(req.shellID())
	if !ok {
		h.writeFault(w, mid, faultShellNotFound(req.shellID()))
		return
	}
	if req.Body.Send == nil || len(req.Body.Send.Streams) == 0 {
		h.writeFault(w, mid, FaultInvalidParameter())
		return
	}
	for _, st := range req.Body.Send.Streams {
		h.mu.Lock()
		c := sh.commands[strings.TrimSpace(st.CommandID)]
		h.mu.Unlock()
		data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(st.Data))
		if c == nil || err != nil || (st.Name != "" && st.Name != "stdin") {
			h.writeFault(w, mid, FaultInvalidParameter())
			return
		}
		c.mu.Lock()
		if !c.ended {
			if len(c.stdin)+len(data) > winrm.MaxStdin {
				// Bounded memory: far more input than any collection.
				r := h.reject(c.line, nil, fmt.Errorf("%w: stdin exceeds %d bytes", winrm.ErrNotCollectionScript, winrm.MaxStdin))
				c.ended, c.exit, c.stderr, c.readyAt, c.stdin = true, r.exit, r.stderr, r.readyAt, nil
			} else {
				c.stdin = append(c.stdin, data...)
				if strings.EqualFold(strings.TrimSpace(st.End), "true") {
					h.run(c, f)
				}
			}
		}
		c.mu.Unlock()
	}
	h.write(w, envelope(actionSend+"Response", mid, `<rsp:SendResponse/>`))
}

func (h *Handler) receive(w http.ResponseWriter, r *http.Request, req *request, f Faults) {
	mid := req.Header.MessageID
	id := req.shellID()
	sh, ok := h.lookup(id)
	if ok && f.LoseShell {
		h.mu.Lock()
		if _, still := h.shells[id]; still {
			delete(h.shells, id)
			h.st.open.Add(-1)
		}
		h.mu.Unlock()
		ok = false
	}
	if !ok || req.Body.Receive == nil {
		h.writeFault(w, mid, faultShellNotFound(id))
		return
	}
	cid := req.Body.Receive.DesiredStream.CommandID
	h.mu.Lock()
	c := sh.commands[cid]
	h.mu.Unlock()
	if c == nil {
		h.writeFault(w, mid, FaultInvalidParameter())
		return
	}
	// Like Windows, hold the Receive until there is output or the OperationTimeout the
	// request asked for has passed; then answer w:TimedOut and let the client ask again.
	deadline := time.Now().Add(parseDuration(req.Header.OperationTimeout))
	for !h.ready(c) {
		step := time.Until(deadline)
		if step <= 0 {
			h.count("TimedOut")
			h.writeFault(w, mid, FaultTimedOut())
			return
		}
		c.mu.Lock()
		ended, readyAt, waitFor := c.ended, c.readyAt, c.waitFor
		c.mu.Unlock()
		if !readyAt.IsZero() {
			step = min(step, max(time.Until(readyAt), 0))
		}
		if waitFor > 0 || !ended {
			step = min(step, 5*time.Millisecond)
		}
		select {
		case <-time.After(step):
		case <-r.Context().Done():
			h.count("Abandoned") // the client gave up on the long-poll
			return
		case <-h.done:
			return
		}
	}
	chunk := f.ChunkSize
	if chunk <= 0 {
		chunk = 32 << 10
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	if c.sentOut == 0 && len(c.stderr) > 0 {
		// stderr may come first; split in two chunks to exercise reassembly.
		half := len(c.stderr) / 2
		for _, part := range [][]byte{c.stderr[:half], c.stderr[half:]} {
			b.WriteString(`<rsp:Stream Name="stderr" CommandId="` + cid + `">` + base64.StdEncoding.EncodeToString(part) + `</rsp:Stream>`)
		}
	}
	end := min(c.sentOut+chunk, len(c.stdout))
	if end > c.sentOut {
		b.WriteString(`<rsp:Stream Name="stdout" CommandId="` + cid + `">` + base64.StdEncoding.EncodeToString(c.stdout[c.sentOut:end]) + `</rsp:Stream>`)
	}
	c.sentOut = end
	if c.sentOut < len(c.stdout) {
		b.WriteString(`<rsp:CommandState CommandId="` + cid + `" State="` + stateRunning + `"/>`)
	} else {
		c.finished = true
		b.WriteString(`<rsp:Stream Name="stdout" CommandId="` + cid + `" End="true"></rsp:Stream><rsp:Stream Name="stderr" CommandId="` + cid + `" End="true"></rsp:Stream>`)
		b.WriteString(`<rsp:CommandState CommandId="` + cid + `" State="` + stateDone + `"><rsp:ExitCode>` + strconv.Itoa(c.exit) + `</rsp:ExitCode></rsp:CommandState>`)
	}
	if c.sentOut > 0 || c.finished {
		c.stderr = nil // sent once
	}
	h.write(w, envelope(actionReceive+"Response", mid, `<rsp:ReceiveResponse>`+b.String()+`</rsp:ReceiveResponse>`))
}

// ready reports whether the command's output may be sent: its input ended (the
// process waits for stdin until then) and its time has come.
func (h *Handler) ready(c *command) bool {
	c.mu.Lock()
	ended, readyAt, waitFor := c.ended, c.readyAt, c.waitFor
	c.mu.Unlock()
	if !ended {
		return false
	}
	byTime := !readyAt.IsZero() && !time.Now().Before(readyAt)
	if waitFor <= 0 {
		return byTime
	}
	return byTime || h.st.maxOpen.Load() >= int64(waitFor)
}

// parseDuration reads an xs:duration of the form PTnS / PTn.nnnS (default 60 s).
func parseDuration(s string) time.Duration {
	s = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "PT"), "S")
	if v, err := strconv.ParseFloat(s, 64); err == nil && v > 0 {
		return time.Duration(v * float64(time.Second))
	}
	return 60 * time.Second
}

func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Server is one virtual host listening on loopback.
type Server struct {
	URL      string // http(s)://127.0.0.1:port/wsman
	Addr     string // 127.0.0.1:port
	Host     string
	Port     int
	TLS      bool
	*Handler // SetFaults etc.

	srv *http.Server
	ln  net.Listener
	ca  *authority
	own bool // owns its state (standalone server)
}

// ServerOptions configure a standalone Server.
type ServerOptions struct {
	Users    map[string]string // credentials (see NTLM); for Basic, empty accepts any
	Faults   Faults
	Listen   string // address to listen on; default "127.0.0.1:0"
	NTLM     NTLMOptions
	Kerberos KerberosOptions // Kerberos (SPNEGO) instead of Basic; not with NTLM
	// Capture, when set, receives the SOAP text of every request the server reads
	// (after unsealing): what a client really sent, for tests to decode.
	Capture func(soap []byte)
}

// NTLMOptions make a host authenticate with NTLMv2 (ntlm.go) instead of Basic, like a
// Windows listener with its defaults (Basic off). Users then maps "DOMAIN\user",
// "user@dnsdomain" or "user" (any domain) to the password; it must not be empty. A
// DOMAIN other than Domain (and DNSDomain) is an account of another, trusted domain:
// the listener verifies its logon as a DC passes it on, only when the client sends
// that domain (OTHER\user is not LAB\user), with NTOWFv2 over the user and domain
// the AUTHENTICATE_MESSAGE carries.
type NTLMOptions struct {
	Enabled   bool
	Domain    string // NetBIOS domain (CHALLENGE TargetName); default: the first DOMAIN of Users, else WORKGROUP
	DNSDomain string // default: lower(Domain) + ".test"
}

// NewServer starts a plain-HTTP simulator for one virtual host on loopback. Like
// httptest.NewServer it panics if it cannot listen.
func NewServer(host string, ev *evidence.Evidence, opts ServerOptions) *Server {
	s, err := startServer(host, ev, opts.Users, opts.NTLM, opts.Kerberos, opts.Faults, opts.Listen, nil, newState(), opts.Capture)
	if err != nil {
		panic(fmt.Sprintf("winrmtest: %v", err))
	}
	s.own = true
	return s
}

// NewTLSServer is NewServer over HTTPS with a throwaway CA (see CACertPEM).
func NewTLSServer(host string, ev *evidence.Evidence, opts ServerOptions) *Server {
	ca, err := newAuthority(hostOf(opts.Listen))
	if err != nil {
		panic(fmt.Sprintf("winrmtest: %v", err))
	}
	s, err := startServer(host, ev, opts.Users, opts.NTLM, opts.Kerberos, opts.Faults, opts.Listen, ca, newState(), opts.Capture)
	if err != nil {
		panic(fmt.Sprintf("winrmtest: %v", err))
	}
	s.own = true
	return s
}

func hostOf(listen string) string {
	h, _, err := net.SplitHostPort(listen)
	if err != nil || h == "" {
		return "127.0.0.1"
	}
	return h
}

func startServer(host string, ev *evidence.Evidence, users map[string]string, nt NTLMOptions, kerb KerberosOptions, f Faults, listen string, ca *authority, st *state, capture func([]byte)) (*Server, error) {
	if nt.Enabled && len(users) == 0 {
		return nil, errors.New("NTLM needs Users (an NTLM server cannot verify a logon without the password)")
	}
	if nt.Enabled && kerb.KeytabPath != "" {
		return nil, errors.New("NTLM and Kerberos together are not simulated")
	}
	var krb *kerberosAcceptor
	if kerb.KeytabPath != "" {
		var err error
		if krb, err = newKerberosAcceptor(kerb); err != nil {
			return nil, err
		}
	}
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", listen, err)
	}
	h := newHandler(host, ev, users, st)
	h.SetFaults(f)
	h.capture = capture
	if nt.Enabled {
		h.ntlm = true
		h.ntlmID = defaultNTLMIdentity(host, nt.Domain, nt.DNSDomain, users)
	}
	h.krb = krb
	s := &Server{Handler: h, ln: ln, ca: ca, TLS: ca != nil, Host: host}
	s.srv = &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, ErrorLog: nil, ConnContext: withConnState}
	s.srv.ErrorLog = discardLogger()
	if nt.Enabled || krb != nil {
		// NTLM and Kerberos authenticate a TCP connection: no HTTP/2 multiplexing
		// (HTTP.sys also falls back to HTTP/1.1 for them).
		s.srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	tcp := ln.Addr().(*net.TCPAddr)
	s.Port = tcp.Port
	s.Addr = ln.Addr().String()
	scheme := "http"
	if ca != nil {
		scheme = "https"
		if s.srv.TLSConfig, err = countingTLS(ca.serverConfig(), st); err != nil {
			_ = ln.Close()
			return nil, err
		}
	}
	s.URL = scheme + "://" + s.Addr + "/wsman"
	go func() {
		var err error
		if ca != nil {
			err = s.srv.ServeTLS(ln, "", "")
		} else {
			err = s.srv.Serve(ln)
		}
		_ = err // http.ErrServerClosed after Close
	}()
	return s, nil
}

// CACertPEM returns the PEM of the CA that signed a TLS server's certificate (nil for
// plain HTTP).
func (s *Server) CACertPEM() []byte {
	if s.ca == nil {
		return nil
	}
	return s.ca.certPEM
}

// OpenShells is the number of shells created and not deleted.
func (s *Server) OpenShells() int { return int(s.st.open.Load()) }

// MaxOpenShells is the largest number of shells that were open at the same time.
func (s *Server) MaxOpenShells() int { return int(s.st.maxOpen.Load()) }

// Rejected lists the commands refused because they were not the collection script.
func (s *Server) Rejected() []Rejection { return s.st.rejectedCopy() }

// Stats returns request counts by action.
func (s *Server) Stats() Stats { return s.st.statsCopy() }

// TLSStats counts the server's TLS handshakes.
func (s *Server) TLSStats() TLSStats { return s.st.tlsStats() }

// BasicAuthRequests counts the requests that carried an Authorization: Basic header,
// i.e. that handed the listener a password (accepted or not).
func (s *Server) BasicAuthRequests() int { return int(s.st.basic.Load()) }

// NTLMFailures lists the AUTHENTICATE messages refused (failed logons).
func (s *Server) NTLMFailures() []NTLMFailure { return s.st.ntlmFailuresCopy() }

// Close stops the server, releasing hanging requests and closing connections.
func (s *Server) Close() {
	s.Handler.close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
}

func (st *state) rejectedCopy() []Rejection {
	st.mu.Lock()
	defer st.mu.Unlock()
	return append([]Rejection(nil), st.rejected...)
}

func (st *state) ntlmFailuresCopy() []NTLMFailure {
	st.mu.Lock()
	defer st.mu.Unlock()
	return append([]NTLMFailure(nil), st.ntlmFailures...)
}

func (st *state) statsCopy() Stats {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := Stats{}
	for k, v := range st.stats {
		out[k] = v
	}
	return out
}

var errNoHost = errors.New("winrmtest: no such virtual host")
