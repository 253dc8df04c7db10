package offline

// The .reg importer: regedit exports ("Windows Registry Editor Version 5.00" and
// "REGEDIT4") read as the registry state they describe, so that an auditor can audit
// air-gapped hosts from exports. A .reg file is an import script: it is applied in order,
// "[-KEY]" deletes a key with all its subkeys, "name"=- deletes a value, and a later
// definition of a value replaces an earlier one.
//
// Decisions (documented in samples/README.md too):
//   - Hives are normalised to the short form (HKEY_LOCAL_MACHINE → HKLM, HKCU, HKCR, HKU,
//     HKCC); key paths compare case-insensitively; a trailing backslash is dropped.
//   - A key the file never names but that has a named descendant exists (importing the
//     descendant creates it) and has no values.
//   - Raw bytes are what the registry stores: REG_SZ text from "..." is UTF-16LE with its
//     terminating NUL; REGEDIT4 files are ANSI, and their hex(2)/hex(7) data are converted
//     from ANSI (read as Windows-1252's Latin-1 subset) to UTF-16LE as regedit does on
//     import. Length is the raw byte count; SHA256 (of the raw bytes) is given for binary
//     types only, as the WinRM collection script does.
//   - hex(n) for a type other than 0..5, 7 and b is kept as Type "REG_UNKNOWN(n)" (n in
//     decimal) with its bytes in Hex; a value prefix that is not "...", dword: or hex...:
//     is an error (unknown type).
//   - Hex is lower-case hexadecimal without separators.
//   - String escapes are \\ and \" only; any other backslash sequence is an error.
//   - Values after a "[-KEY]" line (before the next key line), values before the first
//     key line, truncated hex, bad escapes, unknown types and a missing header are errors
//     "file.reg:LINE: message".

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/rdsaudit/rdsaudit/evidence"
)

// Header lines of the two regedit export formats.
const (
	RegHeader5 = "Windows Registry Editor Version 5.00"
	RegHeader4 = "REGEDIT4"
)

// RegFile is the registry state a regedit export describes.
type RegFile struct {
	Name   string // file name used in error messages
	Format string // RegHeader5 or RegHeader4
	keys   map[string]*regFileKey
}

type regFileKey struct {
	path   string // normalised, original case of its last definition
	values []regFileValue
}

type regFileValue struct {
	name string
	typ  uint32
	data []byte // raw bytes as the registry stores them
}

// Registry type numbers.
const (
	regTypeNone     = 0
	regTypeSZ       = 1
	regTypeExpandSZ = 2
	regTypeBinary   = 3
	regTypeDWord    = 4
	regTypeDWordBE  = 5
	regTypeMultiSZ  = 7
	regTypeQWord    = 11
)

// RegTypeName returns the evidence type name for a registry type number.
func RegTypeName(t uint32) string {
	switch t {
	case regTypeNone:
		return evidence.RegNone
	case regTypeSZ:
		return evidence.RegSZ
	case regTypeExpandSZ:
		return evidence.RegExpandSZ
	case regTypeBinary:
		return evidence.RegBinary
	case regTypeDWord:
		return evidence.RegDWord
	case regTypeDWordBE:
		return evidence.RegDWordBE
	case regTypeMultiSZ:
		return evidence.RegMultiSZ
	case regTypeQWord:
		return evidence.RegQWord
	}
	return fmt.Sprintf("REG_UNKNOWN(%d)", t)
}

// ParseRegFile parses a regedit export. name is used only in error messages, which read
// "name:LINE: message".
func ParseRegFile(name string, data []byte) (*RegFile, error) {
	text, ansi, err := decodeRegText(data)
	if err != nil {
		return nil, fmt.Errorf("%s:1: %w", name, err)
	}
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	f := &RegFile{Name: name, keys: map[string]*regFileKey{}}
	p := regParser{f: f, lines: lines, ansi: ansi}
	if err := p.parse(); err != nil {
		return nil, err
	}
	return f, nil
}

// decodeRegText turns the file's bytes into text: UTF-16LE (with BOM, as regedit writes
// 5.00 exports, or without BOM when the first character shows it), UTF-16BE with BOM,
// UTF-8 with or without BOM. Bytes that are not UTF-8 are read as Latin-1 (REGEDIT4 files
// are ANSI); whether that is acceptable is decided once the header is known.
func decodeRegText(b []byte) (text string, ansi bool, err error) {
	switch {
	case bytes.HasPrefix(b, []byte{0xFF, 0xFE}):
		text, err = decodeUTF16(b[2:], binary.LittleEndian)
		return text, false, err
	case bytes.HasPrefix(b, []byte{0xFE, 0xFF}):
		text, err = decodeUTF16(b[2:], binary.BigEndian)
		return text, false, err
	case bytes.HasPrefix(b, []byte{0xEF, 0xBB, 0xBF}):
		b = b[3:]
	case len(b) >= 2 && b[0] != 0 && b[1] == 0:
		text, err = decodeUTF16(b, binary.LittleEndian)
		return text, false, err
	}
	if utf8.Valid(b) {
		return string(b), false, nil
	}
	return latin1(b), true, nil
}

func decodeUTF16(b []byte, order binary.ByteOrder) (string, error) {
	if len(b)%2 != 0 {
		return "", fmt.Errorf("UTF-16 text has an odd number of bytes")
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = order.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u)), nil
}

func latin1(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

type regParser struct {
	f       *RegFile
	lines   []string
	ansi    bool        // the bytes were not UTF-8 and were read as Latin-1
	cur     *regFileKey // nil before the first key line
	deleted bool        // the current key line was [-...]
}

func (p *regParser) errf(line int, format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s", p.f.Name, line+1, fmt.Sprintf(format, args...))
}

func (p *regParser) parse() error {
	i := 0
	// Header: the first non-blank line.
	for i < len(p.lines) && strings.TrimSpace(p.lines[i]) == "" {
		i++
	}
	if i == len(p.lines) {
		return p.errf(0, "empty file: missing header %q", RegHeader5)
	}
	switch h := strings.TrimSpace(p.lines[i]); h {
	case RegHeader5, RegHeader4:
		p.f.Format = h
	default:
		return p.errf(i, "missing header: got %q, want %q or %q", clip(h), RegHeader5, RegHeader4)
	}
	if p.ansi && p.f.Format == RegHeader5 {
		for j, l := range p.lines {
			if strings.IndexFunc(l, func(r rune) bool { return r >= 0x80 }) >= 0 {
				return p.errf(j, "invalid UTF-8 text (5.00 exports are UTF-16LE or UTF-8)")
			}
		}
	}
	i++
	for i < len(p.lines) {
		line := strings.TrimSpace(p.lines[i])
		switch {
		case line == "" || strings.HasPrefix(line, ";"):
			i++
		case strings.HasPrefix(line, "["):
			if err := p.keyLine(i, line); err != nil {
				return err
			}
			i++
		default:
			next, err := p.valueLine(i)
			if err != nil {
				return err
			}
			i = next
		}
	}
	return nil
}

func (p *regParser) keyLine(i int, line string) error {
	if !strings.HasSuffix(line, "]") {
		return p.errf(i, "key line without closing ]")
	}
	body := line[1 : len(line)-1]
	del := strings.HasPrefix(body, "-")
	if del {
		body = body[1:]
	}
	path, err := normaliseKeyPath(body)
	if err != nil {
		return p.errf(i, "%v", err)
	}
	if del {
		p.f.deleteTree(path)
		p.cur, p.deleted = nil, true
		return nil
	}
	k := p.f.keys[strings.ToLower(path)]
	if k == nil {
		k = &regFileKey{}
		p.f.keys[strings.ToLower(path)] = k
	}
	k.path = path
	p.cur, p.deleted = k, false
	return nil
}

// shortHive returns the short form of a hive name given in either form (upper case).
func shortHive(hive string) (string, bool) {
	switch hive {
	case "HKEY_LOCAL_MACHINE", "HKLM":
		return "HKLM", true
	case "HKEY_CURRENT_USER", "HKCU":
		return "HKCU", true
	case "HKEY_CLASSES_ROOT", "HKCR":
		return "HKCR", true
	case "HKEY_USERS", "HKU":
		return "HKU", true
	case "HKEY_CURRENT_CONFIG", "HKCC":
		return "HKCC", true
	}
	return "", false
}

// normaliseKeyPath returns a key path with the hive in short form ("HKLM\...") and no
// trailing backslash.
func normaliseKeyPath(s string) (string, error) {
	s = strings.TrimRight(strings.TrimSpace(s), `\`)
	hive, rest, _ := strings.Cut(s, `\`)
	short, ok := shortHive(strings.ToUpper(hive))
	if !ok {
		return "", fmt.Errorf("unknown hive %q", clip(hive))
	}
	if rest == "" {
		return short, nil
	}
	if strings.Contains(rest, `\\`) {
		return "", fmt.Errorf("empty key name in path %q", clip(s))
	}
	return short + `\` + rest, nil
}

func (f *RegFile) deleteTree(path string) {
	lp := strings.ToLower(path)
	for k := range f.keys {
		if k == lp || strings.HasPrefix(k, lp+`\`) {
			delete(f.keys, k)
		}
	}
}

// valueLine parses the value starting at line i and returns the index of the next line.
func (p *regParser) valueLine(i int) (int, error) {
	line := strings.TrimSpace(p.lines[i])
	var name, rest string
	if strings.HasPrefix(line, "@") {
		name, rest = "", strings.TrimSpace(line[1:])
	} else if strings.HasPrefix(line, `"`) {
		n, tail, err := p.quoted(i, line)
		if err != nil {
			return 0, err
		}
		name, rest = n, strings.TrimSpace(tail)
	} else {
		return 0, p.errf(i, "unexpected line %q: want a key line, a value or a comment", clip(line))
	}
	if !strings.HasPrefix(rest, "=") {
		return 0, p.errf(i, "value %q: missing '='", name)
	}
	rest = strings.TrimSpace(rest[1:])
	if p.deleted {
		return 0, p.errf(i, "value %q under a deleted key", name)
	}
	if p.cur == nil {
		return 0, p.errf(i, "value %q outside a key", name)
	}
	next := i + 1
	var v regFileValue
	v.name = name
	switch {
	case rest == "-":
		p.cur.deleteValue(name)
		return next, nil
	case strings.HasPrefix(rest, `"`):
		s, tail, err := p.quoted(i, rest)
		if err != nil {
			return 0, err
		}
		if t := strings.TrimSpace(tail); t != "" && !strings.HasPrefix(t, ";") {
			return 0, p.errf(i, "value %q: unexpected text after string: %q", name, clip(t))
		}
		v.typ, v.data = regTypeSZ, utf16z(s)
	case hasPrefixFold(rest, "dword:"):
		d := strings.TrimSpace(rest[len("dword:"):])
		if len(d) == 0 || len(d) > 8 {
			return 0, p.errf(i, "value %q: dword needs 1 to 8 hex digits, got %q", name, clip(d))
		}
		n, err := strconv.ParseUint(d, 16, 32)
		if err != nil {
			return 0, p.errf(i, "value %q: bad dword %q", name, clip(d))
		}
		v.typ, v.data = regTypeDWord, binary.LittleEndian.AppendUint32(nil, uint32(n))
	case hasPrefixFold(rest, "hex"):
		typ, data, n, err := p.hexValue(i, name, rest)
		if err != nil {
			return 0, err
		}
		v.typ, v.data, next = typ, data, n
	default:
		return 0, p.errf(i, "value %q: unknown type in %q", name, clip(rest))
	}
	if err := p.checkValue(i, v); err != nil {
		return 0, err
	}
	p.cur.setValue(v)
	return next, nil
}

// checkValue rejects data that cannot be the declared type.
func (p *regParser) checkValue(i int, v regFileValue) error {
	switch v.typ {
	case regTypeDWord, regTypeDWordBE:
		if len(v.data) != 4 {
			return p.errf(i, "value %q: %s needs 4 bytes, got %d", v.name, RegTypeName(v.typ), len(v.data))
		}
	case regTypeQWord:
		if len(v.data) != 8 {
			return p.errf(i, "value %q: REG_QWORD needs 8 bytes, got %d", v.name, len(v.data))
		}
	}
	return nil
}

// hexValue parses hex:, hex(n): with continuation lines.
func (p *regParser) hexValue(i int, name, rest string) (uint32, []byte, int, error) {
	typ := uint32(regTypeBinary)
	rest = rest[3:]
	if strings.HasPrefix(rest, "(") {
		end := strings.IndexByte(rest, ')')
		if end < 0 {
			return 0, nil, 0, p.errf(i, "value %q: unterminated hex(", name)
		}
		n, err := strconv.ParseUint(rest[1:end], 16, 32)
		if err != nil {
			return 0, nil, 0, p.errf(i, "value %q: unknown type hex(%s)", name, clip(rest[1:end]))
		}
		typ = uint32(n)
		rest = rest[end+1:]
	}
	if !strings.HasPrefix(rest, ":") {
		return 0, nil, 0, p.errf(i, "value %q: unknown type %q", name, clip(rest))
	}
	rest = rest[1:]
	var data []byte
	j := i
	for {
		seg := strings.TrimSpace(rest)
		cont := strings.HasSuffix(seg, `\`)
		if cont {
			seg = strings.TrimSpace(strings.TrimSuffix(seg, `\`))
		}
		if seg != "" {
			items := strings.Split(seg, ",")
			if cont && strings.TrimSpace(items[len(items)-1]) == "" {
				// "aa,bb,\": the comma before the continuation is not an item.
				items = items[:len(items)-1]
			}
			for _, b := range items {
				b = strings.TrimSpace(b)
				if b == "" {
					return 0, nil, 0, p.errf(j, "value %q: truncated hex data (empty byte)", name)
				}
				if len(b) != 2 {
					return 0, nil, 0, p.errf(j, "value %q: truncated or malformed hex byte %q", name, clip(b))
				}
				x, err := strconv.ParseUint(b, 16, 8)
				if err != nil {
					return 0, nil, 0, p.errf(j, "value %q: bad hex byte %q", name, clip(b))
				}
				data = append(data, byte(x))
			}
		}
		if !cont {
			break
		}
		j++
		if j >= len(p.lines) {
			return 0, nil, 0, p.errf(i, "value %q: truncated hex data: file ends inside a continued line", name)
		}
		rest = p.lines[j]
		if t := strings.TrimSpace(rest); t == "" || strings.HasPrefix(t, "[") || strings.HasPrefix(t, `"`) || strings.HasPrefix(t, "@") {
			return 0, nil, 0, p.errf(j, "value %q: truncated hex data: continuation line expected", name)
		}
	}
	if p.f.Format == RegHeader4 && (typ == regTypeExpandSZ || typ == regTypeMultiSZ) {
		data = ansiToUTF16(data)
	}
	return typ, data, j + 1, nil
}

// quoted reads a "..." string at the start of s with \\ and \" escapes and returns it and
// the text after the closing quote.
func (p *regParser) quoted(i int, s string) (string, string, error) {
	var b strings.Builder
	for k := 1; k < len(s); k++ {
		c := s[k]
		switch c {
		case '"':
			return b.String(), s[k+1:], nil
		case '\\':
			if k+1 >= len(s) {
				return "", "", p.errf(i, "unterminated string")
			}
			k++
			switch s[k] {
			case '\\', '"':
				b.WriteByte(s[k])
			default:
				return "", "", p.errf(i, "bad escape \\%c in string", s[k])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", p.errf(i, "unterminated string")
}

func (k *regFileKey) setValue(v regFileValue) {
	for i := range k.values {
		if strings.EqualFold(k.values[i].name, v.name) {
			k.values[i] = v
			return
		}
	}
	k.values = append(k.values, v)
}

func (k *regFileKey) deleteValue(name string) {
	for i := range k.values {
		if strings.EqualFold(k.values[i].name, name) {
			k.values = append(k.values[:i], k.values[i+1:]...)
			return
		}
	}
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// utf16z encodes s as UTF-16LE with a terminating NUL, as the registry stores REG_SZ.
func utf16z(s string) []byte {
	u := utf16.Encode([]rune(s))
	out := make([]byte, 0, 2*len(u)+2)
	for _, c := range u {
		out = binary.LittleEndian.AppendUint16(out, c)
	}
	return append(out, 0, 0)
}

func ansiToUTF16(b []byte) []byte {
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, c, 0)
	}
	return out
}

// utf16String decodes UTF-16LE bytes, dropping a trailing NUL and anything after it.
func utf16Strings(b []byte) []string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	var out []string
	start := 0
	for i, c := range u {
		if c == 0 {
			out = append(out, string(utf16.Decode(u[start:i])))
			start = i + 1
		}
	}
	if start < len(u) {
		out = append(out, string(utf16.Decode(u[start:])))
	}
	return out
}

// Paths returns the normalised paths of every key present in the file, sorted.
func (f *RegFile) Paths() []string {
	ps := make([]string, 0, len(f.keys))
	for _, k := range f.keys {
		ps = append(ps, k.path)
	}
	sort.Slice(ps, func(i, j int) bool { return strings.ToLower(ps[i]) < strings.ToLower(ps[j]) })
	return ps
}

// exists reports whether the key is present, named or implied by a descendant.
func (f *RegFile) exists(path string) bool {
	lp := strings.ToLower(path)
	if _, ok := f.keys[lp]; ok {
		return true
	}
	for k := range f.keys {
		if strings.HasPrefix(k, lp+`\`) {
			return true
		}
	}
	return false
}

// subkeys returns the names of the direct subkeys of path present in the file, sorted
// case-insensitively, in the case of their first definition.
func (f *RegFile) subkeys(path string) []string {
	lp := strings.ToLower(path) + `\`
	seen := map[string]string{}
	for lk, k := range f.keys {
		if !strings.HasPrefix(lk, lp) {
			continue
		}
		child, _, _ := strings.Cut(k.path[len(lp):], `\`)
		if _, ok := seen[strings.ToLower(child)]; !ok {
			seen[strings.ToLower(child)] = child
		}
	}
	if len(seen) == 0 {
		return nil
	}
	out := make([]string, 0, len(seen))
	for _, c := range seen {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i]) < strings.ToLower(out[j]) })
	return out
}

// RegKeys returns the requested keys as the evidence model holds them, in request order:
// the same keys, values and redaction the WinRM collection script reports
// (evidence.SelectKeys). Keys absent from the file have Exists false; Subkeys requests
// add each direct subkey after its parent. Keys the file holds but nobody requested are
// not reported.
func (f *RegFile) RegKeys(reqs []evidence.KeyRequest) []evidence.RegKey {
	norm := make([]evidence.KeyRequest, len(reqs))
	for i, r := range reqs {
		if path, err := normaliseKeyPath(r.Path); err == nil {
			r.Path = path
		}
		norm[i] = r
	}
	return evidence.SelectKeys(norm, f.regKey)
}

// regKey returns the key at path with all its values.
func (f *RegFile) regKey(path string) evidence.RegKey {
	rk := evidence.RegKey{Path: path}
	if !f.exists(path) {
		return rk
	}
	rk.Exists = true
	rk.Subkeys = f.subkeys(path)
	if k := f.keys[strings.ToLower(path)]; k != nil {
		for _, v := range k.values {
			rk.Values = append(rk.Values, v.evidence())
		}
	}
	return rk
}

// evidence converts a raw value to the evidence model exactly as the collection script
// (collect/winrm/script/collect.ps1) reports it unredacted: strings and numbers are
// always shown, with Length and no SHA256; binary data (REG_BINARY, REG_NONE, unknown
// types) carries Length, SHA256 and Hex (RegKeys redacts it where requested).
func (v regFileValue) evidence() evidence.RegValue {
	rv := evidence.RegValue{
		Name:   v.name,
		Type:   RegTypeName(v.typ),
		Length: len(v.data),
	}
	switch v.typ {
	case regTypeSZ, regTypeExpandSZ:
		s := ""
		if ss := utf16Strings(v.data); len(ss) > 0 {
			s = ss[0]
		}
		rv.String = &s
	case regTypeMultiSZ:
		ss := utf16Strings(v.data)
		// Drop the list terminator: "a\0b\0\0" reads as [a b "" ] before trimming.
		for len(ss) > 0 && ss[len(ss)-1] == "" {
			ss = ss[:len(ss)-1]
		}
		if len(ss) > 0 {
			rv.Strings = ss
		}
	case regTypeDWord:
		n := uint64(binary.LittleEndian.Uint32(v.data))
		rv.Number = &n
	case regTypeDWordBE:
		n := uint64(binary.BigEndian.Uint32(v.data))
		rv.Number = &n
	case regTypeQWord:
		n := binary.LittleEndian.Uint64(v.data)
		rv.Number = &n
	default:
		sum := sha256.Sum256(v.data)
		rv.SHA256 = hex.EncodeToString(sum[:])
		rv.Hex = hex.EncodeToString(v.data)
	}
	return rv
}
