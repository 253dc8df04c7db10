// Package kdctest runs a throwaway MIT Kerberos realm for tests: the KDC that issues the
// tickets winrmtest's Kerberos hosts verify. Only tests import it, so the shipped binary
// never contains its launcher of krb5kdc, kdb5_util and kadmin.local.
package kdctest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/internal/testtool"
)

// KDC is a throwaway MIT Kerberos realm (Debian packages krb5-kdc, krb5-admin-server,
// krb5-user: kdb5_util, kadmin.local, krb5kdc) for tests: its database, stash, kdc.conf,
// krb5.conf and keytabs live in a t.TempDir(), its krb5kdc listens on a free loopback
// port (UDP and TCP) and is stopped at cleanup. Principals require pre-authentication,
// as in Active Directory, and use the AES enctypes only.
type KDC struct {
	Realm    string
	Dir      string
	Krb5Conf string // client configuration: default realm and the KDC's address
	Addr     string // 127.0.0.1:port of krb5kdc
	Setup    time.Duration

	env []string
	t   testing.TB
}

// Tools returns the MIT programs Start needs.
func Tools() []string { return []string{"kdb5_util", "kadmin.local", "krb5kdc"} }

// lookKDCTool finds an MIT program on PATH or in /usr/sbin (not on a user's PATH).
func lookKDCTool(name string) (string, error) { return testtool.Find(name) }

// Start creates the realm and starts its KDC. Without the MIT tools the test is
// skipped, unless env CI is set (then it fails: CI installs them, see .ci/run).
func Start(t testing.TB, realm string) *KDC {
	t.Helper()
	testtool.Require(t, "MIT Kerberos KDC", "apt-get install krb5-kdc krb5-admin-server krb5-user", Tools()...)
	start := time.Now()
	dir := t.TempDir()
	port, err := freeLoopbackPort()
	if err != nil {
		t.Fatalf("kdc: free port: %v", err)
	}
	k := &KDC{Realm: realm, Dir: dir, Krb5Conf: filepath.Join(dir, "krb5.conf"), Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), t: t}
	enctypes := "aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96"
	kdcConf := fmt.Sprintf(`[kdcdefaults]
 kdc_listen = %[3]s
 kdc_tcp_listen = %[3]s

[realms]
 %[1]s = {
  database_name = %[2]s/principal
  key_stash_file = %[2]s/stash
  acl_file = %[2]s/kadm5.acl
  kdc_listen = %[3]s
  kdc_tcp_listen = %[3]s
  max_life = 10h
  max_renewable_life = 0
  supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
  default_principal_flags = +preauth
 }

[logging]
 kdc = FILE:%[2]s/kdc.log
 admin_server = FILE:%[2]s/kadmind.log
 default = FILE:%[2]s/krb5lib.log
`, realm, dir, k.Addr)
	krb5Conf := fmt.Sprintf(`[libdefaults]
 default_realm = %[1]s
 dns_lookup_kdc = false
 dns_lookup_realm = false
 rdns = false
 udp_preference_limit = 1
 ticket_lifetime = 1h
 forwardable = false
 default_tkt_enctypes = %[3]s
 default_tgs_enctypes = %[3]s
 permitted_enctypes = %[3]s

[realms]
 %[1]s = {
  kdc = %[2]s
 }

[domain_realm]
 localhost = %[1]s
 .localhost = %[1]s
`, realm, k.Addr, enctypes)
	for name, text := range map[string]string{"kdc.conf": kdcConf, "krb5.conf": krb5Conf, "kadm5.acl": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatalf("kdc: %v", err)
		}
	}
	k.env = append(os.Environ(),
		"KRB5_CONFIG="+k.Krb5Conf,
		"KRB5_KDC_PROFILE="+filepath.Join(dir, "kdc.conf"),
		"KRB5CCNAME=FILE:"+filepath.Join(dir, "ccache"),
		"KRB5RCACHEDIR="+dir,
	)
	k.run("kdb5_util", "create", "-s", "-r", realm, "-P", RandomPassword())

	kdc, _ := lookKDCTool("krb5kdc")
	cmd := exec.Command(kdc, "-n", "-r", realm)
	cmd.Env = k.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("kdc: start krb5kdc: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", k.Addr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			break
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "kdc.log"))
			t.Fatalf("kdc: krb5kdc exited: %s\n%s", out.String(), log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("kdc: krb5kdc not listening on %s after 10s: %s", k.Addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	k.Setup = time.Since(start)
	return k
}

func (k *KDC) run(tool string, args ...string) string {
	k.t.Helper()
	p, err := lookKDCTool(tool)
	if err != nil {
		k.t.Fatalf("kdc: %v", err)
	}
	cmd := exec.Command(p, args...)
	cmd.Env = k.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		k.t.Fatalf("kdc: %s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// kadmin runs one kadmin.local query and fails the test when it reports an error
// (kadmin.local exits 0 on most query errors).
func (k *KDC) kadmin(query string) {
	k.t.Helper()
	out := k.run("kadmin.local", "-r", k.Realm, "-q", query)
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "while ") || strings.HasPrefix(strings.TrimSpace(l), "kadmin.local:") && strings.Contains(l, "error") {
			k.t.Fatalf("kdc: kadmin.local -q %q: %s", query, out)
		}
	}
}

// AddUser creates a user principal with the password.
func (k *KDC) AddUser(name, password string) {
	k.t.Helper()
	if strings.ContainsAny(password, "\"\\") {
		k.t.Fatalf("kdc: password must not contain quotes or backslashes")
	}
	k.kadmin(fmt.Sprintf(`addprinc -pw "%s" %s`, password, name))
}

// AddService creates a service principal (e.g. HTTP/localhost) with a random key and
// exports it to a keytab of its own, whose path is returned.
func (k *KDC) AddService(spn string) string {
	k.t.Helper()
	k.kadmin("addprinc -randkey " + spn)
	kt := filepath.Join(k.Dir, strings.NewReplacer("/", "_", "@", "_").Replace(spn)+".keytab")
	k.kadmin(fmt.Sprintf("ktadd -k %s %s", kt, spn))
	if _, err := os.Stat(kt); err != nil {
		k.t.Fatalf("kdc: keytab for %s not written: %v", spn, err)
	}
	return kt
}

// Log returns the KDC's log (AS and TGS requests, pre-authentication failures).
func (k *KDC) Log() string {
	b, _ := os.ReadFile(filepath.Join(k.Dir, "kdc.log"))
	return string(b)
}

// RandomPassword is a fresh 24-hex-digit password.
func RandomPassword() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func freeLoopbackPort() (int, error) {
	// A port free for both TCP and UDP (krb5kdc listens on both).
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		_ = l.Close()
		if err == nil {
			_ = u.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no port free for both tcp and udp")
}
