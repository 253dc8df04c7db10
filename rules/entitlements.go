package rules

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
)

// Entitlement is one ledger row: CALs the organisation is entitled to.
//
// CSV (header required, columns in any order; unit_price and currency optional):
//
//	cal_type,version,quantity,agreement,unit_price,currency
//	per_user,2019,250,EA-1234567,112.50,EUR
//
// YAML: a list under `entitlements:` with the same field names.
//
// cal_type is per_user or per_device; version is a Windows Server release ("2012",
// "2016", "2019", "2022", "2025"; "2008" and "2008 R2") mapped to ProductVersionID;
// quantity a non-negative integer; unit_price a decimal with at most two decimals.
type Entitlement struct {
	CALType   string  `json:"cal_type" yaml:"cal_type"`
	Version   string  `json:"version" yaml:"version"`
	VersionID int64   `json:"version_id" yaml:"-"`
	Quantity  int64   `json:"quantity" yaml:"quantity"`
	Agreement string  `json:"agreement" yaml:"agreement"`
	UnitPrice *Amount `json:"unit_price,omitempty" yaml:"-"`
	Currency  string  `json:"currency,omitempty" yaml:"currency"`
	Source    string  `json:"source"` // file:line
}

// Amount is money in hundredths of the currency unit.
type Amount int64

func (a Amount) String() string {
	sign := ""
	if a < 0 {
		sign, a = "-", -a
	}
	return fmt.Sprintf("%s%d.%02d", sign, a/100, a%100)
}

// MarshalText writes the amount as a decimal.
func (a Amount) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText reads what MarshalText writes (a decimal, possibly negative).
func (a *Amount) UnmarshalText(b []byte) error {
	s := string(b)
	neg := strings.HasPrefix(s, "-")
	v, err := ParseAmount(strings.TrimPrefix(s, "-"))
	if err != nil {
		return err
	}
	if neg {
		v = -v
	}
	*a = v
	return nil
}

// ParseAmount parses a non-negative decimal with at most two decimals.
func ParseAmount(s string) (Amount, error) {
	s = strings.TrimSpace(s)
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || (dot && (len(frac) == 0 || len(frac) > 2)) {
		return 0, fmt.Errorf("bad amount %q (want e.g. 112.50)", s)
	}
	for len(frac) < 2 {
		frac += "0"
	}
	w, err1 := strconv.ParseUint(whole, 10, 40)
	f, err2 := strconv.ParseUint(frac, 10, 8)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad amount %q (want e.g. 112.50)", s)
	}
	return Amount(w*100 + f), nil
}

// LoadEntitlements reads a ledger file; .csv is CSV, .yaml/.yml YAML.
func LoadEntitlements(file string) ([]Entitlement, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read entitlements: %w", err)
	}
	switch {
	case strings.HasSuffix(strings.ToLower(file), ".csv"):
		return ParseEntitlementsCSV(file, data)
	case strings.HasSuffix(strings.ToLower(file), ".yaml"), strings.HasSuffix(strings.ToLower(file), ".yml"):
		return ParseEntitlementsYAML(file, data)
	}
	return nil, fmt.Errorf("%s: unknown ledger format (want .csv, .yaml or .yml)", file)
}

// ledgerColumns returns a ledger's columns (CSV) or fields (YAML); the first four are
// required.
func ledgerColumns() []string {
	return []string{"cal_type", "version", "quantity", "agreement", "unit_price", "currency"}
}

// ParseEntitlementsCSV parses a CSV ledger; errors name the file and line.
func ParseEntitlementsCSV(name string, data []byte) ([]Entitlement, error) {
	columns := ledgerColumns()
	r := csv.NewReader(bytes.NewReader(data))
	r.Comment = '#'
	r.TrimLeadingSpace = true
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty ledger (want a header %s)", name, strings.Join(columns, ","))
		}
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	hl, _ := r.FieldPos(0)
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		known := false
		for _, c := range columns {
			known = known || c == h
		}
		if !known {
			return nil, fmt.Errorf("%s:%d: unknown column %q (want %s)", name, hl, h, strings.Join(columns, ","))
		}
		if _, dup := col[h]; dup {
			return nil, fmt.Errorf("%s:%d: duplicate column %q", name, hl, h)
		}
		col[h] = i
	}
	for _, req := range columns[:4] {
		if _, ok := col[req]; !ok {
			return nil, fmt.Errorf("%s:%d: missing column %q", name, hl, req)
		}
	}
	var out []Entitlement
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		line, _ := r.FieldPos(0)
		if len(rec) != len(header) {
			return nil, fmt.Errorf("%s:%d: %d fields, header has %d", name, line, len(rec), len(header))
		}
		get := func(c string) string {
			if i, ok := col[c]; ok {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		e, err := makeEntitlement(get("cal_type"), get("version"), get("quantity"), get("agreement"), get("unit_price"), get("currency"))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, line, err)
		}
		e.Source = fmt.Sprintf("%s:%d", name, line)
		out = append(out, e)
	}
	return out, nil
}

// ParseEntitlementsYAML parses a YAML ledger (`entitlements:` list); errors name the
// file and line.
func ParseEntitlementsYAML(name string, data []byte) ([]Entitlement, error) {
	var doc struct {
		Entitlements []yaml.Node `yaml:"entitlements"`
	}
	if err := decodeYAML(name, "ledger", data, &doc); err != nil {
		return nil, err
	}
	columns := ledgerColumns()
	var out []Entitlement
	for _, n := range doc.Entitlements {
		if n.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s:%d: entitlement must be a mapping", name, n.Line)
		}
		row := map[string]string{} // column → value
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("%s:%d: %s must be a scalar", name, v.Line, k.Value)
			}
			if !slices.Contains(columns, k.Value) {
				return nil, fmt.Errorf("%s:%d: unknown field %q (want %s)", name, k.Line, k.Value, strings.Join(columns, ", "))
			}
			row[k.Value] = v.Value
		}
		e, err := makeEntitlement(row["cal_type"], row["version"], row["quantity"], row["agreement"], row["unit_price"], row["currency"])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, n.Line, err)
		}
		e.Source = fmt.Sprintf("%s:%d", name, n.Line)
		out = append(out, e)
	}
	return out, nil
}

func makeEntitlement(calType, version, qty, agreement, price, currency string) (Entitlement, error) {
	var e Entitlement
	switch strings.ToLower(calType) {
	case facts.CALPerUser, "per user", "user":
		e.CALType = facts.CALPerUser
	case facts.CALPerDevice, "per device", "device":
		e.CALType = facts.CALPerDevice
	default:
		return e, fmt.Errorf("cal_type %q: want per_user or per_device", calType)
	}
	e.Version = canonicalRelease(version)
	e.VersionID = facts.ReleaseCALVersion(e.Version)
	if e.VersionID == 0 {
		return e, fmt.Errorf("version %q: want a Windows Server release (2008, 2008 R2, 2012, 2016, 2019, 2022, 2025)", version)
	}
	n, err := strconv.ParseInt(qty, 10, 64)
	if err != nil || n < 0 {
		return e, fmt.Errorf("quantity %q: want a non-negative integer", qty)
	}
	e.Quantity = n
	e.Agreement = agreement
	if e.Agreement == "" {
		return e, fmt.Errorf("agreement is required (licence or agreement number)")
	}
	if price != "" {
		a, err := ParseAmount(price)
		if err != nil {
			return e, fmt.Errorf("unit_price: %v", err)
		}
		e.UnitPrice = &a
		if currency == "" {
			return e, fmt.Errorf("unit_price %s needs a currency", price)
		}
	}
	e.Currency = strings.ToUpper(currency)
	return e, nil
}

func canonicalRelease(v string) string {
	v = strings.TrimSpace(strings.TrimPrefix(strings.ToLower(strings.TrimSpace(v)), "windows server "))
	switch v {
	case "2008 r2", "2008r2":
		return "2008 R2"
	case "2012 r2", "2012r2":
		return "2012" // 2012 R2 CALs are 2012 CALs (ProductVersionID 4)
	}
	return v
}

// PositionRow is the CAL position for one CAL type × version.
type PositionRow struct {
	CALType   string `json:"cal_type"`
	Version   string `json:"version"` // Windows Server release, or "unknown(n)"
	VersionID int64  `json:"version_id"`
	Entitled  int64  `json:"entitled"`
	// Installed totals the non-built-in, non-temporary key packs on the audited license
	// servers; InstalledUnlimited when a pack reports an unlimited count.
	Installed          int64 `json:"installed"`
	InstalledUnlimited bool  `json:"installed_unlimited,omitempty"`
	Issued             int64 `json:"issued"`
	// Used is Per User usage from existing license-server reports (nil when none).
	Used *int64 `json:"used,omitempty"`
	// Usage is what the shortfall is computed from: Used when known, else Issued.
	Usage         int64    `json:"usage"`
	UsageSource   string   `json:"usage_source"`
	Shortfall     int64    `json:"shortfall"`
	Surplus       int64    `json:"surplus"`
	UnitPrice     *Amount  `json:"unit_price,omitempty"`
	Currency      string   `json:"currency,omitempty"`
	EstimatedCost *Amount  `json:"estimated_cost,omitempty"`
	Agreements    []string `json:"agreements,omitempty"`
	Sources       []string `json:"sources,omitempty"`
	// Complete: every license server in the inventory was collected, so the installed
	// and issued figures are totals rather than lower bounds.
	Complete bool `json:"complete"`
	// UsageLowerBound: Used comes from the directory, and some holders could not be
	// placed in it (a version mapped to no CAL release, or an unreadable expiry), so
	// usage may be higher (Notes say by what).
	UsageLowerBound bool     `json:"usage_lower_bound,omitempty"`
	Notes           []string `json:"notes,omitempty"`

	usedFrom []string // reportSource of each report Used adds up
}

// reportSource names the newest Per User report of a license server, with its date:
// "LS01: PerUserReport_20261001_030000.xml generated 2026-10-01 03:00 UTC".
func reportSource(ls *facts.Facts) string {
	rep := latestReport(ls.Holdings)
	if rep == nil {
		return ls.Host.Name
	}
	when := rep.GeneratedDate
	if t, err := facts.ParseDate(rep.GeneratedDate, ""); err == nil {
		when = t.UTC().Format("2006-01-02 15:04 UTC")
	}
	name := rep.FileName
	if name == "" {
		name = "report"
	}
	return ls.Host.Name + ": " + name + " generated " + when
}

type posKey struct {
	calType string
	version int64
}

func versionName(id int64) string {
	if n := facts.CALVersionName(&id); n != "" {
		return n
	}
	return fmt.Sprintf("unknown(%d)", id)
}

func (c *evalCtx) row(k posKey) *PositionRow {
	if i, ok := c.posIndex[k]; ok {
		return &c.position[i]
	}
	c.posIndex[k] = len(c.position)
	c.position = append(c.position, PositionRow{CALType: k.calType, VersionID: k.version, Version: versionName(k.version), Complete: c.lsDone})
	return &c.position[len(c.position)-1]
}

// buildPosition computes the CAL position per CAL type × version from the ledger, the
// key packs and the existing Per User reports.
func (c *evalCtx) buildPosition() {
	c.posIndex = map[posKey]int{}
	for _, e := range c.ent {
		r := c.row(posKey{e.CALType, e.VersionID})
		r.Entitled += e.Quantity
		r.Agreements = appendUnique(r.Agreements, e.Agreement)
		r.Sources = append(r.Sources, e.Source)
		if e.UnitPrice != nil {
			switch {
			case r.UnitPrice == nil && r.Currency == "":
				p := *e.UnitPrice
				r.UnitPrice, r.Currency = &p, e.Currency
			case r.Currency != e.Currency:
				r.Notes = appendUnique(r.Notes, "ledger rows use different currencies; no cost estimate")
				r.UnitPrice = nil
			case r.UnitPrice != nil && *r.UnitPrice != *e.UnitPrice:
				r.Notes = appendUnique(r.Notes, "ledger rows give different unit prices; the highest is used")
				if *e.UnitPrice > *r.UnitPrice {
					p := *e.UnitPrice
					r.UnitPrice = &p
				}
			}
		}
	}
	for _, ls := range c.lsList {
		if ls.Holdings == nil {
			continue
		}
		for _, kp := range ls.Holdings.KeyPacks {
			if kp.BuiltIn || kp.Temporary || kp.VersionID == nil ||
				(kp.CALType != facts.CALPerUser && kp.CALType != facts.CALPerDevice) {
				continue
			}
			r := c.row(posKey{kp.CALType, *kp.VersionID})
			switch {
			case kp.Total.Unlimited:
				r.InstalledUnlimited = true
			case kp.Total.Known:
				r.Installed += kp.Total.Value
			}
			if kp.Issued.Known && !kp.Issued.Unlimited {
				r.Issued += kp.Issued.Value
			}
		}
		src := reportSource(ls)
		for k, v := range perUserUsage(ls.Holdings) {
			r := c.row(k)
			if r.Used == nil {
				r.Used = new(int64)
			}
			*r.Used += v
			r.usedFrom = append(r.usedFrom, src)
		}
	}
	c.directoryUsage() // rules_peruser.go: directory figures replace the reports'
	for i := range c.position {
		r := &c.position[i]
		r.Usage, r.UsageSource = r.Issued, "issued (key packs)"
		if r.Used != nil {
			// Each figure names the report it comes from and its date (issue 11).
			r.Usage, r.UsageSource = *r.Used, "used (existing Per User reports: "+strings.Join(r.usedFrom, "; ")+")"
			if c.dirRows[posKey{r.CALType, r.VersionID}] {
				r.UsageSource = dirPositionSource
			}
		}
		if r.Usage > r.Entitled {
			r.Shortfall = r.Usage - r.Entitled
		} else {
			r.Surplus = r.Entitled - r.Usage
		}
		if r.Shortfall > 0 && r.UnitPrice != nil {
			cost := Amount(r.Shortfall) * *r.UnitPrice
			r.EstimatedCost = &cost
		}
		if !r.Complete {
			r.Notes = appendUnique(r.Notes, "license servers not collected: "+strings.Join(c.missLS, ", ")+"; figures are lower bounds")
		}
	}
	sort.SliceStable(c.position, func(i, j int) bool {
		a, b := c.position[i], c.position[j]
		if a.CALType != b.CALType {
			return a.CALType < b.CALType
		}
		return a.VersionID < b.VersionID
	})
	for i, r := range c.position {
		c.posIndex[posKey{r.CALType, r.VersionID}] = i
	}
}

// perUserUsage reads the newest existing report's Per User summary entries.
func perUserUsage(h *facts.Holdings) map[posKey]int64 {
	rep := latestReport(h)
	if rep == nil {
		return nil
	}
	out := map[posKey]int64{}
	for _, e := range rep.Summary {
		if e.TSCALType == nil || *e.TSCALType != 1 || e.ProductVersionID == nil || e.IssuedLicenses == nil {
			continue
		}
		out[posKey{facts.CALPerUser, *e.ProductVersionID}] += *e.IssuedLicenses
	}
	return out
}

// latestReport is the newest report by GeneratedDate (unparseable dates sort first), or
// nil.
func latestReport(h *facts.Holdings) *evidence.LicenseReport {
	var best *evidence.LicenseReport
	var bestT int64 = -1 << 62
	for i := range h.Reports {
		r := &h.Reports[i]
		t := int64(-1 << 61)
		if p, err := facts.ParseDate(r.GeneratedDate, ""); err == nil {
			t = p.Unix()
		}
		if best == nil || t >= bestT {
			best, bestT = r, t
		}
	}
	return best
}

func appendUnique(ss []string, s string) []string {
	for _, x := range ss {
		if x == s {
			return ss
		}
	}
	return append(ss, s)
}
