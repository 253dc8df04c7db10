package winrm_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/collect/winrm"
	"github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// deadListener accepts TCP connections and never answers (a host whose WinRM
// service hangs, or a black-holing middlebox that completes the handshake). It
// returns the port.
func deadListener(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// TestWinRMDeadHostsDoNotSerialise: 4 hosts that accept TCP but never answer, with a
// credential that has not authenticated yet, at concurrency 16. A dead host never gets
// past the TLS handshake, so it never holds the credential's probe turn: alone, the 4
// end within host_timeout plus a margin (before: 4 × host_timeout, one after the
// other). Then the same 4 first and 12 healthy hosts: every healthy host is collected
// before any dead host gives up, and all 12 were in flight at once (each script ends
// only when 12 shells are open: WaitForShells), so none waited behind a dead host.
func TestWinRMDeadHostsDoNotSerialise(t *testing.T) {
	// Long enough that 12 healthy collections finish well within it on a loaded CI
	// machine (at 5 s they did not, once, at load 9); the dead hosts still need all of it.
	const hostTimeout = 10 * time.Second
	faults := map[string]winrmtest.Faults{}
	for name := range sessionHosts(12) {
		faults[name] = winrmtest.Faults{WaitForShells: 12}
	}
	env := newEnv(t, true, sessionHosts(12), faults)
	c := newCollector(t, env, winrm.Options{HostTimeout: hostTimeout, Retries: -1}, zerolog.Nop())
	var hosts []evidence.HostRef
	for i := 0; i < 4; i++ {
		hosts = append(hosts, evidence.HostRef{Name: "dead" + strconv.Itoa(i), Address: "127.0.0.1", Port: deadListener(t), Roles: []string{evidence.RoleSessionHost}})
	}
	start := time.Now()
	collect.RunFleet(context.Background(), c, hosts, collect.FleetOptions{Concurrency: 16}, func(*evidence.Evidence) {})
	elapsed := time.Since(start)
	t.Logf("4 dead hosts, host_timeout %s: %s", hostTimeout, elapsed)
	if elapsed > hostTimeout+time.Second {
		t.Errorf("4 dead hosts took %s; want at most host_timeout %s + 1s", elapsed, hostTimeout)
	}

	c = newCollector(t, env, winrm.Options{HostTimeout: hostTimeout, Retries: -1}, zerolog.Nop())
	hosts = append(hosts, env.list()...)
	start = time.Now()
	var order []*evidence.Evidence
	collect.RunFleet(context.Background(), c, hosts, collect.FleetOptions{Concurrency: 16}, func(ev *evidence.Evidence) { order = append(order, ev) })
	elapsed = time.Since(start)
	t.Logf("4 dead + 12 healthy hosts, host_timeout %s: %s", hostTimeout, elapsed)
	if elapsed > hostTimeout+time.Second {
		t.Errorf("run took %s; want at most host_timeout %s + 1s", elapsed, hostTimeout)
	}
	deadSeen := false
	for _, ev := range order {
		if strings.HasPrefix(ev.Host.Name, "dead") {
			deadSeen = true
			if ev.Failure == nil || ev.Failure.Class != evidence.FailTimeout || !strings.Contains(ev.Failure.Message, "TLS handshake") {
				t.Errorf("%s: want timeout during the TLS handshake, got %s %+v", ev.Host.Name, ev.Status, ev.Failure)
			}
			if ev.DurationMS > hostTimeout.Milliseconds() {
				t.Errorf("%s: duration %d ms beyond host_timeout", ev.Host.Name, ev.DurationMS)
			}
			continue
		}
		if ev.Status != evidence.StatusCollected {
			t.Errorf("%s: %s %+v", ev.Host.Name, ev.Status, ev.Failure)
		} else if deadSeen {
			t.Errorf("%s: collected after a dead host gave up: it waited behind the dead hosts", ev.Host.Name)
		}
	}
	if m := env.fleet.MaxOpenShells(); m != 12 {
		t.Errorf("at most %d healthy hosts in flight at once, want 12", m)
	}
}

// TestWinRMProvenCredentialNotRetiredByHostRefusals: a credential that authenticated
// on one host meets three hosts answering 401 (a host-side refusal). Each 401 is
// re-checked on the host that accepted the credential, which still accepts it: the
// three hosts fail with class auth saying so, the credential is not retired and
// every other host is collected. (Before: the third 401 retired the credential and
// the remaining healthy hosts were skipped as credential_locked.)
func TestWinRMProvenCredentialNotRetiredByHostRefusals(t *testing.T) {
	evs := sessionHosts(8)
	faults := map[string]winrmtest.Faults{"rdsh01": {Unauthorized: true}, "rdsh02": {Unauthorized: true}, "rdsh03": {Unauthorized: true}}
	env := newEnv(t, false, evs, faults)
	c := newCollector(t, env, winrm.Options{}, zerolog.Nop())
	classes := map[evidence.FailureClass]int{}
	collect.RunFleet(context.Background(), c, env.list(), collect.FleetOptions{Concurrency: 1}, func(ev *evidence.Evidence) {
		if ev.Status == evidence.StatusCollected {
			classes["collected"]++
			return
		}
		classes[ev.Failure.Class]++
		if _, refused := faults[ev.Host.Name]; !refused {
			t.Errorf("%s: %s %+v", ev.Host.Name, ev.Status, ev.Failure)
			return
		}
		if ev.Failure.Class != evidence.FailAuth || !strings.Contains(ev.Failure.Message, "still authenticates on rdsh00") ||
			!strings.Contains(ev.Failure.Message, "credentials rejected by this host for "+testUser) {
			t.Errorf("%s: want auth naming the host-side refusal, got %s %+v", ev.Host.Name, ev.Status, ev.Failure)
		}
		if strings.Contains(ev.Failure.Message, testPassword) {
			t.Errorf("password in message")
		}
	})
	if classes["collected"] != 5 || classes[evidence.FailAuth] != 3 {
		t.Errorf("outcomes %v; want 5 collected and 3 auth", classes)
	}
	// 3 refusals, each re-checked once on rdsh00: 5 + 3 Creates, 3 requests refused.
	if st := env.fleet.Stats(); st["Unauthorized"] != 3 || st["Create"] != 8 {
		t.Errorf("requests %v; want 3 refused with 401 and 8 Creates (5 hosts, 3 re-checks)", st)
	}
}

// TestWinRMPasswordChangedMidRun: the credential authenticates on the first host, then
// its password changes (every host now answers 401). The next host's 401 is re-checked
// on the first host, refused there too: the credential is retired at once and the
// rest are skipped as credential_locked, saying the password changed. The account
// sees 2 failed logons, fewer than auth_failure_limit.
func TestWinRMPasswordChangedMidRun(t *testing.T) {
	env := newEnv(t, false, sessionHosts(6), nil)
	c := newCollector(t, env, winrm.Options{}, zerolog.Nop())
	hosts := env.list()
	if ev := c.Collect(context.Background(), hosts[0]); ev.Status != evidence.StatusCollected {
		t.Fatalf("first host: %s %+v", ev.Status, ev.Failure)
	}
	for _, h := range hosts {
		if err := env.fleet.SetFaults(h.Name, winrmtest.Faults{Unauthorized: true}); err != nil {
			t.Fatal(err)
		}
	}
	var outcomes []string
	collect.RunFleet(context.Background(), c, hosts[1:], collect.FleetOptions{Concurrency: 1}, func(ev *evidence.Evidence) {
		outcomes = append(outcomes, string(ev.Failure.Class))
		if !strings.Contains(ev.Failure.Message, "password changed during the run") {
			t.Errorf("%s: message does not say the password changed: %s", ev.Host.Name, ev.Failure.Message)
		}
	})
	want := "auth credential_locked credential_locked credential_locked credential_locked"
	if got := strings.Join(outcomes, " "); got != want {
		t.Errorf("outcomes %q, want %q", got, want)
	}
	if st := env.fleet.Stats(); st["Unauthorized"] != 2 {
		t.Errorf("requests %v; want 2 refused with 401 (the host, then the re-check)", st)
	}
}

// holdDeleteProxy forwards WS-Man requests to target (plain HTTP, Basic) and never
// answers a Delete: it holds it until the client gives up, then forwards it, so the
// shell does go (the fleet's cleanup checks no shell is left open).
func holdDeleteProxy(t testing.TB, target string) int {
	return holdProxy(t, target, "transfer/Delete<")
}

// holdProxy is holdDeleteProxy for the request whose action ends in action.
func holdProxy(t testing.TB, target, action string) int {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	forward := func(ctx context.Context, r *http.Request, body []byte) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+target+"/wsman", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header = r.Header.Clone()
		return client.Do(req)
	}
	var inflight sync.WaitGroup
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inflight.Add(1)
		defer inflight.Done()
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte(action)) {
			<-r.Context().Done()
			if resp, err := forward(context.Background(), r, body); err == nil {
				resp.Body.Close()
			}
			return
		}
		resp, err := forward(r.Context(), r, body)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); inflight.Wait() })
	return ln.Addr().(*net.TCPAddr).Port
}

// TestWinRMHostTimeoutHoldsWithHangingDelete: host_timeout is a wall-clock limit on
// the whole host, the closing Delete included. Behind a proxy that never answers a
// Delete, a healthy host is collected and a host whose script outlives the deadline
// fails with class timeout, both within host_timeout plus a small margin. (Before:
// the Delete got 15 s on top of the deadline.)
func TestWinRMHostTimeoutHoldsWithHangingDelete(t *testing.T) {
	const hostTimeout = 3 * time.Second
	env := newEnv(t, false, map[string]*evidence.Evidence{"ok": virtualHost("ok", false, 0), "slow": virtualHost("slow", false, 0)},
		map[string]winrmtest.Faults{"slow": {ScriptDelay: time.Minute}})
	c := newCollector(t, env, winrm.Options{HostTimeout: hostTimeout, OperationTimeout: time.Second, Retries: -1}, zerolog.Nop())
	for _, tc := range []struct {
		host string
		want evidence.FailureClass
	}{{"ok", ""}, {"slow", evidence.FailTimeout}} {
		h := env.hosts[tc.host]
		h.Port = holdDeleteProxy(t, net.JoinHostPort(h.Address, strconv.Itoa(h.Port)))
		start := time.Now()
		ev := c.Collect(context.Background(), h)
		elapsed := time.Since(start)
		t.Logf("%s behind a Delete that never answers, host_timeout %s: %s, %s", tc.host, hostTimeout, ev.Status, elapsed)
		switch {
		case tc.want == "" && ev.Status != evidence.StatusCollected:
			t.Errorf("%s: want collected, got %s %+v", tc.host, ev.Status, ev.Failure)
		case tc.want != "" && (ev.Failure == nil || ev.Failure.Class != tc.want):
			t.Errorf("%s: want %s, got %s %+v", tc.host, tc.want, ev.Status, ev.Failure)
		}
		if elapsed > hostTimeout+300*time.Millisecond {
			t.Errorf("%s: took %s; host_timeout %s must hold, clean-up included", tc.host, elapsed, hostTimeout)
		}
	}
}

// TestWinRMHostTimeoutHoldsWithHangingSignal: a command cut short at the deadline is
// terminated with a Signal that may use only half of what is left before the host's
// deadline, so a host that never answers the Signal still gets its Delete, and the
// whole host ends within host_timeout.
func TestWinRMHostTimeoutHoldsWithHangingSignal(t *testing.T) {
	const hostTimeout = 3 * time.Second
	env := newEnv(t, false, map[string]*evidence.Evidence{"slow": virtualHost("slow", false, 0)},
		map[string]winrmtest.Faults{"slow": {ScriptDelay: time.Minute}})
	c := newCollector(t, env, winrm.Options{HostTimeout: hostTimeout, OperationTimeout: time.Second, Retries: -1}, zerolog.Nop())
	h := env.hosts["slow"]
	h.Port = holdProxy(t, net.JoinHostPort(h.Address, strconv.Itoa(h.Port)), "shell/Signal<")
	start := time.Now()
	ev := c.Collect(context.Background(), h)
	elapsed := time.Since(start)
	if ev.Failure == nil || ev.Failure.Class != evidence.FailTimeout {
		t.Errorf("want timeout, got %s %+v", ev.Status, ev.Failure)
	}
	if elapsed > hostTimeout+300*time.Millisecond {
		t.Errorf("took %s behind a Signal that never answers; host_timeout %s must hold", elapsed, hostTimeout)
	}
	if st := env.fleet.Stats(); st["Delete"] < 1 {
		t.Errorf("requests %v: the Delete was not sent after the hanging Signal", st)
	}
}

// TestWinRMDeadHostsPlainHTTP: over plain HTTP a listener that accepts TCP and never
// answers is caught by the unauthenticated Identify that precedes the probe turn: 4
// such hosts end within host_timeout plus a margin, not one after the other.
func TestWinRMDeadHostsPlainHTTP(t *testing.T) {
	const hostTimeout = 3 * time.Second
	env := newEnv(t, false, sessionHosts(2), nil)
	c := newCollector(t, env, winrm.Options{HostTimeout: hostTimeout, Retries: -1}, zerolog.Nop())
	var hosts []evidence.HostRef
	for i := 0; i < 4; i++ {
		hosts = append(hosts, evidence.HostRef{Name: "dead" + strconv.Itoa(i), Address: "127.0.0.1", Port: deadListener(t)})
	}
	hosts = append(hosts, env.list()...)
	start := time.Now()
	collect.RunFleet(context.Background(), c, hosts, collect.FleetOptions{Concurrency: 16}, func(ev *evidence.Evidence) {
		switch {
		case strings.HasPrefix(ev.Host.Name, "dead"):
			if ev.Failure == nil || ev.Failure.Class != evidence.FailTimeout || !strings.Contains(ev.Failure.Message, "during WS-Man Identify") {
				t.Errorf("%s: want timeout during WS-Man Identify, got %s %+v", ev.Host.Name, ev.Status, ev.Failure)
			}
		case ev.Status != evidence.StatusCollected:
			t.Errorf("%s: %s %+v", ev.Host.Name, ev.Status, ev.Failure)
		}
	})
	if elapsed := time.Since(start); elapsed > hostTimeout+time.Second {
		t.Errorf("took %s; want at most host_timeout %s + 1s", elapsed, hostTimeout)
	}
	if st := env.fleet.Stats(); st["Unauthorized"] != 0 || st["Create"] != 2 {
		t.Errorf("requests %v: Identify must not count, and no logon failed", st)
	}
}
