package report

import (
	"bytes"
	"context"
	"testing"
)

// FuzzDecode feeds a report.json to Decode, as `import` reads one from an archived run:
// it never panics, and a report it accepts is written back by the JSON writer into a
// document Decode accepts again (seeds: testdata/fuzz/FuzzDecode, the golden reports).
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"schema": "rdsaudit.report/v1"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Decode(bytes.NewReader(data))
		if err != nil {
			return
		}
		var b bytes.Buffer
		if err := (JSON{}).Write(context.Background(), &b, r); err != nil {
			return // the writer refuses what it cannot render; it must not panic
		}
		if _, err := Decode(bytes.NewReader(b.Bytes())); err != nil {
			t.Fatalf("a decoded report, written back, no longer decodes: %v\n%s", err, b.Bytes())
		}
	})
}
