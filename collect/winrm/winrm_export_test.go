package winrm

import "time"

// NewNTLMHTTPForTest exposes the NTLM message-encryption client to collect_test (which
// may import winrmtest; this package may not).
func NewNTLMHTTPForTest(url, addr, user, pass string) *ntlmHTTP { //nolint:revive // test hook
	return newNTLMHTTP(url, addr, user, pass, nil, 10*time.Second, 8<<20)
}

// Logons is the number of AUTHENTICATE messages sent.
func (t *ntlmHTTP) Logons() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.logons
}

// Close closes the pooled connections.
func (t *ntlmHTTP) Close() { t.close() }
