package validate_test

import (
	"strings"
	"testing"

	"github.com/pgfleet/pgfleet/pkg/validate"
)

func TestViolations_Text(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		s       string
		kind    validate.TextKind
		wantErr string // "" for valid; else part of the description
	}{
		{"empty", "", validate.SingleLine, ""},
		{"plain", "Apple Inc.", validate.SingleLine, ""},
		{"unicode", "Société Générale – 東京", validate.SingleLine, ""},
		{"nul", "a\x00b", validate.SingleLine, "U+0000 at byte 1"},
		{"nul_multiline", "a\x00b", validate.MultiLine, "U+0000 at byte 1"},
		{"escape", "\x1b[31mred", validate.SingleLine, "U+001B at byte 0"},
		{"del", "x\x7f", validate.SingleLine, "U+007F at byte 1"},
		{"c1_control", "x\u0085", validate.SingleLine, "U+0085 at byte 1"},
		{"newline", "line 1\nline 2", validate.SingleLine, "U+000A at byte 6"},
		{"newline_multiline", "line 1\r\nline 2\tend", validate.MultiLine, ""},
		{"control_multiline", "a\x01", validate.MultiLine, "U+0001 at byte 1"},
		{"invalid_utf8", "a\xffb", validate.SingleLine, "invalid UTF-8"},
		{"invalid_utf8_multiline", "\xc3\x28", validate.MultiLine, "invalid UTF-8"},
		{"stored_controls", "a\x01\x1b\n\u0085", validate.Stored, ""},
		{"stored_nul", "ab\x00", validate.Stored, "U+0000 at byte 2"},
		{"stored_invalid_utf8", "\xff", validate.Stored, "invalid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var v validate.Violations
			ok := v.Text("name", tt.s, tt.kind)
			err := v.Err()
			if tt.wantErr == "" {
				if !ok || err != nil {
					t.Fatalf("Text(%q, kind %v) = %v, %v; want valid", tt.s, tt.kind, ok, err)
				}
				return
			}
			if ok || err == nil || !strings.Contains(err.Error(), "name: ") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Text(%q, kind %v) = %v, %v; want a name violation containing %q", tt.s, tt.kind, ok, err, tt.wantErr)
			}
		})
	}
}
