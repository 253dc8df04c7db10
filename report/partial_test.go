package report

import (
	"strings"
	"testing"
	"time"
)

// TestPartialRun: a stopped run says so in report.json (valid against the schema) and
// on the Summary sheet; a complete run has neither.
func TestPartialRun(t *testing.T) {
	in := fixtureInput()
	in.Run.Partial = &Partial{Reason: "stopped by SIGTERM", StoppedAt: time.Date(2026, 11, 2, 8, 1, 0, 0, time.UTC), NotStarted: 2, Canceled: 1}
	r := Build(in)
	out := writeJSON(t, r) // validates against the schema
	want := `"partial":{"reason":"stopped by SIGTERM","stopped_at":"2026-11-02T08:01:00Z","not_started":2,"canceled":1}`
	if !strings.Contains(string(out), want) {
		t.Errorf("report.json lacks %s:\n%.600s", want, out)
	}
	back, err := Decode(strings.NewReader(string(out)))
	if err != nil || back.Run.Partial == nil || *back.Run.Partial != *in.Run.Partial {
		t.Errorf("decoded partial = %+v, %v", back.Run.Partial, err)
	}
	f := openXLSX(t, writeXLSX(t, r))
	rs := find(t, f, SheetSummary, "Run status")[1:]
	if b := cell(t, f, SheetSummary, "B"+rs); b != "PARTIAL: stopped by SIGTERM at 2026-11-02 08:01:00 UTC; 2 hosts not started, 1 canceled in flight" {
		t.Errorf("Summary run status = %q", b)
	}

	complete := writeJSON(t, Build(fixtureInput()))
	if strings.Contains(string(complete), `"partial"`) {
		t.Error("a complete run has a partial key")
	}
	for _, row := range rows(t, openXLSX(t, writeXLSX(t, Build(fixtureInput()))), SheetSummary) {
		if len(row) > 0 && row[0] == "Run status" {
			t.Error("a complete run has a Run status row")
		}
	}
}
