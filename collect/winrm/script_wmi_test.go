package winrm

import (
	"strings"
	"testing"
)

// TestScriptReadsDocumentedReportProperties pins the Win32_TSLicenseReport property the
// report date comes from: the class documents GenerationDateTime (DATETIME); an earlier
// script read "GeneratedDate", which does not exist, so every report date came out empty
// on a real license server while the simulator (which answers from evidence) hid it.
func TestScriptReadsDocumentedReportProperties(t *testing.T) {
	for _, km := range []bool{true, false} {
		s := Script(km)
		if !strings.Contains(s, "$r.GenerationDateTime") {
			t.Errorf("key_metadata %v: script does not read Win32_TSLicenseReport.GenerationDateTime", km)
		}
		if strings.Contains(s, "GeneratedDate") {
			t.Errorf("key_metadata %v: script reads GeneratedDate, which Win32_TSLicenseReport does not have", km)
		}
	}
}
