// Package schema holds the committed JSON Schema (draft 2020-12) of report.json,
// rdsaudit.report/v1. README.md beside it documents the format.
package schema

import _ "embed"

//go:embed report.schema.json
var reportJSON string

// ReportJSON returns report.schema.json (a new copy on each call).
func ReportJSON() []byte { return []byte(reportJSON) }

// ReportID is the schema's $id.
const ReportID = "https://github.com/rdsaudit/rdsaudit/report/schema/report.schema.json"
