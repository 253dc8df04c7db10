package report

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/rdsaudit/rdsaudit/evidence"
)

// ManifestSchema is the version tag of manifest.json.
const ManifestSchema = "rdsaudit.manifest/v1"

// File names in a run directory.
const (
	ManifestName  = "manifest.json"
	SignatureFile = "manifest.sig"
	EvidenceDir   = "evidence"
)

// Manifest lists every file of a run directory with its SHA-256, and the run metadata.
type Manifest struct {
	Schema string         `json:"schema"`
	Run    Run            `json:"run"`
	Files  []ManifestFile `json:"files"`
}

// ManifestFile is one file of the run directory, path relative with "/" separators.
type ManifestFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// PublishOptions tunes Publish.
type PublishOptions struct {
	// Signer, when set, signs manifest.json into manifest.sig (base64 ed25519 signature).
	Signer ed25519.PrivateKey
	// Writers renders the report files; nil means report.json (JSON) and report.xlsx (XLSX).
	Writers map[string]Writer
}

// ErrRunExists is returned by Publish when the final run directory already exists.
var ErrRunExists = errors.New("run directory already exists")

// Publish writes the run directory atomically: everything goes to
// <outDir>/.<run-id>.partial/ (report files, evidence/<host>.json, manifest.json,
// manifest.sig), each file and directory is fsynced, and the directory is then renamed
// to <outDir>/<run-id>/. A killed run leaves only a .partial directory, which readers
// ignore and CleanPartials removes. An existing final directory is ErrRunExists.
func Publish(ctx context.Context, outDir string, rep *Report, evs []*evidence.Evidence, opts PublishOptions) (dir string, err error) {
	id := rep.Run.ID
	if err := checkRunID(id); err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	final := filepath.Join(outDir, id)
	partial := filepath.Join(outDir, "."+id+".partial")
	if _, err := os.Lstat(final); err == nil {
		return "", fmt.Errorf("publish %s: %w", final, ErrRunExists)
	}
	if err := os.MkdirAll(outDir, 0o750); err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	// A partial directory of the same run ID is a killed attempt of this run: replace it.
	if err := os.RemoveAll(partial); err != nil {
		return "", fmt.Errorf("publish: remove stale %s: %w", partial, err)
	}
	if err := os.Mkdir(partial, 0o750); err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(partial)
		}
	}()
	if err := os.Mkdir(filepath.Join(partial, EvidenceDir), 0o750); err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	var files []ManifestFile
	add := func(rel string, write func(io.Writer) error) error {
		mf, err := writeFile(filepath.Join(partial, filepath.FromSlash(rel)), write)
		if err != nil {
			return fmt.Errorf("publish %s: %w", rel, err)
		}
		mf.Path = rel
		files = append(files, mf)
		return nil
	}
	writers := opts.Writers
	if writers == nil {
		writers = map[string]Writer{"report.json": JSON{}, "report.xlsx": XLSX{}}
	}
	names := make([]string, 0, len(writers))
	for n := range writers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		wr := writers[n]
		if err := add(n, func(w io.Writer) error { return wr.Write(ctx, w, rep) }); err != nil {
			return "", err
		}
	}
	fileNames := EvidenceFileNames(hostNames(evs))
	refs := make(map[string]EvidenceRef, len(rep.Evidence))
	for _, ref := range rep.Evidence {
		refs[ref.Path] = ref
	}
	seen := map[string]string{}
	for _, ev := range evs {
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("publish: %w", err)
		}
		name := fileNames[ev.Host.Name]
		if prev, dup := seen[name]; dup {
			return "", fmt.Errorf("publish: hosts %q and %q share evidence file %s (duplicate host?)", prev, ev.Host.Name, name)
		}
		seen[name] = ev.Host.Name
		rel := EvidenceDir + "/" + name
		if err := add(rel, func(w io.Writer) error { return evidence.Encode(w, ev) }); err != nil {
			return "", err
		}
		// report.json names this file with a hash: they must agree, or the report would
		// vouch for evidence it was not built from.
		if ref, ok := refs[rel]; ok {
			if got := files[len(files)-1]; ref.Host != ev.Host.Name || ref.SHA256 != got.SHA256 || ref.Size != got.Size {
				return "", fmt.Errorf("publish %s: the report's evidence reference (%s, sha256 %s) does not match the evidence given (%s, sha256 %s)",
					rel, ref.Host, ref.SHA256, ev.Host.Name, got.SHA256)
			}
			delete(refs, rel)
		}
	}
	if len(refs) > 0 {
		missing := make([]string, 0, len(refs))
		for p := range refs {
			missing = append(missing, p)
		}
		sort.Strings(missing)
		return "", fmt.Errorf("publish: the report references evidence not given to Publish: %s", strings.Join(missing, ", "))
	}
	if err := syncDir(filepath.Join(partial, EvidenceDir)); err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	man, err := json.MarshalIndent(Manifest{Schema: ManifestSchema, Run: rep.Run, Files: files}, "", "  ")
	if err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	man = append(man, '\n')
	if _, err := writeFile(filepath.Join(partial, ManifestName), func(w io.Writer) error { _, err := w.Write(man); return err }); err != nil {
		return "", fmt.Errorf("publish %s: %w", ManifestName, err)
	}
	if opts.Signer != nil {
		if len(opts.Signer) != ed25519.PrivateKeySize {
			return "", fmt.Errorf("publish: signing key has %d bytes, want %d", len(opts.Signer), ed25519.PrivateKeySize)
		}
		sig := base64.StdEncoding.EncodeToString(ed25519.Sign(opts.Signer, man)) + "\n"
		if _, err := writeFile(filepath.Join(partial, SignatureFile), func(w io.Writer) error { _, err := io.WriteString(w, sig); return err }); err != nil {
			return "", fmt.Errorf("publish %s: %w", SignatureFile, err)
		}
	}
	if err := syncDir(partial); err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	// os.Rename would replace an empty directory that appeared since the check above;
	// check again right before renaming to keep that window minimal.
	if _, err := os.Lstat(final); err == nil {
		return "", fmt.Errorf("publish %s: %w", final, ErrRunExists)
	}
	if err := os.Rename(partial, final); err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	if err := syncDir(outDir); err != nil {
		return final, fmt.Errorf("publish: %w", err)
	}
	return final, nil
}

func checkRunID(id string) error {
	if id == "" || id == "." || id == ".." || strings.HasPrefix(id, ".") || strings.ContainsAny(id, `/\:*?"<>|`) ||
		strings.ContainsFunc(id, func(r rune) bool { return r < 0x20 }) {
		return fmt.Errorf("run id %q is not a safe directory name", id)
	}
	return nil
}

// writeFile creates path exclusively, writes through a SHA-256, fsyncs and closes it.
func writeFile(path string, write func(io.Writer) error) (ManifestFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return ManifestFile{}, err
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	bw := bufio.NewWriterSize(cw, 256<<10)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return ManifestFile{}, err
	}
	return ManifestFile{SHA256: hex.EncodeToString(h.Sum(nil)), Size: cw.n}, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// IsPartial reports whether a directory name is a leftover of an unfinished Publish.
func IsPartial(name string) bool {
	return strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".partial")
}

// CleanPartials removes the .<run-id>.partial directories in outDir last modified
// before olderThan ago (0 removes all; do not run it while another run publishes into
// the same directory with a smaller age). It returns the removed paths.
func CleanPartials(outDir string, olderThan time.Duration) ([]string, error) {
	entries, err := os.ReadDir(outDir)
	if err != nil {
		return nil, fmt.Errorf("clean partial runs: %w", err)
	}
	var removed []string
	for _, e := range entries {
		if !e.IsDir() || !IsPartial(e.Name()) {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < olderThan {
			continue
		}
		p := filepath.Join(outDir, e.Name())
		if err := os.RemoveAll(p); err != nil {
			return removed, fmt.Errorf("clean partial runs: %w", err)
		}
		removed = append(removed, p)
	}
	return removed, nil
}

// VerifyError lists every problem Verify found, each naming the file.
type VerifyError struct {
	Dir      string
	Problems []string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("verify %s: %s", e.Dir, strings.Join(e.Problems, "; "))
}

// Verify checks a run directory against its manifest: every listed file exists with
// the recorded size and SHA-256, no other file exists, and — when pub is not nil — the
// manifest's signature in manifest.sig is valid. The error (a *VerifyError) names every
// altered, missing or extra file.
func Verify(dir string, pub ed25519.PublicKey) error {
	raw, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return fmt.Errorf("verify %s: %w", dir, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var man Manifest
	if err := dec.Decode(&man); err != nil {
		return fmt.Errorf("verify %s: %s: %w", dir, ManifestName, err)
	}
	if man.Schema != ManifestSchema {
		return fmt.Errorf("verify %s: %s: schema %q, want %q", dir, ManifestName, man.Schema, ManifestSchema)
	}
	ve := &VerifyError{Dir: dir}
	if pub != nil {
		sig, err := os.ReadFile(filepath.Join(dir, SignatureFile))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			ve.Problems = append(ve.Problems, SignatureFile+": missing (a public key was given)")
		case err != nil:
			ve.Problems = append(ve.Problems, SignatureFile+": "+err.Error())
		default:
			s, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sig)))
			if derr != nil || len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, raw, s) {
				ve.Problems = append(ve.Problems, SignatureFile+": signature does not match "+ManifestName+" and the public key")
			}
		}
	}
	listed := map[string]bool{ManifestName: true, SignatureFile: true}
	for _, mf := range man.Files {
		p := mf.Path
		if !fs.ValidPath(p) || p == ManifestName || p == SignatureFile {
			ve.Problems = append(ve.Problems, fmt.Sprintf("%s: invalid path in manifest", p))
			continue
		}
		listed[p] = true
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
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			return nil
		}
		if !listed[rel] {
			ve.Problems = append(ve.Problems, rel+": extra file not in manifest")
		} else if !d.Type().IsRegular() {
			ve.Problems = append(ve.Problems, rel+": not a regular file")
		}
		return nil
	})
	if err != nil {
		ve.Problems = append(ve.Problems, err.Error())
	}
	if len(ve.Problems) > 0 {
		sort.Strings(ve.Problems)
		return ve
	}
	return nil
}

func hashFile(path string) (ManifestFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return ManifestFile{}, err
	}
	defer f.Close()
	var h hash.Hash = sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return ManifestFile{}, err
	}
	return ManifestFile{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}
