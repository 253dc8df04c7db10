// Package redact hides secrets in messages by token: a secret is replaced only where it
// stands whole, not inside a longer word, and only when it is long enough to be told
// apart from ordinary text. A blind substring replace of a short secret gives it away:
// for the password "x", "x509" would read "[REDACTED]509".
package redact

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Mask replaces a secret.
const Mask = "[REDACTED]"

// MinLen is the shortest secret (in bytes) that is redacted. A shorter one cannot be
// hidden without hiding ordinary text too (and revealing itself by what is hidden).
const MinLen = 6

// Secrets returns msg with every whole occurrence of each secret of at least MinLen
// bytes replaced by Mask. An occurrence is whole when the characters around it are not
// word characters (letters, digits, _) where the secret itself begins or ends with one:
// the same rule as a regular expression's \b around the secret. Longer secrets are
// replaced first, so that one containing another is hidden whole.
func Secrets(msg string, secrets ...string) string {
	var ss []string
	for _, s := range secrets {
		if len(s) >= MinLen {
			ss = append(ss, s)
		}
	}
	// longest first (insertion sort: a handful of secrets)
	for i := 1; i < len(ss); i++ {
		for j := i; j > 0 && len(ss[j]) > len(ss[j-1]); j-- {
			ss[j], ss[j-1] = ss[j-1], ss[j]
		}
	}
	for _, s := range ss {
		msg = replaceWhole(msg, s)
	}
	return msg
}

func replaceWhole(msg, s string) string {
	var b strings.Builder
	first, _ := utf8.DecodeRuneInString(s)
	last, _ := utf8.DecodeLastRuneInString(s)
	i := 0
	for {
		j := strings.Index(msg[i:], s)
		if j < 0 {
			break
		}
		start, end := i+j, i+j+len(s)
		before, _ := utf8.DecodeLastRuneInString(msg[:start])
		after, _ := utf8.DecodeRuneInString(msg[end:])
		whole := (start == 0 || !isWord(first) || !isWord(before)) &&
			(end == len(msg) || !isWord(last) || !isWord(after))
		if whole {
			if b.Len() == 0 && i == 0 {
				b.Grow(len(msg))
			}
			b.WriteString(msg[i:start])
			b.WriteString(Mask)
			i = end
			continue
		}
		// not whole here: keep the first character and look again after it
		_, n := utf8.DecodeRuneInString(msg[start:])
		b.WriteString(msg[i : start+n])
		i = start + n
	}
	if i == 0 {
		return msg
	}
	b.WriteString(msg[i:])
	return b.String()
}

func isWord(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }
