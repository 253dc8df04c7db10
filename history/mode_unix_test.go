//go:build unix

package history

import (
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

// TestStoreFileModes: the store, its -wal and -shm and its lock file are 0640 or
// stricter whatever the umask (issue 14, defect 4); a store left 0644 by an older
// version is tightened on open.
func TestStoreFileModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix modes")
	}
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	s, path := openTemp(t)
	runPipeline(t, s, "R1", month(0), nil, nil)
	release, err := s.AcquireRunLock(ctx, "R1")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	for _, p := range []string{path, path + "-wal", path + "-shm", LockPath(path)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m&^0o640 != 0 {
			t.Errorf("%s: mode %04o, want 0640 or stricter", filepath.Base(p), m)
		}
	}
	s.Close()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("existing 0644 store: mode %04o after open, want 0640", fi.Mode().Perm())
	}
}
