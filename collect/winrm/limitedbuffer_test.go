package winrm

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// TestLimitedBufferReadFrom: ReadFrom keeps what fits within max, and beyond it
// records the overflow once and drains the reader to its end, as Write does.
func TestLimitedBufferReadFrom(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       int
		overflow bool
	}{{"empty", 0, false}, {"within", 9, false}, {"at the limit", 10, false}, {"beyond", 11, true}, {"far beyond", 100000, true}} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			b := &limitedBuffer{max: 10, onOverflow: func() { calls++ }}
			src := strings.NewReader(strings.Repeat("x", tc.in))
			// In pieces, like the pipe masterzen writes each Receive's output into.
			n, err := b.ReadFrom(io.MultiReader(io.LimitReader(src, 3), src))
			if err != nil || n != int64(tc.in) || src.Len() != 0 {
				t.Fatalf("ReadFrom: %d, %v (%d left), want %d read", n, err, src.Len(), tc.in)
			}
			if b.overflow != tc.overflow || calls != map[bool]int{false: 0, true: 1}[tc.overflow] {
				t.Errorf("overflow %v (%d calls), want %v", b.overflow, calls, tc.overflow)
			}
			if !tc.overflow && !bytes.Equal(b.buf.Bytes(), bytes.Repeat([]byte("x"), tc.in)) {
				t.Errorf("kept %q", b.buf.Bytes())
			}
			if tc.overflow {
				if b.buf.Len() > 10 {
					t.Errorf("kept %d bytes beyond max", b.buf.Len())
				}
				if _, err := b.ReadFrom(strings.NewReader("more")); err != nil || calls != 1 {
					t.Errorf("after the overflow: %v, %d calls", err, calls)
				}
			}
		})
	}
}
