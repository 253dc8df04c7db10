package report

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyRun copies a run directory to dst (a copy an attacker or a careless archive makes).
func copyRun(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o750)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o640)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func problems(t *testing.T, err error) string {
	t.Helper()
	var ve *VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("want a *VerifyError, got %v", err)
	}
	return strings.Join(ve.Problems, "\n")
}

// TestVerifyRunIdentity: a complete, validly signed old run copied under a new run-ID
// name does not verify, and says which run it is (issue 14, defect 5).
func TestVerifyRunIdentity(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	dir, r := publishFixture(t, PublishOptions{Signer: priv})
	ck, err := VerifyRun(dir, pub)
	if err != nil || !ck.Authentic || ck.Run.ID != r.Run.ID || !ck.Run.StartedAt.Equal(r.Run.StartedAt) {
		t.Fatalf("original: %+v %v", ck, err)
	}
	if ck.Signer != KeyFingerprint(pub) || ck.Key != ck.Signer || !strings.HasPrefix(ck.Signer, "SHA256:") {
		t.Errorf("signer %q, key %q, want %q", ck.Signer, ck.Key, KeyFingerprint(pub))
	}
	renamed := filepath.Join(t.TempDir(), "20261202T080000Z")
	copyRun(t, dir, renamed)
	ck, err = VerifyRun(renamed, pub)
	got := problems(t, err)
	if !strings.Contains(got, `records run "20261102T080000Z-ab12" (started 2026-11-02T08:00:00Z), but the directory is named "20261202T080000Z"`) {
		t.Errorf("renamed run: %s", got)
	}
	if ck == nil || ck.Run.ID != r.Run.ID {
		t.Errorf("renamed run: checked %+v", ck)
	}
}

// TestVerifyRejectsAdditions: an empty extra directory and bytes after the manifest's
// JSON document are reported, as an extra file is.
func TestVerifyRejectsAdditions(t *testing.T) {
	dir, _ := publishFixture(t, PublishOptions{})
	if err := os.Mkdir(filepath.Join(dir, "stash"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, EvidenceDir, "more"), 0o750); err != nil {
		t.Fatal(err)
	}
	got := problems(t, Verify(dir, nil))
	for _, want := range []string{"stash/: extra directory not in manifest", "evidence/more/: extra directory not in manifest"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems\n%s\nlack %q", got, want)
		}
	}

	dir, _ = publishFixture(t, PublishOptions{})
	f, err := os.OpenFile(filepath.Join(dir, ManifestName), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"files": []}` + "\n")
	f.Close()
	if got := problems(t, Verify(dir, nil)); !strings.Contains(got, "manifest.json: data after the JSON document") {
		t.Errorf("trailing bytes: %s", got)
	}
}

// TestVerifySignerClaim: without a key the check says which key the manifest names; a
// wrong key is named in the error beside the one the manifest names.
func TestVerifySignerClaim(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	dir, _ := publishFixture(t, PublishOptions{Signer: priv})
	ck, err := VerifyRun(dir, nil)
	if err != nil || ck.Authentic || !ck.Signed || ck.Signer != KeyFingerprint(pub) || ck.Key != "" {
		t.Fatalf("no key: %+v %v", ck, err)
	}
	got := problems(t, Verify(dir, other))
	if !strings.Contains(got, KeyFingerprint(other)) || !strings.Contains(got, "the manifest says key "+KeyFingerprint(pub)) {
		t.Errorf("wrong key: %s", got)
	}
}
