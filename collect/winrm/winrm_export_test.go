package winrm

import (
	"crypto/tls"
	"crypto/x509"
	"time"
)

// NewNTLMHTTPForTest exposes the NTLM client to collect_test (which may import
// winrmtest; this package may not): over HTTPS trusting caPEM when it is set, else
// over plain HTTP with message encryption.
func NewNTLMHTTPForTest(url, addr, user, pass string, caPEM []byte) *ntlmHTTP { //nolint:revive // test hook
	var tlsConf *tls.Config
	if caPEM != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		tlsConf = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return newNTLMHTTP(url, addr, user, pass, nil, tlsConf, 10*time.Second, 8<<20)
}

// Logons is the number of AUTHENTICATE messages sent.
func (t *ntlmHTTP) Logons() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.logons
}

// Close closes the pooled connections.
func (t *ntlmHTTP) Close() { t.close() }

// CommandBuilds is the number of command lines the collector built.
func (c *Collector) CommandBuilds() int { return int(c.cmds.builds.Load()) }
