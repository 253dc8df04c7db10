// Package yamlbound bounds the size a YAML document expands to through anchors and
// aliases ("billion laughs"): a small file whose aliases nest can stand for gigabytes.
// Readers that expand aliases (walking yaml.Node, or decoding and then copying or
// encoding the values) check a document with Check before using it.
package yamlbound

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// MinLimit is the smallest budget: any document may expand to this many bytes.
const MinLimit = 4 << 20

// Factor is how many times its own size a document may expand to, when that is more
// than MinLimit.
const Factor = 64

// Limit is the expansion budget in bytes for a file of size bytes.
func Limit(size int) int64 {
	return max(int64(MinLimit), int64(size)*Factor)
}

// Error is returned when a document expands beyond its budget. Its message names the
// limit, not the line or file: callers add those in their own form.
type Error struct {
	Line  int   // line of the alias or node at which the budget ran out
	Limit int64 // the budget, in bytes
}

func (e *Error) Error() string {
	return fmt.Sprintf("YAML aliases expand the document beyond %d bytes (the limit for this file: %d× its size, at least %d MiB)",
		e.Limit, Factor, MinLimit>>20)
}

// Check walks n as a reader that follows aliases would, counting each node as one byte
// plus the length of its scalar value (or tag), and returns an *Error as soon as the
// count passes Limit(size). The walk stops at the budget, so its time and memory are
// bounded by the budget, not by the expanded size.
func Check(n *yaml.Node, size int) error {
	limit := Limit(size)
	budget := limit
	return walk(n, &budget, limit, 0)
}

func walk(n *yaml.Node, budget *int64, limit int64, depth int) error {
	if n == nil {
		return nil
	}
	if depth > 10000 { // an alias cycle cannot occur in yaml.v3 output; be safe anyway
		return &Error{Line: n.Line, Limit: limit}
	}
	*budget -= 1 + int64(len(n.Value))
	if *budget < 0 {
		return &Error{Line: n.Line, Limit: limit}
	}
	if n.Kind == yaml.AliasNode {
		return walk(n.Alias, budget, limit, depth+1)
	}
	for _, c := range n.Content {
		if err := walk(c, budget, limit, depth+1); err != nil {
			return err
		}
	}
	return nil
}
