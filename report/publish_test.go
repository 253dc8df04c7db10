package report

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
	"github.com/rdsaudit/rdsaudit/rules"
)

func publishFixture(t *testing.T, opts PublishOptions) (string, *Report) {
	t.Helper()
	in := fixtureInput()
	r := Build(in)
	dir, err := Publish(context.Background(), t.TempDir(), r, in.Evidence, opts)
	if err != nil {
		t.Fatal(err)
	}
	return dir, r
}

func TestPublish(t *testing.T) {
	dir, r := publishFixture(t, PublishOptions{})
	if filepath.Base(dir) != r.Run.ID {
		t.Errorf("dir %s", dir)
	}
	if err := Verify(dir, nil); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Errorf("out dir holds %d entries, want only the run (no .partial left)", len(entries))
	}
	data, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	validate(t, data)
	back, err := Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	// Evidence refs in the report match the files written.
	for _, ref := range back.Evidence {
		got, err := hashFile(filepath.Join(dir, filepath.FromSlash(ref.Path)))
		if err != nil || got.SHA256 != ref.SHA256 || got.Size != ref.Size {
			t.Errorf("%s: %+v %v, report says %+v", ref.Path, got, err, ref)
		}
		f, _ := os.Open(filepath.Join(dir, filepath.FromSlash(ref.Path)))
		ev, err := evidence.Decode(f)
		f.Close()
		if err != nil || ev.Host.Name != ref.Host {
			t.Errorf("%s: %v", ref.Path, err)
		}
	}
	openXLSX(t, mustRead(t, filepath.Join(dir, "report.xlsx")))
	// Publishing the same run again is an error and leaves the first intact.
	if _, err := Publish(context.Background(), filepath.Dir(dir), r, fixtureEvidence(), PublishOptions{}); !errors.Is(err, ErrRunExists) {
		t.Errorf("second publish: %v, want ErrRunExists", err)
	}
	if err := Verify(dir, nil); err != nil {
		t.Error(err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type failingWriter struct{ after int }

func (f failingWriter) Write(ctx context.Context, w io.Writer, r *Report) error {
	_, _ = w.Write(bytes.Repeat([]byte("x"), f.after))
	return errors.New("killed")
}

// A run that fails half way leaves no file under a final name; a leftover .partial from
// a killed process is left alone by the next attempt (its staging name is its own) and
// cleaned by CleanPartials.
func TestPublishAtomic(t *testing.T) {
	out := t.TempDir()
	in := fixtureInput()
	r := Build(in)
	_, err := Publish(context.Background(), out, r, in.Evidence, PublishOptions{Writers: map[string]Writer{
		"report.json": JSON{}, "report.xlsx": failingWriter{after: 1000}}})
	if err == nil {
		t.Fatal("publish with a failing writer succeeded")
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 0 {
		t.Fatalf("failed publish left %v", entries)
	}
	// Simulate a killed process: a half-written partial directory.
	partial := filepath.Join(out, "."+r.Run.ID+".partial")
	if err := os.MkdirAll(filepath.Join(partial, "evidence"), 0o750); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(partial, "report.json"), []byte(`{"schema":`), 0o640)
	other := filepath.Join(out, ".other-run.partial")
	_ = os.MkdirAll(other, 0o750)
	dir, err := Publish(context.Background(), out, r, in.Evidence, PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(dir, nil); err != nil {
		t.Fatal(err)
	}
	removed, err := CleanPartials(out, 0)
	sort.Strings(removed)
	if err != nil || len(removed) != 2 || removed[0] != partial || removed[1] != other {
		t.Errorf("CleanPartials removed %v, %v; want %s and %s", removed, err, partial, other)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("CleanPartials touched the final run: %v", err)
	}
	// Canceled context: nothing under a final name.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r2 := Build(in)
	r2.Run.ID = "canceled"
	if _, err := Publish(ctx, out, r2, in.Evidence, PublishOptions{}); err == nil {
		t.Error("canceled publish succeeded")
	}
	if _, err := os.Stat(filepath.Join(out, "canceled")); !os.IsNotExist(err) {
		t.Errorf("canceled publish left a final dir: %v", err)
	}
	// Evidence that differs from what the report was built from is refused.
	r3 := Build(in)
	r3.Run.ID = "mismatch"
	changed := fixtureEvidence()
	changed[0].Collector = "tampered"
	if _, err := Publish(context.Background(), out, r3, changed, PublishOptions{}); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("publish with changed evidence: %v", err)
	}
	if _, err := Publish(context.Background(), out, r3, changed[1:], PublishOptions{}); err == nil {
		t.Error("publish with missing evidence succeeded")
	}
	for _, bad := range []string{"", "../x", ".hidden", "a/b", `a\b`} {
		r2.Run.ID = bad
		if _, err := Publish(context.Background(), out, r2, nil, PublishOptions{}); err == nil {
			t.Errorf("run id %q accepted", bad)
		}
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	cases := map[string]struct {
		tamper func(dir string)
		want   string
	}{
		"changed byte": {func(dir string) {
			p := filepath.Join(dir, "evidence", "rdsh-01.json")
			b := mustReadNoT(p)
			b[10] ^= 1
			_ = os.WriteFile(p, b, 0o640)
		}, "evidence/rdsh-01.json: altered"},
		"missing file": {func(dir string) { _ = os.Remove(filepath.Join(dir, "report.xlsx")) }, "report.xlsx: missing"},
		"extra file": {func(dir string) {
			_ = os.WriteFile(filepath.Join(dir, "evidence", "intruder.json"), []byte("{}"), 0o640)
		}, "evidence/intruder.json: extra file"},
		"manifest edited": {func(dir string) {
			p := filepath.Join(dir, ManifestName)
			_ = os.WriteFile(p, bytes.Replace(mustReadNoT(p), []byte(`"tool_version": "0.3.0"`), []byte(`"tool_version": "0.3.1"`), 1), 0o640)
		}, "manifest.sig: signature does not match"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			pub, priv, _ := ed25519.GenerateKey(nil)
			dir, _ := publishFixture(t, PublishOptions{Signer: priv})
			if err := Verify(dir, pub); err != nil {
				t.Fatalf("fresh run: %v", err)
			}
			tc.tamper(dir)
			err := Verify(dir, pub)
			var ve *VerifyError
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify = %v, want a VerifyError naming %q", err, tc.want)
			}
		})
	}
}

func mustReadNoT(p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		panic(err)
	}
	return b
}

func TestSignatureAndKeys(t *testing.T) {
	kd := t.TempDir()
	privPath, pubPath := filepath.Join(kd, "rdsaudit.key"), filepath.Join(kd, "rdsaudit.pub")
	if err := GenerateKey(privPath, pubPath); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(privPath); st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v, want 0600", st.Mode().Perm())
	}
	if err := GenerateKey(privPath, pubPath); err == nil {
		t.Error("GenerateKey overwrote an existing key")
	}
	priv, err := LoadPrivateKey(privPath)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := LoadPublicKey(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := publishFixture(t, PublishOptions{Signer: priv})
	if err := Verify(dir, pub); err != nil {
		t.Fatal(err)
	}
	if err := Verify(dir, nil); err != nil {
		t.Errorf("verify without key: %v", err)
	}
	otherPub, _, _ := ed25519.GenerateKey(nil)
	if err := Verify(dir, otherPub); err == nil || !strings.Contains(err.Error(), "manifest.sig") {
		t.Errorf("wrong key: %v", err)
	}
	unsigned, _ := publishFixture(t, PublishOptions{})
	if err := Verify(unsigned, pub); err == nil || !strings.Contains(err.Error(), "manifest.sig: missing") {
		t.Errorf("unsigned run with a key: %v", err)
	}
	// Raw base64 keys are accepted too.
	rawPriv := filepath.Join(kd, "raw.key")
	_ = os.WriteFile(rawPriv, []byte(b64(priv.Seed())+"\n"), 0o600)
	if k, err := LoadPrivateKey(rawPriv); err != nil || !k.Equal(priv) {
		t.Errorf("raw private key: %v", err)
	}
	rawPub := filepath.Join(kd, "raw.pub")
	_ = os.WriteFile(rawPub, []byte(b64(pub)), 0o644)
	if k, err := LoadPublicKey(rawPub); err != nil || !k.Equal(pub) {
		t.Errorf("raw public key: %v", err)
	}
}

// The rule engine's evaluation renders through FromEvaluation and validates.
func TestFromEvaluation(t *testing.T) {
	evs := fixtureEvidence()
	var fs []*facts.Facts
	for _, ev := range evs {
		fs = append(fs, facts.Interpret(ev))
	}
	eval := rules.Evaluate(rules.Input{Now: t0(), Hosts: fs})
	r := Build(BuildInput{Run: RunInfo{ID: "engine", StartedAt: t0(), FinishedAt: t1()}, Evidence: evs, Facts: fs,
		Evaluation: FromEvaluation(eval, rules.Rules())})
	if len(r.Results) != len(eval.Results) || len(r.Catalogue) != len(rules.Rules()) || r.Run.RuleSetHash != eval.RuleSetHash {
		t.Errorf("results %d/%d catalogue %d", len(r.Results), len(eval.Results), len(r.Catalogue))
	}
	writeJSON(t, r)
	f := openXLSX(t, writeXLSX(t, r))
	if n := len(rows(t, f, SheetFindings)) - 1; n != len(r.Findings()) {
		t.Errorf("findings sheet %d rows, want %d", n, len(r.Findings()))
	}
}
