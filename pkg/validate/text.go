package validate

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// TextKind says which characters a text may hold besides printable ones.
type TextKind int

const (
	// SingleLine text (a name, a category, a tag) holds no control character.
	SingleLine TextKind = iota
	// MultiLine text (a question, an answer) may also hold tabs and line breaks.
	MultiLine
	// Stored is anything a PostgreSQL text value holds: every character but NUL. For input
	// compared with stored text (a filter literal, a page token's value), which may predate
	// the rules above.
	Stored
)

// BadText returns what keeps s from being text of kind: "" if nothing does, else a
// description such as "U+0000 at byte 3" or "invalid UTF-8".
//
// Text reaches PostgreSQL as text, which refuses a NUL byte (SQLSTATE 22021: an INTERNAL
// error, not the caller's mistake); invalid UTF-8 cannot cross gRPC; other control
// characters would be stored, then shown in logs, terminals and pages as escape sequences.
func BadText(s string, kind TextKind) string {
	if !utf8.ValidString(s) {
		return "invalid UTF-8"
	}
	i := strings.IndexFunc(s, func(r rune) bool {
		switch {
		case r == 0:
			return true
		case kind == Stored:
			return false
		case kind == MultiLine && (r == '\t' || r == '\n' || r == '\r'):
			return false
		}
		return unicode.IsControl(r)
	})
	if i < 0 {
		return ""
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return fmt.Sprintf("%U at byte %d", r, i)
}

// Text records a violation of field unless s is text of kind, and reports whether it is.
// It checks no length: each field has its own.
func (v *Violations) Text(field, s string, kind TextKind) bool {
	bad := BadText(s, kind)
	if bad == "" {
		return true
	}
	rule := map[TextKind]string{
		SingleLine: "UTF-8 text without control characters",
		MultiLine:  "UTF-8 text without control characters other than tab and line breaks",
		Stored:     "UTF-8 text without NUL characters",
	}[kind]
	v.Add(field, "must be %s; got %s", rule, bad)
	return false
}
