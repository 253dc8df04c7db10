package report

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/rdsaudit/rdsaudit/evidence"
)

// Stage is a run directory being written: <outDir>/.<run-id>.<pid>-<random>.partial/. Evidence goes in
// as each host is collected (AddEvidence), so the pipeline need not hold it; Publish
// then writes the reports and the manifest, makes everything durable with one barrier
// and renames the directory to <outDir>/<run-id>/. Until then nothing is visible under
// the final name, and a killed run leaves only the .partial directory, which readers
// ignore and CleanPartials removes.
type Stage struct {
	outDir, id, final, dir string

	mu    sync.Mutex
	names map[string]string      // host -> evidence file name
	owner map[string]string      // evidence file name -> host that wrote it
	refs  map[string]EvidenceRef // evidence path -> what was written
	files []ManifestFile
	done  bool
	// buffers are what evidence documents are encoded into: one per host being
	// staged at a time, not one per host of the fleet.
	buffers sync.Pool
}

// NewStage creates the staging directory of run id in outDir for the given hosts (their
// evidence file names are chosen together, so that names never collide). An existing
// final directory is ErrRunExists. The staging directory's name is unique to this
// process and attempt (.<run-id>.<pid>-<random>.partial), so a Stage never touches
// another's: leftovers of dead runs are CleanPartials' business, under the output
// directory's lock.
func NewStage(outDir, id string, hosts []string) (*Stage, error) {
	if err := checkRunID(id); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	s := &Stage{outDir: outDir, id: id, final: filepath.Join(outDir, id),
		names: EvidenceFileNames(hosts), owner: map[string]string{}, refs: map[string]EvidenceRef{}}
	if _, err := os.Lstat(s.final); err == nil {
		return nil, fmt.Errorf("publish %s: %w", s.final, ErrRunExists)
	}
	if err := os.MkdirAll(outDir, 0o750); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	for {
		s.dir = filepath.Join(outDir, stagingName(id))
		err := os.Mkdir(s.dir, 0o750)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("publish: %w", err)
		}
	}
	if err := os.Mkdir(filepath.Join(s.dir, EvidenceDir), 0o750); err != nil {
		s.Abort()
		return nil, fmt.Errorf("publish: %w", err)
	}
	return s, nil
}

// stagingName is a staging directory name of run id unique to this process and call.
func stagingName(id string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf(".%s.%d-%s.partial", id, os.Getpid(), hex.EncodeToString(b[:]))
}

// Dir is the staging directory.
func (s *Stage) Dir() string { return s.dir }

// AddEvidence writes one host's evidence to evidence/<file> and returns its reference
// (path, SHA-256, size), which the report must carry for this host. It is safe for
// concurrent use: hosts are staged as they complete.
func (s *Stage) AddEvidence(ev *evidence.Evidence) (EvidenceRef, error) {
	s.mu.Lock()
	name, ok := s.names[ev.Host.Name]
	prev, dup := s.owner[name]
	if ok && !dup {
		s.owner[name] = ev.Host.Name // reserved: a second host with this file fails
	}
	s.mu.Unlock()
	if !ok {
		return EvidenceRef{}, fmt.Errorf("publish: evidence of %q, a host the run was not staged for", ev.Host.Name)
	}
	if dup {
		return EvidenceRef{}, fmt.Errorf("publish: hosts %q and %q share evidence file %s (duplicate host?)", prev, ev.Host.Name, name)
	}
	buf, _ := s.buffers.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	defer s.buffers.Put(buf)
	buf.Reset()
	if err := evidence.Encode(buf, ev); err != nil {
		return EvidenceRef{}, fmt.Errorf("publish: %w", err)
	}
	rel := EvidenceDir + "/" + name
	mf, err := s.create(rel, buf.Bytes())
	if err != nil {
		return EvidenceRef{}, err
	}
	ref := EvidenceRef{Host: ev.Host.Name, Path: rel, SHA256: mf.SHA256, Size: mf.Size}
	s.mu.Lock()
	s.files = append(s.files, mf)
	s.refs[rel] = ref
	s.mu.Unlock()
	return ref, nil
}

// write creates rel with data and lists it for the manifest (s.mu held).
func (s *Stage) write(rel string, data []byte) (ManifestFile, error) {
	mf, err := s.create(rel, data)
	if err == nil {
		s.files = append(s.files, mf)
	}
	return mf, err
}

// create creates rel in the staging directory with data, unsynced (Publish's barrier
// makes it durable).
func (s *Stage) create(rel string, data []byte) (ManifestFile, error) {
	f, err := os.OpenFile(filepath.Join(s.dir, filepath.FromSlash(rel)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return ManifestFile{}, fmt.Errorf("publish %s: %w", rel, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = syncFile(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return ManifestFile{}, fmt.Errorf("publish %s: %w", rel, err)
	}
	sum := sha256.Sum256(data)
	return ManifestFile{Path: rel, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))}, nil
}

// writeStream creates rel with what write produces, through a bounded buffer and a
// SHA-256, unsynced, and lists it for the manifest.
func (s *Stage) writeStream(rel string, write func(io.Writer) error) error {
	mf, err := writeFile(filepath.Join(s.dir, filepath.FromSlash(rel)), write)
	if err != nil {
		return fmt.Errorf("publish %s: %w", rel, err)
	}
	mf.Path = rel
	s.files = append(s.files, mf)
	return nil
}

// Abort removes the staging directory; a Stage that published is left alone.
func (s *Stage) Abort() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.done {
		_ = os.RemoveAll(s.dir)
	}
}

// Publish writes the report files with the writers (default report.json and
// report.xlsx), manifest.json over every file (and manifest.sig when a signer is set),
// makes the whole directory durable, and renames it to its final name. The report's
// evidence references must be exactly the staged evidence. On error the staging
// directory is removed.
func (s *Stage) Publish(ctx context.Context, rep *Report, opts PublishOptions) (dir string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		if err != nil {
			_ = os.RemoveAll(s.dir)
		} else {
			s.done = true
		}
	}()
	if rep.Run.ID != s.id {
		return "", fmt.Errorf("publish: report of run %q in the staging directory of run %q", rep.Run.ID, s.id)
	}
	if err := s.checkRefs(rep); err != nil {
		return "", err
	}
	if opts.Signer != nil && len(opts.Signer) == ed25519.PrivateKeySize {
		// The report names the key that signs its manifest (Summary, About, report.json).
		rep.Run.SigningKey = KeyFingerprint(opts.Signer.Public().(ed25519.PublicKey))
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
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("publish: %w", err)
		}
		wr := writers[n]
		if err := s.writeStream(n, func(w io.Writer) error { return wr.Write(ctx, w, rep) }); err != nil {
			return "", err
		}
	}
	files := append([]ManifestFile(nil), s.files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	m := Manifest{Schema: ManifestSchema, Run: rep.Run, Files: files}
	if len(opts.Signer) == ed25519.PrivateKeySize {
		m.Signer = KeyFingerprint(opts.Signer.Public().(ed25519.PublicKey))
	}
	man, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	man = append(man, '\n')
	if _, err := s.write(ManifestName, man); err != nil {
		return "", err
	}
	if opts.Signer != nil {
		if len(opts.Signer) != ed25519.PrivateKeySize {
			return "", fmt.Errorf("publish: signing key has %d bytes, want %d", len(opts.Signer), ed25519.PrivateKeySize)
		}
		sig := base64.StdEncoding.EncodeToString(ed25519.Sign(opts.Signer, man)) + "\n"
		if _, err := s.write(SignatureFile, []byte(sig)); err != nil {
			return "", err
		}
	}
	// One durability barrier for everything staged, then the directories themselves:
	// what the final name shows is on disk before the name exists.
	if err := syncTree(s.dir); err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	for _, d := range []string{filepath.Join(s.dir, EvidenceDir), s.dir} {
		if err := syncDir(d); err != nil {
			return "", fmt.Errorf("publish: %w", err)
		}
	}
	// os.Rename would replace an empty directory that appeared since NewStage's check;
	// check again right before renaming to keep that window minimal.
	if _, err := os.Lstat(s.final); err == nil {
		return "", fmt.Errorf("publish %s: %w", s.final, ErrRunExists)
	}
	if err := os.Rename(s.dir, s.final); err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	if err := syncDir(s.outDir); err != nil {
		return s.final, fmt.Errorf("publish: %w", err)
	}
	return s.final, nil
}

// checkRefs compares the report's evidence references with what was staged: the report
// must vouch for exactly the evidence in the directory.
func (s *Stage) checkRefs(rep *Report) error {
	seen := make(map[string]bool, len(rep.Evidence))
	for _, ref := range rep.Evidence {
		got, ok := s.refs[ref.Path]
		if !ok {
			continue
		}
		seen[ref.Path] = true
		if got != ref {
			return fmt.Errorf("publish %s: the report's evidence reference (%s, sha256 %s) does not match the evidence given (%s, sha256 %s)",
				ref.Path, ref.Host, ref.SHA256, got.Host, got.SHA256)
		}
	}
	var missing []string
	for _, ref := range rep.Evidence {
		if !seen[ref.Path] {
			missing = append(missing, ref.Path)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("publish: the report references evidence not given to Publish: %s", strings.Join(missing, ", "))
	}
	return nil
}
