package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
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
	fs.String("source", SourceWinRM, "evidence source: winrm, offline or bundles (overrides collection.source)")
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
	cfg, probs, err := load(path, fs)
	if err != nil {
		return nil, err
	}
	if len(probs) > 0 {
		return nil, cfg.sorted(probs).err()
	}
	return cfg, nil
}

// Check is Load followed, in the same pass, by the resolution of every credential
// reference (ResolveCredentials): `rdsaudit validate`. Its error lists the problems of
// both, in file order; a nil error means a configuration whose secrets can all be read
// now.
func Check(path string, fs *pflag.FlagSet) (*Config, error) {
	cfg, probs, err := load(path, fs)
	if err != nil {
		return nil, err
	}
	if cerr := cfg.ResolveCredentials(); cerr != nil {
		var ce *Error
		if !errors.As(cerr, &ce) {
			return nil, cerr
		}
		probs = append(probs, consequential(probs, ce.Problems)...)
	}
	if len(probs) > 0 {
		return nil, cfg.sorted(probs).err()
	}
	return cfg, nil
}

// load is Load returning the configuration along with its problems; err is set (and
// cfg nil) only when nothing further can be checked.
func load(path string, fs *pflag.FlagSet) (*Config, problems, error) {
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
			return nil, nil, probs.err()
		}
		w := &walker{file: path, dir: dir, lines: cfg.lines}
		fileMap = w.document(data)
		probs = append(probs, w.probs...)
		if w.unreadable {
			// Nothing of the file was read: checking the defaults in its place would
			// only add noise ("no hosts").
			return nil, nil, probs.err()
		}
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
				v.Set(k, defs[k]) // reported; the default lets the other checks run
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
	// Values the file or the environment got wrong were left out (their defaults
	// apply): the decode and the checks below still run, so one pass reports every
	// problem, not the first.
	if err := v.Unmarshal(cfg, func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = true
	}); err != nil {
		probs.add(Problem{File: path, Msg: fmt.Sprintf("decode: %v", err)})
		return nil, nil, cfg.sorted(probs).err()
	}
	if cfg.History.Path == "" && cfg.OutputDir != "" {
		cfg.History.Path = filepath.Join(cfg.OutputDir, HistoryFileName)
	}
	if err := cfg.Validate(); err != nil {
		var ce *Error
		if !errors.As(err, &ce) {
			return nil, nil, err
		}
		probs = append(probs, consequential(probs, ce.Problems)...)
	}
	return cfg, probs, nil
}

// consequential returns the problems of later that are not mere consequences of a value
// already reported in earlier (and so left out): one on the same field, on a field
// inside it, or on a field containing it ("inventory: no hosts" after a malformed
// inventory.hosts).
func consequential(earlier, later []Problem) []Problem {
	related := func(a, b string) bool {
		return a == b || strings.HasPrefix(a, b+".") || strings.HasPrefix(a, b+"[")
	}
	var out []Problem
	for _, p := range later {
		dup := false
		for _, e := range earlier {
			if p.Field != "" && e.Field != "" && (related(p.Field, e.Field) || related(e.Field, p.Field)) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, p)
		}
	}
	return out
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
	// unreadable: the document as a whole could not be decoded (syntax, size bounds, a
	// root that is no mapping), so none of it was read.
	unreadable bool
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
		w.unreadable = true
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
		w.unreadable = true
		return map[string]any{}
	}
	m, ok := w.value(root, reflect.TypeOf(Config{}), "", reflect.StructField{})
	if !ok {
		w.unreadable = root.ShortTag() != "!!null"
		return map[string]any{}
	}
	return m.(map[string]any)
}

// kindName names what n is for a message: a mapping, a list, or the scalar quoted; under
// a secret-bearing key (secretPath) the scalar is not shown, since a value typed where
// a mapping or a reference belongs may be the secret itself.
func (w *walker) kindName(n *yaml.Node, path string) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	if secretPath(path) {
		return "a single value (not shown: it may be a secret)"
	}
	return fmt.Sprintf("%q", n.Value)
}

// secretPath says whether a value at path may hold a secret typed in the wrong place:
// anything under credentials and notify (the webhook secret's references).
func secretPath(path string) bool {
	return path == "credentials" || strings.HasPrefix(path, "credentials[") || strings.HasPrefix(path, "credentials.") ||
		path == "notify" || strings.HasPrefix(path, "notify.")
}

// keyShapeRE is the shape of every configuration key: lower-case words joined by "_".
var keyShapeRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// unknownKey reports key, unknown in struct type t at path, with the closest known key
// when one is close ("did you mean collection.concurrency?"). Under a secret-bearing
// key an unknown key is named only when it has the shape of a key (lower-case words):
// "Winter2026:" or "password_env:Winter2026" (no space) may be the secret itself.
func (w *walker) unknownKey(line int, t reflect.Type, path, key string) {
	child := join(path, key)
	var msg string
	if secretPath(path) && !keyShapeRE.MatchString(key) {
		msg = fmt.Sprintf("unknown key in %s (not shown: it is no key name and may be a secret)", path)
	} else {
		msg = fmt.Sprintf("unknown key %q", child)
	}
	if s := suggestKey(t, path, key); s != "" {
		msg += "; did you mean " + s + "?"
	}
	w.problem(line, "", "%s", msg)
}

// suggestKey returns the known key closest to key: a sibling in t within a small edit
// distance ("concurency" → collection.concurrency), else a key of the same or a close
// name elsewhere in the file's shape ("concurrency" at the top → collection.concurrency).
// "" when nothing is close, or two candidates are equally close.
func suggestKey(t reflect.Type, path, key string) string {
	key = strings.ToLower(key)
	limit := max(1, len(key)/4)
	best, bestD, tie := "", limit+1, false
	consider := func(name, full string) {
		d := editDistance(key, name)
		switch {
		case d < bestD:
			best, bestD, tie = full, d, false
		case d == bestD && full != best:
			tie = true
		}
	}
	for _, name := range structKeys(t) {
		consider(name, join(path, name))
	}
	if best != "" && !tie {
		return best
	}
	// Elsewhere: only keys of struct sections reachable without a list (the paths a
	// user can be told to write as such).
	best, bestD, tie = "", limit+1, false
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := strings.Split(f.Tag.Get("mapstructure"), ",")[0]
			if !f.IsExported() || name == "" || name == "-" {
				continue
			}
			full := join(prefix, name)
			if full != join(path, name) {
				consider(name, full)
			}
			if f.Type.Kind() == reflect.Struct && f.Type != durationType() {
				walk(f.Type, full)
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	if best != "" && !tie {
		return best
	}
	return ""
}

// structKeys lists the keys of struct type t.
func structKeys(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("mapstructure"), ",")[0]
		if f.IsExported() && name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

// editDistance is the Levenshtein distance of a and b (bytes; keys are ASCII), with
// "-" and "_" counted alike (host-timeout is host_timeout misspelt).
func editDistance(a, b string) int {
	a, b = strings.ReplaceAll(a, "-", "_"), strings.ReplaceAll(b, "-", "_")
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
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
			w.problem(n.Line, path, "expected a mapping, got %s", w.kindName(n, path))
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
				w.unknownKey(k.Line, t, path, key)
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
			w.problem(n.Line, path, "expected a list, got %s", w.kindName(n, path))
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
				if et.Kind() == reflect.Struct {
					// Keep the indexes of the items after it those of the file, so
					// that later problems name the right item and line.
					out = append(out, map[string]any{})
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
		w.problem(n.Line, path, "expected a single value, got %s", w.kindName(n, path))
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
			w.problem(n.Line, path, "expected a string, got %s", w.kindName(n, path))
			return nil, false
		}
		s := n.Value
		if sf.Tag.Get("rdsaudit") == "path" && s != "" && !filepath.IsAbs(s) {
			s = filepath.Join(w.dir, s)
		}
		return s, true
	}
	w.problem(n.Line, path, "unsupported value %s", w.kindName(n, path))
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

// Restrict narrows the configuration's inventory to the hosts s selects (the CLI's
// --hosts and --group; see Selection.Select): from then on Hosts, CheckSecrets,
// Redacted and Hash see only those hosts, so a run of one group neither needs the
// passwords of the others nor records them in its configuration hash. The zero
// Selection changes nothing. An error (a malformed pattern, one matching no host)
// matches ErrInvalid.
func (c *Config) Restrict(s Selection) error {
	if s.Empty() {
		return nil
	}
	hosts, err := c.Hosts()
	if err != nil {
		return err
	}
	sel, err := s.Select(hosts)
	if err != nil {
		return &Error{Problems: []Problem{{Msg: err.Error()}}}
	}
	c.hosts = sel
	return nil
}
