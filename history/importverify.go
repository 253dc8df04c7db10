package history

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rdsaudit/rdsaudit/report"
)

// ImportOptions says how Import establishes that a run directory is authentic.
type ImportOptions struct {
	// PublicKey checks the run's manifest.sig (report.VerifyRun); nil checks only
	// integrity, which does not prove who wrote the run.
	PublicKey ed25519.PublicKey
	// Unverified allows importing a run whose authenticity cannot be proven: no
	// manifest.json, no signature, or no PublicKey to check it with. Such a run is
	// recorded with origin OriginImportUnverified. A run that fails a check (an
	// altered, missing or extra file, a renamed run, a wrong signature) is refused
	// whatever Unverified says.
	Unverified bool
}

// ErrUnverifiable is wrapped by Import's error when the run's authenticity cannot be
// proven and ImportOptions.Unverified is not set.
var ErrUnverifiable = errors.New("authenticity cannot be checked")

// verifyImport checks runDir before Import reads it and returns the origin to record
// and what report.VerifyRun established (nil without a manifest): the verified
// manifest's exact content and file list, which Import checks what it reads against. A
// failed check, an invalid manifest.json included, is the *report.VerifyError, wrapped.
func verifyImport(runDir string, opts ImportOptions) (string, *report.Checked, error) {
	_, err := os.Stat(filepath.Join(runDir, report.ManifestName))
	if errors.Is(err, fs.ErrNotExist) {
		if !opts.Unverified {
			return "", nil, fmt.Errorf("import %s: %w: no %s, so no file of the run can be checked; import it anyway with --unverified (recorded as %s)",
				runDir, ErrUnverifiable, report.ManifestName, OriginImportUnverified)
		}
		return OriginImportUnverified, nil, nil
	}
	key := opts.PublicKey
	if _, err := os.Stat(filepath.Join(runDir, report.SignatureFile)); errors.Is(err, fs.ErrNotExist) {
		key = nil // unsigned: checked for integrity, then refused or allowed below
	}
	ck, err := report.VerifyRun(runDir, key)
	if err != nil {
		return "", nil, fmt.Errorf("import %s: %w", runDir, err)
	}
	if ck.Authentic {
		return OriginImport, ck, nil
	}
	if !opts.Unverified {
		why := "no public key to check its signature with: give --pubkey FILE (or --config with signing.key_file)"
		if !ck.Signed {
			why = "the run is unsigned (no " + report.SignatureFile + ")"
		}
		return "", nil, fmt.Errorf("import %s: %w: its files match the manifest, but %s; import it anyway with --unverified (recorded as %s)",
			runDir, ErrUnverifiable, why, OriginImportUnverified)
	}
	return OriginImportUnverified, ck, nil
}
