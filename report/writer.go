package report

import (
	"context"
	"fmt"
	"io"
)

// Writer renders a report in one format.
type Writer interface {
	Write(ctx context.Context, w io.Writer, r *Report) error
}

// Formats returns the formats WriterFor knows, with their file names in a run directory.
func Formats() []struct{ Name, File string } {
	return []struct{ Name, File string }{{"json", "report.json"}, {"xlsx", "report.xlsx"}}
}

// WriterFor returns the writer for a format name ("json", "xlsx").
func WriterFor(format string) (Writer, error) {
	switch format {
	case "json":
		return JSON{}, nil
	case "xlsx":
		return XLSX{}, nil
	default:
		return nil, fmt.Errorf("unknown report format %q (want json or xlsx)", format)
	}
}
