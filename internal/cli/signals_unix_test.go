//go:build unix

package cli

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestRunRealSIGTERM: `run` hears a real SIGTERM sent to the process (signal.Notify,
// no injected channel), stops gracefully and exits 7 with the run marked partial.
func TestRunRealSIGTERM(t *testing.T) {
	dir := t.TempDir()
	cfg := scheduleConfig(t, dir, "stop_grace: 50ms", "")
	entered := make(chan string, 4)
	h := &hooks{wrap: blockFirst(entered, func(ctx context.Context) { <-ctx.Done() })}
	var out, errb syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- Run(withHooks(context.Background(), h), []string{"run", "--config", cfg}, &out, &errb, fixedClock(sampleNow))
	}()
	select {
	case <-entered: // the signal handler is installed before any host is collected
	case <-time.After(20 * time.Second):
		t.Fatalf("no host collected\n%s", errb.String())
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-code:
		if c != ExitStopped {
			t.Fatalf("exit %d, want %d\n%s", c, ExitStopped, errb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("run did not stop\n%s", errb.String())
	}
	checkPartial(t, filepath.Join(dir, "out"))
}
