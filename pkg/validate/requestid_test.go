package validate_test

import (
	"strings"
	"testing"

	"github.com/pgfleet/pgfleet/pkg/validate"
)

func TestViolations_RequestID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		id       string
		required bool
		wantErr  string // "" for valid; else part of the description
	}{
		{"empty_optional", "", false, ""},
		{"empty_required", "", true, "got 0"},
		{"ascii", "create-portfolio-1", true, ""},
		{"max_length", strings.Repeat("x", validate.MaxRequestIDLen), true, ""},
		{"max_length_in_characters", strings.Repeat("é", validate.MaxRequestIDLen), true, ""}, // 200 bytes
		{"too_long", strings.Repeat("x", validate.MaxRequestIDLen+1), false, "got 101"},
		{"nul", "a\x00b", false, "U+0000 at byte 1"},
		{"newline", "a\nb", true, "U+000A at byte 1"},
		{"del", "a\x7f", true, "U+007F at byte 1"},
		{"c1_control", "a\u0085", true, "U+0085 at byte 1"},
		{"invalid_utf8", "a\xffb", false, "invalid UTF-8"},
		{"space_and_symbols", "order 7 / retry #2", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var v validate.Violations
			v.RequestID("request_id", tt.id, tt.required)
			err := v.Err()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("RequestID(%q, required %v) = %v, want no violation", tt.id, tt.required, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "request_id: ") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("RequestID(%q, required %v) = %v, want a request_id violation containing %q", tt.id, tt.required, err, tt.wantErr)
			}
		})
	}
}
