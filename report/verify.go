package report

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// VerifyError lists every problem Verify found, each naming the file.
type VerifyError struct {
	Dir      string
	Problems []string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("verify %s: %s", e.Dir, strings.Join(e.Problems, "; "))
}

// Checked is what VerifyRun established about a run directory.
type Checked struct {
	// Run is the run metadata manifest.json records (covered by the signature when
	// one was checked).
	Run Run
	// Signed says manifest.sig exists; Signer is the key fingerprint the manifest
	// claims it was signed with ("" when it names none).
	Signed bool
	Signer string
	// Authentic says the signature was checked against the given key and is valid:
	// only then does the directory provably come from the key's holder. Without it
	// the hashes prove integrity against the manifest alone, which anyone who can
	// write the directory can recompute.
	Authentic bool
	// Key is the fingerprint of the key the signature was checked with ("" without).
	Key string
	// Dir is the directory checked.
	Dir string
	// ManifestBytes are the exact bytes of manifest.json every check was made on (the
	// signature covers them when Authentic), and Manifest is those bytes parsed: a
	// caller that uses the manifest, copies it or checks a file it reads later against
	// it must use these, never read manifest.json again (it may have changed since).
	ManifestBytes []byte
	Manifest      Manifest
	// Signature is the exact content of manifest.sig that was read (nil when absent).
	Signature []byte
}

// File returns the entry the checked manifest has for the slash-separated path rel.
func (c *Checked) File(rel string) (ManifestFile, bool) {
	for _, f := range c.Manifest.Files {
		if f.Path == rel {
			return f, true
		}
	}
	return ManifestFile{}, false
}

// Match checks data, the content of the run file rel as a caller read it after
// verification, against the checked manifest: a file not listed, or whose size or
// SHA-256 differs from the manifest's, is a *VerifyError naming the file (it changed
// since it was verified, or never was).
func (c *Checked) Match(rel string, data []byte) error {
	f, ok := c.File(rel)
	if !ok {
		return &VerifyError{Dir: c.Dir, Problems: []string{rel + ": not in " + ManifestName + ", so its content is not verified"}}
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); int64(len(data)) != f.Size || !strings.EqualFold(got, f.SHA256) {
		return &VerifyError{Dir: c.Dir, Problems: []string{fmt.Sprintf("%s: changed since it was verified (sha256 %s, size %d; %s says %s, %d)",
			rel, got, len(data), ManifestName, f.SHA256, f.Size)}}
	}
	return nil
}

// KeyFingerprint names an ed25519 public key: "SHA256:" and the unpadded base64 of the
// SHA-256 of its PKIX (SubjectPublicKeyInfo) encoding, as the .pub file holds it.
func KeyFingerprint(pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// Verify checks a run directory against its manifest (see VerifyRun).
func Verify(dir string, pub ed25519.PublicKey) error {
	_, err := VerifyRun(dir, pub)
	return err
}

// runIDTime matches the run IDs the audit chooses: its start, UTC to the second, and a
// suffix when two runs started within one second.
var runIDTime = regexp.MustCompile(`^(\d{8}T\d{6}Z)(-.+)?$`)

// VerifyRun checks a run directory against its manifest: manifest.json is one JSON
// document (nothing after it) of the manifest schema; every listed file exists with the
// recorded size and SHA-256; no other file or directory exists (the evidence directory
// excepted); the directory is named after the run ID the manifest records, and an ID
// that carries the start time matches the recorded start; and, when pub is not nil,
// manifest.sig holds a valid signature of manifest.json by pub. The error (a
// *VerifyError) names every problem, a manifest that is not a valid manifest document
// included; a manifest that cannot be read at all is another error. What it checked is
// returned either way, when the manifest could be parsed. manifest.json and
// manifest.sig are read once: Checked holds the exact bytes checked.
func VerifyRun(dir string, pub ed25519.PublicKey) (*Checked, error) {
	raw, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", dir, err)
	}
	sig, sigErr := os.ReadFile(filepath.Join(dir, SignatureFile))
	return verifyManifest(dir, raw, sig, sigErr, pub)
}

// VerifyManifest is VerifyRun on manifest bytes the caller already read from dir:
// every check (the signature, the hashes of the files in dir) is made against exactly
// manifest and sig (the content of manifest.sig; nil: there is none), and the
// returned Checked holds them, so what the caller then uses is what was verified.
func VerifyManifest(dir string, manifest, sig []byte, pub ed25519.PublicKey) (*Checked, error) {
	var sigErr error
	if sig == nil {
		sigErr = fs.ErrNotExist
	}
	return verifyManifest(dir, manifest, sig, sigErr, pub)
}

func verifyManifest(dir string, raw, sig []byte, sigErr error, pub ed25519.PublicKey) (*Checked, error) {
	invalid := func(format string, args ...any) error {
		return &VerifyError{Dir: dir, Problems: []string{ManifestName + ": " + fmt.Sprintf(format, args...)}}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var man Manifest
	if err := dec.Decode(&man); err != nil {
		return nil, invalid("not a valid manifest: %v", err)
	}
	if man.Schema != ManifestSchema {
		return nil, invalid("schema %q, want %q", man.Schema, ManifestSchema)
	}
	raw = bytes.Clone(raw)
	if sigErr == nil {
		sig = bytes.Clone(sig)
	} else {
		sig = nil
	}
	ck := &Checked{Run: man.Run, Signer: man.Signer, Dir: dir, ManifestBytes: raw, Manifest: man, Signature: sig}
	ve := &VerifyError{Dir: dir}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		ve.Problems = append(ve.Problems, fmt.Sprintf("%s: data after the JSON document (at byte %d)", ManifestName, dec.InputOffset()))
	}
	ve.Problems = append(ve.Problems, checkIdentity(dir, man.Run)...)
	ck.Signed = sigErr == nil
	if pub != nil {
		ck.Key = KeyFingerprint(pub)
		switch {
		case errors.Is(sigErr, fs.ErrNotExist):
			ve.Problems = append(ve.Problems, SignatureFile+": missing (a public key was given)")
		case sigErr != nil:
			ve.Problems = append(ve.Problems, SignatureFile+": "+sigErr.Error())
		default:
			s, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sig)))
			switch {
			case derr != nil || len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, raw, s):
				msg := SignatureFile + ": signature does not match " + ManifestName + " and the public key " + ck.Key
				if man.Signer != "" && man.Signer != ck.Key {
					msg += " (the manifest says key " + man.Signer + " signed it)"
				}
				ve.Problems = append(ve.Problems, msg)
			case man.Signer != "" && man.Signer != ck.Key:
				ve.Problems = append(ve.Problems, fmt.Sprintf("%s: signer %s, but the signature is by %s", ManifestName, man.Signer, ck.Key))
			default:
				ck.Authentic = true
			}
		}
	}
	listed := map[string]bool{ManifestName: true, SignatureFile: true}
	dirs := map[string]bool{".": true, EvidenceDir: true}
	for _, mf := range man.Files {
		p := mf.Path
		if !fs.ValidPath(p) || p == ManifestName || p == SignatureFile {
			ve.Problems = append(ve.Problems, fmt.Sprintf("%s: invalid path in manifest", p))
			continue
		}
		listed[p] = true
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
		got, err := hashFile(filepath.Join(dir, filepath.FromSlash(p)))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			ve.Problems = append(ve.Problems, p+": missing")
		case err != nil:
			ve.Problems = append(ve.Problems, p+": "+err.Error())
		case got.SHA256 != mf.SHA256 || got.Size != mf.Size:
			ve.Problems = append(ve.Problems, fmt.Sprintf("%s: altered (sha256 %s, size %d; manifest says %s, %d)", p, got.SHA256, got.Size, mf.SHA256, mf.Size))
		}
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir() && !dirs[rel]:
			ve.Problems = append(ve.Problems, rel+"/: extra directory not in manifest")
		case d.IsDir():
		case !listed[rel]:
			ve.Problems = append(ve.Problems, rel+": extra file not in manifest")
		case !d.Type().IsRegular():
			ve.Problems = append(ve.Problems, rel+": not a regular file")
		}
		return nil
	})
	if err != nil {
		ve.Problems = append(ve.Problems, err.Error())
	}
	if len(ve.Problems) > 0 {
		sort.Strings(ve.Problems)
		return ck, ve
	}
	return ck, nil
}

// checkIdentity compares the run the manifest records with the directory it is in: a
// run directory is named after its run ID (Publish names it so), so a run copied or
// renamed to another run's name does not pass for that run.
func checkIdentity(dir string, run Run) []string {
	name := filepath.Base(filepath.Clean(dir))
	if abs, err := filepath.Abs(dir); err == nil {
		name = filepath.Base(abs)
	}
	var problems []string
	if name != run.ID {
		problems = append(problems, fmt.Sprintf("%s: records run %q (started %s), but the directory is named %q",
			ManifestName, run.ID, run.StartedAt.UTC().Format(time.RFC3339), name))
	}
	if m := runIDTime.FindStringSubmatch(run.ID); m != nil {
		if t, err := time.Parse("20060102T150405Z", m[1]); err == nil && !t.Equal(run.StartedAt.UTC().Truncate(time.Second)) {
			problems = append(problems, fmt.Sprintf("%s: run ID %q names start %s, but the run records start %s",
				ManifestName, run.ID, t.Format(time.RFC3339), run.StartedAt.UTC().Format(time.RFC3339)))
		}
	}
	return problems
}
