package report

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"
)

func writeXLSX(t testing.TB, r *Report) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := (XLSX{}).Write(context.Background(), &buf, r); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func openXLSX(t testing.TB, data []byte) *excelize.File {
	t.Helper()
	f, err := excelize.OpenReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func rows(t testing.TB, f *excelize.File, sheet string) [][]string {
	t.Helper()
	rs, err := f.GetRows(sheet)
	if err != nil {
		t.Fatalf("%s: %v", sheet, err)
	}
	return rs
}

func cell(t testing.TB, f *excelize.File, sheet, ref string) string {
	t.Helper()
	v, err := f.GetCellValue(sheet, ref)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func cellType(t testing.TB, f *excelize.File, sheet, ref string) excelize.CellType {
	t.Helper()
	ct, err := f.GetCellType(sheet, ref)
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

// numFmt is the custom number format of a cell's style ("" for none).
func numFmt(t testing.TB, f *excelize.File, sheet, ref string) string {
	t.Helper()
	id, err := f.GetCellStyle(sheet, ref)
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.GetStyle(id)
	if err != nil {
		t.Fatal(err)
	}
	if st.CustomNumFmt == nil {
		return ""
	}
	return *st.CustomNumFmt
}

// find returns the coordinates of the first cell in the sheet whose value is v.
func find(t testing.TB, f *excelize.File, sheet, v string) string {
	t.Helper()
	for r, row := range rows(t, f, sheet) {
		for c, s := range row {
			if s == v {
				ref, _ := excelize.CoordinatesToCellName(c+1, r+1)
				return ref
			}
		}
	}
	t.Fatalf("%s: no cell %q", sheet, v)
	return ""
}

func TestXLSXSheets(t *testing.T) {
	r := Build(fixtureInput())
	f := openXLSX(t, writeXLSX(t, r))
	if got := f.GetSheetList(); !reflect.DeepEqual(got, Sheets()) {
		t.Fatalf("sheets %v, want %v", got, Sheets())
	}
	tables := []struct {
		sheet  string
		header []string
		rows   int // data rows
	}{
		{SheetFindings, FindingsHeader(), 4}, // RDSH-03's unchecked rule is counted on Coverage, not listed
		{SheetHosts, HostsHeader(), 3},
		{SheetLicenseServers, LicenseServersHeader(), 2},
		{SheetPosition, PositionHeader(), 4}, // 2 rows + a total per CAL type
		{SheetIssued, IssuedHeader(), 2},
		{SheetDrift, DriftHeader(), 3}, // new, resolved, and the count of unchanged
		{SheetWaivers, WaiversHeader(), 2},
		{SheetCoverage, CoverageHeader(), 4},
	}
	for _, tc := range tables {
		rs := rows(t, f, tc.sheet)
		if len(rs) == 0 || !reflect.DeepEqual(rs[0], tc.header) {
			t.Errorf("%s header %v, want %v", tc.sheet, rs[0], tc.header)
			continue
		}
		if len(rs)-1 != tc.rows {
			t.Errorf("%s: %d data rows, want %d", tc.sheet, len(rs)-1, tc.rows)
		}
		// The dimension covers the data, so streaming readers see every row.
		dim, err := f.GetSheetDimension(tc.sheet)
		if err != nil || dim == "A1" {
			t.Errorf("%s: dimension %q, %v", tc.sheet, dim, err)
		}
		panes, err := f.GetPanes(tc.sheet)
		if err != nil || !panes.Freeze || panes.YSplit != 1 {
			t.Errorf("%s: header not frozen: %+v %v", tc.sheet, panes, err)
		}
	}

	// Findings: most severe first, table with autofilter, severity colours.
	if got := cell(t, f, SheetFindings, "C2"); got != "critical" {
		t.Errorf("first finding severity %q", got)
	}
	if got := cell(t, f, SheetFindings, "B2"); got != "RDS-GRACE-001" {
		t.Errorf("first finding rule %q", got)
	}
	if got := cell(t, f, SheetFindings, "D2"); got != "persisting" {
		t.Errorf("first finding status %q", got)
	}
	if got := cell(t, f, SheetFindings, "N2"); got != "Investigate the grace reset." {
		t.Errorf("remediation %q", got)
	}
	if ct := cellType(t, f, SheetFindings, "O2"); ct != excelize.CellTypeNumber && ct != excelize.CellTypeUnset {
		t.Errorf("first seen cell type %v, want a number (date serial)", ct)
	}
	if got := cell(t, f, SheetFindings, "O2"); got != "2026-10-02 08:00:00" {
		t.Errorf("first seen shows %q, want a formatted date", got)
	}
	statuses := map[string]bool{}
	for _, row := range rows(t, f, SheetFindings)[1:] {
		statuses[row[3]] = true
	}
	for _, s := range []string{"new", "persisting", "waived", "expired_waiver"} {
		if !statuses[s] {
			t.Errorf("no finding with status %s (have %v)", s, statuses)
		}
	}
	tbls, err := f.GetTables(SheetFindings)
	if err != nil || len(tbls) != 1 || tbls[0].Range != "A1:P5" {
		t.Errorf("findings table %+v %v", tbls, err)
	}
	cfs, err := f.GetConditionalFormats(SheetFindings)
	if err != nil || len(cfs["C2:C5"]) != 5 {
		t.Errorf("conditional formats %+v %v", cfs, err)
	}

	// Hosts: numbers are numbers, dates are dates.
	ref := find(t, f, SheetHosts, "rdsh-02")
	row := ref[1:]
	if got := cell(t, f, SheetHosts, "O"+row); got != "140" || cellType(t, f, SheetHosts, "O"+row) == excelize.CellTypeInlineString {
		t.Errorf("grace days %q", got)
	}
	if got := cell(t, f, SheetHosts, "Q"+row); got != "2026-10-30 22:15:00" {
		t.Errorf("GracePeriod key written %q", got)
	}
	if got := cell(t, f, SheetHosts, "F"+row); got != "local" {
		t.Errorf("mode source %q", got)
	}

	// License servers: unlimited stays visible, counts are numbers.
	ls := rows(t, f, SheetLicenseServers)
	if ls[1][3] != "2" || ls[1][9] != "unlimited" || ls[2][9] != "20" || ls[2][10] != "11" || ls[2][11] != "9" || ls[1][2] != "activated" {
		t.Errorf("license servers rows %q", ls[1:])
	}
	if ls[2][12] != "2038-01-01 00:00:00" {
		t.Errorf("key pack expiry %q", ls[2][12])
	}
	// CAL position: plain labels, totals per CAL type, shortfall and surplus apart.
	pos := rows(t, f, SheetPosition)
	if pd := pos[len(pos)-2]; pd[0] != "Per Device CALs, all versions" || pd[1] != "10" || pd[2] != "unlimited" || pd[6] != "0" || pd[7] != "8" {
		t.Errorf("per device totals %q", pd)
	}
	if pu := pos[len(pos)-1]; pu[0] != "Per User CALs, all versions" || pu[1] != "25" || pu[6] != "5" || pu[7] != "0" || pu[9] != "600.00 EUR" || numFmt(t, f, SheetPosition, "J"+fmt.Sprint(len(pos))) != `#,##0.00 "EUR"` {
		t.Errorf("per user totals %q", pu)
	}
	if ct := cellType(t, f, SheetPosition, "B2"); ct == excelize.CellTypeInlineString || ct == excelize.CellTypeSharedString {
		t.Errorf("entitled is text")
	}
	// Drift lists what changed; the persisting finding is counted, not listed.
	dr := rows(t, f, SheetDrift)
	if dr[1][0] != "new" || dr[2][0] != "resolved" || dr[3][0] != "unchanged" || !strings.HasPrefix(dr[3][6], "1 finding still open") {
		t.Errorf("drift %q", dr)
	}
	for _, row := range dr[1:] {
		for _, id := range r.Drift.Persisting {
			if row[1] == id {
				t.Errorf("drift lists persisting finding %s", id)
			}
		}
	}
	// Coverage names the failure class.
	cov := rows(t, f, SheetCoverage)
	if cov[4][0] != "RDSH-03" || cov[4][4] != "auth" {
		t.Errorf("coverage %q", cov[4])
	}
	// Summary: verdict, run ID, counts, score; no charts (they printed cut in half).
	vr := find(t, f, SheetSummary, "Verdict")[1:]
	if got := cell(t, f, SheetSummary, "B"+vr); got != r.Verdict().Word() || got != "FAIL (coverage and findings)" {
		t.Errorf("summary verdict %q", got)
	}
	id := find(t, f, SheetSummary, "Run ID")[1:]
	if got := cell(t, f, SheetSummary, "B"+id); got != r.Run.ID {
		t.Errorf("summary run id %q", got)
	}
	tgt := find(t, f, SheetSummary, "Targeted")
	if got := cell(t, f, SheetSummary, "B"+tgt[1:]); got != "4" {
		t.Errorf("targeted %q", got)
	}
	sc := find(t, f, SheetSummary, "Compliance score (%)")
	if got := cell(t, f, SheetSummary, "B"+sc[1:]); got != "42.9" {
		t.Errorf("score %q", got)
	}
	find(t, f, SheetAbout, "Compliance score: "+ScoreFormula+".")
	for name := range filesInZip(t, writeXLSX(t, r)) {
		if strings.HasPrefix(name, "xl/charts/chart") {
			t.Errorf("chart %s on the Summary", name)
		}
	}
	// About: catalogue and evidence hashes.
	find(t, f, SheetAbout, "RDS-GRACE-001")
	find(t, f, SheetAbout, r.Evidence[0].SHA256)
}

func filesInZip(t testing.TB, data []byte) map[string]bool {
	t.Helper()
	f := openXLSX(t, data)
	out := map[string]bool{}
	f.Pkg.Range(func(k, _ any) bool { out[k.(string)] = true; return true })
	return out
}

// Every cell holding host-derived text must be a string cell, never a formula.
func TestXLSXFormulaInjectionStaysText(t *testing.T) {
	data := writeXLSX(t, Build(fixtureInput()))
	f := openXLSX(t, data)
	found := map[string]int{}
	for _, sheet := range f.GetSheetList() {
		for r, row := range rows(t, f, sheet) {
			for c, v := range row {
				ref, _ := excelize.CoordinatesToCellName(c+1, r+1)
				if formula, _ := f.GetCellFormula(sheet, ref); formula != "" {
					t.Errorf("%s!%s has formula %q", sheet, ref, formula)
				}
				for _, inj := range injections() {
					if strings.Contains(v, inj) {
						found[inj]++
						if ct := cellType(t, f, sheet, ref); ct != excelize.CellTypeInlineString && ct != excelize.CellTypeSharedString {
							t.Errorf("%s!%s %q has cell type %v, want a string", sheet, ref, v, ct)
						}
					}
				}
			}
		}
	}
	for _, inj := range injections() {
		if found[inj] == 0 {
			t.Errorf("fixture string %q not found in any cell", inj)
		}
	}
	if bytes.Contains(data, []byte("<f>")) {
		t.Error("workbook contains a formula element")
	}
}

func TestXLSXEmptyReport(t *testing.T) {
	f := openXLSX(t, writeXLSX(t, Build(BuildInput{Run: RunInfo{ID: "empty"}})))
	if rs := rows(t, f, SheetFindings); len(rs) != 1 {
		t.Errorf("findings rows %d", len(rs))
	}
	if rs := rows(t, f, SheetDrift); len(rs) != 2 || rs[1][0] != "no baseline" {
		t.Errorf("drift %q", rs)
	}
}

func TestXLSXCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := (XLSX{}).Write(ctx, &bytes.Buffer{}, Build(fixtureInput())); err == nil {
		t.Error("canceled write succeeded")
	}
}

// externalTool skips when the tool is missing outside CI and fails in CI.
func externalTool(t *testing.T, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s not installed (Debian %s); required when CI is set", path, pkg)
		}
		t.Fatalf("CI: %s not installed (Debian %s): %v", path, pkg, err)
	}
}

const openpyxlScript = `
import sys, openpyxl
wb = openpyxl.load_workbook(sys.argv[1], read_only=False)
print("SHEETS\t" + "\t".join(wb.sheetnames))
for ws in wb.worksheets:
    n = 0
    for row in ws.iter_rows():
        for c in row:
            if c.data_type == "f":
                print("FORMULA\t%s\t%s" % (ws.title, c.coordinate))
            if isinstance(c.value, str) and c.value[:1] in "=+-@":
                print("TEXT\t%s\t%s\t%s" % (ws.title, c.coordinate, c.value))
        n += 1
    print("ROWS\t%s\t%d" % (ws.title, n))
ro = openpyxl.load_workbook(sys.argv[1], read_only=True)
for ws in ro.worksheets:
    print("RO\t%s\t%d" % (ws.title, sum(1 for _ in ws.iter_rows())))
for ws in wb.worksheets:
    ps = ws.page_setup
    print("PRINT\t%s\t%s %s %s %s %s %s" % (ws.title, ps.orientation, ps.fitToWidth, ps.fitToHeight,
        ws.sheet_properties.pageSetUpPr.fitToPage, ws.print_title_rows, "&A" in (ws.oddFooter.center.text or "")))
ws = wb["Findings"]
print("DATE\t%s" % type(ws["O2"].value).__name__)
print("TABLES\t%s" % ",".join(ws.tables.keys()))
`

func TestXLSXOpenpyxl(t *testing.T) {
	py := "/usr/bin/python3"
	externalTool(t, py, "python3")
	if err := exec.Command(py, "-c", "import openpyxl").Run(); err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("python3-openpyxl not installed; required when CI is set")
		}
		t.Fatal("CI: python3-openpyxl not installed")
	}
	r := Build(fixtureInput())
	path := filepath.Join(t.TempDir(), "report.xlsx")
	if err := os.WriteFile(path, writeXLSX(t, r), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "-c", openpyxlScript, path).CombinedOutput()
	if err != nil {
		t.Fatalf("openpyxl: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	got := map[string]string{}
	texts := 0
	for _, l := range lines {
		f := strings.Split(l, "\t")
		switch f[0] {
		case "FORMULA":
			t.Errorf("openpyxl sees a formula at %s!%s", f[1], f[2])
		case "TEXT":
			texts++
		case "SHEETS":
			if !reflect.DeepEqual(f[1:], Sheets()) {
				t.Errorf("openpyxl sheets %v", f[1:])
			}
		default:
			got[strings.Join(f[:len(f)-1], "\t")] = f[len(f)-1]
		}
	}
	if texts == 0 {
		t.Error("openpyxl saw none of the injection strings as text")
	}
	for sheet, n := range map[string]string{SheetFindings: "5", SheetHosts: "4", SheetCoverage: "5", SheetIssued: "3"} {
		if got["ROWS\t"+sheet] != n || got["RO\t"+sheet] != n {
			t.Errorf("openpyxl %s rows %q (read-only %q), want %s", sheet, got["ROWS\t"+sheet], got["RO\t"+sheet], n)
		}
	}
	// openpyxl reads the page setup of every sheet as written (issue 11).
	for _, sh := range Sheets() {
		want := "landscape 1 0 True $1:$1 True"
		if sh == SheetSummary {
			want = "landscape 1 1 True None True"
		}
		if got["PRINT\t"+sh] != want {
			t.Errorf("openpyxl %s page setup %q, want %q", sh, got["PRINT\t"+sh], want)
		}
	}
	if got["DATE"] != "datetime" {
		t.Errorf("openpyxl reads first seen as %q, want datetime", got["DATE"])
	}
	if got["TABLES"] != "Findings" {
		t.Errorf("openpyxl tables %q", got["TABLES"])
	}
}

func TestXLSXLibreOffice(t *testing.T) {
	soffice := "/usr/bin/soffice"
	externalTool(t, soffice, "libreoffice-calc")
	dir := t.TempDir()
	path := filepath.Join(dir, "report.xlsx")
	if err := os.WriteFile(path, writeXLSX(t, Build(fixtureInput())), 0o644); err != nil {
		t.Fatal(err)
	}
	// Convert the Findings sheet (sheet 2) to CSV: a repair prompt or a broken part makes
	// the conversion fail or produce nothing.
	out := filepath.Join(dir, "out")
	cmd := exec.Command(soffice, "--headless", "--norestore", "-env:UserInstallation=file://"+filepath.Join(dir, "profile"),
		"--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,2", "--outdir", out, path)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("soffice: %v\n%s", err, b)
	}
	matches, _ := filepath.Glob(filepath.Join(out, "*.csv"))
	if len(matches) == 0 {
		t.Fatal("LibreOffice produced no CSV")
	}
	data, err := os.ReadFile(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatalf("csv: %v\n%s", err, data)
	}
	if len(recs) != 5 || !reflect.DeepEqual(recs[0], FindingsHeader()) {
		t.Fatalf("LibreOffice Findings: %d rows, header %q", len(recs), recs[0])
	}
	all := string(data)
	for _, inj := range []string{injections()[0], injections()[1], "-1+1"} {
		if !strings.Contains(all, strings.ReplaceAll(inj, `"`, `""`)) {
			t.Errorf("LibreOffice lost the text %q (evaluated as a formula?):\n%s", inj, all)
		}
	}
	if !strings.Contains(all, "2026-10-02 08:00:00") {
		t.Errorf("LibreOffice date not formatted:\n%s", all)
	}
}
