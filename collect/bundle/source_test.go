package bundle_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/collect/bundle"
	"github.com/rdsaudit/rdsaudit/collect/offline"
	"github.com/rdsaudit/rdsaudit/config"
	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/internal/audit"
	"github.com/rdsaudit/rdsaudit/report"
)

var t0 = time.Date(2026, 11, 2, 6, 0, 0, 0, time.UTC)

// sampleHosts is the sample fleet's inventory.
func sampleHosts(t *testing.T) []evidence.HostRef {
	t.Helper()
	cfg, err := config.Load("../../samples/config.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := cfg.Hosts()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]evidence.HostRef, len(hs))
	for i, h := range hs {
		out[i] = h.Ref()
	}
	return out
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// collectBundle writes a bundle of hosts from the sample fleet's offline evidence, as
// `rdsaudit collect` does, collected at the given time.
func collectBundle(t *testing.T, dir, site, shard string, key ed25519.PrivateKey, hosts []evidence.HostRef, at time.Time) string {
	t.Helper()
	col := offline.New("../../samples/fleet")
	col.Now = func() time.Time { return at }
	res, err := audit.CollectBundle(context.Background(), audit.BundleOptions{
		Hosts: hosts, Collector: col, Dir: dir, Site: site, Shard: shard, Signer: key,
		ToolVersion: "test", ConfigHash: "cfg", Now: func() time.Time { return at }, Log: zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return res.Dir
}

func byName(hosts []evidence.HostRef, names ...string) []evidence.HostRef {
	var out []evidence.HostRef
	for _, h := range hosts {
		for _, n := range names {
			if strings.EqualFold(h.Name, n) {
				out = append(out, h)
			}
		}
	}
	return out
}

func trusted(site string, k ed25519.PrivateKey) map[string][]ed25519.PublicKey {
	return map[string][]ed25519.PublicKey{site: {pub(k)}}
}

func TestVerifiedBundleIsVerifiableLikeARun(t *testing.T) {
	k := newKey(t)
	dir := collectBundle(t, t.TempDir(), "site-a", "", k, sampleHosts(t), t0)
	if err := report.Verify(dir, pub(k)); err != nil {
		t.Fatalf("Verify(bundle) = %v", err)
	}
	for _, p := range []string{dir, filepath.Join(dir, bundle.File), filepath.Join(dir, "evidence")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o027 != 0 {
			t.Errorf("%s: mode %v, want 0640/0750 or stricter", p, fi.Mode().Perm())
		}
	}
}

func TestTamperedBundleRefused(t *testing.T) {
	k := newKey(t)
	hosts := sampleHosts(t)
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   string
	}{
		{"evidence edited", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "evidence", "rdsh-a01.json")
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(strings.Replace(string(data), `"collected"`, `"failed"`, 1)), 0o640); err != nil {
				t.Fatal(err)
			}
		}, "evidence/rdsh-a01.json: altered"},
		{"evidence removed", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "evidence", "ls01.json")); err != nil {
				t.Fatal(err)
			}
		}, "evidence/ls01.json: missing"},
		{"host added", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "evidence", "ROGUE.json"), []byte("{}"), 0o640); err != nil {
				t.Fatal(err)
			}
		}, "evidence/ROGUE.json: extra file not in manifest"},
		{"manifest re-hashed without the key", func(t *testing.T, dir string) {
			p := filepath.Join(dir, report.ManifestName)
			data, _ := os.ReadFile(p)
			if err := os.WriteFile(p, append(data, ' '), 0o640); err != nil {
				t.Fatal(err)
			}
		}, "manifest.sig: signature does not match"},
		{"unsigned", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, report.SignatureFile)); err != nil {
				t.Fatal(err)
			}
		}, "unsigned"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := collectBundle(t, t.TempDir(), "site-a", "", k, hosts, t0)
			tc.tamper(t, dir)
			_, err := bundle.Open([]string{dir}, bundle.Options{Trusted: trusted("site-a", k)})
			var re *bundle.RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("Open(tampered) = %v, want a RefusedError", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q: want it to name %s and say %q", err, dir, tc.want)
			}
		})
	}
}

func TestUnknownKeyRefused(t *testing.T) {
	k, other := newKey(t), newKey(t)
	dir := collectBundle(t, t.TempDir(), "site-a", "", k, sampleHosts(t), t0)
	_, err := bundle.Open([]string{dir}, bundle.Options{Trusted: trusted("site-a", other)})
	var re *bundle.RefusedError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), report.KeyFingerprint(pub(k))) ||
		!strings.Contains(err.Error(), "not a trusted key of that site") {
		t.Fatalf("bundle signed by an untrusted key: %v", err)
	}
	// A key trusted for another site does not vouch for this one.
	_, err = bundle.Open([]string{dir}, bundle.Options{Trusted: trusted("site-b", k)})
	if !errors.As(err, &re) || !strings.Contains(err.Error(), `site "site-a", which has no key`) {
		t.Fatalf("bundle of a site without a trusted key: %v", err)
	}
	// A bundle claiming a trusted fingerprint but signed by another key fails the signature.
	dir2 := collectBundle(t, t.TempDir(), "site-a", "", other, sampleHosts(t), t0)
	p := filepath.Join(dir2, bundle.File)
	data, _ := os.ReadFile(p)
	forged := strings.Replace(string(data), report.KeyFingerprint(pub(other)), report.KeyFingerprint(pub(k)), 1)
	if err := os.WriteFile(p, []byte(forged), 0o640); err != nil {
		t.Fatal(err)
	}
	_, err = bundle.Open([]string{dir2}, bundle.Options{Trusted: trusted("site-a", k)})
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("forged fingerprint: %v", err)
	}
}

func collectAll(t *testing.T, s *bundle.Source, hosts []evidence.HostRef) map[string]*evidence.Evidence {
	t.Helper()
	out := map[string]*evidence.Evidence{}
	for _, h := range hosts {
		out[h.Name] = s.Collect(context.Background(), h)
	}
	return out
}

// TestUnionAnomalies: a host in two bundles (the newer used, a conflict reported), an
// inventory host in no bundle (missing_bundle), a bundle host not in the inventory
// (listed), a stale bundle, and a superseded bundle of the same collector.
func TestUnionAnomalies(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	all := sampleHosts(t)
	root := t.TempDir()
	// Site A collected RDSH-A01..A03 a day ago; site B collected RDSH-A03 and LS01 an
	// hour ago (A03: the conflict) and a host the central inventory lacks.
	a := collectBundle(t, root, "site-a", "", ka, byName(all, "RDSH-A01", "RDSH-A02", "RDSH-A03"), t0.Add(-24*time.Hour))
	extra := evidence.HostRef{Name: "RDSH-Z99", Roles: []string{evidence.RoleSessionHost}}
	b := collectBundle(t, root, "site-b", "", kb, append(byName(all, "RDSH-A03", "LS01"), extra), t0.Add(-time.Hour))
	// An older bundle of site B's collector: superseded, not read.
	old := collectBundle(t, root, "site-b", "", kb, byName(all, "RDSH-A04"), t0.Add(-48*time.Hour))

	src, err := bundle.Open([]string{root}, bundle.Options{
		Trusted: map[string][]ed25519.PublicKey{"site-a": {pub(ka)}, "site-b": {pub(kb)}},
		MaxAge:  12 * time.Hour, Now: func() time.Time { return t0 },
	})
	if err != nil {
		t.Fatal(err)
	}
	inv := byName(all, "RDSH-A01", "RDSH-A02", "RDSH-A03", "RDSH-A04", "LS01")
	evs := collectAll(t, src, inv)
	idA, idB := filepath.Base(a), filepath.Base(b)
	for name, want := range map[string]string{"RDSH-A01": idA, "RDSH-A03": idB, "LS01": idB} {
		ev := evs[name]
		if ev.Status != evidence.StatusCollected {
			t.Errorf("%s: status %s (%v)", name, ev.Status, ev.Failure)
		}
		if got := src.Origin(ev); got != "bundle:"+strings.SplitN(want, "_", 2)[0]+"/"+want {
			t.Errorf("%s: origin %q, want bundle %s", name, got, want)
		}
		if ev.Collector != offline.CollectorRegFile {
			t.Errorf("%s: evidence collector %q, want the site's own (%s)", name, ev.Collector, offline.CollectorRegFile)
		}
	}
	if ev := evs["RDSH-A04"]; ev.Failure == nil || ev.Failure.Class != evidence.FailMissingBundle {
		t.Errorf("RDSH-A04 (only in a superseded bundle): %+v, want class missing_bundle", ev.Failure)
	} else if !strings.Contains(ev.Failure.Message, "RDSH-A04") {
		t.Errorf("missing_bundle message %q does not name the host", ev.Failure.Message)
	}

	var added []string
	bc, err := src.Attach(inv, func(rel string, data []byte) error { added = append(added, rel); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(bc.Conflicts) != 1 || bc.Conflicts[0].Host != "RDSH-A03" || bc.Conflicts[0].Used != idB ||
		len(bc.Conflicts[0].Ignored) != 1 || bc.Conflicts[0].Ignored[0] != idA {
		t.Errorf("conflicts = %+v, want RDSH-A03 used from %s, %s ignored", bc.Conflicts, idB, idA)
	}
	if len(bc.NotInInventory) != 1 || bc.NotInInventory[0].Host != "RDSH-Z99" || bc.NotInInventory[0].Bundle != idB {
		t.Errorf("not_in_inventory = %+v, want RDSH-Z99 of %s", bc.NotInInventory, idB)
	}
	if len(bc.Superseded) != 1 || bc.Superseded[0].ID != filepath.Base(old) {
		t.Errorf("superseded = %+v, want %s", bc.Superseded, filepath.Base(old))
	}
	if len(bc.Bundles) != 2 || bc.Bundles[0].ID != idA || !bc.Bundles[0].Stale || bc.Bundles[1].Stale {
		t.Errorf("bundles = %+v, want %s (stale) then %s", bc.Bundles, idA, idB)
	}
	if len(added) != 6 {
		t.Errorf("attached %v, want manifest, signature and bundle.json of both bundles", added)
	}
}

// TestSameBundleTwice: one bundle reached through two paths is read once; two
// different bundles claiming one ID are refused.
func TestSameBundleTwice(t *testing.T) {
	k := newKey(t)
	hosts := byName(sampleHosts(t), "RDSH-A01", "LS01")
	root := t.TempDir()
	dir := collectBundle(t, root, "site-a", "", k, hosts, t0)
	src, err := bundle.Open([]string{root, dir}, bundle.Options{Trusted: trusted("site-a", k)})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(src.Bundles()); n != 1 {
		t.Errorf("%d bundles, want the one bundle once", n)
	}
	other := collectBundle(t, t.TempDir(), "site-a", "", k, hosts[:1], t0) // same site and second: same ID
	if filepath.Base(other) != filepath.Base(dir) {
		t.Fatalf("IDs %s and %s", filepath.Base(other), filepath.Base(dir))
	}
	_, err = bundle.Open([]string{dir, other}, bundle.Options{Trusted: trusted("site-a", k)})
	var re *bundle.RefusedError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "a bundle ID names one bundle") {
		t.Errorf("two bundles with one ID: %v", err)
	}
}

// TestManifestSwappedDuringVerification: the manifest whose signature is checked is the
// one whose hashes the bundle is checked against and that Attach copies into the central
// run. manifest.json swapped between load's read and the verification must not get an
// unsigned manifest used (review finding: it was read twice).
func TestManifestSwappedDuringVerification(t *testing.T) {
	k := newKey(t)
	hosts := sampleHosts(t)
	dir := collectBundle(t, t.TempDir(), "site-a", "", k, hosts, t0)
	mpath := filepath.Join(dir, report.ManifestName)
	genuine, err := os.ReadFile(mpath)
	if err != nil {
		t.Fatal(err)
	}
	// The same files, hashes unchanged, but a manifest the key never signed.
	var man report.Manifest
	if err := json.Unmarshal(genuine, &man); err != nil {
		t.Fatal(err)
	}
	man.Run.ToolVersion = "forged"
	forged, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	write := func(b []byte) {
		if err := os.WriteFile(mpath, b, 0o640); err != nil {
			t.Fatal(err)
		}
	}

	// Read forged, then the genuine one put back for verification: refused.
	write(forged)
	restore := bundle.SetTestHookBeforeVerify(func(string) { write(genuine) })
	_, err = bundle.Open([]string{dir}, bundle.Options{Trusted: trusted("site-a", k)})
	restore()
	var re *bundle.RefusedError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "manifest.sig: signature does not match") {
		t.Fatalf("forged manifest read, genuine one verified: Open = %v, want refused for the signature", err)
	}

	// Read genuine, then forged on disk: the genuine bytes (the ones verified) are what
	// Attach copies.
	write(genuine)
	restore = bundle.SetTestHookBeforeVerify(func(string) { write(forged) })
	src, err := bundle.Open([]string{dir}, bundle.Options{Trusted: trusted("site-a", k)})
	restore()
	if err != nil {
		t.Fatalf("genuine manifest read and verified: Open = %v", err)
	}
	copied := map[string][]byte{}
	if _, err := src.Attach(hosts, func(rel string, data []byte) error { copied[path.Base(rel)] = data; return nil }); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(copied[report.ManifestName], genuine) {
		t.Errorf("Attach copied a manifest other than the verified one:\n%s", copied[report.ManifestName])
	}
	if sig, _ := os.ReadFile(filepath.Join(dir, report.SignatureFile)); !bytes.Equal(copied[report.SignatureFile], sig) {
		t.Errorf("Attach copied another signature")
	}
}
