package winrm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	masterzen "github.com/masterzen/winrm"
	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/collect/winrm"
	"github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest"
	"github.com/rdsaudit/rdsaudit/evidence"
)

const (
	testUser     = `LAB\auditor`
	testPassword = "S3cr3t-P@ss-never-print-me"
)

func ptr[T any](v T) *T { return &v }

// virtualHost builds a host's full evidence, with more than the script asks for, so
// tests can check the simulator answers only what was requested.
func virtualHost(name string, licenseServer bool, issued int) *evidence.Evidence {
	ev := &evidence.Evidence{
		Schema: evidence.Schema, Host: evidence.HostRef{Name: name}, Collector: "snapshot", Status: evidence.StatusCollected,
		OS: &evidence.OSInfo{ComputerName: strings.ToUpper(name), Caption: "Microsoft Windows Server 2022 Standard", Version: "10.0.20348", BuildNumber: "20348"},
		Registry: []evidence.RegKey{
			{Path: evidence.KeyLicensingCore, Exists: true, Values: []evidence.RegValue{{Name: evidence.ValLicensingMode, Type: evidence.RegDWord, Number: ptr(uint64(4)), Length: 4}}},
			{Path: evidence.KeyGracePeriod, Exists: true, Owner: `NT AUTHORITY\NETWORK SERVICE`, Values: []evidence.RegValue{
				{Name: evidence.ValTimebomb, Type: evidence.RegBinary, Hex: "0102030405060708", Length: 8}}},
			{Path: evidence.KeyRCM, Exists: true, Values: []evidence.RegValue{
				{Name: evidence.ValX509Certificate, Type: evidence.RegBinary, Hex: "aabbcc", Length: 3},
				{Name: "fDenyTSConnections", Type: evidence.RegDWord, Number: ptr(uint64(0)), Length: 4}}},
			{Path: `HKLM\SOFTWARE\NotRequested`, Exists: true, Values: []evidence.RegValue{{Name: "x", Type: evidence.RegSZ, String: ptr("secret-ish")}}},
		},
		TerminalServices: &evidence.TerminalServices{NamespacePresent: true, TerminalServerMode: ptr(int64(1)), LicensingType: ptr(int64(4))},
	}
	ev.TerminalServices.GracePeriod.Called = true
	ev.TerminalServices.GracePeriod.ReturnValue = ptr(int64(0))
	ev.TerminalServices.GracePeriod.DaysLeft = ptr(int64(87))
	if licenseServer {
		ls := &evidence.LicenseServerEvidence{KeyPacks: []evidence.KeyPack{{KeyPackID: 4, TotalLicenses: ptr(int64(20)), TypeAndModel: "RDS Per User CAL"}}}
		for i := 0; i < issued; i++ {
			ls.IssuedLicenses = append(ls.IssuedLicenses, evidence.IssuedLicense{LicenseID: int64(i + 1), KeyPackID: 4, IssuedToComp: fmt.Sprintf("PC%03d", i)})
		}
		ls.IssuedTotal = issued
		ev.LicenseServer = ls
	}
	return ev
}

type testEnv struct {
	fleet *winrmtest.Fleet
	hosts map[string]evidence.HostRef
}

// startFleet starts a fleet serving evs with opts. Each host's HostRef has the
// session_host role, and license_server too when its evidence holds license-server
// data. Every test checks at cleanup that no shell is left open.
func startFleet(t testing.TB, evs map[string]*evidence.Evidence, opts winrmtest.FleetServerOptions) *testEnv {
	t.Helper()
	f, err := winrmtest.NewFleet(evs, opts)
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{fleet: f, hosts: map[string]evidence.HostRef{}}
	for name, ev := range evs {
		roles := []string{evidence.RoleSessionHost}
		if ev != nil && ev.LicenseServer != nil {
			roles = append(roles, evidence.RoleLicenseServer)
		}
		h, err := f.HostRef(name, roles...)
		if err != nil {
			t.Fatal(err)
		}
		env.hosts[name] = h
	}
	t.Cleanup(func() {
		f.Close()
		if n := f.OpenShells(); n != 0 {
			t.Errorf("%d shells left open", n)
		}
	})
	return env
}

// newEnv starts a Basic fleet whose only account is testUser with testPassword.
func newEnv(t testing.TB, tls bool, evs map[string]*evidence.Evidence, faults map[string]winrmtest.Faults) *testEnv {
	t.Helper()
	return startFleet(t, evs, winrmtest.FleetServerOptions{TLS: tls, Users: map[string]string{testUser: testPassword}, Faults: faults})
}

// sessionHosts is the evidence of n healthy session hosts rdsh00, rdsh01, ...
func sessionHosts(n int) map[string]*evidence.Evidence {
	evs := map[string]*evidence.Evidence{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("rdsh%02d", i)
		evs[name] = virtualHost(name, false, 0)
	}
	return evs
}

// list returns the fleet's HostRefs in name order.
func (e *testEnv) list() []evidence.HostRef {
	names := slices.Sorted(maps.Keys(e.hosts))
	hosts := make([]evidence.HostRef, len(names))
	for i, n := range names {
		hosts[i] = e.hosts[n]
	}
	return hosts
}

// newCollector is a collector for env with testUser's credential: Basic unless opts say
// otherwise, over HTTPS trusting the fleet's CA when it has one, else over plain HTTP.
func newCollector(t testing.TB, env *testEnv, opts winrm.Options, log zerolog.Logger) *winrm.Collector {
	t.Helper()
	if opts.Auth == "" {
		opts.Auth = winrm.AuthBasic
	}
	if env.fleet.CACertPEM() != nil {
		opts.Scheme = "https"
		if opts.CAPEM == nil {
			opts.CAPEM = env.fleet.CACertPEM()
		}
	} else {
		opts.Scheme = "http"
		opts.AllowBasicOverHTTP = true
	}
	return labCollectorLog(t, testUser, testPassword, opts, log)
}

// labCollector is a collector with the test credential "lab" (user, password), quick
// retries and a host deadline that a hung test host reaches in bounded time.
func labCollector(t testing.TB, user, password string, opts winrm.Options) *winrm.Collector {
	t.Helper()
	return labCollectorLog(t, user, password, opts, zerolog.Nop())
}

// labCollectorLog is labCollector logging to log.
func labCollectorLog(t testing.TB, user, password string, opts winrm.Options, log zerolog.Logger) *winrm.Collector {
	t.Helper()
	if opts.RetryBackoff == 0 {
		opts.RetryBackoff = 5 * time.Millisecond
	}
	if opts.HostTimeout == 0 {
		opts.HostTimeout = 20 * time.Second
	}
	c, err := winrm.New(opts, winrm.CredentialMap{"*": {Name: "lab", Username: user, Password: password}}, log)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// collectAll collects hosts all at once, reports each host that was not collected and
// returns how many were.
func collectAll(t testing.TB, c *winrm.Collector, hosts []evidence.HostRef) int {
	t.Helper()
	collected := 0
	collect.RunFleet(context.Background(), c, hosts, collect.FleetOptions{Concurrency: len(hosts)}, func(ev *evidence.Evidence) {
		if ev.Status != evidence.StatusCollected {
			t.Errorf("%s: %s %+v", ev.Host.Name, ev.Status, ev.Failure)
			return
		}
		collected++
	})
	return collected
}

// redirectDial is a DialContext that connects the address want (host:port, a name that
// does not resolve) to host h, and refuses any other address; dials counts its
// connections.
func redirectDial(h evidence.HostRef, want string) (dial func(ctx context.Context, network, addr string) (net.Conn, error), dials *atomic.Int64) {
	target := net.JoinHostPort(h.Address, strconv.Itoa(h.Port))
	dials = new(atomic.Int64)
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr != want {
			return nil, fmt.Errorf("unexpected address %q", addr)
		}
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, target)
	}, dials
}

// checkHonoursContext: on host h, whose Create is never answered (Faults.Hang), a
// collector from newCollector without retries ends with the host deadline (class
// timeout), and a cancelled collection ends at once (class canceled).
func checkHonoursContext(t *testing.T, h evidence.HostRef, newCollector func(winrm.Options) *winrm.Collector) {
	t.Helper()
	c := newCollector(winrm.Options{HostTimeout: 700 * time.Millisecond, Retries: -1})
	start := time.Now()
	ev := c.Collect(context.Background(), h)
	if ev.Failure == nil || ev.Failure.Class != evidence.FailTimeout || time.Since(start) > 5*time.Second {
		t.Errorf("want timeout after ~0.7s, got %s %+v after %s", ev.Status, ev.Failure, time.Since(start))
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	c = newCollector(winrm.Options{Retries: -1})
	start = time.Now()
	ev = c.Collect(ctx, h)
	if ev.Failure == nil || ev.Failure.Class != evidence.FailCanceled || time.Since(start) > 5*time.Second {
		t.Errorf("want canceled after ~0.3s, got %s %+v after %s", ev.Status, ev.Failure, time.Since(start))
	}
}

// runLockout collects hosts all at once with a collector whose credential has a wrong
// password: exactly LockoutThreshold hosts fail with class auth, after one attempt
// each, and the others are skipped with class credential_locked.
func runLockout(t *testing.T, c *winrm.Collector, hosts []evidence.HostRef) {
	t.Helper()
	got := map[evidence.FailureClass]int{}
	collect.RunFleet(context.Background(), c, hosts, collect.FleetOptions{Concurrency: len(hosts)}, func(ev *evidence.Evidence) {
		switch {
		case ev.Status == evidence.StatusFailed && ev.Failure.Class == evidence.FailAuth && ev.Failure.Attempts == 1:
		case ev.Status == evidence.StatusSkipped && ev.Failure.Class == evidence.FailCredential:
		default:
			t.Errorf("%s: %s %+v; want auth after one attempt, or skipped credential_locked", ev.Host.Name, ev.Status, ev.Failure)
			return
		}
		got[ev.Failure.Class]++
	})
	if want := winrm.DefaultLockoutThreshold; got[evidence.FailAuth] != want || got[evidence.FailCredential] != len(hosts)-want {
		t.Errorf("classes %v; want %d auth and the rest credential_locked", got, want)
	}
}

func TestWinRMCollectHealthyTLS(t *testing.T) {
	env := newEnv(t, true, map[string]*evidence.Evidence{
		"rdsh01": virtualHost("rdsh01", false, 0),
		"lic01":  virtualHost("lic01", true, 5),
	}, nil)
	c := newCollector(t, env, winrm.Options{MaxIssuedLicenses: 2}, zerolog.Nop())
	for _, name := range []string{"rdsh01", "lic01"} {
		h := env.hosts[name]
		ev := c.Collect(context.Background(), h)
		if ev.Status != evidence.StatusCollected {
			t.Fatalf("%s: %+v", name, ev.Failure)
		}
		if ev.Host.Name != name || ev.Host.Port != h.Port || ev.Collector != winrm.CollectorWinRM || ev.CollectedAt.IsZero() {
			t.Errorf("%s: collector did not overwrite host fields: %+v %s %s", name, ev.Host, ev.Collector, ev.CollectedAt)
		}
		if ev.Key(`HKLM\SOFTWARE\NotRequested`) != nil {
			t.Errorf("%s: key that was not requested came back", name)
		}
		if k := ev.Key(evidence.KeyPolicy); k == nil || k.Exists {
			t.Errorf("%s: requested missing key should read as not existing: %+v", name, k)
		}
		tb := ev.Key(evidence.KeyGracePeriod).Value(evidence.ValTimebomb)
		if tb == nil || tb.Hex != "" || !tb.Redacted || tb.Length != 8 || len(tb.SHA256) != 64 {
			t.Errorf("%s: timebomb not redacted: %+v", name, tb)
		}
		if ev.Key(evidence.KeyRCM).Value("fDenyTSConnections") != nil {
			t.Errorf("%s: OnlyValues not honoured", name)
		}
		if d := ev.TerminalServices.GracePeriod.DaysLeft; d == nil || *d != 87 {
			t.Errorf("%s: grace period days: %v", name, d)
		}
	}
	ls := c.Collect(context.Background(), env.hosts["lic01"]).LicenseServer
	if ls == nil || len(ls.IssuedLicenses) != 2 || ls.IssuedTotal != 5 || !ls.IssuedTruncated {
		t.Errorf("issued licences not bounded: %+v", ls)
	}
	h := env.hosts["rdsh01"]
	h.Roles = []string{evidence.RoleClient}
	if ev := c.Collect(context.Background(), h); ev.LicenseServer != nil || ev.Key(evidence.KeyGracePeriod) != nil || ev.Key(evidence.KeyClientHardwareID) == nil {
		t.Errorf("sections not filtered by roles: %+v", ev.Registry)
	}
	if r := env.fleet.Rejected(); len(r) != 0 {
		t.Errorf("simulator rejected the collection script: %+v", r)
	}
	if masterzen.DefaultParameters.Timeout != "PT60S" || masterzen.DefaultParameters.TransportDecorator != nil {
		t.Errorf("masterzen.DefaultParameters was modified: %+v", *masterzen.DefaultParameters)
	}
}

func closedPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return p
}

// TestWinRMFailureClasses runs the real client against every injected fault and checks
// each host's classification. Several cases fail without a specific trap handling:
// lost_shell spins until the deadline and create_fault_raw reports success when SOAP
// faults are not parsed; script_error passes when ExitCode is trusted over the error.
func TestWinRMFailureClasses(t *testing.T) {
	cases := []struct {
		name     string
		faults   winrmtest.Faults
		want     evidence.FailureClass // "" = collected
		attempts int
	}{
		{"healthy", winrmtest.Faults{ChunkSize: 100, Latency: time.Millisecond}, "", 0},
		{"slow_script", winrmtest.Faults{ScriptDelay: 2500 * time.Millisecond}, "", 0},
		{"unauthorized", winrmtest.Faults{Unauthorized: true}, evidence.FailAuth, 1},
		{"access_denied", winrmtest.Faults{AccessDenied: true}, evidence.FailAccessDenied, 1},
		{"quota", winrmtest.Faults{QuotaExceeded: true}, evidence.FailQuota, 3},
		{"create_fault_raw", winrmtest.Faults{CreateFaultRaw: true}, evidence.FailQuota, 3},
		{"reset", winrmtest.Faults{ResetOnCreate: true}, evidence.FailConnect, 3},
		{"hang", winrmtest.Faults{Hang: true}, evidence.FailTimeout, 0},
		// The deadline expires while the script runs: the shell must still be deleted
		// (newEnv's cleanup asserts zero open shells).
		{"past_deadline", winrmtest.Faults{ScriptDelay: time.Minute}, evidence.FailTimeout, 0},
		{"lost_shell", winrmtest.Faults{LoseShell: true}, evidence.FailProtocol, 1},
		{"non_json", winrmtest.Faults{NonJSON: true}, evidence.FailBadOutput, 1},
		{"truncated", winrmtest.Faults{Truncated: true}, evidence.FailBadOutput, 1},
		{"wrong_schema", winrmtest.Faults{WrongSchema: true}, evidence.FailBadOutput, 1},
		{"huge", winrmtest.Faults{HugeOutput: 1 << 20}, evidence.FailBadOutput, 1},
		{"script_error", winrmtest.Faults{ScriptError: true}, evidence.FailScript, 1},
		{"powershell2", winrmtest.Faults{PowerShell2: true}, evidence.FailUnsupported, 1},
	}
	evs := map[string]*evidence.Evidence{}
	faults := map[string]winrmtest.Faults{}
	for _, tc := range cases {
		evs[tc.name] = virtualHost(tc.name, false, 0)
		faults[tc.name] = tc.faults
	}
	env := newEnv(t, false, evs, faults)
	var logs bytes.Buffer
	logw := zerolog.SyncWriter(&logs) // hosts log concurrently
	c := newCollector(t, env, winrm.Options{
		OperationTimeout: time.Second, HostTimeout: 4 * time.Second, MaxOutputBytes: 256 << 10,
	}, zerolog.New(logw).Level(zerolog.DebugLevel))
	var hosts []evidence.HostRef
	for _, tc := range cases {
		hosts = append(hosts, env.hosts[tc.name])
	}
	hosts = append(hosts,
		evidence.HostRef{Name: "refused", Address: "127.0.0.1", Port: closedPort(t)},
		evidence.HostRef{Name: "nxdomain", Address: "rdsaudit-no-such-host.invalid", Port: 5985},
	)
	// The credential proves itself on the healthy host first: a reachable host whose
	// listener never answers (hang) would otherwise hold the credential's first logon
	// until its own deadline, and the others' wait counts against their host_timeout
	// (TestWinRMDeadHostsDoNotSerialise covers hosts that cannot be reached).
	if ev := c.Collect(context.Background(), env.hosts["healthy"]); ev.Status != evidence.StatusCollected {
		t.Fatalf("healthy: %s %+v", ev.Status, ev.Failure)
	}
	got := map[string]*evidence.Evidence{}
	var mu sync.Mutex
	collect.RunFleet(context.Background(), c, hosts, collect.FleetOptions{Concurrency: 8, Logger: zerolog.New(logw)}, func(ev *evidence.Evidence) {
		mu.Lock()
		defer mu.Unlock()
		if got[ev.Host.Name] != nil {
			t.Errorf("%s emitted twice", ev.Host.Name)
		}
		got[ev.Host.Name] = ev
	})
	check := func(name string, want evidence.FailureClass, attempts int) {
		t.Helper()
		ev := got[name]
		switch {
		case ev == nil:
			t.Errorf("%s: no evidence", name)
		case want == "" && ev.Status != evidence.StatusCollected:
			t.Errorf("%s: want collected, got %+v", name, ev.Failure)
		case want != "" && (ev.Status != evidence.StatusFailed || ev.Failure == nil || ev.Failure.Class != want):
			t.Errorf("%s: want %s, got status %s failure %+v", name, want, ev.Status, ev.Failure)
		case want != "" && attempts > 0 && ev.Failure.Attempts != attempts:
			t.Errorf("%s: want %d attempts, got %d", name, attempts, ev.Failure.Attempts)
		}
	}
	for _, tc := range cases {
		check(tc.name, tc.want, tc.attempts)
	}
	check("refused", evidence.FailConnect, 3)
	check("nxdomain", evidence.FailDNS, 1)

	// Secrets never reach evidence or logs.
	all, _ := json.Marshal(got)
	for _, where := range []string{string(all), logs.String()} {
		if strings.Contains(where, testPassword) {
			t.Fatalf("password leaked: %s", where)
		}
	}

	// Durations and backoffs carry their unit ("1.2s", "22.5ms"): a bare number would
	// be read as seconds.
	seen := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		for _, k := range []string{"duration", "backoff"} {
			if v, ok := e[k]; ok {
				seen[k]++
				if s, _ := v.(string); s == "" || strings.Trim(s, "0123456789.") == "" {
					t.Errorf("%s %v has no unit: %s", k, v, line)
				} else if _, err := time.ParseDuration(s); err != nil {
					t.Errorf("%s %q: %v", k, s, err)
				}
			}
		}
	}
	if seen["duration"] == 0 || seen["backoff"] == 0 {
		t.Errorf("durations logged: %v, want some of each", seen)
	}
}

func TestWinRMTLSFailure(t *testing.T) {
	env := newEnv(t, true, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, nil)
	other, err := winrmtest.NewFleet(map[string]*evidence.Evidence{"x": nil}, winrmtest.FleetServerOptions{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	c := newCollector(t, env, winrm.Options{CAPEM: other.CACertPEM()}, zerolog.Nop()) // trusts the wrong CA
	ev := c.Collect(context.Background(), env.hosts["h"])
	if ev.Failure == nil || ev.Failure.Class != evidence.FailTLS {
		t.Fatalf("want tls, got %+v", ev.Failure)
	}
	// The right CA but the wrong server name.
	c = newCollector(t, env, winrm.Options{TLSServerName: "wrong.example"}, zerolog.Nop())
	if ev := c.Collect(context.Background(), env.hosts["h"]); ev.Failure == nil || ev.Failure.Class != evidence.FailTLS {
		t.Fatalf("want tls, got %+v", ev.Failure)
	}
}

func TestWinRMLockout(t *testing.T) {
	evs := map[string]*evidence.Evidence{}
	faults := map[string]winrmtest.Faults{}
	for i := 0; i < 6; i++ {
		n := "bad" + strconv.Itoa(i)
		evs[n] = virtualHost(n, false, 0)
		faults[n] = winrmtest.Faults{Unauthorized: true}
	}
	evs["good"] = virtualHost("good", false, 0)
	// The other credential is another account: lockout is counted per account, so
	// another entry for testUser would be retired with "lab" (TestWinRMLockoutPerAccount).
	env := startFleet(t, evs, winrmtest.FleetServerOptions{Users: map[string]string{testUser: testPassword, `LAB\other`: "other-" + testPassword}, Faults: faults})
	creds := winrm.CredentialFunc(func(h evidence.HostRef) (winrm.Credential, error) {
		if h.Name == "good" {
			return winrm.Credential{Name: "other", Username: `LAB\other`, Password: "other-" + testPassword}, nil
		}
		return winrm.Credential{Name: "lab", Username: testUser, Password: "wrong-" + testPassword}, nil
	})
	c, err := winrm.New(winrm.Options{Scheme: "http", Auth: winrm.AuthBasic, AllowBasicOverHTTP: true, RetryBackoff: time.Millisecond}, creds, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	var hosts []evidence.HostRef
	for i := 0; i < 6; i++ {
		hosts = append(hosts, env.hosts["bad"+strconv.Itoa(i)])
	}
	hosts = append(hosts, env.hosts["good"])
	var order []*evidence.Evidence
	collect.RunFleet(context.Background(), c, hosts, collect.FleetOptions{Concurrency: 1}, func(ev *evidence.Evidence) { order = append(order, ev) })
	auth, locked := 0, 0
	for _, ev := range order {
		switch {
		case ev.Host.Name == "good":
			if ev.Status != evidence.StatusCollected {
				t.Errorf("other credential affected: %+v", ev.Failure)
			}
		case ev.Failure.Class == evidence.FailAuth:
			auth++
			if ev.Failure.Attempts != 1 {
				t.Errorf("auth retried: %d attempts", ev.Failure.Attempts)
			}
		case ev.Failure.Class == evidence.FailCredential && ev.Status == evidence.StatusSkipped:
			locked++
		default:
			t.Errorf("%s: unexpected %s %+v", ev.Host.Name, ev.Status, ev.Failure)
		}
	}
	if auth != 3 || locked != 3 {
		t.Errorf("auth failures %d (want 3), locked %d (want 3)", auth, locked)
	}
	if st := env.fleet.Stats(); st["Unauthorized"] != 3 || st["Create"] != 1 {
		t.Errorf("requests %v; want 3 refused with 401 (no retry, then locked) and 1 Create", st)
	}
}

func TestCredentialNeverPrinted(t *testing.T) {
	c := winrm.Credential{Name: "lab", Username: testUser, Password: testPassword}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c), fmt.Sprintf("%+v", struct{ C winrm.Credential }{c}), fmt.Sprintf("%#v", &c)} {
		if strings.Contains(s, testPassword) {
			t.Errorf("password printed: %s", s)
		}
	}
}

func TestNewWinRMCollectorRefusesBasicOverHTTP(t *testing.T) {
	creds := winrm.CredentialMap{}
	if _, err := winrm.New(winrm.Options{Scheme: "http", Auth: winrm.AuthBasic}, creds, zerolog.Nop()); err == nil {
		t.Error("basic over http accepted without AllowBasicOverHTTP")
	}
	var logs bytes.Buffer
	if _, err := winrm.New(winrm.Options{Scheme: "http", Auth: winrm.AuthBasic, AllowBasicOverHTTP: true}, creds, zerolog.New(&logs)); err != nil || !strings.Contains(logs.String(), "warn") {
		t.Errorf("allowed basic over http: err %v, log %q (want a warning)", err, logs.String())
	}
	for _, o := range []winrm.Options{{Scheme: "ftp"}, {Auth: "digest"}, {Auth: winrm.AuthKerberos}, {CAPEM: []byte("not pem")}} {
		if _, err := winrm.New(o, creds, zerolog.Nop()); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	c, err := winrm.New(winrm.Options{}, creds, zerolog.Nop())
	if err != nil || c.Options().Scheme != "https" || c.Options().Port != 5986 || c.Options().Auth != winrm.AuthNTLM {
		t.Errorf("defaults: %+v %v", c.Options(), err)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want evidence.FailureClass
	}{
		{errors.New("http response error: 401 - invalid content type"), evidence.FailAuth},
		{errors.New("http error 401"), evidence.FailAuth},
		{errors.New("request returned: 401 - 401 Unauthorized. Response body:"), evidence.FailAuth},
		{&winrm.HTTPError{Status: 401}, evidence.FailAuth},
		{&winrm.WSManFault{Subcode: "w:AccessDenied", WSMan: "5"}, evidence.FailAccessDenied},
		{&winrm.WSManFault{Subcode: "w:InternalError", WSMan: "2147942405"}, evidence.FailAccessDenied},
		{&winrm.WSManFault{Subcode: "w:QuotaLimit", WSMan: "2150859174"}, evidence.FailQuota},
		{&winrm.WSManFault{Subcode: "w:TimedOut", WSMan: "2150858793"}, evidence.FailTimeout},
		{&winrm.WSManFault{Subcode: "w:InvalidSelectors", WSMan: "2150858843"}, evidence.FailProtocol},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), evidence.FailTimeout},
		{&net.DNSError{Err: "no such host", Name: "x"}, evidence.FailDNS},
		{errors.New("Command has already been closed"), evidence.FailProtocol},
	} {
		if got := winrm.Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
	if !strings.Contains((&winrm.WSManFault{WSMan: winrm.WSManOperationTimeout}).Error(), "OperationTimeout") {
		t.Error("operation timeout fault must mention OperationTimeout (masterzen's Receive loop keys on it)")
	}
}

// TestWinRMNTLMRejectedIsAuth: NTLM against a listener that rejects it (a Basic
// listener answering every request 401, offering Negotiate among its schemes): over
// HTTPS and HTTP our NTLM client gets no CHALLENGE for its NEGOTIATE and stops before
// sending credentials. Class auth, after one attempt, saying so; no Basic header
// reaches the listener; and since no logon was tried, no failed logon is counted: the
// credential is not retired. (A refused AUTHENTICATE is counted:
// TestWinRMNTLMHTTPSFaults, TestWinRMNTLMEncryptedHTTPNeverUnencrypted.)
func TestWinRMNTLMRejectedIsAuth(t *testing.T) {
	for _, tls := range []bool{true, false} {
		env := newEnv(t, tls, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, map[string]winrmtest.Faults{"h": {Unauthorized: true}})
		opts := winrm.Options{Auth: winrm.AuthNTLM, HostTimeout: 10 * time.Second}
		c := newCollector(t, env, opts, zerolog.Nop())
		for i := 0; i <= winrm.DefaultLockoutThreshold; i++ {
			ev := c.Collect(context.Background(), env.hosts["h"])
			if ev.Failure == nil || ev.Failure.Class != evidence.FailAuth || ev.Failure.Attempts != 1 {
				t.Errorf("tls=%v, run %d: want auth after one attempt, got %s %+v", tls, i, ev.Status, ev.Failure)
				continue
			}
			if !strings.Contains(ev.Failure.Message, "without a CHALLENGE") {
				t.Errorf("tls=%v: message does not say the NEGOTIATE got no CHALLENGE: %s", tls, ev.Failure.Message)
			}
			if strings.Contains(ev.Failure.Message, testPassword) {
				t.Errorf("password in message")
			}
		}
		if n := env.fleet.BasicAuthRequests(); n != 0 {
			t.Errorf("tls=%v: %d requests with Authorization: Basic", tls, n)
		}
		if st := env.fleet.Stats(); st["Create"] != 0 {
			t.Errorf("tls=%v: requests %v", tls, st)
		}
	}
}

// gateFleet starts n healthy session hosts with the given faults and a collector whose
// one credential uses password.
func gateFleet(t *testing.T, n int, faults winrmtest.Faults, password string, opts winrm.Options) (*testEnv, *winrm.Collector, []evidence.HostRef) {
	t.Helper()
	evs := sessionHosts(n)
	fs := map[string]winrmtest.Faults{}
	for name := range evs {
		fs[name] = faults
	}
	env := newEnv(t, false, evs, fs)
	opts.Scheme, opts.Auth, opts.AllowBasicOverHTTP = "http", winrm.AuthBasic, true
	if opts.RetryBackoff == 0 {
		opts.RetryBackoff = time.Millisecond
	}
	return env, labCollector(t, testUser, password, opts), env.list()
}

// TestWinRMLockoutGateWrongPassword: with every host in flight at once, a wrong
// password still reaches only LockoutThreshold hosts. Without the per-credential gate
// all ten try it (ten failed logons, enough to lock a domain account).
func TestWinRMLockoutGateWrongPassword(t *testing.T) {
	env, c, hosts := gateFleet(t, 10, winrmtest.Faults{}, "wrong-"+testPassword, winrm.Options{})
	runLockout(t, c, hosts)
	// Counted on the server side: exactly three requests refused with 401, nothing else.
	if st := env.fleet.Stats(); st["Unauthorized"] != 3 || len(st) != 1 {
		t.Errorf("server saw %v; want exactly 3 requests refused with 401", st)
	}
}

// TestWinRMLockoutGateOpens: once the credential authenticated, hosts run in parallel.
// Each host's script finishes only when all ten shells have been open at the same time
// (WaitForShells), so the run completes only if the gate opened; no timing involved.
func TestWinRMLockoutGateOpens(t *testing.T) {
	const n = 10
	env, c, hosts := gateFleet(t, n, winrmtest.Faults{WaitForShells: n}, testPassword, winrm.Options{HostTimeout: 10 * time.Second})
	if collected := collectAll(t, c, hosts); collected != n {
		t.Errorf("%d of %d hosts collected", collected, n)
	}
	if m := env.fleet.MaxOpenShells(); m != n {
		t.Errorf("at most %d shells open at once, want %d: the credential gate did not open", m, n)
	}
	if st := env.fleet.Stats(); st["Unauthorized"] != 0 || st["Create"] != n {
		t.Errorf("requests %v; want %d Creates and no 401", st, n)
	}
}

// TestWinRMHTTPTimeoutOutlastsOperationTimeout: a Receive legitimately takes the whole
// WS-Man OperationTimeout (Parameters.Timeout) before Windows answers w:TimedOut, plus
// network delay. The simulator holds each Receive that long and adds 300 ms latency to
// every answer; the script runs longer than OperationTimeout. The HTTP timeout
// (Endpoint.Timeout = OperationTimeout + HTTPTimeoutMargin) must outlast that.
//
// If it did not, the client would cut every long-poll: masterzen/winrm treats an HTTP
// timeout on Receive like w:TimedOut and silently asks again (command.go,
// slurpAllOutput), so the host may still come back, but each cut Receive leaves an
// operation behind on a real host and output answered as the client gives up is lost.
// Hence the checks below: collected, w:TimedOut delivered, no Receive abandoned.
func TestWinRMHTTPTimeoutOutlastsOperationTimeout(t *testing.T) {
	env := newEnv(t, false, map[string]*evidence.Evidence{"slow": virtualHost("slow", false, 0)},
		map[string]winrmtest.Faults{"slow": {ScriptDelay: 2500 * time.Millisecond, Latency: 300 * time.Millisecond}})
	c := newCollector(t, env, winrm.Options{OperationTimeout: time.Second, HostTimeout: 30 * time.Second, Retries: -1}, zerolog.Nop())
	if ev := c.Collect(context.Background(), env.hosts["slow"]); ev.Status != evidence.StatusCollected {
		t.Fatalf("want collected, got %s %+v", ev.Status, ev.Failure)
	}
	st := env.fleet.Stats()
	// The path under test was taken: at least one Receive was held for the full
	// OperationTimeout and answered w:TimedOut, and the client asked again.
	if st["TimedOut"] < 1 || st["Receive"] <= st["TimedOut"] {
		t.Errorf("requests %v; want Receives answered w:TimedOut, then a final one", st)
	}
	if st["Abandoned"] != 0 {
		t.Errorf("requests %v: the client cut %d long-polls (HTTP timeout not above OperationTimeout + network delay)", st, st["Abandoned"])
	}
}

// TestWinRMNTLMNeverSendsBasic: a listener that offers only Basic (a host configured
// that way, or an impostor when certificate checks are off) must never receive the
// password with auth ntlm. Over HTTPS and HTTP our NTLM client reads the offered
// schemes from an anonymous request first and builds no Basic header. (go-ntlmssp's
// Negotiator, the former HTTPS client, re-sent the request with Basic when the 401
// offered neither NTLM nor Negotiate.) The simulator would accept Basic and the host
// would be collected. Counted on the server side: no Authorization: Basic header
// arrives.
func TestWinRMNTLMNeverSendsBasic(t *testing.T) {
	for _, tls := range []bool{true, false} {
		env := newEnv(t, tls, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, map[string]winrmtest.Faults{"h": {BasicOnly: true}})
		c := newCollector(t, env, winrm.Options{Auth: winrm.AuthNTLM, HostTimeout: 10 * time.Second}, zerolog.Nop())
		ev := c.Collect(context.Background(), env.hosts["h"])
		if ev.Failure == nil || ev.Failure.Class != evidence.FailAuth || ev.Failure.Attempts != 1 {
			t.Errorf("tls=%v: want auth after one attempt, got %s %+v", tls, ev.Status, ev.Failure)
		} else if !strings.Contains(ev.Failure.Message, "NTLM") {
			t.Errorf("tls=%v: message does not say NTLM is not offered: %s", tls, ev.Failure.Message)
		}
		if n := env.fleet.BasicAuthRequests(); n != 0 {
			t.Errorf("tls=%v: the listener received %d requests with Authorization: Basic (the password)", tls, n)
		}
		if st := env.fleet.Stats(); st["Create"] != 0 {
			t.Errorf("tls=%v: requests %v; want no Create", tls, st)
		}
		// No password was sent, so no failed logon: the credential is not retired.
		for i := 0; i < winrm.DefaultLockoutThreshold; i++ {
			if ev := c.Collect(context.Background(), env.hosts["h"]); ev.Failure == nil || ev.Failure.Class != evidence.FailAuth {
				t.Errorf("tls=%v: repeat %d: want auth, got %s %+v", tls, i, ev.Status, ev.Failure)
			}
		}
	}
	// Control: with auth basic the same listener does get (and accept) Basic.
	env := newEnv(t, true, map[string]*evidence.Evidence{"h": virtualHost("h", false, 0)}, map[string]winrmtest.Faults{"h": {BasicOnly: true}})
	c := newCollector(t, env, winrm.Options{Auth: winrm.AuthBasic}, zerolog.Nop())
	if ev := c.Collect(context.Background(), env.hosts["h"]); ev.Status != evidence.StatusCollected || env.fleet.BasicAuthRequests() == 0 {
		t.Errorf("basic control: %s %+v, %d Basic requests", ev.Status, ev.Failure, env.fleet.BasicAuthRequests())
	}
}

// TestWinRMGraceKeyValuesUnreadable: a GracePeriod key whose values the ACL refuses
// comes back as the script reports it (exists, error set, LastWriteTime and owner
// kept), with the section error, through the real client and the simulator.
func TestWinRMGraceKeyValuesUnreadable(t *testing.T) {
	ev := virtualHost("h", false, 0)
	written := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	msg := "values not readable (access denied; the key exists): Requested registry access is not allowed."
	for i := range ev.Registry {
		if ev.Registry[i].Path == evidence.KeyGracePeriod {
			ev.Registry[i] = evidence.RegKey{Path: evidence.KeyGracePeriod, Exists: true, LastWriteTime: &written, Owner: `NT AUTHORITY\NETWORK SERVICE`, Error: msg}
		}
	}
	ev.Errors = []evidence.SectionError{{Section: "registry:" + evidence.KeyGracePeriod, Message: msg}}
	env := newEnv(t, true, map[string]*evidence.Evidence{"h": ev}, nil)
	c := newCollector(t, env, winrm.Options{}, zerolog.Nop())
	got := c.Collect(context.Background(), env.hosts["h"])
	if got.Status != evidence.StatusCollected {
		t.Fatalf("%s %+v", got.Status, got.Failure)
	}
	k := got.Key(evidence.KeyGracePeriod)
	if k == nil || !k.Exists || k.Error != msg || k.LastWriteTime == nil || !k.LastWriteTime.Equal(written) || k.Owner != `NT AUTHORITY\NETWORK SERVICE` || len(k.Values) != 0 {
		t.Errorf("grace key: %+v", k)
	}
	if len(got.Errors) != 1 || got.Errors[0].Section != "registry:"+evidence.KeyGracePeriod {
		t.Errorf("section errors: %+v", got.Errors)
	}
}

// accountFleet starts n healthy session hosts over plain HTTP with Basic whose only
// account is users, and a collector whose credential for the i-th host (in name
// order) is creds[i % len(creds)].
func accountFleet(t *testing.T, n int, users map[string]string, creds []winrm.Credential) (*testEnv, *winrm.Collector, []evidence.HostRef) {
	t.Helper()
	env := startFleet(t, sessionHosts(n), winrmtest.FleetServerOptions{Users: users})
	hosts := env.list()
	byHost := map[string]winrm.Credential{}
	for i, h := range hosts {
		byHost[h.Name] = creds[i%len(creds)]
	}
	c, err := winrm.New(winrm.Options{Scheme: "http", Auth: winrm.AuthBasic, AllowBasicOverHTTP: true, RetryBackoff: time.Millisecond, HostTimeout: 20 * time.Second},
		winrm.CredentialFunc(func(h evidence.HostRef) (winrm.Credential, error) { return byHost[h.Name], nil }), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return env, c, hosts
}

// TestWinRMLockoutPerAccount: the domain locks an account, not a configuration entry.
// Three entries spelling one account three ways (CONTOSO\svc, contoso\SVC,
// svc@CONTOSO), each with the wrong password, all hosts in flight at once: the
// listeners see exactly LockoutThreshold failed logons, not LockoutThreshold per
// entry (9 when counted per entry).
func TestWinRMLockoutPerAccount(t *testing.T) {
	users := map[string]string{`CONTOSO\svc`: testPassword}
	wrong := "wrong-" + testPassword
	env, c, hosts := accountFleet(t, 12, users, []winrm.Credential{
		{Name: "svc-a", Username: `CONTOSO\svc`, Password: wrong},
		{Name: "svc-b", Username: `contoso\SVC`, Password: wrong},
		{Name: "svc-c", Username: `svc@CONTOSO`, Password: wrong},
	})
	runLockout(t, c, hosts)
	if st := env.fleet.Stats(); st["Unauthorized"] != winrm.DefaultLockoutThreshold || len(st) != 1 {
		t.Errorf("server saw %v; want exactly %d requests refused with 401", st, winrm.DefaultLockoutThreshold)
	}

	// Two accounts keep two counts: LockoutThreshold failed logons each.
	env, c, hosts = accountFleet(t, 12, users, []winrm.Credential{
		{Name: "svc", Username: `CONTOSO\svc`, Password: wrong},
		{Name: "other", Username: `CONTOSO\other`, Password: wrong},
	})
	collect.RunFleet(context.Background(), c, hosts, collect.FleetOptions{Concurrency: len(hosts)}, func(*evidence.Evidence) {})
	if st := env.fleet.Stats(); st["Unauthorized"] != 2*winrm.DefaultLockoutThreshold {
		t.Errorf("two accounts: server saw %v; want %d requests refused with 401", st, 2*winrm.DefaultLockoutThreshold)
	}
}

// TestWinRMLockoutPerAccountMixedPasswords: one entry of the account has the right
// password, another (spelt differently) a wrong one. The right password proving
// itself must not open the gate for the wrong one: the wrong password still tries one
// host at a time, and the account's failed logons stay within LockoutThreshold
// however the hosts interleave.
func TestWinRMLockoutPerAccountMixedPasswords(t *testing.T) {
	env, c, hosts := accountFleet(t, 12, map[string]string{`CONTOSO\svc`: testPassword}, []winrm.Credential{
		{Name: "right", Username: `CONTOSO\svc`, Password: testPassword},
		{Name: "wrong", Username: `contoso\SVC`, Password: "wrong-" + testPassword},
	})
	collect.RunFleet(context.Background(), c, hosts, collect.FleetOptions{Concurrency: len(hosts)}, func(ev *evidence.Evidence) {
		switch {
		case ev.Status == evidence.StatusCollected:
		case ev.Status == evidence.StatusFailed && ev.Failure.Class == evidence.FailAuth && ev.Failure.Attempts == 1:
		case ev.Status == evidence.StatusSkipped && ev.Failure.Class == evidence.FailCredential:
		default:
			t.Errorf("%s: %s %+v", ev.Host.Name, ev.Status, ev.Failure)
		}
	})
	if st := env.fleet.Stats(); st["Unauthorized"] > winrm.DefaultLockoutThreshold {
		t.Errorf("server saw %v; want at most %d requests refused with 401", st, winrm.DefaultLockoutThreshold)
	}
}
