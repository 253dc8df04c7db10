package monitor_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/rdsaudit/rdsaudit/internal/monitor"
)

// fsEvent is one inotify event on an entry of the watched directory.
type fsEvent struct {
	mask uint32
	name string
}

// dirEvents reads the inotify events queued on fd (non-blocking).
func dirEvents(t *testing.T, fd int) []fsEvent {
	t.Helper()
	var evs []fsEvent
	buf := make([]byte, 64<<10)
	for {
		n, err := syscall.Read(fd, buf)
		if err == syscall.EAGAIN {
			return evs
		}
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			e := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+int(e.Len)]
			evs = append(evs, fsEvent{mask: e.Mask, name: string(bytes.TrimRight(name, "\x00"))})
			off += syscall.SizeofInotifyEvent + int(e.Len)
		}
	}
}

// TestTextfileStaging: the textfile appears by one rename of a staging file the
// collector ignores, whose mode is set before its content is written and never
// changed after (no moment with another mode, such as 0644); written twice, the
// second time over the first file.
func TestTextfileStaging(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rdsaudit.prom")
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		t.Skipf("inotify: %v", err)
	}
	defer syscall.Close(fd)
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_CREATE|syscall.IN_ATTRIB|syscall.IN_MODIFY|
		syscall.IN_CLOSE_WRITE|syscall.IN_MOVED_FROM|syscall.IN_MOVED_TO); err != nil {
		t.Skipf("inotify: %v", err)
	}
	for i := range 2 {
		if err := monitor.WriteTextfile(path, build, monitor.Outcome{Started: t0, Finished: t1, Result: sampleResult()}); err != nil {
			t.Fatal(err)
		}
		evs := dirEvents(t, fd)
		var moved []string
		written := map[string]bool{} // staging files that got content
		for _, e := range evs {
			switch {
			case e.mask&syscall.IN_CREATE != 0 && strings.HasSuffix(e.name, ".prom"):
				t.Errorf("write %d: created %s, a name the textfile collector reads", i, e.name)
			case e.mask&(syscall.IN_MODIFY|syscall.IN_CLOSE_WRITE) != 0:
				written[e.name] = true
			case e.mask&syscall.IN_ATTRIB != 0 && written[e.name]:
				t.Errorf("write %d: the mode of %s changed after its content was written", i, e.name)
			case e.mask&syscall.IN_MOVED_TO != 0:
				moved = append(moved, e.name)
			}
		}
		if len(moved) != 1 || moved[0] != "rdsaudit.prom" {
			t.Errorf("write %d: renamed to %v, want one rename to rdsaudit.prom (events %+v)", i, moved, evs)
		}
	}
	parse(t, path)
}
