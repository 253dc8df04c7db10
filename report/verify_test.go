package report

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
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

// TestVerifyManifestChecksTheBytesGiven: VerifyManifest checks the signature and the
// hashes against exactly the manifest bytes it is given, not what manifest.json holds
// by then, and Checked carries those bytes (a caller uses what was verified).
func TestVerifyManifestChecksTheBytesGiven(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	dir, _ := publishFixture(t, PublishOptions{Signer: priv})
	genuine, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := os.ReadFile(filepath.Join(dir, SignatureFile))
	if err != nil {
		t.Fatal(err)
	}
	var man Manifest
	if err := json.Unmarshal(genuine, &man); err != nil {
		t.Fatal(err)
	}
	man.Run.ToolVersion = "forged"
	forged, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	// On disk the forged manifest; given the genuine bytes: verified, and those returned.
	if err := os.WriteFile(filepath.Join(dir, ManifestName), forged, 0o640); err != nil {
		t.Fatal(err)
	}
	ck, err := VerifyManifest(dir, genuine, sig, pub)
	if err != nil || !ck.Authentic || !bytes.Equal(ck.ManifestBytes, genuine) || !bytes.Equal(ck.Signature, sig) {
		t.Fatalf("genuine bytes, forged file: %v (authentic %v)", err, ck != nil && ck.Authentic)
	}
	if ck.Manifest.Run.ToolVersion == "forged" {
		t.Errorf("Checked.Manifest parsed from another manifest than the bytes given")
	}
	// On disk the genuine one; given forged bytes: the signature is checked on them.
	if err := os.WriteFile(filepath.Join(dir, ManifestName), genuine, 0o640); err != nil {
		t.Fatal(err)
	}
	ck, err = VerifyManifest(dir, forged, sig, pub)
	if got := problems(t, err); !strings.Contains(got, "manifest.sig: signature does not match") || ck.Authentic {
		t.Errorf("forged bytes, genuine file: %s", got)
	}
	if _, err := VerifyManifest(dir, genuine, nil, pub); !strings.Contains(problems(t, err), "manifest.sig: missing") {
		t.Errorf("no signature given: %v", err)
	}

	// Match: a file read after verification is checked against the verified manifest.
	ck, err = VerifyManifest(dir, genuine, sig, pub)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ck.Match("report.json", rep); err != nil {
		t.Errorf("Match(report.json as verified) = %v", err)
	}
	if got := problems(t, ck.Match("report.json", append(rep, ' '))); !strings.Contains(got, "report.json: changed since it was verified") {
		t.Errorf("Match(altered) = %s", got)
	}
	if got := problems(t, ck.Match("evil.json", rep)); !strings.Contains(got, "evil.json: not in manifest.json") {
		t.Errorf("Match(unlisted) = %s", got)
	}
}

// TestVerifyInvalidManifest: a manifest.json that is not a manifest document (garbled,
// an unknown field, another schema) is a failed check, a *VerifyError naming the file,
// like any other mismatch; only an unreadable one is another error.
func TestVerifyInvalidManifest(t *testing.T) {
	dir, _ := publishFixture(t, PublishOptions{})
	genuine, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ data, want string }{
		"garbled":       {`{"schema": "rdsaudit/manifest`, "manifest.json: not a valid manifest"},
		"unknown field": {strings.Replace(string(genuine), `{`, `{"extra":1,`, 1), `manifest.json: not a valid manifest: json: unknown field "extra"`},
		"schema":        {`{"schema":"other/v9","run":{},"files":[]}`, `manifest.json: schema "other/v9"`},
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(dir, ManifestName), []byte(tc.data), 0o640); err != nil {
				t.Fatal(err)
			}
			ck, err := VerifyRun(dir, nil)
			if got := problems(t, err); !strings.Contains(got, tc.want) || ck != nil {
				t.Errorf("VerifyRun = %v, %v; want %q", ck, got, tc.want)
			}
		})
	}
	os.Remove(filepath.Join(dir, ManifestName))
	var ve *VerifyError
	if _, err := VerifyRun(dir, nil); err == nil || errors.As(err, &ve) {
		t.Errorf("no manifest: %v, want a plain error", err)
	}
}
