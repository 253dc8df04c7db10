package winrm

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"

	masterzen "github.com/masterzen/winrm"
)

// FuzzSOAPResponse feeds a host's HTTP answer to everything that reads one: the fault
// parser (parseFault, soapAnswer, checkBody, Classify) and masterzen's response parsers
// the collector relies on (shell ID, command ID, output streams). None may panic, and
// nothing read may outgrow the body (seeds: testdata/fuzz/FuzzSOAPResponse, simulator
// answers and Windows faults as wsman.md records them).
func FuzzSOAPResponse(f *testing.F) {
	f.Add(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body/></s:Envelope>`, 200)
	f.Fuzz(func(t *testing.T, body string, status int) {
		if f := parseFault(body, status); f != nil {
			if len(f.Reason) > len(body) || len(f.Code)+len(f.Subcode)+len(f.WSMan) > len(body) {
				t.Fatalf("fault fields longer than the body: %+v", f)
			}
			_ = f.Error()
			_ = Classify(f)
			_ = errors.Is(f, ErrAuth)
		}
		if _, err := soapAnswer(status, "application/soap+xml;charset=UTF-8", []byte(body)); err != nil {
			_ = Classify(err)
		}
		tr := &transport{}
		for _, req := range []string{"<a:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/Create</a:Action>",
			"<a:Action>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive</a:Action>"} {
			if _, err := tr.checkBody(context.Background(), req, body, http.StatusOK); err != nil {
				_ = Classify(err)
			}
		}
		if checkXMLDepth(body) != nil {
			return // refused before masterzen, as checkBody refuses it
		}
		_, _ = masterzen.ParseOpenShellResponse(body)
		_, _ = masterzen.ParseExecuteCommandResponse(body)
		var stdout, stderr bytes.Buffer
		_, _, _ = masterzen.ParseSlurpOutputErrResponse(body, &stdout, &stderr)
		if stdout.Len()+stderr.Len() > len(body) {
			t.Fatalf("%d bytes of output from a %d-byte body", stdout.Len()+stderr.Len(), len(body))
		}
	})
}
