package config

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is matched (errors.Is) by every error Load, Validate and Hosts return for a
// configuration or inventory problem, so the CLI can map them to its usage/config exit
// code in one place.
var ErrInvalid = errors.New("invalid configuration")

// Problem is one configuration problem, located as precisely as its source allows.
type Problem struct {
	File   string // config or inventory file; "" when not from a file
	Line   int    // 1-based line in File; 0 if unknown
	Field  string // field path ("collection.concurrency", "credentials[0].password") or CSV column
	Origin string // "env RDSAUDIT_X" or "flag --x" when the value did not come from File
	Msg    string
}

// String renders the problem as
//
//	FILE:LINE: FIELD: MESSAGE
//	FILE: FIELD: MESSAGE              (no line: a default or a whole-file problem)
//	FIELD: MESSAGE (from env VAR)     (value from the environment or a flag)
func (p Problem) String() string {
	var b strings.Builder
	if p.Origin == "" && p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	if p.Origin != "" {
		fmt.Fprintf(&b, " (from %s)", p.Origin)
	}
	return b.String()
}

// Error is a list of configuration problems. Its message is one problem per line, in a
// deterministic order (file order, then check order).
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// problems collects Problems and turns them into an error.
type problems []Problem

func (ps *problems) add(p Problem) { *ps = append(*ps, p) }

func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return &Error{Problems: append([]Problem(nil), ps...)}
}
