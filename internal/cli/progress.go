package cli

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/term"

	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/internal/audit"
)

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newProgressBar returns the collection progress bar on w when w is a terminal, else
// nil (no bar in logs and pipes).
func newProgressBar(w io.Writer) audit.Progress {
	if !isTerminal(w) {
		return nil
	}
	return &progressBar{w: w}
}

// progressBar is a minimal one-line bar redrawn with \r:
// "[#####.....] 12/40 collected 10 failed 2".
type progressBar struct {
	w                 io.Writer
	total, n, ok, bad int
}

func (p *progressBar) Start(total int) { p.total = total }

func (p *progressBar) Host(ev *evidence.Evidence) {
	p.n++
	if ev.Status == evidence.StatusCollected {
		p.ok++
	} else {
		p.bad++
	}
	const width = 30
	filled := 0
	if p.total > 0 {
		filled = p.n * width / p.total
	}
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = '.'
		if i < filled {
			bar[i] = '#'
		}
	}
	fmt.Fprintf(p.w, "\r[%s] %d/%d collected %d failed %d ", bar, p.n, p.total, p.ok, p.bad)
}

func (p *progressBar) Done() {
	if p.n > 0 {
		fmt.Fprintln(p.w)
	}
}
