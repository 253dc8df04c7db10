package report

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rdsaudit/rdsaudit/report/schema"
	"github.com/rdsaudit/rdsaudit/rules"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/ (review the diff)")

func compileSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema.ReportJSON()))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(schema.ReportID, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(schema.ReportID)
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// validate checks a written report.json against the committed schema.
func validate(t testing.TB, data []byte) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("report.json is not JSON: %v", err)
	}
	if err := compileSchema(t).Validate(v); err != nil {
		t.Fatalf("report.json does not match report.schema.json: %v", err)
	}
}

func writeJSON(t testing.TB, r *Report) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := (JSON{}).Write(context.Background(), &buf, r); err != nil {
		t.Fatal(err)
	}
	validate(t, buf.Bytes())
	return buf.Bytes()
}

func semantic(t testing.TB, data []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestJSONMatchesSchemaAndMarshal(t *testing.T) {
	r := Build(fixtureInput())
	out := writeJSON(t, r)
	// The streaming writer must say exactly what encoding/json says of the value, the
	// verdict being Verdict()'s, the function the exit code comes from (issue 11).
	rec := r.Verdict().Record()
	r.Judged = &rec
	std, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(semantic(t, out), semantic(t, std)) {
		t.Fatalf("streamed JSON differs from json.Marshal:\n%s\n---\n%s", out, std)
	}
	// One result per line.
	if n := strings.Count(string(out), `{"id":"F-`); n != len(r.Results)+len(r.Drift.Resolved) {
		t.Errorf("%d result lines, want %d", n, len(r.Results)+len(r.Drift.Resolved))
	}
}

func TestJSONEmptyReportMatchesSchema(t *testing.T) {
	r := Build(BuildInput{Run: RunInfo{ID: "empty"}})
	out := writeJSON(t, r)
	for _, want := range []string{`"results": []`, `"drift": null`, `"value":null`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("empty report lacks %s:\n%s", want, out)
		}
	}
}

func TestSchemaRejects(t *testing.T) {
	base := semantic(t, writeJSON(t, Build(fixtureInput()))).(map[string]any)
	sch := compileSchema(t)
	cases := map[string]func(m map[string]any){
		"unknown top-level field": func(m map[string]any) { m["extra"] = 1 },
		"wrong schema tag":        func(m map[string]any) { m["schema"] = "rdsaudit.report/v2" },
		"bad severity":            func(m map[string]any) { m["results"].([]any)[0].(map[string]any)["severity"] = "severe" },
		"missing run id":          func(m map[string]any) { delete(m["run"].(map[string]any), "id") },
		"count as string": func(m map[string]any) {
			m["coverage"].(map[string]any)["targeted"] = "4"
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			var m map[string]any
			b, _ := json.Marshal(base)
			_ = json.Unmarshal(b, &m)
			mutate(m)
			if err := sch.Validate(m); err == nil {
				t.Fatal("schema accepted an invalid report")
			}
		})
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	want := writeJSON(t, Build(fixtureInput()))
	for seed := int64(1); seed <= 5; seed++ {
		in := fixtureInput()
		rnd := rand.New(rand.NewSource(seed))
		rnd.Shuffle(len(in.Evidence), func(i, j int) { in.Evidence[i], in.Evidence[j] = in.Evidence[j], in.Evidence[i] })
		res := in.Evaluation.Results
		rnd.Shuffle(len(res), func(i, j int) { res[i], res[j] = res[j], res[i] })
		wv := in.Evaluation.Waivers
		rnd.Shuffle(len(wv), func(i, j int) { wv[i], wv[j] = wv[j], wv[i] })
		if got := writeJSON(t, Build(in)); !bytes.Equal(got, want) {
			t.Fatalf("seed %d: output depends on input order", seed)
		}
	}
}

func TestBuildContent(t *testing.T) {
	r := Build(fixtureInput())
	c := r.Coverage
	if c.Targeted != 4 || c.Collected != 3 || c.Failed != 1 || len(c.ByClass) != 1 || c.ByClass[0].Class != "auth" {
		t.Errorf("coverage = %+v", c)
	}
	if got := []string{c.Hosts[0].Name, c.Hosts[1].Name, c.Hosts[2].Name, c.Hosts[3].Name}; !reflect.DeepEqual(got,
		[]string{"LS-01", "RDSH-01", "rdsh-02", "RDSH-03"}) {
		t.Errorf("host order %v", got)
	}
	if len(r.Hosts) != 3 || r.Hosts[0].Name != "RDSH-01" || r.Hosts[0].ModeSource != "policy" || *r.Hosts[0].Mode != 4 {
		t.Errorf("hosts %+v", r.Hosts)
	}
	if h := r.Hosts[1]; h.ModeSource != "local" || *h.GraceDays != 140 || h.GraceKeyWritten == nil || h.InstallDate == nil ||
		h.InstallDate.Format("2006-01-02T15:04") != "2023-01-15T08:30" {
		t.Errorf("rdsh-02 %+v", h)
	}
	if len(r.LicenseServers) != 1 || len(r.LicenseServers[0].KeyPacks) != 2 || r.LicenseServers[0].KeyPacks[0].ID != 2 ||
		!r.LicenseServers[0].KeyPacks[0].Total.Unlimited || r.LicenseServers[0].ActivationName != "activated" {
		t.Errorf("license servers %+v", r.LicenseServers)
	}
	if len(r.IssuedCALs) != 2 || r.IssuedCALs[0].Computer != "CLIENT-03" {
		t.Errorf("issued %+v", r.IssuedCALs)
	}
	// 9 results: 3 pass, 4 fail (1 waived), 1 error, 1 n/a → 3 / (3+3+1)
	if s := r.Score; s.Value == nil || *s.Value != 42.9 || s.Passed != 3 || s.Failed != 3 || s.Errors != 1 || s.Waived != 1 {
		t.Errorf("score %+v", s)
	}
	// Severity counts are failures only: the high-severity error is in Score.Errors.
	if r.Severities[0].Severity != rules.SevCritical || r.Severities[0].Findings != 1 || r.Severities[1].Findings != 1 ||
		r.Severities[1].Waived != 1 {
		t.Errorf("severities %+v", r.Severities)
	}
	var mode RuleCoverage
	for _, rc := range r.RuleCoverage {
		if rc.RuleID == "RDS-MODE-001" {
			mode = rc
		}
	}
	if mode.Subjects != 3 || mode.Pass != 1 || mode.Fail != 1 || mode.Error != 1 || mode.Title == "" {
		t.Errorf("rule coverage %+v", mode)
	}
	if len(r.Evidence) != 4 || r.Evidence[0].Path != "evidence/ls-01.json" || len(r.Evidence[0].SHA256) != 64 {
		t.Errorf("evidence refs %+v", r.Evidence)
	}
	for _, res := range r.Results {
		if res.ID == "" {
			t.Errorf("result without ID: %+v", res)
		}
	}
	// RDSH-03 was not collected: its unchecked rule is counted, not a finding.
	f := r.Findings()
	if len(f) != 4 || f[0].Severity != rules.SevCritical || r.Coverage.NotChecked != 1 {
		t.Errorf("findings %d, first %+v, not checked %d", len(f), f[0], r.Coverage.NotChecked)
	}
}

// golden returns the golden file at path, which -update first rewrites with got.
func golden(t *testing.T, path string, got []byte) []byte {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./report -run %s -update and review the diff)", err, t.Name())
	}
	return want
}

func TestGoldenJSON(t *testing.T) {
	got := writeJSON(t, Build(fixtureInput()))
	path := filepath.Join("testdata", "report.golden.json")
	want := golden(t, path, got)
	validate(t, want)
	if !reflect.DeepEqual(semantic(t, got), semantic(t, want)) {
		t.Errorf("report.json differs from %s (if intended: -update and review the diff)\n%s", path, got)
	}
}

func TestDecode(t *testing.T) {
	r := Build(fixtureInput())
	out := writeJSON(t, r)
	back, err := Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if again := writeJSON(t, back); !bytes.Equal(again, out) {
		t.Errorf("decode → write is not the identity")
	}
	bad := map[string]string{
		"unknown field": strings.Replace(string(out), `"schema":`, `"bogus": 1, "schema":`, 1),
		"wrong schema":  strings.Replace(string(out), Schema, "rdsaudit.report/v0", 1),
		"trailing data": string(out) + "{}",
		"not json":      "nope",
	}
	for name, in := range bad {
		if _, err := Decode(strings.NewReader(in)); err == nil {
			t.Errorf("%s: Decode accepted it", name)
		}
	}
}

func TestWriterFor(t *testing.T) {
	for _, f := range Formats() {
		if w, err := WriterFor(f.Name); err != nil || w == nil {
			t.Errorf("WriterFor(%q) = %v, %v", f.Name, w, err)
		}
	}
	if _, err := WriterFor("csv"); err == nil || !strings.Contains(err.Error(), `"csv"`) {
		t.Errorf("WriterFor(csv) error %v, want one naming the format", err)
	}
}

func TestEvidenceFileNames(t *testing.T) {
	got := EvidenceFileNames([]string{"RDSH-01", "rdsh-01", "ls01.corp.example", "../../etc/passwd", "a b", ".hidden", "", "ok_name"})
	if got["ls01.corp.example"] != "ls01.corp.example.json" || got["ok_name"] != "ok_name.json" {
		t.Errorf("plain names changed: %v", got)
	}
	if got["RDSH-01"] == got["rdsh-01"] || !strings.HasPrefix(got["RDSH-01"], "rdsh-01-") {
		t.Errorf("case collision not disambiguated: %v", got)
	}
	seen := map[string]bool{}
	for h, n := range got {
		if seen[n] || strings.ContainsAny(n, `/\ `) || strings.HasPrefix(n, ".") || n == ".json" {
			t.Errorf("%q → unsafe or duplicate %q", h, n)
		}
		seen[n] = true
	}
}

// A signed run's report.json matches the schema: run.signing_key is the fingerprint
// KeyFingerprint prints (the schema's pattern once said sha256:hex, which no signed
// report matched).
func TestSignedReportMatchesSchema(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	r := Build(fixtureInput())
	r.Run.SigningKey = KeyFingerprint(pub)
	writeJSON(t, r)
}
