package winrmtest_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// TestTLSSessionResumption: a fleet's TLS servers resume the sessions they issued and
// count their handshakes; a ticket of another server is counted as foreign, not resumed.
func TestTLSSessionResumption(t *testing.T) {
	f, err := winrmtest.NewFleet(map[string]*evidence.Evidence{"a": sampleHost(), "b": sampleHost()}, winrmtest.FleetServerOptions{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(f.CACertPEM())
	// One connection per request, every server checked as "localhost" (the fleet's
	// certificate is valid for it): the client offers a's session to b.
	c := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: "localhost", ClientSessionCache: tls.NewLRUClientSessionCache(8), MinVersion: tls.VersionTLS12},
	}}
	post := func(host string) {
		t.Helper()
		resp, err := c.Post(f.Server(host).URL, "application/soap+xml;charset=UTF-8", strings.NewReader("<s:Envelope/>"))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	post("a")
	post("a")
	if st := f.TLSStats(); st != (winrmtest.TLSStats{Full: 1, Resumed: 1}) {
		t.Errorf("two connections to a: %+v, want 1 full and 1 resumed", st)
	}
	post("b")
	if st := f.TLSStats(); st != (winrmtest.TLSStats{Full: 2, Resumed: 1, Foreign: 1}) {
		t.Errorf("a's session offered to b: %+v, want b's handshake in full and 1 foreign ticket", st)
	}
}
