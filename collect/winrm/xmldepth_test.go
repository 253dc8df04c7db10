package winrm

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestDeepXMLRefused: an answer nesting elements 100,000 deep (700 KB) is a protocol
// error found in linear time, before masterzen's XPath, quadratic in the depth, reads
// it; Windows-shaped answers pass (found by FuzzSOAPResponse).
func TestDeepXMLRefused(t *testing.T) {
	deep := `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>` +
		strings.Repeat("<a>", 100000) + strings.Repeat("</a>", 100000) + `</s:Body></s:Envelope>`
	tr := &transport{}
	start := time.Now()
	_, err := tr.checkBody(context.Background(), "/shell/Receive<", deep, 200)
	if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "more than 64 deep") {
		t.Fatalf("deep answer: %v", err)
	}
	t.Logf("refused in %s", time.Since(start))
	ok := `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><rsp:ReceiveResponse xmlns:rsp="x">` +
		`<rsp:CommandState CommandId="1" State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"><rsp:ExitCode>0</rsp:ExitCode></rsp:CommandState>` +
		`</rsp:ReceiveResponse></s:Body></s:Envelope>`
	if _, err := tr.checkBody(context.Background(), "/shell/Receive<", ok, 200); err != nil {
		t.Fatalf("normal answer: %v", err)
	}
}
