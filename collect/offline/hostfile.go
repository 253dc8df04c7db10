package offline

// The per-host file (<host>.host.yaml) holds what a .reg export cannot: OS facts, WMI
// properties and method results, license-server data, section errors, and registry key
// metadata (LastWriteTime, owner). Its field names are exactly the evidence JSON field
// names (see Evidence), plus registry_meta. It is decoded strictly: YAML is converted to
// JSON node by node (so numbers keep their exact text and dates stay strings) and decoded
// with DisallowUnknownFields; errors name the file, the line and the field.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/internal/yamlbound"
	"go.yaml.in/yaml/v3"
)

// HostFile is the decoded <host>.host.yaml.
type HostFile struct {
	// Host is the inventory view of the host. Collectors ignore it (identity comes from
	// the inventory); LoadFleet uses it, and its roles select the registry keys read
	// from the .reg (evidence.KeysFor).
	Host *evidence.HostRef `json:"host,omitempty"`
	// CollectedAt is when the export was taken; without it the collector's clock is used.
	CollectedAt *time.Time `json:"collected_at,omitempty"`
	// Status defaults to collected. A failed or skipped host (e.g. an unsupported
	// 2008 R2 host) carries a Failure and needs no .reg file.
	Status  evidence.Status   `json:"status,omitempty"`
	Failure *evidence.Failure `json:"failure,omitempty"`

	OS               *evidence.OSInfo                `json:"os,omitempty"`
	TerminalServices *evidence.TerminalServices      `json:"terminal_services,omitempty"`
	Deployment       *evidence.DeploymentLicensing   `json:"deployment_licensing,omitempty"`
	LicenseServer    *evidence.LicenseServerEvidence `json:"license_server,omitempty"`
	Errors           []evidence.SectionError         `json:"errors,omitempty"`

	// RegistryMeta adds what regedit does not export to keys read from the .reg.
	RegistryMeta []RegKeyMeta `json:"registry_meta,omitempty"`
}

// RegKeyMeta is key metadata merged into the RegKey with the same path.
type RegKeyMeta struct {
	Path          string     `json:"path"`
	LastWriteTime *time.Time `json:"last_write_time,omitempty"`
	Owner         string     `json:"owner,omitempty"`
	Error         string     `json:"error,omitempty"`
}

// ParseHostFile decodes a host file strictly. name is used in error messages.
func ParseHostFile(name string, data []byte) (*HostFile, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var hf HostFile
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: empty host file", name)
	}
	if err := yamlbound.Check(doc.Content[0], len(data)); err != nil {
		var be *yamlbound.Error
		if errors.As(err, &be) {
			return nil, fmt.Errorf("%s:%d: %v", name, be.Line, err)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var buf bytes.Buffer
	budget := maxHostFileNodes
	if err := yamlNodeJSON(&buf, doc.Content[0], 0, &budget); err != nil {
		return nil, fmt.Errorf("%s:%w", name, err)
	}
	dec := json.NewDecoder(&buf)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&hf); err != nil {
		return nil, fmt.Errorf("%s:%s", name, describeJSONError(doc.Content[0], err))
	}
	if err := hf.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &hf, nil
}

func (hf *HostFile) validate() error {
	switch hf.Status {
	case "", evidence.StatusCollected:
		if hf.Failure != nil {
			return fmt.Errorf("failure: set only when status is %q or %q", evidence.StatusFailed, evidence.StatusSkipped)
		}
	case evidence.StatusFailed, evidence.StatusSkipped:
		if hf.Failure == nil || hf.Failure.Class == "" {
			return fmt.Errorf("failure.class: required when status is %q", hf.Status)
		}
	default:
		return fmt.Errorf("status: unknown value %q (want collected, failed or skipped)", hf.Status)
	}
	for i, m := range hf.RegistryMeta {
		if m.Path == "" {
			return fmt.Errorf("registry_meta[%d].path: required", i)
		}
		if _, err := normaliseKeyPath(m.Path); err != nil {
			return fmt.Errorf("registry_meta[%d].path: %v", i, err)
		}
	}
	return nil
}

// maxHostFileNodes bounds the nodes written, aliases expanded (no "billion laughs");
// yamlbound.Check, run first, bounds the bytes they expand to.
const maxHostFileNodes = 1 << 20

// yamlNodeJSON writes n as JSON. Mapping keys must be unique strings; anchors/aliases are
// followed; merge keys are rejected.
func yamlNodeJSON(buf *bytes.Buffer, n *yaml.Node, depth int, budget *int) error {
	if depth > 100 {
		return fmt.Errorf("%d: nesting too deep", n.Line)
	}
	if *budget--; *budget < 0 {
		return fmt.Errorf("%d: document too large (aliases expand to more than %d nodes)", n.Line, maxHostFileNodes)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			buf.WriteString("null")
			return nil
		}
		return yamlNodeJSON(buf, n.Content[0], depth+1, budget)
	case yaml.AliasNode:
		return yamlNodeJSON(buf, n.Alias, depth+1, budget)
	case yaml.MappingNode:
		buf.WriteByte('{')
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
				return fmt.Errorf("%d: mapping keys must be plain names", k.Line)
			}
			if seen[k.Value] {
				return fmt.Errorf("%d: duplicate field %q", k.Line, k.Value)
			}
			seen[k.Value] = true
			if i > 0 {
				buf.WriteByte(',')
			}
			kb, _ := json.Marshal(k.Value)
			buf.Write(kb)
			buf.WriteByte(':')
			if err := yamlNodeJSON(buf, v, depth+1, budget); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case yaml.SequenceNode:
		buf.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := yamlNodeJSON(buf, c, depth+1, budget); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			buf.WriteString("null")
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				return fmt.Errorf("%d: %v", n.Line, err)
			}
			buf.WriteString(strconv.FormatBool(b))
		case "!!int":
			var i int64
			if err := n.Decode(&i); err != nil {
				var u uint64
				if err2 := n.Decode(&u); err2 != nil {
					return fmt.Errorf("%d: %v", n.Line, err)
				}
				buf.WriteString(strconv.FormatUint(u, 10))
				return nil
			}
			buf.WriteString(strconv.FormatInt(i, 10))
		case "!!float":
			var f float64
			if err := n.Decode(&f); err != nil {
				return fmt.Errorf("%d: %v", n.Line, err)
			}
			b, err := json.Marshal(f)
			if err != nil {
				return fmt.Errorf("%d: %v", n.Line, err)
			}
			buf.Write(b)
		default: // !!str, !!timestamp, !!binary: keep the text
			b, _ := json.Marshal(n.Value)
			buf.Write(b)
		}
	default:
		return fmt.Errorf("%d: unsupported YAML node", n.Line)
	}
	return nil
}

var unknownFieldRE = regexp.MustCompile(`unknown field "([^"]*)"`)

// describeJSONError turns a decode error into "LINE: message" using the YAML node tree to
// find the line of the offending field.
func describeJSONError(root *yaml.Node, err error) string {
	field := ""
	msg := err.Error()
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field = te.Field
		msg = fmt.Sprintf("field %s: cannot use %s as %s", te.Field, te.Value, te.Type)
	} else if m := unknownFieldRE.FindStringSubmatch(msg); m != nil {
		field = m[1]
		msg = fmt.Sprintf("unknown field %q", m[1])
	} else {
		msg = strings.TrimPrefix(msg, "json: ")
	}
	line := 0
	if field != "" {
		parts := strings.Split(field, ".")
		line = findKeyLine(root, parts[len(parts)-1])
	}
	if line == 0 {
		return " " + msg
	}
	return fmt.Sprintf("%d: %s", line, msg)
}

// findKeyLine returns the line of the first mapping key named name (depth first).
func findKeyLine(n *yaml.Node, name string) int {
	if n == nil {
		return 0
	}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == name {
				return n.Content[i].Line
			}
		}
	}
	for _, c := range n.Content {
		if l := findKeyLine(c, name); l != 0 {
			return l
		}
	}
	return 0
}
