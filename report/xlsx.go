package report

import (
	"archive/zip"
	"bufio"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rdsaudit/rdsaudit/facts"
	"github.com/rdsaudit/rdsaudit/rules"
	"github.com/xuri/excelize/v2"
)

// Sheet names, in workbook order.
const (
	SheetSummary        = "Summary"
	SheetFindings       = "Findings"
	SheetHosts          = "Hosts"
	SheetLicenseServers = "License Servers"
	SheetPosition       = "CAL Position"
	SheetIssued         = "Issued CALs"
	SheetDrift          = "Drift"
	SheetWaivers        = "Waivers"
	SheetCoverage       = "Coverage"
	SheetAbout          = "About"
)

// Sheets returns the workbook's sheets in order.
func Sheets() []string {
	return []string{SheetSummary, SheetFindings, SheetHosts, SheetLicenseServers, SheetPosition,
		SheetIssued, SheetPerUser, SheetDrift, SheetWaivers, SheetCoverage, SheetAbout}
}

// FindingsHeader returns the column headers (row 1) of the Findings sheet.
func FindingsHeader() []string {
	return []string{"Finding ID", "Rule ID", "Severity", "Status", "Outcome", "Subject", "Host", "Group",
		"Message", "Observed", "Expected", "Evidence source", "Strength", "Remediation", "First seen", "Last seen"}
}

// HostsHeader returns the column headers (row 1) of the Hosts sheet.
func HostsHeader() []string {
	return []string{"Host", "Group", "Roles", "Collection status", "Effective mode", "Mode source", "Policy mode",
		"Local mode", "WMI mode", "License servers", "License server source", "Policy license servers",
		"Local license servers", "WMI license servers", "Grace days", "Grace error", "GracePeriod key written",
		"OS", "OS version", "OS build", "Release", "Install date", "Domain"}
}

// LicenseServersHeader returns the column headers (row 1) of the License Servers sheet.
func LicenseServersHeader() []string {
	return []string{"Server", "Collection status", "Activation", "Key pack ID", "Description", "Type and model",
		"Pack type", "CAL type", "CAL version", "Total", "Issued", "Available", "Expires", "Built-in", "Temporary",
		"Issued CALs reported", "Issued list truncated"}
}

// PositionHeader returns the column headers (row 1) of the CAL Position sheet.
func PositionHeader() []string {
	return []string{"CAL", "Entitled (ledger)", "Installed (key packs)", "Issued (key packs)", "Used (Per User reports or AD)",
		"In use", "Shortfall", "Surplus", "Unit price", "True-up cost", "Usage figure: source and date", "Complete", "Note"}
}

// IssuedHeader returns the column headers (row 1) of the Issued CALs sheet.
func IssuedHeader() []string {
	return []string{"Server", "License ID", "Key pack ID", "Computer", "User", "Status", "Temporary", "Issued", "Expires"}
}

// DriftHeader returns the column headers (row 1) of the Drift sheet.
func DriftHeader() []string {
	return []string{"Change", "Finding ID", "Rule ID", "Severity", "Subject", "Group", "Message"}
}

// WaiversHeader returns the column headers (row 1) of the Waivers sheet.
func WaiversHeader() []string {
	return []string{"Waiver ID", "Rule ID", "Scope", "Owner", "Approver", "Ticket", "Reason", "Expires", "Expired",
		"Applied", "Results waived", "Results in scope"}
}

// CoverageHeader returns the column headers (row 1) of the Coverage sheet.
func CoverageHeader() []string {
	return []string{"Host", "Group", "Roles", "Status", "Failure class", "Message", "Attempts", "Collector",
		"Collected at", "Section errors"}
}

// XLSX writes report.xlsx with excelize. Sheets that grow with the fleet are streamed;
// the zip is written straight to the io.Writer, never held in memory.
type XLSX struct {
	// CompressionLevel is the deflate level (flate.BestSpeed .. flate.BestCompression);
	// 0 means flate.BestSpeed, measured ~1.4x faster than the default for a ~25% larger
	// file (docs/benchmarks.md).
	CompressionLevel int
}

type xlsxWriter struct {
	ctx    context.Context
	f      *excelize.File
	r      *Report
	styles struct {
		header, headerNum, date, dateLeft, day, bold, title, wrap, right, top, flag, note, percent, verdictPass, verdictFail int
	}
	currency map[string]int // number-format style of each currency's amounts
}

// Write implements Writer.
func (x XLSX) Write(ctx context.Context, w io.Writer, r *Report) (err error) {
	level := x.CompressionLevel
	if level == 0 {
		level = flate.BestSpeed
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	f := excelize.NewFile()
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write report xlsx: %w", cerr)
		}
	}()
	// excelize hands the zip writer a bytes.Buffer; ours ignores it and deflates straight
	// into w, so the finished archive is never held in memory.
	f.SetZipWriter(func(io.Writer) excelize.ZipWriter {
		zw := zip.NewWriter(bw)
		zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
			return flate.NewWriter(out, level)
		})
		return zw
	})
	xw := &xlsxWriter{ctx: ctx, f: f, r: r}
	if err := xw.build(); err != nil {
		return fmt.Errorf("write report xlsx: %w", err)
	}
	if err := f.Write(io.Discard); err != nil {
		return fmt.Errorf("write report xlsx: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write report xlsx: %w", err)
	}
	return nil
}

func (x *xlsxWriter) build() error {
	f := x.f
	if err := f.SetSheetName("Sheet1", SheetSummary); err != nil {
		return err
	}
	for _, s := range Sheets()[1:] {
		if _, err := f.NewSheet(s); err != nil {
			return err
		}
	}
	if err := x.makeStyles(); err != nil {
		return err
	}
	_ = f.SetDocProps(&excelize.DocProperties{Creator: "rdsaudit " + x.r.Run.ToolVersion,
		Title: "RDS CAL licensing audit " + x.r.Run.ID, Created: x.r.Run.StartedAt.UTC().Format(time.RFC3339)})
	for _, step := range []func() error{x.findings, x.hosts, x.licenseServers, x.position, x.issued, x.perUser, x.drift,
		x.waivers, x.coverage, x.about, x.summary} {
		if err := x.ctx.Err(); err != nil {
			return err
		}
		if err := step(); err != nil {
			return err
		}
	}
	// Summary (the first sheet) is active by default. Never call SetActiveSheet or any
	// other sheet-reading API after streaming: it parses the streamed sheets back into memory.
	return nil
}

func (x *xlsxWriter) makeStyles() error {
	f := x.f
	df, day, pct := "yyyy-mm-dd hh:mm:ss", "yyyy-mm-dd", "0.0%"
	top := &excelize.Alignment{Vertical: "top"}
	headerFill := excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"1F4E78"}}
	headerFont := &excelize.Font{Bold: true, Color: "FFFFFF"}
	for _, st := range []struct {
		id    *int
		style *excelize.Style
	}{
		{&x.styles.header, &excelize.Style{Font: headerFont, Fill: headerFill,
			Alignment: &excelize.Alignment{WrapText: true, Vertical: "top"}}},
		// Number columns: the header is right-aligned over right-aligned numbers.
		{&x.styles.headerNum, &excelize.Style{Font: headerFont, Fill: headerFill,
			Alignment: &excelize.Alignment{Horizontal: "right", WrapText: true, Vertical: "top"}}},
		{&x.styles.date, &excelize.Style{CustomNumFmt: &df, Alignment: &excelize.Alignment{Horizontal: "right", Vertical: "top"}}},
		{&x.styles.dateLeft, &excelize.Style{CustomNumFmt: &df, Alignment: &excelize.Alignment{Horizontal: "left", Vertical: "top"}}},
		{&x.styles.day, &excelize.Style{CustomNumFmt: &day, Alignment: &excelize.Alignment{Horizontal: "right", Vertical: "top"}}},
		{&x.styles.bold, &excelize.Style{Font: &excelize.Font{Bold: true}, Alignment: top}},
		{&x.styles.title, &excelize.Style{Font: &excelize.Font{Bold: true, Size: 14}}},
		{&x.styles.wrap, &excelize.Style{Alignment: &excelize.Alignment{WrapText: true, Vertical: "top"}}},
		{&x.styles.right, &excelize.Style{Alignment: &excelize.Alignment{Horizontal: "right", Vertical: "top"}}},
		{&x.styles.top, &excelize.Style{Alignment: top}},
		{&x.styles.flag, &excelize.Style{Font: &excelize.Font{Bold: true, Color: "C00000"}, Alignment: &excelize.Alignment{Horizontal: "right", Vertical: "top"}}},
		{&x.styles.note, &excelize.Style{Font: &excelize.Font{Italic: true, Color: "404040"},
			Alignment: &excelize.Alignment{WrapText: true, Vertical: "top"}}},
		{&x.styles.percent, &excelize.Style{CustomNumFmt: &pct, Font: &excelize.Font{Bold: true}, Alignment: &excelize.Alignment{Horizontal: "right", Vertical: "top"}}},
		{&x.styles.verdictPass, &excelize.Style{Font: &excelize.Font{Bold: true, Size: 16, Color: "FFFFFF"},
			Fill: excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"2E7D32"}}}},
		{&x.styles.verdictFail, &excelize.Style{Font: &excelize.Font{Bold: true, Size: 16, Color: "FFFFFF"},
			Fill: excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"C00000"}}}},
	} {
		id, err := f.NewStyle(st.style)
		if err != nil {
			return err
		}
		*st.id = id
	}
	return nil
}

// currencyStyle is the style of an amount in the ledger's currency: two decimals,
// thousands separated, the ISO code after the number ("1,234.50 EUR"). A code that is
// not plain letters is left out of the format (the Currency is still named in text).
func (x *xlsxWriter) currencyStyle(cur string) (int, error) {
	if id, ok := x.currency[cur]; ok {
		return id, nil
	}
	code := cur
	for _, c := range code {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			code = ""
			break
		}
	}
	nf := "#,##0.00"
	if code != "" {
		nf += ` "` + code + `"`
	}
	id, err := x.f.NewStyle(&excelize.Style{CustomNumFmt: &nf, Alignment: &excelize.Alignment{Horizontal: "right", Vertical: "top"}})
	if err != nil {
		return 0, err
	}
	if x.currency == nil {
		x.currency = map[string]int{}
	}
	x.currency[cur] = id
	return id, nil
}

// money is an amount cell in a currency's format, or nil.
func (x *xlsxWriter) money(v *float64, cur string) (any, error) {
	if v == nil {
		return nil, nil
	}
	id, err := x.currencyStyle(cur)
	if err != nil {
		return nil, err
	}
	return excelize.Cell{StyleID: id, Value: *v}, nil
}

// printSetup makes a sheet print as people expect (issue 11): landscape A4, one page
// wide and as many tall as it takes (tall 0; the Summary is laid out for one page and
// gets tall 1), the header rows repeated on every page, a footer naming the run, the
// sheet and "page N of M", and the print area over the used range. Called before a
// streamed sheet's NewStreamWriter (its sheetPr is written then).
func (x *xlsxWriter) printSetup(sheet string, cols, rows, titleRows, tall int) error {
	f := x.f
	fit := true
	if err := f.SetSheetProps(sheet, &excelize.SheetPropsOptions{FitToPage: &fit}); err != nil {
		return err
	}
	orient, size, wide := "landscape", 9, 1 // 9: A4; Letter printers scale it
	if err := f.SetPageLayout(sheet, &excelize.PageLayoutOptions{Orientation: &orient, Size: &size,
		FitToWidth: &wide, FitToHeight: &tall}); err != nil {
		return err
	}
	l, r, t, b, h, ft := 0.4, 0.4, 0.6, 0.6, 0.25, 0.25
	if err := f.SetPageMargins(sheet, &excelize.PageLayoutMarginsOptions{Left: &l, Right: &r, Top: &t, Bottom: &b,
		Header: &h, Footer: &ft}); err != nil {
		return err
	}
	id := strings.ReplaceAll(x.r.Run.ID, "&", "&&")
	if err := f.SetHeaderFooter(sheet, &excelize.HeaderFooterOptions{
		OddHeader: "&L&8RDS CAL licensing audit&R&8run " + id,
		OddFooter: "&L&8rdsaudit run " + id + "&C&8&A&R&8page &P of &N"}); err != nil {
		return err
	}
	last, _ := excelize.ColumnNumberToName(max(cols, 1))
	q := quote(sheet)
	if err := f.SetDefinedName(&excelize.DefinedName{Name: "_xlnm.Print_Area", Scope: sheet,
		RefersTo: fmt.Sprintf("%s!$A$1:$%s$%d", q, last, max(rows, 1))}); err != nil {
		return err
	}
	if titleRows > 0 {
		return f.SetDefinedName(&excelize.DefinedName{Name: "_xlnm.Print_Titles", Scope: sheet,
			RefersTo: fmt.Sprintf("%s!$1:$%d", q, titleRows)})
	}
	return nil
}

// Cell helpers. Text is always passed as a Go string, which excelize writes as an
// explicit string cell (inline or shared), never as a formula: host data like
// "=HYPERLINK(...)" stays text.

func txt(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// CellLimit is the most characters (UTF-16 code units) an Excel cell holds.
const CellLimit = 32767

// clip fits s into one cell. A longer text is cut visibly: it ends in a marker saying
// how long the whole text is and where it is kept in full (report.json, the evidence
// file); excelize would otherwise cut it silently (issue 14, defect 7).
func clip(s string) string {
	if len(s) <= CellLimit/3 { // at most 3 UTF-8 bytes per UTF-16 unit below U+10000
		return s
	}
	n := utf16Len(s)
	if n <= CellLimit {
		return s
	}
	marker := fmt.Sprintf(" [… cut by rdsaudit: %d characters in all; the full text is in report.json and the evidence file]", n)
	room := CellLimit - utf16Len(marker)
	used := 0
	for i, c := range s {
		w := 1
		if c > 0xFFFF {
			w = 2
		}
		if used+w > room {
			return s[:i] + marker
		}
		used += w
	}
	return s
}

func utf16Len(s string) int {
	n := 0
	for _, c := range s {
		if c > 0xFFFF {
			n += 2
		} else {
			n++
		}
	}
	return n
}

// serial converts a time to an Excel date serial number (1900 date system, UTC: day 0 is
// 1899-12-30).
func serial(t time.Time) float64 {
	excelEpoch := time.Date(1899, 12, 30, 0, 0, 0, 0, time.UTC)
	return float64(t.UTC().Sub(excelEpoch)) / float64(24*time.Hour)
}

func (x *xlsxWriter) date(t *time.Time) any {
	if t == nil || t.IsZero() {
		return nil
	}
	if y := t.UTC().Year(); y < 1900 || y > 9999 {
		return t.UTC().Format(time.RFC3339)
	}
	return excelize.Cell{StyleID: x.styles.date, Value: serial(*t)}
}

func intp(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func count(c *Count) any {
	switch {
	case c == nil:
		return "unknown"
	case c.Unlimited:
		return "unlimited"
	}
	return c.Value
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func modeName(p *int64) any {
	if p == nil {
		return nil
	}
	return facts.ModeName(p)
}

type streamSheet struct {
	sw     *excelize.StreamWriter
	row    int
	x      *xlsxWriter
	err    error
	kind   []colKind
	widths []float64
}

// rowHeight is the height (points) a row needs for its wrapped cells: readers do not
// grow rows to wrapped text on their own (LibreOffice prints such text over the rows
// below), so every row with a long text gets its height. 0 means the default.
func rowHeight(vals []any, kind []colKind, widths []float64) float64 {
	lines := 1
	for i, v := range vals {
		if i >= len(kind) || kind[i] != colWrap || i >= len(widths) {
			continue
		}
		var str string
		switch t := v.(type) {
		case string:
			str = t
		case excelize.Cell:
			str, _ = t.Value.(string)
		}
		if str == "" {
			continue
		}
		per := max(1, int(widths[i]*1.1)) // characters per line of a column this wide
		n := 0
		for _, seg := range strings.Split(str, "\n") {
			n += 1 + (utf16Len(seg)-1)/per
		}
		lines = max(lines, n)
	}
	if lines == 1 {
		return 0
	}
	return min(409, 15*float64(lines)) // 409 points: Excel's tallest row
}

// colKind says how a list sheet's column prints.
type colKind byte

const (
	colText colKind = iota
	colWrap         // long text: wrapped, top-aligned
	colNum          // numbers: right-aligned, header too
)

// sheetLayout is how a list sheet prints: column widths and kinds (by column, from A).
type sheetLayout struct {
	widths []float64
	kinds  []colKind
	// filter adds an AutoFilter over the header and the rows (a sheet with a Table has
	// the table's own).
	filter bool
	// cols, when wider than the header, is the width of the sheet's dimension and print
	// area (a sheet with several blocks below its first table); filterRows, when > 0,
	// limits the AutoFilter to the first table's rows.
	cols, filterRows int
}

// stream opens a streamed list sheet with a frozen, styled header row, its column
// widths, AutoFilter and print setup. rows is the number of data rows, for the sheet
// dimension and the print area.
func (x *xlsxWriter) stream(name string, header []string, lay sheetLayout, rows int) (*streamSheet, error) {
	cols := max(len(header), lay.cols)
	last, _ := excelize.ColumnNumberToName(cols)
	if err := x.f.SetSheetDimension(name, fmt.Sprintf("A1:%s%d", last, rows+1)); err != nil {
		return nil, err
	}
	// AutoFilter first: it replaces the sheet properties printSetup sets.
	if lay.filter {
		fLast, _ := excelize.ColumnNumberToName(len(header))
		fRows := rows
		if lay.filterRows > 0 {
			fRows = lay.filterRows
		}
		if err := x.f.AutoFilter(name, fmt.Sprintf("A1:%s%d", fLast, fRows+1), nil); err != nil {
			return nil, err
		}
	}
	if err := x.printSetup(name, cols, rows+1, 1, 0); err != nil {
		return nil, err
	}
	sw, err := x.f.NewStreamWriter(name)
	if err != nil {
		return nil, err
	}
	for i, w := range lay.widths {
		if err := sw.SetColWidth(i+1, i+1, w); err != nil {
			return nil, err
		}
	}
	if err := sw.SetPanes(&excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft",
		Selection: []excelize.Selection{{SQRef: "A2", ActiveCell: "A2", Pane: "bottomLeft"}}}); err != nil {
		return nil, err
	}
	s := &streamSheet{sw: sw, x: x, kind: lay.kinds, widths: lay.widths}
	hdr := make([]any, len(header))
	for i, h := range header {
		st := x.styles.header
		if s.kindOf(i) == colNum {
			st = x.styles.headerNum
		}
		hdr[i] = excelize.Cell{StyleID: st, Value: h}
	}
	s.row++
	all := make([]colKind, len(header))
	for i := range all {
		all[i] = colWrap // header cells wrap
	}
	if h := rowHeight(hdr, all, boldWidths(lay.widths)); h > 0 {
		s.err = sw.SetRow("A1", hdr, excelize.RowOpts{Height: h})
	} else {
		s.err = sw.SetRow("A1", hdr)
	}
	return s, s.err
}

func (s *streamSheet) kindOf(i int) colKind {
	if i < len(s.kind) {
		return s.kind[i]
	}
	return colText
}

// add writes the next row. Strings are clipped to a cell and styled by their column:
// wrapped in a long-text column, right-aligned in a number column ("unlimited").
func (s *streamSheet) add(vals ...any) {
	if s.err != nil {
		return
	}
	s.row++
	if s.row%8192 == 0 {
		if s.err = s.x.ctx.Err(); s.err != nil {
			return
		}
	}
	for i, v := range vals {
		switch v.(type) {
		case int, int64:
			// Numbers top-aligned like the text beside them.
			vals[i] = excelize.Cell{StyleID: s.x.styles.right, Value: v}
			continue
		}
		str, ok := v.(string)
		if !ok {
			continue
		}
		str = clip(str)
		switch s.kindOf(i) {
		case colWrap:
			vals[i] = excelize.Cell{StyleID: s.x.styles.wrap, Value: str}
		case colNum:
			vals[i] = excelize.Cell{StyleID: s.x.styles.right, Value: str}
		default:
			vals[i] = excelize.Cell{StyleID: s.x.styles.top, Value: str}
		}
	}
	cell, _ := excelize.CoordinatesToCellName(1, s.row)
	if h := rowHeight(vals, s.kind, s.widths); h > 0 {
		s.err = s.sw.SetRow(cell, vals, excelize.RowOpts{Height: h})
		return
	}
	s.err = s.sw.SetRow(cell, vals)
}

func (s *streamSheet) flush() error {
	if s.err != nil {
		return s.err
	}
	return s.sw.Flush()
}

// kinds builds a column-kind list: every column text but those named.
func kinds(n int, wrap, num []int) []colKind {
	k := make([]colKind, n)
	for _, i := range wrap {
		k[i] = colWrap
	}
	for _, i := range num {
		k[i] = colNum
	}
	return k
}

func subjectCols(sub rules.Subject) (host, group string) {
	switch sub.Kind {
	case rules.SubjectHost:
		return sub.Name, sub.Group
	case rules.SubjectGroup:
		return "", sub.Name
	}
	return "", sub.Group
}

// severityColour is the fill of a severity's cell on the Findings sheet.
func severityColour(sev rules.Severity) string {
	switch sev {
	case rules.SevCritical:
		return "C00000"
	case rules.SevHigh:
		return "FF6A00"
	case rules.SevMedium:
		return "FFC000"
	case rules.SevLow:
		return "9BC2E6"
	case rules.SevInfo:
		return "D9D9D9"
	}
	return ""
}

// remediationFor is the remediation printed beside a finding: the rule's, unless the
// rule could not be checked, when it is to get the evidence (a rule's fix does not fit a
// result that proved nothing).
func remediationFor(res *rules.Result, byRule map[string]string) string {
	if res.Outcome == rules.Error {
		return "Not checked: the evidence this rule needs is missing (see Message). Fix what stopped it being read and run the audit again."
	}
	return byRule[res.RuleID]
}

func (x *xlsxWriter) findings() error {
	fs := x.r.Findings()
	header := FindingsHeader()
	s, err := x.stream(SheetFindings, header, sheetLayout{
		widths: []float64{13, 15, 9, 11, 8, 20, 14, 10, 48, 24, 22, 10, 16, 40, 18, 18},
		kinds:  kinds(len(header), []int{5, 8, 9, 10, 12, 13}, []int{14, 15})}, len(fs))
	if err != nil {
		return err
	}
	expired := x.r.expiredWaivers()
	remediation := map[string]string{}
	for _, ri := range x.r.Catalogue {
		remediation[ri.ID] = ri.Remediation
	}
	for _, res := range fs {
		host, group := subjectCols(res.Subject)
		s.add(res.ID, res.RuleID, res.Severity.String(), x.r.FindingStatus(res, expired), string(res.Outcome),
			res.Subject.String(), txt(host), txt(group), txt(res.Message), txt(res.Observed), txt(res.Expected),
			txt(res.Source), txt(res.Strength), txt(remediationFor(res, remediation)), x.date(res.FirstSeen), x.date(res.LastSeen))
	}
	if s.err == nil && len(fs) > 0 {
		last, _ := excelize.ColumnNumberToName(len(header))
		s.err = s.sw.AddTable(&excelize.Table{Range: fmt.Sprintf("A1:%s%d", last, len(fs)+1), Name: "Findings",
			StyleName: "TableStyleMedium2"})
	}
	if s.err == nil && len(fs) > 0 {
		var cf []excelize.ConditionalFormatOptions
		for sev := rules.SevCritical; sev >= rules.SevInfo; sev-- {
			font := "000000"
			if sev >= rules.SevHigh {
				font = "FFFFFF"
			}
			id, err := x.f.NewConditionalStyle(&excelize.Style{Font: &excelize.Font{Color: font, Bold: sev >= rules.SevHigh},
				Fill: excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{severityColour(sev)}}})
			if err != nil {
				return err
			}
			cf = append(cf, excelize.ConditionalFormatOptions{Type: "cell", Criteria: "==",
				Value: `"` + sev.String() + `"`, Format: &id})
		}
		s.err = x.f.SetConditionalFormat(SheetFindings, fmt.Sprintf("C2:C%d", len(fs)+1), cf)
	}
	return s.flush()
}

func (x *xlsxWriter) hosts() error {
	header := HostsHeader()
	s, err := x.stream(SheetHosts, header, sheetLayout{
		widths: []float64{16, 10, 14, 11, 16, 8, 12, 12, 12, 18, 9, 16, 16, 16, 7, 18, 18, 26, 10, 7, 8, 18, 14},
		kinds:  kinds(len(header), []int{2, 4, 9, 11, 12, 13, 15, 17}, []int{14, 16, 19, 21}), filter: true}, len(x.r.Hosts))
	if err != nil {
		return err
	}
	j := func(v []string) any { return txt(strings.Join(v, ", ")) }
	for i := range x.r.Hosts {
		h := &x.r.Hosts[i]
		s.add(h.Name, txt(h.Group), j(h.Roles), string(h.Status), txt(h.ModeName), txt(h.ModeSource),
			modeName(h.PolicyMode), modeName(h.LocalMode), modeName(h.WMIMode), j(h.LicenseServers),
			txt(h.LicenseServerSource), j(h.PolicyLicenseServers), j(h.LocalLicenseServers), j(h.WMILicenseServers),
			intp(h.GraceDays), txt(h.GraceError), x.date(h.GraceKeyWritten), txt(h.OSCaption), txt(h.OSVersion),
			txt(h.OSBuild), txt(h.Release), x.date(h.InstallDate), txt(h.Domain))
	}
	return s.flush()
}

func (x *xlsxWriter) licenseServers() error {
	n := 0
	for _, ls := range x.r.LicenseServers {
		n += max(1, len(ls.KeyPacks))
	}
	header := LicenseServersHeader()
	s, err := x.stream(SheetLicenseServers, header, sheetLayout{
		widths: []float64{16, 11, 16, 9, 18, 24, 12, 11, 9, 10, 9, 10, 18, 8, 10, 10, 10},
		kinds:  kinds(len(header), []int{2, 4, 5}, []int{3, 9, 10, 11, 12, 15}), filter: true}, n)
	if err != nil {
		return err
	}
	for _, ls := range x.r.LicenseServers {
		act := ls.ActivationName
		if ls.ActivationError != "" {
			act += ": " + ls.ActivationError
		}
		if len(ls.KeyPacks) == 0 {
			s.add(ls.Name, string(ls.Status), act, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil,
				ls.IssuedTotal, yesNo(ls.IssuedTruncated))
			continue
		}
		for _, kp := range ls.KeyPacks {
			exp := x.date(kp.Expires)
			if exp == nil {
				exp = txt(kp.ExpiresRaw)
			}
			s.add(ls.Name, string(ls.Status), act, kp.ID, txt(kp.Description), txt(kp.TypeAndModel), codeLabel(kp.PackType),
				codeLabel(kp.CALType), txt(kp.Version), count(kp.Total), count(kp.Issued), count(kp.Available), exp,
				yesNo(kp.BuiltIn), yesNo(kp.Temporary), ls.IssuedTotal, yesNo(ls.IssuedTruncated))
		}
	}
	return s.flush()
}

// CALLabel names a CAL type and version as a licence agreement does: "Per Device CAL,
// Windows Server 2019". A type or version rdsaudit cannot name is said in words, never
// as a code.
func CALLabel(calType, version string) string {
	var t string
	switch calType {
	case "per_device":
		t = "Per Device CAL"
	case "per_user":
		t = "Per User CAL"
	default:
		t = "CAL of unrecognised type"
	}
	switch {
	case version == "":
		return t + ", version not reported"
	case strings.HasPrefix(version, "unknown"):
		return t + ", unrecognised version (" + strings.TrimSuffix(strings.TrimPrefix(version, "unknown("), ")") + ")"
	}
	return t + ", Windows Server " + version
}

// calTypeLabel is a CAL type's plural for totals: "Per Device CALs, all versions".
// codeLabel is a key pack's type or CAL type code for a reader: "Per Device", "Per
// User", "open license", and "unrecognised code 3" for a value domain.md does not name
// (report.json keeps the code).
func codeLabel(code string) string {
	switch {
	case code == "per_device":
		return "Per Device"
	case code == "per_user":
		return "Per User"
	case strings.HasPrefix(code, "unknown(") && strings.HasSuffix(code, ")"):
		return "unrecognised code " + strings.TrimSuffix(strings.TrimPrefix(code, "unknown("), ")")
	}
	return strings.ReplaceAll(code, "_", " ")
}

func calTypeLabel(calType string) string {
	return strings.TrimSuffix(CALLabel(calType, "x"), ", Windows Server x") + "s, all versions"
}

// typeTotal sums one CAL type's position rows. Shortfalls and surpluses are summed
// apart: a shortfall of one version is never netted against a surplus of another.
type typeTotal struct {
	calType                    string
	entitled, usage, short     int64
	surplus                    int64
	used                       *int64
	installed, issued          Count
	cost                       float64
	costed, unpriced, mixedCur bool
	currency                   string
}

func positionByType(rows []PositionRow) []typeTotal {
	var out []typeTotal
	for _, p := range rows {
		if len(out) == 0 || out[len(out)-1].calType != p.CALType {
			out = append(out, typeTotal{calType: p.CALType})
		}
		t := &out[len(out)-1]
		if p.Entitled != nil {
			t.entitled += *p.Entitled
		}
		if p.Usage != nil {
			t.usage += *p.Usage
		}
		if p.Used != nil {
			if t.used == nil {
				t.used = new(int64)
			}
			*t.used += *p.Used
		}
		if p.Shortfall != nil && *p.Shortfall > 0 {
			t.short += *p.Shortfall
		}
		if p.Shortfall != nil && *p.Shortfall < 0 {
			t.surplus -= *p.Shortfall
		}
		for _, pair := range []struct{ in, out *Count }{{p.Installed, &t.installed}, {p.Issued, &t.issued}} {
			if pair.in != nil {
				pair.out.Unlimited = pair.out.Unlimited || pair.in.Unlimited
				pair.out.Value += pair.in.Value
			}
		}
		if unpriced(p) {
			t.unpriced = true
		}
		if p.EstimatedCost != nil {
			if t.costed && t.currency != p.Currency {
				t.mixedCur = true
			}
			t.cost += *p.EstimatedCost
			t.costed, t.currency = true, p.Currency
		}
	}
	return out
}

// unpriced reports a shortfall the ledger gives no unit price for: its true-up cost
// is unknown, and any total understates it.
func unpriced(p PositionRow) bool {
	return p.Shortfall != nil && *p.Shortfall > 0 && p.EstimatedCost == nil
}

// usageFigure says where a row's "in use" figure comes from and as of when.
func (x *xlsxWriter) usageFigure(p PositionRow) string {
	src := p.UsageSource
	if strings.HasPrefix(src, "issued") {
		src = "issued " + strings.TrimSuffix(CALLabel(p.CALType, "x"), ", Windows Server x") + "s counted on the license servers' key packs, as collected " + x.lsCollected()
	}
	if strings.HasPrefix(src, "directory") {
		src = "users holding an active Per User CAL in Active Directory (msTS attributes, Per User CALs sheet), read " + x.dirRead()
	}
	return src
}

// dirRead is when the directory's domains were read: one time or the span.
func (x *xlsxWriter) dirRead() string {
	var lo, hi time.Time
	if pu := x.r.PerUser; pu != nil && pu.Summary != nil {
		for _, d := range pu.Summary.Domains {
			if t := d.CollectedAt; !t.IsZero() {
				if lo.IsZero() || t.Before(lo) {
					lo = t
				}
				if t.After(hi) {
					hi = t
				}
			}
		}
	}
	const layout = "2006-01-02 15:04 UTC"
	switch {
	case lo.IsZero():
		return "(time unknown)"
	case lo.UTC().Format(layout) == hi.UTC().Format(layout):
		return lo.UTC().Format(layout)
	}
	return lo.UTC().Format(layout) + " to " + hi.UTC().Format(layout)
}

// lsCollected is when the license servers were read: one time or the span.
func (x *xlsxWriter) lsCollected() string {
	var lo, hi time.Time
	servers := map[string]bool{}
	for _, ls := range x.r.LicenseServers {
		servers[strings.ToLower(ls.Name)] = true
	}
	for _, h := range x.r.Coverage.Hosts {
		if !servers[strings.ToLower(h.Name)] || h.CollectedAt.IsZero() || h.Status != "collected" {
			continue
		}
		if lo.IsZero() || h.CollectedAt.Before(lo) {
			lo = h.CollectedAt
		}
		if h.CollectedAt.After(hi) {
			hi = h.CollectedAt
		}
	}
	const f = "2006-01-02 15:04 UTC"
	switch {
	case lo.IsZero():
		return "(no license server collected)"
	case lo.Format(f) == hi.Format(f):
		return lo.UTC().Format(f)
	}
	return lo.UTC().Format(f) + " to " + hi.UTC().Format(f)
}

func (x *xlsxWriter) position() error {
	f, sh, header := x.f, SheetPosition, PositionHeader()
	widths := []float64{34, 10, 11, 10, 11, 9, 10, 9, 13, 14, 42, 9, 40}
	// Every cell top-aligned, so numbers stay level with the wrapped text beside them.
	if err := f.SetColStyle(sh, "A:M", x.styles.top); err != nil {
		return err
	}
	if err := x.header(sh, header, widths, []int{1, 2, 3, 4, 5, 6, 7, 8, 9}); err != nil {
		return err
	}
	row := 2
	for _, p := range x.r.Position {
		short, surplus := any(nil), any(nil)
		if p.Shortfall != nil {
			short, surplus = max(*p.Shortfall, 0), max(-*p.Shortfall, 0)
		}
		price, err := x.money(p.UnitCost, p.Currency)
		if err != nil {
			return err
		}
		cost, err := x.money(p.EstimatedCost, p.Currency)
		if err != nil {
			return err
		}
		note := p.Note
		if unpriced(p) {
			cost = excelize.Cell{StyleID: x.styles.flag, Value: "NOT PRICED"}
			note = strings.TrimPrefix(note+"; UNPRICED: the ledger gives no unit price for this shortfall, so the true-up cost understates it", "; ")
		}
		complete := yesNo(p.Complete)
		if p.UsageLowerBound {
			complete = "no" // the note says why: in use is a lower bound (the column is too narrow for more)
		}
		vals := []any{excelize.Cell{StyleID: x.styles.top, Value: CALLabel(p.CALType, p.Version)}, intp(p.Entitled), count(p.Installed), count(p.Issued), intp(p.Used),
			intp(p.Usage), short, surplus, price, cost, x.usageFigure(p), complete, txt(note)}
		if err := x.setRow(sh, row, vals); err != nil {
			return err
		}
		row++
	}
	for _, t := range positionByType(x.r.Position) {
		var cost any
		switch {
		case t.mixedCur:
			cost = "mixed currencies"
		case t.unpriced && !t.costed:
			cost = excelize.Cell{StyleID: x.styles.flag, Value: "NOT PRICED"}
		case t.costed:
			v := t.cost
			var err error
			if cost, err = x.money(&v, t.currency); err != nil {
				return err
			}
		}
		note := "totals of this CAL type only; shortfalls and surpluses are summed apart, never netted across versions"
		if t.unpriced {
			note += "; includes an UNPRICED shortfall: the cost understates the true-up"
		}
		var used any
		if t.used != nil {
			used = *t.used
		}
		if err := x.setRow(sh, row, []any{calTypeLabel(t.calType), t.entitled, count(&t.installed), count(&t.issued), used,
			t.usage, t.short, t.surplus, nil, cost, nil, nil, note}); err != nil {
			return err
		}
		// Bold label only: a row style would replace the amounts' currency format.
		if err := f.SetCellStyle(sh, fmt.Sprintf("A%d", row), fmt.Sprintf("A%d", row), x.styles.bold); err != nil {
			return err
		}
		row++
	}
	if err := x.styleColumns(sh, 2, row-1, map[int]int{11: x.styles.wrap, 13: x.styles.wrap}); err != nil {
		return err
	}
	if err := x.fitRows(sh, 1, row-1, widths, []int{10, 12}); err != nil {
		return err
	}
	if err := x.dimension(sh, len(header), row-1); err != nil {
		return err
	}
	if err := f.AutoFilter(sh, fmt.Sprintf("A1:M%d", max(row-1, 1)), nil); err != nil {
		return err
	}
	if err := x.printSetup(sh, len(header), row-1, 1, 0); err != nil {
		return err
	}
	return f.SetPanes(sh, &excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"})
}

// fitRows sets the height of rows first..last of a sheet written with the normal API
// to their wrapped text (see rowHeight); wrap names the wrapped columns (0-based).
func (x *xlsxWriter) fitRows(sheet string, first, last int, widths []float64, wrap []int) error {
	k := kinds(len(widths), wrap, nil)
	for row := first; row <= last; row++ {
		vals := make([]any, len(widths))
		for _, c := range wrap {
			ref, _ := excelize.CoordinatesToCellName(c+1, row)
			v, err := x.f.GetCellValue(sheet, ref)
			if err != nil {
				return err
			}
			vals[c] = v
		}
		if h := rowHeight(vals, k, widths); h > 0 {
			if err := x.f.SetRowHeight(sheet, row, h); err != nil {
				return err
			}
		}
	}
	return nil
}

// styleColumns gives text columns (1-based) of rows first..last a style, keeping the
// cells' values (number cells keep their own formats: only text columns are named).
func (x *xlsxWriter) styleColumns(sheet string, first, last int, cols map[int]int) error {
	if last < first {
		return nil
	}
	for c, st := range cols {
		col, _ := excelize.ColumnNumberToName(c)
		if err := x.f.SetCellStyle(sheet, fmt.Sprintf("%s%d", col, first), fmt.Sprintf("%s%d", col, last), st); err != nil {
			return err
		}
	}
	return nil
}

// dimension records the used range of a sheet written with the normal API, so that
// streaming readers (openpyxl read-only) see every row.
func (x *xlsxWriter) dimension(sheet string, cols, rows int) error {
	last, _ := excelize.ColumnNumberToName(cols)
	return x.f.SetSheetDimension(sheet, fmt.Sprintf("A1:%s%d", last, max(rows, 1)))
}

func fp(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// header writes a styled header row with the normal (in-memory) API; the columns in
// num (0-based) get the right-aligned header of a number column.
func (x *xlsxWriter) header(sheet string, header []string, widths []float64, num []int) error {
	for i, h := range header {
		cell, _ := excelize.CoordinatesToCellName(i+1, 1)
		if err := x.f.SetCellStr(sheet, cell, h); err != nil {
			return err
		}
	}
	last, _ := excelize.ColumnNumberToName(len(header))
	if err := x.f.SetCellStyle(sheet, "A1", last+"1", x.styles.header); err != nil {
		return err
	}
	for _, i := range num {
		cell, _ := excelize.CoordinatesToCellName(i+1, 1)
		if err := x.f.SetCellStyle(sheet, cell, cell, x.styles.headerNum); err != nil {
			return err
		}
	}
	for i, w := range widths {
		col, _ := excelize.ColumnNumberToName(i + 1)
		if err := x.f.SetColWidth(sheet, col, col, w); err != nil {
			return err
		}
	}
	hdr := make([]any, len(header))
	all := make([]colKind, len(header))
	for i, h := range header {
		hdr[i], all[i] = h, colWrap
	}
	if h := rowHeight(hdr, all, boldWidths(widths)); h > 0 {
		return x.f.SetRowHeight(sheet, 1, h)
	}
	return nil
}

// boldWidths are column widths as bold header text fills them (wider letters).
func boldWidths(w []float64) []float64 {
	out := make([]float64, len(w))
	for i, v := range w {
		out[i] = v * 0.75
	}
	return out
}

// setRow writes one row with the normal API, mapping values like the stream helpers:
// strings as explicit string cells (clipped to a cell), numbers as numbers, styled
// cells (dates, amounts) as styled numbers or text.
func (x *xlsxWriter) setRow(sheet string, row int, vals []any) error {
	for i, v := range vals {
		cell, _ := excelize.CoordinatesToCellName(i+1, row)
		var err error
		switch v := v.(type) {
		case nil:
		case string:
			err = x.f.SetCellStr(sheet, cell, clip(v))
		case int:
			err = x.f.SetCellInt(sheet, cell, int64(v))
		case int64:
			err = x.f.SetCellInt(sheet, cell, v)
		case float64:
			err = x.f.SetCellFloat(sheet, cell, v, -1, 64)
		case excelize.Cell:
			switch cv := v.Value.(type) {
			case float64:
				err = x.f.SetCellFloat(sheet, cell, cv, -1, 64)
			case int64:
				err = x.f.SetCellInt(sheet, cell, cv)
			case int:
				err = x.f.SetCellInt(sheet, cell, int64(cv))
			case string:
				err = x.f.SetCellStr(sheet, cell, clip(cv))
			default:
				err = fmt.Errorf("sheet %s cell %s: unsupported value %T", sheet, cell, cv)
			}
			if err == nil {
				err = x.f.SetCellStyle(sheet, cell, cell, v.StyleID)
			}
		default:
			err = fmt.Errorf("sheet %s cell %s: unsupported value %T", sheet, cell, v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (x *xlsxWriter) issued() error {
	header := IssuedHeader()
	s, err := x.stream(SheetIssued, header, sheetLayout{widths: []float64{18, 10, 10, 22, 22, 11, 10, 18, 18},
		kinds: kinds(len(header), nil, []int{1, 2, 7, 8}), filter: true}, len(x.r.IssuedCALs))
	if err != nil {
		return err
	}
	for i := range x.r.IssuedCALs {
		c := &x.r.IssuedCALs[i]
		s.add(c.Server, c.LicenseID, c.KeyPackID, txt(c.Computer), txt(c.User), c.Status, yesNo(c.Temporary),
			x.date(c.Issued), x.date(c.Expires))
	}
	return s.flush()
}

// drift lists what changed since the previous run: new and resolved findings. Findings
// that persist are counted in one line, not listed (the Findings sheet shows them with
// status persisting); the first run says there is no baseline.
func (x *xlsxWriter) drift() error {
	d := x.r.Drift
	if d != nil && d.PreviousRunID == "" {
		d = nil // history without an earlier run: every finding is new, nothing changed
	}
	un := x.r.uncollectedHosts()
	var newRes []*rules.Result
	var newMissing []string
	var resolved []*rules.Result
	persisting := 0 // as the Findings sheet lists them: an uncollected host's unchecked rules left out
	if d != nil {
		byID := make(map[string]*rules.Result, len(x.r.Results))
		for i := range x.r.Results {
			byID[x.r.Results[i].ID] = &x.r.Results[i]
		}
		for _, id := range d.New {
			switch res := byID[id]; {
			case res == nil:
				newMissing = append(newMissing, id)
			case !unchecked(res, un): // an uncollected host's unchecked rules are no change to list
				newRes = append(newRes, res)
			}
		}
		for i := range d.Resolved {
			resolved = append(resolved, &d.Resolved[i])
		}
		for _, id := range d.Persisting {
			if res := byID[id]; res == nil || !unchecked(res, un) {
				persisting++
			}
		}
	}
	n := 1
	if d != nil {
		n = len(newRes) + len(newMissing) + len(resolved) + len(x.r.Changes) + 1
	}
	header := DriftHeader()
	s, err := x.stream(SheetDrift, header, sheetLayout{widths: []float64{11, 13, 15, 9, 26, 14, 70},
		kinds: kinds(len(header), []int{4, 6}, nil), filter: true}, n)
	if err != nil {
		return err
	}
	if d == nil {
		s.add("no baseline", nil, nil, nil, nil, nil, "No previous run in history: this run is the baseline; drift (new and resolved findings) is shown from the next run on.")
		return s.flush()
	}
	row := func(change string, res *rules.Result) {
		_, group := subjectCols(res.Subject)
		s.add(change, res.ID, res.RuleID, res.Severity.String(), res.Subject.String(), txt(group), txt(res.Message))
	}
	for _, res := range newRes {
		row("new", res)
	}
	for _, id := range newMissing {
		s.add("new", id, nil, nil, nil, nil, "finding not in this run's results")
	}
	for _, res := range resolved {
		row("resolved", res)
	}
	for _, c := range x.r.Changes {
		var msg string
		switch {
		case c.Before == "":
			msg = "added: " + c.After
		case c.After == "":
			msg = "removed (was " + c.Before + ")"
		default:
			msg = c.Before + " → " + c.After
		}
		s.add(strings.ReplaceAll(c.Kind, "_", " "), nil, nil, nil, c.Subject, nil, msg)
	}
	s.add("unchanged", nil, nil, nil, nil, nil, fmt.Sprintf("%d %s still open since run %s (%s UTC): counted, not listed; the Findings sheet shows them with status persisting.",
		persisting, plural(persisting, "finding"), d.PreviousRunID, d.PreviousAt.UTC().Format("2006-01-02 15:04")))
	return s.flush()
}

func (x *xlsxWriter) waivers() error {
	sh, header := SheetWaivers, WaiversHeader()
	widths := []float64{12, 15, 24, 16, 16, 12, 44, 18, 8, 8, 10, 10}
	if err := x.f.SetColStyle(sh, "A:L", x.styles.top); err != nil {
		return err
	}
	if err := x.header(sh, header, widths, []int{7, 10, 11}); err != nil {
		return err
	}
	for i, w := range x.r.Waivers {
		if err := x.setRow(sh, i+2, []any{w.ID, w.RuleID, txt(w.Scope), txt(w.Owner), txt(w.Approver), txt(w.Ticket),
			txt(w.Reason), x.date(w.Expires), yesNo(w.Expired), yesNo(w.Applied > 0), w.Applied, w.Matched}); err != nil {
			return err
		}
	}
	last := len(x.r.Waivers) + 1
	if err := x.styleColumns(sh, 2, last, map[int]int{3: x.styles.wrap, 7: x.styles.wrap}); err != nil {
		return err
	}
	if err := x.fitRows(sh, 2, last, widths, []int{2, 6}); err != nil {
		return err
	}
	if err := x.dimension(sh, len(header), last); err != nil {
		return err
	}
	if err := x.f.AutoFilter(sh, fmt.Sprintf("A1:L%d", last), nil); err != nil {
		return err
	}
	if err := x.printSetup(sh, len(header), last, 1, 0); err != nil {
		return err
	}
	return x.f.SetPanes(sh, &excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"})
}

func (x *xlsxWriter) coverage() error {
	c := x.r.Coverage
	header := CoverageHeader()
	s, err := x.stream(SheetCoverage, header, sheetLayout{widths: []float64{18, 10, 16, 10, 15, 56, 9, 10, 18, 44},
		kinds: kinds(len(header), []int{2, 5, 9}, []int{6, 8}), filter: true}, len(c.Hosts))
	if err != nil {
		return err
	}
	for _, h := range c.Hosts {
		var se []string
		for _, e := range h.SectionErrors {
			se = append(se, e.Section+": "+e.Message)
		}
		var att any
		if h.Attempts > 0 {
			att = h.Attempts
		}
		msg := h.Message
		if h.NotChecked > 0 {
			msg = strings.TrimPrefix(msg+fmt.Sprintf(" (%d rule %s not checked for this host: counted here, not listed on Findings)",
				h.NotChecked, plural(h.NotChecked, "result")), " ")
		}
		s.add(h.Name, txt(h.Group), txt(strings.Join(h.Roles, ", ")), string(h.Status), txt(string(h.FailureClass)),
			txt(msg), att, txt(h.Collector), x.date(&h.CollectedAt), txt(strings.Join(se, "\n")))
	}
	return s.flush()
}

// AboutText returns the "how to read" block at the top of the About sheet.
func AboutText() []string {
	return []string{
		"How to read this workbook",
		"Summary: the verdict and why, scope, findings by severity, CAL position and true-up cost, the run's identity, waivers in force: one printed page.",
		"Findings: one row per rule × subject that did not pass (fail, or error = evidence missing on a collected host). A host that was not collected is one RDS-COLLECT finding; its unchecked rules are counted on Coverage. Status: new, persisting, waived, expired_waiver.",
		"Hosts: each session host's licensing configuration in all three views (Group Policy, local registry, WMI) and the effective one.",
		"License Servers: key packs per server. 'unlimited' marks counts read as 4294967295 or -1; 'unknown' marks counts not read.",
		"CAL Position: per CAL type and version: entitled (ledger), installed, issued/used, shortfall and surplus (never netted), true-up cost in the ledger's currency, and where each usage figure comes from.",
		"Issued CALs: Per Device CALs issued by the license servers. Drift: what changed since the previous run (persisting findings counted, not listed). Waivers: every waiver and whether it applied.",
		"Coverage: every targeted host, collected or the failure class. A host that was not collected is never counted as compliant.",
		"Compliance score: " + ScoreFormula + ".",
		"All times are UTC. Text read from hosts is stored as text and never evaluated. A text longer than a cell holds (32,767 characters) is cut with a visible marker; report.json and the evidence keep it whole.",
		"Integrity: manifest.json in the run directory holds the SHA-256 of report.json, report.xlsx and every evidence file (optionally signed: manifest.sig); check it with `rdsaudit verify RUN_DIR`. A workbook cannot hold its own hash, so the evidence files' hashes are listed below.",
	}
}

// identity is the run's identity as both the Summary and About print it.
func (x *xlsxWriter) identity() [][]any {
	r := x.r
	eval := "taken from the clock when the rules ran"
	if r.Run.Pinned {
		eval = "pinned by --as-of"
	}
	window := any("no host collected")
	var windowTo any
	if w := r.Run.CollectionWindow; w != nil {
		window, windowTo = x.date(&w.Earliest), x.date(&w.Latest)
	}
	key := "unsigned: manifest.json hashes prove integrity, not who produced the run"
	if r.Run.SigningKey != "" {
		key = r.Run.SigningKey
	}
	rows := [][]any{
		{"Run ID", r.Run.ID},
		{"Evaluated at (UTC)", x.date(&r.Run.EvaluatedAt), eval},
		{"Collection window (UTC)", window, windowTo},
		{"Started / finished (UTC)", x.date(&r.Run.StartedAt), x.date(&r.Run.FinishedAt)},
		{"Rule set", "version " + r.Run.RuleSetVersion, txt(r.Run.RuleSetHash)},
		{"Tool version", txt(r.Run.ToolVersion), "collector: " + r.Run.Collector},
		{"Config hash", txt(r.Run.ConfigHash)},
		{"Signing key", key},
	}
	if p := r.Run.Partial; p != nil {
		rows = append(rows, []any{"Run status", "PARTIAL: " + p.Summary()})
	}
	return rows
}

func (x *xlsxWriter) about() error {
	r, about := x.r, AboutText()
	ident := x.identity()
	rows := len(about) + 2 + len(ident) + 3 + len(r.Catalogue) + 3 + len(r.Evidence)
	header := []string{"rdsaudit report " + r.Run.ID, "", "", "", "", ""}
	s, err := x.stream(SheetAbout, header, sheetLayout{widths: []float64{22, 12, 36, 56, 56, 30},
		kinds: kinds(len(header), []int{2, 3, 4, 5}, nil)}, rows)
	if err != nil {
		return err
	}
	// The text rows span the sheet: merged A:F, wrapped, as tall as their text.
	for _, t := range about {
		s.row++
		cell := fmt.Sprintf("A%d", s.row)
		lines := 1 + utf16Len(t)/200
		if s.err == nil {
			s.err = s.sw.SetRow(cell, []any{excelize.Cell{StyleID: x.styles.wrap, Value: t}}, excelize.RowOpts{Height: 15 * float64(lines)})
		}
		if s.err == nil {
			s.err = s.sw.MergeCell(cell, fmt.Sprintf("F%d", s.row))
		}
	}
	s.add()
	s.add(excelize.Cell{StyleID: x.styles.bold, Value: "Run identity"})
	for _, row := range ident {
		s.add(row...)
	}
	s.add()
	s.add(excelize.Cell{StyleID: x.styles.bold, Value: "Rule catalogue"})
	hdr := func(h ...string) {
		vals := make([]any, len(h))
		for i, v := range h {
			vals[i] = excelize.Cell{StyleID: x.styles.header, Value: v}
		}
		s.add(vals...)
	}
	hdr("Rule ID", "Severity", "Title", "Rationale", "Remediation", "References")
	for _, ri := range r.Catalogue {
		s.add(ri.ID, ri.Severity.String(), txt(ri.Title), txt(ri.Rationale), txt(ri.Remediation), txt(strings.Join(ri.References, "\n")))
	}
	s.add()
	s.add(excelize.Cell{StyleID: x.styles.bold, Value: "Evidence files"})
	hdr("Host", "Size (bytes)", "Path", "SHA-256")
	for _, e := range r.Evidence {
		s.add(e.Host, e.Size, e.Path, e.SHA256)
	}
	return s.flush()
}

// SeverityRow counts one severity's rows on the Findings sheet, as the Summary shows
// them: Listed = Failed + Waived + NotChecked.
type SeverityRow struct {
	Severity                           rules.Severity
	Listed, Failed, Waived, NotChecked int
}

// FindingsBySeverity counts the Findings sheet's rows by severity, critical first.
func (r *Report) FindingsBySeverity() []SeverityRow {
	out := make([]SeverityRow, rules.SevCritical+1)
	for i := range out {
		out[i].Severity = rules.SevCritical - rules.Severity(i)
	}
	for _, res := range r.Findings() {
		if res.Severity < rules.SevInfo || res.Severity > rules.SevCritical {
			continue
		}
		c := &out[rules.SevCritical-res.Severity]
		c.Listed++
		switch {
		case res.Outcome == rules.Error:
			c.NotChecked++
		case res.Waived:
			c.Waived++
		default:
			c.Failed++
		}
	}
	return out
}

// summaryWidths are the Summary's column widths (A..H): 152 characters, one landscape
// A4 or Letter page wide.
var summaryWidths = []float64{38, 12, 12, 12, 12, 12, 14, 40}

// summaryPage lays out the Summary row by row with the normal API: each helper writes
// into the current row; next moves on. The first error sticks.
type summaryPage struct {
	x   *xlsxWriter
	row int
	err error
}

func (p *summaryPage) next() { p.row++ }

func (p *summaryPage) ref(col string) string { return fmt.Sprintf("%s%d", col, p.row) }

// put writes values from column A.
func (p *summaryPage) put(vals ...any) {
	if p.err == nil {
		p.err = p.x.setRow(SheetSummary, p.row, vals)
	}
}

// style styles columns from..to of the current row.
func (p *summaryPage) style(from, to string, st int) {
	if p.err == nil {
		p.err = p.x.f.SetCellStyle(SheetSummary, p.ref(from), p.ref(to), st)
	}
}

// span writes a text across columns from..to (merged) and makes the row tall enough
// for its wrapped lines (merged cells never autofit).
func (p *summaryPage) span(from, to, text string, st int) {
	if p.err != nil {
		return
	}
	f, sh := p.x.f, SheetSummary
	if p.err = f.SetCellStr(sh, p.ref(from), clip(text)); p.err != nil {
		return
	}
	if from != to {
		if p.err = f.MergeCell(sh, p.ref(from), p.ref(to)); p.err != nil {
			return
		}
	}
	if p.err = f.SetCellStyle(sh, p.ref(from), p.ref(from), st); p.err != nil {
		return
	}
	width := 0.0
	a, _ := excelize.ColumnNameToNumber(from)
	b, _ := excelize.ColumnNameToNumber(to)
	for c := a; c <= b; c++ {
		width += summaryWidths[c-1]
	}
	lines := 1 + int(float64(utf16Len(text))/(width*1.15))
	if h, _ := f.GetRowHeight(sh, p.row); lines > 1 && 15*float64(lines) > h {
		p.err = f.SetRowHeight(sh, p.row, 15*float64(lines))
	}
}

// gap is a thin empty row between sections.
func (p *summaryPage) gap() {
	if p.err == nil {
		p.err = p.x.f.SetRowHeight(SheetSummary, p.row, 6)
	}
	p.next()
}

// section writes a section's header row: the first cell and the text columns (by
// name) left-aligned, the number columns' headers right-aligned over their numbers.
func (p *summaryPage) section(h ...string) {
	textCol := map[string]bool{"": true, "Rule": true, "Scope": true, "Usage figure: source, date": true, "Applied": true}
	for i, v := range h {
		col, _ := excelize.ColumnNumberToName(i + 1)
		st := p.x.styles.headerNum
		if i == 0 || textCol[v] {
			st = p.x.styles.header
		}
		p.span(col, col, v, st)
	}
	p.next()
}

// shortUsage is a usage figure's source and date in a few words, for the Summary.
func (x *xlsxWriter) shortUsage(pr PositionRow) string {
	src := pr.UsageSource
	if strings.HasPrefix(src, "issued") {
		return "issued, key packs read " + x.lsCollected()
	}
	if strings.HasPrefix(src, "directory") {
		if pr.UsageLowerBound {
			return "Active Directory, read " + x.dirRead() + "; AT LEAST this many: some holders could not be counted (CAL Position note)"
		}
		return "Active Directory, read " + x.dirRead()
	}
	src = strings.TrimSuffix(strings.TrimPrefix(src, "used (existing Per User reports: "), ")")
	var out []string
	for _, part := range strings.Split(src, "; ") {
		server, rest, ok := strings.Cut(part, ": ")
		_, when, found := strings.Cut(rest, " generated ")
		if !ok || !found {
			out = append(out, part)
			continue
		}
		out = append(out, "Per User report "+strings.TrimSuffix(when, " UTC")+" ("+server+")")
	}
	return strings.Join(out, "; ")
}

// summary writes the one-page Summary an auditor signs and a finance controller reads:
// verdict and why, scope, findings by severity, CAL position and true-up cost,
// unlicensed use, the run's identity, waivers in force.
func (x *xlsxWriter) summary() error {
	f, sh, r := x.f, SheetSummary, x.r
	for i, w := range summaryWidths {
		col, _ := excelize.ColumnNumberToName(i + 1)
		if err := f.SetColWidth(sh, col, col, w); err != nil {
			return err
		}
	}
	// Every cell top-aligned, so a label stays level with its wrapped text.
	if err := f.SetColStyle(sh, "A:H", x.styles.top); err != nil {
		return err
	}
	p := &summaryPage{x: x, row: 1}
	st := &x.styles

	p.put("RDS CAL licensing audit")
	p.style("A", "A", st.title)
	p.span("B", "H", "run "+r.Run.ID+", evaluated "+r.Run.EvaluatedAt.UTC().Format("2006-01-02 15:04 UTC"), st.bold)
	p.next()
	p.gap()

	// Verdict, in words, against fail_on, and why.
	v := r.Verdict()
	p.put("Verdict", v.Word(), nil, nil, nil, "against fail_on", v.FailOn.String())
	if p.err == nil {
		p.err = f.MergeCell(sh, p.ref("B"), p.ref("E"))
	}
	vs := st.verdictFail
	if v.Status == VerdictPass {
		vs = st.verdictPass
	}
	p.style("B", "E", vs)
	p.style("A", "A", st.bold)
	p.style("G", "G", st.bold)
	if p.err == nil {
		p.err = f.SetRowHeight(sh, p.row, 24)
	}
	p.next()
	for i, reason := range v.Reasons() {
		if i == 0 {
			p.put("Why")
			p.style("A", "A", st.bold)
		}
		p.span("B", "H", reason, st.wrap)
		p.next()
	}
	if pr := r.Run.Partial; pr != nil {
		p.put("Run status")
		p.span("B", "H", "PARTIAL: "+pr.Summary(), st.bold)
		p.next()
	}
	p.gap()

	// Scope.
	p.section("Scope", "Hosts")
	p.put("Targeted", r.Coverage.Targeted)
	p.next()
	p.put("Collected", r.Coverage.Collected)
	p.next()
	p.put("Not collected", r.Coverage.Targeted-r.Coverage.Collected)
	byClass := "none"
	if v.NotCollected != "" {
		byClass = "by failure class: " + v.NotCollected + " (one finding each, RDS-COLLECT-001 or -002; see Coverage)"
	}
	p.span("C", "H", byClass, st.wrap)
	p.next()
	score := any("n/a")
	if r.Score.Value != nil {
		score = *r.Score.Value
	}
	p.put("Compliance score (%)", score)
	p.span("C", "H", fmt.Sprintf("results passed %d, failed %d, not checked %d, waived %d (formula on About)",
		r.Score.Passed, r.Score.Failed, r.Score.Errors, r.Score.Waived), st.note)
	p.next()
	p.gap()

	// Findings by severity: exactly the Findings sheet's rows.
	p.section("Findings by severity", "Listed", "Failed", "Waived", "Not checked")
	var tot SeverityRow
	for _, c := range r.FindingsBySeverity() {
		p.put(c.Severity.String(), c.Listed, c.Failed, c.Waived, c.NotChecked)
		p.next()
		tot.Listed, tot.Failed, tot.Waived, tot.NotChecked = tot.Listed+c.Listed, tot.Failed+c.Failed, tot.Waived+c.Waived, tot.NotChecked+c.NotChecked
	}
	p.put("Total (rows on Findings)", tot.Listed, tot.Failed, tot.Waived, tot.NotChecked)
	p.style("A", "E", st.bold)
	p.next()
	p.span("A", "H", fmt.Sprintf("Counted as the Findings sheet lists them: one row per rule and subject that did not pass, that is failures (waived ones included) and rules that could not be checked on a collected host. "+
		"A host that was not collected is one RDS-COLLECT finding; its %d rule results that could not be checked are counted on Coverage, not listed. Against fail_on = %s: %d unwaived %s.",
		r.Coverage.NotChecked, v.FailOn, v.Blocking, plural(v.Blocking, "failure")), st.note)
	p.next()
	p.gap()

	// CAL position per type and version, totals per type, true-up cost, unlicensed use.
	if len(r.Position) == 0 {
		p.put("CAL position")
		p.style("A", "A", st.bold)
		p.span("B", "H", "no CAL position: no entitlements ledger and no key packs", st.wrap)
		p.next()
	} else {
		p.section("CAL position", "Entitled", "Installed", "In use", "Shortfall", "Unit price", "True-up cost", "Usage figure: source, date")
		var unpricedRows []string
		costs := map[string]float64{}
		var curOrder []string
		var short, inUse int64
		for _, pr := range r.Position {
			sf := int64(0)
			if pr.Shortfall != nil {
				sf = max(*pr.Shortfall, 0)
			}
			short += sf
			if pr.Usage != nil {
				inUse += *pr.Usage
			}
			price, e1 := x.money(pr.UnitCost, pr.Currency)
			cost, e2 := x.money(pr.EstimatedCost, pr.Currency)
			if p.err == nil {
				p.err = errors.Join(e1, e2)
			}
			if unpriced(pr) {
				cost = excelize.Cell{StyleID: st.flag, Value: "NOT PRICED"}
				unpricedRows = append(unpricedRows, fmt.Sprintf("%s (%d short)", CALLabel(pr.CALType, pr.Version), sf))
			}
			if pr.EstimatedCost != nil {
				if _, ok := costs[pr.Currency]; !ok {
					curOrder = append(curOrder, pr.Currency)
				}
				costs[pr.Currency] += *pr.EstimatedCost
			}
			p.put(CALLabel(pr.CALType, pr.Version), intp(pr.Entitled), count(pr.Installed), intp(pr.Usage), sf, price, cost)
			p.span("H", "H", x.shortUsage(pr), st.wrap)
			p.next()
		}
		for _, t := range positionByType(r.Position) {
			var cost any
			if t.costed && !t.mixedCur {
				c := t.cost
				var e error
				cost, e = x.money(&c, t.currency)
				if p.err == nil {
					p.err = e
				}
			}
			note := "this CAL type only: never netted across types or versions"
			if t.unpriced {
				note = "this CAL type only, never netted; a shortfall is NOT PRICED"
				if cost == nil {
					cost = excelize.Cell{StyleID: st.flag, Value: "NOT PRICED"}
				}
			}
			p.put(calTypeLabel(t.calType), t.entitled, count(&t.installed), t.usage, t.short, nil, cost)
			p.style("A", "A", st.bold)
			p.span("H", "H", note, st.note)
			p.next()
		}
		p.put("True-up cost")
		p.style("A", "A", st.bold)
		switch len(curOrder) {
		case 0:
			if short == 0 {
				p.put("True-up cost", "0 (no shortfall)")
			} else {
				p.put("True-up cost", "none priced")
			}
		case 1:
			c := costs[curOrder[0]]
			cell, e := x.money(&c, curOrder[0])
			if p.err == nil {
				p.err = e
			}
			p.put("True-up cost", cell)
		default:
			var amounts []string
			for _, c := range curOrder {
				amounts = append(amounts, fmt.Sprintf("%.2f %s", costs[c], c))
			}
			p.put("True-up cost", strings.Join(amounts, "; "))
		}
		trueUp := "the priced shortfalls at the ledger's unit prices"
		if len(unpricedRows) > 0 {
			trueUp += "; NOT PRICED and not in this sum (no unit price in the ledger): " + strings.Join(unpricedRows, ", ")
		}
		p.span("C", "H", trueUp, st.wrap)
		p.next()
		p.put("Unlicensed use")
		p.style("A", "A", st.bold)
		if inUse > 0 {
			pct := float64(short) / float64(inUse)
			p.put("Unlicensed use", excelize.Cell{StyleID: st.percent, Value: pct})
			side := "below it"
			if pct > 0.05 {
				side = "ABOVE it"
			}
			p.span("C", "H", fmt.Sprintf("of CALs in use: %d short of %d in use (shortfalls per type and version; no surplus set against them). Vendors' audit clauses typically trigger at 5%%: %s.",
				short, inUse, side), st.wrap)
		} else {
			p.span("B", "H", "n/a: no CAL in use", st.wrap)
		}
		p.next()
	}
	p.gap()

	// The run's identity.
	p.section("Run identity", "", "", "", "", "", "", "")
	for _, id := range x.identity() {
		p.put(id[0])
		cols := [][2]string{{"B", "H"}}
		if len(id) == 3 {
			cols = [][2]string{{"B", "C"}, {"D", "H"}}
		}
		for i, val := range id[1:] {
			from, to := cols[i][0], cols[i][1]
			switch c := val.(type) {
			case string:
				p.span(from, to, c, st.wrap)
			case excelize.Cell:
				if p.err == nil {
					p.err = f.SetCellFloat(sh, p.ref(from), c.Value.(float64), -1, 64)
				}
				if p.err == nil {
					p.err = f.MergeCell(sh, p.ref(from), p.ref(to))
				}
				p.style(from, from, st.dateLeft)
			}
		}
		p.next()
	}
	p.gap()

	// Waivers in force (not expired).
	p.section("Waivers in force", "Rule", "Scope", "", "", "", "Expires", "Applied")
	var inForce []Waiver
	for _, w := range r.Waivers {
		if !w.Expired {
			inForce = append(inForce, w)
		}
	}
	const maxWaivers = 5
	for i, w := range inForce {
		if i == maxWaivers {
			p.put(fmt.Sprintf("and %d more on the Waivers sheet", len(inForce)-maxWaivers))
			p.next()
			break
		}
		p.put(w.ID, w.RuleID)
		p.span("C", "F", w.Scope, st.wrap)
		if w.Expires != nil {
			p.put(w.ID, w.RuleID, nil, nil, nil, nil, excelize.Cell{StyleID: st.day, Value: serial(*w.Expires)})
		}
		p.span("H", "H", fmt.Sprintf("waives %d of %d in scope; approved by %s", w.Applied, w.Matched, orDash(w.Approver)), st.wrap)
		p.next()
	}
	if len(inForce) == 0 {
		p.put("none")
		p.next()
	}
	if p.err != nil {
		return p.err
	}
	if err := x.dimension(sh, len(summaryWidths), p.row-1); err != nil {
		return err
	}
	return x.printSetup(sh, len(summaryWidths), p.row-1, 0, 1)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func quote(sheet string) string { return "'" + strings.ReplaceAll(sheet, "'", "''") + "'" }
