package report

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rdsaudit/rdsaudit/directory"
	"github.com/rdsaudit/rdsaudit/rules"
	"github.com/xuri/excelize/v2"
)

// listSheets are the sheets that list rows: each has an AutoFilter or a Table.
var listSheets = []string{SheetFindings, SheetHosts, SheetLicenseServers, SheetPosition, SheetIssued, SheetDrift,
	SheetWaivers, SheetCoverage, SheetPerUser}

// Every sheet prints: landscape, one page wide and never squeezed tall (the Summary,
// laid out for one page, fits one), header row repeated, footer naming the run, the
// sheet and the page, print area set; every list sheet has an AutoFilter or a Table.
func TestXLSXPrintSetup(t *testing.T) {
	sample, _ := sampleReport(t)
	for name, r := range map[string]*Report{"fixture": Build(fixtureInput()), "sample": sample} {
		f := openXLSX(t, writeXLSX(t, r))
		names := map[string]bool{}
		for _, dn := range f.GetDefinedName() {
			names[dn.Scope+"|"+dn.Name] = true
		}
		for _, sh := range Sheets() {
			pl, err := f.GetPageLayout(sh)
			if err != nil {
				t.Fatal(err)
			}
			tall := 0
			if sh == SheetSummary {
				tall = 1
			}
			if pl.Orientation == nil || *pl.Orientation != "landscape" || pl.FitToWidth == nil || *pl.FitToWidth != 1 ||
				pl.FitToHeight == nil || *pl.FitToHeight != tall {
				t.Errorf("%s %s: page layout orientation %v, fit %v x %v", name, sh, deref(pl.Orientation), deref(pl.FitToWidth), deref(pl.FitToHeight))
			}
			props, err := f.GetSheetProps(sh)
			if err != nil || props.FitToPage == nil || !*props.FitToPage {
				t.Errorf("%s %s: fit to page not set (%v)", name, sh, err)
			}
			hf, err := f.GetHeaderFooter(sh)
			if err != nil || hf == nil || !strings.Contains(hf.OddFooter, r.Run.ID) || !strings.Contains(hf.OddFooter, "&A") ||
				!strings.Contains(hf.OddFooter, "page &P of &N") {
				t.Errorf("%s %s: footer %+v %v", name, sh, hf, err)
			}
			if !names[sh+"|_xlnm.Print_Area"] {
				t.Errorf("%s %s: no print area", name, sh)
			}
			if sh != SheetSummary && !names[sh+"|_xlnm.Print_Titles"] {
				t.Errorf("%s %s: header rows not repeated (no Print_Titles)", name, sh)
			}
		}
		for _, sh := range listSheets {
			tables, _ := f.GetTables(sh)
			if !names[sh+"|_xlnm._FilterDatabase"] && len(tables) == 0 {
				t.Errorf("%s %s: neither AutoFilter nor Table", name, sh)
			}
		}
	}
}

// labelRow is the row number (as text) of the first row whose column A is label.
func labelRow(t *testing.T, f *excelize.File, sheet, label string) string {
	t.Helper()
	for i, row := range rows(t, f, sheet) {
		if len(row) > 0 && row[0] == label {
			return strconv.Itoa(i + 1)
		}
	}
	t.Fatalf("%s: no row labelled %q", sheet, label)
	return ""
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// summaryTable returns the Summary's rows under the section header whose first cell
// is title, up to the next empty first cell.
func summaryTable(t *testing.T, f *excelize.File, title string) [][]string {
	t.Helper()
	rs := rows(t, f, SheetSummary)
	for i, row := range rs {
		if len(row) > 0 && row[0] == title {
			var out [][]string
			for _, r := range rs[i+1:] {
				if len(r) == 0 || r[0] == "" {
					break
				}
				out = append(out, r)
			}
			return out
		}
	}
	t.Fatalf("Summary has no %q section", title)
	return nil
}

// The Summary counts exactly what the Findings sheet lists; an uncollected host is one
// Findings row; CAL Position has plain labels and currency formats on every amount.
func TestSampleWorkbookForFinanceAndAuditors(t *testing.T) {
	r, _ := sampleReport(t)
	f := openXLSX(t, writeXLSX(t, r))
	findings := rows(t, f, SheetFindings)[1:]
	bySev := map[string]int{}
	byHost := map[string]int{}
	for _, row := range findings {
		bySev[row[2]]++
		byHost[row[6]]++
	}
	total := 0
	for _, row := range summaryTable(t, f, "Findings by severity") {
		if len(row) < 2 {
			continue // the counting rule's note
		}
		n, _ := strconv.Atoi(row[1])
		if row[0] == "Total (rows on Findings)" {
			if n != len(findings) {
				t.Errorf("Summary total %d, Findings sheet %d rows", n, len(findings))
			}
			continue
		}
		total += n
		if n != bySev[row[0]] {
			t.Errorf("Summary %s: %d, Findings sheet lists %d", row[0], n, bySev[row[0]])
		}
	}
	if total != len(findings) || bySev["critical"] != 4 {
		t.Errorf("Summary counts %d rows, Findings has %d (critical %d)", total, len(findings), bySev["critical"])
	}
	// Verdict cell.
	if got := cell(t, f, SheetSummary, "B"+find(t, f, SheetSummary, "Verdict")[1:]); got != "FAIL (coverage and findings)" || got != r.Verdict().Word() {
		t.Errorf("verdict cell %q", got)
	}
	// One Findings row per uncollected host, the RDS-COLLECT finding with its class.
	for host, rule := range map[string]string{"RDSH-B09": "RDS-COLLECT-001", "OLD-2008R2": "RDS-COLLECT-002"} {
		if byHost[host] != 1 {
			t.Errorf("%s: %d Findings rows, want 1", host, byHost[host])
		}
		for _, row := range findings {
			if row[6] == host && (row[1] != rule || !strings.Contains(row[8], "error class")) {
				t.Errorf("%s: finding %q: %q", host, row[1], row[8])
			}
			if row[6] == "OLD-2008R2" && !strings.Contains(row[13], "Upgrade") {
				t.Errorf("OLD-2008R2 remediation %q", row[13])
			}
		}
	}
	if r.Coverage.NotChecked != 40 {
		t.Errorf("not checked %d, want 40", r.Coverage.NotChecked)
	}
	// CAL Position: no raw enum label anywhere; every amount in the ledger's currency.
	raw := regexp.MustCompile(`per_device|per_user|unknown\(`)
	pos := rows(t, f, SheetPosition)
	amounts := 0
	for i, row := range pos {
		for j, v := range row {
			if raw.MatchString(v) {
				t.Errorf("CAL Position %d/%d: raw label %q", i+1, j+1, v)
			}
		}
		if i == 0 {
			continue
		}
		for _, col := range []string{"I", "J"} {
			ref := col + strconv.Itoa(i+1)
			if ct := cellType(t, f, SheetPosition, ref); ct == excelize.CellTypeNumber || ct == excelize.CellTypeUnset && cell(t, f, SheetPosition, ref) != "" {
				amounts++
				if nf := numFmt(t, f, SheetPosition, ref); !strings.Contains(nf, `"EUR"`) {
					t.Errorf("CAL Position %s = %q has number format %q", ref, cell(t, f, SheetPosition, ref), nf)
				}
			}
		}
	}
	if amounts < 6 {
		t.Errorf("only %d amounts on CAL Position", amounts)
	}
	find(t, f, SheetPosition, "Per Device CAL, Windows Server 2019")
	find(t, f, SheetPosition, "NOT PRICED") // Per Device 2016: 8 short, no unit price
	// Summary amounts too, and the true-up cost is the sum of the priced shortfalls.
	tu := labelRow(t, f, SheetSummary, "True-up cost")
	if got := cell(t, f, SheetSummary, "B"+tu); got != "588.00 EUR" || !strings.Contains(numFmt(t, f, SheetSummary, "B"+tu), `"EUR"`) {
		t.Errorf("Summary true-up cost %q", got)
	}
	if got := cell(t, f, SheetSummary, "C"+tu); !strings.Contains(got, "NOT PRICED") || !strings.Contains(got, "Per Device CAL, Windows Server 2016 (8 short)") {
		t.Errorf("Summary true-up note %q", got)
	}
	uu := labelRow(t, f, SheetSummary, "Unlicensed use")
	// 26 short of 150 in use: 14 from the key packs and the Per User report, plus 12
	// directory users holding 2012 Per User CALs with none entitled (issue 15).
	if got := cell(t, f, SheetSummary, "B"+uu); got != "17.3%" {
		t.Errorf("unlicensed use %q (26 short of 150 in use)", got)
	}
	for _, row := range summaryTable(t, f, "CAL position") {
		if raw.MatchString(strings.Join(row, " ")) {
			t.Errorf("Summary CAL position row with a raw label: %q", row)
		}
	}
	// The run's identity on Summary and About.
	for _, sh := range []string{SheetSummary, SheetAbout} {
		for _, label := range []string{"Evaluated at (UTC)", "Collection window (UTC)", "Signing key", "Rule set"} {
			find(t, f, sh, label)
		}
	}
}

// A cell longer than Excel holds is cut visibly; report.json keeps the whole text
// (issue 14, defect 7).
func TestXLSXLongCellMarked(t *testing.T) {
	in := fixtureInput()
	long := strings.Repeat("é", 40000) + "END"
	for i := range in.Evaluation.Results {
		if res := &in.Evaluation.Results[i]; res.Outcome == rules.Fail {
			res.Message = long
			break
		}
	}
	r := Build(in)
	f := openXLSX(t, writeXLSX(t, r))
	seen := false
	for _, row := range rows(t, f, SheetFindings)[1:] {
		if strings.HasPrefix(row[8], "éé") {
			seen = true
			if utf16Len(row[8]) > CellLimit || !strings.HasSuffix(row[8], "characters in all; the full text is in report.json and the evidence file]") ||
				!strings.Contains(row[8], "40003 characters") {
				t.Errorf("long message not marked: %d characters, ends %q", utf16Len(row[8]), row[8][len(row[8])-120:])
			}
		}
	}
	if !seen {
		t.Fatal("long message not on the Findings sheet")
	}
	if !bytes.Contains(writeJSON(t, r), []byte(long)) {
		t.Error("report.json does not keep the whole message")
	}
	if got := clip("short"); got != "short" {
		t.Errorf("clip changed a short text: %q", got)
	}
}

// The sample workbook prints (LibreOffice, as CI runs it): the Summary on one page, the
// whole workbook in at most 25 (issue 11: it printed 76, the Summary 8).
func TestSampleWorkbookPrintsToPDF(t *testing.T) {
	soffice := "/usr/bin/soffice"
	externalTool(t, soffice, "libreoffice-calc")
	externalTool(t, "/usr/bin/pdfinfo", "poppler-utils")
	externalTool(t, "/usr/bin/pdftotext", "poppler-utils")
	r, _ := sampleReport(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "report.xlsx")
	if err := os.WriteFile(path, writeXLSX(t, r), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(soffice, "--headless", "--norestore", "-env:UserInstallation=file://"+filepath.Join(dir, "profile"),
		"--convert-to", "pdf", "--outdir", dir, path)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("soffice: %v\n%s", err, b)
	}
	pdf := filepath.Join(dir, "report.pdf")
	info, err := exec.Command("/usr/bin/pdfinfo", pdf).CombinedOutput()
	if err != nil {
		t.Fatalf("pdfinfo: %v\n%s", err, info)
	}
	m := regexp.MustCompile(`(?m)^Pages:\s+(\d+)`).FindSubmatch(info)
	if m == nil {
		t.Fatalf("pdfinfo: no page count:\n%s", info)
	}
	pages, _ := strconv.Atoi(string(m[1]))
	// Each page's footer names its sheet: "rdsaudit run ID   Sheet   page N of M".
	footer := regexp.MustCompile(`rdsaudit run ` + regexp.QuoteMeta(r.Run.ID) + `\s+(\S.*?)\s+page \d+ of \d+`)
	perSheet := map[string]int{}
	for p := 1; p <= pages; p++ {
		out, err := exec.Command("/usr/bin/pdftotext", "-layout", "-f", strconv.Itoa(p), "-l", strconv.Itoa(p), pdf, "-").Output()
		if err != nil {
			t.Fatalf("pdftotext page %d: %v", p, err)
		}
		if fm := footer.FindSubmatch(out); fm != nil {
			perSheet[string(fm[1])]++
		} else {
			t.Errorf("page %d has no footer naming the run and sheet", p)
		}
	}
	t.Logf("%d pages: %v", pages, perSheet)
	if pages > 25 {
		t.Errorf("the workbook prints on %d pages, want at most 25 (%v)", pages, perSheet)
	}
	if perSheet[SheetSummary] != 1 {
		t.Errorf("the Summary prints on %d pages, want 1", perSheet[SheetSummary])
	}
	for _, sh := range Sheets() {
		if perSheet[sh] == 0 {
			t.Errorf("sheet %s does not print", sh)
		}
	}
}

// Drift shows what changed besides findings, against the previous run's report:
// recounted key packs, issued CALs, CAL position lines (issue 11).
func TestDriftChangesAgainstPreviousReport(t *testing.T) {
	cur := Build(fixtureInput())
	// The previous run's report.json, as published, read back with ReadPrevious.
	prevIn := fixtureInput()
	prevIn.Run.ID = cur.Drift.PreviousRunID
	prevIn.Drift = nil
	prevRep := Build(prevIn)
	prevRep.LicenseServers[0].KeyPacks[1].Issued = &Count{Value: 9}
	prevRep.LicenseServers[0].IssuedTotal = 1
	*prevRep.Position[1].Entitled = 20
	path := filepath.Join(t.TempDir(), "report.json")
	if err := os.WriteFile(path, writeJSON(t, prevRep), 0o600); err != nil {
		t.Fatal(err)
	}
	prev, err := ReadPrevious(path)
	if err != nil {
		t.Fatal(err)
	}
	in := fixtureInput()
	in.Previous = prev
	r := Build(in)
	kinds := map[string]int{}
	for _, c := range r.Changes {
		kinds[c.Kind]++
	}
	if kinds[ChangeKeyPack] != 1 || kinds[ChangeIssuedCALs] != 1 || kinds[ChangePosition] != 1 || len(r.Changes) != 3 {
		t.Fatalf("changes %+v", r.Changes)
	}
	writeJSON(t, r) // validates against the schema
	f := openXLSX(t, writeXLSX(t, r))
	got := map[string]string{}
	for _, row := range rows(t, f, SheetDrift)[1:] {
		got[row[0]] = row[len(row)-1]
	}
	if !strings.Contains(got["key pack"], "issued 9, available 9 → ") || !strings.Contains(got["issued cals"], "1 issued Per Device CALs → 2") ||
		!strings.Contains(got["position"], "entitled 20") {
		t.Errorf("drift rows %q", got)
	}
	// A report of another run than the drift's baseline gives no changes.
	prev.Run.ID = "someone-else"
	in = fixtureInput()
	in.Previous = prev
	if r := Build(in); len(r.Changes) != 0 {
		t.Errorf("changes against a report that is not the baseline: %+v", r.Changes)
	}
}

// Drift shows the month-over-month change of the users holding Per User CALs in Active
// Directory, against the previous run's counts as history recorded them (issue 15).
func TestDriftPerUserCounts(t *testing.T) {
	known := func() *PerUser {
		return &PerUser{Summary: &directory.Summary{Complete: true, Rows: []directory.Row{}, Reclaim: []directory.Candidate{},
			Domains: []directory.DomainCoverage{{Domain: "corp.example.com", Status: directory.StatusCollected}},
			Versions: []directory.VersionTotal{{Version: "2012", VersionID: 4, RawVersions: []string{"393218"}, Active: 1560, Expired: 40},
				{Version: "unknown version (7)", RawVersions: []string{"7"}, Active: 3}}}, Evidence: []EvidenceRef{}}
	}
	in := fixtureInput()
	in.PerUser = known()
	in.PreviousPerUser = []PerUserCount{{Version: "2012", Active: 1500, Expired: 40, Complete: true},
		{Version: "unknown version (7)", Active: 3, Complete: true}, {Version: "2008", Active: 2, Complete: false}}
	r := Build(in)
	got := map[string]Change{}
	for _, c := range r.Changes {
		if c.Kind == ChangePerUser {
			got[c.Subject] = c
		}
	}
	if c := got["Per User CALs in Active Directory, Windows Server 2012"]; c.Before != "1500 active, 40 expired users" || c.After != "1560 active, 40 expired users" {
		t.Errorf("2012: %+v", c)
	}
	if c := got["Per User CALs in Active Directory, Windows Server 2008"]; c.Before != "2 active, 0 expired users (not every domain read: lower bounds)" || c.After != "" {
		t.Errorf("2008 removed: %+v", c)
	}
	if _, ok := got["Per User CALs in Active Directory, unknown version (7)"]; ok || len(got) != 2 {
		t.Errorf("unchanged versions listed: %+v", got)
	}
	writeJSON(t, r) // validates against the schema
	f := openXLSX(t, writeXLSX(t, r))
	var drift []string
	for _, row := range rows(t, f, SheetDrift)[1:] {
		if row[0] == "per user" {
			drift = append(drift, strings.Join(row, " | "))
		}
	}
	if len(drift) != 2 || !strings.Contains(strings.Join(drift, "\n"), "1500 active, 40 expired users → 1560 active, 40 expired users") {
		t.Errorf("drift sheet rows: %q", drift)
	}

	// This run's figures unknown (a domain not read): nothing compared, nothing "removed".
	in = fixtureInput()
	in.PerUser = known()
	in.PerUser.Complete = false
	in.PreviousPerUser = []PerUserCount{{Version: "2012", Active: 1500, Complete: true}}
	for _, c := range Build(in).Changes {
		if c.Kind == ChangePerUser {
			t.Errorf("change against unknown figures: %+v", c)
		}
	}
	// No previous counts (the previous run had no directory): every version is added.
	in = fixtureInput()
	in.PerUser = known()
	n := 0
	for _, c := range Build(in).Changes {
		if c.Kind == ChangePerUser && c.Before == "" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d versions added, want 2", n)
	}
}
