package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/rdsaudit/rdsaudit/internal/yamlbound"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// EnvPrefix prefixes every environment variable that overrides a configuration key.
const EnvPrefix = "RDSAUDIT"

// EnvVar returns the environment variable that overrides key, e.g.
// "collection.concurrency" → "RDSAUDIT_COLLECTION_CONCURRENCY".
func EnvVar(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Flags returns a new map of the command-line flags Load binds, by name, to the
// configuration keys they override. Load looks each name up in the FlagSet it is given
// and binds whichever exist.
func Flags() map[string]string {
	return map[string]string{
		"output-dir":   "output_dir",
		"concurrency":  "collection.concurrency",
		"source":       "collection.source",
		"evidence-dir": "collection.evidence_dir",
		"bundles":      "collection.bundles", // a list: run --bundles (internal/cli/collect.go)
		"log-level":    "log.level",
		"log-format":   "log.format",
	}
}

// BindFlags defines on fs the per-command flags --output-dir, --concurrency, --source
// and --evidence-dir. It does not define --log-level and --log-format: the CLI has them
// as root persistent flags, and Load binds them by name from the command's merged
// FlagSet (cobra's cmd.Flags() after parsing), like any other name in Flags(); use
// BindLogFlags where no root defines them. A flag overrides the file and the environment
// only when it was set on the command line.
func BindFlags(fs *pflag.FlagSet) {
	fs.String("output-dir", "", "directory for run directories and history (overrides output_dir)")
	fs.Int("concurrency", DefaultConcurrency, "hosts collected at once (overrides collection.concurrency)")
	fs.String("source", SourceWinRM, "evidence source: winrm or offline (overrides collection.source)")
	fs.String("evidence-dir", "", "directory of offline evidence files (overrides collection.evidence_dir)")
}

// BindLogFlags defines --log-level and --log-format on fs.
func BindLogFlags(fs *pflag.FlagSet) {
	fs.String("log-level", "info", "log level: "+strings.Join(LogLevels(), ", ")+" (overrides log.level)")
	fs.String("log-format", FormatAuto, "log format: auto, console or json (overrides log.format)")
}

// Load reads the configuration: defaults, then the YAML file at path (none if path is
// ""), then RDSAUDIT_* environment variables, then the flags of fs that were set (fs
// may be nil). It decodes the file strictly and then runs Validate, so a nil error means
// a usable configuration whose inventory has been resolved (see Hosts). Every error
// matches ErrInvalid and lists all problems found, one per line.
func Load(path string, fs *pflag.FlagSet) (*Config, error) {
	dir := "."
	if path != "" {
		dir = filepath.Dir(path)
	}
	cfg := &Config{file: path, dir: dir, lines: map[string]int{}, origins: map[string]string{}}

	var probs problems
	fileMap := map[string]any{}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			probs.add(Problem{Msg: fmt.Sprintf("read config: %v", err)})
			return nil, probs.err()
		}
		w := &walker{file: path, dir: dir, lines: cfg.lines}
		fileMap = w.document(data)
		probs = append(probs, w.probs...)
	}

	defs := defaults(dir)
	keys := make([]string, 0, len(defs))
	for k := range defs {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	v := viper.New()
	for _, k := range keys {
		v.SetDefault(k, defs[k])
	}
	if err := v.MergeConfigMap(fileMap); err != nil {
		probs.add(Problem{File: path, Msg: err.Error()})
	}
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for _, k := range keys {
		// Explicit binding: AutomaticEnv alone only sees keys viper already knows,
		// and nested keys need the replacer applied the same way.
		_ = v.BindEnv(k, EnvVar(k))
		if val, ok := os.LookupEnv(EnvVar(k)); ok && val != "" {
			cfg.origins[k] = "env " + EnvVar(k)
			if msg := checkScalar(reflect.TypeOf(defs[k]), val); msg != "" {
				probs.add(Problem{Field: k, Origin: cfg.origins[k], Msg: msg})
			}
		}
	}
	if fs != nil {
		flags := Flags()
		names := make([]string, 0, len(flags))
		for name := range flags {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			f := fs.Lookup(name)
			if f == nil {
				continue
			}
			key := flags[name]
			_ = v.BindPFlag(key, f)
			if f.Changed {
				cfg.origins[key] = "flag --" + name
			}
		}
	}
	if len(probs) > 0 {
		return nil, probs.err()
	}

	if err := v.Unmarshal(cfg, func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = true
	}); err != nil {
		probs.add(Problem{File: path, Msg: fmt.Sprintf("decode: %v", err)})
		return nil, probs.err()
	}
	if cfg.History.Path == "" && cfg.OutputDir != "" {
		cfg.History.Path = filepath.Join(cfg.OutputDir, HistoryFileName)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// checkScalar checks that s (from the environment) converts to a value of type t, and
// returns a message if not.
func checkScalar(t reflect.Type, s string) string {
	switch {
	case t == reflect.TypeOf(time.Duration(0)):
		if _, err := time.ParseDuration(s); err != nil {
			return fmt.Sprintf("invalid duration %q (use a number with a unit, e.g. \"60s\" or \"5m\")", s)
		}
	case t.Kind() == reflect.Bool:
		if _, err := strconv.ParseBool(s); err != nil {
			return fmt.Sprintf("expected true or false, got %q", s)
		}
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		if _, err := strconv.ParseInt(s, 10, 64); err != nil {
			return fmt.Sprintf("expected an integer, got %q", s)
		}
	}
	return ""
}

// walker decodes the YAML file against Config's shape, strictly: unknown and duplicate
// keys and mistyped values are problems with a line number. It returns the nested map
// viper merges, with relative paths already resolved against the file's directory
// (so that env and flag values, which are not resolved, stay relative to the working
// directory).
type walker struct {
	file  string
	dir   string
	lines map[string]int
	probs problems
}

func (w *walker) problem(line int, field, format string, args ...any) {
	w.probs.add(Problem{File: w.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (w *walker) document(data []byte) map[string]any {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) { // empty file: all defaults
			return map[string]any{}
		}
		line, msg := yamlSyntaxError(err)
		w.problem(line, "", "invalid YAML: %s", msg)
		return map[string]any{}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		w.problem(extra.Line, "", "more than one YAML document; the configuration is one document")
	}
	if len(doc.Content) == 0 {
		return map[string]any{}
	}
	root := doc.Content[0]
	if err := yamlbound.Check(root, len(data)); err != nil {
		line := root.Line
		var be *yamlbound.Error
		if errors.As(err, &be) {
			line = be.Line
		}
		w.problem(line, "", "%v", err)
		return map[string]any{}
	}
	m, ok := w.value(root, reflect.TypeOf(Config{}), "", reflect.StructField{})
	if !ok {
		return map[string]any{}
	}
	return m.(map[string]any)
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// durationType is time.Duration's type, which the file and the environment write as
// "30s".
func durationType() reflect.Type { return reflect.TypeFor[time.Duration]() }

// value decodes n as type t at field path; ok is false for null (unset) or invalid
// values, which are left out of the map so the defaults apply.
func (w *walker) value(n *yaml.Node, t reflect.Type, path string, sf reflect.StructField) (any, bool) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil, false
	}
	switch {
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.problem(n.Line, path, "expected a mapping, got %s", kindName(n))
			return nil, false
		}
		out := map[string]any{}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := k.Value
			child := join(path, key)
			if first, dup := seen[key]; dup {
				w.problem(k.Line, child, "duplicate key (first at line %d)", first)
				continue
			}
			seen[key] = k.Line
			w.lines[child] = k.Line
			if t == reflect.TypeOf(Credential{}) && key == "password" {
				w.problem(k.Line, child, "inline passwords are not accepted; set password_env: VAR or password_file: PATH")
				continue
			}
			f, found := fieldByTag(t, key)
			if !found {
				w.problem(k.Line, "", "unknown key %q", child)
				continue
			}
			if v, ok := w.value(val, f.Type, child, f); ok {
				out[key] = v
			}
		}
		return out, true

	case t.Kind() == reflect.Slice:
		et := t.Elem()
		if n.Kind == yaml.ScalarNode && et.Kind() == reflect.String {
			return []string{n.Value}, true // roles: session_host
		}
		if n.Kind != yaml.SequenceNode {
			w.problem(n.Line, path, "expected a list, got %s", kindName(n))
			return nil, false
		}
		var out []any
		var outStr []string
		for i, item := range n.Content {
			child := fmt.Sprintf("%s[%d]", path, i)
			w.lines[child] = item.Line
			v, ok := w.value(item, et, child, sf)
			if !ok {
				if item.ShortTag() == "!!null" {
					w.problem(item.Line, child, "empty list item")
				}
				continue
			}
			if et.Kind() == reflect.String {
				outStr = append(outStr, v.(string))
			} else {
				out = append(out, v)
			}
		}
		if et.Kind() == reflect.String {
			if outStr == nil {
				outStr = []string{}
			}
			return outStr, true
		}
		if out == nil {
			out = []any{}
		}
		return out, true
	}

	if n.Kind != yaml.ScalarNode {
		w.problem(n.Line, path, "expected a single value, got %s", kindName(n))
		return nil, false
	}
	tag := n.ShortTag()
	switch {
	case t == durationType():
		if tag == "!!int" && n.Value == "0" {
			return time.Duration(0), true
		}
		d, err := time.ParseDuration(n.Value)
		if err != nil || tag != "!!str" {
			w.problem(n.Line, path, "invalid duration %q (use a number with a unit, e.g. \"60s\" or \"5m\")", n.Value)
			return nil, false
		}
		return d, true
	case t.Kind() == reflect.Bool:
		var b bool
		if tag != "!!bool" || n.Decode(&b) != nil {
			w.problem(n.Line, path, "expected true or false, got %q", n.Value)
			return nil, false
		}
		return b, true
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		var i int64
		if tag != "!!int" || n.Decode(&i) != nil {
			w.problem(n.Line, path, "expected an integer, got %q", n.Value)
			return nil, false
		}
		if t.Kind() == reflect.Int {
			return int(i), true
		}
		return i, true
	case t.Kind() == reflect.String:
		if tag != "!!str" && tag != "!!int" && tag != "!!float" && tag != "!!bool" {
			w.problem(n.Line, path, "expected a string, got %s", kindName(n))
			return nil, false
		}
		s := n.Value
		if sf.Tag.Get("rdsaudit") == "path" && s != "" && !filepath.IsAbs(s) {
			s = filepath.Join(w.dir, s)
		}
		return s, true
	}
	w.problem(n.Line, path, "unsupported value %s", kindName(n))
	return nil, false
}

// fieldByTag finds the field of struct type t whose mapstructure tag is key.
func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.IsExported() && strings.Split(f.Tag.Get("mapstructure"), ",")[0] == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// yamlParserMessage reports whether msg is a go.yaml.in/yaml/v3 parser (not scanner)
// error. For these, v3.0.4 prints a 0-based line number ("line 2" for the third line),
// where scanner errors print 1-based ones; see parser.fail in its decode.go.
func yamlParserMessage(msg string) bool {
	switch msg {
	case "did not find expected <stream-start>",
		"did not find expected <document start>",
		"did not find expected node content",
		"did not find expected '-' indicator",
		"did not find expected key",
		"did not find expected ',' or ']'",
		"did not find expected ',' or '}'":
		return true
	}
	return false
}

// yamlSyntaxError splits a YAML syntax error ("yaml: line 3: msg") into a 1-based line
// and the message. This is the one place that reads the library's untyped error text.
func yamlSyntaxError(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, after
			}
		}
	}
	if yamlParserMessage(msg) {
		line++
	}
	return line, msg
}
