package report

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
)

// JSON writes report.json (schema rdsaudit.report/v1). The output is deterministic:
// fields in a fixed order, one array element per line, so that two runs diff cleanly and
// a 100,000-result report is streamed rather than built in memory.
type JSON struct{}

// Write implements Writer.
func (JSON) Write(ctx context.Context, w io.Writer, r *Report) error {
	jw := &jsonWriter{w: bufio.NewWriterSize(w, 256<<10), ctx: ctx}
	jw.enc = json.NewEncoder(&jw.buf)
	jw.enc.SetEscapeHTML(false)
	jw.raw("{\n")
	jw.field("schema", r.Schema, false)
	jw.field("run", r.Run, false)
	// The verdict is computed here from the report, by the function the exit code
	// comes from; a decoded report's Judged is never written back.
	jw.field("verdict", r.Verdict().Record(), false)
	jw.field("coverage", r.Coverage, false)
	jw.field("score", r.Score, false)
	jsonArray(jw, "severities", r.Severities)
	jsonArray(jw, "results", r.Results)
	jsonArray(jw, "rule_coverage", r.RuleCoverage)
	jsonArray(jw, "hosts", r.Hosts)
	jsonArray(jw, "license_servers", r.LicenseServers)
	jsonArray(jw, "position", r.Position)
	jsonArray(jw, "issued_cals", r.IssuedCALs)
	jw.field("drift", r.Drift, false)
	if len(r.Changes) > 0 {
		jsonArray(jw, "changes", r.Changes)
	}
	jsonArray(jw, "waivers", r.Waivers)
	jsonArray(jw, "catalogue", r.Catalogue)
	jw.field("evidence", r.Evidence, r.PerUser == nil)
	if r.PerUser != nil { // peruser.go
		jw.field("per_user", r.PerUser, true)
	}
	jw.raw("}\n")
	if jw.err != nil {
		return fmt.Errorf("write report json: %w", jw.err)
	}
	if err := jw.w.Flush(); err != nil {
		return fmt.Errorf("write report json: %w", err)
	}
	return nil
}

type jsonWriter struct {
	w   *bufio.Writer
	ctx context.Context
	buf bytes.Buffer
	enc *json.Encoder
	err error
	n   int
}

func (j *jsonWriter) raw(s string) {
	if j.err == nil {
		_, j.err = j.w.WriteString(s)
	}
}

func (j *jsonWriter) value(v any) {
	if j.err != nil {
		return
	}
	if j.n++; j.n%4096 == 0 {
		if j.err = j.ctx.Err(); j.err != nil {
			return
		}
	}
	j.buf.Reset()
	if j.err = j.enc.Encode(v); j.err != nil {
		return
	}
	_, j.err = j.w.Write(bytes.TrimSuffix(j.buf.Bytes(), []byte("\n")))
}

func (j *jsonWriter) field(name string, v any, last bool) {
	j.raw("  \"" + name + "\": ")
	j.value(v)
	j.raw(sep(last))
}

func sep(last bool) string {
	if last {
		return "\n"
	}
	return ",\n"
}

// jsonArray writes a top-level array with one element per line; a nil slice is
// written as [] (the schema never allows null arrays at the top level).
func jsonArray[T any](j *jsonWriter, name string, items []T) {
	if len(items) == 0 {
		j.raw("  \"" + name + "\": [],\n")
		return
	}
	j.raw("  \"" + name + "\": [\n")
	for i := range items {
		j.raw("    ")
		j.value(&items[i])
		j.raw(sep(i == len(items)-1))
	}
	j.raw("  ],\n")
}

// Decode reads a report.json strictly: unknown fields, a schema tag other than
// rdsaudit.report/v1 and trailing data are errors.
func Decode(rd io.Reader) (*Report, error) {
	dec := json.NewDecoder(bufio.NewReader(rd))
	dec.DisallowUnknownFields()
	var r Report
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("decode report: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("decode report: trailing data after document")
	}
	if r.Schema != Schema {
		return nil, fmt.Errorf("decode report: schema %q, want %q", r.Schema, Schema)
	}
	return &r, nil
}
