// Package slapdtest runs a throwaway OpenLDAP slapd for tests, shaped like the part of
// Active Directory rdsaudit reads: a schema with AD's user class and msTS licence
// attributes (real OIDs and syntaxes, domain.md §8), ldaps:// with a throwaway CA and
// ldap:// with StartTLS, a read-only bind account and a size limit below the fleet so
// that only a paged search reads everything. Only tests import it.
package slapdtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest/kdctest"
	"github.com/rdsaudit/rdsaudit/internal/testtool"
)

// BaseDN is the test domain's naming context.
const BaseDN = "DC=corp,DC=example,DC=com"

// Schema defines AD's user class and the attributes rdsaudit reads, with AD's OIDs.
const Schema = `
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl' EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.1696 NAME 'lastLogonTimestamp' EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.1993 NAME 'msTSExpireDate' EQUALITY generalizedTimeMatch ORDERING generalizedTimeOrderingMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.24 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.1994 NAME 'msTSLicenseVersion' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.1995 NAME 'msTSManagingLS' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.2000 NAME 'msTSExpireDate2' EQUALITY generalizedTimeMatch ORDERING generalizedTimeOrderingMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.24 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.2001 NAME 'msTSLicenseVersion2' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.2002 NAME 'msTSManagingLS2' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.2003 NAME 'msTSExpireDate3' EQUALITY generalizedTimeMatch ORDERING generalizedTimeOrderingMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.24 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.2004 NAME 'msTSLicenseVersion3' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.2005 NAME 'msTSManagingLS3' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.2006 NAME 'msTSExpireDate4' EQUALITY generalizedTimeMatch ORDERING generalizedTimeOrderingMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.24 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.2007 NAME 'msTSLicenseVersion4' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.2008 NAME 'msTSManagingLS4' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
objectclass ( 1.2.840.113556.1.5.9 NAME 'user' SUP organizationalPerson STRUCTURAL
  MAY ( sAMAccountName $ userPrincipalName $ userAccountControl $ lastLogonTimestamp $
        msTSExpireDate $ msTSLicenseVersion $ msTSManagingLS $
        msTSExpireDate2 $ msTSLicenseVersion2 $ msTSManagingLS2 $
        msTSExpireDate3 $ msTSLicenseVersion3 $ msTSManagingLS3 $
        msTSExpireDate4 $ msTSLicenseVersion4 $ msTSManagingLS4 ) )
`

// User is one user object to create under OU=Users; Attrs are its AD attributes by
// name (sAMAccountName is set from CN when absent).
type User struct {
	CN    string
	Attrs map[string]string
}

// Options shape the server.
type Options struct {
	Users []User
	// SizeLimit is the server's limit on an unpaged search (default 500); MaxPageSize
	// the largest page it serves (default 1000, AD's MaxPageSize).
	SizeLimit, MaxPageSize int
	// PagedTotal caps what one paged search may return (size.prtotal; 0 = unlimited,
	// as AD, where paging reads everything).
	PagedTotal int
	// NoTLS serves ldap:// only, without a certificate: StartTLS is refused.
	NoTLS bool
	// KDC, when set, also serves SASL GSSAPI binds (Cyrus SASL's GSSAPI plugin, Debian
	// package libsasl2-modules-gssapi-mit) as ldap/localhost of the KDC's realm; the
	// reader has a principal rdsaudit-reader@REALM with ReaderPassword, mapped to
	// ReaderDN (authz-regexp).
	KDC *kdctest.KDC
}

// Server is a running slapd.
type Server struct {
	LDAPURL, LDAPSURL string // ldaps is "" with NoTLS
	CAFile            string
	CA                *x509.CertPool
	ReaderDN          string // the read-only account
	ReaderPassword    string
	AdminDN, AdminPW  string
	Dir               string
	Setup             time.Duration
}

// GSSAPIPlugin is Cyrus SASL's GSSAPI plugin, which slapd needs for Options.KDC.
const GSSAPIPlugin = "/usr/lib/x86_64-linux-gnu/sasl2/libgssapiv2.so"

// Tools are the programs Start needs (Debian packages slapd, ldap-utils).
func Tools() []string { return []string{"slapd", "slapadd"} }

func look(name string) (string, error) { return testtool.Find(name) }

// Start builds the directory and starts slapd on loopback; it is stopped at cleanup.
// Without slapd the test is skipped, unless env CI is set (then it fails: .ci/run
// installs it).
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	testtool.Require(t, "OpenLDAP", "apt-get install slapd ldap-utils", Tools()...)
	start := time.Now()
	if o.SizeLimit == 0 {
		o.SizeLimit = 500
	}
	if o.MaxPageSize == 0 {
		o.MaxPageSize = 1000
	}
	dir := t.TempDir()
	s := &Server{Dir: dir, ReaderDN: "CN=rdsaudit-reader,OU=Service," + BaseDN, ReaderPassword: RandomPassword(),
		AdminDN: "CN=admin," + BaseDN, AdminPW: RandomPassword()}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatalf("slapd: %v", err)
		}
	}
	write("ms.schema", Schema)
	prtotal := "unlimited"
	if o.PagedTotal > 0 {
		prtotal = strconv.Itoa(o.PagedTotal)
	}
	tlsConf := ""
	if !o.NoTLS {
		ca, certPEM, keyPEM, caPEM := makeCerts(t)
		s.CA = ca
		s.CAFile = filepath.Join(dir, "ca.pem")
		write("ca.pem", string(caPEM))
		write("server.pem", string(certPEM))
		write("server.key", string(keyPEM))
		tlsConf = fmt.Sprintf("TLSCACertificateFile %[1]s/ca.pem\nTLSCertificateFile %[1]s/server.pem\nTLSCertificateKeyFile %[1]s/server.key\n", dir)
	}
	saslConf, env := "", os.Environ()
	if o.KDC != nil {
		testtool.RequireFile(t, "Cyrus SASL GSSAPI plugin", "apt-get install libsasl2-modules-gssapi-mit", GSSAPIPlugin)
		kt := o.KDC.AddService("ldap/localhost")
		o.KDC.AddUser("rdsaudit-reader", s.ReaderPassword)
		saslConf = fmt.Sprintf("sasl-host localhost\nsasl-realm %s\nauthz-regexp \"^uid=rdsaudit-reader(,cn=[^,]+)?,cn=gssapi,cn=auth$\" \"%s\"\n", o.KDC.Realm, s.ReaderDN)
		env = append(env, "KRB5_KTNAME=FILE:"+kt, "KRB5_CONFIG="+o.KDC.Krb5Conf, "KRB5RCACHETYPE=none")
	}
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	write("slapd.conf", fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include %[1]s/ms.schema
pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
%[2]s
database mdb
maxsize 268435456
suffix "%[3]s"
rootdn "%[4]s"
rootpw %[5]s
directory %[1]s/db
%[10]s
limits users size.soft=%[6]d size.hard=%[6]d size.pr=%[7]d size.prtotal=%[9]s
access to attrs=userPassword by anonymous auth by * none
access to * by dn.exact="%[8]s" read by * none
`, dir, tlsConf, BaseDN, s.AdminDN, s.AdminPW, o.SizeLimit, o.MaxPageSize, s.ReaderDN, prtotal, saslConf))

	var ldif bytes.Buffer
	fmt.Fprintf(&ldif, "dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: corp\no: corp\n\n", BaseDN)
	for _, ou := range []string{"Users", "Service"} {
		fmt.Fprintf(&ldif, "dn: OU=%s,%s\nobjectClass: organizationalUnit\nou: %s\n\n", ou, BaseDN, ou)
	}
	fmt.Fprintf(&ldif, "dn: %s\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: rdsaudit-reader\nuserPassword: %s\n\n", s.ReaderDN, s.ReaderPassword)
	for _, u := range o.Users {
		fmt.Fprintf(&ldif, "dn: CN=%s,OU=Users,%s\nobjectClass: user\ncn: %s\nsn: %s\n", u.CN, BaseDN, u.CN, u.CN)
		if _, ok := u.Attrs["sAMAccountName"]; !ok {
			fmt.Fprintf(&ldif, "sAMAccountName: %s\n", u.CN)
		}
		for _, k := range sortedKeys(u.Attrs) {
			fmt.Fprintf(&ldif, "%s: %s\n", k, u.Attrs[k])
		}
		ldif.WriteString("\n")
	}
	write("data.ldif", ldif.String())
	slapadd, _ := look("slapadd")
	if out, err := exec.Command(slapadd, "-q", "-f", filepath.Join(dir, "slapd.conf"), "-l", filepath.Join(dir, "data.ldif")).CombinedOutput(); err != nil {
		t.Fatalf("slapd: slapadd: %v\n%s", err, out)
	}

	p1, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	s.LDAPURL = "ldap://127.0.0.1:" + strconv.Itoa(p1)
	listen := s.LDAPURL + "/"
	var p2 int
	if !o.NoTLS {
		if p2, err = freePort(); err != nil {
			t.Fatal(err)
		}
		s.LDAPSURL = "ldaps://localhost:" + strconv.Itoa(p2)
		listen += " ldaps://127.0.0.1:" + strconv.Itoa(p2) + "/"
	}
	slapd, _ := look("slapd")
	cmd := exec.Command(slapd, "-d", "0", "-f", filepath.Join(dir, "slapd.conf"), "-h", listen)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("slapd: start: %v", err)
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
	ports := []int{p1}
	if p2 != 0 {
		ports = append(ports, p2)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, p := range ports {
		for {
			c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), 200*time.Millisecond)
			if err == nil {
				_ = c.Close()
				break
			}
			select {
			case <-exited:
				t.Fatalf("slapd exited: %s", out.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("slapd not listening on %d after 15s: %s", p, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	s.Setup = time.Since(start)
	return s
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	for i := 1; i < len(ks); i++ {
		for j := i; j > 0 && ks[j] < ks[j-1]; j-- {
			ks[j], ks[j-1] = ks[j-1], ks[j]
		}
	}
	return ks
}

// makeCerts returns a throwaway CA (as a pool and PEM) and a server certificate for
// localhost and 127.0.0.1.
func makeCerts(t testing.TB) (*x509.CertPool, []byte, []byte, []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rdsaudit test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost", "dc1.corp.example.com"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return pool, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// RandomPassword returns a fresh random password.
func RandomPassword() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "Pw-" + hex.EncodeToString(b[:])
}

// GeneralizedTime formats t as AD writes msTSExpireDate.
func GeneralizedTime(t time.Time) string { return t.UTC().Format("20060102150405") + ".0Z" }

// FileTime formats t as AD's lastLogonTimestamp (100 ns intervals since 1601).
func FileTime(t time.Time) string {
	return strconv.FormatInt(t.UTC().UnixNano()/100+116444736000000000, 10)
}
