package report

import (
	"fmt"
	"strings"

	"github.com/xuri/excelize/v2"
)

// SheetPerUser is the Per User CALs sheet (issue 15).
const SheetPerUser = "Per User CALs"

// PerUserHeader is the Per User CALs sheet's first table: distinct users per domain ×
// version × license server × state.
func PerUserHeader() []string {
	return []string{"Domain", "CAL version", "msTSLicenseVersion (raw)", "License server (msTSManagingLS)", "State", "Users"}
}

// perUser writes the sheet: the counts table, then per version (each user once), the
// reclaim candidates and each domain's coverage. Without a directory it says so; with
// a domain not read it says the figures are unknown, never zero.
func (x *xlsxWriter) perUser() error {
	pu := x.r.PerUser
	var rows [][]any
	countRows := 0 // rows of the first table, under its header
	hdr := func(h ...string) {
		row := make([]any, len(h))
		for i, s := range h {
			row[i] = excelize.Cell{StyleID: x.styles.header, Value: s}
		}
		rows = append(rows, row)
	}
	switch {
	case pu == nil || pu.Summary == nil:
		rows = append(rows, []any{"No directory configured (directory.domains): Per User CALs are not read from Active Directory."})
	default:
		s := pu.Summary
		if !s.Known() {
			rows = append(rows, []any{"UNKNOWN", "Per-user figures are unknown: not every domain was read (see Directory coverage below). Counts shown are from the domains read only."})
		}
		countRows = len(s.Rows)
		for _, r := range s.Rows {
			rows = append(rows, []any{r.Domain, r.Version, txt(r.RawVersion), txt(r.LicenseServer), r.State, r.Users})
		}
		rows = append(rows, nil)
		hdr("Per version (each user once)", "Raw values", "Active", "Expired", "Unknown expiry")
		for _, v := range s.Versions {
			rows = append(rows, []any{v.Version, txt(strings.Join(v.RawVersions, ", ")), v.Active, v.Expired, v.Unknown})
		}
		if s.IgnoredSlots > 0 {
			rows = append(rows, []any{fmt.Sprintf("%d attribute slots hold a version or license server without msTSExpireDate: not counted as CALs", s.IgnoredSlots)})
		}
		rows = append(rows, nil)
		hdr("Reclaim candidate (domain)", "User", "DN", "Active CAL versions", "Reason", "Last logon")
		for _, c := range s.Reclaim {
			rows = append(rows, []any{c.Domain, txt(c.User), txt(c.DN), txt(strings.Join(c.Versions, ", ")), txt(c.Reason), x.date(c.LastLogon)})
		}
		if len(s.Reclaim) == 0 {
			rows = append(rows, []any{"none"})
		}
		rows = append(rows, nil)
		hdr("Directory coverage (domain)", "Status", "Failure class", "Message", "Server", "Collected at", "Holders", "Evidence")
		for _, d := range s.Domains {
			at := d.CollectedAt
			rows = append(rows, []any{d.Domain, d.Status, txt(d.Class), txt(d.Message), txt(d.Server), x.date(&at), d.Holders, txt(d.Evidence)})
		}
		rows = append(rows, []any{"Evaluated at", x.date(&s.EvaluatedAt)})
		rows = append(rows, []any{"CAL versions: only msTSLicenseVersion 393216 (2008) and 393218 (2012) are mapped (community data, domain.md §8); every other value is \"unknown version\" with its raw value."})
	}
	// The dimension and print area span the widest block (coverage: 8 columns); the
	// AutoFilter covers the first table (the counts) only.
	lay := sheetLayout{widths: []float64{26, 30, 24, 30, 40, 24, 10, 40},
		kinds: []colKind{colText, colText, colWrap, colWrap, colWrap, colText, colNum, colWrap},
		cols:  8, filter: true, filterRows: max(countRows, 1)}
	sh, err := x.stream(SheetPerUser, PerUserHeader(), lay, len(rows))
	if err != nil {
		return err
	}
	for _, r := range rows {
		if r == nil {
			sh.add()
			continue
		}
		sh.add(r...)
	}
	return sh.flush()
}
