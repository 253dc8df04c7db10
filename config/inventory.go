package config

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// CSVColumns returns the columns an inventory CSV may have, in documentation order. The
// header row is required; only name is a required column; columns may come in any order.
func CSVColumns() []string {
	return []string{"name", "address", "port", "roles", "group", "tags", "credential"}
}

// hostNameRE is what a host name may look like: a NetBIOS or DNS name. Names also become
// evidence file names (<name>.json), so path separators and ".." are excluded.
var hostNameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*$`)

// Hosts returns the inventory: inline hosts first, then the CSV's rows, with defaults
// applied (address = name, port = transport port, credential = default_credential).
// Duplicate names (case-insensitive) and malformed rows are errors naming the file and
// line. Credential references are checked by Validate, not here.
func (c *Config) Hosts() ([]Host, error) {
	if c.hosts != nil {
		return cloneHosts(c.hosts), nil
	}
	hosts, probs := c.resolveHosts()
	if err := probs.err(); err != nil {
		return nil, err
	}
	c.hosts = hosts
	return cloneHosts(hosts), nil
}

func cloneHosts(hs []Host) []Host {
	out := make([]Host, len(hs))
	for i, h := range hs {
		h.Roles = append([]string(nil), h.Roles...)
		h.Tags = append([]string(nil), h.Tags...)
		out[i] = h
	}
	return out
}

// hostSpec is one host as written, before defaults.
type hostSpec struct {
	entry  HostEntry
	file   string
	line   int
	field  func(col string) string // field name for a problem about column col
	origin string
}

func (c *Config) resolveHosts() ([]Host, problems) {
	var probs problems
	var specs []hostSpec
	for i, e := range c.Inventory.Hosts {
		base := fmt.Sprintf("inventory.hosts[%d]", i)
		specs = append(specs, hostSpec{
			entry: e, file: c.file, line: c.lines[base],
			field: func(col string) string { return base + "." + col },
		})
	}
	if c.Inventory.File != "" {
		rows, ps := readInventoryCSV(c.Inventory.File)
		if ps != nil {
			for _, p := range ps {
				if p.File == "" { // the file itself could not be read
					p.File, p.Line, p.Field = c.file, c.lines["inventory.file"], "inventory.file"
					p.Origin = c.origins["inventory.file"]
				}
				probs.add(p)
			}
		}
		specs = append(specs, rows...)
	}

	validRoles := Roles()
	valid := map[string]bool{}
	for _, r := range validRoles {
		valid[r] = true
	}
	seen := map[string]string{} // lower-case name → source
	var hosts []Host
	for _, s := range specs {
		e := s.entry
		at := func(col, format string, args ...any) {
			line := s.line
			if s.file == c.file {
				if l, ok := c.lines[s.field(col)]; ok {
					line = l
				}
			}
			probs.add(Problem{File: s.file, Line: line, Field: s.field(col), Msg: fmt.Sprintf(format, args...)})
		}
		source := s.file
		if s.line > 0 {
			source = fmt.Sprintf("%s:%d", s.file, s.line)
		}
		ok := true
		switch {
		case e.Name == "":
			at("name", "required")
			ok = false
		case dnsBounds("host name", e.Name) != "":
			at("name", "%s", dnsBounds("host name", e.Name))
			ok = false
		case !hostNameRE.MatchString(e.Name):
			at("name", "invalid host name %q (letters, digits, '-', '_' and '.' only)", e.Name)
			ok = false
		default:
			key := strings.ToLower(e.Name)
			if first, dup := seen[key]; dup {
				at("name", "duplicate host %q (first defined at %s)", e.Name, first)
				ok = false
			} else {
				seen[key] = source
			}
		}
		if msg := dnsBounds("address", e.Address); msg != "" {
			at("address", "%s", msg)
			ok = false
		} else if e.Address != "" && !validAddress(e.Address) {
			at("address", "invalid address %q (a host name or IP address, without scheme, port or path)", e.Address)
			ok = false
		}
		if e.Port < 0 || e.Port > 65535 {
			at("port", "must be between 1 and 65535 (or 0 for the transport port), got %d", e.Port)
			ok = false
		}
		var roles []string
		if len(e.Roles) == 0 {
			at("roles", "at least one role required (%s)", strings.Join(validRoles, ", "))
			ok = false
		}
		for _, r := range e.Roles {
			switch {
			case !valid[r]:
				at("roles", "unknown role %q (valid: %s)", r, strings.Join(validRoles, ", "))
				ok = false
			case !contains(roles, r):
				roles = append(roles, r)
			}
		}
		if !ok {
			continue
		}
		h := Host{
			Name: e.Name, Address: e.Address, Port: e.Port, Roles: roles, Group: e.Group,
			Tags: append([]string(nil), e.Tags...), Credential: e.Credential, Source: source,
		}
		if h.Address == "" {
			h.Address = h.Name
		}
		if h.Port == 0 {
			h.Port = c.Transport.EffectivePort()
		}
		h.loc = location{file: s.file, field: s.field("credential"), line: s.line}
		if s.file == c.file {
			if l, ok := c.lines[h.loc.field]; ok {
				h.loc.line = l
			}
		}
		if h.Credential == "" {
			h.Credential = c.DefaultCredential
		}
		hosts = append(hosts, h)
	}
	return hosts, probs
}

// Host name bounds, as Windows resolves names: a DNS name of at most 253 characters
// (255 octets on the wire) in labels of at most 63. A name without a dot is resolved as
// a DNS host name too (DNS suffix search), whose label limit is 63: the NetBIOS limit of
// 15 is not imposed, since Windows derives the NetBIOS name by truncating the host name.
const (
	MaxHostName  = 253
	MaxHostLabel = 63
)

// dnsBounds says what is wrong with the length of a host name or address (what names
// it), or "" when it is within the DNS bounds. The value itself is never echoed: it may
// be megabytes long.
func dnsBounds(what, name string) string {
	if len(name) > MaxHostName {
		return fmt.Sprintf("%s of %d characters (%.20q…): at most %d, as in DNS", what, len(name), name[:20], MaxHostName)
	}
	if net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")) != nil {
		return ""
	}
	for _, l := range strings.Split(name, ".") {
		if len(l) > MaxHostLabel {
			return fmt.Sprintf("%s label of %d characters (%.20q…): at most %d between dots, as in DNS", what, len(l), l[:20], MaxHostLabel)
		}
	}
	return ""
}

// validAddress accepts a host name or an IP address (IPv6 with or without brackets), and
// rejects URLs, ports and paths.
func validAddress(a string) bool {
	if strings.Contains(a, ":") {
		return net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(a, "["), "]")) != nil
	}
	return !strings.ContainsAny(a, " \t/\\@?#")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// readInventoryCSV parses an inventory CSV. A problem without File means the file could
// not be opened (the caller locates it at inventory.file).
func readInventoryCSV(path string) ([]hostSpec, problems) {
	var probs problems
	data, err := os.ReadFile(path)
	if err != nil {
		probs.add(Problem{Msg: err.Error()})
		return nil, probs
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // Excel's UTF-8 BOM
	r := csv.NewReader(bytes.NewReader(data))
	r.Comment = '#'
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true

	at := func(line int, col, format string, args ...any) {
		probs.add(Problem{File: path, Line: line, Field: col, Msg: fmt.Sprintf(format, args...)})
	}
	columns := CSVColumns()
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		at(0, "", "empty inventory: a header row (%s) is required", strings.Join(columns, ","))
		return nil, probs
	}
	if err != nil {
		csvProblem(&probs, path, err)
		return nil, probs
	}
	hline, _ := r.FieldPos(0)
	cols := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		switch {
		case !contains(columns, h):
			at(hline, "", "unknown column %q in header (valid: %s)", h, strings.Join(columns, ", "))
		case cols[h] != 0:
			at(hline, "", "duplicate column %q in header", h)
		default:
			cols[h] = i + 1 // 1-based so that 0 means absent
		}
	}
	if cols["name"] == 0 {
		at(hline, "", "header has no name column (columns: %s)", strings.Join(columns, ","))
	}
	if len(probs) > 0 {
		return nil, probs
	}

	var specs []hostSpec
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			csvProblem(&probs, path, err)
			return specs, probs
		}
		line, _ := r.FieldPos(0)
		if len(rec) != len(header) {
			at(line, "", "expected %d fields like the header, got %d", len(header), len(rec))
			continue
		}
		get := func(col string) string {
			if i := cols[col]; i != 0 {
				return strings.TrimSpace(rec[i-1])
			}
			return ""
		}
		e := HostEntry{
			Name: get("name"), Address: get("address"), Group: get("group"),
			Roles: splitList(get("roles")), Tags: splitList(get("tags")), Credential: get("credential"),
		}
		if p := get("port"); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil {
				at(line, "port", "expected an integer, got %q", p)
				continue
			}
			e.Port = n
		}
		specs = append(specs, hostSpec{entry: e, file: path, line: line, field: func(col string) string { return col }})
	}
	return specs, probs
}

func csvProblem(probs *problems, path string, err error) {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		probs.add(Problem{File: path, Line: pe.Line, Msg: pe.Err.Error()})
		return
	}
	probs.add(Problem{File: path, Msg: err.Error()})
}

// splitList splits a ';'-separated CSV cell, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ";") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
