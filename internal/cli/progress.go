package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Progress reporting intervals: the terminal bar is redrawn this often (so elapsed time
// and the ages of the hosts in flight move while no host completes); without a
// terminal a structured log line is written this often. progressLogEvery is a
// variable for tests.
const progressRedraw = time.Second

var progressLogEvery = 15 * time.Second

// slowestShown is how many of the hosts in flight are named, the longest-running first.
const slowestShown = 3

// progress reports the collection's progress: done/total, collected and failed, the
// hosts in flight (the slowest named, with their age), elapsed time and the ETA. On a
// terminal it draws a progress bar (github.com/schollz/progressbar); otherwise it
// writes a "collection progress" log line every progressLogEvery, so that a cron job's
// or a service's log shows where a long collection stands.
//
// It implements audit.Progress (Start, Host, Done: completions) and learns which hosts
// are in flight from the collector it wraps (track).
type progress struct {
	w     io.Writer
	log   zerolog.Logger
	now   func() time.Time
	term  bool
	width int // terminal columns (term only)

	mu                  sync.Mutex
	total, done, ok, ko int
	start               time.Time
	inFlight            map[string]time.Time // host name → collection start
	bar                 *progressbar.ProgressBar
	stop                chan struct{}
	stopped             sync.WaitGroup
}

// newProgress returns the progress reporter for an audit writing its logs to w (stderr).
func newProgress(w io.Writer, log zerolog.Logger) *progress {
	p := &progress{w: w, log: log, now: time.Now, term: isTerminal(w), inFlight: map[string]time.Time{}}
	if p.term {
		p.width = 100
		if f, ok := w.(*os.File); ok {
			if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
				p.width = cols
			}
		}
	}
	return p
}

// track wraps c so that the reporter knows which hosts are in flight.
func (p *progress) track(c collect.Collector) collect.Collector {
	return collect.Wrap(c, func(ctx context.Context, h evidence.HostRef) *evidence.Evidence {
		p.mu.Lock()
		p.inFlight[h.Name] = p.now()
		p.mu.Unlock()
		defer func() {
			p.mu.Lock()
			delete(p.inFlight, h.Name)
			p.mu.Unlock()
		}()
		return c.Collect(ctx, h)
	})
}

// barFixed is an upper bound of the columns the bar takes besides the description:
// " 52% |████████████████████| (13/25 hosts) [1m40s:1m32s]".
const barWidth, barFixed = 20, 56

func (p *progress) Start(total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total, p.start = total, p.now()
	p.stop = make(chan struct{})
	if p.term {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetWidth(barWidth),
			progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("hosts"),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionUseANSICodes(true),
			progressbar.OptionSetRenderBlankState(true),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetDescription(p.describeLocked()),
		)
	}
	every := progressLogEvery
	if p.term {
		every = progressRedraw
	}
	p.stopped.Add(1)
	go p.tick(every, p.stop)
}

func (p *progress) tick(every time.Duration, stop <-chan struct{}) {
	defer p.stopped.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			p.mu.Lock()
			if p.term {
				p.bar.Describe(p.describeLocked())
			} else {
				p.logLocked("collection progress")
			}
			p.mu.Unlock()
		}
	}
}

func (p *progress) Host(ev *evidence.Evidence) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	if ev.Status == evidence.StatusCollected {
		p.ok++
	} else {
		p.ko++
	}
	if p.term {
		p.bar.Describe(p.describeLocked())
		_ = p.bar.Add(1)
	}
}

func (p *progress) Done() {
	p.mu.Lock()
	if p.stop != nil {
		close(p.stop)
		p.stop = nil
	}
	p.mu.Unlock()
	p.stopped.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.term {
		if p.bar != nil {
			_ = p.bar.Exit()
			_ = p.bar.Clear()
		}
		fmt.Fprintf(p.w, "collected %d of %d hosts (%d failed) in %s\n", p.ok, p.total, p.ko, p.elapsedLocked().Round(time.Second))
		return
	}
	if p.done < p.total || p.elapsedLocked() >= progressLogEvery {
		p.logLocked("collection finished")
	}
}

func (p *progress) elapsedLocked() time.Duration { return p.now().Sub(p.start) }

// etaLocked estimates the time left from the mean pace so far; 0 while nothing is done.
func (p *progress) etaLocked() time.Duration {
	if p.done == 0 || p.done >= p.total {
		return 0
	}
	per := p.elapsedLocked() / time.Duration(p.done)
	return per * time.Duration(p.total-p.done)
}

// flight is one host in flight and how long it has been.
type flight struct {
	name string
	age  time.Duration
}

// slowestLocked returns the hosts in flight, the longest-running first (by name on ties).
func (p *progress) slowestLocked() []flight {
	now := p.now()
	fl := make([]flight, 0, len(p.inFlight))
	for name, t := range p.inFlight {
		fl = append(fl, flight{name, now.Sub(t)})
	}
	sort.Slice(fl, func(i, j int) bool {
		if fl[i].age != fl[j].age {
			return fl[i].age > fl[j].age
		}
		return fl[i].name < fl[j].name
	})
	return fl
}

// describeLocked is the bar's description: failures so far and the hosts in flight,
// the slowest named, cut to the terminal's width.
func (p *progress) describeLocked() string {
	var b strings.Builder
	fmt.Fprintf(&b, "failed %d", p.ko)
	fl := p.slowestLocked()
	if len(fl) > 0 {
		fmt.Fprintf(&b, " · in flight %d:", len(fl))
		for i, f := range fl {
			if i == slowestShown {
				b.WriteString(" …")
				break
			}
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, " %s %s", f.name, f.age.Truncate(time.Second))
		}
	}
	s := b.String()
	if budget := p.width - barFixed; budget > 0 && len([]rune(s)) > budget {
		s = string([]rune(s)[:budget-1]) + "…"
	}
	return s
}

// logLocked writes one structured progress line.
func (p *progress) logLocked(msg string) {
	fl := p.slowestLocked()
	slow := make([]string, 0, slowestShown)
	for i, f := range fl {
		if i == slowestShown {
			break
		}
		slow = append(slow, f.name+" "+f.age.Truncate(time.Second).String())
	}
	ev := p.log.Info().Int("done", p.done).Int("total", p.total).Int("collected", p.ok).Int("failed", p.ko).
		Int("in_flight", len(fl)).Strs("slowest", slow).
		Stringer("elapsed", p.elapsedLocked().Truncate(time.Second))
	if eta := p.etaLocked().Round(time.Second); eta > 0 {
		ev = ev.Stringer("eta", eta)
	}
	ev.Msg(msg)
}
