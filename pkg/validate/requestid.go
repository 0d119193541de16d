package validate

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxRequestIDLen is the most characters an idempotency key may have.
const MaxRequestIDLen = 100

// RequestID checks an idempotency key (AIP-155) named field: 1 to MaxRequestIDLen
// characters of valid UTF-8 without control characters, or empty when not required (the
// request then runs without idempotency). The key reaches PostgreSQL as text, which refuses
// a NUL byte (SQLSTATE 22021); refusing every control character here keeps that a field
// violation, and keys readable in logs.
func (v *Violations) RequestID(field, id string, required bool) {
	if id == "" && !required {
		return
	}
	const rule = "must be 1 to %d characters of UTF-8 without control characters, identifying this request so that a retry of it is not executed twice"
	if !utf8.ValidString(id) {
		v.Add(field, rule+"; got invalid UTF-8", MaxRequestIDLen)
		return
	}
	if n := utf8.RuneCountInString(id); n == 0 || n > MaxRequestIDLen {
		v.Add(field, rule+"; got %d", MaxRequestIDLen, n)
		return
	}
	if i := strings.IndexFunc(id, unicode.IsControl); i >= 0 {
		r, _ := utf8.DecodeRuneInString(id[i:])
		v.Add(field, rule+"; got %U at byte %d", MaxRequestIDLen, r, i)
	}
}
