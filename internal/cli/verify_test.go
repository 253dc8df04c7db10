package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// signedRun runs the sample audit signed with a fresh key and returns the run
// directory and the key prefix (PREFIX.key, PREFIX.pub).
func signedRun(t *testing.T) (dir, prefix string) {
	t.Helper()
	chdirRoot(t)
	out := t.TempDir()
	prefix = filepath.Join(t.TempDir(), "audit")
	if code, stdout, stderr := rdsaudit(t, sampleNow, "keygen", "--out", prefix); code != ExitOK || !strings.Contains(stdout, "fingerprint: SHA256:") {
		t.Fatalf("keygen exit %d\n%s%s", code, stdout, stderr)
	}
	t.Setenv("RDSAUDIT_SIGNING_KEY_FILE", prefix+".key")
	if code, stdout, stderr := rdsaudit(t, sampleNow, "run", "--config", "samples/config.yaml", "--output-dir", out); code != ExitCoverage {
		t.Fatalf("run exit %d\n%s%s", code, stdout, stderr)
	}
	return runDirs(t, out)[0], prefix
}

func copyDir(t *testing.T, src, dst string) {
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

// TestVerifyRunIdentityCLI: verify prints the run the manifest records; a complete,
// validly signed run copied under another run's name fails with exit 5; without
// --pubkey, verify says plainly that only integrity was checked, and which key the
// manifest names (issue 14, defect 5).
func TestVerifyRunIdentityCLI(t *testing.T) {
	dir, prefix := signedRun(t)
	id := filepath.Base(dir)
	code, stdout, stderr := rdsaudit(t, sampleNow, "verify", dir, "--pubkey", prefix+".pub")
	if code != ExitOK || !strings.Contains(stdout, "run:       "+id+", started ") || !strings.Contains(stdout, "signature: valid, by key SHA256:") {
		t.Fatalf("verify: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = rdsaudit(t, sampleNow, "verify", dir)
	if code != ExitOK || !strings.Contains(stdout, "INTEGRITY ONLY, authenticity not checked") ||
		!strings.Contains(stdout, "signature: present, by SHA256:") || !strings.Contains(stdout, "NOT CHECKED") {
		t.Errorf("verify without --pubkey: exit %d\n%s%s", code, stdout, stderr)
	}
	renamed := filepath.Join(t.TempDir(), "20991231T235959Z")
	copyDir(t, dir, renamed)
	code, stdout, stderr = rdsaudit(t, sampleNow, "verify", renamed, "--pubkey", prefix+".pub")
	if code != ExitVerifyFail || !strings.Contains(stderr, `records run "`+id+`"`) || !strings.Contains(stderr, `the directory is named "20991231T235959Z"`) ||
		!strings.Contains(stdout, "run:       "+id) {
		t.Errorf("renamed run: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestImportVerification: import refuses what it cannot prove authentic unless
// --unverified, which history records; a tampered run is refused even then.
func TestImportVerification(t *testing.T) {
	dir, prefix := signedRun(t)
	id := filepath.Base(dir)
	db := filepath.Join(t.TempDir(), "h.db")

	// A signed run, no key: refused (exit 2), naming the way out.
	code, stdout, stderr := rdsaudit(t, sampleNow, "import", dir, "--db", db)
	if code != ExitUsage || !strings.Contains(stderr, "no public key") || !strings.Contains(stderr, "--unverified") {
		t.Errorf("import without key: exit %d\n%s%s", code, stdout, stderr)
	}
	// A wrong key: a failed check (exit 5), whatever --unverified says.
	other := filepath.Join(t.TempDir(), "other")
	if code, _, _ := rdsaudit(t, sampleNow, "keygen", "--out", other); code != ExitOK {
		t.Fatal("keygen")
	}
	if code, stdout, stderr = rdsaudit(t, sampleNow, "import", dir, "--db", db, "--pubkey", other+".pub", "--unverified"); code != ExitVerifyFail || !strings.Contains(stderr, "manifest.sig") {
		t.Errorf("import with a wrong key: exit %d\n%s%s", code, stdout, stderr)
	}
	// The right key (from the configuration's signing key): verified, recorded "import".
	if code, stdout, stderr = rdsaudit(t, sampleNow, "import", dir, "--config", "samples/config.yaml", "--db", db); code != ExitOK || !strings.Contains(stdout, "verified: hashes match, signature by key SHA256:") {
		t.Fatalf("import with the configured key: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, _ = rdsaudit(t, sampleNow, "history", "--db", db); code != ExitOK || !strings.Contains(stdout, id) || strings.Contains(stdout, "import-unverified") {
		t.Errorf("history after a verified import:\n%s", stdout)
	}

	// No manifest: refused; with --unverified imported and recorded as such.
	bare := filepath.Join(t.TempDir(), "20200101T000000Z")
	copyDir(t, dir, bare)
	os.Remove(filepath.Join(bare, "manifest.json"))
	os.Remove(filepath.Join(bare, "manifest.sig"))
	// ... and re-dated, so that it is another run to the store.
	raw, err := os.ReadFile(filepath.Join(bare, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(bare, "report.json"), strings.ReplaceAll(string(raw), id, "20200101T000000Z"))
	db2 := filepath.Join(t.TempDir(), "h2.db")
	if code, stdout, stderr = rdsaudit(t, sampleNow, "import", bare, "--db", db2, "--pubkey", prefix+".pub"); code != ExitUsage || !strings.Contains(stderr, "no manifest.json") {
		t.Errorf("import without manifest: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr = rdsaudit(t, sampleNow, "import", bare, "--db", db2, "--unverified"); code != ExitOK || !strings.Contains(stdout, "UNVERIFIED") {
		t.Fatalf("import --unverified: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, _ = rdsaudit(t, sampleNow, "history", "--db", db2); code != ExitOK || !strings.Contains(stdout, "import-unverified") {
		t.Errorf("history does not show the unverified import:\n%s", stdout)
	}

	// A tampered run whose manifest was re-hashed passes integrity, not authenticity:
	// refused by default; with the key a failed check.
	ev := filepath.Join(dir, "evidence", "rdsh-a05.json")
	b, err := os.ReadFile(ev)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, ev, strings.Replace(string(b), "140", "100", 1))
	db3 := filepath.Join(t.TempDir(), "h3.db")
	if code, stdout, stderr = rdsaudit(t, sampleNow, "import", dir, "--db", db3, "--pubkey", prefix+".pub", "--unverified"); code != ExitVerifyFail || !strings.Contains(stderr, "rdsh-a05.json: altered") {
		t.Errorf("import of a tampered run: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestInvalidManifestIsAFailedCheck: a manifest.json that is garbled, has an unknown
// field or another schema is a run that does not match its manifest: verify and import
// exit 5 (not 2 or 4), naming the file.
func TestInvalidManifestIsAFailedCheck(t *testing.T) {
	dir, prefix := signedRun(t)
	genuine, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ data, want string }{
		"garbled":       {`{"schema": "rdsaudit.manifest/v1", "files": [`, "manifest.json: not a valid manifest"},
		"unknown field": {strings.Replace(string(genuine), "{", `{"extra": true,`, 1), `manifest.json: not a valid manifest: json: unknown field "extra"`},
		"schema":        {`{"schema": "rdsaudit.manifest/v0", "run": {}, "files": []}`, `manifest.json: schema "rdsaudit.manifest/v0"`},
	} {
		t.Run(name, func(t *testing.T) {
			writeFile(t, filepath.Join(dir, "manifest.json"), tc.data)
			code, stdout, stderr := rdsaudit(t, sampleNow, "verify", dir, "--pubkey", prefix+".pub")
			if code != ExitVerifyFail || !strings.Contains(stderr, tc.want) {
				t.Errorf("verify: exit %d, want %d saying %q\n%s%s", code, ExitVerifyFail, tc.want, stdout, stderr)
			}
			db := filepath.Join(t.TempDir(), "h.db")
			code, stdout, stderr = rdsaudit(t, sampleNow, "import", dir, "--db", db, "--pubkey", prefix+".pub", "--unverified")
			if code != ExitVerifyFail || !strings.Contains(stderr, tc.want) {
				t.Errorf("import: exit %d, want %d saying %q\n%s%s", code, ExitVerifyFail, tc.want, stdout, stderr)
			}
			if strings.Contains(stdout+stderr, "PRIVATE KEY") {
				t.Errorf("key material printed:\n%s%s", stdout, stderr)
			}
		})
	}
}
