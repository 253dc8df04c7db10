package report

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestStageAddFile: an added file lands in the run directory, is listed in the manifest
// (so Verify checks it), and cannot take the place of evidence or the manifest.
func TestStageAddFile(t *testing.T) {
	rep, evs := sampleReport(t)
	out := t.TempDir()
	st, err := NewStage(out, rep.Run.ID, hostNames(evs))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Abort()
	for _, ev := range evs {
		if _, err := st.AddEvidence(ev); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []string{"evidence/x.json", ManifestName, SignatureFile, "../x", "/abs", "evidence", "."} {
		if _, err := st.AddFile(bad, []byte("x")); err == nil {
			t.Errorf("AddFile(%q) accepted", bad)
		}
	}
	if _, err := st.AddFile("bundles/site-a_1/manifest.json", []byte("{}\n")); err != nil {
		t.Fatal(err)
	}
	dir, err := st.Publish(context.Background(), rep, PublishOptions{Writers: map[string]Writer{"report.json": JSON{}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(dir, nil); err != nil {
		t.Fatalf("Verify = %v", err)
	}
	p := filepath.Join(dir, "bundles", "site-a_1", "manifest.json")
	if err := os.WriteFile(p, []byte("{\"x\":1}\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := Verify(dir, nil); err == nil {
		t.Error("Verify accepted an altered added file")
	}
	if _, err := st.AddFile("late.json", nil); err == nil {
		t.Error("AddFile after Publish accepted")
	}
}
