package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/collect"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// Without a terminal, a run logs a structured progress line periodically: done/total,
// collected/failed, the hosts in flight with the slowest named, elapsed and ETA.
func TestRunProgressLines(t *testing.T) {
	chdirRoot(t)
	old := progressLogEvery
	progressLogEvery = 20 * time.Millisecond
	t.Cleanup(func() { progressLogEvery = old })

	stderr := &syncBuffer{}
	release := make(chan struct{})
	h := &hooks{wrap: func(c collect.Collector) collect.Collector {
		return collect.Func(c.Name(), func(ctx context.Context, h evidence.HostRef) *evidence.Evidence {
			if h.Name == "LS01" {
				<-release // until a progress line has named it
			}
			return c.Collect(ctx, h)
		})
	}}
	code := make(chan int, 1)
	out := t.TempDir()
	go func() {
		code <- Run(withHooks(context.Background(), h),
			[]string{"run", "--config", "samples/config.yaml", "--output-dir", out, "--log-format", "json"},
			&syncBuffer{}, stderr, fixedClock(sampleNow))
	}()
	var line map[string]any
	deadline := time.Now().Add(20 * time.Second)
	for line == nil && time.Now().Before(deadline) {
		for _, l := range strings.Split(stderr.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["message"] == "collection progress" && m["done"] == float64(23) {
				line = m
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	if c := <-code; c != ExitCoverage {
		t.Errorf("exit %d", c)
	}
	if line == nil {
		t.Fatalf("no progress line with 23 of 24 done:\n%s", stderr.String())
	}
	if line["total"] != float64(24) || line["in_flight"] != float64(1) || line["collected"].(float64)+line["failed"].(float64) != 23 {
		t.Errorf("progress line %v", line)
	}
	slow, _ := line["slowest"].([]any)
	if len(slow) != 1 || !strings.HasPrefix(slow[0].(string), "LS01 ") {
		t.Errorf("slowest %v, want LS01", line["slowest"])
	}
	if _, ok := line["elapsed"].(string); !ok {
		t.Errorf("no elapsed: %v", line)
	}
	if !strings.Contains(stderr.String(), `"message":"collection finished"`) {
		t.Errorf("no final progress line")
	}
}

// On a terminal the bar (github.com/schollz/progressbar) shows done/total, elapsed and
// ETA, the failures and the hosts in flight, the slowest first, cut to the width.
func TestProgressBarRendering(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	p := &progress{w: &buf, log: zerolog.Nop(), now: func() time.Time { return now }, term: true, width: 120, inFlight: map[string]time.Time{}}
	p.Start(25)
	defer p.Done()
	hosts := map[string]time.Duration{"RDSH-A01": 3 * time.Second, "RDSH-B07": 41 * time.Second, "LS01": 38 * time.Second, "RDSH-B09": 40 * time.Second, "RDSH-C01": time.Second}
	for name, age := range hosts {
		p.inFlight[name] = now.Add(-age)
	}
	for i := 0; i < 13; i++ {
		st := evidence.StatusCollected
		if i%6 == 5 {
			st = evidence.StatusFailed
		}
		p.Host(&evidence.Evidence{Status: st})
	}
	got := buf.String()
	for _, want := range []string{"(13/25)", "failed 2 · in flight 5: RDSH-B07 41s, RDSH-B09 40s, LS01 38s …", "52%"} {
		if !strings.Contains(got, want) {
			t.Errorf("bar lacks %q:\n%q", want, got)
		}
	}
	p.width = 80
	p.mu.Lock()
	d := p.describeLocked()
	p.mu.Unlock()
	if n := len([]rune(d)); n > 80-barFixed {
		t.Errorf("description %q is %d columns, more than the %d left on an 80-column terminal", d, n, 80-barFixed)
	}
}
