package winrmtest

import (
	"bytes"
	"io"
	"net/http"
	"strings"
)

// identifyResponse is what a Windows listener answers an unauthenticated WS-Man
// Identify (Test-WSMan without -Authentication): the stack, and OS 0.0.0 since the
// caller is anonymous.
const identifyResponse = `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xml:lang="en-US"><s:Header/><s:Body>` +
	`<wsmid:IdentifyResponse xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd">` +
	`<wsmid:ProtocolVersion>http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd</wsmid:ProtocolVersion>` +
	`<wsmid:ProductVendor>Microsoft Corporation</wsmid:ProductVendor>` +
	`<wsmid:ProductVersion>OS: 0.0.0 SP: 0.0 Stack: 3.0</wsmid:ProductVersion>` +
	`<wsmid:SecurityProfiles><wsmid:SecurityProfileName>http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/http/spnego-kerberos</wsmid:SecurityProfileName></wsmid:SecurityProfiles>` +
	`</wsmid:IdentifyResponse></s:Body></s:Envelope>`

// identify answers an unauthenticated Identify request (header WSMANIDENTIFY:
// unauthenticated, body wsmid:Identify) as Windows does, before any authentication,
// and reports whether it did. Identify is not counted in Stats. A host with
// Unauthorized or Hang is still a listener that answers Identify.
func (h *Handler) identify(w http.ResponseWriter, r *http.Request) bool {
	if !strings.EqualFold(r.Header.Get("WSMANIDENTIFY"), "unauthenticated") {
		return false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil || !bytes.Contains(body, []byte("Identify")) {
		http.Error(w, "bad request", http.StatusBadRequest)
		return true
	}
	w.Header().Set("Content-Type", "application/soap+xml;charset=UTF-8")
	_, _ = io.WriteString(w, identifyResponse)
	return true
}
