package history

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rdsaudit/rdsaudit/report"
	"github.com/rdsaudit/rdsaudit/rules"
)

// signedArchive writes an archived run (writeReport) with an evidence file of RDSH01
// the report lists, in a directory named after the run, with a manifest of its files
// signed by a new key, which it returns.
func signedArchive(t *testing.T, id string) (string, ed25519.PublicKey) {
	t.Helper()
	src := writeReport(t, id, month(0), 12, []rules.Result{pass("RDS-LS-001", "RDSH01")})
	dir := filepath.Join(t.TempDir(), id)
	if err := os.MkdirAll(filepath.Join(dir, report.EvidenceDir), 0o750); err != nil {
		t.Fatal(err)
	}
	ev := []byte(`{"not":"decodable evidence"}`)
	evPath := report.EvidenceDir + "/rdsh01.json"
	raw, err := os.ReadFile(filepath.Join(src, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := report.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	rep.Evidence = []report.EvidenceRef{{Host: "RDSH01", Path: evPath, SHA256: sum(ev), Size: int64(len(ev))}}
	var b bytes.Buffer
	if err := (report.JSON{}).Write(ctx, &b, rep); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"report.json": b.Bytes(), evPath: ev}
	man := report.Manifest{Schema: report.ManifestSchema, Run: rep.Run}
	for _, p := range []string{"report.json", evPath} {
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(p)), files[p], 0o640); err != nil {
			t.Fatal(err)
		}
		man.Files = append(man.Files, report.ManifestFile{Path: p, SHA256: sum(files[p]), Size: int64(len(files[p]))})
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	man.Signer = report.KeyFingerprint(pub)
	mj, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, report.ManifestName), mj, 0o640); err != nil {
		t.Fatal(err)
	}
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(priv, mj))
	if err := os.WriteFile(filepath.Join(dir, report.SignatureFile), []byte(sig+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	return dir, pub
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestImportChecksWhatItReads: Import checks the report.json and the evidence it reads
// after verification against the verified manifest, not against the lists in that
// report.json: a file changed between verification and reading is refused as a failed
// check (*report.VerifyError, exit 5), and nothing is recorded (review finding: report.json
// was opened again and never hashed).
func TestImportChecksWhatItReads(t *testing.T) {
	const id = "ARCH-SIGNED"
	for name, tc := range map[string]struct {
		tamper func(t *testing.T, dir string)
		want   string
	}{
		"report.json rewritten": {func(t *testing.T, dir string) {
			p := filepath.Join(dir, "report.json")
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b = bytes.Replace(b, []byte(`"rdsh"`), []byte(`"forged"`), 1)
			if err := os.WriteFile(p, b, 0o640); err != nil {
				t.Fatal(err)
			}
		}, "report.json: changed since it was verified"},
		"evidence rewritten": {func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "evidence", "rdsh01.json"), []byte(`{"forged":true}`), 0o640); err != nil {
				t.Fatal(err)
			}
		}, "evidence/rdsh01.json: changed since it was verified"},
		"evidence removed": {func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "evidence", "rdsh01.json")); err != nil {
				t.Fatal(err)
			}
		}, "evidence/rdsh01.json: verified, but cannot be read now"},
	} {
		t.Run(name, func(t *testing.T) {
			s, _ := openTemp(t)
			dir, pub := signedArchive(t, id)
			testHookAfterVerify = func(d string) { tc.tamper(t, d) }
			defer func() { testHookAfterVerify = nil }()
			_, err := s.Import(ctx, dir, ImportOptions{PublicKey: pub})
			var ve *report.VerifyError
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Import = %v, want a *report.VerifyError saying %q", err, tc.want)
			}
			if runs, err := s.Runs(ctx); err != nil || len(runs) != 0 {
				t.Errorf("runs recorded after a refused import: %v %v", runs, err)
			}
		})
	}
	// Untouched: imported, verified.
	s, _ := openTemp(t)
	dir, pub := signedArchive(t, id)
	if got, err := s.Import(ctx, dir, ImportOptions{PublicKey: pub}); err != nil || got != id {
		t.Fatalf("Import(untouched) = %q, %v", got, err)
	}
}

// TestReadRunFile: the function Import reads run files with, given a verified manifest,
// returns only bytes the manifest lists.
func TestReadRunFile(t *testing.T) {
	dir, pub := signedArchive(t, "ARCH-READ")
	ck, err := report.VerifyRun(dir, pub)
	if err != nil || !ck.Authentic {
		t.Fatalf("VerifyRun = %v", err)
	}
	if _, err := readRunFile(dir, "report.json", ck); err != nil {
		t.Fatalf("readRunFile(verified) = %v", err)
	}
	p := filepath.Join(dir, "report.json")
	b, _ := os.ReadFile(p)
	if err := os.WriteFile(p, append(b, '\n'), 0o640); err != nil {
		t.Fatal(err)
	}
	var ve *report.VerifyError
	if _, err := readRunFile(dir, "report.json", ck); !errors.As(err, &ve) || !strings.Contains(err.Error(), "report.json: changed since it was verified") {
		t.Errorf("readRunFile(appended) = %v", err)
	}
	if _, err := readRunFile(dir, "other.json", ck); !errors.As(err, &ve) || !strings.Contains(err.Error(), "other.json: not in manifest.json") {
		t.Errorf("readRunFile(unlisted) = %v", err)
	}
	if _, err := readRunFile(dir, "report.json", nil); err != nil {
		t.Errorf("readRunFile(no manifest) = %v", err)
	}
}
