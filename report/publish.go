package report

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
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
	// Signer is the fingerprint (KeyFingerprint) of the key manifest.sig was made
	// with; absent on unsigned runs and on runs signed before it existed. It is a claim
	// inside the signed document, checked against the key Verify is given.
	Signer string `json:"signer,omitempty"`
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

// Publish writes the run directory atomically from a report and its evidence, all in
// memory: NewStage, AddEvidence for each host, then Stage.Publish (see Stage). The
// pipeline streams instead: it stages each host's evidence as it is collected.
func Publish(ctx context.Context, outDir string, rep *Report, evs []*evidence.Evidence, opts PublishOptions) (string, error) {
	st, err := NewStage(outDir, rep.Run.ID, hostNames(evs))
	if err != nil {
		return "", err
	}
	for _, ev := range evs {
		if err := ctx.Err(); err != nil {
			st.Abort()
			return "", fmt.Errorf("publish: %w", err)
		}
		if _, err := st.AddEvidence(ev); err != nil {
			st.Abort()
			return "", err
		}
	}
	return st.Publish(ctx, rep, opts)
}

func checkRunID(id string) error {
	if id == "" || id == "." || id == ".." || strings.HasPrefix(id, ".") || strings.ContainsAny(id, `/\:*?"<>|`) ||
		strings.ContainsFunc(id, func(r rune) bool { return r < 0x20 }) {
		return fmt.Errorf("run id %q is not a safe directory name", id)
	}
	return nil
}

// writeFile creates path exclusively, writes through a bounded buffer and a SHA-256 and
// closes it (fsynced where the platform has no one-barrier sync; see syncTree).
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
		err = syncFile(f)
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

// CleanPartials removes the .<run-id>….partial directories in outDir last modified
// before olderThan ago (0 removes all; do not run it while another run publishes into
// the same directory with a smaller age: the audit calls it holding the output
// directory's lock). It returns the removed paths.
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
