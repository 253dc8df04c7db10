package winrm

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxXMLDepth bounds the element nesting of a WS-Man answer. Windows' answers nest about
// 8 deep; masterzen's XPath evaluation (goxpath) costs time quadratic in the depth
// (measured: 87 ms at depth 800 in 7 KB), so a host sending a deeply nested body of
// max_output_bytes could hold a CPU for hours, past host_timeout, since the parse
// takes no context. Deeper answers are a protocol error before masterzen sees them.
const MaxXMLDepth = 64

// checkXMLDepth reads body's tokens (linear time, no namespace processing) and refuses
// nesting deeper than MaxXMLDepth. Malformed XML is left to the parsers that follow.
func checkXMLDepth(body string) error {
	d := xml.NewDecoder(strings.NewReader(body))
	d.Strict = false
	depth := 0
	for {
		tok, err := d.RawToken()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return nil // not well-formed: masterzen and parseFault report it
		}
		switch tok.(type) {
		case xml.StartElement:
			if depth++; depth > MaxXMLDepth {
				return fmt.Errorf("%w: answer nests XML elements more than %d deep", ErrProtocol, MaxXMLDepth)
			}
		case xml.EndElement:
			depth--
		}
	}
}
