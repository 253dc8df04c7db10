package rules

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/facts"
	"github.com/rdsaudit/rdsaudit/samples"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// sampleClock is the fixed clock of the demo fleet (samples/README.md).
func sampleClock() time.Time { return time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC) }

// evaluateSamples loads samples/fleet, marks inventory hosts without evidence as not
// collected, and evaluates with samples/rules.yaml and samples/entitlements.csv.
func evaluateSamples(t *testing.T) *Evaluation {
	t.Helper()
	dir := filepath.Join("..", "samples")
	evs, err := samples.Evidence(dir, sampleClock())
	if err != nil {
		t.Fatal(err)
	}
	var hosts []*facts.Facts
	for _, ev := range evs {
		hosts = append(hosts, facts.Interpret(ev))
	}
	rs, err := LoadRuleSet(filepath.Join(dir, "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ents, err := LoadEntitlements(filepath.Join(dir, "entitlements.csv"))
	if err != nil {
		t.Fatal(err)
	}
	return Evaluate(Input{Now: sampleClock(), Hosts: hosts, RuleSet: rs, Entitlements: ents, Ledger: true,
		PerUser: samples.Directory(dir, sampleClock())})
}

func TestSampleFleetFiresEveryRule(t *testing.T) {
	ev := evaluateSamples(t)
	fired := map[string]bool{}
	for _, r := range ev.Results {
		if r.Outcome == Fail {
			fired[r.RuleID] = true
		}
	}
	for _, info := range Rules() {
		if info.NeedsHistory {
			continue
		}
		if !fired[info.ID] {
			t.Errorf("%s does not fire on the sample fleet", info.ID)
		}
	}
	var applied, expired bool
	for _, w := range ev.Waivers {
		applied = applied || (w.Applied > 0 && !w.Expired)
		expired = expired || w.Expired
	}
	if !applied || !expired {
		t.Errorf("samples/rules.yaml needs a waiver that applies (%v) and an expired one (%v)", applied, expired)
	}
}

// golden is what testdata/sample_fleet.json holds: the findings (fail and error), the
// waivers and the CAL position — reviewed by a person, rewritten only with -update.
type golden struct {
	Now      time.Time      `json:"now"`
	FailOn   Severity       `json:"fail_on"`
	Counts   Counts         `json:"counts"`
	ExitCode int            `json:"exit_code"`
	Findings []Result       `json:"findings"`
	Waivers  []WaiverStatus `json:"waivers"`
	Position []PositionRow  `json:"position"`
}

func TestSampleFleetGolden(t *testing.T) {
	ev := evaluateSamples(t)
	g := golden{Now: ev.Now, FailOn: ev.FailOn, Counts: ev.Counts(), ExitCode: ev.ExitCode(), Waivers: ev.Waivers, Position: ev.Position}
	for _, r := range ev.Results {
		if r.IsFinding() {
			g.Findings = append(g.Findings, r)
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(g); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "sample_fleet.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./rules -run Golden -update, then review the file)", err)
	}
	if !bytes.Equal(want, buf.Bytes()) {
		t.Errorf("sample fleet findings differ from %s; review with -update and git diff", path)
	}
}
