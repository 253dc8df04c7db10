package winrmtest

import (
	"cmp"
	"encoding/xml"
	"fmt"
	"html"
	"strings"
)

// WS-Man URIs the simulator speaks (wsman.md).
const (
	actionCreate   = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
	actionDelete   = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
	actionCommand  = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command"
	actionSend     = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send"
	actionReceive  = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive"
	actionSignal   = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal"
	actionFault    = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
	resourceCmd    = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
	stateDone      = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"
	stateRunning   = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running"
	anonymous      = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
	nsDeclarations = `xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" ` +
		`xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" ` +
		`xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"`
)

// request is the part of a WS-Man request the simulator reads. Namespaces are ignored
// (local names only), as a tolerant server must: clients differ in prefixes.
type request struct {
	Header struct {
		Action           string `xml:"Action"`
		MessageID        string `xml:"MessageID"`
		OperationTimeout string `xml:"OperationTimeout"`
		ResourceURI      string `xml:"ResourceURI"`
		Selectors        []struct {
			Name  string `xml:"Name,attr"`
			Value string `xml:",chardata"`
		} `xml:"SelectorSet>Selector"`
	} `xml:"Header"`
	Body struct {
		Shell       *struct{} `xml:"Shell"`
		CommandLine *struct {
			Command   string   `xml:"Command"`
			Arguments []string `xml:"Arguments"`
		} `xml:"CommandLine"`
		Receive *struct {
			DesiredStream struct {
				CommandID string `xml:"CommandId,attr"`
			} `xml:"DesiredStream"`
		} `xml:"Receive"`
		Send *struct {
			Streams []struct {
				Name      string `xml:"Name,attr"`
				CommandID string `xml:"CommandId,attr"`
				End       string `xml:"End,attr"`
				Data      string `xml:",chardata"`
			} `xml:"Stream"`
		} `xml:"Send"`
		Signal *struct {
			CommandID string `xml:"CommandId,attr"`
			Code      string `xml:"Code"`
		} `xml:"Signal"`
	} `xml:"Body"`
}

func parseRequest(b []byte) (*request, error) {
	var r request
	if err := xml.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func (r *request) shellID() string {
	for _, s := range r.Header.Selectors {
		if strings.EqualFold(s.Name, "ShellId") {
			return strings.TrimSpace(s.Value)
		}
	}
	return ""
}

func esc(s string) string { return html.EscapeString(s) }

// envelope renders a response the way Windows does: one compact line, no XML
// declaration, RelatesTo echoing the request's MessageID.
func envelope(action, relatesTo, body string) string {
	return `<s:Envelope xml:lang="en-US" ` + nsDeclarations + `><s:Header><a:Action>` + action +
		`</a:Action><a:MessageID>uuid:` + newGUID() + `</a:MessageID><a:To>` + anonymous +
		`</a:To><a:RelatesTo>` + esc(relatesTo) + `</a:RelatesTo></s:Header><s:Body>` + body + `</s:Body></s:Envelope>`
}

// Fault is a WS-Man SOAP fault as Windows sends it (wsman.md, Faults).
type Fault struct {
	Code    string // s:Sender or s:Receiver
	Subcode string // w:TimedOut, w:AccessDenied, ...
	WSMan   string // f:WSManFault Code, "" for none
	Text    string // s:Reason/s:Text, with Windows' trailing space
	Detail  string // optional w:FaultDetail URI
	// Message is f:WSManFault/f:Message when it differs from Text: Windows gives some
	// faults a generic reason and the specific text in the message detail.
	Message string
}

// The faults of wsman.md, texts verbatim.

// FaultTimedOut is the fault of a Receive that waited OperationTimeout for output.
func FaultTimedOut() Fault {
	return Fault{Code: "s:Receiver", Subcode: "w:TimedOut", WSMan: "2150858793",
		Text: "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  "}
}

// FaultAccessDenied is the fault of a Create by a user without the right to a shell.
func FaultAccessDenied() Fault {
	return Fault{Code: "s:Sender", Subcode: "w:AccessDenied", WSMan: "5", Text: "Access is denied. "}
}

// FaultQuotaShells is the fault of a Create beyond MaxShellsPerUser.
func FaultQuotaShells() Fault {
	return Fault{Code: "s:Receiver", Subcode: "w:QuotaLimit", WSMan: "2150859173",
		Text: "The WS-Management service cannot process the request. This user is allowed a maximum number of 30 concurrent shells, which has been exceeded. Close existing shells or raise the quota for this user. "}
}

// FaultQuotaOperations is the fault of a request beyond MaxConcurrentOperationsPerUser.
func FaultQuotaOperations() Fault {
	return Fault{Code: "s:Receiver", Subcode: "w:QuotaLimit", WSMan: "2150859174",
		Text: "The WS-Management service cannot process the request. This user is allowed a maximum number of 1500 concurrent operations, which has been exceeded. Close existing operations for this user, or raise the quota for this user. "}
}

// FaultInvalidParameter is the fault of a request the service cannot parse or serve.
func FaultInvalidParameter() Fault {
	return Fault{Code: "s:Sender", Subcode: "w:InvalidParameter", Text: "The parameter is incorrect. "}
}

// faultShellNotFound is the fault for an unknown, closed or expired shell: the generic
// reason of w:InvalidSelectors, the specific text in the WSManFault message.
func faultShellNotFound(id string) Fault {
	return Fault{Code: "s:Sender", Subcode: "w:InvalidSelectors", WSMan: "2150858843",
		Detail: "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors",
		Text:   "The WS-Management service cannot process the request because the request contained invalid selectors for the resource. ",
		Message: fmt.Sprintf("The request for the Windows Remote Shell with ShellId %s failed because the shell was not found on the server. "+
			"Possible causes are: the specified ShellId is incorrect or the shell no longer exists on the server. "+
			"Provide the correct ShellId or create a new shell and retry the operation. ", id)}
}

// faultUnknownResource is the fault for a resource URI the listener does not serve
// (text as Windows words it; the WSManFault code 0x8033803B is UNSURE).
func faultUnknownResource(uri string) Fault {
	return Fault{Code: "s:Sender", Subcode: "w:DestinationUnreachable", WSMan: "2150858811",
		Detail: "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/InvalidResourceURI",
		Text: "The WS-Management service cannot process the request. The resource URI (" + uri + ") was not found in the WS-Management catalog. " +
			"The catalog contains the metadata that describes resources, or logical endpoints. "}
}

// faultActionNotSupported is the WS-Addressing fault for an action the resource does
// not support (a:ActionNotSupported; Windows' exact WSManFault detail is UNSURE and left out).
func faultActionNotSupported(action string) Fault {
	return Fault{Code: "s:Sender", Subcode: "a:ActionNotSupported",
		Text: "The action is not supported by the service. "}
}

func (f Fault) render(relatesTo, machine string) string {
	var b strings.Builder
	b.WriteString(`<s:Fault><s:Code><s:Value>` + f.Code + `</s:Value><s:Subcode><s:Value>` + f.Subcode +
		`</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">` + esc(f.Text) + `</s:Text></s:Reason>`)
	if f.WSMan != "" || f.Detail != "" {
		b.WriteString(`<s:Detail>`)
		if f.Detail != "" {
			b.WriteString(`<w:FaultDetail>` + f.Detail + `</w:FaultDetail>`)
		}
		if f.WSMan != "" {
			b.WriteString(`<f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="` + f.WSMan +
				`" Machine="` + esc(machine) + `"><f:Message>` + esc(cmp.Or(f.Message, f.Text)) + `</f:Message></f:WSManFault>`)
		}
		b.WriteString(`</s:Detail>`)
	}
	b.WriteString(`</s:Fault>`)
	return envelope(actionFault, relatesTo, b.String())
}
