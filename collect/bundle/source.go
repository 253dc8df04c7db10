package bundle

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/report"
)

// CollectorName is the source's name, and the collector of the failure of a host in no
// bundle.
const CollectorName = "bundles"

// maxEvidenceBytes bounds one host's evidence file (collection.max_output_bytes is at
// most 1 GiB).
const maxEvidenceBytes = 1 << 30

// idRE is what a bundle ID may be: it names a directory of the central run.
var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$`)

// maxMetaBytes bounds bundle.json and manifest.json (a 10,000-host bundle's are a few MB).
const maxMetaBytes = 256 << 20

// Options are what the central run trusts and checks.
type Options struct {
	// Trusted are the public keys each site may sign with (bundles.trusted_keys).
	Trusted map[string][]ed25519.PublicKey
	// MaxAge, when not 0, marks bundles finished longer ago than it stale.
	MaxAge time.Duration
	// Now is the clock of the age check and of failures (default time.Now).
	Now func() time.Time
}

// RefusedError is a bundle that failed verification: its signature, its key, a hash,
// or its form. The central run refuses to evaluate anything when a bundle is refused.
type RefusedError struct {
	Dir    string
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("evidence bundle %s refused: %s", e.Dir, e.Reason)
}

// Source is the evidence of a set of verified bundles, as a collect.Collector: each
// inventory host's evidence comes from the newest bundle holding it; a host in no
// bundle is failed with class missing_bundle. It is safe for concurrent use.
type Source struct {
	bundles    []*loaded // used, oldest first
	superseded []*loaded
	index      map[string]entry     // lower-case host name -> newest bundle holding it
	dups       map[string][]*loaded // lower-case host name -> every bundle holding it, newest first (only hosts in ≥ 2)
	opts       Options
}

type loaded struct {
	dir      string
	b        Bundle
	raw      map[string][]byte // bundle.json, manifest.json, manifest.sig as verified
	manifest string            // SHA-256 of manifest.json
	stale    bool
	age      time.Duration
	used     atomic.Int64
}

type entry struct {
	b   *loaded
	ref report.EvidenceRef
}

// Open finds the bundles in paths (each a bundle directory or a directory of bundle
// directories), verifies every one (hashes and the signature, against the keys trusted
// for the site the bundle names) and indexes their hosts. Of several bundles of one
// collector (site, shard and selection) only the newest is read; the others are
// superseded. Any bundle failing verification is a *RefusedError.
func Open(paths []string, opts Options) (*Source, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var dirs []string
	for _, p := range paths {
		ds, err := findBundles(p)
		if err != nil {
			return nil, err
		}
		dirs = append(dirs, ds...)
	}
	seen := map[string]*loaded{}
	var all []*loaded
	for _, d := range dirs {
		l, err := load(d, opts)
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[l.b.ID]; dup {
			if prev.manifest == l.manifest {
				continue // the same bundle reached through two paths (or copied twice)
			}
			return nil, &RefusedError{Dir: d, Reason: fmt.Sprintf("bundle ID %s is also the ID of the different bundle %s; a bundle ID names one bundle", l.b.ID, prev.dir)}
		}
		seen[l.b.ID] = l
		all = append(all, l)
	}
	sort.SliceStable(all, func(i, j int) bool { return older(all[i], all[j]) })
	s := &Source{index: map[string]entry{}, dups: map[string][]*loaded{}, opts: opts}
	newest := map[string]*loaded{}
	for _, l := range all {
		newest[l.b.Slot()] = l // oldest first: the last one wins
	}
	for _, l := range all {
		if newest[l.b.Slot()] != l {
			s.superseded = append(s.superseded, l)
			continue
		}
		s.bundles = append(s.bundles, l)
		for _, ref := range l.b.Evidence {
			k := strings.ToLower(ref.Host)
			if prev, ok := s.index[k]; ok {
				if len(s.dups[k]) == 0 {
					s.dups[k] = []*loaded{prev.b}
				}
				s.dups[k] = append([]*loaded{l}, s.dups[k]...)
			}
			s.index[k] = entry{b: l, ref: ref}
		}
	}
	return s, nil
}

// older orders bundles by the end of their collection, then ID.
func older(a, b *loaded) bool {
	if !a.b.FinishedAt.Equal(b.b.FinishedAt) {
		return a.b.FinishedAt.Before(b.b.FinishedAt)
	}
	return a.b.ID < b.b.ID
}

// findBundles returns p if it is a bundle, else its subdirectories that are.
func findBundles(p string) ([]string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("evidence bundles: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("evidence bundles: %s is not a directory", p)
	}
	if _, err := os.Lstat(filepath.Join(p, File)); err == nil {
		return []string{p}, nil
	}
	ents, err := os.ReadDir(p)
	if err != nil {
		return nil, fmt.Errorf("evidence bundles: %w", err)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") { // .…partial: a collector still writing
			continue
		}
		d := filepath.Join(p, e.Name())
		if _, err := os.Lstat(filepath.Join(d, File)); err == nil {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("evidence bundles: %s holds no bundle (no %s in it or in its subdirectories); is it the directory `rdsaudit collect --bundle` wrote to?", p, File)
	}
	return out, nil
}

// readSmall reads a bundle's metadata file, bounded.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxMetaBytes+1))
	if err == nil && len(data) > maxMetaBytes {
		err = fmt.Errorf("larger than %d MiB", maxMetaBytes>>20)
	}
	return data, err
}

// testHookBeforeVerify, when set (by tests), runs between reading the bundle's
// metadata files and verifying them.
var testHookBeforeVerify func(dir string)

// load verifies the bundle in dir: the key it names must be trusted for its site, the
// manifest's signature must verify with it, and every file must match the manifest.
func load(dir string, opts Options) (*loaded, error) {
	refuse := func(format string, args ...any) error {
		return &RefusedError{Dir: dir, Reason: fmt.Sprintf(format, args...)}
	}
	raw := map[string][]byte{}
	for _, n := range []string{File, report.ManifestName, report.SignatureFile} {
		data, err := readSmall(filepath.Join(dir, n))
		if errors.Is(err, fs.ErrNotExist) && n == report.SignatureFile {
			return nil, refuse("%s is missing: the bundle is unsigned (set signing.key_file on the site collector)", n)
		}
		if err != nil {
			return nil, refuse("%s: %v", n, err)
		}
		raw[n] = data
	}
	var b Bundle
	dec := json.NewDecoder(bytes.NewReader(raw[File]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, refuse("%s: %v", File, err)
	}
	if b.Schema != Schema {
		return nil, refuse("%s: schema %q, want %q", File, b.Schema, Schema)
	}
	if !idRE.MatchString(b.ID) || !idRE.MatchString(b.Site) {
		return nil, refuse("%s: bundle ID %q or site %q is not a safe name (letters, digits, '.', '_', '-')", File, b.ID, b.Site)
	}
	keys, ok := opts.Trusted[b.Site]
	if !ok {
		return nil, refuse("bundle %s names site %q, which has no key in bundles.trusted_keys (signed with key %s); add the site's public key if this collector is genuine", b.ID, b.Site, b.SigningKey)
	}
	var pub ed25519.PublicKey
	for _, k := range keys {
		if report.KeyFingerprint(k) == b.SigningKey {
			pub = k
		}
	}
	if pub == nil {
		return nil, refuse("bundle %s of site %q is signed with key %s, which is not a trusted key of that site (bundles.trusted_keys lists %s)", b.ID, b.Site, b.SigningKey, fingerprints(keys))
	}
	if testHookBeforeVerify != nil {
		testHookBeforeVerify(dir)
	}
	// Verify exactly the manifest and signature bytes read above, and use only those
	// afterwards: reading manifest.json again could get another manifest than the one
	// whose signature was checked.
	ck, err := report.VerifyManifest(dir, raw[report.ManifestName], raw[report.SignatureFile], pub)
	if err != nil {
		return nil, refuse("bundle %s of site %q (key %s) does not verify: %v", b.ID, b.Site, b.SigningKey, err)
	}
	if !ck.Authentic {
		return nil, refuse("bundle %s of site %q: the signature of %s was not checked", b.ID, b.Site, report.ManifestName)
	}
	man := ck.Manifest
	// The files were hashed as Verify read them: check that the bundle.json parsed
	// above is what the verified manifest vouches for.
	if err := ck.Match(File, raw[File]); err != nil {
		var ve *report.VerifyError
		if errors.As(err, &ve) {
			err = errors.New(strings.Join(ve.Problems, "; "))
		}
		return nil, refuse("%v (as read before verification)", err)
	}
	files := map[string]report.ManifestFile{}
	for _, f := range man.Files {
		files[f.Path] = f
	}
	if man.Run.ID != b.ID {
		return nil, refuse("%s says bundle %s, its manifest says %s", File, b.ID, man.Run.ID)
	}
	for _, ref := range b.Evidence {
		if f, ok := files[ref.Path]; !ok || f.SHA256 != ref.SHA256 || f.Size != ref.Size || ref.Size > maxEvidenceBytes ||
			!strings.HasPrefix(ref.Path, report.EvidenceDir+"/") {
			return nil, refuse("%s: evidence of %s (%s) is not the file the manifest lists", File, ref.Host, ref.Path)
		}
	}
	raw[report.ManifestName], raw[report.SignatureFile] = ck.ManifestBytes, ck.Signature
	msum := sha256.Sum256(raw[report.ManifestName])
	l := &loaded{dir: dir, b: b, raw: raw, manifest: hex.EncodeToString(msum[:])}
	if opts.MaxAge > 0 {
		if age := opts.Now().Sub(b.FinishedAt); age > opts.MaxAge {
			l.stale, l.age = true, age
		}
	}
	return l, nil
}

func fingerprints(keys []ed25519.PublicKey) string {
	fps := make([]string, len(keys))
	for i, k := range keys {
		fps[i] = report.KeyFingerprint(k)
	}
	return strings.Join(fps, ", ")
}

// Name implements collect.Collector.
func (s *Source) Name() string { return CollectorName }

// Collect implements collect.Collector: the host's evidence from the newest bundle
// holding it, its identity from the inventory (as offline evidence's is).
func (s *Source) Collect(ctx context.Context, host evidence.HostRef) *evidence.Evidence {
	now := s.opts.Now().UTC()
	if err := ctx.Err(); err != nil {
		return evidence.NewFailure(host, CollectorName, now, evidence.StatusSkipped, evidence.FailCanceled, err.Error())
	}
	e, ok := s.index[strings.ToLower(host.Name)]
	if !ok {
		return evidence.NewFailure(host, CollectorName, now, evidence.StatusFailed, evidence.FailMissingBundle,
			fmt.Sprintf("no evidence bundle holds %s (%d bundles read: %s); run its site's collector, or check its --shard/--hosts", host.Name, len(s.bundles), s.ids()))
	}
	ev, err := e.read()
	if err != nil {
		return evidence.NewFailure(host, CollectorName, now, evidence.StatusFailed, evidence.FailBadEvidence,
			fmt.Sprintf("bundle %s: %s: %v", e.b.b.ID, e.ref.Path, err))
	}
	e.b.used.Add(1)
	ev.Host = host
	return ev
}

// read reads and decodes the entry's evidence file, checking it against the verified
// manifest again (it is read after verification).
func (e entry) read() (*evidence.Evidence, error) {
	f, err := os.Open(filepath.Join(e.b.dir, filepath.FromSlash(e.ref.Path)))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, e.ref.Size+1))
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	if int64(len(data)) != e.ref.Size || hex.EncodeToString(sum[:]) != e.ref.SHA256 {
		return nil, errors.New("changed since the bundle was verified")
	}
	return evidence.Decode(bytes.NewReader(data))
}

// Origin implements collect.Origin: "bundle:<site>/<bundle id>" for a host read from a
// bundle.
func (s *Source) Origin(ev *evidence.Evidence) string {
	if e, ok := s.index[strings.ToLower(ev.Host.Name)]; ok && ev.Collector != CollectorName {
		return CollectorPrefix + e.b.b.Site + "/" + e.b.b.ID
	}
	return ev.Collector
}

func (s *Source) ids() string {
	ids := make([]string, len(s.bundles))
	for i, l := range s.bundles {
		ids[i] = l.b.ID
	}
	return strings.Join(ids, ", ")
}

// Bundles returns the bundles read, oldest first.
func (s *Source) Bundles() []Bundle {
	out := make([]Bundle, len(s.bundles))
	for i, l := range s.bundles {
		out[i] = l.b
	}
	return out
}

// Attach copies each bundle's signed manifest, signature and bundle.json into the run
// directory through add (bundles/<id>/…, listed in the run's manifest) and returns the
// bundles' coverage for the report against the inventory. Call it after every host was
// collected.
func (s *Source) Attach(inventory []evidence.HostRef, add func(rel string, data []byte) error) (*report.BundleCoverage, error) {
	bc := &report.BundleCoverage{Bundles: []report.BundleInfo{}, Superseded: []report.BundleInfo{},
		Conflicts: []report.BundleConflict{}, NotInInventory: []report.BundleHost{}}
	if s.opts.MaxAge > 0 {
		bc.MaxAge = s.opts.MaxAge.String()
	}
	for _, l := range s.bundles {
		info := l.info()
		for _, n := range []string{report.ManifestName, report.SignatureFile, File} {
			rel := "bundles/" + l.b.ID + "/" + n
			if err := add(rel, l.raw[n]); err != nil {
				return nil, err
			}
			info.Files = append(info.Files, rel)
		}
		bc.Bundles = append(bc.Bundles, info)
	}
	for _, l := range s.superseded {
		bc.Superseded = append(bc.Superseded, l.info())
	}
	inInv := make(map[string]bool, len(inventory))
	for _, h := range inventory {
		inInv[strings.ToLower(h.Name)] = true
	}
	for k, ls := range s.dups {
		if !inInv[k] {
			continue
		}
		c := report.BundleConflict{Host: s.index[k].ref.Host, Used: ls[0].b.ID}
		for _, l := range ls[1:] {
			c.Ignored = append(c.Ignored, l.b.ID)
		}
		bc.Conflicts = append(bc.Conflicts, c)
	}
	sort.Slice(bc.Conflicts, func(i, j int) bool {
		return strings.ToLower(bc.Conflicts[i].Host) < strings.ToLower(bc.Conflicts[j].Host)
	})
	for k, e := range s.index {
		if !inInv[k] {
			bc.NotInInventory = append(bc.NotInInventory, report.BundleHost{Host: e.ref.Host, Bundle: e.b.b.ID})
		}
	}
	sort.Slice(bc.NotInInventory, func(i, j int) bool {
		return strings.ToLower(bc.NotInInventory[i].Host) < strings.ToLower(bc.NotInInventory[j].Host)
	})
	return bc, nil
}

func (l *loaded) info() report.BundleInfo {
	i := report.BundleInfo{ID: l.b.ID, Site: l.b.Site, Shard: l.b.Shard, Selection: l.b.Selection,
		ToolVersion: l.b.ToolVersion, ConfigHash: l.b.ConfigHash, StartedAt: l.b.StartedAt, FinishedAt: l.b.FinishedAt,
		SigningKey: l.b.SigningKey, ManifestSHA256: l.manifest, Hosts: len(l.b.Evidence), Used: int(l.used.Load()), Stale: l.stale}
	if l.stale {
		i.Age = l.age.Round(time.Minute).String()
	}
	return i
}
